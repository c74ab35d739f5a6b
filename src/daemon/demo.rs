//! The demo: a built-in producer of IoT sensor events for the `iot-enrich` workflow
//! (`[demo_producer]`), so that the embedded default has events flowing with no broker at
//! hand, and a printer of the records the daemon writes (`[demo] print_records`), so that a
//! newcomer sees results and dead letters land without a Kafka client of their own.

use crate::config_reader::Section;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::kafka::config::topic_problem;

/// `[demo_producer]` when enabled: synthetic sensor events for the demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoProducerConfig {
    /// A topic some source consumes.
    pub topic: String,
    /// At least 1.
    pub events_per_sec: u32,
}

/// Default for `demo_producer.events_per_sec`.
const DEMO_EVENTS_PER_SEC: u32 = 500;

/// Reads `[demo_producer]`: `Some` only when it says `enabled = true`.
pub fn read_demo_producer(mut section: Section<'_>) -> Option<DemoProducerConfig> {
    // Every key is read even when disabled, so that mistakes in the section still show.
    let enabled = section.bool("enabled", false);
    let topic = section.string("topic");
    if let Some(problem) = topic.and_then(topic_problem) {
        section.error("topic", problem);
    }
    let events_per_sec = section.uint("events_per_sec", DEMO_EVENTS_PER_SEC, 1, 1_000_000);
    if enabled && !section.has("topic") {
        section.error("topic", "missing (required when enabled = true)");
    }
    section.finish();
    match (enabled, topic) {
        (true, Some(topic)) => Some(DemoProducerConfig {
            topic: topic.to_string(),
            events_per_sec,
        }),
        _ => None,
    }
}

/// `[demo]`: what the daemon shows of its own output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoConfig {
    pub print_records: PrintRecords,
}

/// `demo.print_records`: which records written to the results and dead-letter topics are
/// printed on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrintRecords {
    #[default]
    Off,
    /// At most one a second from each topic.
    Sample,
    All,
}

/// Reads `[demo]`.
pub fn read_demo(mut section: Section<'_>) -> DemoConfig {
    let print_records = section.one_of(
        "print_records",
        PrintRecords::Off,
        &[
            ("off", PrintRecords::Off),
            ("sample", PrintRecords::Sample),
            ("all", PrintRecords::All),
        ],
    );
    section.finish();
    DemoConfig { print_records }
}

/// One sensor event. About one in fifty has an unknown sensor type, which the workflow
/// rejects with a Fail state: those land in the dead-letter topic.
pub fn sensor_event(n: u64, rng: &mut fastrand::Rng) -> serde_json::Value {
    let sensor = match n % 50 {
        0 => "pressure",
        k if k % 2 == 0 => "temperature",
        _ => "humidity",
    };
    let readings: Vec<f64> = (0..5).map(|_| (rng.f64() * 600.0).round() / 10.0).collect();
    json!({
        "deviceId": format!("dev-{:04}", n % 1000),
        "sensorType": sensor,
        "site": format!("plant-{}", n % 7),
        "ts": "2024-05-01T12:00:00Z",
        "meta": format!("{{\"fw\":\"1.4.{}\",\"battery\":{}}}", n % 10, 50 + n % 50),
        "defaults": {"fw": "unknown", "battery": 100, "region": "eu-west-1"},
        "threshold": 30,
        "readings": readings,
        "seq": n,
    })
}

/// Produces sensor events to `topic` at about `events_per_sec` until `stop` is set.
pub fn spawn(
    brokers: &str,
    topic: String,
    events_per_sec: u64,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<u64>, rdkafka::error::KafkaError> {
    // Batching matters: librdkafka's mock cluster crawls on tiny batches (docs/facts).
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "10000")
        .create()?;
    Ok(std::thread::spawn(move || {
        let mut rng = fastrand::Rng::with_seed(42);
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = started.elapsed().as_secs_f64() * events_per_sec as f64;
            while (sent as f64) < due {
                let value = sensor_event(sent, &mut rng).to_string();
                let key = format!("dev-{:04}", sent % 1000);
                if producer
                    .send(BaseRecord::to(&topic).key(&key).payload(&value))
                    .is_err()
                {
                    break; // queue full: try again on the next tick
                }
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = producer.flush(Duration::from_secs(5));
        sent
    }))
}

/// What a printed record is, by topic.
pub struct PrintedTopic {
    pub topic: String,
    /// `result` or `dead letter`.
    pub kind: &'static str,
}

/// Longest record value printed whole; longer ones are cut, with their size.
const PRINT_MAX_BYTES: usize = 2048;

/// Prints records of `topics` as the cluster has them (read back with a consumer of its own,
/// from the end of each partition at start, joining no group and committing nothing), on
/// stderr, until `stop` is set. `properties`: the daemon's extra librdkafka properties
/// (security settings of a real cluster).
pub fn spawn_printer(
    brokers: &str,
    properties: &[(String, String)],
    topics: Vec<PrintedTopic>,
    mode: PrintRecords,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        // librdkafka wants a group id for a consumer; `assign` below never joins it.
        .set("group.id", "expressway-print-records")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (k, v) in properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    let mut assignment = TopicPartitionList::new();
    for printed in &topics {
        let metadata = consumer.fetch_metadata(Some(&printed.topic), Duration::from_secs(5))?;
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                assignment.add_partition_offset(topic.name(), partition.id(), Offset::End)?;
            }
        }
    }
    consumer.assign(&assignment)?;
    let kinds: HashMap<String, &'static str> =
        topics.into_iter().map(|t| (t.topic, t.kind)).collect();
    Ok(std::thread::Builder::new()
        .name("print-records".into())
        .spawn(move || {
            let mut last_printed: HashMap<String, Instant> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                if mode == PrintRecords::Sample {
                    let last = last_printed.get(m.topic());
                    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                        continue;
                    }
                    last_printed.insert(m.topic().to_owned(), Instant::now());
                }
                let kind = kinds.get(m.topic()).copied().unwrap_or("record");
                let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                let value = m.payload().unwrap_or_default();
                let shown = String::from_utf8_lossy(&value[..value.len().min(PRINT_MAX_BYTES)]);
                let cut = match value.len() > PRINT_MAX_BYTES {
                    true => format!("… ({} bytes)", value.len()),
                    false => String::new(),
                };
                eprintln!(
                    "expressway: {kind} {}[{}]@{} key={key}: {shown}{cut}",
                    m.topic(),
                    m.partition(),
                    m.offset()
                );
            }
        })?)
}
