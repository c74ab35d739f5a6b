//! Intrinsic functions (`States.Format(...)` etc.): parsed once, evaluated against a scope.
//! STUB: interface only; being implemented.

use super::error::EvalError;
use super::scope::Scope;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct Intrinsic {
    src: String,
}

impl Intrinsic {
    /// Parses a call such as `States.Format('{} {}', $.a, States.ArrayLength($.b))`.
    pub fn parse(src: &str) -> Result<Intrinsic, String> {
        Err(format!("intrinsic functions are not implemented: {src}"))
    }

    /// Evaluates the call. Errors are `States.IntrinsicFailure` (bad arguments) or
    /// `States.Runtime` (a path argument that selects nothing).
    pub fn eval(&self, _scope: &dyn Scope) -> Result<Value, EvalError> {
        Err(EvalError::intrinsic(self.src.clone()))
    }
}

/// Whether a `.$` field value is an intrinsic call rather than a path.
pub fn is_intrinsic(s: &str) -> bool {
    s.trim_start().starts_with("States.")
}
