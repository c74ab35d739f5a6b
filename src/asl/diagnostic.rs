//! Definition diagnostics: a stable code, a JSON-pointer location and a message.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable, documented code, e.g. `MISSING_NEXT`, `UNREACHABLE_STATE`.
    pub code: &'static str,
    /// RFC 6901 pointer into the definition, e.g. `/States/Check/Choices/0/Next`.
    pub pointer: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(code: &'static str, pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {}", self.pointer, self.code, self.message)
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub fn pointer_push(base: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{base}/{escaped}")
}
