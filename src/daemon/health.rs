//! Liveness and readiness: what `/healthz` and `/readyz` answer on the metrics listener
//! (`telemetry::Probes`), from state the daemon's parts set as they go. One [`Health`] per
//! daemon, shared in an `Arc`; each part holds its own [`Check`] (atomics, read by the
//! probes, written on the part's own path: an assignment, a receive, a statistics report).
//!
//! - `/healthz` is 200 while no daemon thread (shard, transactional producer) has panicked.
//!   It does not depend on the brokers or queues: a restart would not bring them back.
//! - `/readyz` is 200 when every check is up, else 503 with each check's state.
//!   - `kafka_consumer`: the consumer has had its first group assignment. An assignment of
//!     zero partitions counts: with more instances than partitions a member legitimately
//!     owns none, and it stands by to take some over (`expressway_partitions_assigned`
//!     tells those apart). Later rebalances do not make it unready.
//!   - `kafka_consumer_brokers`, `kafka_producer`: not every broker is down (librdkafka's
//!     `AllBrokersDown` error makes it down; its statistics, every `commit_interval_ms` for
//!     the consumer and every 5 s for the producer, bring it back up once a broker is).
//!   - `kafka_producer_queue`: the producer's local queue has not stayed full for
//!     [`QUEUE_FULL_GRACE`] (a moment of full queue is backpressure, not unreadiness).
//!   - `sqs_source:<name>`: the last ReceiveMessage succeeded (pending until the first one
//!     answers, which takes up to `wait_time_secs` on an empty queue).
//!   - `sqs_sink:<name>`: the last SendMessageBatch to the source's queues succeeded.
//!   - `api`: the API listens (with `[api]`).
//!   - While shutting down, `shutting_down`.

use crate::engine::wall_millis;
use crate::telemetry::Probes;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// How long the Kafka producer's local queue may stay full before the daemon is unready.
pub const QUEUE_FULL_GRACE_MS: i64 = 5_000;

const PENDING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// One readiness check: pending (with why), up, or down (with the last error).
pub struct Check {
    name: String,
    state: AtomicU8,
    pending: &'static str,
    why_down: Mutex<String>,
}

impl Check {
    pub fn up(&self) {
        self.state.store(UP, Ordering::Relaxed);
    }

    /// Down, with what went wrong (kept for the probe's body).
    pub fn down(&self, why: impl std::fmt::Display) {
        *self.why_down.lock().unwrap_or_else(|e| e.into_inner()) = why.to_string();
        self.state.store(DOWN, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UP
    }

    fn describe(&self) -> String {
        match self.state.load(Ordering::Relaxed) {
            UP => "ok".to_owned(),
            PENDING => self.pending.to_owned(),
            _ => self
                .why_down
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// The daemon's health, shared by its parts and read by the probes.
#[derive(Default)]
pub struct Health {
    checks: Mutex<Vec<Arc<Check>>>,
    /// Threads that panicked, by name.
    panicked: Mutex<Vec<String>>,
    stopping: AtomicBool,
    /// When the Kafka producer's local queue was first found full (wall ms), 0 if it is not.
    queue_full_since: AtomicI64,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// Registers a check that is pending (with `pending` as the reason) until it is up.
    pub fn pending(&self, name: impl Into<String>, pending: &'static str) -> Arc<Check> {
        self.register(name.into(), PENDING, pending)
    }

    /// Registers a check that is up until it is found down.
    pub fn up(&self, name: impl Into<String>) -> Arc<Check> {
        self.register(name.into(), UP, "")
    }

    fn register(&self, name: String, state: u8, pending: &'static str) -> Arc<Check> {
        let check = Arc::new(Check {
            name,
            state: AtomicU8::new(state),
            pending,
            why_down: Mutex::new(String::new()),
        });
        self.lock_checks().push(check.clone());
        check
    }

    fn lock_checks(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Check>>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The daemon is shutting down: no longer ready.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The Kafka sink found the producer's queue full (`true`) or had room (`false`).
    pub fn queue_full(&self, full: bool) {
        if !full {
            if self.queue_full_since.load(Ordering::Relaxed) != 0 {
                self.queue_full_since.store(0, Ordering::Relaxed);
            }
        } else if self.queue_full_since.load(Ordering::Relaxed) == 0 {
            self.queue_full_since
                .store(wall_millis(), Ordering::Relaxed);
        }
    }

    /// A guard for a daemon thread to hold: if the thread panics, `/healthz` fails.
    pub fn thread_guard(self: &Arc<Self>, name: impl Into<String>) -> ThreadGuard {
        ThreadGuard {
            health: self.clone(),
            name: name.into(),
        }
    }

    fn live_at(&self) -> (bool, Value) {
        let panicked = self.panicked.lock().unwrap_or_else(|e| e.into_inner());
        match panicked.is_empty() {
            true => (true, json!({"status": "ok"})),
            false => (false, json!({"status": "failing", "panicked": *panicked})),
        }
    }

    fn ready_at(&self, now: i64) -> (bool, Value) {
        let mut ok = true;
        let mut checks = Map::new();
        for check in self.lock_checks().iter() {
            ok &= check.is_up();
            checks.insert(check.name.clone(), Value::String(check.describe()));
        }
        let full_since = self.queue_full_since.load(Ordering::Relaxed);
        if full_since != 0 {
            let full_for = now - full_since;
            let stuck = full_for >= QUEUE_FULL_GRACE_MS;
            ok &= !stuck;
            let state = match stuck {
                true => format!("the local produce queue has been full for {} ms", full_for),
                false => "ok".to_owned(),
            };
            checks.insert("kafka_producer_queue".into(), Value::String(state));
        }
        if self.stopping.load(Ordering::Relaxed) {
            ok = false;
            checks.insert("shutting_down".into(), Value::String("SIGTERM".into()));
        }
        let (live, _) = self.live_at();
        ok &= live;
        let status = if ok { "ready" } else { "not ready" };
        (ok, json!({"status": status, "checks": checks}))
    }
}

impl Probes for Health {
    fn live(&self) -> (bool, String) {
        let (ok, body) = self.live_at();
        (ok, body.to_string())
    }

    fn ready(&self) -> (bool, String) {
        let (ok, body) = self.ready_at(wall_millis());
        (ok, body.to_string())
    }
}

/// Held by a daemon thread; records the thread as panicked if it unwinds.
pub struct ThreadGuard {
    health: Arc<Health>,
    name: String,
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut panicked = self
                .health
                .panicked
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            panicked.push(std::mem::take(&mut self.name));
        }
    }
}

/// Whether librdkafka's statistics say every broker is down: it knows of some and is
/// connected to none. (A broker it failed to reach goes back to `INIT`, not `DOWN`, so the
/// states alone do not tell a broker that failed from one never tried; a client that works
/// keeps at least one connection up, for its metadata.) Logical brokers (the group and
/// transaction coordinators' aliases) are not counted.
pub fn all_brokers_down(statistics: &rdkafka::Statistics) -> bool {
    let mut known = false;
    for broker in statistics.brokers.values() {
        if broker.source == "logical" || broker.source == "internal" {
            continue;
        }
        if matches!(broker.state.as_str(), "UP" | "UPDATE") {
            return false;
        }
        known = true;
    }
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_every_check_is_up_and_says_which_are_not() {
        let health = Health::new();
        let consumer = health.pending("kafka_consumer", "waiting for the first assignment");
        let producer = health.up("kafka_producer");
        let (ok, body) = health.ready_at(1_000);
        assert!(!ok);
        assert_eq!(
            body,
            json!({"status": "not ready", "checks": {
                "kafka_consumer": "waiting for the first assignment", "kafka_producer": "ok"}})
        );
        consumer.up();
        assert!(health.ready_at(1_000).0);
        producer.down("all brokers down");
        let (ok, body) = health.ready_at(1_000);
        assert!(!ok);
        assert_eq!(body["checks"]["kafka_producer"], "all brokers down");
        producer.up();
        assert!(health.ready_at(1_000).0);
        health.stopping();
        let (ok, body) = health.ready_at(1_000);
        assert!(!ok);
        assert_eq!(body["checks"]["shutting_down"], "SIGTERM");
    }

    #[test]
    fn a_full_queue_makes_it_unready_only_when_it_stays_full() {
        let health = Health::new();
        health.queue_full_since.store(10_000, Ordering::Relaxed);
        assert!(health.ready_at(10_000 + QUEUE_FULL_GRACE_MS - 1).0);
        let (ok, body) = health.ready_at(10_000 + QUEUE_FULL_GRACE_MS);
        assert!(!ok);
        assert_eq!(
            body["checks"]["kafka_producer_queue"],
            "the local produce queue has been full for 5000 ms"
        );
        health.queue_full(false);
        assert!(health.ready_at(20_000).0);
        health.queue_full(true);
        let since = health.queue_full_since.load(Ordering::Relaxed);
        health.queue_full(true);
        assert_eq!(health.queue_full_since.load(Ordering::Relaxed), since);
    }

    #[test]
    fn a_panicked_thread_fails_liveness_and_readiness() {
        let health = Health::new();
        assert_eq!(health.live_at(), (true, json!({"status": "ok"})));
        // A thread that ends normally is not a failure.
        let guard = health.thread_guard("shard-0");
        std::thread::spawn(move || drop(guard)).join().unwrap();
        assert!(health.live_at().0);
        let guard = health.thread_guard("shard-1");
        let panicked = std::thread::spawn(move || {
            let _guard = guard;
            panic!("a shard's event loop panicked (test)");
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(
            health.live_at(),
            (false, json!({"status": "failing", "panicked": ["shard-1"]}))
        );
        assert!(!health.ready_at(0).0);
    }

    #[test]
    fn brokers_are_all_down_when_none_is_up() {
        let stats = |states: &[(&str, &str)]| {
            let brokers: Map<String, Value> = states
                .iter()
                .enumerate()
                .map(|(i, (source, state))| {
                    (
                        format!("b{i}"),
                        json!({"name": format!("b{i}"), "nodeid": i, "nodename": "h:1",
                        "source": source, "state": state, "stateage": 0, "outbuf_cnt": 0,
                        "outbuf_msg_cnt": 0, "waitresp_cnt": 0, "waitresp_msg_cnt": 0, "tx": 0,
                        "txbytes": 0, "txerrs": 0, "txretries": 0, "txidle": 0, "req_timeouts": 0,
                        "rx": 0, "rxbytes": 0, "rxerrs": 0, "rxcorriderrs": 0, "rxpartial": 0,
                        "rxidle": 0, "zbuf_grow": 0, "buf_grow": 0, "wakeups": 0, "connects": 0,
                        "disconnects": 0, "req": {}, "toppars": {}}),
                    )
                })
                .collect();
            let text = json!({"name": "c", "client_id": "c", "type": "consumer", "ts": 0,
                "time": 0, "age": 0, "replyq": 0, "msg_cnt": 0, "msg_size": 0, "msg_max": 0,
                "msg_size_max": 0, "tx": 0, "tx_bytes": 0, "rx": 0, "rx_bytes": 0, "txmsgs": 0,
                "txmsg_bytes": 0, "rxmsgs": 0, "rxmsg_bytes": 0, "simple_cnt": 0,
                "metadata_cache_cnt": 0, "brokers": brokers, "topics": {}});
            serde_json::from_value::<rdkafka::Statistics>(text).expect("statistics")
        };
        assert!(all_brokers_down(&stats(&[
            ("configured", "DOWN"),
            ("learned", "CONNECT"),
            ("logical", "UP")
        ])));
        assert!(!all_brokers_down(&stats(&[
            ("configured", "DOWN"),
            ("learned", "UP")
        ])));
        // A broker that refused the connection is back in INIT.
        assert!(all_brokers_down(&stats(&[
            ("configured", "INIT"),
            ("logical", "INIT")
        ])));
        assert!(!all_brokers_down(&stats(&[("logical", "UP")])));
    }
}
