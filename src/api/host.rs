//! The executions host: where executions started through the API (and nested executions
//! started by Task states) run. They are not Kafka events, so they live here rather than in a
//! shard, but are driven the same way: one worker thread owns every execution in an event
//! loop over a closed message enum, running them in an execution [`Driver`] (counted and
//! logged like the shards'). Nothing here blocks on I/O: API handlers only send messages and
//! read the shared [`Recent`] table.
//!
//! Finished executions are kept in a bounded table (`recent_executions`) for
//! `DescribeExecution`/`ListExecutions`; running ones are always there.

use crate::asl::effect::{ExecutionOptions, Outcome};
use crate::asl::error::{json_text, Failure};
use crate::asl::time::Millis;
use crate::asl::Program;
use crate::engine::{
    wall_millis, Clock, Driver, ExecKey, Inbox, MetricsKey, Owned, Start, TaskEvent, Telemetry,
    BUDGET_SHARES,
};
use crate::resource::TaskResource;
use crate::telemetry::exec_log::ExecutionLogger;
use crate::telemetry::Observers;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `RUNNING`, then one of the end states `DescribeExecution` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

/// What `DescribeExecution` knows about an execution.
#[derive(Clone, Debug)]
pub struct ExecutionRecord {
    pub arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub status: Status,
    pub start_ms: Millis,
    pub stop_ms: Option<Millis>,
    /// The input as JSON text.
    pub input: String,
    /// The output as JSON text (`SUCCEEDED` only).
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl ExecutionRecord {
    /// The bytes of its texts: what keeping it costs beyond a fixed size.
    fn text_bytes(&self) -> usize {
        let optional = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        self.input.len() + optional(&self.output) + optional(&self.error) + optional(&self.cause)
    }
}

/// Running executions and the last `capacity` finished ones, by ARN, the finished ones'
/// texts within `max_bytes`.
pub struct Recent {
    capacity: usize,
    max_bytes: usize,
    /// The text bytes of the finished records (see [`ExecutionRecord::text_bytes`]).
    finished_bytes: usize,
    /// Records with status `RUNNING`.
    running: usize,
    records: HashMap<String, ExecutionRecord>,
    /// Finished ARNs, oldest first: the eviction order.
    finished: VecDeque<String>,
    /// Every ARN, in start order (for `ListExecutions`, newest first); pruned lazily.
    order: VecDeque<String>,
}

impl Recent {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Recent {
            capacity,
            max_bytes,
            finished_bytes: 0,
            running: 0,
            records: HashMap::new(),
            finished: VecDeque::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&self, arn: &str) -> Option<&ExecutionRecord> {
        self.records.get(arn)
    }

    /// Newest first.
    pub fn list(&self) -> impl Iterator<Item = &ExecutionRecord> {
        self.order.iter().rev().filter_map(|a| self.records.get(a))
    }

    /// Executions running now.
    pub fn running(&self) -> usize {
        self.running
    }

    fn insert(&mut self, record: ExecutionRecord) {
        self.order.push_back(record.arn.clone());
        self.running += usize::from(record.status == Status::Running);
        if let Some(old) = self.records.insert(record.arn.clone(), record) {
            self.running -= usize::from(old.status == Status::Running);
            if old.status != Status::Running {
                // A finished record with the same ARN is replaced: it leaves the eviction
                // order and the byte count with it (else evicting it would take the new one).
                self.finished_bytes -= old.text_bytes();
                self.finished.retain(|a| *a != old.arn);
            }
        }
    }

    fn finish(&mut self, arn: &str, update: impl FnOnce(&mut ExecutionRecord)) {
        if let Some(r) = self.records.get_mut(arn) {
            let was_running = r.status == Status::Running;
            update(r);
            self.running -= usize::from(was_running && r.status != Status::Running);
            self.finished_bytes += r.text_bytes();
            self.finished.push_back(arn.to_string());
        }
        while self.finished.len() > self.capacity || self.finished_bytes > self.max_bytes {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if let Some(r) = self.records.remove(&old) {
                self.finished_bytes -= r.text_bytes();
            }
        }
        if self.order.len() > 2 * (self.records.len() + 16) {
            let records = &self.records;
            self.order.retain(|a| records.contains_key(a));
        }
    }
}

/// Called once when an execution ends, with its final record (StartSyncExecution's reply,
/// a `.sync` parent's task result).
pub type OnFinish = Box<dyn FnOnce(&ExecutionRecord) + Send>;

/// One execution to start.
pub struct StartRequest {
    pub program: Arc<Program>,
    pub input: Value,
    pub opts: ExecutionOptions,
    pub arn: String,
    pub state_machine_arn: String,
    pub start_ms: Millis,
    pub on_finish: Option<OnFinish>,
    /// The input bytes [`HostHandle::admit`] reserved for it, released once it runs.
    pub reserved_bytes: usize,
}

/// What the host admits (`[api]` `max_running_executions` and `max_held_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimits {
    pub max_running: usize,
    pub max_held_bytes: usize,
}

/// Admission state shared by the handles and the worker.
struct Admission {
    limits: HostLimits,
    /// The bytes the driver's executions hold, as of the worker's last loop.
    held: AtomicUsize,
    /// Inputs admitted but not yet started by the worker.
    reserved: AtomicUsize,
}

enum Msg {
    Start(Box<StartRequest>),
    /// A Task call's result or heartbeat (`SendTaskHeartbeat`).
    Task(TaskEvent),
    Stop {
        arn: String,
        failure: Failure,
        reply: tokio::sync::oneshot::Sender<Option<Millis>>,
    },
    Shutdown,
}

/// The handle API handlers and resources use; cheap to clone.
#[derive(Clone)]
pub struct HostHandle {
    tx: Sender<Msg>,
    recent: Arc<Mutex<Recent>>,
    admission: Arc<Admission>,
    /// The worker thread, once spawned: [`HostHandle::shutdown`] waits for it.
    worker: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl HostHandle {
    /// Admits one more execution with `input_bytes` of input, reserving them until it
    /// starts, or says why not: too many running, or the bytes held would pass the budget.
    /// The API answers `ThrottlingException`; a nested start fails its Task.
    pub fn admit(&self, input_bytes: usize) -> Result<(), String> {
        let limits = self.admission.limits;
        let running = self.recent.lock().expect("recent lock").running();
        if running >= limits.max_running {
            return Err(format!(
                "Rate exceeded: {running} executions are running, the most this host runs at once (max_running_executions)"
            ));
        }
        let reserved = self
            .admission
            .reserved
            .fetch_add(input_bytes, Ordering::Relaxed);
        let held = self.admission.held.load(Ordering::Relaxed);
        if held + reserved + input_bytes > limits.max_held_bytes {
            self.admission
                .reserved
                .fetch_sub(input_bytes, Ordering::Relaxed);
            return Err(format!(
                "Rate exceeded: the running executions hold {} bytes; another {input_bytes} would pass the host's budget of {} (max_held_bytes)",
                held + reserved,
                limits.max_held_bytes
            ));
        }
        Ok(())
    }

    /// Registers the execution as RUNNING (visible to `DescribeExecution` at once) and
    /// hands it to the worker.
    pub fn start(&self, req: StartRequest) {
        let record = ExecutionRecord {
            arn: req.arn.clone(),
            state_machine_arn: req.state_machine_arn.clone(),
            name: req.opts.name.to_string(),
            status: Status::Running,
            start_ms: req.start_ms,
            stop_ms: None,
            input: json_text(&req.input),
            output: None,
            error: None,
            cause: None,
        };
        self.recent.lock().expect("recent lock").insert(record);
        if let Err(crossbeam_channel::SendError(Msg::Start(req))) =
            self.tx.send(Msg::Start(Box::new(req)))
        {
            // The worker is gone (shutdown): end the execution rather than leave it RUNNING.
            let failure = Failure::new(crate::asl::error::names::RUNTIME, "The host stopped");
            let record = finish_record(&self.recent, &req.arn, Status::Aborted, None, &failure);
            if let (Some(f), Some(r)) = (req.on_finish, record) {
                f(&r);
            }
        }
    }

    /// Stops a running execution (ABORTED); `None` if it is not running. Returns the stop
    /// date.
    pub async fn stop(&self, arn: &str, failure: Failure) -> Option<Millis> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Stop {
                arn: arn.to_string(),
                failure,
                reply,
            })
            .ok()?;
        rx.await.ok().flatten()
    }

    pub fn describe(&self, arn: &str) -> Option<ExecutionRecord> {
        self.recent.lock().expect("recent lock").get(arn).cloned()
    }

    /// Newest first, filtered.
    pub fn list(&self, filter: impl Fn(&ExecutionRecord) -> bool) -> Vec<ExecutionRecord> {
        let recent = self.recent.lock().expect("recent lock");
        recent.list().filter(|r| filter(r)).cloned().collect()
    }

    /// Ends the worker thread (running executions are dropped) and waits for it, so that
    /// the execution logs it buffered are written before the process exits.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        let worker = self.worker.lock().expect("worker lock").take();
        if let Some(worker) = worker {
            let _ = worker.join();
        }
    }
}

/// Records an execution's end; returns its final record (even if evicted at once).
fn finish_record(
    recent: &Mutex<Recent>,
    arn: &str,
    status: Status,
    output: Option<String>,
    failure: &Failure,
) -> Option<ExecutionRecord> {
    let now = wall_millis();
    let mut last = None;
    recent.lock().expect("recent lock").finish(arn, |r| {
        r.status = status;
        r.stop_ms = Some(now.max(r.start_ms));
        r.output = output;
        r.error = failure.error.clone();
        r.cause = failure.cause.clone();
        last = Some(r.clone());
    });
    last
}

/// The worker side, before it is started (so that resources can hold a [`HostHandle`] of
/// the host they run in, as nested executions do).
pub struct Host {
    rx: Receiver<Msg>,
    handle: HostHandle,
}

impl Host {
    /// A host keeping the last `recent_executions` finished executions.
    pub fn new(recent_executions: usize, limits: HostLimits) -> Host {
        let (tx, rx) = crossbeam_channel::unbounded();
        Host {
            rx,
            handle: HostHandle {
                tx,
                // Finished records keep inputs and outputs of up to 256 KiB each: their
                // texts get the same share of the byte budget as one execution.
                recent: Arc::new(Mutex::new(Recent::new(
                    recent_executions,
                    limits.max_held_bytes / BUDGET_SHARES,
                ))),
                admission: Arc::new(Admission {
                    limits,
                    held: AtomicUsize::new(0),
                    reserved: AtomicUsize::new(0),
                }),
                worker: Arc::new(Mutex::new(None)),
            },
        }
    }

    pub fn handle(&self) -> HostHandle {
        self.handle.clone()
    }

    /// Starts the worker thread; Task calls go to `resources`, execution logs to `logger`.
    pub fn spawn(
        self,
        resources: Arc<dyn TaskResource>,
        logger: Option<ExecutionLogger>,
        observers: Observers,
    ) -> std::io::Result<HostHandle> {
        let handle = self.handle.clone();
        let inbox = HostInbox(self.handle.tx.clone());
        let mut driver = Driver::new(resources, inbox, Clock::Real, Telemetry::new(logger));
        driver.share_byte_budget(self.handle.admission.limits.max_held_bytes);
        let worker = Worker {
            rx: self.rx,
            recent: self.handle.recent.clone(),
            admission: self.handle.admission.clone(),
            driver,
            by_arn: HashMap::new(),
            metrics: HashMap::new(),
            observers,
        };
        let thread = std::thread::Builder::new()
            .name("api-host".into())
            .spawn(move || worker.run())?;
        *handle.worker.lock().expect("worker lock") = Some(thread);
        Ok(handle)
    }
}

/// An API-started execution, as the driver holds it for the host.
struct ApiExecution {
    arn: String,
    on_finish: Option<OnFinish>,
}

impl Owned for ApiExecution {
    fn execution_arn(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.arn)
    }
}

#[derive(Clone)]
struct HostInbox(Sender<Msg>);

impl Inbox for HostInbox {
    fn deliver(&self, event: TaskEvent) {
        // The host may be gone at shutdown; the result is moot then.
        let _ = self.0.send(Msg::Task(event));
    }
}

struct Worker {
    rx: Receiver<Msg>,
    recent: Arc<Mutex<Recent>>,
    admission: Arc<Admission>,
    driver: Driver<ApiExecution, HostInbox>,
    by_arn: HashMap<String, ExecKey>,
    /// Per state machine, made on its first execution.
    metrics: HashMap<Arc<str>, MetricsKey>,
    observers: Observers,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.rx.is_empty() {
                // About to wait: what the logs and metrics hold goes out now.
                self.driver.flush();
            }
            let msg = match self.driver.next_due() {
                Some(at) => {
                    let wait = (at - wall_millis()).max(0) as u64;
                    match self.rx.recv_timeout(Duration::from_millis(wait)) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                },
            };
            match msg {
                Some(Msg::Start(req)) => self.start(*req),
                Some(Msg::Task(event)) => self.driver.task_event(event),
                Some(Msg::Stop {
                    arn,
                    failure,
                    reply,
                }) => {
                    let stopped = self.stop(&arn, failure);
                    let _ = reply.send(stopped);
                }
                Some(Msg::Shutdown) => break,
                None => {}
            }
            self.driver.fire_due_timers();
            self.take_finished();
            self.admission
                .held
                .store(self.driver.held_bytes(), Ordering::Relaxed);
        }
        self.driver.flush();
    }

    fn start(&mut self, req: StartRequest) {
        let (driver, observers) = (&mut self.driver, &self.observers);
        let metrics = *self
            .metrics
            .entry(req.opts.state_machine_name.clone())
            .or_insert_with_key(|name| {
                let key = driver.count_executions(observers.metrics(name));
                if let Some(history) = observers.history(name) {
                    driver.keep_history(key, history);
                }
                key
            });
        let arn = req.arn.clone();
        let reserved = req.reserved_bytes;
        let key = self.driver.start(Start {
            program: req.program,
            input: req.input,
            opts: req.opts,
            metrics: Some(metrics),
            owned: ApiExecution {
                arn: req.arn,
                on_finish: req.on_finish,
            },
        });
        self.by_arn.insert(arn, key);
        // The driver's held bytes count it from now on.
        self.admission
            .reserved
            .fetch_sub(reserved, Ordering::Relaxed);
    }

    /// `StopExecution`: ABORTED. Returns the stop date, `None` if it was not running.
    fn stop(&mut self, arn: &str, failure: Failure) -> Option<Millis> {
        let key = self.by_arn.remove(arn)?;
        let stopped = self.driver.abort(key, failure.clone())?;
        let rec = finish_record(&self.recent, arn, Status::Aborted, None, &failure);
        if let (Some(f), Some(rec)) = (stopped.owned.on_finish, rec) {
            f(&rec);
        }
        Some(wall_millis())
    }

    /// Records the end of every execution that ended.
    fn take_finished(&mut self) {
        let mut published = false;
        while let Some(done) = self.driver.pop_finished() {
            let Some(outcome) = done.exec.outcome() else {
                continue;
            };
            let (status, output, failure) = match outcome {
                Outcome::Succeeded(v) => {
                    let no_failure = Failure {
                        error: None,
                        cause: None,
                    };
                    (Status::Succeeded, Some(json_text(v)), no_failure)
                }
                Outcome::Failed(f) => (Status::Failed, None, f.clone()),
                Outcome::TimedOut(f) => (Status::TimedOut, None, f.clone()),
            };
            let ApiExecution { arn, on_finish } = done.owned;
            self.by_arn.remove(&arn);
            let rec = finish_record(&self.recent, &arn, status, output, &failure);
            if let (Some(f), Some(rec)) = (on_finish, rec) {
                // Whoever waits on this answer (StartSyncExecution) may read /metrics and the
                // execution log next: both hold the execution first. (Every execution popped
                // here was counted when it ended, so one publish covers them all.)
                if !published {
                    self.driver.flush();
                    published = true;
                }
                f(&rec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(arn: &str, input_bytes: usize) -> ExecutionRecord {
        ExecutionRecord {
            arn: arn.into(),
            state_machine_arn: "sm".into(),
            name: arn.into(),
            status: Status::Running,
            start_ms: 0,
            stop_ms: None,
            input: "x".repeat(input_bytes),
            output: None,
            error: None,
            cause: None,
        }
    }

    #[test]
    fn finished_records_past_the_byte_share_are_forgotten_oldest_first() {
        // 1,000 finished records of 256 KiB inputs and outputs were kept whatever their size.
        let mut recent = Recent::new(1000, 1_000_000);
        for i in 0..5 {
            let arn = format!("e{i}");
            recent.insert(running(&arn, 200_000));
            recent.finish(&arn, |r| {
                r.status = Status::Succeeded;
                r.output = Some("y".repeat(100_000));
            });
        }
        // Three of 300 KB fit in 1 MB; the two oldest went.
        let kept: Vec<&str> = recent.list().map(|r| r.arn.as_str()).collect();
        assert_eq!(kept, ["e4", "e3", "e2"]);
        assert_eq!(recent.finished_bytes, 900_000);
        // The same ARN started again replaces its finished record, bytes and all.
        recent.insert(running("e4", 10));
        assert_eq!(recent.finished_bytes, 600_000);
        assert_eq!(recent.running(), 1);
        recent.finish("e4", |r| r.status = Status::Succeeded);
        assert_eq!(recent.finished_bytes, 600_010);
        // A running record is never evicted, however large.
        recent.insert(running("big", 5_000_000));
        assert!(recent.get("big").is_some());
        assert_eq!(recent.running(), 1);
    }
}
