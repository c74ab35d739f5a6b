//! Observability parity: the same state machine started from Kafka, from SQS and from the API
//! moves the same metric families and writes the same execution log shape (the execution
//! driver counts and logs every execution at one call site, whoever started it; this proves
//! it end to end, through the real binary).
//!
//! One daemon (`parity.toml`) has a Kafka source (librdkafka's mock cluster, hosted in this
//! process), an SQS source (moto's server, from the `sqs` group's venv), `[api]`, `[metrics]`
//! and execution logs at `ALL` with execution data, to a file. Four state machines share one
//! definition (a Choice, an `http:invoke` Task to a server in this process, a Pass; a second
//! Task to a server answering 500; a Wait past the definition's `TimeoutSeconds`) under
//! different names: `via-kafka` bound to the topic, `via-sqs` to the queue, `via-api` started
//! with `StartExecution`, `via-api-sync` with `StartSyncExecution`. Each gets the same three
//! events, one path after the other: one that succeeds, one whose Task fails, one that times
//! out.
//!
//! Metrics are compared as what each path *moved*: `/metrics` is read before and after each
//! path's events, and every series whose value changed is kept, its `state_machine` label
//! dropped, with its change (a histogram by its `_count`; its buckets and sum depend on
//! timing). The ingress's own series (the Kafka and SQS sections of `docs/metrics.md`, and the
//! shards' gauges) differ by design and are left out. Logs are compared by shape: per
//! execution, the sequence of event types, each with the set of JSON keys on its line (ids,
//! ARNs, timestamps and data differ).

use crate::daemon::{free_port, metrics_text, Daemon};
use crate::harness::{group, verdict, Group, Problem, Verdict};
use crate::integrations::{reply, serve};
use crate::sqs::{wait_for, Moto};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Each path's name and the state machine it starts.
const PATHS: [(&str, &str); 4] = [
    ("kafka", "via-kafka"),
    ("sqs", "via-sqs"),
    ("api StartExecution", "via-api"),
    ("api StartSyncExecution", "via-api-sync"),
];

/// The events every path gets: one succeeds, one fails (its Task gets a 500), one times out.
const EVENTS: [&str; 3] = [
    r#"{"id": "ok"}"#,
    r#"{"id": "fail", "fail": true}"#,
    r#"{"id": "slow", "slow": true}"#,
];

/// Execution outcomes the events end in, as the logs' last event types.
const OUTCOMES: [&str; 3] = ["ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut"];

pub fn group() -> Group<Parity> {
    group!(
        "parity",
        Parity::new,
        [
            every_path_ends_one_execution_of_each_status,
            metrics_move_the_same_series_by_the_same_amounts_on_every_path,
            every_execution_and_task_family_of_the_spec_moves_on_every_path,
            every_state_machine_has_the_same_series_registered,
            execution_logs_hold_every_execution_of_every_path,
            execution_logs_have_the_same_event_types_and_keys_on_every_path,
        ]
    )
    .skipped_by("EXPRESSWAY_SKIP_PARITY")
    .skipped_by("EXPRESSWAY_SKIP_KAFKA")
    .skipped_by("EXPRESSWAY_SKIP_SQS")
    .skipped_by("EXPRESSWAY_SKIP_API")
}

/// The cluster, moto and its queue, the HTTP servers, the config; and the run, once.
pub struct Parity {
    dir: PathBuf,
    config: PathBuf,
    metrics_port: u16,
    api_port: u16,
    queue_url: String,
    producer: ThreadedProducer<DefaultProducerContext>,
    run: Option<Result<Run, String>>,
    // Last, so that the clients above (and the daemon, stopped by the run) go first.
    _cluster: MockCluster<'static, DefaultProducerContext>,
    moto: Moto,
}

/// What one run showed.
struct Run {
    /// Per path (in [`PATHS`] order), what its events moved.
    moved: Vec<Moved>,
    /// Per path, the series of its state machine in `/metrics` at the end (labels as in
    /// [`Moved::series`], values left out).
    registered: Vec<BTreeSet<String>>,
    /// `StartSyncExecution`'s answers' `status`, per event.
    sync_statuses: Vec<String>,
    /// The execution log's shapes, by state machine.
    logs: BTreeMap<String, Executions>,
    /// Log lines that are not JSON or name no execution of a known state machine.
    bad_lines: Vec<String>,
    /// What the daemon's stderr said (for failure messages).
    daemon_log: String,
}

/// Series whose value a path's events changed.
#[derive(Default)]
struct Moved {
    /// `family{labels}` without `state_machine` (and `le`) → its change; a histogram by its
    /// `_count`.
    series: BTreeMap<String, f64>,
    /// Series of another state machine that moved meanwhile: cross-talk.
    foreign: Vec<String>,
    /// The ingress's own series that moved (not compared; shown in failure messages).
    ingress: BTreeSet<String>,
}

/// A state machine's executions in the log, each as its lines' shapes, by outcome (the last
/// event's type).
type Executions = BTreeMap<String, Vec<Vec<String>>>;

impl Parity {
    fn new() -> Result<Self, Problem> {
        let dir = std::env::temp_dir().join(format!("expressway-parity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let moto = Moto::start(&dir)?;
        let queue_url = moto.create_queue("parity-in", "{}")?;
        let cluster = MockCluster::new(1).map_err(|e| format!("mock cluster: {e}"))?;
        let brokers = cluster.bootstrap_servers();
        cluster
            .create_topic("parity-in", 2, 1)
            .map_err(|e| format!("topic parity-in: {e}"))?;
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "5")
            .create()
            .map_err(|e| format!("producer: {e}"))?;
        // The servers live as long as the test process (their threads are detached).
        let (ok, _) = serve(vec![reply(200, json!({"stored": true}))]);
        let (broken, _) = serve(vec![reply(500, json!({"message": "storage down"}))]);
        let call = |url: &str| {
            json!({"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                   "Parameters": {"ApiEndpoint": format!("{url}/readings"), "Method": "POST",
                                  "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:123456789012:connection/readings/1"},
                                  "RequestBody": {"id.$": "$.id"}}})
        };
        let mut ok_call = call(&ok);
        ok_call["ResultSelector"] = json!({"status.$": "$.StatusCode"});
        ok_call["ResultPath"] = json!("$.call");
        ok_call["Next"] = json!("Done");
        let mut broken_call = call(&broken);
        broken_call["End"] = json!(true);
        let definition = json!({
            "Comment": "The same definition under four names (tests/support/parity.rs)",
            "TimeoutSeconds": 3,
            "StartAt": "Route",
            "States": {
                "Route": {"Type": "Choice", "Choices": [
                    {"Variable": "$.fail", "IsPresent": true, "Next": "CallBroken"},
                    {"Variable": "$.slow", "IsPresent": true, "Next": "Hold"}],
                    "Default": "Call"},
                "Call": ok_call,
                "CallBroken": broken_call,
                "Hold": {"Type": "Wait", "Seconds": 30, "Next": "Done"},
                "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id", "status.$": "$.call.status"}, "End": true}
            }
        });
        std::fs::write(dir.join("parity.asl.json"), definition.to_string())
            .map_err(|e| format!("definition: {e}"))?;
        let (metrics_port, api_port) = (free_port(), free_port());
        let state_machines: String = PATHS
            .iter()
            .map(|(_, sm)| {
                format!("[[state_machines]]\nname = \"{sm}\"\ndefinition = \"parity.asl.json\"\n")
            })
            .collect();
        let config = dir.join("parity.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[kafka]
brokers = "{brokers}"
group_id = "parity"
# Several instances on one host share this file; the mock cluster keeps a static member's
# partitions until its session times out even when it rejoins: dynamic membership.
static_membership = false
[kafka.properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
{state_machines}
[[sources]]
name = "kafka-in"
type = "kafka"
topics = ["parity-in"]
state_machine = "via-kafka"
[[sources]]
name = "sqs-in"
type = "sqs"
queue_url = "{queue_url}"
state_machine = "via-sqs"
wait_time_secs = 1
[workers]
shards = 2
commit_interval_ms = 200
shutdown_grace_secs = 10
[logs]
level = "ALL"
include_execution_data = true
destination = "executions.log"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[api]
listen = "127.0.0.1:{api_port}"
[integrations.sqs]
access_key_id = "testing"
secret_access_key = "testing"
[[integrations.http.connections]]
arn = "arn:aws:events:us-east-1:123456789012:connection/readings/1"
url_prefix = "{ok}/readings"
[[integrations.http.connections]]
arn = "arn:aws:events:us-east-1:123456789012:connection/readings/1"
url_prefix = "{broken}/readings"
"#
            ),
        )
        .map_err(|e| format!("config: {e}"))?;
        Ok(Parity {
            dir,
            config,
            metrics_port,
            api_port,
            queue_url,
            producer,
            run: None,
            _cluster: cluster,
            moto,
        })
    }

    /// The run, once: every path's events, then SIGTERM and the log read back.
    fn run(&mut self) -> Result<&Run, Problem> {
        if self.run.is_none() {
            let mut daemon = Daemon::start(&self.config);
            let run = self
                .run_with(&mut daemon)
                .map_err(|why| format!("{why}\ndaemon log:\n{}", tail(&daemon.log(), 40)));
            self.run = Some(run);
        }
        match self.run.as_ref().expect("just run") {
            Ok(run) => Ok(run),
            Err(why) => Err(format!("the run: {why}").into()),
        }
    }

    fn run_with(&mut self, daemon: &mut Daemon) -> Result<Run, String> {
        let up = wait_for(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", self.api_port)).is_ok()
                && metrics_text(self.metrics_port).contains("expressway_")
        });
        if let Some(status) = daemon.exited() {
            return Err(format!("the daemon exited with {status}"));
        }
        if !up {
            return Err("the API and /metrics are not up after 30 s".into());
        }
        let mut moved = Vec::new();
        let mut sync_statuses = Vec::new();
        let mut before = Snapshot::take(self.metrics_port);
        for (_, sm) in PATHS {
            // `StartExecution`'s executions, to ask DescribeExecution about.
            let mut arns = Vec::new();
            match sm {
                "via-kafka" => {
                    for event in EVENTS {
                        self.producer
                            .send(BaseRecord::<(), _>::to("parity-in").payload(event))
                            .map_err(|(e, _)| format!("producing: {e}"))?;
                    }
                    self.producer
                        .flush(Duration::from_secs(10))
                        .map_err(|e| format!("flushing the producer: {e}"))?;
                }
                "via-sqs" => {
                    for event in EVENTS {
                        self.moto.send_body(&self.queue_url, event)?;
                    }
                }
                "via-api" => {
                    for event in EVENTS {
                        let answer = api(self.api_port, "StartExecution", &start(sm, event))?;
                        arns.push(
                            answer["executionArn"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                }
                _ => {
                    for event in EVENTS {
                        let answer = api(self.api_port, "StartSyncExecution", &start(sm, event))?;
                        let status = answer["status"].as_str().unwrap_or_default();
                        sync_statuses.push(status.to_string());
                    }
                }
            }
            // Each path's events end before the next path's start: what moved meanwhile is
            // theirs. Whether they ended is read from the path itself where it can say (the
            // metrics under test would not end the wait on a path that does not count): the
            // API's executions are no longer RUNNING, SQS deleted the messages (after their
            // executions ended and were counted); the Kafka path has only the metrics. A
            // path that does not end is not an error here: the checks show what it moved.
            let mut after = Snapshot::take(self.metrics_port);
            wait_for(Duration::from_secs(60), || {
                after = Snapshot::take(self.metrics_port);
                let by_path = match sm {
                    "via-sqs" => {
                        after.value("expressway_sqs_deletes_total{source=\"sqs-in\",result=\"ok\"}")
                            >= EVENTS.len() as f64
                    }
                    "via-api" => arns.iter().all(|arn| {
                        api(
                            self.api_port,
                            "DescribeExecution",
                            &json!({"executionArn": arn}),
                        )
                        .is_ok_and(|d| d["status"] != "RUNNING")
                    }),
                    "via-api-sync" => true,
                    _ => false,
                };
                by_path || after.ended(sm) >= EVENTS.len() as f64
            });
            moved.push(after.moved_since(&before, sm));
            before = after;
        }
        let registered = PATHS.iter().map(|(_, sm)| before.registered(sm)).collect();
        let _ = daemon.sigterm();
        let status = daemon.exit_within(Duration::from_secs(60));
        if !status.is_some_and(|s| s.success()) {
            return Err(format!("after SIGTERM: {status:?}"));
        }
        let text = std::fs::read_to_string(self.dir.join("executions.log"))
            .map_err(|e| format!("the execution log: {e}"))?;
        let (logs, bad_lines) = log_shapes(&text);
        Ok(Run {
            moved,
            registered,
            sync_statuses,
            logs,
            bad_lines,
            daemon_log: daemon.log(),
        })
    }
}

impl Drop for Parity {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `StartExecution`'s body for `sm` with `input`.
fn start(sm: &str, input: &str) -> Value {
    json!({
        "stateMachineArn": format!("arn:aws:states:us-east-1:123456789012:stateMachine:{sm}"),
        "input": input
    })
}

/// Calls an API operation (no auth: the API listens on loopback); its JSON answer.
fn api(port: u16, operation: &str, body: &Value) -> Result<Value, String> {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("{operation}: connecting: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: AWSStepFunctions.{operation}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    s.write_all(request.as_bytes())
        .and_then(|()| s.read_to_string(&mut answer))
        .map_err(|e| format!("{operation}: {e}"))?;
    let (head, content) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{operation} {body}: {answer}"));
    }
    serde_json::from_str(content).map_err(|e| format!("{operation}: {e}: {content}"))
}

/// One reading of `/metrics`.
struct Snapshot {
    /// Every sample, by its series as written.
    samples: BTreeMap<String, f64>,
    /// Families declared `# TYPE … histogram`.
    histograms: BTreeSet<String>,
}

impl Snapshot {
    fn take(port: u16) -> Snapshot {
        let text = metrics_text(port);
        let mut samples = BTreeMap::new();
        let mut histograms = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                if let Some(family) = rest.strip_suffix(" histogram") {
                    histograms.insert(family.to_string());
                }
            } else if line.starts_with("expressway_") {
                if let Some((series, value)) = line.rsplit_once(' ') {
                    if let Ok(v) = value.parse::<f64>() {
                        samples.insert(series.to_string(), v);
                    }
                }
            }
        }
        Snapshot {
            samples,
            histograms,
        }
    }

    /// A sample's value, 0 if absent.
    fn value(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// Executions of `sm` that ended, whatever their status.
    fn ended(&self, sm: &str) -> f64 {
        ["succeeded", "failed", "timed_out"]
            .iter()
            .map(|status| {
                self.value(&format!(
                    "expressway_executions_{status}_total{{state_machine=\"{sm}\"}}"
                ))
            })
            .sum()
    }

    /// What changed since `before`, seen from `sm`'s path.
    fn moved_since(&self, before: &Snapshot, sm: &str) -> Moved {
        let ingress = ingress_families();
        let mut moved = Moved::default();
        for (series, value) in &self.samples {
            let delta = value - before.samples.get(series).copied().unwrap_or(0.0);
            if delta == 0.0 {
                continue;
            }
            let Some(parsed) = self.classify(series) else {
                continue;
            };
            match parsed.state_machine.as_deref() {
                Some(other) if other != sm => moved.foreign.push(format!("{series} +{delta}")),
                _ if ingress.contains(parsed.family.as_str())
                    || parsed.labels.iter().any(|(k, _)| k == "shard") =>
                {
                    moved.ingress.insert(parsed.key());
                }
                _ => {
                    moved.series.insert(parsed.key(), delta);
                }
            }
        }
        moved
    }

    /// The series of `sm` present now, by key (zeros included).
    fn registered(&self, sm: &str) -> BTreeSet<String> {
        self.samples
            .keys()
            .filter_map(|series| self.classify(series))
            .filter(|p| p.state_machine.as_deref() == Some(sm))
            .map(|p| p.key())
            .collect()
    }

    /// A sample's family and labels; `None` for a histogram's buckets and sum (its `_count`
    /// stands for it).
    fn classify(&self, series: &str) -> Option<Series> {
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)),
            None => (series, Vec::new()),
        };
        let histogram = |suffix| {
            name.strip_suffix(suffix)
                .filter(|f| self.histograms.contains(*f))
        };
        if histogram("_bucket").or_else(|| histogram("_sum")).is_some() {
            return None;
        }
        let family = histogram("_count").unwrap_or(name).to_string();
        let state_machine = labels
            .iter()
            .find(|(k, _)| k == "state_machine")
            .map(|(_, v)| v.clone());
        let labels = labels
            .into_iter()
            .filter(|(k, _)| k != "state_machine" && k != "le")
            .collect();
        Some(Series {
            family,
            state_machine,
            labels,
        })
    }
}

struct Series {
    family: String,
    state_machine: Option<String>,
    /// Sorted, without `state_machine` and `le`.
    labels: Vec<(String, String)>,
}

impl Series {
    /// `family{k="v",…}` (labels sorted), or the family alone.
    fn key(&self) -> String {
        if self.labels.is_empty() {
            return self.family.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{}{{{}}}", self.family, labels.join(","))
    }
}

/// `k="v",k2="v2"` (values without quotes or commas, as ours are), sorted by key.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = text
        .split("\",")
        .filter_map(|pair| {
            let (k, v) = pair.split_once("=\"")?;
            Some((k.to_string(), v.trim_end_matches('"').to_string()))
        })
        .collect();
    labels.sort();
    labels
}

/// The families `docs/metrics.md` lists in the sections titled `title_prefix…`, with their
/// labels column.
fn spec_families(title_prefix: &str) -> Vec<(String, String)> {
    let spec = include_str!("../../docs/metrics.md");
    let mut inside = false;
    let mut out = Vec::new();
    for line in spec.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            inside = title.starts_with(title_prefix);
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `name` | type | labels | emitted |
        if inside && cells.len() == 6 {
            if let Some(name) = cells[1]
                .strip_prefix("`expressway_")
                .and_then(|n| n.strip_suffix('`'))
            {
                out.push((format!("expressway_{name}"), cells[3].to_string()));
            }
        }
    }
    out
}

/// The ingress's own families: the Kafka and SQS sections of the spec.
fn ingress_families() -> BTreeSet<String> {
    ["Kafka", "SQS"]
        .iter()
        .flat_map(|section| spec_families(section))
        .map(|(name, _)| name)
        .collect()
}

/// The execution log's lines as shapes, per state machine and execution; and the lines that
/// are not JSON or name no known state machine.
fn log_shapes(text: &str) -> (BTreeMap<String, Executions>, Vec<String>) {
    let known: Vec<&str> = PATHS.iter().map(|(_, sm)| *sm).collect();
    let mut bad = Vec::new();
    // Lines by execution ARN, in order; the executions in order of their first line.
    let mut executions: Vec<(String, Vec<Value>)> = Vec::new();
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            bad.push(format!("not JSON: {line}"));
            continue;
        };
        let arn = event["execution_arn"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // arn:aws:states:REGION:ACCOUNT:express:STATE_MACHINE:NAME[:…]
        let sm = arn.split(':').nth(6).unwrap_or_default();
        if !known.contains(&sm) {
            bad.push(format!("no state machine of this run: {line}"));
            continue;
        }
        match executions.iter_mut().find(|(a, _)| *a == arn) {
            Some((_, events)) => events.push(event),
            None => executions.push((arn, vec![event])),
        }
    }
    let mut shapes: BTreeMap<String, Executions> = BTreeMap::new();
    for (arn, events) in executions {
        let sm = arn.split(':').nth(6).unwrap_or_default().to_string();
        let outcome = events
            .last()
            .and_then(|e| e["type"].as_str())
            .unwrap_or_default()
            .to_string();
        let lines = events.iter().map(line_shape).collect();
        shapes
            .entry(sm)
            .or_default()
            .entry(outcome)
            .or_default()
            .push(lines);
    }
    (shapes, bad)
}

/// `Type: key key.sub …`: a line's event type and the paths of its JSON keys, sorted.
fn line_shape(event: &Value) -> String {
    fn keys(value: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Some(object) = value.as_object() {
            for (k, v) in object {
                let path = format!("{prefix}{k}");
                keys(v, &format!("{path}."), out);
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    keys(event, "", &mut out);
    out.sort();
    format!(
        "{}: {}",
        event["type"].as_str().unwrap_or("(no type)"),
        out.join(" ")
    )
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `series +change`, one a line.
fn show(map: &BTreeMap<String, f64>) -> String {
    map.iter()
        .map(|(k, v)| format!("      {k} +{v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How `got` differs from `want`: entries missing, extra, or with another value.
fn map_difference(want: &BTreeMap<String, f64>, got: &BTreeMap<String, f64>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => out.push(format!("missing {k} (+{v} on the first path)")),
            Some(g) if g != v => out.push(format!("{k} +{g} (+{v} on the first path)")),
            Some(_) => {}
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            out.push(format!("extra {k} +{v}"));
        }
    }
    out
}

fn set_difference(want: &BTreeSet<String>, got: &BTreeSet<String>) -> Vec<String> {
    let missing = want.difference(got).map(|k| format!("missing {k}"));
    let extra = got.difference(want).map(|k| format!("extra {k}"));
    missing.chain(extra).collect()
}

fn every_path_ends_one_execution_of_each_status(p: &mut Parity) -> Verdict {
    let run = p.run()?;
    let mut problems = Vec::new();
    for ((path, _), moved) in PATHS.iter().zip(&run.moved) {
        let count = |key: &str| moved.series.get(key).copied().unwrap_or(0.0);
        let got = [
            count("expressway_executions_started_total"),
            count("expressway_executions_succeeded_total"),
            count("expressway_executions_failed_total"),
            count("expressway_executions_timed_out_total"),
        ];
        if got != [3.0, 1.0, 1.0, 1.0] {
            problems.push(format!(
                "{path}: started, succeeded, failed, timed out {got:?}, not [3, 1, 1, 1]"
            ));
        }
    }
    if run.sync_statuses != ["SUCCEEDED", "FAILED", "TIMED_OUT"] {
        problems.push(format!(
            "StartSyncExecution answered {:?}",
            run.sync_statuses
        ));
    }
    verdict(problems.is_empty(), || problems.join("\n    "))
}

fn metrics_move_the_same_series_by_the_same_amounts_on_every_path(p: &mut Parity) -> Verdict {
    let run = p.run()?;
    let (first_path, _) = PATHS[0];
    let first = &run.moved[0].series;
    let mut message = String::new();
    let mut same = !first.is_empty();
    for ((path, sm), moved) in PATHS.iter().zip(&run.moved) {
        let difference = map_difference(first, &moved.series);
        if !difference.is_empty() || !moved.foreign.is_empty() {
            same = false;
            let _ = write!(
                message,
                "\n    {path} ({sm}) differs from {first_path}: {}",
                difference.join("; ")
            );
            if !moved.foreign.is_empty() {
                let _ = write!(
                    message,
                    "; other state machines' series moved: {}",
                    moved.foreign.join(", ")
                );
            }
        }
    }
    verdict(same, || {
        let mut all = String::from("series moved by each path:");
        for ((path, sm), moved) in PATHS.iter().zip(&run.moved) {
            let ingress: Vec<&str> = moved.ingress.iter().map(String::as_str).collect();
            let _ = write!(
                all,
                "\n  {path} ({sm}):\n{}\n      (ingress, not compared: {})",
                show(&moved.series),
                ingress.join(", ")
            );
        }
        format!("{}\n  {all}", message.trim_start())
    })
}

/// Not vacuous: the families compared above include every family of the spec's Executions
/// and Tasks sections that is labelled by state machine or integration.
fn every_execution_and_task_family_of_the_spec_moves_on_every_path(p: &mut Parity) -> Verdict {
    let run = p.run()?;
    let wanted: BTreeSet<String> = ["Executions", "Tasks"]
        .iter()
        .flat_map(|section| spec_families(section))
        .filter(|(_, labels)| labels.contains("state_machine") || labels.contains("integration"))
        .map(|(name, _)| name)
        .collect();
    let mut problems = Vec::new();
    if wanted.len() < 9 {
        problems.push(format!(
            "docs/metrics.md's Executions and Tasks tables list only {wanted:?}"
        ));
    }
    for ((path, _), moved) in PATHS.iter().zip(&run.moved) {
        let families: BTreeSet<String> = moved
            .series
            .keys()
            .map(|k| k.split('{').next().unwrap_or(k).to_string())
            .collect();
        let missing: Vec<&String> = wanted.difference(&families).collect();
        if !missing.is_empty() {
            problems.push(format!("{path} moved no series of {missing:?}"));
        }
        let statuses = ["succeeded", "failed", "timed_out"]
            .map(|s| format!("expressway_execution_duration_seconds{{status=\"{s}\"}}"));
        let outcomes = ["ok", "error"].map(|o| {
            format!("expressway_task_calls_total{{integration=\"http\",outcome=\"{o}\"}}")
        });
        for key in statuses.iter().chain(&outcomes) {
            if moved.series.get(key) != Some(&1.0) {
                problems.push(format!(
                    "{path}: {key} moved by {:?}, not 1",
                    moved.series.get(key)
                ));
            }
        }
    }
    verdict(problems.is_empty(), || problems.join("\n    "))
}

fn every_state_machine_has_the_same_series_registered(p: &mut Parity) -> Verdict {
    let run = p.run()?;
    let first = &run.registered[0];
    let mut problems = Vec::new();
    if first.is_empty() {
        problems.push(format!("{} has no series at all", PATHS[0].1));
    }
    for ((path, sm), registered) in PATHS.iter().zip(&run.registered) {
        let difference = set_difference(first, registered);
        if !difference.is_empty() {
            problems.push(format!("{path} ({sm}): {}", difference.join("; ")));
        }
    }
    verdict(problems.is_empty(), || problems.join("\n    "))
}

fn execution_logs_hold_every_execution_of_every_path(p: &mut Parity) -> Verdict {
    let run = p.run()?;
    let mut problems: Vec<String> = run.bad_lines.iter().take(5).cloned().collect();
    for (path, sm) in PATHS {
        let logged = run.logs.get(sm);
        let outcomes: Vec<(&str, usize)> = OUTCOMES
            .iter()
            .map(|o| (*o, logged.and_then(|l| l.get(*o)).map_or(0, Vec::len)))
            .collect();
        let total: usize = logged.map_or(0, |l| l.values().map(Vec::len).sum());
        if outcomes.iter().any(|(_, n)| *n != 1) || total != OUTCOMES.len() {
            problems.push(format!(
                "{path} ({sm}): {total} executions logged, by outcome {outcomes:?}"
            ));
        }
    }
    verdict(problems.is_empty(), || {
        format!(
            "{}\n    daemon log:\n{}",
            problems.join("\n    "),
            tail(&run.daemon_log, 20)
        )
    })
}

fn execution_logs_have_the_same_event_types_and_keys_on_every_path(p: &mut Parity) -> Verdict {
    let run = p.run()?;
    let (first_path, first_sm) = PATHS[0];
    let empty = Executions::new();
    let first = run.logs.get(first_sm).unwrap_or(&empty);
    let mut problems = Vec::new();
    if first.values().flatten().all(Vec::is_empty) {
        problems.push(format!("{first_path} ({first_sm}) logged nothing"));
    }
    for (path, sm) in &PATHS[1..] {
        let logged = run.logs.get(*sm).unwrap_or(&empty);
        for outcome in OUTCOMES {
            let want = first.get(outcome).and_then(|e| e.first());
            let got = logged.get(outcome).and_then(|e| e.first());
            if want != got {
                problems.push(format!(
                    "{path} ({sm}), the execution ending in {outcome}:\n{}",
                    shape_difference(want, got)
                ));
            }
        }
    }
    verdict(problems.is_empty(), || {
        format!("compared with {first_path}: {}", problems.join("\n    "))
    })
}

/// Line by line, where two executions' shapes differ.
fn shape_difference(want: Option<&Vec<String>>, got: Option<&Vec<String>>) -> String {
    let (Some(want), Some(got)) = (want, got) else {
        return format!("      one is not logged: {want:?} / {got:?}");
    };
    let mut out = Vec::new();
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        if w != g {
            out.push(format!(
                "      line {}: {}\n      {:>width$}  not {}",
                i + 1,
                g.map_or("(none)", String::as_str),
                "",
                w.map_or("(none)", String::as_str),
                width = (i + 1).to_string().len() + 5
            ));
        }
    }
    out.join("\n")
}
