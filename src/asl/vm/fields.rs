//! Fields whose value is resolved while a state runs (`TimeoutSecondsPath`,
//! `Error`/`CausePath`, …), and the causes AWS reports when one is wrong.

use crate::asl::error::{json_text, names, EvalError};
use crate::asl::jsonata::{self, Env, JTemplate};
use crate::asl::path::JsonPath;
use crate::asl::program::*;
use crate::asl::scope::Scope;
use serde_json::Value;
use std::borrow::Cow;

pub(super) fn missing(path: &JsonPath, doc: &Value) -> EvalError {
    EvalError::runtime(format!(
        "Invalid path '{path}' : {}",
        path.missing_message(doc)
    ))
}

pub(super) fn resolve_text(
    d: Option<&Dynamic>,
    scope: &dyn Scope,
) -> Result<Option<String>, EvalError> {
    let v = match d {
        None => return Ok(None),
        Some(Dynamic::Literal(v)) => Cow::Borrowed(v),
        Some(Dynamic::Path { field, path }) => match scope.select(path) {
            Some(v) => v,
            None => {
                return Err(EvalError::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
                    json_text(scope.input())
                )))
            }
        },
        Some(Dynamic::Call(c)) => Cow::Owned(c.eval(scope)?),
        // Evaluated by the JSONata Fail state itself.
        Some(Dynamic::Jsonata(_)) => return Ok(None),
    };
    Ok(Some(match &*v {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }))
}

pub(super) fn int_field(
    field: &str,
    path: &JsonPath,
    v: &Value,
    negative: &str,
) -> Result<u64, EvalError> {
    // A string holding an integer is accepted too (AWS-recorded: MaxConcurrencyPath "1").
    let parsed;
    let v = match v {
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => {
                parsed = Value::from(n);
                &parsed
            }
            Err(_) => v,
        },
        _ => v,
    };
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => match n.as_u64() {
            Some(u) => Ok(u),
            None => Err(EvalError::runtime(negative.to_string())),
        },
        _ => Err(EvalError::runtime(format!(
            "The {field} field refers to value \"{}\" which is not a valid integer: {path}",
            plain_text(v)
        ))),
    }
}

pub(super) fn resolve_count(
    c: Option<&Count>,
    scope: &dyn Scope,
    env: &Env,
) -> Result<Option<u64>, EvalError> {
    match c {
        None => Ok(None),
        Some(Count::Literal(n)) => Ok(Some(*n)),
        Some(Count::Path { field, path }) => match scope.select(path) {
            Some(v) => {
                let base = field.trim_end_matches("Path");
                int_field(field, path, &v, &format!("{base} cannot be negative.")).map(Some)
            }
            None => Err(missing(path, scope.input())),
        },
        Some(Count::Jsonata { field, expr }) => match expr.eval(env)? {
            Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
            Value::Number(n) if n.as_f64().is_some_and(|x| x >= 0.0 && x.fract() == 0.0) => {
                Ok(n.as_f64().map(|x| x as u64))
            }
            other => Err(expected_type(expr, field, "integer", &other)),
        },
    }
}

/// AWS's cause for a JSONata field whose value has the wrong type.
pub(super) fn expected_type(t: &JTemplate, field: &str, expected: &str, got: &Value) -> EvalError {
    match t.as_expr() {
        Some(expr) => jsonata::unexpected_type(expr, field, expected, got),
        None => EvalError::new(
            names::QUERY_EVALUATION_ERROR,
            format!(
                "The field '{field}' must be of type '{expected}', but was '{}' for value: {}",
                jsonata::value_kind(got),
                json_text(got)
            ),
        ),
    }
}

/// A value as AWS quotes it in causes: strings bare, anything else as JSON text.
pub(super) fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }
}
