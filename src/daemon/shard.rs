//! A shard: one worker thread that owns a set of partitions and every execution started from
//! them.
//!
//! The shard runs one event loop over a closed set of messages ([`Msg`]): a new source event,
//! a task result, a sink delivery report, a commit request, a partition revocation, shutdown.
//! Its executions run in an execution [`Driver`] (Waits and retry backoffs are timer entries,
//! so a hundred thousand waiting executions cost an entry each, not a thread); the shard adds
//! what a source needs: offset trackers or per-message acks, sinks, backpressure. Partitions
//! are routed to shards by the consumer, so per-partition bookkeeping needs no locks.
//!
//! A source message is *done* when its execution has finished and its result or dead-letter
//! record has been acknowledged by the sink; only then may its offset be committed (see
//! `docs/kafka-ack-contract.md`). For an exactly-once source it is done when its record is
//! built: records then leave in offset order, each batch with the commit point it completes,
//! for the shard's [`Transactions`] to commit together.

use super::dead_letter::DeadLetterPayload;
use super::offsets::PartitionTracker;
use crate::asl::effect::{ExecutionOptions, Outcome, WorkflowType};
use crate::asl::error::Failure;
use crate::asl::size::PAYLOAD_LIMIT_BYTES;
use crate::asl::time::Millis;
use crate::asl::vm::Execution;
use crate::asl::Program;
use crate::engine::{
    wall_millis, Clock, Driver, Inbox, MetricsKey, Owned, Start, TaskEvent, Telemetry,
};
use crate::resource::TaskResource;
use crate::telemetry::exec_log::ExecutionLogger;
use crate::telemetry::history::MachineHistory;
use crate::telemetry::{DlqReason, RejectReason, ShardMetrics, SourceMetrics, StateMachineMetrics};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where a source message came from: what its offset commit and its output records name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceCoords {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// A partition of a topic.
pub type TopicPartition = (Arc<str>, i32);

/// One message from a source, handed to the shard as a [`Msg::Event`].
#[derive(Clone, Debug)]
pub struct SourceEvent {
    pub coords: SourceCoords,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// `$$.Execution.Source` of its execution (an SQS message's id, receive count and
    /// attributes), and the `source` of its dead-letter record; `None` for Kafka.
    pub source: Option<Arc<Value>>,
}

/// A source message as the shard reads it: borrowed from wherever it arrived (a
/// [`SourceEvent`], or a [`PartitionFeed`]'s buffer), so nothing is copied before the shard
/// knows what it keeps.
pub struct EventRef<'a> {
    pub coords: SourceCoords,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub source: Option<&'a Arc<Value>>,
}

impl SourceEvent {
    fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            coords: self.coords.clone(),
            key: self.key.as_deref(),
            payload: &self.payload,
            source: self.source.as_ref(),
        }
    }
}

/// A partition whose messages the shard takes itself, on its own thread, instead of
/// receiving each as a [`Msg::Event`] from the consumer's thread (Kafka: librdkafka's queue
/// for that partition). It announces waiting messages with [`Msg::Fetch`].
pub trait PartitionFeed: Send {
    /// Hands up to `max` waiting messages to `start`, in order, without blocking; returns
    /// how many it handed.
    fn take(&mut self, max: usize, start: &mut dyn FnMut(EventRef<'_>)) -> usize;
}

/// How many messages a shard takes from one feed before it looks at its inbox again (task
/// results, delivery reports, commit requests must not wait behind a backlog).
const FEED_BATCH: usize = 256;

/// What a record written to a sink is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// The output of a SUCCEEDED execution.
    Result,
    /// A failed or timed-out execution, or an event that could not start one.
    DeadLetter,
}

/// A record for a sink: keyed by the source key, headers carrying the execution and the
/// source coordinates.
#[derive(Clone, Debug)]
pub struct OutRecord {
    pub kind: RecordKind,
    pub dead_letter_reason: Option<DlqReason>,
    pub coords: SourceCoords,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, String)>,
    pub value: Vec<u8>,
}

/// Reports whether a sink durably accepted a record. Called exactly once.
/// `Sync` because librdkafka hands the callback across threads with its delivery report.
pub type Delivery = Box<dyn FnOnce(Result<(), String>) + Send + Sync>;

/// Where results and dead letters go. A Kafka producer in production (acknowledging on its
/// delivery report), a vector in tests.
pub trait Sink: Send + Sync {
    /// Whether records of this kind are wanted at all; a switched-off sink counts as an
    /// immediate acknowledgement.
    fn accepts(&self, kind: RecordKind) -> bool;
    fn send(&self, record: OutRecord, delivered: Delivery);
}

/// Sinks side by side (a Kafka topic for results, an SQS queue for dead letters…): each
/// record goes to the first that accepts its kind.
pub struct Sinks(pub Vec<Arc<dyn Sink>>);

impl Sink for Sinks {
    fn accepts(&self, kind: RecordKind) -> bool {
        self.0.iter().any(|s| s.accepts(kind))
    }

    fn send(&self, record: OutRecord, delivered: Delivery) {
        match self.0.iter().find(|s| s.accepts(record.kind)) {
            Some(sink) => sink.send(record, delivered),
            None => delivered(Ok(())),
        }
    }
}

/// A source that acknowledges each message itself (SQS: delete it from its queue) instead of
/// by offset commits. Its messages are not tracked by partition; the source keeps them until
/// one of these is called.
pub trait MessageAck: Send + Sync {
    /// The message is done: its record was delivered (or is not wanted).
    fn done(&self, coords: &SourceCoords);
    /// Hand the message back undone (its record could not be delivered, or failures are
    /// released): the queue delivers it again, and its redrive policy applies.
    fn release(&self, coords: &SourceCoords);
    /// Whether failed executions are released rather than dead-lettered (config `on_failure`).
    fn releases_failures(&self) -> bool;
}

/// A record of an exactly-once source, for its shard's next transaction.
#[derive(Clone, Debug)]
pub struct TxnRecord {
    pub topic: Arc<str>,
    pub record: OutRecord,
}

/// Commits a shard's records of exactly-once sources together with the input offsets they
/// complete, atomically (Kafka transactions). One per shard: a transaction holds the
/// shard's own partitions only.
pub trait Transactions: Send {
    /// Queues records, in input-offset order, with the commit points they complete, for
    /// the next transaction; never blocks.
    fn write(&mut self, records: Vec<TxnRecord>, offsets: Vec<CommitPoint>);
    /// Commits everything written so far and waits for the broker: before a revoke
    /// completes, and at shutdown. `Err`: it was aborted, the group having moved on.
    fn flush(&mut self) -> Result<(), String>;
}

/// Where an exactly-once source's records go: topics written in its shard's transactions.
#[derive(Clone, Debug, Default)]
pub struct OutputTopics {
    pub results: Option<Arc<str>>,
    pub dead_letters: Option<Arc<str>>,
}

/// A commit point: the consumer group offset of one partition may move to `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPoint {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// What a shard asks of the consumer that feeds it.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    /// Stop fetching these partitions: the shard is full.
    Pause(Vec<(Arc<str>, i32)>),
    /// Fetch them again.
    Resume(Vec<(Arc<str>, i32)>),
}

/// Everything that can happen to a shard.
pub enum Msg {
    Event(SourceEvent),
    /// A newly assigned partition's feed, read from the next [`Msg::FeedsReady`] on.
    Feed(TopicPartition, Box<dyn PartitionFeed>),
    /// The feeds handed over so far may be read: every message of their partitions that
    /// reached the consumer's own queue before the split has been sent ahead of this (as
    /// [`Msg::Event`]), so reading the feeds now keeps each partition in offset order.
    FeedsReady,
    /// A feed that was empty has messages waiting.
    Fetch,
    /// A Task call's result or heartbeat.
    Task(TaskEvent),
    Delivered {
        coords: SourceCoords,
        result: Result<(), String>,
    },
    /// Reply with the commit points that advanced since the last confirmed commit.
    Commit(Sender<Vec<CommitPoint>>),
    /// The broker confirmed these commits (see `docs/kafka-ack-contract.md`).
    Committed(Vec<CommitPoint>),
    /// These partitions are taken away: reply with their final commit points, then forget
    /// them (their unfinished messages will be redelivered elsewhere).
    Revoke(Vec<(Arc<str>, i32)>, Sender<Vec<CommitPoint>>),
    /// Take no new events; end once every execution is done, or at `deadline` (wall ms).
    Shutdown {
        deadline: Millis,
    },
}

/// What a source topic is bound to: the state machine its events start, and the sink its
/// results and dead letters go to.
pub struct Binding {
    pub program: Arc<Program>,
    pub state_machine: Arc<str>,
    pub workflow_type: WorkflowType,
    pub sink: Arc<dyn Sink>,
    /// What each shard counts its executions and events in (it takes its own copies).
    pub state_machine_metrics: StateMachineMetrics,
    pub source_metrics: SourceMetrics,
    /// Where the state machine's executions are kept (`[history]`), if they are.
    pub history: Option<Arc<MachineHistory>>,
    /// `Some` for a source acknowledging per message (SQS); `None`: offsets (Kafka).
    pub acks: Option<Arc<dyn MessageAck>>,
    /// `Some` for an exactly-once source: its records and offsets go to the shard's
    /// [`Transactions`] (in place of `sink`) once every earlier event of the partition is done.
    pub exactly_once: Option<OutputTopics>,
}

/// Bindings by source topic, shared by every shard.
pub type Bindings = Arc<HashMap<Arc<str>, Arc<Binding>>>;

/// A binding as one shard uses it: with its own batch of the source's metrics, its key to
/// its driver's state machine metrics and its own copy of the state machine's name, so that
/// an event touches nothing another shard writes (shared reference counts and counters
/// cost ~6% of the throughput, `docs/performance.md`).
struct ShardBinding {
    binding: Arc<Binding>,
    state_machine: Arc<str>,
    source_metrics: SourceMetrics,
    metrics: MetricsKey,
}

/// Events after which a shard publishes its source counts even if its inbox never empties
/// (its driver does the same for the executions' counts).
const PUBLISH_EVERY: u32 = 512;

pub struct ShardConfig {
    pub index: usize,
    pub max_in_flight: usize,
    /// Pause when the executions hold this many bytes (`max_held_bytes_per_shard`; see
    /// [`Driver::held_bytes`]), resume below half.
    pub max_held_bytes: usize,
    /// How many shards are over their byte budget now, shared with the SQS sources, which
    /// receive nothing meanwhile (messages go to every shard in turn).
    pub shards_over_budget: Arc<AtomicUsize>,
    /// Execution logs; `None` logs nothing (and records no history).
    pub logger: Option<ExecutionLogger>,
    /// The shard's transactional writer, when a source is exactly-once.
    pub transactions: Option<Box<dyn Transactions>>,
}

/// The source message an execution runs for: what its record needs when it ends.
struct SourceMessage {
    /// The execution's name, from its source coordinates.
    name: Arc<str>,
    /// Index into the shard's bindings.
    binding: usize,
    /// The shard's copy of its state machine's name.
    state_machine: Arc<str>,
    coords: SourceCoords,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    source: Option<Arc<Value>>,
}

impl Owned for SourceMessage {
    fn execution_arn(&self) -> Cow<'_, str> {
        Cow::Owned(execution_arn(&self.state_machine, &self.name))
    }
}

/// Task results reach the shard as messages in its own inbox.
#[derive(Clone)]
struct ShardInbox(Sender<Msg>);

impl Inbox for ShardInbox {
    fn deliver(&self, event: TaskEvent) {
        // The shard may be gone at shutdown; the result is moot then.
        let _ = self.0.send(Msg::Task(event));
    }
}

/// Counters a shard keeps about itself (also the source of its metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub events: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub dead_letters: u64,
    pub transitions: u64,
}

pub struct Shard {
    config: ShardConfig,
    bindings: Vec<ShardBinding>,
    /// Index into `bindings`, by source topic.
    by_topic: HashMap<Arc<str>, usize>,
    /// Events since the counts were last published.
    unpublished: u32,
    rx: Receiver<Msg>,
    /// The shard's own inbox, for completions arriving from other threads.
    tx: Sender<Msg>,
    control: Sender<Control>,
    /// Every execution this shard runs, with its timers.
    driver: Driver<SourceMessage, ShardInbox>,
    trackers: HashMap<(Arc<str>, i32), PartitionTracker>,
    /// Exactly-once partitions' records waiting for every earlier event of their partition
    /// to be done, by offset (`None`: an event that writes no record).
    held: HashMap<TopicPartition, BTreeMap<i64, Option<TxnRecord>>>,
    /// Exactly-once partitions whose commit point may have moved since their last release.
    unreleased: Vec<TopicPartition>,
    /// Records sent to a sink and not yet acknowledged: shutdown waits for them.
    unacknowledged: usize,
    paused: bool,
    /// Over `max_held_bytes` (and counted in `shards_over_budget`).
    over_budget: bool,
    metrics: ShardMetrics,
    shutdown_deadline: Option<Millis>,
    stats: ShardStats,
    /// What every execution starts from (cloned: shared names, no allocation per event).
    default_options: ExecutionOptions,
    /// The assigned partitions this shard takes messages from itself.
    feeds: Vec<(TopicPartition, Box<dyn PartitionFeed>)>,
    /// How many of `feeds` (the first ones) may be read; the others wait for
    /// [`Msg::FeedsReady`].
    feeds_ready: usize,
    /// A feed may hold messages: it announced them, or the last round stopped at a full batch.
    feeds_waiting: bool,
}

impl Shard {
    /// A shard and the sender that feeds it.
    pub fn new(
        mut config: ShardConfig,
        bindings: Bindings,
        resources: Arc<dyn TaskResource>,
        control: Sender<Control>,
    ) -> (Shard, Sender<Msg>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let telemetry = Telemetry::new(config.logger.take());
        let mut driver = Driver::new(resources, ShardInbox(tx.clone()), Clock::Real, telemetry);
        driver.share_byte_budget(config.max_held_bytes);
        let mut by_topic = HashMap::new();
        let bindings = bindings
            .iter()
            .enumerate()
            .map(|(index, (topic, binding))| {
                by_topic.insert(topic.clone(), index);
                let metrics = driver.count_executions(binding.state_machine_metrics.clone());
                if let Some(history) = &binding.history {
                    driver.keep_history(metrics, history.clone());
                }
                ShardBinding {
                    binding: binding.clone(),
                    state_machine: Arc::from(&*binding.state_machine),
                    source_metrics: binding.source_metrics.clone(),
                    metrics,
                }
            })
            .collect();
        let shard = Shard {
            bindings,
            by_topic,
            unpublished: 0,
            rx,
            tx: tx.clone(),
            control,
            driver,
            trackers: HashMap::new(),
            held: HashMap::new(),
            unreleased: Vec::new(),
            unacknowledged: 0,
            paused: false,
            over_budget: false,
            metrics: ShardMetrics::new(config.index),
            shutdown_deadline: None,
            stats: ShardStats::default(),
            default_options: ExecutionOptions::default(),
            feeds: Vec::new(),
            feeds_ready: 0,
            feeds_waiting: false,
            config,
        };
        (shard, tx)
    }

    /// Runs the event loop until shutdown completes (or every sender is gone); returns the
    /// shard's counters and its final commit points, for the consumer to commit.
    pub fn run(mut self) -> (ShardStats, Vec<CommitPoint>) {
        loop {
            let now = wall_millis();
            let wake = [self.driver.next_due(), self.shutdown_deadline]
                .into_iter()
                .flatten()
                .min();
            let timeout = match wake {
                _ if self.feeds_waiting => Duration::ZERO,
                Some(at) => Duration::from_millis((at - now).max(0) as u64),
                None => Duration::from_secs(3600),
            };
            if self.rx.is_empty() {
                // About to wait: what the logs and metrics hold goes out now.
                self.publish();
            }
            match self.rx.recv_timeout(timeout) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Take what else is queued before looking at timers: one wake-up, many messages.
            while let Ok(msg) = self.rx.try_recv() {
                self.handle(msg);
            }
            if self.feeds_waiting {
                self.take_from_feeds();
            }
            self.driver.fire_due_timers();
            self.take_finished();
            self.release();
            if let Some(deadline) = self.shutdown_deadline {
                let drained = self.driver.is_empty() && self.unacknowledged == 0;
                if drained || wall_millis() >= deadline {
                    break;
                }
            }
        }
        self.publish();
        self.release();
        if let Some(transactions) = &mut self.config.transactions {
            if let Err(e) = transactions.flush() {
                crate::telemetry::oplog::limited!(error, e, "the last transaction was aborted");
            }
        }
        let points = self.commit_points(None);
        (self.stats, points)
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Event(event) => self.start(event.as_ref()),
            Msg::Feed(partition, feed) => self.feeds.push((partition, feed)),
            Msg::FeedsReady => {
                self.feeds_ready = self.feeds.len();
                // What arrived before its announcement was wired up is waiting already.
                self.feeds_waiting = true;
            }
            Msg::Fetch => self.feeds_waiting = true,
            Msg::Task(event) => {
                self.driver.task_event(event);
                self.take_finished();
            }
            Msg::Delivered { coords, result } => {
                self.unacknowledged = self.unacknowledged.saturating_sub(1);
                match result {
                    Ok(()) => self.complete(&coords),
                    // The producer already retried for its whole message timeout. The offset
                    // stays uncommitted: the event is redelivered after a restart or a
                    // rebalance, never skipped. A queue message goes back to its queue.
                    Err(e) => {
                        if let Some(acks) = self.acks_of(&coords) {
                            acks.release(&coords);
                        }
                        crate::telemetry::oplog::limited!(
                            warn,
                            e,
                            topic = %coords.topic,
                            partition = coords.partition,
                            offset = coords.offset,
                            "delivery failed, the event will be redelivered"
                        )
                    }
                }
            }
            Msg::Commit(reply) => {
                let _ = reply.send(self.commit_points(None));
            }
            Msg::Committed(points) => {
                for p in points {
                    if let Some(t) = self.trackers.get_mut(&(p.topic, p.partition)) {
                        t.mark_committed(p.offset);
                    }
                }
            }
            Msg::Revoke(partitions, reply) => {
                // An exactly-once partition's offsets travel in its transactions: the last
                // one commits before the partition may go.
                self.release();
                let transactional = partitions.iter().any(|tp| self.held.contains_key(tp));
                if let Some(transactions) =
                    self.config.transactions.as_mut().filter(|_| transactional)
                {
                    if let Err(e) = transactions.flush() {
                        crate::telemetry::oplog::limited!(warn, e, "transaction on revoke aborted");
                    }
                }
                let points = self.commit_points(Some(&partitions));
                let _ = reply.send(points);
                self.forget(&partitions);
            }
            Msg::Shutdown { deadline } => self.shutdown_deadline = Some(deadline),
        }
    }

    /// About to wait: writes out the execution logs and publishes every count.
    fn publish(&mut self) {
        self.driver.flush();
        self.publish_source_metrics();
    }

    fn publish_source_metrics(&mut self) {
        for b in &mut self.bindings {
            b.source_metrics.flush();
        }
        self.unpublished = 0;
    }

    /// Takes a batch from every feed. A feed that filled its batch may hold more, so the
    /// loop comes back without waiting; one that ran dry announces its next message.
    fn take_from_feeds(&mut self) {
        if self.shutdown_deadline.is_some() {
            // Left unread (redelivered after a restart), and not looked at again: the loop
            // must not spin on them while the executions in hand drain.
            self.feeds_waiting = false;
            return;
        }
        let mut feeds = std::mem::take(&mut self.feeds);
        let mut full = false;
        for (_, feed) in feeds.iter_mut().take(self.feeds_ready) {
            full |= feed.take(FEED_BATCH, &mut |event| self.start(event)) == FEED_BATCH;
        }
        self.feeds = feeds;
        self.feeds_waiting = full;
    }

    /// Starts an execution for one source event, or dead-letters the event if it cannot
    /// start one. Either way the event's offset is tracked until its record is delivered.
    fn start(&mut self, event: EventRef<'_>) {
        if self.shutdown_deadline.is_some() {
            return; // not tracked: it will be redelivered after restart
        }
        let Some(&b) = self.by_topic.get(&event.coords.topic) else {
            return; // not a source topic of this daemon: nothing subscribes to it
        };
        if self.bindings[b].binding.acks.is_none() {
            let tracker_key = (event.coords.topic.clone(), event.coords.partition);
            if self.bindings[b].binding.exactly_once.is_some()
                && !self.held.contains_key(&tracker_key)
            {
                self.held.insert(tracker_key.clone(), BTreeMap::new());
            }
            let tracker = self.trackers.entry(tracker_key).or_default();
            if !tracker.received(event.coords.offset) {
                return; // a redelivery of a message already in hand
            }
        }
        self.stats.events += 1;
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY {
            // Only the counts: execution logs stay batched until the buffer fills.
            self.publish_source_metrics();
        }
        let binding = &mut self.bindings[b];
        binding.source_metrics.event_consumed();
        let name = execution_name(&event.coords);
        let input = if event.payload.len() > PAYLOAD_LIMIT_BYTES {
            binding
                .source_metrics
                .payload_rejected(RejectReason::OversizePayload);
            let cause = format!(
                "The event payload is {} bytes, over the {PAYLOAD_LIMIT_BYTES}-byte limit of an execution input.",
                event.payload.len()
            );
            let failure = Failure::new(crate::asl::error::names::DATA_LIMIT_EXCEEDED, cause);
            Err((DlqReason::OversizePayload, failure))
        } else {
            crate::asl::json::from_slice(event.payload).map_err(|e| {
                binding
                    .source_metrics
                    .payload_rejected(RejectReason::InvalidJson);
                let failure = Failure::new(
                    "Expressway.InvalidJson",
                    format!("The event payload is not JSON: {e}"),
                );
                (DlqReason::InvalidJson, failure)
            })
        };
        // Kept for the record: its key, and the payload itself if it ends as a dead letter.
        let message = SourceMessage {
            name,
            binding: b,
            state_machine: binding.state_machine.clone(),
            coords: event.coords,
            key: event.key.map(<[u8]>::to_vec),
            payload: event.payload.to_vec(),
            source: event.source.cloned(),
        };
        let input = match input {
            Ok(input) => input,
            Err((reason, failure)) => {
                self.dead_letter(message, reason, &failure, None);
                return;
            }
        };
        let binding = &self.bindings[b];
        let opts = ExecutionOptions {
            name: message.name.clone(),
            state_machine_name: message.state_machine.clone(),
            workflow_type: binding.binding.workflow_type,
            source: message.source.clone(),
            ..self.default_options.clone()
        };
        self.driver.start(Start {
            program: binding.binding.program.clone(),
            input,
            opts,
            metrics: Some(binding.metrics),
            owned: message,
        });
        self.take_finished();
        self.apply_backpressure();
    }

    /// Sends the records of the executions that ended.
    fn take_finished(&mut self) {
        let mut any = false;
        while let Some(done) = self.driver.pop_finished() {
            self.finish(done.exec, done.owned);
            any = true;
        }
        if any {
            self.apply_backpressure();
        }
    }

    /// An execution ended: send its record.
    fn finish(&mut self, exec: Box<Execution>, m: SourceMessage) {
        self.stats.transitions += exec.transitions();
        let failed_state = exec.failed_state().map(str::to_string);
        match exec.into_outcome() {
            Some(Outcome::Succeeded(output)) => {
                self.stats.succeeded += 1;
                let record = OutRecord {
                    kind: RecordKind::Result,
                    dead_letter_reason: None,
                    headers: source_headers(&m.coords, &m.name),
                    coords: m.coords,
                    key: m.key,
                    value: result_text(&output),
                };
                self.send(m.binding, record);
            }
            Some(Outcome::Failed(f)) => {
                self.stats.failed += 1;
                self.dead_letter(m, DlqReason::Failed, &f, failed_state);
            }
            Some(Outcome::TimedOut(f)) => {
                self.stats.timed_out += 1;
                self.dead_letter(m, DlqReason::TimedOut, &f, failed_state);
            }
            None => {}
        }
    }

    fn dead_letter(
        &mut self,
        m: SourceMessage,
        reason: DlqReason,
        failure: &Failure,
        state: Option<String>,
    ) {
        let ShardBinding {
            binding,
            source_metrics,
            ..
        } = &mut self.bindings[m.binding];
        if let Some(acks) = binding.acks.as_ref().filter(|a| a.releases_failures()) {
            // The queue's own redrive policy decides (config `on_failure = "release"`).
            acks.release(&m.coords);
            return;
        }
        source_metrics.dlq_record(reason);
        self.stats.dead_letters += 1;
        let c = &m.coords;
        let source = match m.source.as_deref() {
            Some(source) => DeadLetterSource::Queue(source),
            None => DeadLetterSource::Kafka(KafkaCoords {
                topic: &c.topic,
                partition: c.partition,
                offset: c.offset,
            }),
        };
        let value = DeadLetterRecord {
            error: failure.error.as_deref(),
            cause: failure.cause.as_deref(),
            reason: reason.as_str(),
            state: state.as_deref(),
            execution: &m.name,
            state_machine: &binding.state_machine,
            source,
            payload: DeadLetterPayload::of(&m.payload),
        };
        let value = serde_json::to_vec(&value).expect("a dead-letter record serialises");
        let record = OutRecord {
            kind: RecordKind::DeadLetter,
            dead_letter_reason: Some(reason),
            headers: source_headers(c, &m.name),
            coords: m.coords.clone(),
            key: m.key,
            value,
        };
        self.send(m.binding, record);
    }

    /// Sends a record to the sink of binding `b` (an exactly-once source's: holds it for
    /// its transaction).
    fn send(&mut self, b: usize, record: OutRecord) {
        let ShardBinding {
            binding,
            source_metrics,
            ..
        } = &mut self.bindings[b];
        if let Some(topics) = &binding.exactly_once {
            let topic = match record.kind {
                RecordKind::Result => topics.results.clone(),
                RecordKind::DeadLetter => topics.dead_letters.clone(),
            };
            if topic.is_some() && record.kind == RecordKind::Result {
                source_metrics.result_produced();
            }
            let tp = (record.coords.topic.clone(), record.coords.partition);
            let offset = record.coords.offset;
            if let Some(held) = self.held.get_mut(&tp) {
                held.insert(offset, topic.map(|topic| TxnRecord { topic, record }));
                if let Some(tracker) = self.trackers.get_mut(&tp) {
                    tracker.completed(offset);
                }
                if !self.unreleased.contains(&tp) {
                    self.unreleased.push(tp);
                }
            }
            return;
        }
        if !binding.sink.accepts(record.kind) {
            self.complete(&record.coords);
            return;
        }
        if record.kind == RecordKind::Result {
            source_metrics.result_produced();
        }
        self.unacknowledged += 1;
        let tx = self.tx.clone();
        let coords = record.coords.clone();
        self.bindings[b].binding.sink.send(
            record,
            Box::new(move |result| {
                let _ = tx.send(Msg::Delivered { coords, result });
            }),
        );
    }

    /// The per-message acknowledger of the source `coords` come from, if it has one.
    fn acks_of(&self, coords: &SourceCoords) -> Option<Arc<dyn MessageAck>> {
        let b = *self.by_topic.get(&coords.topic)?;
        self.bindings[b].binding.acks.clone()
    }

    /// The source message is done: its record is durable (or its sink is off).
    fn complete(&mut self, coords: &SourceCoords) {
        if let Some(acks) = self.acks_of(coords) {
            acks.done(coords);
        } else if let Some(t) = self
            .trackers
            .get_mut(&(coords.topic.clone(), coords.partition))
        {
            t.completed(coords.offset);
        }
    }

    /// Hands the records of exactly-once partitions whose commit point moved to the
    /// shard's transactions, in offset order, with that commit point: a transaction then
    /// holds exactly the records below the offsets it commits.
    fn release(&mut self) {
        if self.unreleased.is_empty() {
            return;
        }
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        for tp in self.unreleased.drain(..) {
            let (Some(tracker), Some(held)) = (self.trackers.get_mut(&tp), self.held.get_mut(&tp))
            else {
                continue;
            };
            let Some(offset) = tracker.committable() else {
                continue;
            };
            // Released, not yet committed; the transaction commits it or the process stops.
            tracker.mark_committed(offset);
            let later = held.split_off(&offset);
            records.extend(std::mem::replace(held, later).into_values().flatten());
            offsets.push(CommitPoint {
                topic: tp.0,
                partition: tp.1,
                offset,
            });
        }
        if let Some(transactions) = &mut self.config.transactions {
            if !offsets.is_empty() {
                transactions.write(records, offsets);
            }
        }
    }

    /// Commit points of the partitions whose offsets the consumer commits (not those of
    /// exactly-once sources: their transactions commit them).
    fn commit_points(&self, only: Option<&[(Arc<str>, i32)]>) -> Vec<CommitPoint> {
        let mut points = Vec::new();
        for (tp, tracker) in &self.trackers {
            let (topic, partition) = tp;
            if only.is_some_and(|o| !o.iter().any(|(t, p)| t == topic && p == partition)) {
                continue;
            }
            if self.held.contains_key(tp) {
                continue;
            }
            if let Some(offset) = tracker.committable() {
                points.push(CommitPoint {
                    topic: topic.clone(),
                    partition: *partition,
                    offset,
                });
            }
        }
        points
    }

    /// Drops revoked partitions: their trackers and their running executions.
    fn forget(&mut self, partitions: &[(Arc<str>, i32)]) {
        let gone = |c: &SourceCoords| {
            partitions
                .iter()
                .any(|(t, p)| *t == c.topic && *p == c.partition)
        };
        self.driver.cancel_where(|m| gone(&m.coords));
        let gone_feed =
            |(t, p): &TopicPartition| partitions.iter().any(|(rt, rp)| rt == t && rp == p);
        let ready_gone = self.feeds[..self.feeds_ready]
            .iter()
            .filter(|(tp, _)| gone_feed(tp))
            .count();
        self.feeds_ready -= ready_gone;
        self.feeds.retain(|(tp, _)| !gone_feed(tp));
        self.trackers
            .retain(|(t, p), _| !partitions.iter().any(|(rt, rp)| rt == t && rp == p));
        self.held
            .retain(|(t, p), _| !partitions.iter().any(|(rt, rp)| rt == t && rp == p));
        self.unreleased
            .retain(|(t, p)| !partitions.iter().any(|(rt, rp)| rt == t && rp == p));
        self.apply_backpressure();
    }

    /// Pauses this shard's partitions when it holds `max_in_flight` executions or
    /// `max_held_bytes`, and resumes them when both are below half of that (hysteresis, so
    /// the consumer is not toggled per message).
    fn apply_backpressure(&mut self) {
        let partitions = || self.trackers.keys().cloned().collect::<Vec<_>>();
        // Records held behind an earlier event of their partition count too: their memory
        // grows with the input as executions do.
        self.metrics.in_flight(self.driver.len());
        let in_flight = self.driver.len() + self.held.values().map(BTreeMap::len).sum::<usize>();
        let held = self.driver.held_bytes();
        let max_held = self.config.max_held_bytes;
        if !self.over_budget && held >= max_held {
            self.over_budget = true;
            self.config
                .shards_over_budget
                .fetch_add(1, Ordering::Relaxed);
        } else if self.over_budget && held <= max_held / 2 {
            self.over_budget = false;
            self.config
                .shards_over_budget
                .fetch_sub(1, Ordering::Relaxed);
        }
        let full = in_flight >= self.config.max_in_flight || self.over_budget;
        if !self.paused && full {
            self.paused = true;
            let paused = partitions();
            self.metrics.partitions_paused(paused.len());
            let _ = self.control.send(Control::Pause(paused));
        } else if self.paused && in_flight <= self.config.max_in_flight / 2 && !self.over_budget {
            self.paused = false;
            self.metrics.partitions_paused(0);
            let _ = self.control.send(Control::Resume(partitions()));
        }
    }
}

/// A dead-letter topic's record: why, where, and the event itself.
#[derive(Serialize)]
struct DeadLetterRecord<'a> {
    error: Option<&'a str>,
    cause: Option<&'a str>,
    reason: &'static str,
    state: Option<&'a str>,
    execution: &'a str,
    state_machine: &'a str,
    source: DeadLetterSource<'a>,
    #[serde(flatten)]
    payload: DeadLetterPayload<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum DeadLetterSource<'a> {
    Kafka(KafkaCoords<'a>),
    /// What the queue source put in `$$.Execution.Source`.
    Queue(&'a Value),
}

#[derive(Serialize)]
struct KafkaCoords<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

/// An output's compact JSON, written into a buffer sized for a typical result at once
/// rather than grown from serde_json's 128 bytes in steps.
fn result_text(output: &Value) -> Vec<u8> {
    let mut text = Vec::with_capacity(1024);
    serde_json::to_writer(&mut text, output).expect("a JSON value serialises");
    text
}

/// Deterministic: a redelivered event gets the same execution name.
fn execution_name(c: &SourceCoords) -> Arc<str> {
    Arc::from(format!("{}-{}-{}", c.topic, c.partition, c.offset))
}

/// The execution's ARN as logs name it (Express form; the account is the engine's default).
fn execution_arn(state_machine: &str, name: &str) -> String {
    let opts = ExecutionOptions::default();
    format!(
        "arn:aws:states:{}:{}:express:{}:{name}",
        opts.region, opts.account, state_machine
    )
}

fn source_headers(c: &SourceCoords, execution: &str) -> Vec<(&'static str, String)> {
    vec![
        ("expressway-execution", execution.to_string()),
        ("expressway-source-topic", c.topic.to_string()),
        ("expressway-source-partition", c.partition.to_string()),
        ("expressway-source-offset", c.offset.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::TaskReply;
    use crate::runner::NoResources;
    use serde_json::json;
    use std::sync::atomic::AtomicBool;
    use std::sync::Mutex;

    /// A sink that keeps what it is sent and acknowledges at once.
    #[derive(Default)]
    struct VecSink(Mutex<Vec<OutRecord>>);

    impl Sink for VecSink {
        fn accepts(&self, _: RecordKind) -> bool {
            true
        }
        fn send(&self, record: OutRecord, delivered: Delivery) {
            self.0.lock().unwrap().push(record);
            delivered(Ok(()));
        }
    }

    struct Harness {
        tx: Sender<Msg>,
        sink: Arc<VecSink>,
        control: Receiver<Control>,
        thread: std::thread::JoinHandle<(ShardStats, Vec<CommitPoint>)>,
    }

    fn shard(definition: Value, max_in_flight: usize) -> Harness {
        shard_with(definition, max_in_flight, Arc::new(NoResources))
    }

    fn shard_with(
        definition: Value,
        max_in_flight: usize,
        resources: Arc<dyn TaskResource>,
    ) -> Harness {
        let (shard, tx, sink, control) = unstarted(definition, max_in_flight, resources);
        start(shard, tx, sink, control)
    }

    fn start(
        shard: Shard,
        tx: Sender<Msg>,
        sink: Arc<VecSink>,
        control: Receiver<Control>,
    ) -> Harness {
        let thread = std::thread::spawn(move || shard.run());
        Harness {
            tx,
            sink,
            control,
            thread,
        }
    }

    /// A shard not yet running on its thread, for tests that drive `handle` and look inside.
    fn unstarted(
        definition: Value,
        max_in_flight: usize,
        resources: Arc<dyn TaskResource>,
    ) -> (Shard, Sender<Msg>, Arc<VecSink>, Receiver<Control>) {
        unstarted_with(
            definition,
            max_in_flight,
            usize::MAX,
            Arc::default(),
            resources,
        )
    }

    fn unstarted_with(
        definition: Value,
        max_in_flight: usize,
        max_held_bytes: usize,
        shards_over_budget: Arc<AtomicUsize>,
        resources: Arc<dyn TaskResource>,
    ) -> (Shard, Sender<Msg>, Arc<VecSink>, Receiver<Control>) {
        let program = Arc::new(crate::asl::compile(&definition).expect("valid definition"));
        let sink = Arc::new(VecSink::default());
        let (control_tx, control) = crossbeam_channel::unbounded();
        let binding = Binding {
            program,
            state_machine: Arc::from("sm"),
            workflow_type: WorkflowType::Express,
            sink: sink.clone(),
            state_machine_metrics: StateMachineMetrics::new("sm"),
            source_metrics: SourceMetrics::new("src", "in"),
            history: None,
            acks: None,
            exactly_once: None,
        };
        let bindings: Bindings =
            Arc::new([(Arc::from("in"), Arc::new(binding))].into_iter().collect());
        let (shard, tx) = Shard::new(
            ShardConfig {
                index: 0,
                max_in_flight,
                max_held_bytes,
                shards_over_budget,
                logger: None,
                transactions: None,
            },
            bindings,
            resources,
            control_tx,
        );
        (shard, tx, sink, control)
    }

    fn event(offset: i64, payload: &str) -> Msg {
        Msg::Event(SourceEvent {
            coords: SourceCoords {
                topic: Arc::from("in"),
                partition: 0,
                offset,
            },
            key: Some(format!("k{offset}").into_bytes()),
            payload: payload.as_bytes().to_vec(),
            source: None,
        })
    }

    /// Asks for commit points and confirms them, as the consumer does after the broker
    /// accepted the commit.
    fn commit(h: &Harness) -> Vec<CommitPoint> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        h.tx.send(Msg::Commit(tx)).unwrap();
        let points = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        h.tx.send(Msg::Committed(points.clone())).unwrap();
        points
    }

    fn stop(h: Harness) -> (ShardStats, Vec<OutRecord>) {
        h.tx.send(Msg::Shutdown {
            deadline: wall_millis() + 5_000,
        })
        .unwrap();
        let (stats, _) = h.thread.join().unwrap();
        let records = std::mem::take(&mut *h.sink.0.lock().unwrap());
        (stats, records)
    }

    fn waits_for_input_seconds() -> Value {
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.wait", "End": true}}})
    }

    /// A service that accepts every call and hands its task token to the test.
    struct TokenTaker(Mutex<crossbeam_channel::Sender<Arc<str>>>);

    impl TaskResource for TokenTaker {
        fn invoke(&self, call: crate::asl::effect::TaskCall, reply: TaskReply) {
            let token = call.task_token.expect("a callback task has a token");
            let _ = self.0.lock().unwrap().send(token);
            reply.complete(Ok(json!({})));
        }
    }

    #[test]
    fn heartbeats_keep_a_callback_task_alive() {
        use crate::callbacks::{Callbacks, WaitForTaskToken};
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (tokens_tx, tokens) = crossbeam_channel::unbounded();
        let resources = WaitForTaskToken::new(TokenTaker(Mutex::new(tokens_tx)), callbacks.clone());
        let h = shard_with(
            json!({"StartAt": "T", "States": {"T": {"Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "HeartbeatSeconds": 1, "End": true}}}),
            10,
            Arc::new(resources),
        );
        h.tx.send(event(0, "{}")).unwrap();
        let token = tokens.recv_timeout(Duration::from_secs(2)).unwrap();
        // 1.5 s in all: without the heartbeats reaching the execution, it would time out.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(500));
            callbacks.send_heartbeat(&token).unwrap();
        }
        callbacks.send_success(&token, json!({"ok": true})).unwrap();
        let (stats, records) = stop(h);
        assert_eq!(stats.succeeded, 1, "{stats:?}");
        assert_eq!(records[0].value, br#"{"ok":true}"#);
    }

    /// Every execution schedules its 5-minute deadline; finished executions used to leave
    /// theirs in the shard until due, about 35 bytes per event for five minutes (the daemon's
    /// memory grew by 1 MB/s at 30,000 events/s).
    #[test]
    fn finished_executions_leave_no_timers_behind() {
        let (mut shard, _tx, sink, _control) =
            unstarted(waits_for_input_seconds(), 100, Arc::new(NoResources));
        shard.handle(event(0, r#"{"wait": 60}"#));
        for offset in 1..100 {
            shard.handle(event(offset, r#"{"wait": 0}"#));
        }
        assert_eq!(sink.0.lock().unwrap().len(), 99);
        // Only the waiting execution's: its deadline and its Wait.
        let owners = shard.driver.timer_owners();
        assert_eq!(owners.len(), 2);
        assert!(owners
            .into_iter()
            .all(|key| shard.driver.get(key).is_some()));
        shard.handle(Msg::Revoke(
            vec![(Arc::from("in"), 0)],
            crossbeam_channel::bounded(1).0,
        ));
        assert!(
            shard.driver.timer_owners().is_empty(),
            "revoked executions' timers remain"
        );
    }

    /// One write to [`Transactions`]: its records' offsets and its commit points.
    type Write = (Vec<i64>, Vec<i64>);

    /// What a fake [`Transactions`] was handed: each write, and how many flushes.
    #[derive(Clone, Default)]
    struct Written {
        writes: Arc<Mutex<Vec<Write>>>,
        flushes: Arc<AtomicUsize>,
    }

    impl Transactions for Written {
        fn write(&mut self, records: Vec<TxnRecord>, offsets: Vec<CommitPoint>) {
            assert!(records.iter().all(|r| &*r.topic == "out"));
            self.writes.lock().unwrap().push((
                records.iter().map(|r| r.record.coords.offset).collect(),
                offsets.iter().map(|p| p.offset).collect(),
            ));
        }
        fn flush(&mut self) -> Result<(), String> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    /// A shard whose one source is exactly-once, writing to `written`.
    fn exactly_once_shard(definition: Value, written: &Written) -> Harness {
        let program = Arc::new(crate::asl::compile(&definition).expect("valid definition"));
        let sink = Arc::new(VecSink::default());
        let (control_tx, control) = crossbeam_channel::unbounded();
        let binding = Binding {
            program,
            state_machine: Arc::from("sm"),
            workflow_type: WorkflowType::Express,
            sink: sink.clone(),
            state_machine_metrics: StateMachineMetrics::new("sm"),
            source_metrics: SourceMetrics::new("src", "in"),
            history: None,
            acks: None,
            exactly_once: Some(OutputTopics {
                results: Some(Arc::from("out")),
                dead_letters: None,
            }),
        };
        let bindings: Bindings =
            Arc::new([(Arc::from("in"), Arc::new(binding))].into_iter().collect());
        let (shard, tx) = Shard::new(
            ShardConfig {
                index: 0,
                max_in_flight: 100,
                max_held_bytes: usize::MAX,
                shards_over_budget: Arc::default(),
                logger: None,
                transactions: Some(Box::new(written.clone())),
            },
            bindings,
            Arc::new(NoResources),
            control_tx,
        );
        start(shard, tx, sink, control)
    }

    /// The exactly-once invariant on the shard's side: a transaction's records are exactly
    /// the events between the commit point before it and the one it commits, in offset
    /// order, so a crash can neither keep a record whose offset is not committed nor commit
    /// an offset whose record is lost. Records behind a running execution wait for it.
    #[test]
    fn exactly_once_records_go_out_in_offset_order_with_the_offsets_they_complete() {
        let written = Written::default();
        let h = exactly_once_shard(waits_for_input_seconds(), &written);
        h.tx.send(event(0, r#"{"wait": 0}"#)).unwrap();
        h.tx.send(event(1, r#"{"wait": 1}"#)).unwrap();
        for offset in 2..6 {
            h.tx.send(event(offset, r#"{"wait": 0}"#)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(*written.writes.lock().unwrap(), [(vec![0], vec![1])]);
        // Never through the consumer's offset commits.
        assert_eq!(commit(&h), []);
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(
            *written.writes.lock().unwrap(),
            [(vec![0], vec![1]), (vec![1, 2, 3, 4, 5], vec![6])]
        );
        // A revoke commits the open transaction before the partition goes.
        let (tx, rx) = crossbeam_channel::bounded(1);
        h.tx.send(Msg::Revoke(vec![(Arc::from("in"), 0)], tx))
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), []);
        assert_eq!(written.flushes.load(Ordering::Relaxed), 1);
        let (stats, sunk) = stop(h);
        assert_eq!(stats.succeeded, 6);
        assert!(
            sunk.is_empty(),
            "an exactly-once record went to the plain sink"
        );
        assert_eq!(
            written.flushes.load(Ordering::Relaxed),
            2,
            "no flush at shutdown"
        );
    }

    #[test]
    fn commit_never_passes_an_execution_that_finishes_later() {
        let h = shard(waits_for_input_seconds(), 100);
        h.tx.send(event(0, r#"{"wait": 1}"#)).unwrap();
        for offset in 1..5 {
            h.tx.send(event(offset, r#"{"wait": 0}"#)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        // Offsets 1-4 are done, 0 is waiting: the group offset must not move past 0.
        assert!(
            commit(&h).iter().all(|p| p.offset <= 0),
            "committed past offset 0"
        );
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(
            commit(&h),
            vec![CommitPoint {
                topic: Arc::from("in"),
                partition: 0,
                offset: 5
            }]
        );
        let (stats, records) = stop(h);
        assert_eq!(stats.succeeded, 5);
        assert_eq!(records.len(), 5);
    }

    #[test]
    fn bad_events_and_failures_become_dead_letters_and_complete() {
        let h = shard(
            json!({"StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Done"}], "Default": "Boom"},
                "Done": {"Type": "Succeed"},
                "Boom": {"Type": "Fail", "Error": "NotOk", "Cause": "ok was false"}}}),
            100,
        );
        h.tx.send(event(0, "{not json")).unwrap();
        h.tx.send(event(
            1,
            &format!("\"{}\"", "x".repeat(PAYLOAD_LIMIT_BYTES)),
        ))
        .unwrap();
        h.tx.send(event(2, r#"{"ok": false}"#)).unwrap();
        h.tx.send(event(3, r#"{"ok": true}"#)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            commit(&h)[0].offset,
            4,
            "every event is done, dead-lettered or not"
        );
        let (stats, records) = stop(h);
        assert_eq!((stats.dead_letters, stats.succeeded), (3, 1));
        let letters: Vec<Value> = records
            .iter()
            .filter(|r| r.kind == RecordKind::DeadLetter)
            .map(|r| serde_json::from_slice(&r.value).unwrap())
            .collect();
        assert_eq!(letters[0]["reason"], "invalid_json");
        assert_eq!(letters[1]["reason"], "oversize_payload");
        assert_eq!(letters[1]["error"], "States.DataLimitExceeded");
        assert_eq!(letters[2]["reason"], "failed");
        assert_eq!(letters[2]["error"], "NotOk");
        assert_eq!(letters[2]["cause"], "ok was false");
        assert_eq!(letters[2]["state"], "Boom");
        assert_eq!(
            letters[2]["source"],
            json!({"topic": "in", "partition": 0, "offset": 2})
        );
        assert_eq!(letters[2]["payload"], json!({"ok": false}));
        let result = records
            .iter()
            .find(|r| r.kind == RecordKind::Result)
            .unwrap();
        assert_eq!(result.key.as_deref(), Some(&b"k3"[..]));
        assert!(result
            .headers
            .contains(&("expressway-source-offset", "3".to_string())));
    }

    #[test]
    fn a_full_shard_pauses_its_partitions_and_resumes_when_drained() {
        let h = shard(waits_for_input_seconds(), 2);
        h.tx.send(event(0, r#"{"wait": 1}"#)).unwrap();
        h.tx.send(event(1, r#"{"wait": 1}"#)).unwrap();
        let first = h.control.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, Control::Pause(vec![(Arc::from("in"), 0)]));
        let second = h.control.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(second, Control::Resume(vec![(Arc::from("in"), 0)]));
        stop(h);
    }

    #[test]
    fn a_shard_over_its_byte_budget_pauses_and_resumes_when_drained() {
        let over = Arc::new(AtomicUsize::new(0));
        let (shard, tx, sink, control) = unstarted_with(
            waits_for_input_seconds(),
            100,
            16_384,
            over.clone(),
            Arc::new(NoResources),
        );
        let h = start(shard, tx, sink, control);
        // Six executions of ~3 KB each (each within its quarter of the budget) hold more
        // than 16 KiB: far below 100 executions.
        let pad = "x".repeat(3000);
        for i in 0..6 {
            h.tx.send(event(i, &format!(r#"{{"wait": 1, "pad": "{pad}"}}"#)))
                .unwrap();
        }
        let first = h.control.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, Control::Pause(vec![(Arc::from("in"), 0)]));
        assert_eq!(over.load(Ordering::Relaxed), 1, "the SQS sources see it");
        let second = h.control.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(second, Control::Resume(vec![(Arc::from("in"), 0)]));
        assert_eq!(over.load(Ordering::Relaxed), 0);
        stop(h);
    }

    /// A partition's messages, handed out as a librdkafka partition queue would: in order,
    /// as many as asked for. Counts the calls that found it empty; `dropped` is set when the
    /// shard lets go of it.
    struct VecFeed {
        next: i64,
        end: i64,
        empty_takes: Arc<AtomicUsize>,
        dropped: Arc<AtomicBool>,
    }

    impl PartitionFeed for VecFeed {
        fn take(&mut self, max: usize, start: &mut dyn FnMut(EventRef<'_>)) -> usize {
            let n = (self.end - self.next).clamp(0, max as i64);
            if n == 0 {
                self.empty_takes.fetch_add(1, Ordering::Relaxed);
            }
            for offset in self.next..self.next + n {
                let key = format!("k{offset}");
                start(EventRef {
                    coords: SourceCoords {
                        topic: Arc::from("in"),
                        partition: 0,
                        offset,
                    },
                    key: Some(key.as_bytes()),
                    payload: br#"{"wait": 0}"#,
                    source: None,
                });
            }
            self.next += n;
            n as usize
        }
    }

    impl Drop for VecFeed {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_feed_is_read_in_batches_until_dry_and_dropped_when_its_partition_is_revoked() {
        let h = shard(waits_for_input_seconds(), 100_000);
        let (empty_takes, dropped) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let feed = VecFeed {
            next: 0,
            end: 3 * FEED_BATCH as i64 + 5,
            empty_takes: empty_takes.clone(),
            dropped: dropped.clone(),
        };
        // Handed over with messages already waiting and no `Fetch`: all of them are read.
        h.tx.send(Msg::Feed((Arc::from("in"), 0), Box::new(feed)))
            .unwrap();
        h.tx.send(Msg::FeedsReady).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while h.sink.0.lock().unwrap().len() < 3 * FEED_BATCH + 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "not every message was read"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Run dry, it is not polled again until it announces more.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(empty_takes.load(Ordering::Relaxed), 0);
        let (tx, rx) = crossbeam_channel::bounded(1);
        h.tx.send(Msg::Revoke(vec![(Arc::from("in"), 0)], tx))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            dropped.load(Ordering::Relaxed),
            "the revoked partition's feed is kept"
        );
        let (stats, records) = stop(h);
        assert_eq!(stats.succeeded, 3 * FEED_BATCH as u64 + 5);
        let offsets: Vec<i64> = records.iter().map(|r| r.coords.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "read out of order");
    }

    #[test]
    fn revoked_partitions_are_committed_and_forgotten() {
        let h = shard(waits_for_input_seconds(), 100);
        h.tx.send(event(0, r#"{"wait": 0}"#)).unwrap();
        h.tx.send(event(1, r#"{"wait": 60}"#)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (tx, rx) = crossbeam_channel::bounded(1);
        h.tx.send(Msg::Revoke(vec![(Arc::from("in"), 0)], tx))
            .unwrap();
        let points = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(points[0].offset, 1, "offset 0 is done, 1 is not");
        // The 60 s execution was dropped: shutdown ends at once, with nothing in flight.
        let started = std::time::Instant::now();
        let (stats, _) = stop(h);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(stats.succeeded, 1);
    }
}
