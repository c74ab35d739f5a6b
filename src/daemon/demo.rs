//! The built-in demo producer: IoT sensor events for the `iot-enrich` workflow, so that the
//! embedded default shows results (and a few dead letters) flowing with no broker at hand.

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
