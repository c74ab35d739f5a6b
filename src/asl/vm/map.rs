//! The Map state: its items, their selection and batching, and the iterations it starts
//! (up to `MaxConcurrency` at a time).

use super::fields::*;
use super::jsonpath::*;
use super::{Execution, Flow, Frame, Join, Phase};
use crate::asl::context::StateScope;
use crate::asl::error::{json_text, names, EvalError};
use crate::asl::jsonata::{Env, NoContext};
use crate::asl::path::Root;
use crate::asl::program::*;
use crate::asl::scope::Scope;
use crate::asl::size;
use crate::asl::time::Millis;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;

impl Execution {
    /// A Map state: its items selected (and batched), one iteration queued per item, then
    /// started up to `MaxConcurrency` at a time.
    pub(super) fn exec_map(
        &mut self,
        p: &Program,
        fid: u32,
        spec: &MapSpec,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        let jsonata = matches!(state.io, StateIo::Jsonata(_));
        let input = match &state.io {
            StateIo::Jsonata(_) => Cow::Borrowed(&f.data),
            StateIo::JsonPath(io) => self.select(p, f, &io.input_path, &f.data)?,
        };
        let scope = self.scope(p, f, &input);
        let env = Env::new(&input, &scope, f.vars.as_deref(), now, self.seed);
        let max_concurrency =
            resolve_count(spec.max_concurrency.as_ref(), &scope, &env)?.unwrap_or(0) as usize;
        let tolerated_count = resolve_count(spec.tolerated_count.as_ref(), &scope, &env)?;
        let tolerated_pct = tolerated_percentage(spec, &scope, &env, &input)?;
        let items = map_items(spec, &scope, &env, &input, jsonata)?;
        let batches;
        let units: &[Value] = match &spec.batcher {
            Some(b) => {
                batches = batch_items(b, &items, &scope)?;
                &batches
            }
            None => &items,
        };
        let queue = self.map_iterations(p, f, spec, &input, units, now)?;
        let vars = match spec.distributed {
            true => None,
            false => f.vars.clone(),
        };
        let n = queue.len();
        let tolerated = tolerated_failures(tolerated_count, tolerated_pct, n);
        let name = &p.state(f.state).name;
        self.event("MapStateStarted", Some(name), now, || Value::Null);
        let join = Join {
            is_map: true,
            results: vec![Value::Null; n],
            results_bound: 2,
            pending: n,
            queue,
            machine: spec.processor,
            running: 0,
            limit: if max_concurrency == 0 {
                usize::MAX
            } else {
                max_concurrency
            },
            failures: 0,
            tolerated,
            vars,
        };
        self.start_join(p, fid, join, now);
        Ok(Flow::Blocked)
    }

    /// Each iteration's input (`ItemSelector` over each item or batch) and a bound on its
    /// size, in item order.
    #[allow(clippy::type_complexity)]
    fn map_iterations(
        &self,
        p: &Program,
        f: &Frame,
        spec: &MapSpec,
        input: &Value,
        units: &[Value],
        now: Millis,
    ) -> Result<VecDeque<(u32, Value, usize)>, EvalError> {
        let mut queue = VecDeque::with_capacity(units.len());
        for (i, item) in units.iter().enumerate() {
            let item_scope = || StateScope {
                map_item: Some((i, item)),
                ..self.scope(p, f, input)
            };
            let iter_input = match (&spec.jsonata_selector, &spec.item_selector) {
                (Some(t), _) => {
                    let item_scope = item_scope();
                    t.eval(&Env::new(
                        input,
                        &item_scope,
                        f.vars.as_deref(),
                        now,
                        self.seed,
                    ))?
                }
                (None, Some(t)) => t.eval(&item_scope())?,
                (None, None) => item.clone(),
            };
            let bound = match (&spec.batcher, &spec.jsonata_selector) {
                // A batch is a new array, a JSONata selector any value: measure it.
                (Some(_), _) | (_, Some(_)) => size::json_len(&iter_input),
                _ => derived_bound(spec.item_selector.as_ref(), f.size_bound, &iter_input),
            };
            queue.push_back((i as u32, iter_input, bound));
        }
        Ok(queue)
    }

    /// Starts queued Map iterations while below the concurrency limit.
    pub(super) fn start_queued(&mut self, p: &Program, pid: u32, now: Millis) {
        let pstate = &p.state(self.frame(pid).state).name;
        loop {
            let Phase::Children(join) = &mut self.frame(pid).phase else {
                return;
            };
            if join.running >= join.limit {
                return;
            }
            let Some((slot, input, bound)) = join.queue.pop_front() else {
                return;
            };
            let machine = join.machine;
            let vars = join.vars.clone();
            self.event(
                "MapIterationStarted",
                Some(pstate),
                now,
                || serde_json::json!({ "index": slot }),
            );
            let child = self.spawn(p.start_of(machine), input, Some((pid, slot)), bound, vars);
            if let Phase::Children(join) = &mut self.frame(pid).phase {
                join.running += 1;
            }
            self.runnable.push_back(child);
        }
    }
}

/// `ItemBatcher`: groups items into `{"Items": [...], "BatchInput": ...}` objects.
pub(super) fn batch_items(
    b: &Batcher,
    items: &[Value],
    scope: &dyn Scope,
) -> Result<Vec<Value>, EvalError> {
    let input = Value::Null;
    let env = Env::new(&input, &NoContext, None, 0, 0);
    let max_items = resolve_count(b.max_items.as_ref(), scope, &env)?.map(|n| n as usize);
    let max_bytes = resolve_count(b.max_bytes.as_ref(), scope, &env)?.map(|n| n as usize);
    let batch_input = match &b.batch_input {
        Some(t) => Some(t.eval(scope)?),
        None => None,
    };
    let max_items = max_items.filter(|n| *n > 0).unwrap_or(usize::MAX);
    let max_bytes = max_bytes
        .filter(|n| *n > 0)
        .unwrap_or(size::PAYLOAD_LIMIT_BYTES);
    let mut batches = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size::json_len(item) + 1;
        if !current.is_empty() && (current.len() >= max_items || bytes + n > max_bytes) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += n;
        current.push(item.clone());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches
        .into_iter()
        .map(|items| {
            let mut m = Map::new();
            if let Some(bi) = &batch_input {
                m.insert("BatchInput".into(), bi.clone());
            }
            m.insert("Items".into(), Value::Array(items));
            Value::Object(m)
        })
        .collect())
}

/// `ToleratedFailurePercentage` (literal, by path or by JSONata), checked to be 0 to 100.
fn tolerated_percentage(
    spec: &MapSpec,
    scope: &dyn Scope,
    env: &Env,
    input: &Value,
) -> Result<Option<f64>, EvalError> {
    let tolerated_pct = match &spec.tolerated_percentage {
        Some(Percentage::Literal(x)) => Some(*x),
        Some(Percentage::Path(path)) => match scope.select(path) {
            Some(v) => match v.as_f64() {
                Some(x) => Some(x),
                None => {
                    return Err(EvalError::runtime(format!(
                        "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {path}",
                        plain_text(&v)
                    )))
                }
            },
            None => return Err(missing(path, input)),
        },
        Some(Percentage::Jsonata(t)) => match t.eval(env)? {
            Value::Number(n) => n.as_f64(),
            other => return Err(expected_type(t, "ToleratedFailurePercentage", "number", &other)),
        },
        None => None,
    };
    if let Some(x) = tolerated_pct {
        if !(0.0..=100.0).contains(&x) {
            return Err(EvalError::runtime(
                "ToleratedFailurePercentage must be between 0 and 100.",
            ));
        }
    }
    Ok(tolerated_pct)
}

/// The items a Map state iterates over: JSONata `Items`, `ItemsPath`, or the effective
/// input; an array or an error.
fn map_items<'a>(
    spec: &MapSpec,
    scope: &dyn Scope,
    env: &Env,
    input: &'a Value,
    jsonata: bool,
) -> Result<Cow<'a, [Value]>, EvalError> {
    let items: Cow<Value> = match (&spec.jsonata_items, &spec.items_path) {
        (Some(t), _) => match t.eval(env)? {
            v @ Value::Array(_) => Cow::Owned(v),
            other => return Err(expected_type(t, "Items", "array", &other)),
        },
        (None, Some(path)) => match scope.select(path) {
            Some(v) => Cow::Owned(v.into_owned()),
            None if path.root() == Root::Input => return Err(missing(path, input)),
            None => return Err(missing(path, &Value::Null)),
        },
        (None, None) => Cow::Borrowed(input),
    };
    match items {
        Cow::Owned(Value::Array(items)) => Ok(Cow::Owned(items)),
        Cow::Borrowed(Value::Array(items)) => Ok(Cow::Borrowed(items)),
        items => {
            let error = match jsonata {
                true => names::QUERY_EVALUATION_ERROR,
                false => names::RUNTIME,
            };
            Err(EvalError::new(
                error,
                format!(
                    "Map state input must be an array but was: {}",
                    json_text(&items)
                ),
            ))
        }
    }
}

/// How many failed iterations of `n` a Map tolerates, from `ToleratedFailureCount` and
/// `ToleratedFailurePercentage`; `None` when neither is given.
fn tolerated_failures(count: Option<u64>, pct: Option<f64>, n: usize) -> Option<usize> {
    match (count, pct) {
        (None, None) => None,
        (c, pct) => {
            let by_pct = pct.map(|x| ((x / 100.0) * n as f64).floor() as usize);
            Some(match (c, by_pct) {
                // The Map fails when either threshold is exceeded.
                (Some(c), Some(b)) => (c as usize).min(b),
                (Some(c), None) => c as usize,
                (None, Some(b)) => b,
                (None, None) => 0,
            })
        }
    }
}
