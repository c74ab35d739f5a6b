//! A JSONata state's execution: `Arguments` in place of `InputPath` and `Parameters`,
//! `Output` (and `Assign`) over `$states` in place of the rest.

use super::fields::*;
use super::jsonpath::*;
use super::{Execution, Flow};
use crate::asl::context::{new_task_token, StateScope};
use crate::asl::effect::needs_task_token;
use crate::asl::error::{names, EvalError, Failure};
use crate::asl::jsonata::JTemplate;
use crate::asl::program::*;
use crate::asl::size::{self, Extent};
use crate::asl::time::Millis;
use crate::asl::vars::{self, Assign};
use serde_json::Value;

impl Execution {
    /// Runs a JSONata state (see [`JsonataIo`]): `Arguments` in place of `InputPath` and
    /// `Parameters`, `Output` in place of the rest.
    pub(super) fn exec_jsonata(
        &mut self,
        p: &Program,
        fid: u32,
        jio: &JsonataIo,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let state = p.state(self.frame(fid).state);
        match &state.kind {
            Kind::Pass { .. } => {
                let assign = state.assign.as_deref();
                self.jsonata_finish(p, fid, None, assign, jio.output.as_ref(), now)?;
                Ok(Flow::Next)
            }
            Kind::Succeed => {
                self.jsonata_finish(p, fid, None, None, jio.output.as_ref(), now)?;
                Ok(Flow::Finish)
            }
            Kind::Fail { error, cause } => self.jsonata_fail(p, fid, error, cause, now),
            Kind::Choice { choices, default } => {
                self.jsonata_choice(p, fid, state, jio, choices, *default, now)
            }
            Kind::Wait(spec) => {
                let at = self.jsonata_wait_until(p, fid, spec, now)?;
                let assign = state.assign.as_deref();
                self.jsonata_finish(p, fid, None, assign, jio.output.as_ref(), now)?;
                Ok(self.wait_until(fid, at, now))
            }
            Kind::Task(task) => self.jsonata_task(p, fid, state, jio, task, now),
            Kind::Parallel { branches } => {
                let f = self.frames[fid as usize].as_ref().expect("frame");
                let param = match &jio.arguments {
                    Some(t) => {
                        let scope = self.scope(p, f, &f.data);
                        t.eval(&f.env(&scope, now, self.seed))?
                    }
                    None => f.data.clone(),
                };
                let bound = size::extent(&param);
                self.start_parallel(p, fid, branches, param, bound, now);
                Ok(Flow::Blocked)
            }
            Kind::Map(spec) => self.exec_map(p, fid, spec, now),
        }
    }

    /// A JSONata Fail state: `Error` and `Cause` given literally or by expression.
    fn jsonata_fail(
        &mut self,
        p: &Program,
        fid: u32,
        error: &Option<Dynamic>,
        cause: &Option<Dynamic>,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let scope = self.scope(p, f, &f.data);
        let env = f.env(&scope, now, self.seed);
        let text = |d: &Option<Dynamic>| -> Result<Option<String>, EvalError> {
            Ok(match d {
                None => None,
                Some(Dynamic::Jsonata(t)) => Some(plain_text(&t.eval(&env)?)),
                Some(Dynamic::Literal(v)) => Some(plain_text(v)),
                Some(other) => resolve_text(Some(other), &scope)?,
            })
        };
        Ok(Flow::fail(Failure {
            error: text(error)?,
            cause: text(cause)?,
        }))
    }

    /// A JSONata Choice state: the first rule whose `Condition` holds, with its `Assign` and
    /// `Output`; else `Default` with the state's.
    #[allow(clippy::too_many_arguments)]
    fn jsonata_choice(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        jio: &JsonataIo,
        choices: &[Choice],
        default: Option<StateId>,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let (target, assign, output) = {
            let scope = self.scope(p, f, &f.data);
            let env = f.env(&scope, now, self.seed);
            let mut target = (default, state.assign.as_deref(), jio.output.as_ref());
            for choice in choices {
                let matched = match &choice.rule {
                    Rule::Condition(t) => match t.test(&env) {
                        Some(b) => b,
                        None => match t.eval(&env)? {
                            Value::Bool(b) => b,
                            other => return Err(expected_type(t, "Condition", "boolean", &other)),
                        },
                    },
                    Rule::Path(rule) => rule.eval(&scope)?,
                };
                if matched {
                    target = (
                        Some(choice.next),
                        choice.assign.as_deref(),
                        choice.output.as_ref(),
                    );
                    break;
                }
            }
            target
        };
        let Some(target) = target else {
            return Err(EvalError::new(names::NO_CHOICE_MATCHED, "No Matches!"));
        };
        self.jsonata_finish(p, fid, None, assign, output, now)?;
        Ok(Flow::Goto(target))
    }

    /// When a JSONata Wait state ends: `Seconds` or `Timestamp`, literal or by expression.
    fn jsonata_wait_until(
        &self,
        p: &Program,
        fid: u32,
        spec: &WaitSpec,
        now: Millis,
    ) -> Result<Millis, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        Ok(match spec {
            WaitSpec::Seconds(s) => now.saturating_add(*s as Millis * 1000),
            WaitSpec::Timestamp(t) => *t,
            WaitSpec::Jsonata { seconds, expr } => {
                let scope = self.scope(p, f, &f.data);
                let env = f.env(&scope, now, self.seed);
                let v = expr.eval(&env)?;
                match (seconds, &v) {
                    (true, Value::Number(n)) if n.as_u64().is_some() => {
                        now.saturating_add(n.as_u64().unwrap_or(0) as Millis * 1000)
                    }
                    (true, _) => return Err(expected_type(expr, "Seconds", "integer", &v)),
                    (false, Value::String(text)) => match crate::asl::timestamp::parse(text) {
                        Some(t) => t.timestamp_millis(),
                        None => {
                            return Err(EvalError::new(
                                names::QUERY_EVALUATION_ERROR,
                                format!("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"),
                            ))
                        }
                    },
                    (false, _) => return Err(expected_type(expr, "Timestamp", "string", &v)),
                }
            }
            // JSONPath forms do not occur in JSONata states.
            WaitSpec::SecondsPath(_) | WaitSpec::TimestampPath(_) => now,
        })
    }

    /// A JSONata Task state: its call handed out, on `Arguments` (which may read
    /// `$states.context.Task.Token`).
    fn jsonata_task(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        jio: &JsonataIo,
        task: &TaskSpec,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let task_token = needs_task_token(&task.resource).then(new_task_token);
        let scope = StateScope {
            task_token: task_token.as_deref(),
            ..self.scope(p, f, &f.data)
        };
        let env = f.env(&scope, now, self.seed);
        let payload = match &jio.arguments {
            Some(t) => t.eval(&env)?,
            None => f.data.clone(),
        };
        let call = self.task_call(state, task, payload, task_token.clone(), &scope, &env)?;
        Ok(self.start_task(fid, call, now))
    }

    /// The end of a JSONata state: `Assign` and `Output` evaluated over the same `$states`
    /// (the state's input and, for Task, Map and Parallel, its `result`) and the variables
    /// as they were, then the assignments applied. The output replaces the frame's `data`:
    /// without `Output`, the result, else the input.
    pub(super) fn jsonata_finish(
        &mut self,
        p: &Program,
        fid: u32,
        result: Option<(Value, Extent)>,
        assign: Option<&Assign>,
        output: Option<&JTemplate>,
        now: Millis,
    ) -> Result<(), EvalError> {
        let (result, result_size) = result.unzip();
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let (values, out) = {
            let scope = self.scope(p, f, &f.data);
            let mut env = f.env(&scope, now, self.seed);
            env.result = result.as_ref();
            let values = match assign {
                Some(Assign::Jsonata(t)) => Some(Assign::eval_jsonata(t, &env)?),
                Some(a) => Some(assign_values(a, &scope)?),
                None => None,
            };
            // The state's input is dropped once its output is made: paths move out of it.
            let out = match output {
                Some(t) => Some(t.eval_taking(&env)?),
                None => None,
            };
            (values, out)
        };
        if let Some(values) = values {
            vars::apply(&mut self.frame(fid).vars, values)?;
        }
        // Where the compiled bound cannot settle the output's size, a bound from the
        // evaluated parts saves measuring what came from the input.
        let limit = self.opts.payload_limit_bytes;
        let f = self.frame(fid);
        if let (Some(out), SizeBound::Measure) = (&out, p.state(f.state).size_bound) {
            f.output_bound = out.bound(f.size_bound, result.as_ref(), result_size, limit);
        }
        let f = self.frame(fid);
        match (out, result) {
            (Some(out), result) => {
                f.data = out.finish(&mut f.data, result, f.data_spelled);
                f.data_spelled = output.is_some_and(JTemplate::spells_numbers);
            }
            (None, Some(result)) => {
                f.data = result;
                f.data_spelled = false;
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// A JSONata catcher: `Assign` and `Output` over `$states.errorOutput` (and the state's
    /// input); without `Output`, the error output is the output.
    pub(super) fn catch_jsonata(
        &mut self,
        p: &Program,
        fid: u32,
        c: &Catcher,
        err_out: Value,
        now: Millis,
    ) -> Result<Value, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let (values, out) = {
            let scope = self.scope(p, f, &f.data);
            let mut env = f.env(&scope, now, self.seed);
            env.error_output = Some(&err_out);
            let values = match c.assign.as_deref() {
                Some(Assign::Jsonata(t)) => Some(Assign::eval_jsonata(t, &env)?),
                Some(a) => Some(assign_values(a, &scope)?),
                None => None,
            };
            let out = match &c.output {
                Some(t) => Some(t.eval(&env)?),
                None => None,
            };
            (values, out)
        };
        if let Some(values) = values {
            vars::apply(&mut self.frame(fid).vars, values)?;
        }
        Ok(out.unwrap_or(err_out))
    }
}
