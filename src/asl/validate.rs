//! Definition validation: every problem at once, each with a stable code and a JSON pointer.
//! STUB: interface only; being implemented.

use super::diagnostic::Diagnostic;
use serde_json::Value;

/// Validates a whole state machine definition (JSONPath query language).
pub fn validate(_definition: &Value) -> Vec<Diagnostic> {
    Vec::new()
}
