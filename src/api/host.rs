//! The executions host: where executions started through the API (and nested executions
//! started by Task states) run. They are not Kafka events, so they live here rather than in a
//! shard, but are driven the same way: one worker thread owns every execution in an event
//! loop over a closed message enum; the VM yields `Effect::Invoke` (handed to a
//! `TaskResource`, whose result comes back as a message) and `Effect::Timer` (one heap).
//! Nothing here blocks on I/O: API handlers only send messages and read the shared
//! [`Recent`] table.
//!
//! Finished executions are kept in a bounded table (`recent_executions`) for
//! `DescribeExecution`/`ListExecutions`; running ones are always there.

use crate::asl::error::{json_text, Failure};
use crate::asl::vm::{Effect, Execution, ExecutionOptions, Millis, Outcome, Token};
use crate::asl::Program;
use crate::resource::{Completion, Heartbeat, TaskReply, TaskResource};
use crate::runner::wall_millis;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
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

/// Running executions and the last `capacity` finished ones, by ARN.
pub struct Recent {
    capacity: usize,
    records: HashMap<String, ExecutionRecord>,
    /// Finished ARNs, oldest first: the eviction order.
    finished: VecDeque<String>,
    /// Every ARN, in start order (for `ListExecutions`, newest first); pruned lazily.
    order: VecDeque<String>,
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Recent {
            capacity,
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

    fn insert(&mut self, record: ExecutionRecord) {
        self.order.push_back(record.arn.clone());
        self.records.insert(record.arn.clone(), record);
    }

    fn finish(&mut self, arn: &str, update: impl FnOnce(&mut ExecutionRecord)) {
        if let Some(r) = self.records.get_mut(arn) {
            update(r);
            self.finished.push_back(arn.to_string());
        }
        while self.finished.len() > self.capacity {
            if let Some(old) = self.finished.pop_front() {
                self.records.remove(&old);
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
}

enum Msg {
    Start(Box<StartRequest>),
    TaskDone {
        id: u64,
        token: Token,
        result: Result<Value, Failure>,
    },
    /// A callback Task's worker is alive (`SendTaskHeartbeat`).
    TaskHeartbeat {
        id: u64,
        token: Token,
    },
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
}

impl HostHandle {
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

    /// Ends the worker thread (running executions are dropped).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
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
    pub fn new(recent_executions: usize) -> Host {
        let (tx, rx) = crossbeam_channel::unbounded();
        Host {
            rx,
            handle: HostHandle {
                tx,
                recent: Arc::new(Mutex::new(Recent::new(recent_executions))),
            },
        }
    }

    pub fn handle(&self) -> HostHandle {
        self.handle.clone()
    }

    /// Starts the worker thread; Task calls go to `resources`.
    pub fn spawn(self, resources: Arc<dyn TaskResource>) -> std::io::Result<HostHandle> {
        let handle = self.handle.clone();
        let worker = Worker {
            rx: self.rx,
            tx: self.handle.tx.clone(),
            recent: self.handle.recent.clone(),
            resources,
            running: HashMap::new(),
            next_id: 0,
            by_arn: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
        };
        std::thread::Builder::new()
            .name("api-host".into())
            .spawn(move || worker.run())?;
        Ok(handle)
    }
}

struct Running {
    exec: Execution,
    arn: String,
    on_finish: Option<OnFinish>,
}

struct Worker {
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    recent: Arc<Mutex<Recent>>,
    resources: Arc<dyn TaskResource>,
    running: HashMap<u64, Running>,
    next_id: u64,
    by_arn: HashMap<String, u64>,
    timers: BinaryHeap<Reverse<(Millis, u64, u64, Token)>>,
    timer_seq: u64,
}

impl Worker {
    fn run(mut self) {
        loop {
            let msg = match self.timers.peek() {
                Some(Reverse((at, ..))) => {
                    let wait = (*at - wall_millis()).max(0) as u64;
                    match self.rx.recv_timeout(Duration::from_millis(wait)) {
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return,
                },
            };
            match msg {
                Some(Msg::Start(req)) => self.start(*req),
                Some(Msg::TaskDone { id, token, result }) => {
                    if let Some(r) = self.running.get_mut(&id) {
                        r.exec.complete_task(token, result, wall_millis());
                        self.advance(id);
                    }
                }
                Some(Msg::TaskHeartbeat { id, token }) => {
                    if let Some(r) = self.running.get_mut(&id) {
                        r.exec.heartbeat(token, wall_millis());
                        // Schedules the timer for the new heartbeat deadline.
                        self.advance(id);
                    }
                }
                Some(Msg::Stop {
                    arn,
                    failure,
                    reply,
                }) => {
                    let stopped = self.by_arn.get(&arn).copied().map(|id| {
                        let r = self.running.remove(&id).expect("indexed execution");
                        self.by_arn.remove(&arn);
                        let rec =
                            finish_record(&self.recent, &r.arn, Status::Aborted, None, &failure);
                        if let (Some(f), Some(rec)) = (r.on_finish, rec) {
                            f(&rec);
                        }
                        wall_millis()
                    });
                    let _ = reply.send(stopped);
                }
                Some(Msg::Shutdown) => return,
                None => {}
            }
            self.fire_due();
        }
    }

    fn start(&mut self, req: StartRequest) {
        let id = self.next_id;
        self.next_id += 1;
        let exec = Execution::start(req.program, req.input, req.opts, wall_millis());
        self.by_arn.insert(req.arn.clone(), id);
        self.running.insert(
            id,
            Running {
                exec,
                arn: req.arn,
                on_finish: req.on_finish,
            },
        );
        self.advance(id);
    }

    fn fire_due(&mut self) {
        let now = wall_millis();
        while let Some(Reverse((at, _, id, token))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(r) = self.running.get_mut(&id) {
                r.exec.fire_timer(token, now);
                self.advance(id);
            }
        }
    }

    /// Runs an execution until it waits, hands out its effects, records its end.
    fn advance(&mut self, id: u64) {
        let Some(r) = self.running.get_mut(&id) else {
            return;
        };
        r.exec.run(wall_millis());
        let effects: Vec<Effect> = r.exec.drain_effects().collect();
        for effect in effects {
            match effect {
                Effect::Invoke { token, call } => {
                    let tx = self.tx.clone();
                    // Only callback Tasks can hear of heartbeats.
                    let heartbeat: Option<Heartbeat> = call.task_token.as_ref().map(|_| {
                        let tx = tx.clone();
                        Arc::new(move || {
                            let _ = tx.send(Msg::TaskHeartbeat { id, token });
                        }) as Heartbeat
                    });
                    let done: Completion = Box::new(move |result| {
                        let _ = tx.send(Msg::TaskDone { id, token, result });
                    });
                    let reply = match heartbeat {
                        Some(h) => TaskReply::new(done, h),
                        None => TaskReply::without_heartbeat(done),
                    };
                    self.resources.invoke(*call, reply);
                }
                Effect::Timer { token, at } => {
                    self.timer_seq += 1;
                    self.timers.push(Reverse((at, self.timer_seq, id, token)));
                }
            }
        }
        let Some(r) = self.running.get(&id) else {
            return;
        };
        let Some(outcome) = r.exec.outcome() else {
            return;
        };
        let (status, output, failure) = match outcome {
            Outcome::Succeeded(v) => (
                Status::Succeeded,
                Some(json_text(v)),
                Failure {
                    error: None,
                    cause: None,
                },
            ),
            Outcome::Failed(f) => (Status::Failed, None, f.clone()),
            Outcome::TimedOut(f) => (Status::TimedOut, None, f.clone()),
        };
        let r = self.running.remove(&id).expect("present");
        self.by_arn.remove(&r.arn);
        // Timers of finished executions (their 5-minute deadline at least) are dropped in
        // bulk once they outnumber the live ones, so the heap stays proportional to what runs.
        if self.timers.len() > 4096 && self.timers.len() > 8 * self.running.len() {
            let running = &self.running;
            self.timers
                .retain(|Reverse((_, _, id, _))| running.contains_key(id));
        }
        let rec = finish_record(&self.recent, &r.arn, status, output, &failure);
        if let (Some(f), Some(rec)) = (r.on_finish, rec) {
            f(&rec);
        }
    }
}
