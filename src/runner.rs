//! Runs one execution to its end on the current thread: `expressway exec`, `TestState`, the
//! test suites and the benchmarks. A [`Driver`] on a virtual (or real) clock whose owner
//! loop only waits: for a Task result while a call is out, else for the next timer.

use crate::asl::effect::TaskCall;
use crate::asl::error::{names, Failure};
use crate::asl::{Execution, ExecutionOptions, Program};
use crate::engine::{Driver, Inbox, Owned, Start, TaskEvent, Telemetry, DEFAULT_BYTE_BUDGET};
use crate::resource::{TaskReply, TaskResource};
use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Clock;

/// A resource for when none is configured: every call fails, saying why.
pub struct NoResources;

impl TaskResource for NoResources {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        reply.complete(Err(Failure::new(
            names::TASK_FAILED,
            format!(
                "No handler for resource '{}' (state '{}'): give a mock configuration (--mock-config) to run Task states",
                call.resource, call.state_name
            ),
        )))
    }
}

/// The one execution of a run; it is never logged.
struct Alone;

impl Owned for Alone {
    fn execution_arn(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
}

#[derive(Clone)]
struct ChannelInbox(Sender<TaskEvent>);

impl Inbox for ChannelInbox {
    fn deliver(&self, event: TaskEvent) {
        // The receiver outlives every call of the run; a late answer after it is moot.
        let _ = self.0.send(event);
    }
}

/// Runs an execution to its end and returns it (outcome, history, transition count). The
/// clock is left where the execution ended.
pub fn run_to_completion(
    program: Arc<Program>,
    input: Value,
    opts: ExecutionOptions,
    resources: &dyn TaskResource,
    clock: &mut Clock,
) -> Box<Execution> {
    Runner::new(resources).run(program, input, opts, clock)
}

/// Runs executions one after another on the current thread, reusing one driver: what
/// `exec --repeat`, the benchmarks and the load harness's engine mode loop over.
pub struct Runner<'r> {
    driver: Driver<Alone, ChannelInbox, &'r dyn TaskResource>,
    answers: Receiver<TaskEvent>,
}

impl<'r> Runner<'r> {
    pub fn new(resources: &'r dyn TaskResource) -> Self {
        let (tx, answers) = crossbeam_channel::unbounded();
        let clock = Clock::Virtual { now: 0 };
        let mut driver = Driver::new(resources, ChannelInbox(tx), clock, Telemetry::none());
        driver.share_byte_budget(DEFAULT_BYTE_BUDGET);
        Runner { driver, answers }
    }

    /// Runs an execution to its end on `clock`, and leaves `clock` where it ended.
    pub fn run(
        &mut self,
        program: Arc<Program>,
        input: Value,
        opts: ExecutionOptions,
        clock: &mut Clock,
    ) -> Box<Execution> {
        let driver = &mut self.driver;
        driver.reset_clock(*clock);
        let key = driver.start(Start {
            program,
            input,
            opts,
            metrics: None,
            owned: Alone,
        });
        let exec = loop {
            if let Some(done) = driver.pop_finished() {
                break done.exec;
            }
            if !wait_for_something(driver, &self.answers) {
                // Unreachable while the VM keeps its effect protocol; end rather than hang.
                let stalled = Failure::new(
                    names::RUNTIME,
                    "Internal error: the execution stalled with no pending task or timer",
                );
                break driver.abort(key, stalled).expect("running").exec;
            }
        };
        *clock = driver.clock();
        exec
    }
}

/// Lets the next thing happen: a Task result, else the next timer (at once on a virtual
/// clock with no call out). False when nothing can ever happen.
fn wait_for_something<R: TaskResource>(
    driver: &mut Driver<Alone, ChannelInbox, R>,
    rx: &Receiver<TaskEvent>,
) -> bool {
    if let Ok(event) = rx.try_recv() {
        driver.task_event(event);
        return true;
    }
    if driver.has_ready() {
        // The execution yielded after a slice (on a virtual clock, charged virtual time for
        // it): timers due by now fire first, then it runs on.
        driver.fire_due_timers();
        return true;
    }
    if driver.skip_to_next_timer() {
        return true;
    }
    match driver.next_due() {
        Some(at) => {
            let wait = Duration::from_millis((at - driver.now()).max(0) as u64);
            let answered = if driver.tasks_out() > 0 {
                rx.recv_timeout(wait).ok()
            } else {
                std::thread::sleep(wait);
                None
            };
            match answered {
                Some(event) => driver.task_event(event),
                None => {
                    driver.clock_reached(at);
                    driver.fire_due_timers();
                }
            }
            true
        }
        None if driver.tasks_out() == 0 => false,
        None => match rx.recv() {
            Ok(event) => {
                driver.task_event(event);
                true
            }
            Err(_) => false,
        },
    }
}
