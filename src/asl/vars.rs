//! Workflow variables: `Assign` and the scopes it writes to.
//!
//! Each frame (the top level, a Parallel branch, a Map iteration) holds its variables as a
//! shared map. A child frame starts with its parent's map (one `Arc` clone) and copies it
//! on its first assignment, so inner states read outer variables while their assignments
//! stay inside, and iterations that assign nothing cost nothing. An `Assign` is evaluated
//! against the variables as they were when the state started, and takes effect when the
//! state ends (AWS evaluates every field of an `Assign`, and `Output`, "in parallel").

use super::error::{names, EvalError};
use super::jsonata::{Env, JTemplate};
use super::scope::Scope;
use super::size;
use super::template::Template;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A frame's variables; `None` until something is assigned.
pub type Vars = Option<Arc<Map<String, Value>>>;

/// One variable's value, and everything one `Assign` sets, are limited to 256 KiB.
pub const VALUE_LIMIT_BYTES: usize = 256 * 1024;
/// All the variables a frame can see are limited to 10 MiB.
pub const TOTAL_LIMIT_BYTES: usize = 10 * 1024 * 1024;

/// A compiled `Assign` field.
#[derive(Debug)]
pub enum Assign {
    /// JSONPath: `"name.$"` fields are paths or intrinsic calls over the state's result (or
    /// input, for Choice and Wait), the rest are constants.
    Path(Template),
    /// JSONata: `{% %}` strings are expressions over `$states`.
    Jsonata(JTemplate),
}

impl Assign {
    pub fn eval_path(
        template: &Template,
        scope: &dyn Scope,
    ) -> Result<Map<String, Value>, EvalError> {
        into_map(template.eval(scope)?)
    }

    pub fn eval_jsonata(template: &JTemplate, env: &Env) -> Result<Map<String, Value>, EvalError> {
        into_map(template.eval(env)?)
    }
}

fn into_map(v: Value) -> Result<Map<String, Value>, EvalError> {
    match v {
        Value::Object(m) => Ok(m),
        // Validation only admits objects.
        other => Err(EvalError::runtime(format!(
            "Assign must be an object, not {}",
            super::error::json_text(&other)
        ))),
    }
}

/// Sets `values` in `vars`, enforcing AWS's size limits.
pub fn apply(vars: &mut Vars, values: Map<String, Value>) -> Result<(), EvalError> {
    let mut total = 0usize;
    for (name, v) in &values {
        let Some(n) = size::measure(v, VALUE_LIMIT_BYTES) else {
            let cause = if size::too_deep(v) {
                format!("The variable '{name}' nests deeper than the limit of {} levels of arrays and objects.", size::MAX_DEPTH)
            } else {
                format!("The variable '{name}' has a size exceeding the maximum of {VALUE_LIMIT_BYTES} bytes.")
            };
            return Err(EvalError::new(names::DATA_LIMIT_EXCEEDED, cause));
        };
        total += n.bytes + name.len();
    }
    if total > VALUE_LIMIT_BYTES {
        return Err(EvalError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!("The variables assigned by the state have a total size exceeding the maximum of {VALUE_LIMIT_BYTES} bytes."),
        ));
    }
    // Checked before anything is set: a caught DataLimitExceeded leaves the variables as
    // they were.
    let kept: usize = vars.as_deref().map_or(0, |held| {
        held.iter()
            .filter(|(k, _)| !values.contains_key(*k))
            .map(|(k, v)| k.len() + size::json_len(v))
            .sum()
    });
    if kept + total > TOTAL_LIMIT_BYTES {
        return Err(EvalError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!("The workflow variables have a total size exceeding the maximum of {TOTAL_LIMIT_BYTES} bytes."),
        ));
    }
    let map = Arc::make_mut(vars.get_or_insert_with(Default::default));
    map.extend(values);
    Ok(())
}
