//! The daemon against a real Kafka protocol peer: librdkafka's mock cluster hosted in this
//! test process, the `expressway` binary in another. Proves the at-least-once contract
//! (docs/kafka-ack-contract.md) end to end: a `kill -9` mid-stream loses nothing, poison
//! events land in the dead-letter topic with their cause, SIGTERM drains and exits 0, and
//! `/metrics` counts what was sent.
//!
//! The checks share one cluster and one daemon (`daemon.toml`, consumer group `it`), in the
//! order below; each brings about what it needs ([`Kafka::load`], [`Kafka::daemon`],
//! [`Kafka::settled`]), so that any one of them also runs alone.

use crate::daemon::{free_port, metric, metrics_text, Daemon};
use crate::delivery::Stream;
use crate::harness::{group, verdict, Group, Problem, Verdict};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events of the first load, ids `0..EVENTS`.
const EVENTS: u64 = 20_000;
const PARTITIONS: i32 = 4;

pub fn group() -> Group<Kafka> {
    group!(
        "kafka",
        Kafka::new,
        [
            kill_9_mid_stream_loses_nothing,
            committed_offset_never_passes_a_running_execution,
            second_instance_joining_mid_stream_loses_nothing,
            poison_events_reach_the_dead_letter_topic_with_error_and_cause,
            metrics_count_dead_letters_events_and_lag,
            sigterm_finishes_executions_in_flight_and_exits_0,
            tasks_call_a_lambda_function_and_produce_to_a_topic,
            exactly_once_source_writes_each_result_and_dead_letter_once,
            probes_answer_healthz_and_readyz_once_partitions_are_assigned,
            a_sigterm_while_the_daemon_starts_is_a_clean_shutdown,
            brokers_gone_make_the_daemon_unready_and_each_error_is_written_once_per_interval,
        ]
    )
    .skipped_by("EXPRESSWAY_SKIP_KAFKA")
}

/// The mock cluster with its topics, a producer, and the daemon's configs.
pub struct Kafka {
    daemon: Option<Daemon>,
    producer: ThreadedProducer<DefaultProducerContext>,
    brokers: String,
    dir: PathBuf,
    config: PathBuf,
    second_config: PathBuf,
    metrics_port: u16,
    /// Ids `0..produced` were sent to `in`; 0 until [`Kafka::load`].
    produced: u64,
    // Last, so that it outlives the clients above when the fixture drops.
    _cluster: MockCluster<'static, DefaultProducerContext>,
}

impl Kafka {
    fn new() -> Result<Self, Problem> {
        let cluster = MockCluster::new(1).map_err(|e| format!("mock cluster: {e}"))?;
        let brokers = cluster.bootstrap_servers();
        for t in [
            "in",
            "results",
            "dlq",
            "task-in",
            "task-results",
            "task-out",
            "eo-in",
            "eo-out",
            "eo-dlq",
        ] {
            cluster
                .create_topic(t, PARTITIONS, 1)
                .map_err(|e| format!("topic {t}: {e}"))?;
        }
        let dir = std::env::temp_dir().join(format!("expressway-kafka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        std::fs::write(
            dir.join("sm.asl.json"),
            json!({"StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "IsPresent": true, "Next": "Boom"}], "Default": "Hold"},
                "Hold": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
                "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": true},
                "Boom": {"Type": "Fail", "Error": "Rejected", "Cause": "asked to fail"}}})
            .to_string(),
        )
        .map_err(|e| format!("definition: {e}"))?;
        let metrics_port = free_port();
        let write_config = |name: &str, port: u16| {
            let path = dir.join(name);
            std::fs::write(
                &path,
                format!(
                    r#"
[kafka]
brokers = "{brokers}"
group_id = "it"
# Several instances on one host share this file; the mock cluster keeps a static member's
# partitions until its session times out even when it rejoins: dynamic membership.
static_membership = false
[kafka.properties]
# librdkafka's mock cluster evicts a departed member only at its session timeout (it keeps
# a leaver, and a killed instance, in the group until then): keep that short.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
[[state_machines]]
name = "it"
definition = "sm.asl.json"
[[sources]]
name = "in"
type = "kafka"
topics = ["in"]
state_machine = "it"
results_topic = "results"
dead_letter_topic = "dlq"
[workers]
shards = 2
commit_interval_ms = 200
shutdown_grace_secs = 10
[logs]
level = "OFF"
[metrics]
listen = "127.0.0.1:{port}"
"#
                ),
            )
            .expect("config");
            path
        };
        let config = write_config("daemon.toml", metrics_port);
        let second_config = write_config("second.toml", free_port());
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "50")
            .set("batch.num.messages", "10000")
            .create()
            .map_err(|e| format!("producer: {e}"))?;
        Ok(Kafka {
            daemon: None,
            producer,
            brokers,
            dir,
            config,
            second_config,
            metrics_port,
            produced: 0,
            _cluster: cluster,
        })
    }

    /// The first load, once: ids `0..EVENTS`, then three poison events.
    fn load(&mut self) {
        if self.produced > 0 {
            return;
        }
        self.produce(0..EVENTS);
        self.produce_poison();
    }

    /// One event of each kind that cannot run: each ends as a dead letter.
    fn produce_poison(&self) {
        for poison in [
            // Not JSON, and not UTF-8 either: its dead letter carries it as base64.
            NOT_UTF8_NOT_JSON.to_vec(),
            json!({"id": "f", "fail": true}).to_string().into_bytes(),
            // Valid JSON over the 256 KiB Express payload limit.
            json!({"id": "big", "pad": "x".repeat(300 * 1024)})
                .to_string()
                .into_bytes(),
        ] {
            let _ = self
                .producer
                .send(BaseRecord::<(), _>::to("in").payload(&poison[..]));
        }
        self.flush(30);
    }

    /// Sends `{"id": id, "wait": …}` keyed by id for each id.
    fn produce(&mut self, ids: std::ops::Range<u64>) {
        self.produced = self.produced.max(ids.end);
        for id in ids {
            // Every 100th event waits a second: executions finish out of offset order.
            let wait = u64::from(id % 100 == 0);
            let value = json!({"id": id, "wait": wait}).to_string();
            let key = id.to_string();
            while self
                .producer
                .send(BaseRecord::to("in").key(&key).payload(&value))
                .is_err()
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn flush(&self, secs: u64) {
        self.producer
            .flush(Duration::from_secs(secs))
            .expect("produced");
    }

    /// The daemon of `daemon.toml`, started if it is not running.
    fn daemon(&mut self) -> &mut Daemon {
        let config = &self.config;
        self.daemon.get_or_insert_with(|| Daemon::start(config))
    }

    /// A client of group `it` that reads its committed offsets (it never joins the group).
    fn watcher(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "it")
            .create()
            .expect("offset watcher")
    }

    /// The first load sent, the daemon running, and group `it` caught up: it committed every
    /// offset of `in`, so all that was sent has its result or dead letter.
    fn settled(&mut self) -> Result<(), Problem> {
        self.load();
        self.daemon();
        let watcher = self.watcher();
        let started = Instant::now();
        loop {
            let behind: Vec<String> = (0..PARTITIONS)
                .filter_map(|p| {
                    let end = watcher
                        .fetch_watermarks("in", p, Duration::from_secs(5))
                        .map_or(i64::MAX, |(_, high)| high);
                    let committed = committed(&watcher, p);
                    (committed < end).then(|| format!("partition {p} at {committed} of {end}"))
                })
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(
                    format!("group it still behind after 120 s: {}", behind.join(", ")).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The offset group `it` committed on partition `partition` of `in`, -1 if none.
fn committed(watcher: &BaseConsumer, partition: i32) -> i64 {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition("in", partition);
    let Ok(list) = watcher.committed_offsets(tpl, Duration::from_secs(5)) else {
        return -1;
    };
    list.find_partition("in", partition)
        .and_then(|e| e.offset().to_raw())
        .unwrap_or(-1)
}

/// Reads a topic from the beginning until `done` says enough or `timeout` passes.
fn read_topic(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&Value) -> bool,
) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}-{}", fastrand::u64(..)))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let value: Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null);
            if done(&value) {
                return true;
            }
        }
    }
    false
}

/// Reads `results` until every id of `ids` is there or `timeout` passes; the ids seen.
fn results_with(brokers: &str, ids: std::ops::Range<u64>, timeout: Duration) -> HashSet<u64> {
    let mut seen = HashSet::new();
    read_topic(brokers, "results", timeout, |v| {
        if let Some(id) = v["id"].as_u64().filter(|id| ids.contains(id)) {
            seen.insert(id);
        }
        seen.len() as u64 == ids.end - ids.start
    });
    seen
}

/// The daemon is `kill -9`ed a third of the way through the first load and restarted: every
/// event still gets its result.
fn kill_9_mid_stream_loses_nothing(k: &mut Kafka) -> Verdict {
    k.load();
    k.daemon();
    let mut seen = HashSet::new();
    read_topic(&k.brokers, "results", Duration::from_secs(60), |v| {
        if let Some(id) = v["id"].as_u64() {
            seen.insert(id);
        }
        seen.len() as u64 >= EVENTS / 3
    });
    if let Some(daemon) = k.daemon.take() {
        daemon.kill_9(); // no chance to commit
    }
    k.daemon();
    let seen = results_with(&k.brokers, 0..EVENTS, Duration::from_secs(120));
    verdict(seen.len() as u64 == EVENTS, || {
        format!("{} of {EVENTS} ids in the results topic", seen.len())
    })
}

/// Out-of-order completion: a slow event then fast ones on partition 0; the group's committed
/// offset must stay at the slow one until it finishes.
fn committed_offset_never_passes_a_running_execution(k: &mut Kafka) -> Verdict {
    k.settled()?;
    let watcher = k.watcher();
    let (_, slow_offset) = watcher
        .fetch_watermarks("in", 0, Duration::from_secs(5))
        .map_err(|e| format!("watermarks: {e}"))?;
    let send_to_0 = |value: String| {
        while k
            .producer
            .send(BaseRecord::<(), _>::to("in").partition(0).payload(&value))
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send_to_0(json!({"id": "slow", "wait": 4}).to_string());
    for i in 0..20 {
        send_to_0(json!({"id": format!("fast-{i}"), "wait": 0}).to_string());
    }
    k.flush(10);
    std::thread::sleep(Duration::from_millis(2500));
    let while_slow = committed(&watcher, 0);
    std::thread::sleep(Duration::from_millis(4000));
    let after = committed(&watcher, 0);
    verdict(
        while_slow <= slow_offset && after >= slow_offset + 21,
        || {
            format!(
                "slow event at {slow_offset}: committed {while_slow} while it ran, {after} after"
            )
        },
    )
}

/// Rebalance: a second instance joins while 10,000 more events arrive; every event sent so far
/// gets its result.
fn second_instance_joining_mid_stream_loses_nothing(k: &mut Kafka) -> Verdict {
    k.load();
    k.daemon();
    let from = k.produced;
    k.produce(from..from + 5_000);
    let mut second = Daemon::start(&k.second_config);
    k.produce(from + 5_000..from + 10_000);
    k.flush(30);
    let total = k.produced;
    let seen = results_with(&k.brokers, 0..total, Duration::from_secs(120));
    let _ = second.sigterm();
    second.exit_within(Duration::from_secs(30));
    verdict(seen.len() as u64 == total, || {
        format!("{} of {total} ids in the results topic", seen.len())
    })
}

/// An `exactly_once` source on the mock cluster: every result and dead letter arrives once,
/// through the shards' transactions, with executions finishing out of offset order. (The
/// mock cluster neither stores transactional offset commits nor hides aborted records, so
/// the crash runs are in the real-broker group, `broker.rs`.)
fn exactly_once_source_writes_each_result_and_dead_letter_once(k: &mut Kafka) -> Verdict {
    let stream = Stream {
        brokers: k.brokers.clone(),
        dir: k.dir.join("eo"),
        name: "eo".into(),
        delivery: "exactly_once",
        static_ids: None,
        events: 5_000,
        events_per_sec: 5_000,
        partitions: PARTITIONS,
        one_record_batches: false,
        // As for the other daemons on the mock cluster (see `daemon.toml`).
        properties: vec![
            ("session.timeout.ms".into(), "6000".into()),
            ("heartbeat.interval.ms".into(), "1000".into()),
        ],
    };
    let daemon = stream.daemon(0);
    let sent = Arc::new(AtomicU64::new(0));
    let producing = stream.produce(sent);
    let produced = producing.join().map_err(|_| "the producer panicked")?;
    let count = stream.count(Duration::from_secs(90));
    let log = daemon.log();
    drop(daemon);
    produced?;
    verdict(
        count.missing.is_empty() && count.duplicates == 0 && count.poison_delivered(true),
        || {
            format!(
                "{}
daemon log:\n{log}",
                count.summary()
            )
        },
    )
}

/// The poison event that is neither JSON nor UTF-8.
const NOT_UTF8_NOT_JSON: &[u8] = b"{not json \xff\xfe\x00 \xc3";

/// Also a regression: a payload that is not UTF-8 was embedded with U+FFFD in place of its
/// bytes; now it is base64 (`"encoding": "base64"`), byte for byte.
fn poison_events_reach_the_dead_letter_topic_with_error_and_cause(k: &mut Kafka) -> Verdict {
    k.settled()?;
    let mut reasons = Vec::new();
    let mut lossless = false;
    read_topic(&k.brokers, "dlq", Duration::from_secs(30), |v| {
        if v["reason"] == "invalid_json" {
            use base64::Engine as _;
            lossless |= v["encoding"] == "base64"
                && v["payload"]
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    == Some(NOT_UTF8_NOT_JSON.to_vec());
        }
        reasons.push((
            v["reason"].as_str().unwrap_or("").to_string(),
            v["error"].clone(),
            v["cause"].clone(),
        ));
        // Redeliveries after a kill may repeat a reason: read until each was seen.
        ["invalid_json", "failed", "oversize_payload"]
            .iter()
            .all(|want| reasons.iter().any(|(r, _, _)| r == want))
    });
    verdict(
        reasons
            .iter()
            .any(|(r, e, _)| r == "invalid_json" && e == "Expressway.InvalidJson")
            && reasons
                .iter()
                .any(|(r, e, c)| r == "failed" && e == "Rejected" && c == "asked to fail")
            && reasons
                .iter()
                .any(|(r, e, _)| r == "oversize_payload" && e == "States.DataLimitExceeded")
            && lossless,
        || format!("{reasons:?}; invalid_json payload as base64 of its bytes: {lossless}"),
    )
}

/// `/metrics` counts dead letters by reason, events consumed, and reports consumer lag. The
/// poison events come after everything a killed instance reached, so the running one handled
/// each exactly once.
fn metrics_count_dead_letters_events_and_lag(k: &mut Kafka) -> Verdict {
    // The running daemon's own dead letters: the first load's poison events may have been
    // handled by an incarnation an earlier test killed, whose counts died with it.
    k.settled()?;
    let dead_letters = |text: &str| {
        ["invalid_json", "failed", "oversize_payload"].map(|reason| {
            metric(
                text,
                &format!("expressway_dlq_records_total{{source=\"in\",reason=\"{reason}\"}}"),
            )
        })
    };
    let before = dead_letters(&metrics_text(k.metrics_port));
    k.produce_poison();
    k.settled()?;
    let text = metrics_text(k.metrics_port);
    let after = dead_letters(&text);
    let counts = [0, 1, 2].map(|i| after[i] - before[i]);
    let consumed = metric(&text, "expressway_events_consumed_total");
    // The only instance running owns some of the partitions (all of them, once the group
    // has settled after the second instance left).
    let assigned = metric(&text, "expressway_partitions_assigned");
    verdict(
        counts == [1.0, 1.0, 1.0]
            && consumed >= 1.0
            && (1.0..=PARTITIONS as f64).contains(&assigned)
            && text.contains("expressway_consumer_lag_messages"),
        || {
            format!("dead letters {counts:?}, events consumed {consumed}, partitions assigned {assigned}")
        },
    )
}

/// SIGTERM with 50 executions in a Wait: they finish, their results are written, exit 0.
fn sigterm_finishes_executions_in_flight_and_exits_0(k: &mut Kafka) -> Verdict {
    // Caught up first (after a rebalance, say), so that the slow events are the ones running.
    k.settled()?;
    let consumed = metric(
        &metrics_text(k.metrics_port),
        "expressway_events_consumed_total",
    );
    const SLOW: u64 = 50;
    let slow = k.produced..k.produced + SLOW;
    k.produced = slow.end;
    for id in slow.clone() {
        let value = json!({"id": id, "wait": 4}).to_string();
        let _ = k
            .producer
            .send(BaseRecord::to("in").key(&id.to_string()).payload(&value));
    }
    k.flush(10);
    let running_since = Instant::now();
    let mut running = 0.0;
    let mut metrics_before_term = String::new();
    while running_since.elapsed() < Duration::from_secs(60) {
        let text = metrics_text(k.metrics_port);
        metrics_before_term.clone_from(&text);
        running = metric(&text, "expressway_executions_in_flight");
        if metric(&text, "expressway_events_consumed_total") >= consumed + SLOW as f64
            && running >= 1.0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut daemon = k.daemon.take().expect("settled starts the daemon");
    let term = daemon.sigterm();
    let status = daemon.exit_within(Duration::from_secs(30));
    let drained = results_with(&k.brokers, slow.clone(), Duration::from_secs(60));
    match (term, status) {
        (Ok(_), Some(s)) if s.success() && running >= 1.0 && drained.len() as u64 == SLOW => Ok(()),
        other => Err(format!(
            "{other:?}, {running} running at SIGTERM, {} of {SLOW} results written; metrics:\n{}\ndaemon log:\n{}",
            drained.len(),
            metrics_before_term
                .lines()
                .filter(|l| l.contains("lag") || l.contains("paused") || l.contains("consumed"))
                .collect::<Vec<_>>()
                .join("\n"),
            daemon.log()
        )
        .into()),
    }
}

/// A daemon whose Tasks call out: each event goes through a Lambda function (a real HTTP
/// server here) and is produced to another topic by `kafka:produce`; every result carries
/// both, and the other topic holds every record.
fn tasks_call_a_lambda_function_and_produce_to_a_topic(k: &mut Kafka) -> Verdict {
    use crate::integrations::{reply, serve, Reply};
    const TASK_EVENTS: u64 = 500;
    let (brokers, dir) = (k.brokers.as_str(), k.dir.as_path());
    let (lambda, _) = serve(vec![Reply {
        body: r#"{"enriched": {{event}}}"#.into(),
        ..reply(200, json!(null))
    }]);
    std::fs::write(
        dir.join("task.asl.json"),
        json!({"StartAt": "Enrich", "States": {
            "Enrich": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                       "Parameters": {"FunctionName": "enrich", "Payload.$": "$"},
                       "ResultSelector": {"enriched.$": "$.Payload.enriched"}, "Next": "Forward"},
            "Forward": {"Type": "Task", "Resource": "arn:expressway:states:::kafka:produce",
                        "Parameters": {"Topic": "task-out", "Key.$": "States.Format('{}', $.enriched.id)",
                                       "Value.$": "$.enriched"},
                        "ResultPath": "$.produced", "End": true}}})
        .to_string(),
    )
    .expect("definition");
    let config = dir.join("tasks.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "tasks"
# Several instances on one host share this file; the mock cluster keeps a static member's
# partitions until its session times out even when it rejoins: dynamic membership.
static_membership = false
[[state_machines]]
name = "tasks"
definition = "task.asl.json"
[[sources]]
name = "tasks"
type = "kafka"
topics = ["task-in"]
state_machine = "tasks"
results_topic = "task-results"
dead_letter_topic = "dlq"
[logs]
level = "OFF"
[metrics]
listen = ""
[integrations.lambda]
endpoint = "{lambda}"
"#
        ),
    )
    .expect("config");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create()
        .expect("producer");
    for id in 0..TASK_EVENTS {
        let value = json!({"id": id}).to_string();
        let _ = producer.send(BaseRecord::<(), _>::to("task-in").payload(&value));
    }
    producer.flush(Duration::from_secs(10)).expect("produced");
    let mut daemon = Daemon::start(&config);
    let mut results = HashSet::new();
    let mut wrong = None;
    read_topic(brokers, "task-results", Duration::from_secs(90), |v| {
        let id = v["enriched"]["id"].as_u64();
        match (id, v["produced"]["Topic"].as_str()) {
            (Some(id), Some("task-out")) => {
                results.insert(id);
            }
            _ => wrong = Some(v.clone()),
        }
        results.len() as u64 == TASK_EVENTS
    });
    let mut forwarded = HashSet::new();
    read_topic(brokers, "task-out", Duration::from_secs(30), |v| {
        if let Some(id) = v["id"].as_u64() {
            forwarded.insert(id);
        }
        forwarded.len() as u64 == TASK_EVENTS
    });
    let _ = daemon.sigterm();
    daemon.exit_within(Duration::from_secs(30));
    verdict(
        results.len() as u64 == TASK_EVENTS && forwarded.len() as u64 == TASK_EVENTS,
        || {
            format!(
                "{} results, {} records in task-out of {TASK_EVENTS}; odd result {wrong:?}; log:\n{}",
                results.len(),
                forwarded.len(),
                daemon.log()
            )
        },
    )
}

/// `GET path` on the metrics listener: status and body, `None` if nothing answers.
fn probe(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// A daemon of its own on `topic` (group `group`), its operational log in JSON; returns its
/// config's path and metrics port.
fn probe_config(dir: &std::path::Path, brokers: &str, group: &str, topic: &str) -> (PathBuf, u16) {
    let port = free_port();
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
static_membership = false
[[state_machines]]
name = "it"
definition = "sm.asl.json"
[[sources]]
name = "{group}"
type = "kafka"
topics = ["{topic}"]
state_machine = "it"
results_topic = "{topic}-out"
[workers]
shards = 1
[logs]
level = "OFF"
[daemon_log]
format = "json"
[metrics]
listen = "127.0.0.1:{port}"
"#
        ),
    )
    .expect("config");
    (path, port)
}

/// The daemon's stderr lines, each a JSON object (`[daemon_log] format = "json"`).
fn json_lines(log: &str) -> Result<Vec<Value>, String> {
    log.lines()
        .map(|l| serde_json::from_str::<Value>(l).map_err(|e| format!("not JSON ({e}): {l}")))
        .collect()
}

/// `/healthz` answers 200 from the start; `/readyz` answers 503 (naming the consumer's
/// check) until the group's first assignment, then 200. The log is JSON lines.
fn probes_answer_healthz_and_readyz_once_partitions_are_assigned(k: &mut Kafka) -> Verdict {
    k._cluster
        .create_topic("probe-in", PARTITIONS, 1)
        .map_err(|e| format!("topic: {e}"))?;
    let (config, port) = probe_config(&k.dir, &k.brokers, "probes", "probe-in");
    let mut daemon = Daemon::start(&config);
    let started = Instant::now();
    // Each distinct readiness answer, in order (while starting, parts add their checks).
    let mut seen: Vec<(u16, String)> = Vec::new();
    let mut healthz = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(answer) = probe(port, "/readyz") {
            healthz = healthz.or_else(|| probe(port, "/healthz"));
            if seen.last() != Some(&answer) {
                seen.push(answer.clone());
            }
            if answer.0 == 200 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = daemon.sigterm();
    let exited = daemon.exit_within(Duration::from_secs(30));
    let log = daemon.log();
    let lines = json_lines(&log);
    let assigned = lines.as_ref().is_ok_and(|lines| {
        lines.iter().any(|l| {
            l["message"] == "partitions assigned"
                && l["level"] == "INFO"
                && l["partitions"] == "probe-in[0,1,2,3]"
        })
    });
    let mut statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    statuses.dedup();
    // Not ready says why: the consumer waits for its assignment (after "startup" perhaps).
    let unready_says_why = seen.iter().any(|(status, body)| {
        *status == 503
            && serde_json::from_str::<Value>(body).is_ok_and(|b| {
                b["status"] == "not ready"
                    && b["checks"]["kafka_consumer"]
                        == "waiting for the consumer group's first assignment"
            })
    });
    verdict(
        statuses == [503, 200]
            && unready_says_why
            && healthz == Some((200, r#"{"status":"ok"}"#.to_owned()))
            && assigned
            && exited.is_some_and(|s| s.success()),
        || {
            format!(
                "readyz answers {seen:?}, healthz {healthz:?}, exit {exited:?}, log lines {:?}:\n{log}",
                lines.err()
            )
        },
    )
}

/// A SIGTERM as soon as the daemon logs its first line (before its shards and consumer
/// exist) ends it with exit 0, not by the signal's default action: the handler was once
/// installed only after start-up, and a probe that answered early let the test kill it.
fn a_sigterm_while_the_daemon_starts_is_a_clean_shutdown(k: &mut Kafka) -> Verdict {
    k._cluster
        .create_topic("early-in", PARTITIONS, 1)
        .map_err(|e| format!("topic: {e}"))?;
    let (config, _) = probe_config(&k.dir, &k.brokers, "early", "early-in");
    let mut daemon = Daemon::start(&config);
    let started = Instant::now();
    while !daemon.log().contains("metrics at") {
        if started.elapsed() > Duration::from_secs(30) || daemon.exited().is_some() {
            return Err(format!("no first line: {}", daemon.log()).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = daemon.sigterm();
    let exited = daemon.exit_within(Duration::from_secs(30));
    verdict(exited.is_some_and(|s| s.success()), || {
        format!("exit {exited:?}:\n{}", daemon.log())
    })
}

/// With its only broker gone, the daemon says so on `/readyz` (503, the brokers' checks
/// down) and writes each repeated error at most once per 10 s (once at once, then with
/// `suppressed`): librdkafka reports them tens of times a second.
fn brokers_gone_make_the_daemon_unready_and_each_error_is_written_once_per_interval(
    k: &mut Kafka,
) -> Verdict {
    let cluster = MockCluster::new(1).map_err(|e| format!("mock cluster: {e}"))?;
    cluster
        .create_topic("gone-in", PARTITIONS, 1)
        .map_err(|e| format!("topic: {e}"))?;
    let (config, port) = probe_config(&k.dir, &cluster.bootstrap_servers(), "gone", "gone-in");
    let mut daemon = Daemon::start(&config);
    let started = Instant::now();
    while probe(port, "/readyz").map(|(s, _)| s) != Some(200) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("never ready: {}", daemon.log()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mark = daemon.log().len();
    drop(cluster);
    // Past one interval: each message once at first, at most once more with its count.
    std::thread::sleep(Duration::from_secs(13));
    let readyz = probe(port, "/readyz");
    let log = daemon.log();
    let _ = daemon.sigterm();
    daemon.exit_within(Duration::from_secs(30));
    let lines = json_lines(&log[mark..]).map_err(|e| format!("{e}\n{log}"))?;
    let mut by_message: std::collections::HashMap<String, usize> = Default::default();
    let mut suppressed = 0;
    for line in &lines {
        let text = line["error"]
            .as_str()
            .unwrap_or(line["message"].as_str().unwrap_or(""));
        let key: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
        *by_message
            .entry(format!("{} {key}", line["message"]))
            .or_default() += 1;
        suppressed += line["suppressed"].as_u64().unwrap_or(0);
    }
    let repeated: Vec<_> = by_message.iter().filter(|(_, n)| **n > 2).collect();
    println!(
        "kafka: brokers gone for 13 s: {} log lines, {suppressed} repeats suppressed",
        lines.len()
    );
    let unready = readyz
        .as_ref()
        .is_some_and(|(status, body)| *status == 503 && body.contains("all brokers down"));
    verdict(unready && repeated.is_empty() && suppressed > 0, || {
        format!(
            "readyz {readyz:?}; written more than twice: {repeated:?}; log:\n{}",
            &log[mark..]
        )
    })
}
