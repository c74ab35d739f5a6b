//! The effect protocol between an [`Execution`](super::vm::Execution) and whoever drives it.
//!
//! The VM never calls a resource or sleeps: it leaves [`Effect`]s ("invoke this resource",
//! "wake me at this time"), each carrying a [`Token`]; the driver hands results and due
//! timers back with that token, and reads the [`Outcome`] at the end.

use super::arn::is_activity_arn;
use super::error::Failure;
use super::size;
use super::time::Millis;
use serde_json::Value;
use std::sync::Arc;

/// Identifies what an effect's result or timer belongs to. Opaque to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(u64);

impl Token {
    /// The token of generation `gen` of frame `frame`.
    pub(super) fn new(frame: u32, gen: u32) -> Token {
        Token(((frame as u64) << 32) | gen as u64)
    }
    pub(super) fn frame(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub(super) fn gen(self) -> u32 {
        self.0 as u32
    }
}

/// One call of a Task state's resource, as the VM asks for it.
#[derive(Clone, Debug)]
pub struct TaskCall {
    /// The `Resource` field, e.g. `arn:aws:states:::lambda:invoke`.
    pub resource: Arc<str>,
    /// The effective parameters (after `InputPath` and `Parameters`).
    pub payload: Value,
    /// The Task state's name, as mocks key their responses.
    pub state_name: Arc<str>,
    /// The execution's name; resources with per-execution state (mocks) key on it.
    pub execution_name: Arc<str>,
    /// How many nested-execution levels its execution is below one started from outside
    /// (see [`ExecutionOptions::nesting_depth`]).
    pub nesting_depth: u32,
    /// `TimeoutSeconds` as resolved for this call, if any. The VM enforces it itself.
    pub timeout_secs: Option<u64>,
    /// `HeartbeatSeconds` as resolved for this call, if any. The VM enforces it itself;
    /// heartbeats come back through the driver (`Execution::heartbeat`).
    pub heartbeat_secs: Option<u64>,
    /// The task token (`$$.Task.Token`) when the resource waits for one: see
    /// [`needs_task_token`]. Whoever holds it completes the call.
    pub task_token: Option<Arc<str>>,
    pub purpose: Purpose,
}

/// Why the VM makes a call: a Task state's, or a Distributed Map's reading of its items or
/// writing of its results (`ItemReader`, `ResultWriter`: the payload is then
/// `{"Parameters", "ReaderConfig" | "WriterConfig", "MapRunArn"[, "Results"]}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Purpose {
    #[default]
    Task,
    ItemReader,
    ResultWriter,
}

/// Whether a Task with this `Resource` is completed by a task token rather than by the call
/// it makes: the callback pattern (`….waitForTaskToken`) and activities
/// (`arn:aws:states:REGION:ACCOUNT:activity:NAME`).
pub fn needs_task_token(resource: &str) -> bool {
    resource.ends_with(".waitForTaskToken") || is_activity_arn(resource)
}

#[derive(Debug)]
pub enum Effect {
    /// Boxed: a suspended execution keeps its effect buffer, which should stay small.
    Invoke {
        token: Token,
        call: Box<TaskCall>,
    },
    Timer {
        token: Token,
        at: Millis,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    Failed(Failure),
    TimedOut(Failure),
}

impl Outcome {
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Succeeded(_) => "SUCCEEDED",
            Outcome::Failed(_) => "FAILED",
            Outcome::TimedOut(_) => "TIMED_OUT",
        }
    }
}

/// What an execution is told about itself; it fills the context object.
#[derive(Clone, Debug)]
pub struct ExecutionOptions {
    pub name: Arc<str>,
    pub state_machine_name: Arc<str>,
    pub region: Arc<str>,
    pub account: Arc<str>,
    pub role_arn: Arc<str>,
    pub workflow_type: WorkflowType,
    /// Express workflows end after 5 minutes; `None` lifts the cap (the definition's own
    /// `TimeoutSeconds` still applies).
    pub max_duration_ms: Option<Millis>,
    pub payload_limit_bytes: usize,
    /// Record history events (costs an allocation per event; off on the hot path).
    pub record_history: bool,
    /// Recorded events carry inputs, outputs and Task parameters (as JSON text, which costs
    /// a serialisation each); without it they carry names, errors and causes only.
    pub history_data: bool,
    /// Record a [`StateMark`] for every state entered and left, for per-state metrics
    /// (drained by the driver after each step).
    pub state_marks: bool,
    /// `$$.Execution.Source`: where the daemon took the input from (an SQS message's id,
    /// receive count and attributes); absent when `None`.
    pub source: Option<Arc<serde_json::Value>>,
    /// 0 for an execution started from outside; one more than its parent's for one a
    /// `states:startExecution` Task started (which bounds it).
    pub nesting_depth: u32,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        ExecutionOptions {
            name: Arc::from("execution"),
            state_machine_name: Arc::from("StateMachine"),
            region: Arc::from("us-east-1"),
            account: Arc::from("123456789012"),
            role_arn: Arc::from("arn:aws:iam::123456789012:role/expressway"),
            workflow_type: WorkflowType::Express,
            max_duration_ms: Some(EXPRESS_MAX_DURATION_MS),
            payload_limit_bytes: size::PAYLOAD_LIMIT_BYTES,
            record_history: false,
            history_data: true,
            state_marks: false,
            source: None,
            nesting_depth: 0,
        }
    }
}

/// The two kinds of Step Functions workflow. Expressway runs Express semantics; `Standard`
/// only changes what the context object shows (execution ARN form, `RedriveCount`), so that
/// definitions written against Standard workflows see what they expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowType {
    Express,
    Standard,
}

/// Express workflows run for at most five minutes.
pub const EXPRESS_MAX_DURATION_MS: Millis = 5 * 60 * 1000;

/// How a state was left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateEnd {
    /// To its `Next`, or the end of its machine.
    Succeeded,
    /// Through one of its Catchers.
    Caught,
    /// With an error nothing caught: its frame (the execution, a branch, an iteration) failed.
    Failed,
}

/// A state entered or left, recorded when [`ExecutionOptions::state_marks`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateMark {
    Entered(crate::asl::program::StateId),
    /// Left `state`, `millis` after entering it (retries included).
    Left {
        state: crate::asl::program::StateId,
        end: StateEnd,
        millis: Millis,
    },
}
