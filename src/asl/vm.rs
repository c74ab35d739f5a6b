//! The execution VM: runs a [`Program`] for one input.
//!
//! An [`Execution`] never blocks, sleeps or reads a clock. The caller passes `now` into every
//! call; the execution runs until every thread of control waits on something, and leaves
//! [`Effect`]s behind: "invoke this resource with this payload" and "wake me at this time".
//! The caller hands results back with [`Execution::complete_task`] and
//! [`Execution::fire_timer`], then calls [`Execution::run`] again.
//!
//! Threads of control are *frames*: the top level, each Parallel branch and each Map
//! iteration. A frame waiting on children (Parallel, Map) resumes when the last one ends.

use super::context::{new_task_token, ContextParts, StateScope};
use super::error::{json_text, names, EvalError, Failure};
use super::jsonata::{self, Env, JTemplate, NoContext};
use super::path::{JsonPath, Root};
use super::program::*;
use super::scope::Scope;
use super::size;
use super::template::Template;
use super::vars::{self, Assign, Vars};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

// The vocabulary this module used to define, at its old paths for callers outside `asl`.
pub use super::arn::is_activity_arn;
pub use super::effect::{
    needs_task_token, Effect, ExecutionOptions, Outcome, TaskCall, Token, WorkflowType,
    EXPRESS_MAX_DURATION_MS,
};
pub use super::error::data_limit_exceeded;
pub use super::time::Millis;

const DEADLINE_FRAME: u32 = u32::MAX;

/// An entry of the execution history, named as in Step Functions' `GetExecutionHistory`.
#[derive(Clone, Debug)]
pub struct HistoryEvent {
    pub id: u64,
    pub kind: &'static str,
    pub timestamp: Millis,
    pub state: Option<Arc<str>>,
    pub details: Value,
}

struct Frame {
    /// Bumped whenever the frame starts waiting, so stale results and timers are ignored.
    gen: u32,
    state: StateId,
    /// The raw input of the current state; when `phase` is `Finished`, the frame's output.
    data: Value,
    parent: Option<(u32, u32)>,
    phase: Phase,
    entered_event: u64,
    entered_at: Millis,
    /// Attempts made per retrier of the current state; empty until a retry happens.
    attempts: Vec<u32>,
    /// An upper bound on the JSON size of `data` (see [`SizeBound`]).
    size_bound: usize,
    /// A bound on the current state's output found while running it, for states whose
    /// compiled bound is [`SizeBound::Measure`].
    output_bound: Option<usize>,
    /// The pending failure is a missed heartbeat: reported as `States.Timeout`, and also
    /// matched by retriers and catchers naming `States.HeartbeatTimeout`.
    heartbeat_missed: bool,
    /// The workflow variables this frame sees (see [`vars`]).
    vars: Vars,
}

enum Phase {
    /// About to enter `state`.
    Enter,
    /// A Task call is out; the effective input is kept for `$$`-free result processing.
    Task {
        deadline: Option<Millis>,
        heartbeat: Option<Millis>,
        /// `HeartbeatSeconds` in milliseconds: how far a heartbeat pushes `heartbeat`.
        heartbeat_every: Millis,
    },
    /// A Wait state's timer; `data` already holds the state's output.
    Waiting,
    /// A retry backoff timer; on fire, the state runs again.
    Backoff,
    /// The backoff is over: run the state again, without a new `…StateEntered` event (AWS
    /// history shows a retry as another `TaskScheduled` within the same state entry).
    Retry,
    Children(Box<Join>),
    /// Ready to continue with a value handed in from outside.
    Resume(Resume),
    Finished,
}

enum Resume {
    Task(Result<Value, Failure>),
    WaitDone,
    ChildrenDone(Value, usize),
    Error(Failure),
}

struct Join {
    is_map: bool,
    results: Vec<Value>,
    /// A bound on the size of `results` as a JSON array.
    results_bound: usize,
    pending: usize,
    /// Iteration inputs not started yet (Map with MaxConcurrency), in order.
    /// `(slot, input, bound on the input's size)`.
    queue: VecDeque<(u32, Value, usize)>,
    machine: MachineId,
    running: usize,
    /// MaxConcurrency; `usize::MAX` when unlimited.
    limit: usize,
    failures: usize,
    tolerated: Option<usize>,
    /// The variables children start with: the parent's, or none for a distributed Map.
    vars: Vars,
}

/// The result of running one state as far as it can go now.
enum Flow {
    /// Continue with this output at the state's `Next` (or end the frame).
    Next(Value),
    Goto(StateId, Value),
    /// The frame waits for an effect.
    Blocked,
    /// The state failed; Retry/Catch decide what happens.
    Error(Failure),
    /// The frame ends with this output (Succeed).
    Finish(Value),
    /// The frame fails outright (Fail state): no Retry/Catch on this state.
    Fail(Failure),
}

pub struct Execution {
    program: Arc<Program>,
    opts: ExecutionOptions,
    ctx: ContextParts,
    frames: Vec<Option<Frame>>,
    free: Vec<u32>,
    runnable: VecDeque<u32>,
    effects: Vec<Effect>,
    outcome: Option<Outcome>,
    events: u64,
    history: Vec<HistoryEvent>,
    /// The top-level state the execution failed or timed out in.
    failed_state: Option<Arc<str>>,
    transitions: u64,
    rng: fastrand::Rng,
    /// Seeds JSONata's `$random()` and `$uuid()`.
    seed: u64,
}

impl Execution {
    /// Starts an execution at `now`. Call [`run`](Self::run) to make progress.
    pub fn start(program: Arc<Program>, input: Value, opts: ExecutionOptions, now: Millis) -> Self {
        let seed = opts.name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let ctx = ContextParts::new(now, program.reads_execution_input.then(|| input.clone()));
        let mut exec = Execution {
            ctx,
            opts,
            // Most executions never branch: one frame, grown only by Parallel and Map.
            frames: Vec::with_capacity(1),
            free: Vec::new(),
            runnable: VecDeque::new(),
            effects: Vec::new(),
            outcome: None,
            events: 0,
            history: Vec::new(),
            failed_state: None,
            transitions: 0,
            rng: fastrand::Rng::with_seed(seed),
            seed,
            program,
        };
        exec.event("ExecutionStarted", None, now, || Value::Null);
        let Some(input_size) = size::measure(&input, exec.opts.payload_limit_bytes) else {
            exec.finish(
                Outcome::Failed(Failure::new(
                    names::DATA_LIMIT_EXCEEDED,
                    "The execution input exceeds the maximum number of bytes service limit.",
                )),
                now,
            );
            return exec;
        };
        let deadline = [
            exec.program.timeout_secs.map(|s| s as Millis * 1000),
            exec.opts.max_duration_ms,
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(d) = deadline {
            exec.effects.push(Effect::Timer {
                token: Token::new(DEADLINE_FRAME, 0),
                at: now.saturating_add(d),
            });
        }
        let start = exec.program.start_of(0);
        let root = exec.spawn(start, input, None, input_size, None);
        exec.runnable.push_back(root);
        exec
    }

    /// Runs every runnable frame until all wait or the execution ends.
    pub fn run(&mut self, now: Millis) {
        let program = self.program.clone();
        while let Some(fid) = self.runnable.pop_front() {
            if self.outcome.is_some() {
                self.runnable.clear();
                break;
            }
            self.drive(&program, fid, now);
        }
    }

    /// Effects produced since the last call, in order.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn into_outcome(self) -> Option<Outcome> {
        self.outcome
    }

    /// The top-level state a failed or timed-out execution ended in (a Parallel or Map
    /// state when the failure came from inside it).
    pub fn failed_state(&self) -> Option<&str> {
        self.failed_state.as_deref()
    }

    pub fn history(&self) -> &[HistoryEvent] {
        &self.history
    }

    /// Bytes this execution holds besides its JSON values (frames, queues, effects, the
    /// context object's fixed parts): what a suspended execution costs the process.
    pub fn footprint_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + self.frames.capacity() * size_of::<Option<Frame>>()
            + self
                .frames
                .iter()
                .flatten()
                .map(|f| {
                    f.attempts.capacity() * size_of::<u32>()
                        + match &f.phase {
                            Phase::Children(j) => {
                                size_of::<Join>()
                                    + j.results.capacity() * size_of::<Value>()
                                    + j.queue.capacity() * size_of::<(u32, Value, usize)>()
                            }
                            _ => 0,
                        }
                })
                .sum::<usize>()
            + self.free.capacity() * size_of::<u32>()
            + self.runnable.capacity() * size_of::<u32>()
            + self.effects.capacity() * size_of::<Effect>()
            + self.history.capacity() * size_of::<HistoryEvent>()
    }

    /// States entered so far (Map iterations and Parallel branches included).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Ends the execution now with `failure` (shutdown, or a driver that gives up).
    pub fn abort(&mut self, failure: Failure, now: Millis) {
        self.finish(Outcome::Failed(failure), now);
    }

    /// Hands back the result of an [`Effect::Invoke`]. Stale tokens are ignored.
    pub fn complete_task(&mut self, token: Token, result: Result<Value, Failure>, _now: Millis) {
        if let Some(f) = self.waiting_frame(token) {
            if matches!(f.phase, Phase::Task { .. }) {
                f.phase = Phase::Resume(Resume::Task(result));
                self.runnable.push_back(token.frame());
            }
        }
    }

    /// A heartbeat from the call of an [`Effect::Invoke`]: the task's heartbeat deadline moves
    /// to `now` + `HeartbeatSeconds`, and a new [`Effect::Timer`] is left for it (the earlier
    /// timer still fires, and is then ignored). Stale tokens, tasks without
    /// `HeartbeatSeconds` and heartbeats after the deadline are ignored.
    pub fn heartbeat(&mut self, token: Token, now: Millis) {
        let Some(f) = self.waiting_frame(token) else {
            return;
        };
        let Phase::Task {
            deadline,
            heartbeat: Some(heartbeat),
            heartbeat_every,
        } = &mut f.phase
        else {
            return;
        };
        if now >= *heartbeat {
            // Missed already: its timer is due, and fails the task when it fires.
            return;
        }
        *heartbeat = now.saturating_add(*heartbeat_every);
        let at = deadline.map_or(*heartbeat, |d| d.min(*heartbeat));
        self.effects.push(Effect::Timer { token, at });
    }

    /// Signals that an [`Effect::Timer`] is due. Stale tokens are ignored.
    pub fn fire_timer(&mut self, token: Token, now: Millis) {
        if token.frame() == DEADLINE_FRAME {
            if self.outcome.is_none() {
                // The top-level frame is the first one; its state is where time ran out.
                let state = self
                    .frames
                    .first()
                    .and_then(Option::as_ref)
                    .map(|f| f.state);
                self.failed_state = state.map(|s| self.program.state(s).name.clone());
                let failure = Failure {
                    error: Some(names::TIMEOUT.to_string()),
                    cause: match self.program.timeout_secs {
                        Some(_) => None,
                        None => Some(
                            "The execution exceeded the Express workflow limit of 5 minutes."
                                .to_string(),
                        ),
                    },
                };
                self.finish(Outcome::TimedOut(failure), now);
            }
            return;
        }
        let Some(f) = self.waiting_frame(token) else {
            return;
        };
        let resume = match f.phase {
            Phase::Waiting => Resume::WaitDone,
            Phase::Backoff => {
                f.phase = Phase::Retry;
                self.runnable.push_back(token.frame());
                return;
            }
            Phase::Task {
                deadline,
                heartbeat,
                ..
            } => {
                let due = |t: Option<Millis>| t.is_some_and(|t| now >= t);
                if !due(deadline) && !due(heartbeat) {
                    // Set before a heartbeat moved the deadline: a later timer stands.
                    return;
                }
                f.heartbeat_missed = match (heartbeat, deadline) {
                    (Some(h), Some(d)) => h <= d && now >= h,
                    (Some(h), None) => now >= h,
                    _ => false,
                };
                Resume::Error(Failure {
                    error: Some(names::TIMEOUT.to_string()),
                    cause: None,
                })
            }
            _ => return,
        };
        f.phase = Phase::Resume(resume);
        self.runnable.push_back(token.frame());
    }

    fn waiting_frame(&mut self, token: Token) -> Option<&mut Frame> {
        if self.outcome.is_some() {
            return None;
        }
        let f = self.frames.get_mut(token.frame() as usize)?.as_mut()?;
        (f.gen == token.gen()).then_some(f)
    }

    fn frame(&mut self, fid: u32) -> &mut Frame {
        self.frames[fid as usize]
            .as_mut()
            .expect("a runnable frame exists")
    }

    fn spawn(
        &mut self,
        state: StateId,
        input: Value,
        parent: Option<(u32, u32)>,
        size_bound: usize,
        vars: Vars,
    ) -> u32 {
        let frame = Frame {
            vars,
            size_bound,
            output_bound: None,
            heartbeat_missed: false,
            gen: 0,
            state,
            data: input,
            parent,
            phase: Phase::Enter,
            entered_event: 0,
            entered_at: 0,
            attempts: Vec::new(),
        };
        match self.free.pop() {
            Some(i) => {
                let gen = self.frames[i as usize].as_ref().map_or(0, |f| f.gen);
                let mut frame = frame;
                frame.gen = gen.wrapping_add(1);
                self.frames[i as usize] = Some(frame);
                i
            }
            None => {
                self.frames.push(Some(frame));
                (self.frames.len() - 1) as u32
            }
        }
    }

    /// Removes a frame and, recursively, the children it waits on.
    fn release(&mut self, fid: u32) {
        let Some(Some(f)) = self.frames.get_mut(fid as usize) else {
            return;
        };
        // Bump the generation so that tokens issued to the old frame go stale.
        f.gen = f.gen.wrapping_add(1);
        f.data = Value::Null;
        f.parent = None;
        f.vars = None;
        let waited = matches!(
            std::mem::replace(&mut f.phase, Phase::Finished),
            Phase::Children(_)
        );
        self.free.push(fid);
        if waited {
            self.release_children(fid);
        }
    }

    /// Releases every live frame whose parent is `pid` (a failed Parallel or Map). A scan of
    /// this execution's frames: rare, and it spares the join a list of its children.
    fn release_children(&mut self, pid: u32) {
        for c in 0..self.frames.len() as u32 {
            let is_child = self.frames[c as usize]
                .as_ref()
                .is_some_and(|f| f.parent.map(|p| p.0) == Some(pid));
            if is_child {
                self.release(c);
            }
        }
    }

    fn event(
        &mut self,
        kind: &'static str,
        state: Option<&Arc<str>>,
        now: Millis,
        details: impl FnOnce() -> Value,
    ) -> u64 {
        self.events += 1;
        if self.opts.record_history {
            self.history.push(HistoryEvent {
                id: self.events,
                kind,
                timestamp: now,
                state: state.cloned(),
                details: details(),
            });
        }
        self.events
    }

    fn finish(&mut self, outcome: Outcome, now: Millis) {
        if self.outcome.is_some() {
            return;
        }
        let kind = match &outcome {
            Outcome::Succeeded(_) => "ExecutionSucceeded",
            Outcome::Failed(_) => "ExecutionFailed",
            Outcome::TimedOut(_) => "ExecutionTimedOut",
        };
        let record = self.opts.record_history;
        self.event(kind, None, now, || {
            if !record {
                return Value::Null;
            }
            match &outcome {
                Outcome::Succeeded(v) => serde_json::json!({ "output": json_text(v) }),
                Outcome::Failed(f) | Outcome::TimedOut(f) => {
                    serde_json::json!({ "error": f.error, "cause": f.cause })
                }
            }
        });
        self.outcome = Some(outcome);
    }

    /// Advances one frame as far as it goes.
    fn drive(&mut self, p: &Program, fid: u32, now: Millis) {
        loop {
            let flow = match std::mem::replace(&mut self.frame(fid).phase, Phase::Enter) {
                Phase::Enter => self.enter(p, fid, now),
                Phase::Retry => {
                    self.transitions += 1;
                    self.run_state(p, fid, now)
                }
                Phase::Resume(r) => self.resume(p, fid, r, now),
                other => {
                    // Not runnable (a stale wake-up): put the phase back.
                    self.frame(fid).phase = other;
                    return;
                }
            };
            if !self.settle(p, fid, flow, now) {
                return;
            }
        }
    }

    /// Applies a flow to the frame. Returns whether the frame should keep running.
    fn settle(&mut self, p: &Program, fid: u32, flow: Flow, now: Millis) -> bool {
        let state = p.state(self.frame(fid).state);
        match flow {
            Flow::Blocked => false,
            Flow::Next(out) => match state.next {
                Some(next) => self.transition(p, fid, next, out, state.size_bound, now),
                None => self.end_frame(p, fid, Ok(out), now),
            },
            Flow::Goto(next, out) => self.transition(p, fid, next, out, state.size_bound, now),
            Flow::Finish(out) => self.end_frame(p, fid, Ok(out), now),
            Flow::Fail(f) => self.end_frame(p, fid, Err(f), now),
            Flow::Error(f) => self.handle_error(p, fid, f, now),
        }
    }

    fn exit_event(&mut self, p: &Program, fid: u32, out: &Value, now: Millis) {
        let state = p.state(self.frame(fid).state);
        let record = self.opts.record_history;
        self.event(exited_event(&state.kind), Some(&state.name), now, || {
            if record {
                serde_json::json!({ "name": &*state.name, "output": json_text(out) })
            } else {
                Value::Null
            }
        });
    }

    fn transition(
        &mut self,
        p: &Program,
        fid: u32,
        next: StateId,
        out: Value,
        bound: SizeBound,
        now: Millis,
    ) -> bool {
        let size = match self.check_size(p, fid, &out, bound) {
            Ok(size) => size,
            Err(f) => return self.end_frame(p, fid, Err(f), now),
        };
        self.exit_event(p, fid, &out, now);
        let f = self.frame(fid);
        f.size_bound = size;
        f.output_bound = None;
        f.state = next;
        f.data = out;
        f.attempts.clear();
        f.phase = Phase::Enter;
        true
    }

    /// Enforces the payload limit on a state's output and returns a bound on its size.
    /// Measures only when the compiled bound (from the input's bound) does not settle it.
    fn check_size(
        &self,
        p: &Program,
        fid: u32,
        out: &Value,
        bound: SizeBound,
    ) -> Result<usize, Failure> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let limit = self.opts.payload_limit_bytes;
        if let Some(b) = f.output_bound.filter(|b| *b <= limit) {
            return Ok(b);
        }
        if let SizeBound::Linear {
            constant,
            per_input,
        } = bound
        {
            let b = constant.saturating_add(per_input.saturating_mul(f.size_bound));
            if b <= limit {
                return Ok(b);
            }
        }
        size::measure(out, limit).ok_or_else(|| data_limit_exceeded(&p.state(f.state).name))
    }

    /// Ends a frame: the execution if it is the top level, else one child of a join.
    fn end_frame(
        &mut self,
        p: &Program,
        fid: u32,
        result: Result<Value, Failure>,
        now: Millis,
    ) -> bool {
        let mut size = 0;
        if let Ok(out) = &result {
            let bound = p.state(self.frame(fid).state).size_bound;
            match self.check_size(p, fid, out, bound) {
                Ok(n) => size = n,
                Err(f) => return self.end_frame(p, fid, Err(f), now),
            }
            if !matches!(p.state(self.frame(fid).state).kind, Kind::Fail { .. }) {
                self.exit_event(p, fid, out, now);
            }
        }
        let parent = self.frame(fid).parent;
        match parent {
            None => {
                let outcome = match result {
                    Ok(v) => Outcome::Succeeded(v),
                    Err(f) => {
                        self.failed_state = Some(p.state(self.frame(fid).state).name.clone());
                        Outcome::Failed(f)
                    }
                };
                self.finish(outcome, now);
                self.release(fid);
            }
            Some((pid, slot)) => {
                self.release(fid);
                self.child_ended(p, pid, slot, result, size, now);
            }
        }
        false
    }

    /// Records the end of one child of a join; resumes the parent when the join is decided.
    fn child_ended(
        &mut self,
        p: &Program,
        pid: u32,
        slot: u32,
        result: Result<Value, Failure>,
        size_bound: usize,
        now: Millis,
    ) {
        let pstate = &p.state(self.frame(pid).state).name;
        let Phase::Children(join) = &mut self.frame(pid).phase else {
            return;
        };
        join.running -= 1;
        join.pending -= 1;
        let is_map = join.is_map;
        let failure = match result {
            Ok(v) => {
                join.results[slot as usize] = v;
                join.results_bound += size_bound + 1;
                None
            }
            Err(f) => {
                join.failures += 1;
                Some(f)
            }
        };
        // Decide on a failure: tolerated (Map only), or the end of the whole join.
        let verdict = failure.map(|f| {
            let exceeded = join.tolerated.map(|t| join.failures > t);
            match exceeded {
                Some(false) if f.error.as_deref() != Some(names::RUNTIME) => {
                    let v = serde_json::json!({ "Error": f.error, "Cause": f.cause });
                    join.results_bound += size::json_len(&v) + 1;
                    join.results[slot as usize] = v;
                    None
                }
                Some(true) => Some(Failure::new(
                    names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    "The specified tolerated failure threshold was exceeded",
                )),
                _ => Some(f),
            }
        });
        let done = join.pending == 0;
        if is_map {
            let kind = if verdict.is_some() {
                "MapIterationFailed"
            } else {
                "MapIterationSucceeded"
            };
            self.event(
                kind,
                Some(pstate),
                now,
                || serde_json::json!({ "index": slot }),
            );
        }
        if let Some(Some(f)) = verdict {
            if f.error.as_deref() == Some(names::RUNTIME) {
                // A States.Runtime error ends the execution, whatever catches it would.
                self.failed_state = Some(pstate.clone());
                self.finish(Outcome::Failed(f), now);
                return;
            }
            self.release_children(pid);
            let kind = if is_map {
                "MapStateFailed"
            } else {
                "ParallelStateFailed"
            };
            self.event(kind, Some(pstate), now, || Value::Null);
            self.frame(pid).phase = Phase::Resume(Resume::Error(f));
            self.runnable.push_back(pid);
            return;
        }
        if !done {
            self.start_queued(p, pid, now);
            return;
        }
        let Phase::Children(join) = &mut self.frame(pid).phase else {
            return;
        };
        let results = std::mem::take(&mut join.results);
        let bound = join.results_bound;
        let kind = if is_map {
            "MapStateSucceeded"
        } else {
            "ParallelStateSucceeded"
        };
        self.event(kind, Some(pstate), now, || Value::Null);
        self.frame(pid).phase = Phase::Resume(Resume::ChildrenDone(Value::Array(results), bound));
        self.runnable.push_back(pid);
    }

    /// Starts queued Map iterations while below the concurrency limit.
    fn start_queued(&mut self, p: &Program, pid: u32, now: Millis) {
        let pstate = &p.state(self.frame(pid).state).name;
        loop {
            let Phase::Children(join) = &mut self.frame(pid).phase else {
                return;
            };
            if join.running >= join.limit {
                return;
            }
            let Some((slot, input, bound)) = join.queue.pop_front() else {
                return;
            };
            let machine = join.machine;
            let vars = join.vars.clone();
            self.event(
                "MapIterationStarted",
                Some(pstate),
                now,
                || serde_json::json!({ "index": slot }),
            );
            let child = self.spawn(p.start_of(machine), input, Some((pid, slot)), bound, vars);
            if let Phase::Children(join) = &mut self.frame(pid).phase {
                join.running += 1;
            }
            self.runnable.push_back(child);
        }
    }

    /// Retry or Catch the failure of the current state, or fail the frame.
    fn handle_error(&mut self, p: &Program, fid: u32, failure: Failure, now: Millis) -> bool {
        let f = self.frame(fid);
        f.output_bound = None;
        let heartbeat = std::mem::take(&mut f.heartbeat_missed);
        let state = p.state(f.state);
        let error = failure.error.as_deref();
        let alias = heartbeat.then_some(names::HEARTBEAT_TIMEOUT);
        let matches = |m: &ErrorMatcher| m.matches(error) || m.matches(alias);
        if error != Some(names::RUNTIME) {
            if let Some((i, r)) = state
                .retry
                .iter()
                .enumerate()
                .find(|(_, r)| matches(&r.errors))
            {
                let f = self.frame(fid);
                if f.attempts.len() < state.retry.len() {
                    f.attempts.resize(state.retry.len(), 0);
                }
                let attempt = f.attempts[i];
                if attempt < r.max_attempts {
                    f.attempts[i] += 1;
                    let mut delay = r.interval_secs * r.backoff_rate.powi(attempt as i32);
                    if let Some(max) = r.max_delay_secs {
                        delay = delay.min(max);
                    }
                    if r.full_jitter {
                        delay *= self.rng.f64();
                    }
                    let f = self.frame(fid);
                    f.gen = f.gen.wrapping_add(1);
                    f.phase = Phase::Backoff;
                    let token = Token::new(fid, f.gen);
                    let at = now.saturating_add((delay * 1000.0) as Millis);
                    self.effects.push(Effect::Timer { token, at });
                    return false;
                }
            }
            if let Some(c) = state.catch.iter().find(|c| matches(&c.errors)) {
                // AWS binds an empty string for an absent cause.
                let mut err_out = Map::new();
                let text = |s: &Option<String>| Value::String(s.clone().unwrap_or_default());
                err_out.insert("Error".into(), text(&failure.error));
                err_out.insert("Cause".into(), text(&failure.cause));
                let err_out = Value::Object(err_out);
                if c.jsonata {
                    return match self.catch_jsonata(p, fid, c, err_out, now) {
                        Ok(out) => self.transition(p, fid, c.next, out, SizeBound::Measure, now),
                        Err(e) => {
                            let f = self.wrap(p, fid, e);
                            self.end_frame(p, fid, Err(f), now)
                        }
                    };
                }
                if let Some(a) = &c.assign {
                    if let Err(e) = self.assign_path(p, fid, a, &err_out) {
                        let f = self.wrap(p, fid, e);
                        return self.end_frame(p, fid, Err(f), now);
                    }
                }
                let raw = std::mem::take(&mut self.frame(fid).data);
                return match apply_result_path(&c.result_path, raw, err_out) {
                    Ok(out) => self.transition(p, fid, c.next, out, SizeBound::Measure, now),
                    Err(detail) => {
                        let f = self.wrap(
                            p,
                            fid,
                            EvalError::new(names::RESULT_PATH_MATCH_FAILURE, detail),
                        );
                        self.end_frame(p, fid, Err(f), now)
                    }
                };
            }
        }
        self.end_frame(p, fid, Err(failure), now)
    }

    /// A JSONata catcher: `Assign` and `Output` over `$states.errorOutput` (and the state's
    /// input); without `Output`, the error output is the output.
    fn catch_jsonata(
        &mut self,
        p: &Program,
        fid: u32,
        c: &Catcher,
        err_out: Value,
        now: Millis,
    ) -> Result<Value, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let (values, out) = {
            let scope = self.scope(p, f, &f.data);
            let mut env = Env::new(&f.data, &scope, f.vars.as_deref(), now, self.seed);
            env.error_output = Some(&err_out);
            let values = match c.assign.as_deref() {
                Some(Assign::Jsonata(t)) => Some(Assign::eval_jsonata(t, &env)?),
                Some(a) => Some(assign_values(a, &scope)?),
                None => None,
            };
            let out = match &c.output {
                Some(t) => Some(t.eval(&env)?),
                None => None,
            };
            (values, out)
        };
        if let Some(values) = values {
            vars::apply(&mut self.frame(fid).vars, values)?;
        }
        Ok(out.unwrap_or(err_out))
    }

    /// Wraps an expression error into AWS's cause, naming the state and its entry event.
    fn wrap(&mut self, p: &Program, fid: u32, e: EvalError) -> Failure {
        let f = self.frame(fid);
        let name = &p.state(f.state).name;
        Failure::new(
            e.error,
            format!(
                "An error occurred while executing the state '{name}' (entered at the event id #{}). {}",
                f.entered_event, e.detail
            ),
        )
    }

    fn enter(&mut self, p: &Program, fid: u32, now: Millis) -> Flow {
        self.transitions += 1;
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        let record = self.opts.record_history;
        let data = &f.data;
        let details = || {
            if record {
                serde_json::json!({ "name": &*state.name, "input": json_text(data) })
            } else {
                Value::Null
            }
        };
        let details = details();
        let id = self.event(entered_event(&state.kind), Some(&state.name), now, || {
            details
        });
        let f = self.frame(fid);
        f.entered_event = id;
        f.entered_at = now;
        self.run_state(p, fid, now)
    }

    fn run_state(&mut self, p: &Program, fid: u32, now: Millis) -> Flow {
        match self.exec_state(p, fid, now) {
            Ok(flow) => flow,
            Err(e) => Flow::Error(self.wrap(p, fid, e)),
        }
    }

    fn scope<'a>(&'a self, p: &'a Program, f: &'a Frame, input: &'a Value) -> StateScope<'a> {
        let state = p.state(f.state);
        // `$$.State.RetryCount` exists on the states that can retry.
        let retries = matches!(
            state.kind,
            Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_)
        );
        StateScope {
            input,
            ctx: &self.ctx,
            opts: &self.opts,
            state_name: &state.name,
            entered_at: f.entered_at,
            map_item: None,
            retry_count: retries.then(|| f.attempts.iter().sum()),
            task_token: None,
            variables: f.vars.as_deref(),
        }
    }

    /// `InputPath`-style selection; borrows when it can. `$$` paths read the context object.
    fn select<'a>(
        &'a self,
        p: &'a Program,
        f: &'a Frame,
        sel: &Selection,
        doc: &'a Value,
    ) -> Result<Cow<'a, Value>, EvalError> {
        match sel {
            Selection::Path(path) if path.root() != Root::Input => self
                .scope(p, f, doc)
                .select(path)
                .map(|v| Cow::Owned(v.into_owned()))
                .ok_or_else(|| missing(path, &Value::Null)),
            _ => select(sel, doc),
        }
    }

    /// The current state's effective input (after `InputPath`), taking the frame's data
    /// rather than copying it when `InputPath` is `$`.
    fn take_input(&mut self, p: &Program, fid: u32) -> Result<Value, EvalError> {
        let io = &p.state(self.frame(fid).state).io;
        match &io.input_path {
            Selection::All => Ok(std::mem::take(&mut self.frame(fid).data)),
            sel => {
                let f = self.frames[fid as usize].as_ref().expect("frame");
                self.select(p, f, sel, &f.data).map(Cow::into_owned)
            }
        }
    }

    /// Evaluates a consumable template by moving values out of `input` (see
    /// [`Template::eval_consuming`]). On any error the plain evaluation runs instead, so the
    /// error is the one AWS reports: the first failing field in template order. Also returns
    /// a bound on the result's size (`None` if a call result alone is over the limit).
    fn consume(
        &self,
        p: &Program,
        f: &Frame,
        t: &Template,
        input: &mut Value,
        input_size: usize,
    ) -> Result<(Value, Option<usize>), EvalError> {
        let calls = t.eval_calls(&self.scope(p, f, input));
        if let Ok(calls) = calls {
            let limit = self.opts.payload_limit_bytes;
            let (c, k) = t.bound_besides_calls();
            let bound = calls.iter().try_fold(c + k * input_size, |b, v| {
                size::measure(v, limit).map(|n| b + n)
            });
            if let Some(v) = t.eval_consuming(input, calls) {
                return Ok((v, bound));
            }
        }
        t.eval(&self.scope(p, f, input)).map(|v| (v, None))
    }

    /// `OutputPath`-style selection of an owned document.
    fn select_owned(
        &self,
        p: &Program,
        fid: u32,
        sel: &Selection,
        doc: Value,
    ) -> Result<Value, EvalError> {
        match sel {
            Selection::All => Ok(doc),
            _ => {
                let f = self.frames[fid as usize].as_ref().expect("frame");
                self.select(p, f, sel, &doc).map(Cow::into_owned)
            }
        }
    }

    /// Runs the state the frame has just entered.
    fn exec_state(&mut self, p: &Program, fid: u32, now: Millis) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        if state.jsonata.is_some() {
            return self.exec_jsonata(p, fid, now);
        }
        let io = &state.io;
        match &state.kind {
            Kind::Pass { result: None } if io.parameters_consume_input => {
                let template = io
                    .parameters
                    .as_ref()
                    .expect("consuming implies Parameters");
                let mut raw = std::mem::take(&mut self.frame(fid).data);
                let f = self.frames[fid as usize].as_ref().expect("frame");
                let result = self.consume(p, f, template, &mut raw, f.size_bound);
                match result {
                    Ok((result, bound)) => {
                        if let Some(a) = &state.assign {
                            self.assign_path(p, fid, a, &result)?;
                        }
                        self.frame(fid).output_bound = bound;
                        Ok(Flow::Next(self.select_owned(
                            p,
                            fid,
                            &io.output_path,
                            result,
                        )?))
                    }
                    Err(e) => {
                        self.frame(fid).data = raw;
                        Err(e)
                    }
                }
            }
            Kind::Pass { result } => {
                let raw = &f.data;
                let result = match result {
                    Some(r) => Some(r.clone()),
                    None => {
                        let input = self.select(p, f, &io.input_path, raw)?;
                        match &io.parameters {
                            Some(t) => Some(t.eval(&self.scope(p, f, &input))?),
                            None => match input {
                                Cow::Owned(v) => Some(v),
                                // The effective input is the raw input: move it, don't copy.
                                Cow::Borrowed(_) => None,
                            },
                        }
                    }
                };
                if let Some(a) = &state.assign {
                    let f = self.frames[fid as usize].as_ref().expect("frame");
                    let values =
                        assign_values(a, &self.scope(p, f, result.as_ref().unwrap_or(&f.data)))?;
                    vars::apply(&mut self.frame(fid).vars, values)?;
                }
                let f = self.frames[fid as usize].as_ref().expect("frame");
                // A result written into the input (a counter, a flag) is usually small:
                // measure it alone rather than the whole output.
                if let (ResultPath::At(path), Some(r), SizeBound::Measure) =
                    (&io.result_path, &result, state.size_bound)
                {
                    if let Some(n) = size::measure(r, self.opts.payload_limit_bytes) {
                        let bound = f.size_bound + n + 4 * path.as_str().len() + 8;
                        self.frame(fid).output_bound = Some(bound);
                    }
                }
                let raw = std::mem::take(&mut self.frame(fid).data);
                let out = match result {
                    Some(r) => apply_result_path(&io.result_path, raw, r),
                    None => {
                        let r = raw.clone();
                        apply_result_path(&io.result_path, raw, r)
                    }
                }
                .map_err(|d| EvalError::new(names::RESULT_PATH_MATCH_FAILURE, d))?;
                Ok(Flow::Next(self.select_owned(
                    p,
                    fid,
                    &io.output_path,
                    out,
                )?))
            }
            Kind::Choice { choices, default } => {
                let (target, values) = {
                    let input = self.select(p, f, &io.input_path, &f.data)?;
                    let scope = self.scope(p, f, &input);
                    let mut target = (*default, state.assign.as_deref());
                    for choice in choices {
                        let Rule::Path(rule) = &choice.rule else {
                            continue;
                        };
                        if rule.eval(&scope)? {
                            target = (Some(choice.next), choice.assign.as_deref());
                            break;
                        }
                    }
                    let values = match target {
                        (Some(_), Some(a)) => Some(assign_values(a, &scope)?),
                        _ => None,
                    };
                    (target.0, values)
                };
                if let Some(values) = values {
                    vars::apply(&mut self.frame(fid).vars, values)?;
                }
                match target {
                    Some(t) => {
                        let input = self.take_input(p, fid)?;
                        Ok(Flow::Goto(
                            t,
                            self.select_owned(p, fid, &io.output_path, input)?,
                        ))
                    }
                    None => Err(EvalError::new(names::NO_CHOICE_MATCHED, "No Matches!")),
                }
            }
            Kind::Succeed => {
                let raw = std::mem::take(&mut self.frame(fid).data);
                let input = self.select_owned(p, fid, &io.input_path, raw)?;
                Ok(Flow::Finish(self.select_owned(
                    p,
                    fid,
                    &io.output_path,
                    input,
                )?))
            }
            Kind::Fail { error, cause } => {
                let input = self.select(p, f, &io.input_path, &f.data)?;
                let scope = self.scope(p, f, &input);
                let error = resolve_text(error.as_ref(), &scope)?;
                let cause = resolve_text(cause.as_ref(), &scope)?;
                Ok(Flow::Fail(Failure { error, cause }))
            }
            Kind::Wait(spec) => {
                let input = self.select(p, f, &io.input_path, &f.data)?;
                let at = match spec {
                    WaitSpec::Seconds(s) => now.saturating_add(*s as Millis * 1000),
                    WaitSpec::Timestamp(t) => *t,
                    WaitSpec::SecondsPath(path) => now.saturating_add(
                        wait_seconds(path, &self.scope(p, f, &input))?.saturating_mul(1000),
                    ),
                    WaitSpec::TimestampPath(path) => {
                        wait_timestamp(path, &self.scope(p, f, &input))?
                    }
                    WaitSpec::Jsonata { .. } => now,
                };
                if let Some(a) = &state.assign {
                    let values = assign_values(a, &self.scope(p, f, &input))?;
                    vars::apply(&mut self.frame(fid).vars, values)?;
                }
                let input = self.take_input(p, fid)?;
                let out = self.select_owned(p, fid, &io.output_path, input)?;
                Ok(self.wait_until(fid, at, out, now))
            }
            Kind::Task(task) => {
                let input = self.select(p, f, &io.input_path, &f.data)?;
                // A new token per attempt, made before `Parameters` can pass it on.
                let task_token = needs_task_token(&task.resource).then(new_task_token);
                let payload = match &io.parameters {
                    Some(t) => t.eval(&StateScope {
                        task_token: task_token.as_deref(),
                        ..self.scope(p, f, &input)
                    })?,
                    None => input.clone().into_owned(),
                };
                let scope = self.scope(p, f, &input);
                let env = Env::new(&input, &scope, None, now, self.seed);
                let call = self.task_call(state, task, payload, task_token, &scope, &env)?;
                Ok(self.start_task(fid, call, now))
            }
            Kind::Parallel { branches } => {
                let input = self.select(p, f, &io.input_path, &f.data)?;
                let param = match &io.parameters {
                    Some(t) => t.eval(&self.scope(p, f, &input))?,
                    None => input.into_owned(),
                };
                let bound = derived_bound(io.parameters.as_ref(), f.size_bound, &param);
                self.start_parallel(p, fid, branches, param, bound, now);
                Ok(Flow::Blocked)
            }
            Kind::Map(spec) => self.exec_map(p, fid, spec, now),
        }
    }

    /// Hands a Task's call out as an effect, with its timeout and heartbeat timers.
    /// The call a Task state makes, its timeouts resolved (in either query language).
    fn task_call(
        &self,
        state: &State,
        task: &TaskSpec,
        payload: Value,
        task_token: Option<Arc<str>>,
        scope: &dyn Scope,
        env: &Env,
    ) -> Result<TaskCall, EvalError> {
        Ok(TaskCall {
            resource: task.resource.clone(),
            payload,
            state_name: state.name.clone(),
            execution_name: self.opts.name.clone(),
            timeout_secs: resolve_count(task.timeout.as_ref(), scope, env)?,
            heartbeat_secs: resolve_count(task.heartbeat.as_ref(), scope, env)?,
            task_token,
        })
    }

    fn start_task(&mut self, fid: u32, call: TaskCall, now: Millis) -> Flow {
        let record = self.opts.record_history;
        self.event("TaskScheduled", Some(&call.state_name), now, || {
            if record {
                serde_json::json!({ "resource": &*call.resource, "parameters": json_text(&call.payload) })
            } else {
                Value::Null
            }
        });
        self.event("TaskStarted", Some(&call.state_name), now, || Value::Null);
        let deadline = call
            .timeout_secs
            .map(|s| now.saturating_add(s as Millis * 1000));
        let heartbeat_at = call
            .heartbeat_secs
            .map(|s| now.saturating_add(s as Millis * 1000));
        let f = self.frame(fid);
        f.gen = f.gen.wrapping_add(1);
        f.phase = Phase::Task {
            deadline,
            heartbeat: heartbeat_at,
            heartbeat_every: call.heartbeat_secs.map_or(0, |s| s as Millis * 1000),
        };
        let token = Token::new(fid, f.gen);
        self.effects.push(Effect::Invoke {
            token,
            call: Box::new(call),
        });
        if let Some(at) = [deadline, heartbeat_at].into_iter().flatten().min() {
            self.effects.push(Effect::Timer { token, at });
        }
        Flow::Blocked
    }

    /// A Wait state's output waits in the frame until `at`.
    fn wait_until(&mut self, fid: u32, at: Millis, out: Value, now: Millis) -> Flow {
        if at <= now {
            return Flow::Next(out);
        }
        let f = self.frame(fid);
        f.data = out;
        f.gen = f.gen.wrapping_add(1);
        f.phase = Phase::Waiting;
        let token = Token::new(fid, f.gen);
        self.effects.push(Effect::Timer { token, at });
        Flow::Blocked
    }

    /// Evaluates a JSONPath `Assign` over `doc` (the state's result) and sets the variables.
    fn assign_path(
        &mut self,
        p: &Program,
        fid: u32,
        assign: &Assign,
        doc: &Value,
    ) -> Result<(), EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let values = assign_values(assign, &self.scope(p, f, doc))?;
        vars::apply(&mut self.frame(fid).vars, values)
    }

    /// Runs a JSONata state (see [`JsonataIo`]): `Arguments` in place of `InputPath` and
    /// `Parameters`, `Output` in place of the rest.
    fn exec_jsonata(&mut self, p: &Program, fid: u32, now: Millis) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        let jio = state.jsonata.as_deref().expect("a JSONata state");
        match &state.kind {
            Kind::Pass { .. } => {
                let out = self.jsonata_finish(
                    p,
                    fid,
                    None,
                    state.assign.as_deref(),
                    jio.output.as_ref(),
                    now,
                )?;
                Ok(Flow::Next(out))
            }
            Kind::Succeed => {
                let out = self.jsonata_finish(p, fid, None, None, jio.output.as_ref(), now)?;
                Ok(Flow::Finish(out))
            }
            Kind::Fail { error, cause } => {
                let scope = self.scope(p, f, &f.data);
                let env = Env::new(&f.data, &scope, f.vars.as_deref(), now, self.seed);
                let text = |d: &Option<Dynamic>| -> Result<Option<String>, EvalError> {
                    Ok(match d {
                        None => None,
                        Some(Dynamic::Jsonata(t)) => Some(plain_text(&t.eval(&env)?)),
                        Some(Dynamic::Literal(v)) => Some(plain_text(v)),
                        Some(other) => resolve_text(Some(other), &scope)?,
                    })
                };
                Ok(Flow::Fail(Failure {
                    error: text(error)?,
                    cause: text(cause)?,
                }))
            }
            Kind::Choice { choices, default } => {
                let (target, assign, output) = {
                    let scope = self.scope(p, f, &f.data);
                    let env = Env::new(&f.data, &scope, f.vars.as_deref(), now, self.seed);
                    let mut target = (*default, state.assign.as_deref(), jio.output.as_ref());
                    for choice in choices {
                        let matched = match &choice.rule {
                            Rule::Condition(t) => match t.eval(&env)? {
                                Value::Bool(b) => b,
                                other => {
                                    return Err(expected_type(t, "Condition", "boolean", &other))
                                }
                            },
                            Rule::Path(rule) => rule.eval(&scope)?,
                        };
                        if matched {
                            target = (
                                Some(choice.next),
                                choice.assign.as_deref(),
                                choice.output.as_ref(),
                            );
                            break;
                        }
                    }
                    target
                };
                let Some(target) = target else {
                    return Err(EvalError::new(names::NO_CHOICE_MATCHED, "No Matches!"));
                };
                let out = self.jsonata_finish(p, fid, None, assign, output, now)?;
                Ok(Flow::Goto(target, out))
            }
            Kind::Wait(spec) => {
                let at = match spec {
                    WaitSpec::Seconds(s) => now.saturating_add(*s as Millis * 1000),
                    WaitSpec::Timestamp(t) => *t,
                    WaitSpec::Jsonata { seconds, expr } => {
                        let scope = self.scope(p, f, &f.data);
                        let env = Env::new(&f.data, &scope, f.vars.as_deref(), now, self.seed);
                        let v = expr.eval(&env)?;
                        match (seconds, &v) {
                            (true, Value::Number(n)) if n.as_u64().is_some() => {
                                now.saturating_add(n.as_u64().unwrap_or(0) as Millis * 1000)
                            }
                            (true, _) => return Err(expected_type(expr, "Seconds", "integer", &v)),
                            (false, Value::String(text)) => match super::timestamp::parse(text) {
                                Some(t) => t.timestamp_millis(),
                                None => {
                                    return Err(EvalError::new(
                                        names::QUERY_EVALUATION_ERROR,
                                        format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"),
                                    ))
                                }
                            },
                            (false, _) => return Err(expected_type(expr, "Timestamp", "string", &v)),
                        }
                    }
                    // JSONPath forms do not occur in JSONata states.
                    WaitSpec::SecondsPath(_) | WaitSpec::TimestampPath(_) => now,
                };
                let out = self.jsonata_finish(
                    p,
                    fid,
                    None,
                    state.assign.as_deref(),
                    jio.output.as_ref(),
                    now,
                )?;
                Ok(self.wait_until(fid, at, out, now))
            }
            Kind::Task(task) => {
                let task_token = needs_task_token(&task.resource).then(new_task_token);
                let scope = StateScope {
                    task_token: task_token.as_deref(),
                    ..self.scope(p, f, &f.data)
                };
                let env = Env::new(&f.data, &scope, f.vars.as_deref(), now, self.seed);
                let payload = match &jio.arguments {
                    Some(t) => t.eval(&env)?,
                    None => f.data.clone(),
                };
                let call =
                    self.task_call(state, task, payload, task_token.clone(), &scope, &env)?;
                Ok(self.start_task(fid, call, now))
            }
            Kind::Parallel { branches } => {
                let param = match &jio.arguments {
                    Some(t) => {
                        let scope = self.scope(p, f, &f.data);
                        t.eval(&Env::new(
                            &f.data,
                            &scope,
                            f.vars.as_deref(),
                            now,
                            self.seed,
                        ))?
                    }
                    None => f.data.clone(),
                };
                let bound = size::json_len(&param);
                self.start_parallel(p, fid, branches, param, bound, now);
                Ok(Flow::Blocked)
            }
            Kind::Map(spec) => self.exec_map(p, fid, spec, now),
        }
    }

    /// The end of a JSONata state: `Assign` and `Output` evaluated over the same `$states`
    /// (the state's input and, for Task, Map and Parallel, its `result`) and the variables
    /// as they were, then the assignments applied. Without `Output`, the result, else the
    /// input, is the output.
    fn jsonata_finish(
        &mut self,
        p: &Program,
        fid: u32,
        result: Option<Value>,
        assign: Option<&Assign>,
        output: Option<&JTemplate>,
        now: Millis,
    ) -> Result<Value, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let (values, out) = {
            let scope = self.scope(p, f, &f.data);
            let mut env = Env::new(&f.data, &scope, f.vars.as_deref(), now, self.seed);
            env.result = result.as_ref();
            let values = match assign {
                Some(Assign::Jsonata(t)) => Some(Assign::eval_jsonata(t, &env)?),
                Some(a) => Some(assign_values(a, &scope)?),
                None => None,
            };
            let out = match output {
                Some(t) => Some(t.eval(&env)?),
                None => None,
            };
            (values, out)
        };
        if let Some(values) = values {
            vars::apply(&mut self.frame(fid).vars, values)?;
        }
        Ok(match (out, result) {
            (Some(out), _) => out,
            (None, Some(result)) => result,
            (None, None) => std::mem::take(&mut self.frame(fid).data),
        })
    }

    /// Starts every branch of a Parallel state at once, each its own machine, on `param`.
    fn start_parallel(
        &mut self,
        p: &Program,
        fid: u32,
        branches: &[MachineId],
        param: Value,
        bound: usize,
        now: Millis,
    ) {
        let name = &p.state(self.frame(fid).state).name;
        self.event("ParallelStateStarted", Some(name), now, || Value::Null);
        let vars = self.frame(fid).vars.clone();
        for (slot, m) in branches.iter().enumerate() {
            let c = self.spawn(
                p.start_of(*m),
                param.clone(),
                Some((fid, slot as u32)),
                bound,
                vars.clone(),
            );
            self.runnable.push_back(c);
        }
        let join = Join {
            is_map: false,
            results: vec![Value::Null; branches.len()],
            results_bound: 2,
            pending: branches.len(),
            queue: VecDeque::new(),
            machine: 0,
            running: branches.len(),
            limit: usize::MAX,
            failures: 0,
            tolerated: None,
            vars,
        };
        self.start_join(p, fid, join, now);
    }

    /// Puts the frame to wait on children: one per Parallel branch, or one per Map item
    /// (started up to `limit` at a time).
    fn start_join(&mut self, p: &Program, fid: u32, join: Join, now: Millis) {
        let f = self.frame(fid);
        f.gen = f.gen.wrapping_add(1);
        if join.pending == 0 {
            f.phase = Phase::Resume(Resume::ChildrenDone(Value::Array(Vec::new()), 2));
            self.runnable.push_back(fid);
            return;
        }
        f.phase = Phase::Children(Box::new(join));
        self.start_queued(p, fid, now);
    }

    fn exec_map(
        &mut self,
        p: &Program,
        fid: u32,
        spec: &MapSpec,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        let io = &state.io;
        let jsonata = state.jsonata.is_some();
        let input = match jsonata {
            true => Cow::Borrowed(&f.data),
            false => self.select(p, f, &io.input_path, &f.data)?,
        };
        let scope = self.scope(p, f, &input);
        let env = Env::new(&input, &scope, f.vars.as_deref(), now, self.seed);
        let max_concurrency =
            resolve_count(spec.max_concurrency.as_ref(), &scope, &env)?.unwrap_or(0) as usize;
        let tolerated_count = resolve_count(spec.tolerated_count.as_ref(), &scope, &env)?;
        let tolerated_pct = match &spec.tolerated_percentage {
            Some(Percentage::Literal(x)) => Some(*x),
            Some(Percentage::Path(path)) => match scope.select(path) {
                Some(v) => match v.as_f64() {
                    Some(x) => Some(x),
                    None => {
                        return Err(EvalError::runtime(format!(
                            "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {path}",
                            plain_text(&v)
                        )))
                    }
                },
                None => return Err(missing(path, &input)),
            },
            Some(Percentage::Jsonata(t)) => match t.eval(&env)? {
                Value::Number(n) => n.as_f64(),
                other => {
                    return Err(expected_type(t, "ToleratedFailurePercentage", "number", &other))
                }
            },
            None => None,
        };
        if let Some(x) = tolerated_pct {
            if !(0.0..=100.0).contains(&x) {
                return Err(EvalError::runtime(
                    "ToleratedFailurePercentage must be between 0 and 100.",
                ));
            }
        }
        let items: Cow<Value> = match (&spec.jsonata_items, &spec.items_path) {
            (Some(t), _) => match t.eval(&env)? {
                v @ Value::Array(_) => Cow::Owned(v),
                other => return Err(expected_type(t, "Items", "array", &other)),
            },
            (None, Some(path)) => match scope.select(path) {
                Some(v) => Cow::Owned(v.into_owned()),
                None if path.root() == Root::Input => return Err(missing(path, &input)),
                None => return Err(missing(path, &Value::Null)),
            },
            (None, None) => Cow::Borrowed(&*input),
        };
        let Value::Array(items) = &*items else {
            let error = match jsonata {
                true => names::QUERY_EVALUATION_ERROR,
                false => names::RUNTIME,
            };
            return Err(EvalError::new(
                error,
                format!(
                    "Map state input must be an array but was: {}",
                    json_text(&items)
                ),
            ));
        };
        let mut queue = VecDeque::with_capacity(items.len());
        let batches;
        let units: &[Value] = match &spec.batcher {
            Some(b) => {
                batches = batch_items(b, items, &scope)?;
                &batches
            }
            None => items,
        };
        for (i, item) in units.iter().enumerate() {
            let item_scope = || StateScope {
                map_item: Some((i, item)),
                ..self.scope(p, f, &input)
            };
            let iter_input = match (&spec.jsonata_selector, &spec.item_selector) {
                (Some(t), _) => {
                    let item_scope = item_scope();
                    t.eval(&Env::new(
                        &input,
                        &item_scope,
                        f.vars.as_deref(),
                        now,
                        self.seed,
                    ))?
                }
                (None, Some(t)) => t.eval(&item_scope())?,
                (None, None) => item.clone(),
            };
            let bound = match (&spec.batcher, &spec.jsonata_selector) {
                // A batch is a new array, a JSONata selector any value: measure it.
                (Some(_), _) | (_, Some(_)) => size::json_len(&iter_input),
                _ => derived_bound(spec.item_selector.as_ref(), f.size_bound, &iter_input),
            };
            queue.push_back((i as u32, iter_input, bound));
        }
        let vars = match spec.distributed {
            true => None,
            false => f.vars.clone(),
        };
        let n = queue.len();
        let tolerated = match (tolerated_count, tolerated_pct) {
            (None, None) => None,
            (c, pct) => {
                let by_pct = pct.map(|x| ((x / 100.0) * n as f64).floor() as usize);
                Some(match (c, by_pct) {
                    // The Map fails when either threshold is exceeded.
                    (Some(c), Some(b)) => (c as usize).min(b),
                    (Some(c), None) => c as usize,
                    (None, Some(b)) => b,
                    (None, None) => 0,
                })
            }
        };
        let name = &p.state(f.state).name;
        self.event("MapStateStarted", Some(name), now, || Value::Null);
        let join = Join {
            is_map: true,
            results: vec![Value::Null; n],
            results_bound: 2,
            pending: n,
            queue,
            machine: spec.processor,
            running: 0,
            limit: if max_concurrency == 0 {
                usize::MAX
            } else {
                max_concurrency
            },
            failures: 0,
            tolerated,
            vars,
        };
        self.start_join(p, fid, join, now);
        Ok(Flow::Blocked)
    }

    fn resume(&mut self, p: &Program, fid: u32, r: Resume, now: Millis) -> Flow {
        match r {
            Resume::Error(f) => {
                let state = p.state(self.frame(fid).state);
                // Only a Task's own timers resume it with an error: a timeout.
                if matches!(state.kind, Kind::Task(_)) {
                    self.event("TaskTimedOut", Some(&state.name), now, || Value::Null);
                }
                Flow::Error(f)
            }
            Resume::WaitDone => Flow::Next(std::mem::take(&mut self.frame(fid).data)),
            Resume::Task(Err(f)) => {
                let name = &p.state(self.frame(fid).state).name;
                self.event("TaskFailed", Some(name), now, || Value::Null);
                Flow::Error(f)
            }
            Resume::Task(Ok(result)) => {
                let name = &p.state(self.frame(fid).state).name;
                self.event("TaskSucceeded", Some(name), now, || Value::Null);
                match size::measure(&result, self.opts.payload_limit_bytes) {
                    Some(n) => self.finish_result(p, fid, result, n, now),
                    None => Flow::Error(data_limit_exceeded(name)),
                }
            }
            Resume::ChildrenDone(results, bound) => self.finish_result(p, fid, results, bound, now),
        }
    }

    /// `ResultSelector` → `ResultPath` → `OutputPath` for a Task, Parallel or Map result of
    /// at most `result_size` bytes.
    fn finish_result(
        &mut self,
        p: &Program,
        fid: u32,
        result: Value,
        result_size: usize,
        now: Millis,
    ) -> Flow {
        let state = p.state(self.frame(fid).state);
        if let Some(jio) = &state.jsonata {
            let finished = self.jsonata_finish(
                p,
                fid,
                Some(result),
                state.assign.as_deref(),
                jio.output.as_ref(),
                now,
            );
            return match finished {
                Ok(out) => Flow::Next(out),
                Err(e) => Flow::Error(self.wrap(p, fid, e)),
            };
        }
        let io = &state.io;
        // Bound the output from the result's size, so that it need not be measured.
        let selected_size = match &io.result_selector {
            None => Some(result_size),
            Some(t) => t.size_bound().map(|(c, k)| c + k * result_size),
        };
        if let Some(n) = selected_size {
            let input_size = self.frame(fid).size_bound;
            self.frame(fid).output_bound = Some(match &io.result_path {
                ResultPath::Replace => n,
                ResultPath::Discard => input_size,
                ResultPath::At(path) => input_size + n + 4 * path.as_str().len() + 8,
            });
        }
        let run = |this: &mut Self| -> Result<Value, EvalError> {
            let result = match &io.result_selector {
                Some(t) if io.result_selector_consumes => {
                    let mut result = result;
                    let f = this.frames[fid as usize].as_ref().expect("frame");
                    this.consume(p, f, t, &mut result, result_size)?.0
                }
                Some(t) => {
                    let f = this.frames[fid as usize].as_ref().expect("frame");
                    t.eval(&this.scope(p, f, &result))?
                }
                None => result,
            };
            if let Some(a) = &state.assign {
                this.assign_path(p, fid, a, &result)?;
            }
            let raw = std::mem::take(&mut this.frame(fid).data);
            let out = apply_result_path(&io.result_path, raw, result)
                .map_err(|d| EvalError::new(names::RESULT_PATH_MATCH_FAILURE, d))?;
            this.select_owned(p, fid, &io.output_path, out)
        };
        match run(self) {
            Ok(out) => Flow::Next(out),
            Err(e) => Flow::Error(self.wrap(p, fid, e)),
        }
    }
}

fn entered_event(kind: &Kind) -> &'static str {
    match kind {
        Kind::Pass { .. } => "PassStateEntered",
        Kind::Task(_) => "TaskStateEntered",
        Kind::Choice { .. } => "ChoiceStateEntered",
        Kind::Wait(_) => "WaitStateEntered",
        Kind::Succeed => "SucceedStateEntered",
        Kind::Fail { .. } => "FailStateEntered",
        Kind::Parallel { .. } => "ParallelStateEntered",
        Kind::Map(_) => "MapStateEntered",
    }
}

fn exited_event(kind: &Kind) -> &'static str {
    match kind {
        Kind::Pass { .. } => "PassStateExited",
        Kind::Task(_) => "TaskStateExited",
        Kind::Choice { .. } => "ChoiceStateExited",
        Kind::Wait(_) => "WaitStateExited",
        Kind::Succeed => "SucceedStateExited",
        Kind::Fail { .. } => "FailStateExited",
        Kind::Parallel { .. } => "ParallelStateExited",
        Kind::Map(_) => "MapStateExited",
    }
}

/// A bound on the size of `value`, made by `template` (if any) from an input of at most
/// `input_bound` bytes; measured when the template cannot say.
fn derived_bound(template: Option<&Template>, input_bound: usize, value: &Value) -> usize {
    match template.map(Template::size_bound) {
        None => input_bound,
        Some(Some((c, k))) => c.saturating_add(k.saturating_mul(input_bound)),
        Some(None) => size::json_len(value),
    }
}

/// A JSONPath `Assign` evaluated in `scope` (a JSONata one never reaches here: JSONata
/// states evaluate theirs with `$states`).
fn assign_values(assign: &Assign, scope: &dyn Scope) -> Result<Map<String, Value>, EvalError> {
    match assign {
        Assign::Path(t) => Assign::eval_path(t, scope),
        Assign::Jsonata(_) => Ok(Map::new()),
    }
}

fn missing(path: &JsonPath, doc: &Value) -> EvalError {
    EvalError::runtime(format!(
        "Invalid path '{path}' : {}",
        path.missing_message(doc)
    ))
}

/// `InputPath`: borrows when it can.
fn select<'a>(sel: &Selection, doc: &'a Value) -> Result<Cow<'a, Value>, EvalError> {
    match sel {
        Selection::All => Ok(Cow::Borrowed(doc)),
        Selection::Nothing => Ok(Cow::Owned(Value::Object(Map::new()))),
        Selection::Path(p) => p.select(doc).ok_or_else(|| missing(p, doc)),
    }
}

fn apply_result_path(rp: &ResultPath, raw: Value, result: Value) -> Result<Value, String> {
    match rp {
        ResultPath::Replace => Ok(result),
        ResultPath::Discard => Ok(raw),
        ResultPath::At(path) => {
            let mut raw = raw;
            match path.assign(&mut raw, result) {
                Ok(()) => Ok(raw),
                Err(why) => Err(format!(
                    "Unable to apply ResultPath '{path}' to input '{}': {why}",
                    json_text(&raw)
                )),
            }
        }
    }
}

fn resolve_text(d: Option<&Dynamic>, scope: &dyn Scope) -> Result<Option<String>, EvalError> {
    let v = match d {
        None => return Ok(None),
        Some(Dynamic::Literal(v)) => Cow::Borrowed(v),
        Some(Dynamic::Path { field, path }) => match scope.select(path) {
            Some(v) => v,
            None => {
                return Err(EvalError::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
                    json_text(scope.input())
                )))
            }
        },
        Some(Dynamic::Call(c)) => Cow::Owned(c.eval(scope)?),
        // Evaluated by the JSONata Fail state itself.
        Some(Dynamic::Jsonata(_)) => return Ok(None),
    };
    Ok(Some(match &*v {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }))
}

fn int_field(field: &str, path: &JsonPath, v: &Value, negative: &str) -> Result<u64, EvalError> {
    // A string holding an integer is accepted too (AWS-recorded: MaxConcurrencyPath "1").
    let parsed;
    let v = match v {
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => {
                parsed = Value::from(n);
                &parsed
            }
            Err(_) => v,
        },
        _ => v,
    };
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_u64() {
            Some(u) => Ok(u),
            None => Err(EvalError::runtime(negative.to_string())),
        },
        _ => Err(EvalError::runtime(format!(
            "The {field} field refers to value \"{}\" which is not a valid integer: {path}",
            plain_text(v)
        ))),
    }
}

fn resolve_count(
    c: Option<&Count>,
    scope: &dyn Scope,
    env: &Env,
) -> Result<Option<u64>, EvalError> {
    match c {
        None => Ok(None),
        Some(Count::Literal(n)) => Ok(Some(*n)),
        Some(Count::Path { field, path }) => match scope.select(path) {
            Some(v) => {
                let base = field.trim_end_matches("Path");
                int_field(field, path, &v, &format!("{base} cannot be negative.")).map(Some)
            }
            None => Err(missing(path, scope.input())),
        },
        Some(Count::Jsonata { field, expr }) => match expr.eval(env)? {
            Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
            Value::Number(n) if n.as_f64().is_some_and(|x| x >= 0.0 && x.fract() == 0.0) => {
                Ok(n.as_f64().map(|x| x as u64))
            }
            other => Err(expected_type(expr, field, "integer", &other)),
        },
    }
}

/// AWS's cause for a JSONata field whose value has the wrong type.
fn expected_type(t: &JTemplate, field: &str, expected: &str, got: &Value) -> EvalError {
    match t.as_expr() {
        Some(expr) => jsonata::unexpected_type(expr, field, expected, got),
        None => EvalError::new(
            names::QUERY_EVALUATION_ERROR,
            format!(
                "The field '{field}' must be of type '{expected}', but was '{}' for value: {}",
                jsonata::value_kind(got),
                json_text(got)
            ),
        ),
    }
}

fn wait_seconds(path: &JsonPath, scope: &dyn Scope) -> Result<Millis, EvalError> {
    let Some(v) = scope.select(path) else {
        return Err(EvalError::runtime(format!(
            "The SecondsPath parameter does not reference an input value: {path}"
        )));
    };
    let shown = plain_text(&v);
    match v.as_i64() {
        Some(n) if n < 0 => Err(EvalError::runtime(format!(
            "The SecondsPath parameter references a negative value: {path} == {shown}"
        ))),
        Some(n) => Ok(n),
        None => Err(EvalError::runtime(format!(
            "The SecondsPath parameter cannot be parsed as a long value: {path} == {shown}"
        ))),
    }
}

fn wait_timestamp(path: &JsonPath, scope: &dyn Scope) -> Result<Millis, EvalError> {
    let Some(v) = scope.select(path) else {
        return Err(EvalError::runtime(format!(
            "The TimestampPath parameter does not reference an input value: {path}"
        )));
    };
    match v.as_str().and_then(super::timestamp::parse) {
        Some(t) => Ok(t.timestamp_millis()),
        None => {
            let shown = plain_text(&v);
            Err(EvalError::runtime(format!(
                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {path} == {shown}"
            )))
        }
    }
}

/// `ItemBatcher`: groups items into `{"Items": [...], "BatchInput": ...}` objects.
fn batch_items(b: &Batcher, items: &[Value], scope: &dyn Scope) -> Result<Vec<Value>, EvalError> {
    let input = Value::Null;
    let env = Env::new(&input, &NoContext, None, 0, 0);
    let max_items = resolve_count(b.max_items.as_ref(), scope, &env)?.map(|n| n as usize);
    let max_bytes = resolve_count(b.max_bytes.as_ref(), scope, &env)?.map(|n| n as usize);
    let batch_input = match &b.batch_input {
        Some(t) => Some(t.eval(scope)?),
        None => None,
    };
    let max_items = max_items.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let max_bytes = max_bytes
        .filter(|n| *n > 0)
        .unwrap_or(size::PAYLOAD_LIMIT_BYTES);
    let mut batches = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size::json_len(item) + 1;
        if !current.is_empty() && (current.len() >= max_items || bytes + n > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += n;
        current.push(item.clone());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches
        .into_iter()
        .map(|items| {
            let mut m = Map::new();
            if let Some(bi) = &batch_input {
                m.insert("BatchInput".into(), bi.clone());
            }
            m.insert("Items".into(), Value::Array(items));
            Value::Object(m)
        })
        .collect())
}

/// A value as AWS quotes it in causes: strings bare, anything else as JSON text.
fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn suspended(definition: Value) -> Execution {
        let program = Arc::new(crate::asl::compile(&definition).expect("valid"));
        let mut exec = Execution::start(program, json!({"k": 1}), ExecutionOptions::default(), 0);
        exec.run(0);
        assert!(exec.outcome().is_none(), "the execution must be waiting");
        exec.drain_effects().for_each(drop);
        exec
    }

    #[test]
    fn a_suspended_execution_costs_under_1_kib_beyond_its_data() {
        let on_task = suspended(json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}}}));
        let on_wait = suspended(json!({"StartAt": "W", "States": {"W": {
            "Type": "Wait", "Seconds": 10, "End": true}}}));
        for exec in [on_task, on_wait] {
            let bytes = exec.footprint_bytes();
            eprintln!("suspended execution footprint: {bytes} bytes");
            assert!(bytes < 1024, "{bytes} bytes");
        }
    }

    /// Starts a one-Task machine and returns its first invoke and timer.
    fn task_effects(task: Value) -> (Execution, Option<(Token, TaskCall)>, Vec<Millis>) {
        let mut state = json!({"Type": "Task", "End": true});
        for (k, v) in task.as_object().unwrap() {
            state[k] = v.clone();
        }
        let program = Arc::new(
            crate::asl::compile(&json!({"StartAt": "T", "States": {"T": state}})).expect("valid"),
        );
        let opts = ExecutionOptions {
            max_duration_ms: None,
            ..ExecutionOptions::default()
        };
        let mut exec = Execution::start(program, json!({"k": 1}), opts, 0);
        exec.run(0);
        let (mut call, mut timers) = (None, Vec::new());
        for effect in exec.drain_effects() {
            match effect {
                Effect::Invoke { token, call: c } => call = Some((token, *c)),
                Effect::Timer { at, .. } => timers.push(at),
            }
        }
        (exec, call, timers)
    }

    #[test]
    fn only_token_resources_get_a_task_token_in_the_context_object() {
        let params = json!({"token.$": "$$.Task.Token", "k.$": "$.k"});
        for resource in [
            "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "arn:aws:states:us-east-1:123456789012:activity:work",
        ] {
            let (_, call, _) = task_effects(json!({"Resource": resource, "Parameters": params}));
            let (_, call) = call.expect("invoked");
            let token = call.task_token.clone().expect("a token");
            assert!(super::super::context::is_task_token(&token), "{token}");
            assert_eq!(
                call.payload,
                json!({"token": &*token, "k": 1}),
                "{resource}"
            );
        }
        // A new token per execution (and per attempt).
        let resource = "arn:aws:states:::lambda:invoke.waitForTaskToken";
        let (_, a, _) = task_effects(json!({"Resource": resource}));
        let (_, b, _) = task_effects(json!({"Resource": resource}));
        assert_ne!(a.unwrap().1.task_token, b.unwrap().1.task_token);
        // Other resources have no `$$.Task`: reading it is a runtime error.
        for resource in [
            "arn:aws:states:::lambda:invoke",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
        ] {
            let (exec, call, _) = task_effects(json!({"Resource": resource, "Parameters": params}));
            assert!(call.is_none());
            let Some(Outcome::Failed(f)) = exec.outcome() else {
                panic!("must fail")
            };
            assert_eq!(f.error.as_deref(), Some(names::RUNTIME));
            let (_, call, _) = task_effects(json!({"Resource": resource}));
            assert_eq!(call.expect("invoked").1.task_token, None);
        }
    }

    #[test]
    fn heartbeats_push_the_heartbeat_deadline() {
        let (mut exec, call, timers) = task_effects(json!({
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "HeartbeatSeconds": 10, "TimeoutSeconds": 60}));
        let (token, call) = call.expect("invoked");
        assert_eq!(
            (call.heartbeat_secs, call.timeout_secs),
            (Some(10), Some(60))
        );
        assert_eq!(timers, vec![10_000]);
        exec.heartbeat(token, 4_000);
        let new: Vec<_> = exec.drain_effects().collect();
        assert!(
            matches!(new[..], [Effect::Timer { at: 14_000, .. }]),
            "{new:?}"
        );
        // The first timer is stale now.
        exec.fire_timer(token, 10_000);
        exec.run(10_000);
        assert!(exec.outcome().is_none());
        // Close to the timeout, the timer is the timeout's.
        exec.heartbeat(token, 55_000);
        let new: Vec<_> = exec.drain_effects().collect();
        assert!(new.is_empty(), "missed at 14 s: {new:?}");
        exec.fire_timer(token, 14_000);
        exec.run(14_000);
        let Some(Outcome::Failed(f)) = exec.outcome() else {
            panic!("must time out")
        };
        assert_eq!(f.error.as_deref(), Some(names::TIMEOUT));
    }

    #[test]
    fn a_heartbeat_never_moves_the_timer_past_the_timeout() {
        let (mut exec, call, _) = task_effects(json!({
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "HeartbeatSeconds": 10, "TimeoutSeconds": 12}));
        let (token, _) = call.expect("invoked");
        exec.heartbeat(token, 5_000);
        let new: Vec<_> = exec.drain_effects().collect();
        assert!(
            matches!(new[..], [Effect::Timer { at: 12_000, .. }]),
            "{new:?}"
        );
    }
}
