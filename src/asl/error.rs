//! Error names and failures, as Step Functions reports them.
//!
//! Two layers: [`EvalError`] is what an expression (path, template, intrinsic, Choice rule)
//! reports while a state runs; the VM wraps it into a [`Failure`] whose cause carries the
//! AWS prefix naming the state and the event id it was entered at.

use std::fmt;

/// The built-in error names of the States Language (`States.*`).
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const RUNTIME: &str = "States.Runtime";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// The HTTP Task's family: `States.Http.StatusCode.<code>`, `States.Http.Socket`.
    pub const HTTP_PREFIX: &str = "States.Http.";

    /// Whether `name` is one Step Functions defines (the `States.` namespace is reserved).
    pub fn is_built_in(name: &str) -> bool {
        BUILT_IN.contains(&name) || name.starts_with(HTTP_PREFIX)
    }

    /// Every name above: a `States.` name outside this list is rejected by validation.
    pub const BUILT_IN: &[&str] = &[
        ALL,
        HEARTBEAT_TIMEOUT,
        TIMEOUT,
        TASK_FAILED,
        PERMISSIONS,
        RESULT_PATH_MATCH_FAILURE,
        PARAMETER_PATH_FAILURE,
        QUERY_EVALUATION_ERROR,
        BRANCH_FAILED,
        NO_CHOICE_MATCHED,
        INTRINSIC_FAILURE,
        EXCEED_TOLERATED_FAILURE_THRESHOLD,
        ITEM_READER_FAILED,
        RESULT_WRITER_FAILED,
        RUNTIME,
        DATA_LIMIT_EXCEEDED,
    ];
}

/// How an execution, a branch or a task failed: AWS's `error` and `cause`, either of which
/// may be absent (a `Fail` state with neither is legal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// The longest cause AWS keeps (`ExecutionFailed`'s `cause`: 32,768 characters). Longer
/// ones are cut: a chain of nested executions each quoting its child's failure would
/// otherwise grow its cause exponentially with the depth.
pub const MAX_CAUSE_CHARS: usize = 32_768;

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        let mut cause = cause.into();
        if let Some((cut, _)) = cause.char_indices().nth(MAX_CAUSE_CHARS) {
            cause.truncate(cut);
        }
        Failure {
            error: Some(error.into()),
            cause: Some(cause),
        }
    }

    pub fn error_name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.error.as_deref().unwrap_or("<no error>"),
            self.cause.as_deref().unwrap_or("<no cause>")
        )
    }
}

/// A result over the payload limit; integrations report oversize responses with it too.
pub fn data_limit_exceeded(state: &str) -> Failure {
    Failure::new(
        names::DATA_LIMIT_EXCEEDED,
        format!("The state/task '{state}' returned a result with a size exceeding the maximum number of bytes service limit."),
    )
}

/// The failure for a state's output `value` that [`size::measure`](super::size::measure)
/// refused: too large, or nested too deep.
pub fn output_limit_exceeded(state: &str, value: &serde_json::Value) -> Failure {
    if !super::size::too_deep(value) {
        return data_limit_exceeded(state);
    }
    Failure::new(
        names::DATA_LIMIT_EXCEEDED,
        format!(
            "The state/task '{state}' returned a result nesting deeper than the limit of {} levels of arrays and objects.",
            super::size::MAX_DEPTH
        ),
    )
}

/// An error raised while evaluating an expression inside a state. `detail` is the part of
/// the cause after AWS's "An error occurred while executing the state ..." prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    pub error: &'static str,
    pub detail: String,
}

impl EvalError {
    pub fn new(error: &'static str, detail: impl Into<String>) -> Self {
        EvalError {
            error,
            detail: detail.into(),
        }
    }

    pub fn runtime(detail: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, detail)
    }

    pub fn intrinsic(detail: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, detail)
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.detail)
    }
}

/// Serialises a value the way AWS quotes inputs inside causes (compact JSON).
pub fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
