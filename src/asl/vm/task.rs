//! A Task state's call: handed out as an effect, with its timeout and heartbeat timers.

use super::fields::*;
use super::{Execution, Flow, Phase};
use crate::asl::effect::{Effect, Purpose, TaskCall, Token};
use crate::asl::error::{json_text, EvalError};
use crate::asl::jsonata::Env;
use crate::asl::program::*;
use crate::asl::scope::Scope;
use crate::asl::time::Millis;
use serde_json::Value;
use std::sync::Arc;

impl Execution {
    /// The call a Task state makes, its timeouts resolved (in either query language).
    pub(super) fn task_call(
        &self,
        state: &State,
        task: &TaskSpec,
        payload: Value,
        task_token: Option<Arc<str>>,
        scope: &dyn Scope,
        env: &Env,
    ) -> Result<TaskCall, EvalError> {
        Ok(TaskCall {
            resource: task.resource.clone(),
            payload,
            state_name: state.name.clone(),
            execution_name: self.opts.name.clone(),
            nesting_depth: self.opts.nesting_depth,
            timeout_secs: resolve_count(task.timeout.as_ref(), scope, env)?,
            heartbeat_secs: resolve_count(task.heartbeat.as_ref(), scope, env)?,
            task_token,
            purpose: Purpose::Task,
        })
    }

    /// Hands a Task's call out as an effect, with its timeout and heartbeat timers.
    pub(super) fn start_task(&mut self, fid: u32, call: TaskCall, now: Millis) -> Flow {
        let (record, with_data) = (self.opts.record_history, self.opts.history_data);
        self.event(fid, "TaskScheduled", Some(&call.state_name), now, || {
            if record {
                let parameters = with_data.then(|| json_text(&call.payload));
                serde_json::json!({ "resource": &*call.resource, "parameters": parameters })
            } else {
                Value::Null
            }
        });
        self.event(fid, "TaskStarted", Some(&call.state_name), now, || {
            Value::Null
        });
        let deadline = call
            .timeout_secs
            .map(|s| now.saturating_add(s as Millis * 1000));
        let heartbeat_at = call
            .heartbeat_secs
            .map(|s| now.saturating_add(s as Millis * 1000));
        let f = self.frame(fid);
        f.gen = f.gen.wrapping_add(1);
        f.phase = Phase::Task {
            deadline,
            heartbeat: heartbeat_at,
            heartbeat_every: call.heartbeat_secs.map_or(0, |s| s as Millis * 1000),
        };
        let token = Token::new(fid, f.gen);
        self.effects.push(Effect::Invoke {
            token,
            call: Box::new(call),
        });
        if let Some(at) = [deadline, heartbeat_at].into_iter().flatten().min() {
            self.effects.push(Effect::Timer { token, at });
        }
        Flow::Blocked
    }
}
