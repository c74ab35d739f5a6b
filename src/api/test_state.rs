//! `TestState`: one state run alone on an input, as the Step Functions console's "Test
//! state" does. The state is wrapped into a state machine of its own whose every transition
//! target (`Next`, `Default`, Choice rules) is a `Succeed` placeholder, run on a virtual
//! clock (Waits take no time) with this daemon's Task resources, its `Retry` and `Catch`
//! taken out. The history tells which target was reached (`nextState`); a failure is then
//! matched against the state's own retriers (`RETRIABLE`) and catchers (`CAUGHT_ERROR`,
//! `nextState` the catcher's target, output the input with the error at its `ResultPath`).
//!
//! The definition may be a single state, or a whole state machine with `stateName`.

use super::protocol::{ApiError, Body};
use super::registry::{compile_text, invalid_definition};
use super::ApiState;
use crate::asl::effect::{ExecutionOptions, Outcome};
use crate::asl::error::{json_text, names, Failure};
use crate::engine::Clock;
use crate::runner::run_to_completion;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidDefinition", message)
}

/// The state to test and its name.
fn pick_state(definition: &Value, state_name: Option<&str>) -> Result<(String, Value), ApiError> {
    let Some(obj) = definition.as_object() else {
        return Err(invalid("The definition must be a JSON object"));
    };
    if let Some(states) = obj.get("States").and_then(Value::as_object) {
        let name = match state_name {
            Some(n) => n.to_string(),
            None => obj
                .get("StartAt")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("stateName is required for a state machine definition"))?
                .to_string(),
        };
        let state = states.get(&name).cloned().ok_or_else(|| {
            ApiError::new(
                "ValidationException",
                format!("State '{name}' is not in the definition"),
            )
        })?;
        return Ok((name, state));
    }
    if obj.contains_key("Type") {
        return Ok((
            state_name.unwrap_or("TestState").to_string(),
            definition.clone(),
        ));
    }
    Err(invalid(
        "The definition must be a state (with \"Type\") or a state machine (with \"States\")",
    ))
}

/// Every state name the state can transition to, in order of appearance.
fn targets(state: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(name) = v.and_then(Value::as_str) {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    };
    add(state.get("Next"));
    add(state.get("Default"));
    if let Some(choices) = state.get("Choices").and_then(Value::as_array) {
        for c in choices {
            add(c.get("Next"));
        }
    }
    out
}

/// Whether a retrier's or catcher's `ErrorEquals` matches `error` (`States.ALL` matches
/// everything but `States.Runtime`).
fn matches(rule: &Value, error: &str) -> bool {
    let Some(list) = rule.get("ErrorEquals").and_then(Value::as_array) else {
        return false;
    };
    list.iter()
        .filter_map(Value::as_str)
        .any(|e| e == error || (e == names::ALL && error != names::RUNTIME))
}

pub async fn test_state(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let text = body.str("definition")?;
    super::check_definition_size(state, text)?;
    let definition: Value = crate::asl::json::from_str(text)
        .map_err(|e| invalid(format!("The definition is not JSON: {e}")))?;
    let input: Value = match body.opt_str("input")? {
        None => json!({}),
        Some(text) => crate::asl::json::from_str(text).map_err(|e| {
            ApiError::new(
                "InvalidExecutionInput",
                format!("Invalid execution input: {e}"),
            )
        })?,
    };
    let debug = match body.opt_str("inspectionLevel")? {
        None | Some("INFO") => false,
        Some("DEBUG") | Some("TRACE") => true,
        Some(other) => {
            return Err(ApiError::new(
                "ValidationException",
                format!("Invalid inspectionLevel: {other}"),
            ))
        }
    };
    let (name, tested) = pick_state(&definition, body.opt_str("stateName")?)?;
    let Some(tested_obj) = tested.as_object() else {
        return Err(invalid(format!("State '{name}' is not an object")));
    };
    let retriers = tested_obj.get("Retry").cloned().unwrap_or(json!([]));
    let catchers = tested_obj.get("Catch").cloned().unwrap_or(json!([]));
    let mut alone = tested_obj.clone();
    alone.remove("Retry");
    alone.remove("Catch");
    let mut states = Map::new();
    for t in targets(&alone) {
        if t != name {
            states.insert(t, json!({"Type": "Succeed"}));
        }
    }
    states.insert(name.clone(), Value::Object(alone));
    let machine = json!({"StartAt": name, "States": states});
    // Validate the tested state as it was given (with Retry/Catch) through a wrapper whose
    // catch targets exist too, so that its diagnostics point at real mistakes.
    let mut check_states = states_for_check(&name, tested_obj);
    check_states.insert(name.clone(), tested.clone());
    if let Err(d) = compile_text(&json_text(
        &json!({"StartAt": name, "States": check_states}),
    )) {
        let real: Vec<_> = d
            .into_iter()
            .filter(|d| d.code != crate::asl::diagnostic::codes::UNSUPPORTED)
            .collect();
        if !real.is_empty() {
            return Err(invalid_definition(&real));
        }
    }
    let program = compile_text(&json_text(&machine)).map_err(|d| invalid_definition(&d))?;
    let resources = state.resources.clone();
    let opts = ExecutionOptions {
        name: Arc::from(uuid::Uuid::new_v4().to_string().as_str()),
        state_machine_name: Arc::from("TestState"),
        region: Arc::from(state.settings.region.as_str()),
        account: Arc::from(state.settings.account.as_str()),
        record_history: true,
        ..ExecutionOptions::default()
    };
    let run_input = input.clone();
    let exec = tokio::task::spawn_blocking(move || {
        let mut clock = Clock::virtual_at_wall_time();
        run_to_completion(Arc::new(program), run_input, opts, &*resources, &mut clock)
    })
    .await
    .map_err(|e| ApiError::new("InternalFailure", format!("TestState panicked: {e}")))?;
    let reached = exec
        .history()
        .iter()
        .rev()
        .find(|e| e.kind == "SucceedStateEntered" && e.state.as_deref() != Some(&name))
        .and_then(|e| e.state.as_deref().map(str::to_string));
    let outcome = exec.into_outcome().unwrap_or(Outcome::Failed(Failure::new(
        names::RUNTIME,
        "the state did not finish",
    )));
    let mut out = Map::new();
    match outcome {
        Outcome::Succeeded(output) => {
            out.insert("status".into(), json!("SUCCEEDED"));
            out.insert("output".into(), json!(json_text(&output)));
            if let Some(next) = reached {
                out.insert("nextState".into(), json!(next));
            }
            if debug {
                out.insert(
                    "inspectionData".into(),
                    json!({"input": json_text(&input), "afterResultPath": json_text(&output)}),
                );
            }
        }
        Outcome::Failed(f) | Outcome::TimedOut(f) => {
            let error = f.error.clone().unwrap_or_default();
            let retriable = retriers
                .as_array()
                .is_some_and(|r| r.iter().any(|r| matches(r, &error)));
            let catcher = catchers
                .as_array()
                .and_then(|c| c.iter().find(|c| matches(c, &error)).cloned());
            if retriable {
                out.insert("status".into(), json!("RETRIABLE"));
            } else if let Some(catcher) = catcher {
                out.insert("status".into(), json!("CAUGHT_ERROR"));
                if let Some(next) = catcher.get("Next") {
                    out.insert("nextState".into(), next.clone());
                }
                if let Some(output) = caught_output(&input, &catcher, &f) {
                    out.insert("output".into(), json!(json_text(&output)));
                }
            } else {
                out.insert("status".into(), json!("FAILED"));
            }
            if let Some(e) = f.error {
                out.insert("error".into(), json!(e));
            }
            if let Some(c) = f.cause {
                out.insert("cause".into(), json!(c));
            }
            if debug {
                out.insert("inspectionData".into(), json!({"input": json_text(&input)}));
            }
        }
    }
    Ok(Value::Object(out))
}

/// Placeholders for every target, catch targets included (for validation only).
fn states_for_check(name: &str, tested: &Map<String, Value>) -> Map<String, Value> {
    let mut states = Map::new();
    let mut all = targets(tested);
    if let Some(catchers) = tested.get("Catch").and_then(Value::as_array) {
        all.extend(
            catchers
                .iter()
                .filter_map(|c| c.get("Next").and_then(Value::as_str).map(str::to_string)),
        );
    }
    for t in all {
        if t != name {
            states.insert(t, json!({"Type": "Succeed"}));
        }
    }
    states
}

/// The input with `{"Error", "Cause"}` placed at the catcher's `ResultPath` (by running a
/// Pass state with that `ResultPath`, so that the engine's own rules apply).
fn caught_output(input: &Value, catcher: &Value, f: &Failure) -> Option<Value> {
    let mut pass = json!({
        "Type": "Pass",
        "Result": {"Error": f.error.clone().unwrap_or_default(), "Cause": f.cause.clone().unwrap_or_default()},
        "End": true
    });
    if let Some(rp) = catcher.get("ResultPath") {
        pass["ResultPath"] = rp.clone();
    }
    let program = crate::asl::compile(&json!({"StartAt": "C", "States": {"C": pass}})).ok()?;
    let mut clock = Clock::virtual_at_wall_time();
    let exec = run_to_completion(
        Arc::new(program),
        input.clone(),
        ExecutionOptions::default(),
        &crate::runner::NoResources,
        &mut clock,
    );
    match exec.into_outcome()? {
        Outcome::Succeeded(v) => Some(v),
        _ => None,
    }
}
