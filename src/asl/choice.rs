//! Choice rules: compiled once, evaluated against a scope.
//! STUB: interface only; being implemented.

use super::diagnostic::Diagnostic;
use super::error::EvalError;
use super::scope::Scope;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceRule {}

impl ChoiceRule {
    /// Compiles one rule (a top-level Choice element without its `Next`, or a nested rule).
    pub fn compile(_rule: &Value) -> Result<ChoiceRule, String> {
        Err("choice rules are not implemented".into())
    }

    pub fn eval(&self, _scope: &dyn Scope) -> Result<bool, EvalError> {
        Ok(false)
    }
}

/// Reports every problem of one rule at `pointer`. `top_level` rules must carry `Next`;
/// nested ones (inside And/Or/Not) must not.
pub fn validate_rule(
    _rule: &Value,
    _pointer: &str,
    _top_level: bool,
    _diags: &mut Vec<Diagnostic>,
) {
}
