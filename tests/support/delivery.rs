//! Delivery runs: a fixed number of events through the daemon while something goes wrong
//! (`kill -9`, a broker restart, instances joining and leaving, SIGTERM), then an independent
//! reader of the output counts every id. A missing id breaks at-least-once; an id read twice
//! breaks exactly-once. Used against librdkafka's mock cluster (`kafka.rs`) and a real broker
//! (`broker.rs`).

use crate::daemon::{free_port, Daemon};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The dead-letter reasons of the poison events every run carries.
pub const POISON_REASONS: [&str; 3] = ["invalid_json", "failed", "oversize_payload"];

/// One run: its topics (`<name>-in`, `-out`, `-dlq`) and consumer group (`<name>`).
pub struct Stream {
    pub brokers: String,
    pub dir: PathBuf,
    pub name: String,
    /// `"at_least_once"` or `"exactly_once"`.
    pub delivery: &'static str,
    /// `Some(id prefix)`: static membership, instance `n` is `<prefix>-<n>`.
    pub static_ids: Option<String>,
    pub events: u64,
    pub events_per_sec: u64,
    pub partitions: i32,
    /// librdkafka properties of every client, the daemon's and the checker's (TLS…).
    pub properties: Vec<(String, String)>,
    /// Each input record in a batch of its own. tansu 0.6 skips the rest of a record batch
    /// when a consumer starts in its middle (a committed offset behind a slow event, after
    /// a rebalance or a restart): its fetch answers only batches that start at or after
    /// the offset asked for, so those events would never reach the daemon.
    pub one_record_batches: bool,
}

/// What the reader found.
#[derive(Debug, Default)]
pub struct Count {
    /// Ids of `0..events` never read.
    pub missing: Vec<u64>,
    /// Records read beyond the first for an id.
    pub duplicates: u64,
    /// Dead letters read, by reason.
    pub dead_letters: HashMap<String, u64>,
    /// What the reader's consumer reported, each distinct error once in a row.
    pub errors: Vec<String>,
}

impl Count {
    pub fn summary(&self) -> String {
        let shown: Vec<u64> = self.missing.iter().take(10).copied().collect();
        format!(
            "{} missing (first {shown:?}), {} duplicates, dead letters {:?}, reader errors {:?}",
            self.missing.len(),
            self.duplicates,
            self.dead_letters,
            self.errors.iter().take(5).collect::<Vec<_>>()
        )
    }

    /// Each poison event's dead letter is there (once, when `exactly`).
    pub fn poison_delivered(&self, exactly: bool) -> bool {
        POISON_REASONS.iter().all(|r| {
            let n = self.dead_letters.get(*r).copied().unwrap_or(0);
            if exactly {
                n == 1
            } else {
                n >= 1
            }
        })
    }
}

impl Stream {
    /// A client config for this run's brokers, with its properties.
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        if let Ok(debug) = std::env::var("EXPRESSWAY_KAFKA_DEBUG") {
            config.set("debug", debug);
        }
        config
    }

    pub fn topic(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name)
    }

    /// Creates the run's topics (a topic left over from an earlier run is an error: names
    /// are unique per run).
    pub fn create_topics(&self) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = self
            .client()
            .create()
            .map_err(|e| format!("admin client: {e}"))?;
        let names = [self.topic("in"), self.topic("out"), self.topic("dlq")];
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|t| NewTopic::new(t, self.partitions, TopicReplication::Fixed(1)))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = runtime
            .block_on(admin.create_topics(&topics, &options))
            .map_err(|e| format!("creating topics: {e}"))?;
        for result in results {
            if let Err((topic, e)) = result {
                return Err(format!("creating {topic}: {e}"));
            }
        }
        Ok(())
    }

    /// Writes instance `n`'s config; its metrics port is returned with it.
    pub fn config(&self, n: usize) -> (PathBuf, u16) {
        std::fs::create_dir_all(&self.dir).expect("run dir");
        std::fs::write(
            self.dir.join("sm.asl.json"),
            json!({"StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "IsPresent": true, "Next": "Boom"}], "Default": "Hold"},
                "Hold": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
                "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": true},
                "Boom": {"Type": "Fail", "Error": "Rejected", "Cause": "asked to fail"}}})
            .to_string(),
        )
        .expect("definition");
        let membership = match &self.static_ids {
            Some(prefix) => format!("instance_id = \"{prefix}-{n}\""),
            None => "static_membership = false".to_owned(),
        };
        let properties: String = self
            .properties
            .iter()
            .map(|(k, v)| format!("{k:?} = {v:?}\n"))
            .collect();
        let port = free_port();
        let path = self.dir.join(format!("{}-{n}.toml", self.name));
        std::fs::write(
            &path,
            format!(
                r#"
[kafka]
brokers = "{brokers}"
group_id = "{name}"
{membership}
[kafka.properties]
{properties}
[[state_machines]]
name = "run"
definition = "sm.asl.json"
[[sources]]
name = "in"
type = "kafka"
topics = ["{name}-in"]
state_machine = "run"
results_topic = "{name}-out"
dead_letter_topic = "{name}-dlq"
delivery = "{delivery}"
[workers]
shards = 2
commit_interval_ms = 200
shutdown_grace_secs = 10
[logs]
level = "OFF"
[metrics]
listen = "127.0.0.1:{port}"
"#,
                brokers = self.brokers,
                name = self.name,
                delivery = self.delivery,
            ),
        )
        .expect("config");
        (path, port)
    }

    pub fn daemon(&self, n: usize) -> Daemon {
        Daemon::start(&self.config(n).0)
    }

    /// Produces ids `0..events` at `events_per_sec` on a thread, with the three poison
    /// events a third of the way in; `sent` counts what is out.
    pub fn produce(&self, sent: Arc<AtomicU64>) -> JoinHandle<Result<(), String>> {
        let producer: ThreadedProducer<DefaultProducerContext> = self
            .client()
            .set("linger.ms", "20")
            .set(
                "batch.num.messages",
                if self.one_record_batches {
                    "1"
                } else {
                    "10000"
                },
            )
            .set("enable.idempotence", "true")
            .create()
            .expect("producer");
        let (topic, events, rate) = (self.topic("in"), self.events, self.events_per_sec);
        std::thread::spawn(move || {
            let started = Instant::now();
            for id in 0..events {
                if id == events / 3 {
                    for poison in poison_events() {
                        send(&producer, &topic, None, &poison);
                    }
                }
                // Every 500th event waits a second: executions finish out of offset order.
                let wait = u64::from(id % 500 == 0);
                let value = json!({"id": id, "wait": wait}).to_string().into_bytes();
                send(&producer, &topic, Some(id.to_string().as_bytes()), &value);
                sent.store(id + 1, Ordering::Relaxed);
                let due = Duration::from_secs_f64((id + 1) as f64 / rate as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
            producer
                .flush(Duration::from_secs(60))
                .map_err(|e| format!("producing the input: {e}"))
        })
    }

    /// Reads the output and dead-letter topics from the start, as a `read_committed`
    /// consumer downstream would, until every id is there and nothing new came for 3 s, or
    /// `timeout` passes.
    pub fn count(&self, timeout: Duration) -> Count {
        let consumer: BaseConsumer = self
            .client()
            .set(
                "group.id",
                format!("checker-{}-{}", self.name, fastrand::u64(..)),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("checker");
        consumer
            .subscribe(&[&self.topic("out"), &self.topic("dlq")])
            .expect("subscribe");
        let out = self.topic("out");
        let mut seen: HashMap<u64, u64> = HashMap::new();
        let mut dead_letters: HashMap<String, u64> = HashMap::new();
        let started = Instant::now();
        let mut last_new = Instant::now();
        let mut errors = Vec::new();
        while started.elapsed() < timeout {
            let complete =
                seen.len() as u64 == self.events && dead_letters.len() == POISON_REASONS.len();
            if complete && last_new.elapsed() > Duration::from_secs(3) {
                break;
            }
            let m = match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    errors.push(e.to_string());
                    continue;
                }
                None => continue,
            };
            last_new = Instant::now();
            let value: Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null);
            if m.topic() == out {
                if let Some(id) = value["id"].as_u64() {
                    *seen.entry(id).or_default() += 1;
                }
            } else if let Some(reason) = value["reason"].as_str() {
                *dead_letters.entry(reason.to_owned()).or_default() += 1;
            }
        }
        errors.dedup();
        Count {
            errors,
            missing: (0..self.events)
                .filter(|id| !seen.contains_key(id))
                .collect(),
            duplicates: seen.values().map(|n| n - 1).sum(),
            dead_letters,
        }
    }
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) {
    loop {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        match producer.send(record) {
            Ok(()) => return,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One event of each kind that cannot run: not JSON, a failing execution, over 256 KiB.
fn poison_events() -> [Vec<u8>; 3] {
    [
        b"{not json".to_vec(),
        json!({"id": "f", "fail": true}).to_string().into_bytes(),
        json!({"id": "big", "pad": "x".repeat(300 * 1024)})
            .to_string()
            .into_bytes(),
    ]
}

/// Waits until `sent` reaches `n`.
pub fn until_sent(sent: &AtomicU64, n: u64) {
    while sent.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scratch directory for one group's runs.
pub fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("expressway-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The run's daemons' logs, for a failing check's message.
pub fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {}\n", path.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
