//! The daemon against a real Kafka protocol peer: librdkafka's mock cluster hosted in this
//! test process, the `expressway` binary in another. Proves the at-least-once contract
//! (docs/kafka-ack-contract.md) end to end: a `kill -9` mid-stream loses nothing, poison
//! events land in the dead-letter topic with their cause, SIGTERM drains and exits 0, and
//! `/metrics` counts what was sent.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EVENTS: u64 = 20_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the daemon; its stderr goes to `<config>.log` (appended), quoted when a check fails.
pub fn start_daemon(config: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_extension("log"))
        .expect("daemon log");
    Command::new(env!("CARGO_BIN_EXE_expressway"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the daemon starts")
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

pub fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Returns one line per check: (name, outcome).
pub fn checks() -> Vec<(&'static str, Result<(), String>)> {
    let mut out = Vec::new();
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    for t in [
        "in",
        "results",
        "dlq",
        "task-in",
        "task-results",
        "task-out",
    ] {
        cluster.create_topic(t, 4, 1).expect("topic");
    }
    let dir = std::env::temp_dir().join(format!("expressway-kafka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("sm.asl.json"),
        json!({"StartAt": "Check", "States": {
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "IsPresent": true, "Next": "Boom"}], "Default": "Hold"},
            "Hold": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
            "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": true},
            "Boom": {"Type": "Fail", "Error": "Rejected", "Cause": "asked to fail"}}})
        .to_string(),
    )
    .expect("definition");
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

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let produce = |ids: std::ops::Range<u64>| {
        for id in ids {
            // Every 100th event waits a second: executions finish out of offset order.
            let wait = u64::from(id % 100 == 0);
            let value = json!({"id": id, "wait": wait}).to_string();
            let key = id.to_string();
            while producer
                .send(BaseRecord::to("in").key(&key).payload(&value))
                .is_err()
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    produce(0..EVENTS);
    for poison in [
        "{not json".to_string(),
        json!({"id": "f", "fail": true}).to_string(),
        // Valid JSON over the 256 KiB Express payload limit.
        json!({"id": "big", "pad": "x".repeat(300 * 1024)}).to_string(),
    ] {
        let _ = producer.send(BaseRecord::<(), _>::to("in").payload(&poison));
    }
    producer.flush(Duration::from_secs(30)).expect("produced");

    // Crash mid-stream, restart, and expect every id in the results.
    let mut daemon = start_daemon(&config);
    let mut seen = HashSet::new();
    read_topic(&brokers, "results", Duration::from_secs(60), |v| {
        if let Some(id) = v["id"].as_u64() {
            seen.insert(id);
        }
        seen.len() as u64 >= EVENTS / 3
    });
    let _ = daemon.kill(); // SIGKILL: no chance to commit
    let _ = daemon.wait();
    let mut daemon = start_daemon(&config);
    let mut seen = HashSet::new();
    let complete = read_topic(&brokers, "results", Duration::from_secs(120), |v| {
        if let Some(id) = v["id"].as_u64() {
            seen.insert(id);
        }
        seen.len() as u64 == EVENTS
    });
    out.push((
        "kafka: kill -9 mid-stream and restart loses no event",
        if complete {
            Ok(())
        } else {
            Err(format!(
                "{} of {EVENTS} ids in the results topic",
                seen.len()
            ))
        },
    ));

    // Out-of-order completion: a slow event then fast ones on partition 0; the group's
    // committed offset must stay at the slow one until it finishes.
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "it")
        .create()
        .expect("offset watcher");
    let (_, slow_offset) = watcher
        .fetch_watermarks("in", 0, Duration::from_secs(5))
        .expect("watermarks");
    let send_to_0 = |value: String| {
        while producer
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
    producer.flush(Duration::from_secs(10)).expect("produced");
    let committed = |w: &BaseConsumer| {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition("in", 0);
        let Ok(list) = w.committed_offsets(tpl, Duration::from_secs(5)) else {
            return -1;
        };
        list.find_partition("in", 0)
            .and_then(|e| e.offset().to_raw())
            .unwrap_or(-1)
    };
    std::thread::sleep(Duration::from_millis(2500));
    let while_slow = committed(&watcher);
    std::thread::sleep(Duration::from_millis(4000));
    let after = committed(&watcher);
    out.push((
        "kafka: the committed offset never passes an execution still running",
        if while_slow <= slow_offset && after >= slow_offset + 21 {
            Ok(())
        } else {
            Err(format!(
                "slow event at {slow_offset}: committed {while_slow} while it ran, {after} after"
            ))
        },
    ));

    // Rebalance: a second instance joins mid-stream; nothing is lost.
    produce(EVENTS..EVENTS + 5_000);
    let mut second = start_daemon(&second_config);
    produce(EVENTS + 5_000..EVENTS + 10_000);
    producer.flush(Duration::from_secs(30)).expect("produced");
    let total = EVENTS + 10_000;
    let mut seen = HashSet::new();
    let complete = read_topic(&brokers, "results", Duration::from_secs(120), |v| {
        if let Some(id) = v["id"].as_u64() {
            seen.insert(id);
        }
        seen.len() as u64 == total
    });
    out.push((
        "kafka: a second instance joining mid-stream loses no event",
        if complete {
            Ok(())
        } else {
            Err(format!(
                "{} of {total} ids in the results topic",
                seen.len()
            ))
        },
    ));
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    let _ = second.wait();

    let mut reasons = Vec::new();
    read_topic(&brokers, "dlq", Duration::from_secs(30), |v| {
        reasons.push((
            v["reason"].as_str().unwrap_or("").to_string(),
            v["error"].clone(),
            v["cause"].clone(),
        ));
        // Redeliveries after the kill may repeat a reason: read until each was seen.
        ["invalid_json", "failed", "oversize_payload"]
            .iter()
            .all(|want| reasons.iter().any(|(r, _, _)| r == want))
    });
    let poison_ok = reasons
        .iter()
        .any(|(r, e, _)| r == "invalid_json" && e == "Expressway.InvalidJson")
        && reasons
            .iter()
            .any(|(r, e, c)| r == "failed" && e == "Rejected" && c == "asked to fail")
        && reasons
            .iter()
            .any(|(r, e, _)| r == "oversize_payload" && e == "States.DataLimitExceeded");
    out.push((
        "kafka: malformed, oversize and failing events land in the dead-letter topic with error and cause",
        if poison_ok {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        },
    ));

    // The poison events came after everything the killed instance reached, so the restarted
    // one handled each exactly once.
    let text = metrics_text(metrics_port);
    let counts = [
        metric(
            &text,
            "expressway_dlq_records_total{source=\"in\",reason=\"invalid_json\"}",
        ),
        metric(
            &text,
            "expressway_dlq_records_total{source=\"in\",reason=\"failed\"}",
        ),
        metric(
            &text,
            "expressway_dlq_records_total{source=\"in\",reason=\"oversize_payload\"}",
        ),
    ];
    let consumed = metric(&text, "expressway_events_consumed_total");
    out.push((
        "kafka: /metrics counts what was sent (dead letters by reason, events, consumer lag)",
        if counts == [1.0, 1.0, 1.0]
            && consumed >= 1.0
            && text.contains("expressway_consumer_lag_messages")
        {
            Ok(())
        } else {
            Err(format!(
                "dead letters {counts:?}, events consumed {consumed}"
            ))
        },
    ));

    // SIGTERM with executions in flight: they finish, their results are written, exit 0.
    // The second instance just left, so the group rebalances first: wait until the slow
    // events are consumed and running before sending the signal.
    let slow: Vec<u64> = (EVENTS + 10_000..EVENTS + 10_050).collect();
    for id in &slow {
        let value = json!({"id": id, "wait": 4}).to_string();
        let _ = producer.send(BaseRecord::to("in").key(&id.to_string()).payload(&value));
    }
    producer.flush(Duration::from_secs(10)).expect("produced");
    let running_since = Instant::now();
    let mut running = 0.0;
    let mut metrics_before_term = String::new();
    while running_since.elapsed() < Duration::from_secs(60) {
        let text = metrics_text(metrics_port);
        metrics_before_term.clone_from(&text);
        running = metric(&text, "expressway_executions_in_flight");
        if metric(&text, "expressway_events_consumed_total") >= consumed + slow.len() as f64
            && running >= 1.0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Graceful shutdown: SIGTERM drains and exits 0.
    let term = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = daemon.try_wait() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = daemon.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut drained = HashSet::new();
    read_topic(&brokers, "results", Duration::from_secs(60), |v| {
        if let Some(id) = v["id"].as_u64().filter(|id| slow.contains(id)) {
            drained.insert(id);
        }
        drained.len() == slow.len()
    });
    out.push((
        "kafka: SIGTERM with executions in flight finishes them and exits 0",
        match (term, status) {
            (Ok(_), Some(s)) if s.success() && running >= 1.0 && drained.len() == slow.len() => {
                Ok(())
            }
            other => Err(format!(
                "{other:?}, {running} running at SIGTERM, {} of {} results written; metrics:\n{}\ndaemon log:\n{}",
                drained.len(),
                slow.len(),
                metrics_before_term
                    .lines()
                    .filter(|l| l.contains("lag") || l.contains("paused") || l.contains("consumed"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
            )),
        },
    ));
    out.push(task_check(&brokers, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// A daemon whose Tasks call out: each event goes through a Lambda function (a real HTTP
/// server here) and is produced to another topic by `kafka:produce`; every result carries
/// both, and the other topic holds every record.
fn task_check(brokers: &str, dir: &Path) -> (&'static str, Result<(), String>) {
    use crate::integrations::{reply, serve};
    const TASK_EVENTS: u64 = 500;
    let (lambda, _) = serve(vec![crate::integrations::Reply {
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
    let mut daemon = start_daemon(&config);
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
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    (
        "kafka: Tasks in the daemon call a Lambda function and produce to a topic (kafka:produce)",
        if results.len() as u64 == TASK_EVENTS && forwarded.len() as u64 == TASK_EVENTS {
            Ok(())
        } else {
            Err(format!(
                "{} results, {} records in task-out of {TASK_EVENTS}; odd result {wrong:?}; log:\n{}",
                results.len(),
                forwarded.len(),
                std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
            ))
        },
    )
}
