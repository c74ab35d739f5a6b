//! SQS as a source and as a sink, over the SQS JSON protocol through
//! [`integrations::sqs::Sqs`](crate::integrations::sqs::Sqs), the SigV4-signed client that
//! `sqs:sendMessage` uses (no AWS SDK: one HTTP stack, see `Cargo.toml`). The only module that
//! knows SQS's receive/delete/visibility protocol.
//!
//! Source: `receivers` long-polling ReceiveMessage loops (up to 10 messages a call) on the
//! integrations runtime hand each message to a shard (round robin) as a [`SourceEvent`]. The
//! source keeps every message in flight (received, not yet deleted or released) with its
//! receipt handle, and a heartbeat task extends the visibility of those about to lapse, for
//! at most the Express cap. When the shard reports the execution's record delivered (or not
//! wanted), [`MessageAck::done`], the message is deleted (DeleteMessageBatch);
//! [`MessageAck::release`] makes it visible again at once, so the queue delivers it again and
//! its redrive policy counts the attempt. Backpressure: no ReceiveMessage while the source
//! holds as many messages as its shards may run (`shards × max_in_flight_per_shard`), nor
//! while a shard is over its byte budget (`max_held_bytes_per_shard`).
//!
//! Sink: SendMessageBatch, up to 10 records (and 256 KiB) a call, several calls in flight;
//! a record counts as delivered when SQS accepted its entry.

pub mod config;

use super::health::Check;
use super::shard::{
    Delivery, MessageAck, Msg, OutRecord, RecordKind, Sink, SourceCoords, SourceEvent,
};
use crate::asl::effect::EXPRESS_MAX_DURATION_MS;
use crate::integrations::sqs::Sqs;
use crate::telemetry::oplog::limited;
use crate::telemetry::SqsMetrics;
use crossbeam_channel::Sender;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The most entries SQS takes in one batch call, and the most bytes.
const BATCH: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;
/// Longest a delete, visibility or send call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a batch call that failed as a whole (no connection, a 5xx).
const ATTEMPTS: u32 = 3;

/// What the source needs to know of its configuration.
pub struct SourceSettings {
    /// The source's name (metric label) and its binding key (`sqs+<name>`).
    pub name: String,
    pub key: Arc<str>,
    pub queue_url: String,
    pub visibility_timeout_secs: u32,
    pub wait_time_secs: u32,
    pub receivers: usize,
    pub release_failures: bool,
    /// Messages in flight at most (received and not yet deleted or released).
    pub capacity: usize,
    /// Shards over their byte budget (`max_held_bytes_per_shard`): nothing is received
    /// while there are any.
    pub shards_over_budget: Arc<AtomicUsize>,
    /// Readiness: up while the last ReceiveMessage succeeded.
    pub receiving: Arc<Check>,
}

struct InFlight {
    receipt: String,
    received: Instant,
    visible_until: Instant,
}

/// One running SQS source; also its shards' [`MessageAck`].
pub struct SqsSource {
    settings: SourceSettings,
    client: Arc<Sqs>,
    runtime: tokio::runtime::Handle,
    in_flight: Mutex<HashMap<i64, InFlight>>,
    next: AtomicI64,
    deletes: mpsc::UnboundedSender<String>,
    /// Receipt handles handed to the deleter and not yet answered for.
    pending_deletes: AtomicUsize,
    /// Stop receiving; `closed`: stop the heartbeats too.
    stop: AtomicBool,
    closed: AtomicBool,
    metrics: SqsMetrics,
}

impl SqsSource {
    /// A source with its heartbeat and deleter running on `runtime`; it receives nothing
    /// until [`SqsSource::receive_into`].
    pub fn new(
        settings: SourceSettings,
        client: Arc<Sqs>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<SqsSource> {
        let (deletes, deletes_rx) = mpsc::unbounded_channel();
        let source = Arc::new(SqsSource {
            metrics: SqsMetrics::new(&settings.name),
            settings,
            client,
            runtime: runtime.clone(),
            in_flight: Mutex::new(HashMap::new()),
            next: AtomicI64::new(0),
            deletes,
            pending_deletes: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        runtime.spawn(source.clone().heartbeat_loop());
        runtime.spawn(source.clone().delete_loop(deletes_rx));
        source
    }

    /// Starts the receivers, handing messages to `shards`.
    pub fn receive_into(self: &Arc<Self>, shards: Vec<Sender<Msg>>) {
        let shards = Arc::new(shards);
        for _ in 0..self.settings.receivers {
            self.runtime
                .spawn(self.clone().receive_loop(shards.clone()));
        }
    }

    /// Stops taking messages from the queue (shutdown, first step).
    pub fn stop_receiving(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Shutdown, last step (the shards have stopped): waits up to `timeout` for the deletes
    /// under way, then hands every message still held back to the queue.
    pub fn finish(&self, timeout: Duration) {
        self.stop_receiving();
        let deadline = Instant::now() + timeout;
        while self.pending_deletes.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.closed.store(true, Ordering::Relaxed);
        let held: Vec<(i64, String)> = self
            .lock()
            .drain()
            .map(|(seq, m)| (seq, m.receipt))
            .collect();
        for chunk in held.chunks(BATCH) {
            let entries = chunk.iter().map(|(seq, r)| (*seq, r.as_str(), 0)).collect();
            self.metrics.released(chunk.len());
            let _ = self.runtime.block_on(self.change_visibility(entries));
        }
        self.metrics.in_flight(0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn receive_loop(self: Arc<Self>, shards: Arc<Vec<Sender<Msg>>>) {
        let s = &self.settings;
        let mut request = json!({
            "QueueUrl": s.queue_url,
            "MaxNumberOfMessages": BATCH,
            "WaitTimeSeconds": s.wait_time_secs,
            "VisibilityTimeout": s.visibility_timeout_secs,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        });
        let timeout = Duration::from_secs(u64::from(s.wait_time_secs) + 10);
        while !self.stop.load(Ordering::Relaxed) {
            // Backpressure: ask for no more than the room left, none when full.
            let room = s.capacity.saturating_sub(self.lock().len()).min(BATCH);
            if room == 0 || s.shards_over_budget.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            request["MaxNumberOfMessages"] = json!(room);
            let answer = self
                .client
                .call("ReceiveMessage", &s.queue_url, &request, timeout)
                .await;
            self.metrics.received(answer.is_ok());
            match answer {
                Ok(reply) => {
                    s.receiving.up();
                    let messages = reply.get("Messages").and_then(Value::as_array);
                    for m in messages.into_iter().flatten() {
                        self.dispatch(m, &shards);
                    }
                    // Without long polling an empty queue would be asked again at once.
                    if s.wait_time_secs == 0 && messages.is_none_or(Vec::is_empty) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Err(f) => {
                    let error = format!(
                        "{}: {}",
                        f.error.unwrap_or_default(),
                        f.cause.unwrap_or_default()
                    );
                    s.receiving.down(format!("ReceiveMessage failed: {error}"));
                    limited!(warn, error, source = %s.name, "SQS ReceiveMessage failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Hands one received message to a shard, holding it in flight until done or released.
    fn dispatch(&self, m: &Value, shards: &[Sender<Msg>]) {
        let Some(receipt) = m.get("ReceiptHandle").and_then(Value::as_str) else {
            return;
        };
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let visibility = Duration::from_secs(u64::from(self.settings.visibility_timeout_secs));
        let held = {
            let mut in_flight = self.lock();
            in_flight.insert(
                seq,
                InFlight {
                    receipt: receipt.to_owned(),
                    received: now,
                    visible_until: now + visibility,
                },
            );
            in_flight.len()
        };
        self.metrics.in_flight(held);
        let object = |key: &str| match m.get(key) {
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => Value::Object(Map::new()),
        };
        let attributes = object("Attributes");
        let receive_count = attributes
            .get("ApproximateReceiveCount")
            .and_then(Value::as_str)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(1);
        let message_id = m.get("MessageId").and_then(Value::as_str).unwrap_or("");
        let source = json!({
            "Type": "sqs",
            "QueueUrl": self.settings.queue_url,
            "MessageId": message_id,
            "ReceiveCount": receive_count,
            "Attributes": attributes,
            "MessageAttributes": object("MessageAttributes"),
        });
        let body = m.get("Body").and_then(Value::as_str).unwrap_or("");
        let event = SourceEvent {
            coords: SourceCoords {
                topic: self.settings.key.clone(),
                partition: 0,
                offset: seq,
            },
            key: Some(message_id.as_bytes().to_vec()),
            payload: body.as_bytes().to_vec(),
            source: Some(Arc::new(source)),
        };
        let shard = &shards[seq.unsigned_abs() as usize % shards.len().max(1)];
        if shard.send(Msg::Event(event)).is_err() {
            self.release(&SourceCoords {
                topic: self.settings.key.clone(),
                partition: 0,
                offset: seq,
            });
        }
    }

    /// Extends the visibility of every held message that would lapse within half a
    /// visibility timeout, until the Express cap (plus a minute) has passed since it was
    /// received: its execution has ended by then.
    async fn heartbeat_loop(self: Arc<Self>) {
        let visibility = Duration::from_secs(u64::from(self.settings.visibility_timeout_secs));
        let tick = (visibility / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let cap = Duration::from_millis(EXPRESS_MAX_DURATION_MS as u64 + 60_000);
        while !self.closed.load(Ordering::Relaxed) {
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            let due: Vec<(i64, String)> = self
                .lock()
                .iter()
                .filter(|(_, m)| {
                    m.visible_until < now + visibility / 2 && now.duration_since(m.received) < cap
                })
                .map(|(seq, m)| (*seq, m.receipt.clone()))
                .collect();
            for chunk in due.chunks(BATCH) {
                let secs = self.settings.visibility_timeout_secs;
                let entries = chunk
                    .iter()
                    .map(|(seq, r)| (*seq, r.as_str(), secs))
                    .collect();
                let extended = self.change_visibility(entries).await;
                {
                    let mut in_flight = self.lock();
                    for seq in &extended {
                        if let Some(m) = in_flight.get_mut(seq) {
                            m.visible_until = now + visibility;
                        }
                    }
                }
                self.metrics.extended(true, extended.len());
                self.metrics.extended(false, chunk.len() - extended.len());
            }
        }
    }

    /// ChangeMessageVisibilityBatch for `(seq, receipt, seconds)`; the seqs that succeeded.
    async fn change_visibility(&self, entries: Vec<(i64, &str, u32)>) -> Vec<i64> {
        let body = json!({
            "QueueUrl": self.settings.queue_url,
            "Entries": entries.iter().map(|(seq, receipt, secs)| json!({
                "Id": seq.to_string(), "ReceiptHandle": receipt, "VisibilityTimeout": secs,
            })).collect::<Vec<_>>(),
        });
        let reply = self
            .client
            .call(
                "ChangeMessageVisibilityBatch",
                &self.settings.queue_url,
                &body,
                CALL_TIMEOUT,
            )
            .await;
        match reply {
            Ok(reply) => ids(&reply, "Successful")
                .filter_map(|id| id.parse().ok())
                .collect(),
            Err(f) => {
                limited!(
                    warn,
                    f.cause.unwrap_or_default(),
                    source = %self.settings.name,
                    "SQS ChangeMessageVisibilityBatch failed"
                );
                Vec::new()
            }
        }
    }

    /// Deletes acknowledged messages in batches of up to 10, several calls in flight.
    async fn delete_loop(self: Arc<Self>, mut receipts: mpsc::UnboundedReceiver<String>) {
        while let Some(first) = receipts.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match receipts.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            tokio::spawn(self.clone().delete_batch(batch));
        }
    }

    async fn delete_batch(self: Arc<Self>, batch: Vec<String>) {
        let body = json!({
            "QueueUrl": self.settings.queue_url,
            "Entries": batch.iter().enumerate().map(|(i, receipt)| json!({
                "Id": i.to_string(), "ReceiptHandle": receipt,
            })).collect::<Vec<_>>(),
        });
        let reply = call_with_retries(
            &self.client,
            "DeleteMessageBatch",
            &self.settings.queue_url,
            &body,
        )
        .await;
        let failed = match &reply {
            Ok(reply) => ids(reply, "Failed").count(),
            Err(_) => batch.len(),
        };
        if failed > 0 {
            // The messages become visible again and run once more: at least once.
            let error = match &reply {
                Ok(reply) => reply["Failed"].to_string(),
                Err(f) => f.cause.clone().unwrap_or_default(),
            };
            limited!(
                warn,
                error,
                source = %self.settings.name,
                failed,
                batch = batch.len(),
                "SQS deletes failed, those messages will be delivered again"
            );
        }
        self.metrics.deleted(true, batch.len() - failed);
        self.metrics.deleted(false, failed);
        self.pending_deletes
            .fetch_sub(batch.len(), Ordering::Relaxed);
    }

    fn take(&self, coords: &SourceCoords) -> Option<String> {
        let mut in_flight = self.lock();
        let m = in_flight.remove(&coords.offset)?;
        self.metrics.in_flight(in_flight.len());
        Some(m.receipt)
    }
}

impl MessageAck for SqsSource {
    fn done(&self, coords: &SourceCoords) {
        if let Some(receipt) = self.take(coords) {
            self.pending_deletes.fetch_add(1, Ordering::Relaxed);
            if self.deletes.send(receipt).is_err() {
                self.pending_deletes.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn release(&self, coords: &SourceCoords) {
        let Some(receipt) = self.take(coords) else {
            return;
        };
        self.metrics.released(1);
        let client = self.client.clone();
        let queue_url = self.settings.queue_url.clone();
        self.runtime.spawn(async move {
            let body =
                json!({"QueueUrl": queue_url, "ReceiptHandle": receipt, "VisibilityTimeout": 0});
            // Failing, the message still comes back when its visibility lapses.
            let _ = client
                .call("ChangeMessageVisibility", &queue_url, &body, CALL_TIMEOUT)
                .await;
        });
    }

    fn releases_failures(&self) -> bool {
        self.settings.release_failures
    }
}

/// The `Id`s of a batch reply's `Successful` or `Failed` entries.
fn ids<'v>(reply: &'v Value, list: &str) -> impl Iterator<Item = &'v str> {
    reply
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("Id").and_then(Value::as_str))
}

/// A batch call, tried again (up to [`ATTEMPTS`]) when it failed as a whole.
async fn call_with_retries(
    client: &Sqs,
    action: &'static str,
    queue_url: &str,
    body: &Value,
) -> Result<Value, crate::asl::error::Failure> {
    let mut attempt = 1;
    loop {
        match client.call(action, queue_url, body, CALL_TIMEOUT).await {
            Err(_) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                attempt += 1;
            }
            reply => return reply,
        }
    }
}

/// A record waiting for its batch: the entry (without its `Id`), its size, its callback.
type Pending = (Value, usize, Delivery);

/// Results and dead letters to SQS queues (SendMessageBatch). Each record is sent with the
/// execution and source coordinates as String message attributes.
pub struct SqsSink {
    results: Option<mpsc::UnboundedSender<Pending>>,
    dead_letters: Option<mpsc::UnboundedSender<Pending>>,
}

impl SqsSink {
    pub fn new(
        client: Arc<Sqs>,
        runtime: &tokio::runtime::Handle,
        results_queue_url: Option<String>,
        dead_letter_queue_url: Option<String>,
        metrics: SqsMetrics,
        accepting: Arc<Check>,
    ) -> SqsSink {
        let start = |queue_url: Option<String>| {
            let queue_url = queue_url?;
            let (tx, rx) = mpsc::unbounded_channel();
            let sender = QueueSender {
                client: client.clone(),
                queue_url,
                metrics: metrics.clone(),
                accepting: accepting.clone(),
            };
            runtime.spawn(send_loop(Arc::new(sender), rx));
            Some(tx)
        };
        SqsSink {
            results: start(results_queue_url),
            dead_letters: start(dead_letter_queue_url),
        }
    }
}

impl Sink for SqsSink {
    fn accepts(&self, kind: RecordKind) -> bool {
        match kind {
            RecordKind::Result => self.results.is_some(),
            RecordKind::DeadLetter => self.dead_letters.is_some(),
        }
    }

    fn send(&self, record: OutRecord, delivered: Delivery) {
        let queue = match record.kind {
            RecordKind::Result => &self.results,
            RecordKind::DeadLetter => &self.dead_letters,
        };
        let Some(queue) = queue else {
            delivered(Ok(()));
            return;
        };
        let body = String::from_utf8_lossy(&record.value).into_owned();
        let mut attributes = Map::new();
        for (name, value) in &record.headers {
            attributes.insert(
                (*name).to_owned(),
                json!({"DataType": "String", "StringValue": value}),
            );
        }
        let size = body.len() + 256;
        let entry = json!({"MessageBody": body, "MessageAttributes": attributes});
        if let Err(mpsc::error::SendError((_, _, delivered))) = queue.send((entry, size, delivered))
        {
            delivered(Err("the SQS sink has stopped".into()));
        }
    }
}

/// What sends one queue's batches: the client, the queue, its counters and readiness (up
/// while the last SendMessageBatch call succeeded).
struct QueueSender {
    client: Arc<Sqs>,
    queue_url: String,
    metrics: SqsMetrics,
    accepting: Arc<Check>,
}

/// Groups records into batches (10 entries, 256 KiB) and sends each batch as its own task.
async fn send_loop(sender: Arc<QueueSender>, mut records: mpsc::UnboundedReceiver<Pending>) {
    let mut held: Option<Pending> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => match records.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = first.1;
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match records.try_recv() {
                Ok(p) if bytes + p.1 > BATCH_BYTES => {
                    held = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.1;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        tokio::spawn(send_batch(sender.clone(), batch));
    }
}

async fn send_batch(sender: Arc<QueueSender>, batch: Vec<Pending>) {
    let QueueSender {
        client,
        queue_url,
        metrics,
        accepting,
    } = &*sender;
    let entries: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(i, (entry, ..))| {
            let mut entry = entry.clone();
            entry["Id"] = Value::String(i.to_string());
            entry
        })
        .collect();
    let body = json!({"QueueUrl": queue_url, "Entries": entries});
    let reply = call_with_retries(client, "SendMessageBatch", queue_url, &body).await;
    match &reply {
        Ok(_) => accepting.up(),
        Err(f) => {
            let error = f.cause.clone().unwrap_or_default();
            accepting.down(format!("SendMessageBatch to {queue_url} failed: {error}"));
            limited!(warn, error, queue = %queue_url, "SQS SendMessageBatch failed");
        }
    }
    let failures: HashMap<String, String> = match &reply {
        Ok(reply) => reply
            .get("Failed")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.get("Id")?.as_str()?.to_owned(), e.to_string())))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let mut ok = 0;
    for (i, (_, _, delivered)) in batch.into_iter().enumerate() {
        let result = match &reply {
            Err(f) => Err(format!(
                "SendMessageBatch to {queue_url} failed: {}",
                f.cause.clone().unwrap_or_default()
            )),
            Ok(_) => match failures.get(&i.to_string()) {
                Some(why) => Err(format!("SendMessageBatch to {queue_url} refused: {why}")),
                None => {
                    ok += 1;
                    Ok(())
                }
            },
        };
        delivered(result);
    }
    metrics.sent(true, ok);
    metrics.sent(false, entries.len() - ok);
}
