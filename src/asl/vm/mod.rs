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

use super::context::ContextParts;
use super::error::{json_text, names, EvalError, Failure};
use super::jsonata::{ContextObject, Env};
use super::program::*;
use super::size::{self, Extent};
use super::vars::Vars;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

mod fields;
mod history;
mod jsonata;
mod jsonpath;
mod map;
mod parallel;
mod retry;
mod task;
#[cfg(test)]
mod tests;

use super::effect::{Effect, ExecutionOptions, Outcome, Purpose, StateEnd, StateMark, Token};
use super::error::output_limit_exceeded;
use super::time::Millis;
pub use history::HistoryEvent;

const DEADLINE_FRAME: u32 = u32::MAX;

/// The extent of `[]`: where a Map's or Parallel's results array starts.
const EMPTY_ARRAY: Extent = Extent::new(2, 1);

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
    /// A bound on the size and depth of `data` (see [`SizeBound`]).
    size_bound: Extent,
    /// A bound on the current state's output found while running it, for states whose
    /// compiled bound is [`SizeBound::Measure`].
    output_bound: Option<Extent>,
    /// The pending failure is a missed heartbeat: reported as `States.Timeout`, and also
    /// matched by retriers and catchers naming `States.HeartbeatTimeout`.
    heartbeat_missed: bool,
    /// The pending failure is a branch's or an iteration's: unless a retrier runs the state
    /// again, it is recorded as `ParallelStateFailed`/`MapStateFailed` (AWS records none
    /// for an attempt it retries).
    children_failed: bool,
    /// The id of the last event in this frame's thread: the `previousEventId` of its next
    /// one (see `history.rs`).
    last_event: u64,
    /// The workflow variables this frame sees (see [`vars`]).
    vars: Vars,
    /// `data` is in JSONata's spelling of numbers: a JSONata `Output` made it (see
    /// [`Env::input_spelled`]). Cleared wherever anything else may have written it: a
    /// JSONPath state (on leaving it), a raw result, a catcher.
    data_spelled: bool,
}

impl Frame {
    /// `$states` over the frame's data, as a JSONata expression of its state sees it.
    fn env<'a>(&'a self, context: &'a dyn ContextObject, now: Millis, seed: u64) -> Env<'a> {
        let mut env = Env::new(&self.data, context, self.vars.as_deref(), now, seed);
        env.input_spelled = self.data_spelled;
        env
    }
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
    /// A Distributed Map's `ItemReader` or `ResultWriter` call is out.
    MapIo(Purpose),
    /// Ready to continue with a value handed in from outside.
    Resume(Resume),
    Finished,
}

enum Resume {
    Task(Result<Value, Failure>),
    MapIo(Purpose, Result<Value, Failure>),
    WaitDone,
    ChildrenDone(Value, Extent),
    Error(Failure),
}

struct Join {
    is_map: bool,
    results: Vec<Value>,
    /// A bound on the size of `results` as a JSON array.
    results_bound: Extent,
    pending: usize,
    /// Iteration inputs not started yet (Map with MaxConcurrency), in order.
    /// `(slot, input, bound on the input's size)`.
    queue: VecDeque<(u32, Value, Extent)>,
    /// Iterations whose input is made when they start: `(slot, raw item or batch)`, after
    /// those in `queue`.
    lazy: VecDeque<(u32, Value)>,
    /// The sum of the size bounds in `queue`, and a bound on `lazy`'s items.
    queued_bytes: usize,
    machine: MachineId,
    running: usize,
    /// MaxConcurrency; `usize::MAX` when unlimited.
    limit: usize,
    failures: usize,
    tolerated: Option<usize>,
    /// The variables children start with: the parent's, or none for a distributed Map.
    vars: Vars,
}

/// The result of running one state as far as it can go now. A state's output is written
/// into its frame's `data`, not carried here: a `serde_json` value is ten words, and each
/// layer that rewrapped it (`Result<Value, _>`, `Flow`) copied it through the stack, where
/// the wide loads of a value just stored stalled (`docs/performance.md`).
enum Flow {
    /// Continue at the state's `Next` (or end the frame); the output is in `Frame::data`.
    Next,
    /// Continue at this state; the output is in `Frame::data`.
    Goto(StateId),
    /// The frame waits for an effect.
    Blocked,
    /// The state failed; Retry/Catch decide what happens.
    Error(Box<Failure>),
    /// The frame ends with the output in `Frame::data` (Succeed).
    Finish,
    /// The frame fails outright (Fail state): no Retry/Catch on this state.
    Fail(Box<Failure>),
}

// Failures are boxed so that a `Flow` is two words: it is returned through every state.
impl Flow {
    fn error(f: Failure) -> Flow {
        Flow::Error(Box::new(f))
    }

    fn fail(f: Failure) -> Flow {
        Flow::Fail(Box::new(f))
    }
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
    /// The JSON bytes of the recorded events' details.
    history_bytes: usize,
    /// States entered and left since the driver last drained them (only with
    /// [`ExecutionOptions::state_marks`]).
    marks: Vec<StateMark>,
    /// The top-level state the execution failed or timed out in.
    failed_state: Option<Arc<str>>,
    transitions: u64,
    /// Where the current slice ends: [`run_for`](Self::run_for) stops (and the execution
    /// yields to its driver) once `transitions` reaches it.
    slice_end: u64,
    rng: fastrand::Rng,
    /// Seeds JSONata's `$random()` and `$uuid()`.
    seed: u64,
    /// The input's size, held while the context object keeps the input (`$$.Execution.Input`).
    input_bytes: usize,
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
            history_bytes: 0,
            marks: Vec::new(),
            failed_state: None,
            transitions: 0,
            slice_end: u64::MAX,
            rng: fastrand::Rng::with_seed(seed),
            seed,
            input_bytes: 0,
            program,
        };
        let with_data = exec.opts.history_data;
        exec.event_after(
            0,
            "ExecutionStarted",
            None,
            now,
            || serde_json::json!({ "input": with_data.then(|| json_text(&input)) }),
        );
        let Some(input_size) = size::measure(&input, exec.opts.payload_limit_bytes) else {
            let cause = if size::too_deep(&input) {
                format!("The execution input nests deeper than the limit of {} levels of arrays and objects.", size::MAX_DEPTH)
            } else {
                "The execution input exceeds the maximum number of bytes service limit.".into()
            };
            exec.finish(
                Outcome::Failed(Failure::new(names::DATA_LIMIT_EXCEEDED, cause)),
                0,
                now,
            );
            return exec;
        };
        if exec.program.reads_execution_input {
            exec.input_bytes = input_size.bytes;
        }
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
        // AWS links the first event after `ExecutionStarted` to 0, not to it.
        let root = exec.spawn(start, input, None, input_size, None, 0);
        exec.runnable.push_back(root);
        exec
    }

    /// Runs every runnable frame until all wait or the execution ends.
    pub fn run(&mut self, now: Millis) {
        self.run_for(now, u64::MAX);
    }

    /// Runs runnable frames until all wait, the execution ends, or `budget` more state
    /// transitions were made. Returns `true` when it stopped on the budget with work left:
    /// the execution has yielded, and its driver calls `run_for` again after letting other
    /// work (timers, other executions) go first. A loop that never waits therefore cannot
    /// hold its thread, and the Express cap (a timer) gets the chance to end it.
    pub fn run_for(&mut self, now: Millis, budget: u64) -> bool {
        let program = self.program.clone();
        self.slice_end = self.transitions.saturating_add(budget);
        while let Some(fid) = self.runnable.pop_front() {
            if self.outcome.is_some() {
                break;
            }
            self.drive(&program, fid, now);
            if self.transitions >= self.slice_end && self.outcome.is_none() {
                return !self.runnable.is_empty();
            }
        }
        if self.outcome.is_some() {
            self.runnable.clear();
        }
        false
    }

    /// Whether frames are ready to run: the execution yielded (see [`run_for`](Self::run_for)).
    pub fn is_runnable(&self) -> bool {
        self.outcome.is_none() && !self.runnable.is_empty()
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

    /// The states entered and left since the last call (see [`StateMark`]).
    pub fn drain_marks(&mut self) -> std::vec::Drain<'_, StateMark> {
        self.marks.drain(..)
    }

    fn mark_left(&mut self, fid: u32, end: StateEnd, now: Millis) {
        if self.opts.state_marks {
            let f = self.frames[fid as usize].as_ref().expect("frame");
            let (state, millis) = (f.state, now.saturating_sub(f.entered_at));
            self.marks.push(StateMark::Left { state, end, millis });
        }
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
                                    + j.queue.capacity() * size_of::<(u32, Value, Extent)>()
                                    + j.lazy.capacity() * size_of::<(u32, Value)>()
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

    /// An estimate of the bytes this execution holds: [`footprint_bytes`](Self::footprint_bytes)
    /// plus its JSON data as the VM already bounds it without measuring — each frame's
    /// current data (its size bound, at most the 256 KiB payload limit), each Map or
    /// Parallel's results so far and its queued iteration inputs, the execution input
    /// while `$$.Execution.Input` keeps it, and the recorded history's details. Workflow
    /// variables are not counted (they are shared between frames and measured only when
    /// assigned). O(frames).
    pub fn held_bytes(&self) -> usize {
        let data: usize = self
            .frames
            .iter()
            .flatten()
            .map(|f| {
                f.size_bound.bytes
                    + match &f.phase {
                        Phase::Children(j) => j.results_bound.bytes + j.queued_bytes,
                        _ => 0,
                    }
            })
            .sum();
        self.footprint_bytes() + data + self.input_bytes + self.history_bytes
    }

    /// States entered so far (Map iterations and Parallel branches included).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Ends the execution now with `failure` (shutdown, or a driver that gives up).
    pub fn abort(&mut self, failure: Failure, now: Millis) {
        self.finish(Outcome::Failed(failure), self.top_level_last_event(), now);
    }

    /// Hands back the result of an [`Effect::Invoke`]. Stale tokens are ignored.
    pub fn complete_task(&mut self, token: Token, result: Result<Value, Failure>, _now: Millis) {
        if let Some(f) = self.waiting_frame(token) {
            match f.phase {
                Phase::Task { .. } => f.phase = Phase::Resume(Resume::Task(result)),
                Phase::MapIo(purpose) => f.phase = Phase::Resume(Resume::MapIo(purpose, result)),
                _ => return,
            }
            self.runnable.push_back(token.frame());
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
                self.finish(Outcome::TimedOut(failure), self.top_level_last_event(), now);
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
        size_bound: Extent,
        vars: Vars,
        after: u64,
    ) -> u32 {
        let frame = Frame {
            vars,
            size_bound,
            output_bound: None,
            heartbeat_missed: false,
            children_failed: false,
            data_spelled: false,
            last_event: after,
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

    /// The last event of the top level's thread (frame 0, the first one spawned).
    fn top_level_last_event(&self) -> u64 {
        self.frames
            .first()
            .and_then(Option::as_ref)
            .map_or(0, |f| f.last_event)
    }

    /// Ends the execution with `outcome`; its event follows `after`.
    fn finish(&mut self, outcome: Outcome, after: u64, now: Millis) {
        if self.outcome.is_some() {
            return;
        }
        let kind = match &outcome {
            Outcome::Succeeded(_) => "ExecutionSucceeded",
            Outcome::Failed(_) => "ExecutionFailed",
            Outcome::TimedOut(_) => "ExecutionTimedOut",
        };
        let (record, with_data) = (self.opts.record_history, self.opts.history_data);
        self.event_after(after, kind, None, now, || {
            if !record {
                return Value::Null;
            }
            match &outcome {
                Outcome::Succeeded(v) => {
                    serde_json::json!({ "output": with_data.then(|| json_text(v)) })
                }
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
            // The phase is read in place: taking it out whole (ten words) right after
            // `transition` stored `Enter` into it stalled on every state.
            let phase = &mut self.frame(fid).phase;
            let flow = match phase {
                Phase::Enter => self.enter(p, fid, now),
                Phase::Retry => {
                    *phase = Phase::Enter;
                    self.transitions += 1;
                    self.run_state(p, fid, now)
                }
                Phase::Resume(_) => match std::mem::replace(phase, Phase::Enter) {
                    Phase::Resume(r) => self.resume(p, fid, r, now),
                    _ => unreachable!("matched as Resume"),
                },
                // Not runnable (a stale wake-up).
                _ => return,
            };
            if !self.settle(p, fid, flow, now) {
                return;
            }
            if self.transitions >= self.slice_end {
                // Out of budget: the frame goes first when the execution runs again.
                self.runnable.push_front(fid);
                return;
            }
        }
    }

    /// Applies a flow to the frame. Returns whether the frame should keep running.
    fn settle(&mut self, p: &Program, fid: u32, flow: Flow, now: Millis) -> bool {
        let state = p.state(self.frame(fid).state);
        match flow {
            Flow::Blocked => false,
            Flow::Next => match state.next {
                Some(next) => {
                    self.transition(p, fid, next, state.size_bound, StateEnd::Succeeded, now)
                }
                None => self.end_frame(p, fid, Ok(()), now),
            },
            Flow::Goto(next) => {
                self.transition(p, fid, next, state.size_bound, StateEnd::Succeeded, now)
            }
            Flow::Finish => self.end_frame(p, fid, Ok(()), now),
            Flow::Fail(f) => self.end_frame(p, fid, Err(*f), now),
            Flow::Error(f) => self.handle_error(p, fid, *f, now),
        }
    }

    /// Leaves the frame's state for `next` with the output in its `data`, having ended as
    /// `end` (a Catcher's transition is `Caught`).
    pub(super) fn transition(
        &mut self,
        p: &Program,
        fid: u32,
        next: StateId,
        bound: SizeBound,
        end: StateEnd,
        now: Millis,
    ) -> bool {
        let out = &self.frames[fid as usize].as_ref().expect("frame").data;
        let size = match self.check_size(p, fid, out, bound) {
            Ok(size) => size,
            Err(f) => return self.end_frame(p, fid, Err(f), now),
        };
        self.mark_left(fid, end, now);
        self.exit_event(p, fid, now);
        let f = self.frame(fid);
        // A JSONPath state's output keeps its input's spelling of numbers (and only JSONata
        // states read the flag, so it is cleared when one is left).
        if matches!(p.state(f.state).io, StateIo::JsonPath(_)) {
            f.data_spelled = false;
        }
        f.size_bound = size;
        f.output_bound = None;
        f.state = next;
        f.attempts.clear();
        // Mostly `Enter` already (the phase a state runs in): then there is nothing to drop.
        if !matches!(f.phase, Phase::Enter) {
            f.phase = Phase::Enter;
        }
        true
    }

    /// Enforces the payload and nesting limits on a state's output and returns a bound on
    /// its extent. Measures only when the compiled bound (from the input's) does not settle it.
    // Always inlined: its `Result` returned through memory stalled `transition` on every
    // state (the wide load of an `Extent` just stored in two halves).
    #[inline(always)]
    fn check_size(
        &self,
        p: &Program,
        fid: u32,
        out: &Value,
        bound: SizeBound,
    ) -> Result<Extent, Failure> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let limit = self.opts.payload_limit_bytes;
        if let Some(b) = f.output_bound.filter(|b| b.within(limit)) {
            return Ok(b);
        }
        if let SizeBound::Linear {
            constant,
            per_input,
        } = bound
        {
            let b = constant.with_input(per_input, f.size_bound);
            if b.within(limit) {
                return Ok(b);
            }
        }
        size::measure(out, limit).ok_or_else(|| output_limit_exceeded(&p.state(f.state).name, out))
    }

    /// Ends a frame: the execution if it is the top level, else one child of a join.
    /// `Ok`: the frame's output is in its `data`.
    fn end_frame(
        &mut self,
        p: &Program,
        fid: u32,
        result: Result<(), Failure>,
        now: Millis,
    ) -> bool {
        let mut size = Extent::default();
        if result.is_ok() {
            let f = self.frames[fid as usize].as_ref().expect("frame");
            let bound = p.state(f.state).size_bound;
            match self.check_size(p, fid, &f.data, bound) {
                Ok(n) => size = n,
                Err(f) => return self.end_frame(p, fid, Err(f), now),
            }
            if !matches!(p.state(self.frame(fid).state).kind, Kind::Fail { .. }) {
                self.exit_event(p, fid, now);
            }
        }
        let result = result.map(|()| std::mem::take(&mut self.frame(fid).data));
        let end = match result {
            Ok(_) => StateEnd::Succeeded,
            Err(_) => StateEnd::Failed,
        };
        self.mark_left(fid, end, now);
        let (parent, last_event) = {
            let f = self.frame(fid);
            (f.parent, f.last_event)
        };
        match parent {
            None => {
                let outcome = match result {
                    Ok(v) => Outcome::Succeeded(v),
                    Err(f) => {
                        self.failed_state = Some(p.state(self.frame(fid).state).name.clone());
                        Outcome::Failed(f)
                    }
                };
                self.finish(outcome, last_event, now);
                self.release(fid);
            }
            Some((pid, slot)) => {
                self.release(fid);
                self.child_ended(p, pid, slot, result, size, last_event, now);
            }
        }
        false
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
        let id = self.enter_event(p, fid, now);
        let f = self.frame(fid);
        f.entered_event = id;
        f.entered_at = now;
        if self.opts.state_marks {
            let state = self.frame(fid).state;
            self.marks.push(StateMark::Entered(state));
        }
        self.run_state(p, fid, now)
    }

    /// Runs the state the frame has just entered, in its query language.
    fn exec_state(&mut self, p: &Program, fid: u32, now: Millis) -> Result<Flow, EvalError> {
        match &p.state(self.frame(fid).state).io {
            StateIo::JsonPath(io) => self.exec_jsonpath(p, fid, io, now),
            StateIo::Jsonata(jio) => self.exec_jsonata(p, fid, jio, now),
        }
    }

    /// A Task, Parallel or Map result of at most `result_size`, made the state's output.
    fn finish_result(
        &mut self,
        p: &Program,
        fid: u32,
        result: Value,
        result_size: Extent,
        now: Millis,
    ) -> Flow {
        let state = p.state(self.frame(fid).state);
        match &state.io {
            StateIo::JsonPath(io) => self.finish_result_path(p, fid, io, result, result_size),
            StateIo::Jsonata(jio) => {
                let finished = self.jsonata_finish(
                    p,
                    fid,
                    Some((result, result_size)),
                    state.assign.as_deref(),
                    jio.output.as_ref(),
                    now,
                );
                match finished {
                    Ok(()) => Flow::Next,
                    Err(e) => Flow::error(self.wrap(p, fid, e)),
                }
            }
        }
    }

    fn run_state(&mut self, p: &Program, fid: u32, now: Millis) -> Flow {
        match self.exec_state(p, fid, now) {
            Ok(flow) => flow,
            Err(e) => Flow::error(self.wrap(p, fid, e)),
        }
    }

    /// A Wait state's output (in the frame's `data`) waits there until `at`.
    fn wait_until(&mut self, fid: u32, at: Millis, now: Millis) -> Flow {
        if at <= now {
            return Flow::Next;
        }
        let f = self.frame(fid);
        f.gen = f.gen.wrapping_add(1);
        f.phase = Phase::Waiting;
        let token = Token::new(fid, f.gen);
        self.effects.push(Effect::Timer { token, at });
        Flow::Blocked
    }

    fn resume(&mut self, p: &Program, fid: u32, r: Resume, now: Millis) -> Flow {
        match r {
            Resume::Error(f) => {
                let state = p.state(self.frame(fid).state);
                // Only a Task's own timers resume it with an error: a timeout.
                if matches!(state.kind, Kind::Task(_)) {
                    self.event(fid, "TaskTimedOut", Some(&state.name), now, || {
                        failure_details(&f)
                    });
                }
                Flow::error(f)
            }
            Resume::WaitDone => Flow::Next,
            Resume::Task(Err(f)) => {
                let name = &p.state(self.frame(fid).state).name;
                self.event(fid, "TaskFailed", Some(name), now, || failure_details(&f));
                Flow::error(f)
            }
            Resume::Task(Ok(result)) => {
                let name = &p.state(self.frame(fid).state).name;
                let (record, with_data) = (self.opts.record_history, self.opts.history_data);
                // The resource is the TaskScheduled's: the history's readers take it from there.
                self.event(fid, "TaskSucceeded", Some(name), now, || {
                    if record {
                        let output = with_data.then(|| json_text(&result));
                        serde_json::json!({ "output": output })
                    } else {
                        Value::Null
                    }
                });
                match size::measure(&result, self.opts.payload_limit_bytes) {
                    Some(n) => self.finish_result(p, fid, result, n, now),
                    None => Flow::error(output_limit_exceeded(name, &result)),
                }
            }
            Resume::ChildrenDone(results, bound) => match &p.state(self.frame(fid).state).kind {
                Kind::Map(spec) if spec.writer.is_some() => {
                    self.write_map_results(p, fid, spec, results, now)
                }
                _ => self.finish_result(p, fid, results, bound, now),
            },
            Resume::MapIo(purpose, result) => self.map_io_done(p, fid, purpose, result, now),
        }
    }
}

/// The `error` and `cause` of a failure event's details, as AWS's history carries them.
fn failure_details(f: &Failure) -> Value {
    serde_json::json!({ "error": f.error, "cause": f.cause })
}
