//! Exactly-once output: a shard's records and the input offsets they complete, committed
//! together in Kafka transactions (`delivery = "exactly_once"`).
//!
//! One transactional producer per shard, on a thread of its own, so that the shard never
//! waits for a commit (it only does on a revoke and at shutdown, [`Transactions::flush`]).
//! The shard hands over records in input-offset order, each batch with the commit points it
//! completes; a transaction gathers batches for `interval`, then sends the offsets with the
//! consumer's group metadata (KIP-447: a zombie whose generation is gone cannot commit) and
//! commits. A batch never straddles two transactions, so a committed offset always comes
//! with exactly the records below it, and a crash aborts both together.

use super::{headers_of, KafkaConsumer, LoggingContext, DEFAULT_TRANSACTION_TIMEOUT};
use crate::daemon::shard::{CommitPoint, TopicPartition, Transactions, TxnRecord};
use crate::telemetry::{self, CommitResult};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type TxnProducer = ThreadedProducer<LoggingContext>;

/// The consumer whose group the offsets are committed to: set once it exists (it is made
/// after the shards), weak so that dropping it still closes it.
pub type ConsumerSlot = Arc<OnceLock<Weak<KafkaConsumer>>>;

/// How many times a transaction that failed with an abortable error is tried again (its
/// records produced again in a new transaction) before the daemon gives up and stops.
const ATTEMPTS: usize = 5;

enum Request {
    Write(Vec<TxnRecord>, Vec<CommitPoint>),
    Flush(Sender<Result<(), String>>),
}

/// A shard's transactional producer, running on its own thread.
pub struct KafkaTransactions {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaTransactions {
    /// Creates the producer `transactional_id` (with `base`'s properties: brokers, TLS…),
    /// registers it with the broker, which fences an earlier producer of the same id and
    /// aborts its open transaction, and starts its thread.
    pub fn start(
        base: &ClientConfig,
        transactional_id: &str,
        consumer: ConsumerSlot,
        interval: Duration,
    ) -> Result<KafkaTransactions, String> {
        let producer: TxnProducer = base
            .clone()
            .set("transactional.id", transactional_id)
            .set(
                "transaction.timeout.ms",
                DEFAULT_TRANSACTION_TIMEOUT.as_millis().to_string(),
            )
            .create_with_context(LoggingContext("transactional producer"))
            .map_err(|e| format!("creating the transactional producer {transactional_id}: {e}"))?;
        producer
            .init_transactions(DEFAULT_TRANSACTION_TIMEOUT)
            .map_err(|e| {
                format!("registering the transactional producer {transactional_id} (does the broker support transactions?): {e}")
            })?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let committer = Committer {
            id: transactional_id.to_owned(),
            producer,
            consumer,
            interval,
        };
        let thread = std::thread::Builder::new()
            .name(format!("txn-{transactional_id}"))
            .spawn(move || committer.run(rx))
            .map_err(|e| format!("starting the committer of {transactional_id}: {e}"))?;
        Ok(KafkaTransactions {
            requests: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Transactions for KafkaTransactions {
    fn write(&mut self, records: Vec<TxnRecord>, offsets: Vec<CommitPoint>) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(Request::Write(records, offsets));
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let requests = self.requests.as_ref().ok_or("the committer has stopped")?;
        requests
            .send(Request::Flush(tx))
            .map_err(|_| "the committer has stopped")?;
        rx.recv().map_err(|_| "the committer has stopped")?
    }
}

impl Drop for KafkaTransactions {
    /// Commits what is open and waits for the thread.
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A transaction under way: what it holds, so that it can be produced again after an abort.
struct Open {
    records: Vec<TxnRecord>,
    offsets: HashMap<TopicPartition, i64>,
    /// The group generation the records were made in (KIP-447): a commit after the group
    /// moved on is refused by the broker instead of writing records another member redoes.
    group: ConsumerGroupMetadata,
    due: Instant,
}

struct Committer {
    id: String,
    producer: TxnProducer,
    consumer: ConsumerSlot,
    interval: Duration,
}

impl Committer {
    fn run(self, requests: Receiver<Request>) {
        let mut open: Option<Open> = None;
        loop {
            let request = match &open {
                None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(t) => requests.recv_timeout(t.due.saturating_duration_since(Instant::now())),
            };
            match request {
                Ok(Request::Write(records, offsets)) => {
                    if open.is_none() {
                        open = self.begin();
                    }
                    if let Some(t) = &mut open {
                        self.produce(&records);
                        for p in offsets {
                            let offset = t.offsets.entry((p.topic, p.partition)).or_default();
                            *offset = (*offset).max(p.offset);
                        }
                        t.records.extend(records);
                    }
                }
                Ok(Request::Flush(reply)) => {
                    let result = open.take().map_or(Ok(()), |t| self.commit(t));
                    let _ = reply.send(result);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(t) = open.take() {
                        let _ = self.commit(t);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(t) = open.take() {
                        let _ = self.commit(t);
                    }
                    return;
                }
            }
        }
    }

    /// Begins a transaction in the consumer's current generation; `None` (the records are
    /// dropped) when there is no group to commit to, i.e. the consumer is gone.
    fn begin(&self) -> Option<Open> {
        let group = self
            .consumer
            .get()
            .and_then(Weak::upgrade)
            .and_then(|c| c.group_metadata())?;
        if let Err(e) = self.producer.begin_transaction() {
            self.give_up(&e);
        }
        Some(Open {
            records: Vec::new(),
            offsets: HashMap::new(),
            group,
            due: Instant::now() + self.interval,
        })
    }

    fn produce(&self, records: &[TxnRecord]) {
        for TxnRecord { topic, record } in records {
            let mut message = BaseRecord::<[u8], [u8]>::to(topic)
                .payload(&record.value)
                .headers(headers_of(record));
            if let Some(key) = &record.key {
                message = message.key(key);
            }
            loop {
                match self.producer.send(message) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                        message = m;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    // Refused before it reached librdkafka (too large, say): the transaction
                    // would commit its offset without it, a record skipped. Stop instead.
                    Err((e, _)) => self.give_up(&format!("producing to {topic} failed: {e}")),
                }
            }
        }
    }

    /// Sends the offsets and commits; on an abortable error aborts and tries the whole
    /// transaction again. `Err` only when the group generation moved on (the partitions are
    /// being taken away and their new owner redoes these events).
    fn commit(&self, t: Open) -> Result<(), String> {
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in &t.offsets {
            let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset));
        }
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                if let Err(e) = self.producer.begin_transaction() {
                    self.give_up(&e);
                }
                self.produce(&t.records);
            }
            let started = Instant::now();
            let mut result = self
                .producer
                .send_offsets_to_transaction(&offsets, &t.group, DEFAULT_TRANSACTION_TIMEOUT)
                .and_then(|()| {
                    self.producer
                        .commit_transaction(DEFAULT_TRANSACTION_TIMEOUT)
                });
            // A retriable failure (a timeout, say) is retried as the same call.
            for retry in 1..ATTEMPTS {
                match &result {
                    Err(e) if transaction_error(e).is_some_and(|e| e.is_retriable()) => {
                        std::thread::sleep(Duration::from_millis(100 * retry as u64));
                        result = self
                            .producer
                            .commit_transaction(DEFAULT_TRANSACTION_TIMEOUT);
                    }
                    _ => break,
                }
            }
            let Err(e) = result else {
                telemetry::commit(CommitResult::Ok, started.elapsed());
                return Ok(());
            };
            telemetry::commit(CommitResult::Error, started.elapsed());
            // Only an abortable failure may be tried again: anything else (fatal, fenced,
            // unsupported by the broker) stops.
            if !transaction_error(&e).is_some_and(|e| e.txn_requires_abort() && !e.is_fatal()) {
                self.give_up(&e);
            }
            let error = transaction_error(&e).expect("checked above");
            if let Err(abort) = self.producer.abort_transaction(DEFAULT_TRANSACTION_TIMEOUT) {
                self.give_up(&abort);
            }
            if matches!(
                error.code(),
                RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::FencedInstanceId
            ) {
                tracing::warn!(
                    producer = %self.id,
                    error = %e,
                    "transaction aborted, the group moved on; the partitions' new owner runs these events"
                );
                return Err(e.to_string());
            }
            tracing::warn!(
                producer = %self.id,
                error = %e,
                "transaction aborted; trying again ({attempt} of {ATTEMPTS})"
            );
            std::thread::sleep(Duration::from_millis(100 * attempt as u64));
        }
        self.give_up(&format!("the transaction failed {ATTEMPTS} times"))
    }

    /// A transactional producer that cannot go on (fenced by a newer instance with the same
    /// id, or failing past its retries) must not write another record: the process stops,
    /// and its restart resumes from the last committed transaction.
    fn give_up(&self, e: &dyn std::fmt::Display) -> ! {
        tracing::error!(
            producer = %self.id,
            error = %e,
            "transactional producer failed; stopping, so that no record is written twice or skipped (a restart resumes from the last committed transaction)"
        );
        std::process::exit(75)
    }
}

fn transaction_error(e: &KafkaError) -> Option<&rdkafka::error::RDKafkaError> {
    match e {
        KafkaError::Transaction(error) => Some(error),
        _ => None,
    }
}
