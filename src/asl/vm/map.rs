//! The Map state: its items, their selection and batching, and the iterations it starts
//! (up to `MaxConcurrency` at a time).

use super::fields::*;
use super::jsonpath::*;
use super::{output_limit_exceeded, Execution, Flow, Frame, Join, Phase, Resume, EMPTY_ARRAY};
use crate::asl::context::StateScope;
use crate::asl::effect::{Effect, Purpose, TaskCall, Token};
use crate::asl::error::Failure;
use crate::asl::error::{json_text, names, EvalError};
use crate::asl::jsonata::{Env, JTemplate, NoContext};
use crate::asl::path::Root;
use crate::asl::program::*;
use crate::asl::scope::Scope;
use crate::asl::size::{self, Extent};
use crate::asl::time::Millis;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;

impl Execution {
    /// A Map state: its items read (`ItemReader`) or selected from its input, and run.
    pub(super) fn exec_map(
        &mut self,
        p: &Program,
        fid: u32,
        spec: &MapSpec,
        now: Millis,
    ) -> Result<Flow, EvalError> {
        match &spec.reader {
            Some(reader) => {
                let call =
                    self.map_io_call(p, fid, spec, reader, Purpose::ItemReader, None, now)?;
                Ok(self.start_map_io(fid, call))
            }
            None => self.run_map(p, fid, spec, None, now),
        }
    }

    /// A Distributed Map's `ItemReader` or `ResultWriter` call: its `Parameters` (or
    /// `Arguments`) over the state's effective input, its config with `MaxItemsPath`
    /// resolved, the Map Run's ARN and, for a writer, the results.
    #[allow(clippy::too_many_arguments)]
    fn map_io_call(
        &self,
        p: &Program,
        fid: u32,
        spec: &MapSpec,
        io: &MapIo,
        purpose: Purpose,
        results: Option<Value>,
        now: Millis,
    ) -> Result<TaskCall, EvalError> {
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        let input = match &state.io {
            StateIo::Jsonata(_) => Cow::Borrowed(&f.data),
            StateIo::JsonPath(io) => self.select(p, f, &io.input_path, &f.data)?,
        };
        let scope = self.scope(p, f, &input);
        let env = Env::new(&input, &scope, f.vars.as_deref(), now, self.seed);
        let parameters = match (&io.arguments, &io.parameters) {
            (Some(t), _) => t.eval(&env)?,
            (None, Some(t)) => t.eval(&scope)?,
            (None, None) => Value::Object(Map::new()),
        };
        let mut payload = Map::new();
        payload.insert("Parameters".into(), parameters);
        if let Some(Value::Object(config)) = &io.config {
            let mut config = config.clone();
            if let Some(Value::String(path)) = config.remove("MaxItemsPath") {
                let max = crate::asl::path::JsonPath::parse(&path)
                    .ok()
                    .and_then(|path| scope.select(&path).map(Cow::into_owned));
                if let Some(max) = max {
                    config.insert("MaxItems".into(), max);
                }
            }
            let key = match purpose {
                Purpose::ResultWriter => "WriterConfig",
                _ => "ReaderConfig",
            };
            payload.insert(key.into(), Value::Object(config));
        }
        let o = &self.opts;
        let run = format!(
            "arn:aws:states:{}:{}:mapRun:{}/{}:{}",
            o.region,
            o.account,
            o.state_machine_name,
            spec.label.as_deref().unwrap_or(&state.name),
            uuid::Uuid::new_v4()
        );
        payload.insert("MapRunArn".into(), Value::String(run));
        if let Some(results) = results {
            payload.insert("Results".into(), results);
        }
        Ok(TaskCall {
            resource: io.resource.clone(),
            payload: Value::Object(payload),
            state_name: state.name.clone(),
            execution_name: o.name.clone(),
            nesting_depth: o.nesting_depth,
            timeout_secs: None,
            heartbeat_secs: None,
            task_token: None,
            purpose,
        })
    }

    fn start_map_io(&mut self, fid: u32, call: TaskCall) -> Flow {
        let f = self.frame(fid);
        f.gen = f.gen.wrapping_add(1);
        f.phase = Phase::MapIo(call.purpose);
        let token = Token::new(fid, f.gen);
        self.effects.push(Effect::Invoke {
            token,
            call: Box::new(call),
        });
        Flow::Blocked
    }

    /// The Map's iterations are done: their results go to the `ResultWriter`.
    pub(super) fn write_map_results(
        &mut self,
        p: &Program,
        fid: u32,
        spec: &MapSpec,
        results: Value,
        now: Millis,
    ) -> Flow {
        let writer = spec
            .writer
            .as_ref()
            .expect("called for a Map with a ResultWriter");
        match self.map_io_call(
            p,
            fid,
            spec,
            writer,
            Purpose::ResultWriter,
            Some(results),
            now,
        ) {
            Ok(call) => self.start_map_io(fid, call),
            Err(e) => Flow::error(self.wrap(p, fid, e)),
        }
    }

    /// The answer of an `ItemReader` (the items: the Map runs) or a `ResultWriter` (the
    /// state's result).
    pub(super) fn map_io_done(
        &mut self,
        p: &Program,
        fid: u32,
        purpose: Purpose,
        result: Result<Value, Failure>,
        now: Millis,
    ) -> Flow {
        let state = p.state(self.frame(fid).state);
        let Kind::Map(spec) = &state.kind else {
            return Flow::error(Failure::new(
                names::RUNTIME,
                "a Map call resumed another state",
            ));
        };
        match (purpose, result) {
            (_, Err(f)) => Flow::error(f),
            (Purpose::ItemReader, Ok(Value::Array(items))) => {
                match self.run_map(p, fid, spec, Some(items), now) {
                    Ok(flow) => flow,
                    Err(e) => Flow::error(self.wrap(p, fid, e)),
                }
            }
            (Purpose::ItemReader, Ok(other)) => Flow::error(Failure::new(
                names::ITEM_READER_FAILED,
                format!(
                    "The ItemReader did not read an array of items: {}",
                    json_text(&other)
                ),
            )),
            (_, Ok(result)) => match size::measure(&result, self.opts.payload_limit_bytes) {
                Some(n) => self.finish_result(p, fid, result, n, now),
                None => Flow::error(output_limit_exceeded(&state.name, &result)),
            },
        }
    }

    /// Runs the Map over `read` items (from its `ItemReader`) or over those its input
    /// holds: selected (and batched), one iteration queued per item, then started up to
    /// `MaxConcurrency` at a time.
    fn run_map(
        &mut self,
        p: &Program,
        fid: u32,
        spec: &MapSpec,
        read: Option<Vec<Value>>,
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
        let mut env = Env::new(&input, &scope, f.vars.as_deref(), now, self.seed);
        // `input` is the frame's data or a part of it.
        env.input_spelled = f.data_spelled;
        let max_concurrency =
            resolve_count(spec.max_concurrency.as_ref(), &scope, &env)?.unwrap_or(0) as usize;
        let tolerated_count = resolve_count(spec.tolerated_count.as_ref(), &scope, &env)?;
        let tolerated_pct = tolerated_percentage(spec, &scope, &env, &input)?;
        let items = match read {
            Some(items) => Cow::Owned(items),
            None => map_items(spec, &scope, &env, &input, jsonata)?,
        };
        let batches;
        let units: &[Value] = match &spec.batcher {
            Some(b) => {
                batches = batch_items(b, &items, &scope)?;
                &batches
            }
            None => &items,
        };
        // Only the iterations that start now are made now (so that an ItemSelector error
        // there fails the state before it starts, as it always did); the rest wait as the
        // raw items, made one by one as slots free up. A Map over 1000 items whose
        // ItemSelector builds 1000-item arrays holds its items, not a million values.
        let limit = concurrency_limit(max_concurrency, spec.distributed);
        let eager = units.len().min(limit);
        let queue = self.map_iterations(p, f, spec, &input, &units[..eager], now)?;
        let lazy: VecDeque<(u32, Value)> = units[eager..]
            .iter()
            .enumerate()
            .map(|(i, u)| ((eager + i) as u32, u.clone()))
            .collect();
        // The raw items are (part of) the state's input: its bound bounds them.
        let lazy_bytes = if lazy.is_empty() {
            0
        } else {
            f.size_bound.bytes
        };
        let n = units.len();
        let vars = match spec.distributed {
            true => None,
            false => f.vars.clone(),
        };
        let tolerated = tolerated_failures(tolerated_count, tolerated_pct, n);
        let name = &p.state(f.state).name;
        self.event(
            fid,
            "MapStateStarted",
            Some(name),
            now,
            || serde_json::json!({ "length": n }),
        );
        let join = Join {
            is_map: true,
            results: vec![Value::Null; n],
            results_bound: EMPTY_ARRAY,
            pending: n,
            queued_bytes: queue.iter().map(|q| q.2.bytes).sum::<usize>() + lazy_bytes,
            queue,
            lazy,
            machine: spec.processor,
            running: 0,
            limit,
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
    ) -> Result<VecDeque<(u32, Value, Extent)>, EvalError> {
        let mut queue = VecDeque::with_capacity(units.len());
        for (i, item) in units.iter().enumerate() {
            let (iter_input, bound) = self.iteration_input(p, f, spec, input, i, item, now)?;
            queue.push_back((i as u32, iter_input, bound));
        }
        Ok(queue)
    }

    /// One iteration's input (`ItemSelector` over its item or batch) and a bound on its size.
    #[allow(clippy::too_many_arguments)]
    fn iteration_input(
        &self,
        p: &Program,
        f: &Frame,
        spec: &MapSpec,
        input: &Value,
        i: usize,
        item: &Value,
        now: Millis,
    ) -> Result<(Value, Extent), EvalError> {
        {
            let item_scope = || StateScope {
                map_item: Some((i, item)),
                ..self.scope(p, f, input)
            };
            let iter_input = match (&spec.jsonata_selector, &spec.item_selector) {
                (Some(t), _) => {
                    let item_scope = item_scope();
                    let mut env = Env::new(input, &item_scope, f.vars.as_deref(), now, self.seed);
                    // `input` is the frame's data or a part of it.
                    env.input_spelled = f.data_spelled;
                    t.eval(&env)?
                }
                (None, Some(t)) => t.eval(&item_scope())?,
                (None, None) => item.clone(),
            };
            let bound = match (&spec.batcher, &spec.jsonata_selector, &spec.item_selector) {
                // A batch is a new array, a JSONata selector any value, and an item alone is
                // usually far smaller than the Map's input, which would bound it: measure it,
                // or thousands of iterations would each be accounted as big as their Map.
                (Some(_), _, _) | (_, Some(_), _) | (_, _, None) => size::bound(&iter_input),
                (None, None, Some(t)) => derived_bound(Some(t), f.size_bound, &iter_input),
            };
            Ok((iter_input, bound))
        }
    }

    /// Makes the input of a Map iteration that waited as its raw item. Its ItemSelector
    /// sees the Map state as it was when it started (the frame still holds its input).
    fn lazy_iteration_input(
        &self,
        p: &Program,
        pid: u32,
        slot: u32,
        item: &Value,
        now: Millis,
    ) -> Result<(Value, Extent), EvalError> {
        let f = self.frames[pid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        let Kind::Map(spec) = &state.kind else {
            unreachable!("a Map's join belongs to a Map state")
        };
        let input = match &state.io {
            StateIo::Jsonata(_) => Cow::Borrowed(&f.data),
            StateIo::JsonPath(io) => self.select(p, f, &io.input_path, &f.data)?,
        };
        self.iteration_input(p, f, spec, &input, slot as usize, item, now)
    }

    /// Starts queued Map iterations while below the concurrency limit. Their
    /// `MapIterationStarted` events follow `after`: the MapStateStarted, or the last event of
    /// the iteration whose end freed the slot.
    pub(super) fn start_queued(&mut self, p: &Program, pid: u32, after: u64, now: Millis) {
        let pstate = p.state(self.frame(pid).state);
        // Inputs a JSONata ItemSelector made are in JSONata's spelling (`Frame::data_spelled`).
        let inputs_spelled = matches!(&pstate.kind, Kind::Map(spec)
            if spec.jsonata_selector.as_ref().is_some_and(JTemplate::spells_numbers));
        let pstate = &pstate.name;
        loop {
            let live = self.frames.len() - self.free.len();
            let Phase::Children(join) = &mut self.frame(pid).phase else {
                return;
            };
            // Past the execution's frame cap, a join keeps one iteration going (so that
            // every join progresses and none waits on a slot another holds) and starts
            // the rest as its own iterations end.
            if join.running >= join.limit || (join.running > 0 && live >= MAX_LIVE_FRAMES) {
                return;
            }
            let queued = join.queue.pop_front();
            let next = match queued {
                Some(q) => {
                    join.queued_bytes = join.queued_bytes.saturating_sub(q.2.bytes);
                    Ok(q)
                }
                None => {
                    let Some((slot, item)) = join.lazy.pop_front() else {
                        return;
                    };
                    if join.lazy.is_empty() {
                        join.queued_bytes = 0;
                    }
                    self.lazy_iteration_input(p, pid, slot, &item, now)
                        .map(|(input, bound)| (slot, input, bound))
                }
            };
            let (slot, input, bound) = match next {
                Ok(next) => next,
                Err(e) => {
                    // As when it fails before the Map starts: the state fails, its Retry
                    // and Catch decide.
                    let failure = self.wrap(p, pid, e);
                    self.release_children(pid);
                    // `handle_error` records the MapStateFailed unless the state is retried.
                    let f = self.frame(pid);
                    f.gen = f.gen.wrapping_add(1);
                    f.last_event = after;
                    f.children_failed = true;
                    f.phase = Phase::Resume(Resume::Error(failure));
                    self.runnable.push_back(pid);
                    return;
                }
            };
            let Phase::Children(join) = &mut self.frame(pid).phase else {
                return;
            };
            let machine = join.machine;
            let vars = join.vars.clone();
            let started = self.event_after(
                after,
                "MapIterationStarted",
                Some(pstate),
                now,
                || serde_json::json!({ "index": slot }),
            );
            // The iteration's thread starts at its MapIterationStarted.
            let child = self.spawn(
                p.start_of(machine),
                input,
                Some((pid, slot)),
                bound,
                vars,
                started,
            );
            self.frame(child).data_spelled = inputs_spelled;
            if let Phase::Children(join) = &mut self.frame(pid).phase {
                join.running += 1;
            }
            self.runnable.push_back(child);
        }
    }
}

/// The most iterations an inline Map runs at once: AWS's documented limit ("In this mode,
/// the Map state supports up to 40 concurrent iterations"). `MaxConcurrency: 0` (or absent)
/// means as many as possible, which is this many; a larger `MaxConcurrency` is capped to it.
pub const INLINE_MAP_MAX_CONCURRENCY: usize = 40;

/// The same for a distributed Map, whose iterations also run as frames of this execution
/// (AWS runs up to 10,000 child workflows; each of ours costs a frame, not an execution).
pub const DISTRIBUTED_MAP_MAX_CONCURRENCY: usize = 1000;

/// Live frames (iterations and branches) one execution may hold before its Maps stop
/// starting more than one iteration each: with nested Maps, 40 × 40 × 40 iterations could
/// otherwise run at once. Parallel branches are not held back (a definition has few).
pub const MAX_LIVE_FRAMES: usize = 2_000;

fn concurrency_limit(max_concurrency: usize, distributed: bool) -> usize {
    let cap = match distributed {
        true => DISTRIBUTED_MAP_MAX_CONCURRENCY,
        false => INLINE_MAP_MAX_CONCURRENCY,
    };
    match max_concurrency {
        0 => cap,
        n => n.min(cap),
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
            // A number, or a string holding one (AWS parses the value's text, as Java's
            // `Double.parseDouble` does: surrounding blanks allowed).
            Some(v) => match v
                .as_f64()
                .or_else(|| v.as_str()?.trim().parse::<f64>().ok())
            {
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
