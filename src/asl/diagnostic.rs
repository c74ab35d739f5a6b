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

/// A JSON value's type as messages name it: "a string", "an object", "null".
pub fn type_name(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` as RFC 6901 requires.
pub fn pointer_push(base: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{base}/{escaped}")
}

/// Every diagnostic code: a stable public contract, and this list is its reference.
pub mod codes {
    /// A required field is absent (pointer: where it would be, or the object for "one of").
    pub const MISSING_FIELD: &str = "MISSING_FIELD";
    /// A field that this object, state type or query language does not allow.
    pub const UNKNOWN_FIELD: &str = "UNKNOWN_FIELD";
    /// A field holds the wrong JSON type (e.g. a string where an integer belongs).
    pub const INVALID_TYPE: &str = "INVALID_TYPE";
    /// A field has the right type but a value out of range or not among the allowed ones.
    pub const INVALID_VALUE: &str = "INVALID_VALUE";
    /// A non-terminal state has neither `Next` nor `End: true` (pointer: the state).
    pub const MISSING_NEXT: &str = "MISSING_NEXT";
    /// `StartAt`, `Next` or `Default` names a state that does not exist in the same `States`.
    pub const UNKNOWN_STATE: &str = "UNKNOWN_STATE";
    /// No transition leads to this state from `StartAt` (pointer: the state).
    pub const UNREACHABLE_STATE: &str = "UNREACHABLE_STATE";
    /// No terminal state (`End: true`, `Succeed`, `Fail`) can be reached from this state.
    pub const NO_TERMINAL_STATE: &str = "NO_TERMINAL_STATE";
    /// A state has both `Next` and `End: true` (pointer: the state).
    pub const NEXT_AND_END: &str = "NEXT_AND_END";
    /// A string that must be a JSONPath does not parse as one.
    pub const INVALID_PATH: &str = "INVALID_PATH";
    /// A path parses but is not a reference path (single node; `$$` or variables where barred).
    pub const INVALID_REFERENCE_PATH: &str = "INVALID_REFERENCE_PATH";
    /// An intrinsic function call (`States.Format(...)`) does not parse.
    pub const INVALID_INTRINSIC: &str = "INVALID_INTRINSIC";
    /// `States.ALL` is not alone in its `ErrorEquals`, or not in the last retrier/catcher.
    pub const STATES_ALL_NOT_LAST: &str = "STATES_ALL_NOT_LAST";
    /// An error name in the reserved `States.` namespace that Step Functions does not define.
    pub const UNKNOWN_ERROR_NAME: &str = "UNKNOWN_ERROR_NAME";
    /// Two fields that exclude each other are both present (pointer: the later one).
    pub const MUTUALLY_EXCLUSIVE_FIELDS: &str = "MUTUALLY_EXCLUSIVE_FIELDS";

    // Choice rules (reported by `choice::validate_rule`).
    /// A rule with neither a boolean nor a comparison operator.
    pub const CHOICE_RULE_NO_OPERATOR: &str = "CHOICE_RULE_NO_OPERATOR";
    /// A rule with more than one operator.
    pub const CHOICE_RULE_MULTIPLE_OPERATORS: &str = "CHOICE_RULE_MULTIPLE_OPERATORS";
    /// A comparison without `Variable`.
    pub const CHOICE_RULE_MISSING_VARIABLE: &str = "CHOICE_RULE_MISSING_VARIABLE";
    /// An operator value of the wrong type, or a literal timestamp that does not parse.
    pub const CHOICE_RULE_INVALID_VALUE: &str = "CHOICE_RULE_INVALID_VALUE";
    /// A top-level rule without `Next`.
    pub const CHOICE_RULE_MISSING_NEXT: &str = "CHOICE_RULE_MISSING_NEXT";
    /// A nested rule (inside `And`/`Or`/`Not`) with `Next`.
    pub const CHOICE_RULE_NESTED_NEXT: &str = "CHOICE_RULE_NESTED_NEXT";
    /// A field that has no meaning in a Choice rule (or in this kind of rule).
    pub const CHOICE_RULE_UNKNOWN_FIELD: &str = "CHOICE_RULE_UNKNOWN_FIELD";
    /// `And`/`Or` that is not a non-empty array.
    pub const CHOICE_RULE_EMPTY_BOOLEAN: &str = "CHOICE_RULE_EMPTY_BOOLEAN";

    // Reported by the compiler and the CLI.
    /// A `{% ... %}` string that is not valid JSONata; the message is the parser's, with
    /// its JSONata error code.
    pub const INVALID_JSONATA: &str = "INVALID_JSONATA";
    /// Valid ASL that this engine does not run yet (ItemReader, ResultWriter).
    pub const UNSUPPORTED: &str = "UNSUPPORTED";
    /// A Task `Resource` that no configured integration serves (reported where a
    /// definition is bound to a deployment: `validate --config`, `run`, `exec`).
    pub const UNKNOWN_RESOURCE: &str = "UNKNOWN_RESOURCE";
    /// A field the compiler could not translate (validation should have reported it).
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    /// The definition is not JSON.
    pub const INVALID_JSON: &str = "INVALID_JSON";
    /// Two states of one `States` object with the same name (AWS's code); pointer: the
    /// second one. Found in the definition's text, where a parsed value would keep only it.
    pub const DUPLICATE_STATE_NAME: &str = "DUPLICATE_STATE_NAME";
    /// A key given twice in any other object of the definition; pointer: that member.
    pub const DUPLICATE_FIELD: &str = "DUPLICATE_FIELD";
}
