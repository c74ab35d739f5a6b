//! Drives one execution to its end on the current thread: the loop behind `expressway exec`,
//! the test suites and the benchmarks. (The daemon's shards run their own loop over many
//! executions; this one is the simplest correct driver of the VM's effect protocol.)

use crate::asl::error::Failure;
use crate::asl::vm::{Effect, Execution, ExecutionOptions, Millis, Token};
use crate::asl::Program;
use crate::resource::{TaskCall, TaskReply, TaskResource};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Where time comes from. The VM never reads a clock; the driver does, through this.
pub enum Clock {
    /// Wall-clock time: Wait states really wait.
    Real,
    /// Starts at `now` and jumps straight to the next timer whenever nothing else can
    /// happen, so Waits and retry backoffs take no real time (tests, `exec` by default).
    Virtual { now: Millis },
}

impl Clock {
    pub fn virtual_at_wall_time() -> Clock {
        Clock::Virtual { now: wall_millis() }
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::Real => wall_millis(),
            Clock::Virtual { now } => *now,
        }
    }
}

pub fn wall_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// A resource for when none is configured: every call fails, saying why.
pub struct NoResources;

impl TaskResource for NoResources {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        reply.complete(Err(Failure::new(
            crate::asl::error::names::TASK_FAILED,
            format!(
                "No handler for resource '{}' (state '{}'): give a mock configuration (--mock-config) to run Task states",
                call.resource, call.state_name
            ),
        )))
    }
}

/// What comes back from a Task call: its result, or a heartbeat while it runs.
enum Reply {
    Done(Token, Result<Value, Failure>),
    Heartbeat(Token),
}

type Channel = (mpsc::Sender<Reply>, mpsc::Receiver<Reply>);

/// Runs an execution to its end and returns it (outcome, history, transition count).
pub fn run_to_completion(
    program: Arc<Program>,
    input: Value,
    opts: ExecutionOptions,
    resources: &dyn TaskResource,
    clock: &mut Clock,
) -> Execution {
    // Made on the first Task call: most executions of pure workflows never need it.
    let mut channel: Option<Channel> = None;
    let mut timers: BinaryHeap<Reverse<(Millis, u64, Token)>> = BinaryHeap::new();
    let mut timer_seq = 0u64;
    let mut in_flight = 0usize;
    let mut exec = Execution::start(program, input, opts, clock.now());
    loop {
        exec.run(clock.now());
        for effect in exec.drain_effects() {
            match effect {
                Effect::Invoke { token, call } => {
                    in_flight += 1;
                    let tx = channel.get_or_insert_with(mpsc::channel).0.clone();
                    // Only calls with a task token can heartbeat.
                    let heartbeat = call.task_token.is_some().then(|| {
                        let tx = tx.clone();
                        Arc::new(move || {
                            let _ = tx.send(Reply::Heartbeat(token));
                        })
                    });
                    let done: crate::resource::Completion = Box::new(move |result| {
                        // The receiver outlives every call of this loop.
                        let _ = tx.send(Reply::Done(token, result));
                    });
                    let reply = match heartbeat {
                        Some(h) => TaskReply::new(done, h),
                        None => TaskReply::without_heartbeat(done),
                    };
                    resources.invoke(*call, reply);
                }
                Effect::Timer { token, at } => {
                    timer_seq += 1;
                    timers.push(Reverse((at, timer_seq, token)));
                }
            }
        }
        if exec.outcome().is_some() {
            return exec;
        }
        if let Some(Ok(reply)) = channel.as_ref().map(|(_, rx)| rx.try_recv()) {
            receive(&mut exec, reply, &mut in_flight, clock.now());
            continue;
        }
        let next_timer = timers.peek().map(|Reverse((at, _, _))| *at);
        match (&mut *clock, next_timer) {
            (Clock::Virtual { now }, Some(at)) if in_flight == 0 => {
                *now = (*now).max(at);
                fire_due(&mut exec, &mut timers, *now);
            }
            (clock, Some(at)) => {
                let wait = Duration::from_millis((at - clock.now()).max(0) as u64);
                let received = match &channel {
                    Some((_, rx)) if in_flight > 0 => rx.recv_timeout(wait).ok(),
                    _ => {
                        std::thread::sleep(wait);
                        None
                    }
                };
                match received {
                    Some(reply) => receive(&mut exec, reply, &mut in_flight, clock.now()),
                    None => {
                        if let Clock::Virtual { now } = clock {
                            *now = (*now).max(at);
                        }
                        let now = clock.now();
                        fire_due(&mut exec, &mut timers, now);
                    }
                }
            }
            (clock, None) if in_flight == 0 => {
                // Unreachable while the VM keeps its effect protocol; end rather than hang.
                exec.abort(
                    Failure::new(
                        crate::asl::error::names::RUNTIME,
                        "Internal error: the execution stalled with no pending task or timer",
                    ),
                    clock.now(),
                );
            }
            (clock, None) => {
                if let Some(Ok(reply)) = channel.as_ref().map(|(_, rx)| rx.recv()) {
                    receive(&mut exec, reply, &mut in_flight, clock.now());
                }
            }
        }
    }
}

fn receive(exec: &mut Execution, reply: Reply, in_flight: &mut usize, now: Millis) {
    match reply {
        Reply::Done(token, result) => {
            *in_flight -= 1;
            exec.complete_task(token, result, now);
        }
        Reply::Heartbeat(token) => exec.heartbeat(token, now),
    }
}

fn fire_due(
    exec: &mut Execution,
    timers: &mut BinaryHeap<Reverse<(Millis, u64, Token)>>,
    now: Millis,
) {
    while let Some(Reverse((at, _, token))) = timers.peek().copied() {
        if at > now {
            break;
        }
        timers.pop();
        exec.fire_timer(token, now);
    }
}
