//! Per-state metrics (label `state`, bounded by the definition): how often each state is
//! entered, how it is left, and how long it takes. One [`StateFigures`] per state machine is
//! shared by every driver that runs it; each driver counts into its own [`StateMetrics`]
//! batch and publishes with the rest of its metrics, to the Prometheus counters and to the
//! atomics the console reads.
//!
//! The duration histogram is rendered on `/metrics` from those atomics
//! ([`render_state_durations`]) rather than recorded through the `metrics` facade, whose
//! histograms keep every sample until the next scrape: at a million state exits a second
//! that cost a push per exit and ~100 MB of samples (measured: `docs/performance.md`).

use super::names;
use crate::asl::effect::{StateEnd, StateMark};
use crate::asl::program::Program;
use metrics::Counter;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::sync::{Mutex, Weak};

/// Upper bounds, in milliseconds, of the state duration buckets (`le`, in seconds, on
/// `/metrics`): most states take no measurable time, Waits and Tasks up to the Express cap.
pub const STATE_DURATION_BUCKETS_MS: [u64; 15] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

/// Buckets plus the overflow (`+Inf`).
const BUCKETS: usize = STATE_DURATION_BUCKETS_MS.len() + 1;

fn bucket_of(millis: u64) -> usize {
    STATE_DURATION_BUCKETS_MS.partition_point(|&le| le < millis)
}

/// What every driver has published about one state.
#[derive(Debug, Default)]
pub struct StateCounts {
    pub entered: AtomicU64,
    pub succeeded: AtomicU64,
    pub caught: AtomicU64,
    pub failed: AtomicU64,
    /// Exits per duration bucket (see [`STATE_DURATION_BUCKETS_MS`]; the last is `+Inf`).
    pub buckets: [AtomicU64; BUCKETS],
    /// The exits' durations summed, in milliseconds.
    pub sum_ms: AtomicU64,
}

impl StateCounts {
    /// The `q` quantile (0..=1) of the durations, in milliseconds, interpolated within its
    /// bucket as Prometheus' `histogram_quantile` does; `None` before any exit.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        quantile(&counts, q)
    }
}

fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let lo = if i == 0 {
                0
            } else {
                STATE_DURATION_BUCKETS_MS[i - 1]
            };
            let Some(&hi) = STATE_DURATION_BUCKETS_MS.get(i) else {
                return Some(lo as f64);
            };
            let within = (rank - seen as f64) / n as f64;
            return Some(lo as f64 + (hi - lo) as f64 * within);
        }
        seen += n;
    }
    Some(*STATE_DURATION_BUCKETS_MS.last().expect("buckets") as f64)
}

/// Executions counted by every driver: started, succeeded, failed, timed out.
#[derive(Debug, Default)]
pub struct ExecutionCounts(pub [AtomicU64; 4]);

impl ExecutionCounts {
    pub fn add(&self, counts: [u64; 4]) {
        for (atomic, n) in self.0.iter().zip(counts) {
            if n > 0 {
                atomic.fetch_add(n, Relaxed);
            }
        }
    }

    /// Started, succeeded, failed, timed out.
    pub fn get(&self) -> [u64; 4] {
        [0, 1, 2, 3].map(|i| self.0[i].load(Relaxed))
    }
}

/// One state machine's per-state figures, shared by every driver that runs it.
#[derive(Debug)]
pub struct StateFigures {
    pub executions: ExecutionCounts,
    /// State names, indexed by `StateId` (nested states included).
    pub names: Vec<Arc<str>>,
    pub counts: Vec<StateCounts>,
}

impl StateFigures {
    pub fn new(program: &Program) -> Self {
        StateFigures {
            executions: ExecutionCounts::default(),
            names: program.states.iter().map(|s| s.name.clone()).collect(),
            counts: program
                .states
                .iter()
                .map(|_| StateCounts::default())
                .collect(),
        }
    }
}

/// The Prometheus counters of one state.
#[derive(Clone, Debug)]
struct StateSeries {
    entered: Counter,
    /// Indexed like [`StateEnd`]: succeeded, caught, failed.
    exited: [Counter; 3],
}

/// What one driver counted about one state since it last published.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    entered: u64,
    exited: [u64; 3],
    /// Per bucket: exits and the sum of their durations (ms).
    buckets: [(u64, u64); BUCKETS],
    dirty: bool,
}

fn end_index(end: StateEnd) -> usize {
    match end {
        StateEnd::Succeeded => 0,
        StateEnd::Caught => 1,
        StateEnd::Failed => 2,
    }
}

/// One driver's batch of a state machine's per-state metrics; clones share the figures and
/// series and start with nothing pending.
#[derive(Debug)]
pub struct StateMetrics {
    figures: Arc<StateFigures>,
    series: Arc<[StateSeries]>,
    pending: Vec<Pending>,
}

impl Clone for StateMetrics {
    fn clone(&self) -> Self {
        StateMetrics {
            figures: self.figures.clone(),
            series: self.series.clone(),
            pending: vec![Pending::default(); self.pending.len()],
        }
    }
}

impl StateMetrics {
    pub fn new(state_machine: &str, program: &Program) -> Self {
        let figures = Arc::new(StateFigures::new(program));
        let series: Arc<[StateSeries]> = figures
            .names
            .iter()
            .map(|state| {
                let labels = || {
                    [
                        ("state_machine", state_machine.to_owned()),
                        ("state", state.to_string()),
                    ]
                };
                let exited = |status: &'static str| {
                    let [a, b] = labels();
                    metrics::counter!(names::STATE_EXITED, a.0 => a.1, b.0 => b.1, "status" => status)
                };
                let [a, b] = labels();
                let entered = metrics::counter!(names::STATE_ENTERED, a.0 => a.1, b.0 => b.1);
                StateSeries {
                    entered,
                    exited: [exited("succeeded"), exited("caught"), exited("failed")],
                }
            })
            .collect();
        REGISTERED
            .lock()
            .expect("registry lock")
            .push((Arc::from(state_machine), Arc::downgrade(&figures)));
        StateMetrics {
            pending: vec![Pending::default(); figures.names.len()],
            figures,
            series,
        }
    }

    /// The figures the console reads.
    pub fn figures(&self) -> &Arc<StateFigures> {
        &self.figures
    }

    pub fn mark(&mut self, mark: StateMark) {
        match mark {
            StateMark::Entered(state) => {
                let p = &mut self.pending[state as usize];
                p.entered += 1;
                p.dirty = true;
            }
            StateMark::Left { state, end, millis } => {
                let millis = millis.max(0) as u64;
                let p = &mut self.pending[state as usize];
                p.exited[end_index(end)] += 1;
                let b = &mut p.buckets[bucket_of(millis)];
                b.0 += 1;
                b.1 += millis;
                p.dirty = true;
            }
        }
    }

    pub fn flush(&mut self) {
        for (i, p) in self.pending.iter_mut().enumerate() {
            if !std::mem::take(&mut p.dirty) {
                continue;
            }
            let (series, counts) = (&self.series[i], &self.figures.counts[i]);
            if p.entered > 0 {
                series.entered.increment(p.entered);
                counts.entered.fetch_add(p.entered, Relaxed);
            }
            let shared = [&counts.succeeded, &counts.caught, &counts.failed];
            for ((n, counter), atomic) in p.exited.iter().zip(&series.exited).zip(shared) {
                if *n > 0 {
                    counter.increment(*n);
                    atomic.fetch_add(*n, Relaxed);
                }
            }
            let mut sum_ms = 0;
            for ((n, sum), atomic) in p.buckets.iter().zip(&counts.buckets) {
                if *n > 0 {
                    atomic.fetch_add(*n, Relaxed);
                    sum_ms += sum;
                }
            }
            if sum_ms > 0 {
                counts.sum_ms.fetch_add(sum_ms, Relaxed);
            }
            *p = Pending::default();
        }
    }
}

/// Every state machine's figures, for [`render_state_durations`]; dropped ones are skipped.
static REGISTERED: Mutex<Vec<(Arc<str>, Weak<StateFigures>)>> = Mutex::new(Vec::new());

/// Appends `expressway_state_duration_seconds` in the Prometheus text format: one histogram
/// per state of every state machine whose [`StateMetrics`] were made (cumulative buckets,
/// `_sum` and `_count`).
pub fn render_state_durations(out: &mut String) {
    let mut registered = REGISTERED.lock().expect("registry lock");
    registered.retain(|(_, figures)| figures.strong_count() > 0);
    let live: Vec<(Arc<str>, Arc<StateFigures>)> = registered
        .iter()
        .filter_map(|(sm, figures)| Some((sm.clone(), figures.upgrade()?)))
        .collect();
    drop(registered);
    if live.is_empty() {
        return;
    }
    let name = names::STATE_DURATION;
    let _ = writeln!(
        out,
        "# HELP {name} Time from entering a state to leaving it, retries included.\n# TYPE {name} histogram"
    );
    for (sm, figures) in &live {
        for (state, counts) in figures.names.iter().zip(&figures.counts) {
            let labels = format!(
                "state_machine=\"{}\",state=\"{}\"",
                escape(sm),
                escape(state)
            );
            let mut total = 0;
            for (i, bucket) in counts.buckets.iter().enumerate() {
                total += bucket.load(Relaxed);
                let le = match STATE_DURATION_BUCKETS_MS.get(i) {
                    Some(ms) => (*ms as f64 / 1000.0).to_string(),
                    None => "+Inf".to_owned(),
                };
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {total}");
            }
            let sum = counts.sum_ms.load(Relaxed) as f64 / 1000.0;
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
        }
    }
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(300_000), 14);
        assert_eq!(bucket_of(300_001), 15);
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let mut counts = [0u64; BUCKETS];
        assert_eq!(quantile(&counts, 0.5), None);
        counts[0] = 100; // ≤ 1 ms
        assert_eq!(quantile(&counts, 0.5), Some(0.5));
        counts[8] = 100; // 500 ms < d ≤ 1 s
        assert_eq!(quantile(&counts, 0.99), Some(500.0 + 500.0 * 0.98));
        counts[BUCKETS - 1] = 1000; // past the last bound: the last bound
        assert_eq!(quantile(&counts, 0.99), Some(300_000.0));
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn durations_render_as_cumulative_prometheus_histograms_with_escaped_labels() {
        let definition = serde_json::json!({"StartAt": "say \"hi\"", "States": {
            "say \"hi\"": {"Type": "Pass", "End": true}}});
        let program = crate::asl::compile(&definition).expect("valid");
        let mut metrics = StateMetrics::new("render-test", &program);
        for millis in [0, 7] {
            metrics.mark(StateMark::Left {
                state: 0,
                end: StateEnd::Succeeded,
                millis,
            });
        }
        metrics.flush();
        let mut out = String::new();
        render_state_durations(&mut out);
        let labels = r#"state_machine="render-test",state="say \"hi\"""#;
        for line in [
            format!("expressway_state_duration_seconds_bucket{{{labels},le=\"0.001\"}} 1"),
            format!("expressway_state_duration_seconds_bucket{{{labels},le=\"0.01\"}} 2"),
            format!("expressway_state_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
            format!("expressway_state_duration_seconds_sum{{{labels}}} 0.007"),
            format!("expressway_state_duration_seconds_count{{{labels}}} 2"),
        ] {
            assert!(out.contains(&line), "{line} not in\n{out}");
        }
    }
}
