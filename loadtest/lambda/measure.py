# Reads /metrics twice, D seconds apart; prints executions/s and task-call latency percentiles
# (from the histogram's bucket deltas: the upper bound of the bucket holding the percentile).
import re, sys, time, urllib.request
URL = "http://127.0.0.1:9465/metrics"
D = float(sys.argv[1]) if len(sys.argv) > 1 else 30
def scrape():
    text = urllib.request.urlopen(URL).read().decode()
    succ = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("expressway_executions_succeeded_total"))
    buckets = {}
    for l in text.splitlines():
        m = re.match(r'expressway_task_call_duration_seconds_bucket\{integration="lambda",le="([^"]+)"\} (\S+)', l)
        if m: buckets[m.group(1)] = float(m.group(2))
    lag = sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith("expressway_consumer_lag_messages"))
    return succ, buckets, lag
a = scrape(); time.sleep(D); b = scrape()
rate = (b[0] - a[0]) / D
les = sorted(b[1], key=lambda k: float("inf") if k == "+Inf" else float(k))
delta = [(le, b[1][le] - a[1].get(le, 0)) for le in les]
total = delta[-1][1]
def pct(p):
    for le, c in delta:
        if c >= p * total: return le
print(f"executions/s {rate:.0f}; task calls {total:.0f}; p50 <= {pct(0.5)} s, p99 <= {pct(0.99)} s; consumer lag {a[2]:.0f} -> {b[2]:.0f}")
