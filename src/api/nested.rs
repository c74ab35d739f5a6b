//! Nested executions: Task states with `arn:aws:states:::states:startExecution` (returns
//! `{ExecutionArn, StartDate}` at once) or `…startExecution.sync:2` / `.sync` (waits for
//! the child and returns its `DescribeExecution` result) start state machines of this same
//! daemon, by ARN or by name, in the executions host. Every other resource goes to the inner
//! resource.
//!
//! As in AWS: with `.sync:2` the child's `Output` is JSON, with `.sync` it is a string; a
//! child that fails, times out or is aborted fails the Task with `States.TaskFailed` and the
//! child's description (JSON text) as the cause. `.waitForTaskToken` is the callbacks
//! wrapper's (`callbacks::WaitForTaskToken`, which sits outside this resource): it parks the
//! Task and calls `startExecution` here without the suffix.
//!
//! Nesting is bounded: an execution started here is at most [`MAX_NESTING_DEPTH`] levels
//! below an execution started from outside (a state machine that starts itself would
//! otherwise nest without end, one live execution per level). The Task that would start a
//! deeper one fails with `StepFunctions.ExecutionLimitExceededException`. The depth travels
//! with the execution (`ExecutionOptions::nesting_depth`, copied into each `TaskCall`).

use super::host::{ExecutionRecord, HostHandle, StartRequest, Status};
use super::registry::Registry;
use crate::asl::effect::ExecutionOptions;
use crate::asl::effect::TaskCall;
use crate::asl::error::{json_text, names, Failure};
use crate::asl::time::Millis;
use crate::engine::wall_millis;
use crate::resource::{TaskReply, TaskResource};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// How many levels of nested executions may run below one started from outside: ample for
/// real parent/child workflows, small enough that self-recursion fails quickly and cleanly.
pub const MAX_NESTING_DEPTH: u32 = 32;

const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    RequestResponse,
    /// `.sync`: `Output` as a string.
    Sync,
    /// `.sync:2`: `Output` as JSON.
    Sync2,
}

pub struct NestedExecutions {
    pub host: HostHandle,
    pub registry: Arc<Registry>,
    pub inner: Arc<dyn TaskResource>,
}

/// The execution ARN of an Express execution: `…:express:{stateMachine}:{name}:{uuid}`.
pub fn execution_arn(registry: &Registry, state_machine: &str, name: &str) -> String {
    format!(
        "arn:aws:states:{}:{}:express:{state_machine}:{name}:{}",
        registry.region(),
        registry.account(),
        uuid::Uuid::new_v4()
    )
}

/// `DescribeExecution`'s result with AWS's member names as a Task result (PascalCase, dates
/// in epoch milliseconds).
fn description(record: &ExecutionRecord, output_as_json: bool) -> Value {
    let mut m = Map::new();
    m.insert("ExecutionArn".into(), json!(record.arn));
    m.insert("StateMachineArn".into(), json!(record.state_machine_arn));
    m.insert("Name".into(), json!(record.name));
    m.insert("Status".into(), json!(record.status.as_str()));
    m.insert("StartDate".into(), json!(record.start_ms));
    if let Some(stop) = record.stop_ms {
        m.insert("StopDate".into(), json!(stop));
    }
    let as_value = |text: &str| {
        if output_as_json {
            crate::asl::json::from_str(text).unwrap_or(Value::Null)
        } else {
            json!(text)
        }
    };
    m.insert("Input".into(), as_value(&record.input));
    m.insert("InputDetails".into(), json!({"Included": true}));
    if let Some(out) = &record.output {
        m.insert("Output".into(), as_value(out));
        m.insert("OutputDetails".into(), json!({"Included": true}));
    }
    if let Some(e) = &record.error {
        m.insert("Error".into(), json!(e));
    }
    if let Some(c) = &record.cause {
        m.insert("Cause".into(), json!(c));
    }
    Value::Object(m)
}

impl NestedExecutions {
    fn start(&self, call: TaskCall, pattern: Pattern, reply: TaskReply) {
        let params = &call.payload;
        let Some(target) = params.get("StateMachineArn").and_then(Value::as_str) else {
            return reply.complete(Err(Failure::new(
                names::TASK_FAILED,
                "StateMachineArn is required (a string)",
            )));
        };
        let sm = match self.registry.resolve(target) {
            Ok(sm) => sm,
            Err(e) => {
                return reply.complete(Err(Failure::new(
                    format!("StepFunctions.{}Exception", e.code),
                    e.message,
                )))
            }
        };
        // `Input` is JSON, or JSON text in a string (AWS accepts both).
        let input = match params.get("Input") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) => match crate::asl::json::from_str(s) {
                Ok(v) => v,
                Err(e) => {
                    return reply.complete(Err(Failure::new(
                        "StepFunctions.InvalidExecutionInputException",
                        format!("Invalid execution input: {e}"),
                    )))
                }
            },
            Some(v) => v.clone(),
        };
        let depth = call.nesting_depth + 1;
        if depth > MAX_NESTING_DEPTH {
            return reply.complete(Err(Failure::new(
                "StepFunctions.ExecutionLimitExceededException",
                format!(
                    "Nested executions may be at most {MAX_NESTING_DEPTH} levels deep: \
                     execution '{}' is at that depth and cannot start another",
                    call.execution_name
                ),
            )));
        }
        let reserved_bytes = crate::asl::size::json_len(&input);
        if let Err(why) = self.host.admit(reserved_bytes) {
            return reply.complete(Err(Failure::new(
                "StepFunctions.ExecutionLimitExceededException",
                why,
            )));
        }
        let name = match params.get("Name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let arn = execution_arn(&self.registry, &sm.name, &name);
        let start_ms: Millis = wall_millis();
        let on_finish: Option<super::host::OnFinish> = match pattern {
            Pattern::RequestResponse => {
                reply.complete(Ok(json!({"ExecutionArn": arn, "StartDate": start_ms})));
                None
            }
            Pattern::Sync | Pattern::Sync2 => Some(Box::new(move |record: &ExecutionRecord| {
                let described = description(record, pattern == Pattern::Sync2);
                if record.status == Status::Succeeded {
                    reply.complete(Ok(described));
                } else {
                    reply.complete(Err(Failure::new(names::TASK_FAILED, json_text(&described))));
                }
            })),
        };
        self.host.start(StartRequest {
            program: sm.program.clone(),
            input,
            opts: ExecutionOptions {
                name: Arc::from(name.as_str()),
                state_machine_name: Arc::from(sm.name.as_str()),
                region: Arc::from(self.registry.region()),
                account: Arc::from(self.registry.account()),
                role_arn: Arc::from(sm.role_arn.as_str()),
                nesting_depth: depth,
                ..ExecutionOptions::default()
            },
            arn,
            state_machine_arn: sm.arn.clone(),
            start_ms,
            on_finish,
            reserved_bytes,
        });
    }
}

impl TaskResource for NestedExecutions {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        let pattern = match call.resource.strip_prefix(START_EXECUTION) {
            Some("") => Some(Pattern::RequestResponse),
            Some(".sync") => Some(Pattern::Sync),
            Some(".sync:2") => Some(Pattern::Sync2),
            _ => None,
        };
        match pattern {
            Some(p) => self.start(call, p, reply),
            None => self.inner.invoke(call, reply),
        }
    }
}
