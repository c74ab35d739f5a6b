//! Kafka through librdkafka: the consumer that feeds the shards and the producer that is
//! their sink. The only module that knows Kafka.
//!
//! The consumer runs on the caller's thread: it serves rebalances, relays the shards'
//! pause/resume requests, and commits offsets, only as far as the shards' commit points allow
//! (`docs/kafka-ack-contract.md`). Messages do not pass through it: each assigned partition's
//! queue is split off (librdkafka's per-partition queues) and handed to the shard that owns
//! the partition, which reads the messages in place on its own thread ([`KafkaFeed`]).

pub mod config;
pub mod transactions;

use super::health::{self, Check, Health};
use super::shard::{
    CommitPoint, Control, Delivery, EventRef, Msg, OutRecord, PartitionFeed, RecordKind, Sink,
    SourceCoords, SourceEvent,
};
use crate::asl::effect::TaskCall;
use crate::asl::error::{names, Failure};
use crate::resource::{TaskReply, TaskResource};
use crate::telemetry::oplog::limited;
use crate::telemetry::{self, CommitResult};
use crossbeam_channel::{Receiver, Sender};
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Which shard owns each assigned partition. A newly assigned partition goes to the shard
/// that owns the fewest, so any partition count spreads evenly (hashing put three of four
/// partitions on one shard); a partition keeps its shard for as long as it stays assigned,
/// because that shard alone tracks its offsets.
pub struct Routes {
    topics: HashMap<String, TopicRoutes>,
    /// Partitions owned, per shard.
    owned: Vec<usize>,
}

struct TopicRoutes {
    /// The topic's one shared name (source coordinates hold it in every event).
    name: Arc<str>,
    /// Shard by partition number; `None`: not assigned here.
    shard: Vec<Option<usize>>,
}

/// A topic's routes, looked up by `&str` first: the message path allocates nothing once a
/// topic is known.
fn topic_routes<'a>(
    topics: &'a mut HashMap<String, TopicRoutes>,
    topic: &str,
) -> &'a mut TopicRoutes {
    if !topics.contains_key(topic) {
        let routes = TopicRoutes {
            name: Arc::from(topic),
            shard: Vec::new(),
        };
        topics.insert(topic.to_owned(), routes);
    }
    topics.get_mut(topic).expect("inserted above")
}

impl Routes {
    pub fn new(shards: usize) -> Routes {
        Routes {
            topics: HashMap::new(),
            owned: vec![0; shards.max(1)],
        }
    }

    pub fn intern(&mut self, topic: &str) -> Arc<str> {
        topic_routes(&mut self.topics, topic).name.clone()
    }

    /// The shard that owns `partition`, giving it to the least-loaded shard if it has none
    /// (an assignment, or a message that arrived before its assignment was seen).
    pub fn route(&mut self, topic: &str, partition: i32) -> (Arc<str>, usize) {
        let index = usize::try_from(partition).unwrap_or(0);
        let routes = topic_routes(&mut self.topics, topic);
        if routes.shard.len() <= index {
            routes.shard.resize(index + 1, None);
        }
        let shard = *routes.shard[index].get_or_insert_with(|| {
            let least_loaded = (0..self.owned.len())
                .min_by_key(|&s| self.owned[s])
                .unwrap_or(0);
            self.owned[least_loaded] += 1;
            least_loaded
        });
        (routes.name.clone(), shard)
    }

    /// Partitions owned by any shard.
    pub fn assigned(&self) -> usize {
        self.owned.iter().sum()
    }

    /// The partition left this consumer: the next owner may be any shard.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        let slot = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.shard.get_mut(usize::try_from(partition).ok()?));
        if let Some(shard) = slot.and_then(Option::take) {
            self.owned[shard] -= 1;
        }
    }
}

/// Who waits for a produced record's delivery report.
pub enum Awaiting {
    /// A shard's sink record: its offset may be committed once delivered.
    Sink(Delivery),
    /// A Task state producing through [`KafkaProduce`]: the report is its result. (In a
    /// mutex only because librdkafka needs the opaque to be `Sync`.)
    Task(std::sync::Mutex<TaskReply>),
}

/// librdkafka's own log lines, through the daemon's log (`target: librdkafka`); warnings and
/// errors rate-limited like every repeated message (a broker that refuses connections is
/// reported on each try).
pub fn log_librdkafka(client: &str, level: RDKafkaLogLevel, facility: &str, message: &str) {
    use telemetry::oplog::{admit, Admit};
    let text = format!("{facility}: {message}");
    let suppressed = match level {
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => None,
        _ => match admit(concat!(file!(), ":librdkafka"), &text) {
            Admit::Write(suppressed) => suppressed,
            Admit::Suppress => return,
        },
    };
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", client, suppressed, "{text}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", client, suppressed, "{text}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", client, "{text}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", client, "{text}"),
    }
}

/// A librdkafka client's error callback (connection failures, all brokers down, fatal
/// errors), through the daemon's log, rate-limited; `AllBrokersDown` marks `brokers` down.
pub fn client_error(client: &str, error: &KafkaError, reason: &str, brokers: Option<&Check>) {
    let code = error.rdkafka_error_code();
    if code == Some(RDKafkaErrorCode::AllBrokersDown) {
        if let Some(brokers) = brokers {
            brokers.down(format!("all brokers down: {reason}"));
        }
    }
    let text = format!("{error}: {reason}");
    match code {
        Some(RDKafkaErrorCode::Fatal) => limited!(error, text, client, "Kafka client error"),
        _ => limited!(warn, text, client, "Kafka client error"),
    }
}

/// Every other client of the daemon's (the transactional producers, the demo's): their
/// librdkafka lines and errors through the daemon's log.
pub struct LoggingContext(pub &'static str);

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(self.0, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(self.0, &error, reason, None);
    }
}

impl ProducerContext for LoggingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Hands each delivery report to whoever waits for it; keeps the producer's readiness
/// (`brokers`) from its errors and statistics.
pub struct DeliveryContext {
    pub brokers: Arc<Check>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka("producer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error("producer", &error, reason, Some(&self.brokers));
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        match health::all_brokers_down(&statistics) {
            true => self
                .brokers
                .down("all brokers down (librdkafka statistics)"),
            false => self.brokers.up(),
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Awaiting>;

    fn delivery(&self, result: &DeliveryResult<'_>, awaiting: Box<Awaiting>) {
        match *awaiting {
            Awaiting::Sink(delivered) => delivered(match result {
                Ok(_) => Ok(()),
                Err((e, _)) => Err(e.to_string()),
            }),
            Awaiting::Task(reply) => into_inner(reply).complete(match result {
                Ok(m) => Ok(json!({
                    "Topic": m.topic(),
                    "Partition": m.partition(),
                    "Offset": m.offset(),
                })),
                Err((e, _)) => Err(produce_failure(e)),
            }),
        }
    }
}

fn into_inner(reply: std::sync::Mutex<TaskReply>) -> TaskReply {
    reply.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// `Kafka.<librdkafka error code>`, e.g. `Kafka.MessageSizeTooLarge`, for Retry and Catch.
fn produce_failure(e: &KafkaError) -> Failure {
    let code = match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => "ProduceFailed".to_owned(),
    };
    Failure::new(format!("Kafka.{code}"), e.to_string())
}

/// `arn:expressway:states:::kafka:produce`: a Task that writes one record to a topic of the
/// daemon's cluster and returns where it landed, `{Topic, Partition, Offset}`, once the
/// broker has acknowledged it (acks=all, idempotent producer). Parameters: `Topic`, `Value`
/// (a string is sent as is, any other JSON as its text), optional `Key`, `Partition` and
/// `Headers` (an object of strings).
pub struct KafkaProduce {
    pub producer: Arc<KafkaProducer>,
}

impl TaskResource for KafkaProduce {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        let p = &call.payload;
        let invalid = |m: &str| Failure::new(names::RUNTIME, m.to_owned());
        let Some(topic) = p.get("Topic").and_then(Value::as_str) else {
            return reply.complete(Err(invalid(
                "The Parameters of kafka:produce need a string 'Topic'",
            )));
        };
        let value = match p.get("Value") {
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(v) => v.to_string().into_bytes(),
            None => {
                return reply.complete(Err(invalid(
                    "The Parameters of kafka:produce need a 'Value'",
                )))
            }
        };
        let mut headers = OwnedHeaders::new();
        if let Some(Value::Object(fields)) = p.get("Headers") {
            for (k, v) in fields {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                headers = headers.insert(Header {
                    key: k,
                    value: Some(text.as_bytes()),
                });
            }
        }
        let key = p.get("Key").and_then(Value::as_str).map(str::to_owned);
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(Awaiting::Task(reply.into())))
            .payload(&value)
            .headers(headers);
        if let Some(key) = &key {
            record = record.key(key);
        }
        if let Some(partition) = p.get("Partition").and_then(Value::as_i64) {
            record = record.partition(partition as i32);
        }
        // Never blocks a shard: a full local queue fails the Task (Kafka.QueueFull), for a
        // Retry to take up.
        if let Err((e, record)) = self.producer.send(record) {
            if let Awaiting::Task(reply) = *record.delivery_opaque {
                into_inner(reply).complete(Err(produce_failure(&e)));
            }
        }
    }
}

pub type KafkaProducer = ThreadedProducer<DeliveryContext>;

/// How long a transaction may stay open before the broker aborts it, and how long a
/// transactional call waits. A crashed instance's open transaction blocks `read_committed`
/// readers of its output topics until then, unless a restart with the same instance id
/// fences it first.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A producer's settings: throughput with durable acknowledgements, and the deployment's
/// own properties (TLS, SASL…) on top.
pub fn producer_config(
    brokers: &str,
    properties: &[(String, String)],
    linger_ms: u64,
    batch_messages: u64,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", batch_messages.to_string());
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

/// How often the producer reports statistics (for its readiness: are its brokers up), unless
/// `[kafka.properties]` sets `statistics.interval.ms`.
const PRODUCER_STATS_INTERVAL_MS: &str = "5000";

/// The producer of results, dead letters and `kafka:produce` Tasks; its readiness check is
/// registered with `health`.
pub fn producer(config: &ClientConfig, health: &Health) -> Result<KafkaProducer, KafkaError> {
    let mut config = config.clone();
    if config.get("statistics.interval.ms").is_none() {
        config.set("statistics.interval.ms", PRODUCER_STATS_INTERVAL_MS);
    }
    config.create_with_context(DeliveryContext {
        brokers: health.up("kafka_producer"),
    })
}

/// One source's sink: its results topic and dead-letter topic, either of which may be off.
pub struct KafkaSink {
    pub producer: Arc<KafkaProducer>,
    pub results_topic: Option<String>,
    pub dead_letter_topic: Option<String>,
    /// Told when the producer's queue is full and when it has room again (readiness).
    pub health: Arc<Health>,
}

impl Sink for KafkaSink {
    fn accepts(&self, kind: RecordKind) -> bool {
        match kind {
            RecordKind::Result => self.results_topic.is_some(),
            RecordKind::DeadLetter => self.dead_letter_topic.is_some(),
        }
    }

    fn send(&self, record: OutRecord, delivered: Delivery) {
        let topic = match record.kind {
            RecordKind::Result => self.results_topic.as_deref(),
            RecordKind::DeadLetter => self.dead_letter_topic.as_deref(),
        };
        let Some(topic) = topic else {
            delivered(Ok(()));
            return;
        };
        let mut message = BaseRecord::with_opaque_to(topic, Box::new(Awaiting::Sink(delivered)))
            .payload(&record.value)
            .headers(headers_of(&record));
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        // A full local queue is backpressure: wait for the producer to drain a little.
        let mut waited = false;
        loop {
            match self.producer.send(message) {
                Ok(()) => {
                    if waited {
                        self.health.queue_full(false);
                    }
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                    if !waited {
                        self.health.queue_full(true);
                        waited = true;
                    }
                    message = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, m)) => {
                    if let Awaiting::Sink(delivered) = *m.delivery_opaque {
                        delivered(Err(e.to_string()));
                    }
                    return;
                }
            }
        }
    }
}

/// A sink record's headers (its execution and source coordinates) as Kafka headers.
pub(super) fn headers_of(record: &OutRecord) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    headers
}

/// On revocation, collects the shards' final commit points for the partitions going away and
/// commits them before they leave (anything unfinished is redelivered to the new owner).
pub struct RebalanceContext {
    pub shards: Vec<Sender<Msg>>,
    /// Used on the polling thread only (rebalance callbacks run inside `poll`); a mutex
    /// because librdkafka needs the context to be `Sync`.
    routes: std::sync::Mutex<Routes>,
    /// Source name by topic, for the consumer-lag metric.
    pub sources: HashMap<String, String>,
    /// The consumer this is the context of, to split assigned partitions' queues off it
    /// (set once it exists; weak, since the consumer owns its context).
    consumer: OnceLock<Weak<KafkaConsumer>>,
    /// Feeds were handed to shards, which wait for `consume` to release them.
    feeds_handed: AtomicBool,
    /// Readiness: the first assignment came; the brokers are not all down.
    assigned: Arc<Check>,
    brokers: Arc<Check>,
}

impl ClientContext for RebalanceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka("consumer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error("consumer", &error, reason, Some(&self.brokers));
    }

    /// librdkafka's periodic statistics carry each assigned partition's lag (high watermark
    /// minus our position): the consumer-lag gauge, without extra broker round trips.
    fn stats(&self, statistics: rdkafka::Statistics) {
        match health::all_brokers_down(&statistics) {
            true => self
                .brokers
                .down("all brokers down (librdkafka statistics)"),
            false => self.brokers.up(),
        }
        for (topic, t) in &statistics.topics {
            let Some(source) = self.sources.get(topic) else {
                continue;
            };
            for (partition, p) in &t.partitions {
                // -1: not assigned here, or not known yet; partition -1 is librdkafka's internal one.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    telemetry::consumer_lag(source, topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let partitions: Vec<(Arc<str>, i32)> = {
            let mut routes = self.routes();
            tpl.elements()
                .iter()
                .map(|e| (routes.intern(e.topic()), e.partition()))
                .collect()
        };
        let mut points = Vec::new();
        for shard in &self.shards {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if shard.send(Msg::Revoke(partitions.clone(), tx)).is_ok() {
                points.extend(rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default());
            }
        }
        if let Err(e) = commit(consumer, &points, CommitMode::Sync) {
            limited!(warn, e, "commit on revoke failed");
        }
        let mut routes = self.routes();
        for (topic, partition) in &partitions {
            routes.revoke(topic, *partition);
        }
        telemetry::partitions_assigned(routes.assigned());
        drop(routes);
        // The new owner reports these partitions' lag now; a sum over instances stays right.
        for (topic, partition) in &partitions {
            if let Some(source) = self.sources.get(&**topic) {
                telemetry::consumer_lag(source, topic, *partition, 0);
            }
        }
        tracing::info!(partitions = %describe(tpl), "partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                // Placed now, in the assignment's order, so the spread does not depend on
                // which partition's messages come first.
                let placed: Vec<(Arc<str>, i32, usize)> = {
                    let mut routes = self.routes();
                    let placed = tpl
                        .elements()
                        .iter()
                        .map(|e| {
                            let (topic, shard) = routes.route(e.topic(), e.partition());
                            (topic, e.partition(), shard)
                        })
                        .collect();
                    telemetry::partitions_assigned(routes.assigned());
                    placed
                };
                // Messages fetched before the split are on the consumer's own queue: the
                // shards read the feeds only once `consume` has routed those (in order,
                // ahead of `Msg::FeedsReady`). Read at once, a feed's later messages would
                // overtake them, and the partition's tracker would take the earlier ones for
                // redeliveries and drop them: lost (seen against a real broker).
                for (topic, partition, shard) in placed {
                    self.hand_feed(topic, partition, shard);
                }
                self.feeds_handed.store(true, Ordering::Relaxed);
                // A partition paused for backpressure before it was revoked may come back
                // still paused in librdkafka, while its new shard state knows of no pause:
                // start every assignment fetching.
                if let Err(e) = consumer.resume(tpl) {
                    limited!(warn, e, "resuming assigned partitions failed");
                }
                // Ready from the first assignment on, even an empty one (more instances than
                // partitions: this one stands by).
                self.assigned.up();
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => limited!(warn, e, "rebalance failed"),
        }
    }
}

/// `topic[0,1,2]` for the log.
fn describe(tpl: &TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for e in tpl.elements() {
        by_topic
            .entry(e.topic().to_owned())
            .or_default()
            .push(e.partition());
    }
    by_topic
        .iter()
        .map(|(t, ps)| {
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}[{}]", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl RebalanceContext {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Splits the partition's queue off the consumer and gives it to `shard`. Without the
    /// consumer (never, once [`consumer`] returned) the partition's messages stay on the
    /// consumer's own queue, which [`consume`] routes.
    fn hand_feed(&self, topic: Arc<str>, partition: i32, shard: usize) {
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            return;
        };
        let Some(mut queue) = consumer.split_partition_queue(&topic, partition) else {
            return;
        };
        let inbox = self.shards[shard].clone();
        // Called by librdkafka when the queue goes from empty to not empty.
        queue.set_nonempty_callback(move || {
            let _ = inbox.send(Msg::Fetch);
        });
        let feed = KafkaFeed {
            topic: topic.clone(),
            queue,
        };
        let _ = self.shards[shard].send(Msg::Feed((topic, partition), Box::new(feed)));
    }
}

/// One assigned partition's messages, read by its shard straight from librdkafka's buffers.
pub struct KafkaFeed {
    topic: Arc<str>,
    queue: PartitionQueue<RebalanceContext>,
}

impl PartitionFeed for KafkaFeed {
    fn take(&mut self, max: usize, start: &mut dyn FnMut(EventRef<'_>)) -> usize {
        let mut taken = 0;
        while taken < max {
            match self.queue.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    start(EventRef {
                        coords: SourceCoords {
                            topic: self.topic.clone(),
                            partition: m.partition(),
                            offset: m.offset(),
                        },
                        key: m.key(),
                        payload: m.payload().unwrap_or_default(),
                        source: None,
                    });
                    taken += 1;
                }
                Some(Err(e)) => consumer_error(&e),
                None => break,
            }
        }
        taken
    }
}

pub type KafkaConsumer = BaseConsumer<RebalanceContext>;

/// With static membership, how long the group waits for a member that stopped
/// heartbeating before it moves its partitions: long enough for a restart to come back as
/// itself (no rebalance at all), short enough that a dead instance's partitions move on.
pub const STATIC_SESSION_TIMEOUT: Duration = Duration::from_secs(30);

/// A consumer in `group_id` with offsets stored and committed only by us; a static member
/// `instance_id` if given (KIP-345).
#[allow(clippy::too_many_arguments)]
pub fn consumer(
    brokers: &str,
    group_id: &str,
    instance_id: Option<&str>,
    properties: &[(String, String)],
    shards: Vec<Sender<Msg>>,
    sources: HashMap<String, String>,
    stats_interval: Duration,
    health: &Health,
) -> Result<Arc<KafkaConsumer>, KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set(
            "statistics.interval.ms",
            stats_interval.as_millis().to_string(),
        );
    if let Some(id) = instance_id {
        config.set("group.instance.id", id).set(
            "session.timeout.ms",
            STATIC_SESSION_TIMEOUT.as_millis().to_string(),
        );
    }
    for (k, v) in properties {
        config.set(k, v);
    }
    let consumer: Arc<KafkaConsumer> = Arc::new(config.create_with_context(RebalanceContext {
        routes: std::sync::Mutex::new(Routes::new(shards.len())),
        shards,
        sources,
        consumer: OnceLock::new(),
        feeds_handed: AtomicBool::new(false),
        assigned: health.pending(
            "kafka_consumer",
            "waiting for the consumer group's first assignment",
        ),
        brokers: health.up("kafka_consumer_brokers"),
    })?);
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    Ok(consumer)
}

fn commit(
    consumer: &KafkaConsumer,
    points: &[CommitPoint],
    mode: CommitMode,
) -> Result<(), KafkaError> {
    if points.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for p in points {
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset))?;
    }
    consumer.commit(&tpl, mode)
}

fn partition_list(partitions: &[(Arc<str>, i32)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    tpl
}

/// Polls until `stop` is set: serves rebalances, routes what reaches the consumer's own queue
/// (nothing, once partitions are split off), relays backpressure, commits every
/// `commit_interval`. Returns when asked to stop; the caller shuts the shards down and makes
/// the final commit with [`commit_final`].
pub fn consume(
    consumer: &KafkaConsumer,
    shards: &[Sender<Msg>],
    control: &Receiver<Control>,
    stop: &AtomicBool,
    commit_interval: Duration,
) {
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        route(consumer, shards, consumer.poll(Duration::from_millis(100)));
        if consumer
            .context()
            .feeds_handed
            .swap(false, Ordering::Relaxed)
        {
            // Whatever was fetched before the split is queued here now, and nothing more
            // of those partitions will be: route it all, then let the shards read the feeds.
            loop {
                match consumer.poll(Duration::ZERO) {
                    None => break,
                    polled => route(consumer, shards, polled),
                }
            }
            for shard in shards {
                let _ = shard.send(Msg::FeedsReady);
            }
        }
        for request in control.try_iter() {
            let result = match &request {
                Control::Pause(p) => consumer.pause(&partition_list(p)),
                Control::Resume(p) => consumer.resume(&partition_list(p)),
            };
            if let Err(e) = result {
                limited!(warn, e, request = ?request, "pause or resume failed");
            }
        }
        telemetry::oplog::flush_suppressed();
        if last_commit.elapsed() >= commit_interval {
            last_commit = Instant::now();
            commit_progress(consumer, shards);
        }
    }
}

/// Sends a message that reached the consumer's own queue to the shard owning its partition.
fn route(
    consumer: &KafkaConsumer,
    shards: &[Sender<Msg>],
    polled: Option<Result<rdkafka::message::BorrowedMessage<'_>, KafkaError>>,
) {
    match polled {
        Some(Ok(m)) => {
            let (topic, shard) = consumer.context().routes().route(m.topic(), m.partition());
            let event = SourceEvent {
                coords: SourceCoords {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                },
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                source: None,
            };
            let _ = shards[shard].send(Msg::Event(event));
        }
        Some(Err(e)) => consumer_error(&e),
        None => {}
    }
}

/// An error event polled from a consumer queue. librdkafka has already passed it, with its
/// reason, to the client's error callback ([`client_error`], written there): only a fatal
/// one, which stops the consumer for good, is written again here.
fn consumer_error(e: &KafkaError) {
    match e {
        KafkaError::MessageConsumptionFatal(_) => limited!(error, e, "consumer error (fatal)"),
        _ => limited!(debug, e, "consumer error"),
    }
}

/// Commits every shard's advanced commit points and tells the shards which were accepted.
pub fn commit_progress(consumer: &KafkaConsumer, shards: &[Sender<Msg>]) {
    for shard in shards {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if shard.send(Msg::Commit(tx)).is_err() {
            continue;
        }
        let points = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        if points.is_empty() {
            continue;
        }
        let started = Instant::now();
        match commit(consumer, &points, CommitMode::Sync) {
            Ok(()) => {
                telemetry::commit(CommitResult::Ok, started.elapsed());
                let _ = shard.send(Msg::Committed(points));
            }
            Err(e) => {
                telemetry::commit(CommitResult::Error, started.elapsed());
                limited!(warn, e, "commit failed");
            }
        }
    }
}

/// The last commit, with the points the shards returned as they stopped.
pub fn commit_final(consumer: &KafkaConsumer, points: &[CommitPoint]) -> Result<(), KafkaError> {
    commit(consumer, points, CommitMode::Sync)
}

/// Waits until the producer has delivered everything queued, or `timeout` passes.
pub fn flush(producer: &KafkaProducer, timeout: Duration) -> Result<(), KafkaError> {
    producer.flush(timeout)
}

#[cfg(test)]
mod tests {
    use super::Routes;

    fn place(routes: &mut Routes, topic: &str, partitions: &[i32]) -> Vec<usize> {
        partitions
            .iter()
            .map(|&p| routes.route(topic, p).1)
            .collect()
    }

    #[test]
    fn hashing_put_three_of_four_partitions_on_one_shard() {
        let mut routes = Routes::new(2);
        assert_eq!(place(&mut routes, "in", &[0, 1, 2, 3]), [0, 1, 0, 1]);
        // A second topic fills in around the first.
        assert_eq!(place(&mut routes, "other", &[0, 1, 2]), [0, 1, 0]);
    }

    #[test]
    fn a_partition_keeps_its_shard_while_assigned() {
        let mut routes = Routes::new(3);
        let first = place(&mut routes, "in", &[5, 2, 9]);
        assert_eq!(
            place(&mut routes, "in", &[9, 5, 2]),
            [first[2], first[0], first[1]]
        );
        assert!(std::sync::Arc::ptr_eq(
            &routes.route("in", 5).0,
            &routes.intern("in")
        ));
    }

    #[test]
    fn revoked_partitions_free_their_shard_for_the_next_assignment() {
        let mut routes = Routes::new(2);
        assert_eq!(place(&mut routes, "in", &[0, 1, 2, 3]), [0, 1, 0, 1]);
        routes.revoke("in", 0);
        routes.revoke("in", 2);
        // Never assigned: no effect.
        routes.revoke("in", 7);
        // Shard 0 owns nothing now: an incremental assignment fills it first (ties: lowest).
        assert_eq!(place(&mut routes, "in", &[4, 6, 8]), [0, 0, 0]);
        // Still assigned: unchanged.
        assert_eq!(place(&mut routes, "in", &[1, 3]), [1, 1]);
    }
}
