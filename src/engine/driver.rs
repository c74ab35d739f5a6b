//! The one owner of running executions: the VM's effect protocol, driven once.
//!
//! A [`Driver`] holds executions in a slab, their timers in one structure, and carries out
//! what the VM asks for: an `Effect::Invoke` goes to the [`TaskResource`] with a reply that
//! comes back through the owner's [`Inbox`] as a [`TaskEvent`]; an `Effect::Timer` is kept
//! until due. Every execution is counted and logged here, at one call site, whoever started
//! it: a Kafka shard, an SQS source, the API host, the CLI.
//!
//! What differs between owners stays with them: the shard keeps partition trackers, sinks
//! and backpressure; the API host keeps the `Recent` table and its by-ARN index; the CLI
//! runner jumps a virtual clock. They hand each execution a value of their own (`X`) and get
//! it back with the finished execution from [`Driver::pop_finished`].
//!
//! The driver never blocks: it does not wait for task results or timers, its owner's event
//! loop does ([`Driver::next_due`] says how long it may sleep).
//!
//! Nor does one execution hold it: each runs for at most [`SLICE_TRANSITIONS`] state
//! transitions at a time, then yields and is queued behind the other ready work (see
//! [`Driver::fire_due_timers`]). So timers fire — the Express cap and `TimeoutSeconds` end
//! a loop that never waits — and other executions and the owner's messages (a Start, a
//! Stop, SIGTERM) are served between slices. On a virtual clock, where time only moves when
//! something waits, each yield costs [`VIRTUAL_SLICE_COST_MS`] of virtual time.
//!
//! The driver also accounts the bytes its executions hold ([`Driver::held_bytes`], see
//! [`Execution::held_bytes`]) for its owner's admission control, and ends an execution
//! that alone holds more than its share of that budget ([`Driver::share_byte_budget`]).

use super::clock::Clock;
use super::slab::{ExecKey, Slab};
use super::timers::{TimerId, Timers};
use crate::asl::error::{json_text, names, Failure};
use crate::asl::{Effect, Execution, ExecutionOptions, Millis, Outcome, Program, Token};
use crate::resource::{Completion, Heartbeat, TaskReply, TaskResource};
use crate::telemetry::exec_log::ExecutionLogger;
use crate::telemetry::history::{ExecutionTrace, MachineHistory, Sampler, TraceStatus};
use crate::telemetry::{Integration, StateMachineMetrics, Status, TaskMetrics};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// The most state transitions an execution makes before it yields to other work. Small
/// enough that a slice takes well under a millisecond for typical states, large enough that
/// almost every execution ends (or waits) within its first slice, paying nothing for it.
pub const SLICE_TRANSITIONS: u64 = 1_000;

/// Virtual time charged for a slice that ran out of budget (0.1 ms a transition). A virtual
/// clock only jumps to timers, so without this a loop that never waits would never reach
/// its deadline: with it, a runaway loop meets the 5-minute Express cap after 3 million
/// transitions (about a second of real time). Executions that wait within every thousand
/// transitions, as nearly all do, see exactly the times they saw before.
pub const VIRTUAL_SLICE_COST_MS: Millis = 100;

/// What a Task call sends back to the driver that made it, from whatever thread answers.
pub enum TaskEvent {
    Done {
        exec: ExecKey,
        token: Token,
        result: Result<Value, Failure>,
    },
    /// A running call (an activity, a callback) reported a heartbeat.
    Heartbeat { exec: ExecKey, token: Token },
}

/// Where an owner receives [`TaskEvent`]s: its own message queue, which it drains into
/// [`Driver::task_event`] on its thread.
pub trait Inbox: Clone + Send + Sync + 'static {
    fn deliver(&self, event: TaskEvent);
}

/// What the driver needs to know of an owner's per-execution value.
pub trait Owned {
    /// The execution's ARN, as its execution log names it (asked only when logging).
    fn execution_arn(&self) -> Cow<'_, str>;
}

/// How executions are observed: the same for every owner.
pub struct Telemetry {
    /// Execution logs; `None` logs nothing and records no history.
    pub logger: Option<ExecutionLogger>,
    /// Task calls by integration; `None` counts nothing (the CLI).
    pub tasks: Option<TaskMetrics>,
}

impl Telemetry {
    /// Metrics, and execution logs if `logger` is given.
    pub fn new(logger: Option<ExecutionLogger>) -> Self {
        Telemetry {
            logger,
            tasks: Some(TaskMetrics::new()),
        }
    }

    /// Nothing counted or logged: one execution run from the command line, a benchmark.
    pub fn none() -> Self {
        Telemetry {
            logger: None,
            tasks: None,
        }
    }
}

/// One execution to start.
pub struct Start<X> {
    pub program: Arc<Program>,
    pub input: Value,
    pub opts: ExecutionOptions,
    /// Where it is counted (see [`Driver::count_executions`]); `None` counts nothing (the CLI).
    pub metrics: Option<MetricsKey>,
    /// The owner's value, handed back when the execution ends.
    pub owned: X,
}

/// An execution that ended, with its owner's value.
pub struct Finished<X> {
    pub key: ExecKey,
    /// Boxed, as where it runs: an execution is several hundred bytes, and it was copied
    /// on each move from start to finish (~3% of pass-chain's instructions).
    pub exec: Box<Execution>,
    pub owned: X,
}

struct Running<X> {
    exec: Box<Execution>,
    /// Its pending timers, removed from the driver's when it ends.
    timers: Vec<TimerId>,
    metrics: Option<MetricsKey>,
    started_at: Instant,
    /// Its history is recorded and kept (see [`Driver::keep_history`]).
    sampled: bool,
    owned: X,
    /// In the driver's ready queue (it yielded with work left).
    queued: bool,
    /// Its share of the driver's `held_bytes`, as of its last step.
    bytes: usize,
}

/// A state machine's metrics as one driver counts them: see [`Driver::count_executions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsKey(usize);

/// Finished executions after which a driver publishes its counts even if its owner never
/// waits (a saturated shard): fresh to within a few milliseconds, ~1 shared write in 500.
const METRICS_BATCH: u32 = 512;

/// The byte budget a shard or the API host admits executions against unless configured
/// otherwise (`max_held_bytes_per_shard`, `[api] max_held_bytes`); the CLI's too.
pub const DEFAULT_BYTE_BUDGET: usize = 1 << 30;

/// One execution may hold at most this fraction (1/n) of its owner's byte budget.
pub const BUDGET_SHARES: usize = 4;

pub struct Driver<X, I, R = Arc<dyn TaskResource>> {
    executions: Slab<Running<X>>,
    timers: Timers,
    resources: R,
    inbox: I,
    clock: Clock,
    telemetry: Telemetry,
    /// Task calls handed out and not answered yet (a virtual clock may only jump when none
    /// is out).
    tasks_out: usize,
    finished: VecDeque<Finished<X>>,
    /// Executions that yielded with work left, in the order they yielded.
    ready: VecDeque<ExecKey>,
    /// Bytes held by running executions (the sum of their `bytes`).
    held_bytes: usize,
    /// The most one execution may hold; see [`Driver::share_byte_budget`].
    max_execution_bytes: usize,
    /// What the executions of each state machine counted, by [`MetricsKey`].
    metrics: Vec<StateMachineMetrics>,
    /// Where each state machine's executions are kept, by [`MetricsKey`], if they are.
    histories: Vec<Option<Sampler>>,
    /// Executions finished since the counts were last published.
    unpublished: u32,
    /// The effects of the step being carried out (kept for its allocation).
    effects: Vec<Effect>,
}

impl<X: Owned, I: Inbox, R: TaskResource> Driver<X, I, R> {
    pub fn new(resources: R, inbox: I, clock: Clock, telemetry: Telemetry) -> Self {
        Driver {
            executions: Slab::default(),
            timers: Timers::default(),
            resources,
            inbox,
            clock,
            telemetry,
            tasks_out: 0,
            finished: VecDeque::new(),
            ready: VecDeque::new(),
            held_bytes: 0,
            max_execution_bytes: usize::MAX,
            metrics: Vec::new(),
            histories: Vec::new(),
            unpublished: 0,
            effects: Vec::new(),
        }
    }

    /// Where executions started with the returned key are counted: this driver's own batch
    /// of `metrics`, published by [`Driver::flush`] (and every [`METRICS_BATCH`] finished
    /// executions), so that drivers on different threads do not write shared counters per
    /// execution.
    pub fn count_executions(&mut self, metrics: StateMachineMetrics) -> MetricsKey {
        self.metrics.push(metrics);
        self.histories.push(None);
        MetricsKey(self.metrics.len() - 1)
    }

    /// Tells the driver its owner's byte budget (what admission counts [`held_bytes`]
    /// against). An execution that alone holds more than a [`BUDGET_SHARES`]th of it (by
    /// [`Execution::held_bytes`]) ends with `States.DataLimitExceeded`: one runaway fan-out
    /// (nested Maps whose results pile up, say) must not take the whole budget for the five
    /// minutes until the Express cap while admission turns every other start away.
    ///
    /// [`held_bytes`]: Driver::held_bytes
    pub fn share_byte_budget(&mut self, owner_budget: usize) {
        self.max_execution_bytes = owner_budget / BUDGET_SHARES;
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Replaces the clock, between executions only (a running one would see time jump).
    pub fn reset_clock(&mut self, clock: Clock) {
        assert!(
            self.executions.is_empty(),
            "reset_clock with executions running"
        );
        self.clock = clock;
    }

    /// Keeps the executions counted under `key` in `history`: a sample of them with their
    /// history events, and every failure.
    pub fn keep_history(&mut self, MetricsKey(k): MetricsKey, history: Arc<MachineHistory>) {
        self.histories[k] = Some(Sampler::new(history));
    }

    /// Whether executions record their history (they do when it is logged).
    pub fn records_history(&self) -> bool {
        self.telemetry.logger.is_some()
    }

    /// Starts an execution and runs it as far as it goes; it may have ended already (see
    /// [`Driver::pop_finished`]).
    pub fn start(&mut self, start: Start<X>) -> ExecKey {
        let mut opts = start.opts;
        // An owner that asks for the history itself (`exec --trace`, TestState) gets it whole.
        let asked = opts.record_history;
        opts.record_history |= self.records_history();
        let mut sampled = None;
        if let Some(MetricsKey(k)) = start.metrics {
            self.metrics[k].execution_started();
            opts.state_marks |= self.metrics[k].states().is_some();
            sampled = self.histories[k]
                .as_mut()
                .and_then(|s| s.sample().then_some(&*s));
        }
        opts.record_history |= sampled.is_some();
        // Inputs and outputs only for whoever keeps them: each costs a serialisation.
        let logged_data = self
            .telemetry
            .logger
            .as_ref()
            .is_some_and(|l| l.includes_data());
        let kept_data = sampled.is_some_and(|s| s.history.config().include_data);
        if !asked {
            opts.history_data = logged_data || kept_data;
        }
        let now = self.clock.now();
        let input = sampled
            .as_ref()
            .filter(|s| s.history.config().include_data)
            .map(|_| json_text(&start.input));
        let exec = Box::new(Execution::start(start.program, start.input, opts, now));
        let key = self.executions.insert(Running {
            exec,
            timers: Vec::new(),
            metrics: start.metrics,
            started_at: Instant::now(),
            sampled: sampled.is_some(),
            owned: start.owned,
            queued: false,
            bytes: 0,
        });
        if let (Some(s), Some(r)) = (sampled, self.executions.get(key)) {
            let mut trace = trace_of(&r.owned.execution_arn(), s.history.name(), now, &r.exec);
            trace.input = input;
            s.history.started(trace);
        }
        self.advance_at(key, now);
        key
    }

    /// A Task call's result or heartbeat, from the owner's inbox. Stale ones (the execution
    /// ended or was cancelled) are ignored.
    pub fn task_event(&mut self, event: TaskEvent) {
        let now = self.clock.now();
        let key = match event {
            TaskEvent::Done {
                exec,
                token,
                result,
            } => {
                self.tasks_out = self.tasks_out.saturating_sub(1);
                let Some(r) = self.executions.get_mut(exec) else {
                    return;
                };
                r.exec.complete_task(token, result, now);
                exec
            }
            TaskEvent::Heartbeat { exec, token } => {
                let Some(r) = self.executions.get_mut(exec) else {
                    return;
                };
                // Advancing schedules the timer for the new heartbeat deadline.
                r.exec.heartbeat(token, now);
                exec
            }
        };
        self.advance_at(key, now);
    }

    /// Fires every timer due by now, then gives each execution that was ready (it yielded
    /// with work left) one more slice. Owners call it on every turn of their loop.
    pub fn fire_due_timers(&mut self) {
        let now = self.clock.now();
        while let Some((id, key, token)) = self.timers.pop_due(now) {
            if let Some(r) = self.executions.get_mut(key) {
                r.timers.retain(|t| *t != id);
                r.exec.fire_timer(token, now);
                self.advance(key);
            }
        }
        // Only those ready now: one that yields again goes to the back, for the next turn.
        for _ in 0..self.ready.len() {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            if let Some(r) = self.executions.get_mut(key) {
                r.queued = false;
                self.advance(key);
            }
        }
    }

    /// When the owner must call [`fire_due_timers`](Self::fire_due_timers) next: now if an
    /// execution is ready to run, else when the earliest timer is due.
    pub fn next_due(&self) -> Option<Millis> {
        if !self.ready.is_empty() {
            return Some(self.clock.now());
        }
        self.timers.next_due()
    }

    /// Whether an execution yielded and waits for its next slice.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Bytes held by the running executions, as of their last step (see
    /// [`Execution::held_bytes`]): what owners admit new executions against.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// With a virtual clock, no Task call out and no execution ready, nothing but a timer
    /// can happen next: jumps to it and fires what is due. Returns whether it did.
    pub fn skip_to_next_timer(&mut self) -> bool {
        if !self.clock.is_virtual() || self.tasks_out > 0 || !self.ready.is_empty() {
            return false;
        }
        let Some(at) = self.timers.next_due() else {
            return false;
        };
        self.clock.advance_to(at);
        self.fire_due_timers();
        true
    }

    /// Moves a virtual clock to `at` (a real one ignores it): after the owner waited for
    /// the next timer in real time while a Task call was out.
    pub fn clock_reached(&mut self, at: Millis) {
        self.clock.advance_to(at);
    }

    /// The next execution that ended (in the order they ended), counted and logged
    /// already. Owners take them after every driver call.
    pub fn pop_finished(&mut self) -> Option<Finished<X>> {
        self.finished.pop_front()
    }

    /// Running executions.
    pub fn len(&self) -> usize {
        self.executions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.executions.is_empty()
    }

    /// Task calls out and not answered.
    pub fn tasks_out(&self) -> usize {
        self.tasks_out
    }

    pub fn get(&self, key: ExecKey) -> Option<(&Execution, &X)> {
        self.executions.get(key).map(|r| (&*r.exec, &r.owned))
    }

    /// Stops an execution where it is: it ends with `failure` (as `StopExecution` does:
    /// ABORTED), its timers leave, late results are ignored. Not counted as finished:
    /// an aborted execution has no outcome the metrics know.
    pub fn abort(&mut self, key: ExecKey, failure: Failure) -> Option<Finished<X>> {
        let mut finished = self.remove(key)?;
        finished.exec.abort(failure, self.clock.now());
        Some(finished)
    }

    /// Drops the executions whose owned value `pick` selects, with their timers, uncounted:
    /// their events will run again elsewhere (a revoked partition).
    pub fn cancel_where(&mut self, pick: impl FnMut(&X) -> bool) -> usize {
        let mut pick = pick;
        let keys = self.executions.keys_where(|r| pick(&r.owned));
        for key in &keys {
            self.remove(*key);
        }
        keys.len()
    }

    /// Whose timers are pending (tests).
    pub fn timer_owners(&self) -> Vec<ExecKey> {
        self.timers.owners().collect()
    }

    fn remove(&mut self, key: ExecKey) -> Option<Finished<X>> {
        let r = self.executions.remove(key)?;
        self.held_bytes -= r.bytes;
        for id in &r.timers {
            self.timers.remove(id);
        }
        Some(Finished {
            key,
            exec: r.exec,
            owned: r.owned,
        })
    }

    /// Runs an execution as far as it goes and carries out its effects.
    fn advance(&mut self, key: ExecKey) {
        self.advance_at(key, self.clock.now());
    }

    /// [`advance`](Self::advance) at a time the caller has just read.
    fn advance_at(&mut self, key: ExecKey, now: Millis) {
        let Some(r) = self.executions.get_mut(key) else {
            return;
        };
        let yielded = r.exec.run_for(now, SLICE_TRANSITIONS);
        let finished = r.exec.outcome().is_some();
        if let Some(states) = r
            .metrics
            .and_then(|MetricsKey(k)| self.metrics[k].states_mut())
        {
            r.exec.drain_marks().for_each(|m| states.mark(m));
        }
        // Taken out so that effects can be carried out while the execution is borrowed;
        // into a buffer kept between steps (every execution yields at least its deadline).
        let mut effects = std::mem::take(&mut self.effects);
        effects.extend(r.exec.drain_effects());
        for effect in effects.drain(..) {
            match effect {
                // An execution that ended in this step (most do, in their first) would only
                // have its timers (its deadline at least) removed again below.
                Effect::Timer { .. } if finished => {}
                Effect::Timer { token, at } => {
                    let id = self.timers.insert(at, key, token);
                    if let Some(r) = self.executions.get_mut(key) {
                        r.timers.push(id);
                    }
                }
                Effect::Invoke { token, call } => {
                    self.tasks_out += 1;
                    if let Some(tasks) = &self.telemetry.tasks {
                        tasks.invoked(Integration::of(&call.resource));
                    }
                    let reply = self.reply_for(key, token, call.task_token.is_some());
                    self.resources.invoke(*call, reply);
                }
            }
        }
        self.effects = effects;
        if finished {
            self.finish(key);
            return;
        }
        let Some(r) = self.executions.get_mut(key) else {
            return;
        };
        // Most executions end in their first step and never get here: the hot path does
        // not pay for the accounting.
        let bytes = r.exec.held_bytes();
        self.held_bytes = self.held_bytes - r.bytes + bytes;
        r.bytes = bytes;
        if bytes > self.max_execution_bytes {
            r.exec.abort(
                Failure::new(
                    names::DATA_LIMIT_EXCEEDED,
                    format!(
                        "The execution held more than {} bytes (its states' data, Map and Parallel results so far, recorded history): the most one execution may hold here.",
                        self.max_execution_bytes
                    ),
                ),
                now,
            );
            self.finish(key);
            return;
        }
        if yielded && !r.queued {
            r.queued = true;
            self.ready.push_back(key);
            if self.clock.is_virtual() {
                self.clock
                    .advance_to(now.saturating_add(VIRTUAL_SLICE_COST_MS));
            }
        }
    }

    /// The reply a Task call answers through: into the owner's inbox.
    fn reply_for(&self, exec: ExecKey, token: Token, can_heartbeat: bool) -> TaskReply {
        let inbox = self.inbox.clone();
        // Only calls with a task token can heartbeat.
        let heartbeat = can_heartbeat.then(|| {
            let inbox = inbox.clone();
            Arc::new(move || inbox.deliver(TaskEvent::Heartbeat { exec, token })) as Heartbeat
        });
        let done: Completion = Box::new(move |result| {
            inbox.deliver(TaskEvent::Done {
                exec,
                token,
                result,
            })
        });
        match heartbeat {
            Some(h) => TaskReply::new(done, h),
            None => TaskReply::without_heartbeat(done),
        }
    }

    /// The one place an execution's end is counted and logged.
    fn finish(&mut self, key: ExecKey) {
        let Some(r) = self.executions.remove(key) else {
            return;
        };
        self.held_bytes -= r.bytes;
        for id in &r.timers {
            self.timers.remove(id);
        }
        if let (Some(MetricsKey(k)), Some(outcome)) = (r.metrics, r.exec.outcome()) {
            let elapsed = r.started_at.elapsed();
            let transitions = r.exec.transitions();
            self.metrics[k].execution_finished(Status::from(outcome), elapsed, transitions);
            self.unpublished += 1;
            if self.unpublished >= METRICS_BATCH {
                self.publish_metrics();
            }
        }
        if let Some(s) = r
            .metrics
            .and_then(|MetricsKey(k)| self.histories[k].as_ref())
        {
            let failed = !matches!(r.exec.outcome(), Some(Outcome::Succeeded(_)));
            if r.sampled || failed {
                let arn = r.owned.execution_arn();
                let start_ms = self.clock.now() - r.started_at.elapsed().as_millis() as Millis;
                let mut trace = trace_of(&arn, s.history.name(), start_ms, &r.exec);
                trace.stop_ms = Some(self.clock.now());
                if r.sampled {
                    trace.events = Some(r.exec.history().to_vec());
                }
                s.history.finished(trace);
            }
        }
        if let Some(logger) = &mut self.telemetry.logger {
            let arn = r.owned.execution_arn();
            if let Err(e) = logger.log(&arn, r.exec.history()) {
                crate::telemetry::oplog::limited!(error, e, "execution log write failed");
            }
        }
        self.finished.push_back(Finished {
            key,
            exec: r.exec,
            owned: r.owned,
        });
    }

    /// Writes out buffered execution logs and publishes the metrics counted. Owners call it
    /// before their loop waits and at shutdown: both are batched under load and never held
    /// back while idle.
    pub fn flush(&mut self) {
        if let Some(logger) = &mut self.telemetry.logger {
            let _ = logger.flush();
        }
        self.publish_metrics();
    }

    fn publish_metrics(&mut self) {
        self.metrics.iter_mut().for_each(StateMachineMetrics::flush);
        self.unpublished = 0;
    }
}

/// What the history keeps of `exec`, as far as it has run (its events are added by the
/// caller for a sampled execution).
fn trace_of(
    arn: &str,
    state_machine: &Arc<str>,
    start_ms: Millis,
    exec: &Execution,
) -> ExecutionTrace {
    let (status, output, failure) = match exec.outcome() {
        None => (TraceStatus::Running, None, None),
        Some(Outcome::Succeeded(v)) => (TraceStatus::Succeeded, Some(json_text(v)), None),
        Some(Outcome::Failed(f)) => (TraceStatus::Failed, None, Some(f)),
        Some(Outcome::TimedOut(f)) => (TraceStatus::TimedOut, None, Some(f)),
    };
    ExecutionTrace {
        arn: arn.to_owned(),
        name: arn.rsplit(':').next().unwrap_or(arn).to_owned(),
        state_machine: state_machine.clone(),
        status,
        start_ms,
        stop_ms: None,
        input: None,
        output,
        error: failure.and_then(|f| f.error.clone()),
        cause: failure.and_then(|f| f.cause.clone()),
        failed_state: exec.failed_state().map(Arc::from),
        transitions: exec.transitions(),
        events: None,
    }
}
