//! A JSONPath state's execution: `InputPath` → `Parameters` → the state's work →
//! `ResultSelector` → `ResultPath` → `OutputPath`.

use super::fields::*;
use super::{Execution, Flow, Frame};
use crate::asl::context::{new_task_token, StateScope};
use crate::asl::effect::needs_task_token;
use crate::asl::error::{json_text, names, EvalError, Failure};
use crate::asl::jsonata::Env;
use crate::asl::path::{self, JsonPath, Root};
use crate::asl::program::*;
use crate::asl::scope::Scope;
use crate::asl::size::{self, Extent};
use crate::asl::template::Template;
use crate::asl::time::Millis;
use crate::asl::vars::{self, Assign};
use serde_json::{Map, Value};
use std::borrow::Cow;

impl Execution {
    pub(super) fn scope<'a>(
        &'a self,
        p: &'a Program,
        f: &'a Frame,
        input: &'a Value,
    ) -> StateScope<'a> {
        let state = p.state(f.state);
        // `$$.State.RetryCount` exists on the states that can retry.
        let retries = matches!(
            state.kind,
            Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_)
        );
        StateScope {
            input,
            ctx: &self.ctx,
            opts: &self.opts,
            state_name: &state.name,
            entered_at: f.entered_at,
            map_item: None,
            retry_count: retries.then(|| f.attempts.iter().sum()),
            task_token: None,
            variables: f.vars.as_deref(),
        }
    }

    /// `InputPath`-style selection; borrows when it can. `$$` paths read the context object.
    // `$` is answered inline: most states have it, and the `Result` of a call came back
    // through memory, where loading it stalled every state.
    #[inline(always)]
    pub(super) fn select<'a>(
        &'a self,
        p: &'a Program,
        f: &'a Frame,
        sel: &Selection,
        doc: &'a Value,
    ) -> Result<Cow<'a, Value>, EvalError> {
        match sel {
            Selection::All => Ok(Cow::Borrowed(doc)),
            _ => self.select_path(p, f, sel, doc),
        }
    }

    fn select_path<'a>(
        &'a self,
        p: &'a Program,
        f: &'a Frame,
        sel: &Selection,
        doc: &'a Value,
    ) -> Result<Cow<'a, Value>, EvalError> {
        match sel {
            Selection::Path(path) if path.root() != Root::Input => self
                .scope(p, f, doc)
                .select(path)
                .map(|v| Cow::Owned(v.into_owned()))
                .ok_or_else(|| missing(path, &Value::Null)),
            _ => select(sel, doc),
        }
    }

    /// Narrows the frame's data to what `sel` selects (`InputPath`, `OutputPath`): nothing
    /// to do for `$`.
    pub(super) fn select_in_place(
        &mut self,
        p: &Program,
        fid: u32,
        sel: &Selection,
    ) -> Result<(), EvalError> {
        if let Selection::All = sel {
            return Ok(());
        }
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let selected = self.select(p, f, sel, &f.data)?.into_owned();
        self.frame(fid).data = selected;
        Ok(())
    }

    /// Evaluates a consumable template by moving values out of `input`, which it replaces
    /// with the result (see [`Template::eval_consuming`]). On any error the plain evaluation
    /// runs instead, so the error is the one AWS reports: the first failing field in
    /// template order; `input` is then left as it was. Returns a bound on the result's size
    /// (`None` if a call result alone is over the limit).
    pub(super) fn consume(
        &self,
        p: &Program,
        f: &Frame,
        t: &Template,
        input: &mut Value,
        input_size: Extent,
    ) -> Result<Option<Extent>, EvalError> {
        let calls = t.eval_calls(&self.scope(p, f, input));
        if let Ok(mut calls) = calls {
            let limit = self.opts.payload_limit_bytes;
            let (c, k) = t.bound_besides_calls();
            // Each call's result sits at most the skeleton's depth down.
            let bound = calls.iter().try_fold(c.with_input(k, input_size), |b, v| {
                size::measure(v, limit).map(|n| b.beside(n.nested(c.depth, 0)))
            });
            if t.eval_consuming(input, &mut calls) {
                return Ok(bound);
            }
        }
        *input = t.eval(&self.scope(p, f, input))?;
        Ok(None)
    }

    /// Runs the JSONPath state the frame has just entered.
    pub(super) fn exec_jsonpath(
        &mut self,
        p: &Program,
        fid: u32,
        io: &Io,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let state = p.state(self.frame(fid).state);
        match &state.kind {
            Kind::Pass { result: None } if io.parameters_consume_input => {
                self.exec_pass_consuming(p, fid, state, io)
            }
            Kind::Pass { result } => self.exec_pass(p, fid, state, io, result.as_ref()),
            Kind::Choice { choices, default } => {
                self.exec_choice(p, fid, state, io, choices, *default)
            }
            Kind::Succeed => {
                self.select_in_place(p, fid, &io.input_path)?;
                self.select_in_place(p, fid, &io.output_path)?;
                Ok(Flow::Finish)
            }
            Kind::Fail { error, cause } => {
                let f = self.frames[fid as usize].as_ref().expect("frame");
                let input = self.select(p, f, &io.input_path, &f.data)?;
                let scope = self.scope(p, f, &input);
                let error = resolve_text(error.as_ref(), &scope)?;
                let cause = resolve_text(cause.as_ref(), &scope)?;
                Ok(Flow::fail(Failure { error, cause }))
            }
            Kind::Wait(spec) => self.exec_wait(p, fid, state, io, spec, now),
            Kind::Task(task) => self.exec_task(p, fid, state, io, task, now),
            Kind::Parallel { branches } => {
                let f = self.frames[fid as usize].as_ref().expect("frame");
                let input = self.select(p, f, &io.input_path, &f.data)?;
                let param = match &io.parameters {
                    Some(t) => t.eval(&self.scope(p, f, &input))?,
                    None => input.into_owned(),
                };
                let bound = derived_bound(io.parameters.as_ref(), f.size_bound, &param);
                self.start_parallel(p, fid, branches, param, bound, now);
                Ok(Flow::Blocked)
            }
            Kind::Map(spec) => self.exec_map(p, fid, spec, now),
        }
    }

    /// A Pass state whose `Parameters` move values out of its raw input (see
    /// [`Io::parameters_consume_input`]).
    fn exec_pass_consuming(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        io: &Io,
    ) -> Result<Flow, EvalError> {
        let template = io
            .parameters
            .as_ref()
            .expect("consuming implies Parameters");
        let mut raw = std::mem::take(&mut self.frame(fid).data);
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let result = self.consume(p, f, template, &mut raw, f.size_bound);
        match result {
            Ok(bound) => {
                let values = self.assign_values(p, fid, state.assign.as_deref(), &raw)?;
                let f = self.frame(fid);
                f.output_bound = bound;
                path::put(&mut f.data, raw);
                self.select_in_place(p, fid, &io.output_path)?;
                self.set_variables(fid, values)?;
                Ok(Flow::Next)
            }
            Err(e) => {
                self.frame(fid).data = raw;
                Err(e)
            }
        }
    }

    /// A Pass state: its `Result`, else its effective input (after `Parameters`), at
    /// `ResultPath`.
    fn exec_pass(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        io: &Io,
        result: Option<&Value>,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let raw = &f.data;
        // `InputPath` is evaluated even when `Result` replaces the input: a path that
        // selects nothing fails the state either way.
        let input = self.select(p, f, &io.input_path, raw)?;
        let result = match result {
            Some(r) => Some(r.clone()),
            None => {
                match &io.parameters {
                    Some(t) => Some(t.eval(&self.scope(p, f, &input))?),
                    None => match input {
                        Cow::Owned(v) => Some(v),
                        // The effective input is the raw input itself (`InputPath` `$`):
                        // move it, don't copy.
                        Cow::Borrowed(v) if std::ptr::eq(v, raw) => None,
                        // A single node selected inside it (`$.a`, `$.x[1]`).
                        Cow::Borrowed(v) => Some(v.clone()),
                    },
                }
            }
        };
        let values = {
            let f = self.frames[fid as usize].as_ref().expect("frame");
            self.assign_values(
                p,
                fid,
                state.assign.as_deref(),
                result.as_ref().unwrap_or(&f.data),
            )?
        };
        let f = self.frames[fid as usize].as_ref().expect("frame");
        // A result written into the input (a counter, a flag) is usually small:
        // measure it alone rather than the whole output.
        if let (ResultPath::At(path), Some(r), SizeBound::Measure) =
            (&io.result_path, &result, state.size_bound)
        {
            if let Some(n) = size::measure(r, self.opts.payload_limit_bytes) {
                let bound = f
                    .size_bound
                    .beside(n.nested(path.segments().len(), 4 * path.as_str().len() + 8));
                self.frame(fid).output_bound = Some(bound);
            }
        }
        let data = &mut self.frame(fid).data;
        match (result, &io.result_path) {
            (Some(r), rp) => apply_result_path(rp, data, r),
            // The result is the input itself: it replaces, or is discarded from, itself.
            (None, ResultPath::Replace | ResultPath::Discard) => Ok(()),
            (None, rp) => {
                let r = data.clone();
                apply_result_path(rp, data, r)
            }
        }
        .map_err(|d| EvalError::new(names::RESULT_PATH_MATCH_FAILURE, d))?;
        self.select_in_place(p, fid, &io.output_path)?;
        self.set_variables(fid, values)?;
        Ok(Flow::Next)
    }

    /// A Choice state: the first matching rule's `Next`, else `Default`.
    fn exec_choice(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        io: &Io,
        choices: &[Choice],
        default: Option<StateId>,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let (target, values) = {
            let input = self.select(p, f, &io.input_path, &f.data)?;
            let scope = self.scope(p, f, &input);
            let mut target = (default, state.assign.as_deref());
            for choice in choices {
                let Rule::Path(rule) = &choice.rule else {
                    continue;
                };
                if rule.eval(&scope)? {
                    target = (Some(choice.next), choice.assign.as_deref());
                    break;
                }
            }
            let values = match target {
                (Some(_), Some(a)) => Some(assign_values(a, &scope)?),
                _ => None,
            };
            (target.0, values)
        };
        match target {
            Some(t) => {
                self.select_in_place(p, fid, &io.input_path)?;
                self.select_in_place(p, fid, &io.output_path)?;
                self.set_variables(fid, values)?;
                Ok(Flow::Goto(t))
            }
            None => Err(EvalError::new(names::NO_CHOICE_MATCHED, "No Matches!")),
        }
    }

    /// A Wait state: its output waits in the frame until the time it names.
    fn exec_wait(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        io: &Io,
        spec: &WaitSpec,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let input = self.select(p, f, &io.input_path, &f.data)?;
        let at = match spec {
            WaitSpec::Seconds(s) => now.saturating_add(*s as Millis * 1000),
            WaitSpec::Timestamp(t) => *t,
            WaitSpec::SecondsPath(path) => now.saturating_add(
                wait_seconds(path, &self.scope(p, f, &input))?.saturating_mul(1000),
            ),
            WaitSpec::TimestampPath(path) => wait_timestamp(path, &self.scope(p, f, &input))?,
            WaitSpec::Jsonata { .. } => now,
        };
        let values = self.assign_values(p, fid, state.assign.as_deref(), &input)?;
        self.select_in_place(p, fid, &io.input_path)?;
        self.select_in_place(p, fid, &io.output_path)?;
        self.set_variables(fid, values)?;
        Ok(self.wait_until(fid, at, now))
    }

    /// A Task state: its call handed out, on `Parameters` (which may read `$$.Task.Token`).
    fn exec_task(
        &mut self,
        p: &Program,
        fid: u32,
        state: &State,
        io: &Io,
        task: &TaskSpec,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let input = self.select(p, f, &io.input_path, &f.data)?;
        // A new token per attempt, made before `Parameters` can pass it on.
        let task_token = needs_task_token(&task.resource).then(new_task_token);
        let payload = match &io.parameters {
            Some(t) => t.eval(&StateScope {
                task_token: task_token.as_deref(),
                ..self.scope(p, f, &input)
            })?,
            None => input.clone().into_owned(),
        };
        let scope = self.scope(p, f, &input);
        let env = Env::new(&input, &scope, None, now, self.seed);
        let call = self.task_call(state, task, payload, task_token, &scope, &env)?;
        Ok(self.start_task(fid, call, now))
    }

    /// The values of a JSONPath `Assign` (if any) over `doc` (the state's result, or its
    /// input for Choice and Wait), read with the variables as they were before the state.
    /// They are set by [`set_variables`](Self::set_variables) only once every other field
    /// has been evaluated: "variables assigned are available from the next state on", so
    /// not to this state's own `InputPath`, `OutputPath` or paths.
    pub(super) fn assign_values(
        &self,
        p: &Program,
        fid: u32,
        assign: Option<&Assign>,
        doc: &Value,
    ) -> Result<Option<Map<String, Value>>, EvalError> {
        let Some(a) = assign else {
            return Ok(None);
        };
        let f = self.frames[fid as usize].as_ref().expect("frame");
        assign_values(a, &self.scope(p, f, doc)).map(Some)
    }

    /// Sets the variables evaluated by [`assign_values`](Self::assign_values).
    pub(super) fn set_variables(
        &mut self,
        fid: u32,
        values: Option<Map<String, Value>>,
    ) -> Result<(), EvalError> {
        match values {
            Some(values) => vars::apply(&mut self.frame(fid).vars, values),
            None => Ok(()),
        }
    }

    /// `ResultSelector` → `ResultPath` → `OutputPath` for a Task, Parallel or Map result of
    /// at most `result_size` bytes.
    pub(super) fn finish_result_path(
        &mut self,
        p: &Program,
        fid: u32,
        io: &Io,
        result: Value,
        result_size: Extent,
    ) -> Flow {
        let state = p.state(self.frame(fid).state);
        // Bound the output from the result's size, so that it need not be measured.
        let selected_size = match &io.result_selector {
            None => Some(result_size),
            Some(t) => t.size_bound().map(|(c, k)| c.with_input(k, result_size)),
        };
        if let Some(n) = selected_size {
            let input_size = self.frame(fid).size_bound;
            self.frame(fid).output_bound = Some(match &io.result_path {
                ResultPath::Replace => n,
                ResultPath::Discard => input_size,
                ResultPath::At(path) => {
                    input_size.beside(n.nested(path.segments().len(), 4 * path.as_str().len() + 8))
                }
            });
        }
        let run = |this: &mut Self| -> Result<(), EvalError> {
            let result = match &io.result_selector {
                Some(t) if io.result_selector_consumes => {
                    let mut result = result;
                    let f = this.frames[fid as usize].as_ref().expect("frame");
                    this.consume(p, f, t, &mut result, result_size)?;
                    result
                }
                Some(t) => {
                    let f = this.frames[fid as usize].as_ref().expect("frame");
                    t.eval(&this.scope(p, f, &result))?
                }
                None => result,
            };
            let values = this.assign_values(p, fid, state.assign.as_deref(), &result)?;
            apply_result_path(&io.result_path, &mut this.frame(fid).data, result)
                .map_err(|d| EvalError::new(names::RESULT_PATH_MATCH_FAILURE, d))?;
            this.select_in_place(p, fid, &io.output_path)?;
            this.set_variables(fid, values)
        };
        match run(self) {
            Ok(()) => Flow::Next,
            Err(e) => Flow::error(self.wrap(p, fid, e)),
        }
    }
}

/// A bound on the extent of `value`, made by `template` (if any) from an input within
/// `input_bound`; measured when the template cannot say.
pub(super) fn derived_bound(
    template: Option<&Template>,
    input_bound: Extent,
    value: &Value,
) -> Extent {
    match template.map(Template::size_bound) {
        None => input_bound,
        Some(Some((c, k))) => c.with_input(k, input_bound),
        Some(None) => size::extent(value),
    }
}

/// A JSONPath `Assign` evaluated in `scope` (a JSONata one never reaches here: JSONata
/// states evaluate theirs with `$states`).
pub(super) fn assign_values(
    assign: &Assign,
    scope: &dyn Scope,
) -> Result<Map<String, Value>, EvalError> {
    match assign {
        Assign::Path(t) => Assign::eval_path(t, scope),
        Assign::Jsonata(_) => Ok(Map::new()),
    }
}

/// `InputPath`: borrows when it can.
pub(super) fn select<'a>(sel: &Selection, doc: &'a Value) -> Result<Cow<'a, Value>, EvalError> {
    match sel {
        Selection::All => Ok(Cow::Borrowed(doc)),
        Selection::Nothing => Ok(Cow::Owned(Value::Object(Map::new()))),
        Selection::Path(p) => p.select(doc).ok_or_else(|| missing(p, doc)),
    }
}

/// `ResultPath`: puts `result` into the state's raw input `doc`, which becomes the output.
pub(super) fn apply_result_path(
    rp: &ResultPath,
    doc: &mut Value,
    result: Value,
) -> Result<(), String> {
    match rp {
        ResultPath::Replace => *doc = result,
        ResultPath::Discard => {}
        ResultPath::At(path) => path.assign(doc, result).map_err(|why| {
            format!(
                "Unable to apply ResultPath '{path}' to input '{}': {why}",
                json_text(doc)
            )
        })?,
    }
    Ok(())
}

pub(super) fn wait_seconds(path: &JsonPath, scope: &dyn Scope) -> Result<Millis, EvalError> {
    let Some(v) = scope.select(path) else {
        return Err(EvalError::runtime(format!(
            "The SecondsPath parameter does not reference an input value: {path}"
        )));
    };
    let shown = plain_text(&v);
    // A number, or a string holding one: AWS parses the value's text as a long.
    match v.as_i64().or_else(|| v.as_str()?.parse::<i64>().ok()) {
        Some(n) if n < 0 => Err(EvalError::runtime(format!(
            "The SecondsPath parameter references a negative value: {path} == {shown}"
        ))),
        Some(n) => Ok(n),
        None => Err(EvalError::runtime(format!(
            "The SecondsPath parameter cannot be parsed as a long value: {path} == {shown}"
        ))),
    }
}

pub(super) fn wait_timestamp(path: &JsonPath, scope: &dyn Scope) -> Result<Millis, EvalError> {
    let Some(v) = scope.select(path) else {
        return Err(EvalError::runtime(format!(
            "The TimestampPath parameter does not reference an input value: {path}"
        )));
    };
    match v.as_str().and_then(crate::asl::timestamp::parse) {
        Some(t) => Ok(t.timestamp_millis()),
        None => {
            let shown = plain_text(&v);
            Err(EvalError::runtime(format!(
                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {path} == {shown}"
            )))
        }
    }
}
