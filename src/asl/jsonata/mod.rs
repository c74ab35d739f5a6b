//! JSONata, the query language of states whose `QueryLanguage` is `JSONata`.
//!
//! Expressions are parsed once, at compile time, by [jsonata-core] (chosen in
//! `docs/jsonata-evaluation.md`): an [`Expr`] keeps the parsed tree, the variable names it
//! reads (found in the tree, so only those are bound at run time) and, when it is one of the
//! simple forms states are mostly made of, a [`fast`] evaluator that works on serde values
//! directly. A [`JTemplate`] is a JSONata field: JSON whose `{% ... %}` strings are
//! expressions.
//!
//! Evaluation binds `$states` (`input`, `result`, `errorOutput`, `context`) and the workflow
//! variables, adds AWS's functions (`$partition`, `$range`, `$hash`, `$random`, `$uuid`,
//! `$parse`) and freezes `$now()`/`$millis()` to the step's time, so virtual clocks stay
//! exact. Every failure is AWS's `States.QueryEvaluationError` with AWS's cause texts.
//!
//! [jsonata-core]: https://crates.io/crates/jsonata-core

mod convert;
pub mod fast;
mod functions;
mod messages;

use super::error::{json_text, names, EvalError};
use super::path::JsonPath;
use super::size::{self, Extent, LinearBound};
use super::template::OutputKeys;
use super::time::Millis;
use fast::{MergeOnto, Owner};
use jsonata_core::ast::AstNode;
use jsonata_core::evaluator::{CancelToken, Context, Evaluator, EvaluatorOptions};
use jsonata_core::value::JValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

pub use convert::{from_jvalue, to_jvalue, NotJson};

/// A runaway expression (unbounded recursion, a huge `$range`) must not stall a shard.
const EVAL_TIMEOUT_MS: u64 = 1_000;

/// The longest sequence (a range, a `$map` result) an evaluation may build: a 256 KiB input
/// holds at most ~130,000 items, and a 10,000,000-item range alone takes 400 MB.
const MAX_SEQUENCE_LENGTH: usize = 1_000_000;

/// The memory one evaluation may hold (see [`crate::memory_budget`]): far above what any
/// expression over a 256 KiB input needs, far below what a runaway one asks for.
const EVAL_MEMORY_BYTES: usize = 64 << 20;

/// The expression inside a `{% ... %}` string, or `None` if `s` is not one.
pub fn expression_text(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{%")?.strip_suffix("%}")?;
    Some(inner.trim())
}

/// A parsed JSONata expression.
pub struct Expr {
    /// The text between `{%` and `%}`, trimmed: AWS quotes it in causes.
    text: Box<str>,
    ast: AstNode,
    /// Workflow variables the expression may read (every `$name` but `$states`).
    variables: Box<[Box<str>]>,
    /// Whether it may read `$states.context` (built only then).
    reads_context: bool,
    fast: Option<fast::Fast>,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{% {} %}}", self.text)
    }
}

impl Expr {
    /// Parses the text of an expression (without `{% %}`). The error is jsonata-core's
    /// message, with the JSONata error code (`S0201: ...`).
    pub fn parse(text: &str) -> Result<Expr, String> {
        let ast = contained("parser", || jsonata_core::parser::parse(text))?
            .map_err(|e| e.to_string())?;
        let mut variables = Vec::new();
        collect_variables(&ast, &mut variables);
        variables.sort();
        variables.dedup();
        let reads_context = text.contains("context");
        let variables: Vec<Box<str>> = variables
            .into_iter()
            .filter(|v| v != "states")
            .map(Box::from)
            .collect();
        Ok(Expr {
            fast: fast::Fast::compile(&ast),
            text: text.into(),
            ast,
            variables: variables.into_boxed_slice(),
            reads_context,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates to a JSON value. `field` names where the expression sits (`Output/result`),
    /// as AWS's causes do.
    #[inline]
    pub fn eval(&self, env: &Env, field: &str) -> Result<Value, EvalError> {
        match self.eval_raw(env, field)? {
            Some(v) => Ok(v),
            None => Err(self.error(field, "returned nothing (undefined).")),
        }
    }

    /// Evaluates; `None` is JSONata's `undefined`.
    #[inline]
    pub fn eval_raw(&self, env: &Env, field: &str) -> Result<Option<Value>, EvalError> {
        if let Some(fast) = &self.fast {
            if let Some(result) = fast.eval(env) {
                return Ok(result.map(std::borrow::Cow::into_owned));
            }
        }
        self.eval_slow(env, field)
    }

    /// [`eval_raw`](Self::eval_raw) by jsonata-core, kept out of line: inlined, its frame
    /// would weigh on every fast evaluation.
    #[inline(never)]
    fn eval_slow(&self, env: &Env, field: &str) -> Result<Option<Value>, EvalError> {
        let result = self.eval_full(env).map_err(|message| {
            self.error(
                field,
                &format!("threw an error during evaluation. {message}"),
            )
        })?;
        if result.is_undefined() {
            return Ok(None);
        }
        match from_jvalue(&result) {
            Ok(v) => Ok(Some(v)),
            Err(NotJson::Unsupported) => {
                Err(self.error(field, "returned an unsupported result type."))
            }
            Err(NotJson::TooDeep) => Err(EvalError::new(
                names::DATA_LIMIT_EXCEEDED,
                format!(
                    "The JSONata expression '{}' specified for the field '{field}' returned a value nesting deeper than the limit of {} levels of arrays and objects.",
                    self.text,
                    crate::asl::size::MAX_DEPTH
                ),
            )),
        }
    }

    fn eval_full(&self, env: &Env) -> Result<JValue, String> {
        let mut context = Context::new();
        context.bind("states".to_string(), env.states(self.reads_context).clone());
        for name in self.variables.iter() {
            if let Some(v) = env.variables.and_then(|vars| vars.get(&**name)) {
                context.bind(name.to_string(), to_jvalue(v));
            }
        }
        let cancel = CancelToken::new();
        let options = EvaluatorOptions {
            timeout_ms: Some(EVAL_TIMEOUT_MS),
            cancel: Some(cancel.clone()),
            max_sequence_length: Some(MAX_SEQUENCE_LENGTH),
            ..EvaluatorOptions::default()
        };
        let mut evaluator = Evaluator::with_options(context, options);
        functions::register(&mut evaluator, env.now, env.seed);
        let (result, spent) = crate::memory_budget::limit(EVAL_MEMORY_BYTES, &cancel, || {
            contained("evaluator", || {
                evaluator.evaluate(&self.ast, &JValue::Undefined)
            })
        });
        match result? {
            Err(_) if spent => Err(format!(
                "It needed more than {} MiB of memory.",
                EVAL_MEMORY_BYTES >> 20
            )),
            r => r.map_err(|e| messages::aws_wording(e.message()).into_owned()),
        }
    }

    /// AWS's cause for this expression: "The JSONata expression '…' specified for the field
    /// '…' <what>".
    pub fn error(&self, field: &str, what: &str) -> EvalError {
        EvalError::new(
            names::QUERY_EVALUATION_ERROR,
            format!(
                "The JSONata expression '{}' specified for the field '{field}' {what}",
                self.text
            ),
        )
    }
}

/// Every `$name` the expression reads, including inside functions (over-approximates: a
/// name bound by `:=` or a lambda parameter is looked up but not found, which is harmless).
fn collect_variables(node: &AstNode, out: &mut Vec<String>) {
    use jsonata_core::ast::Stage;
    let mut each = |n: &AstNode| collect_variables(n, out);
    match node {
        AstNode::Variable(name) => out.push(name.clone()),
        AstNode::Path { steps } => {
            for s in steps {
                collect_variables(&s.node, out);
                for stage in &s.stages {
                    if let Stage::Filter(f) = stage {
                        collect_variables(f, out);
                    }
                }
            }
        }
        AstNode::Binary { lhs, rhs, .. } => {
            each(lhs);
            each(rhs);
        }
        AstNode::Unary { operand, .. } => each(operand),
        AstNode::Function { args, .. } => args.iter().for_each(each),
        AstNode::Call { procedure, args } => {
            each(procedure);
            args.iter().for_each(each);
        }
        AstNode::Lambda { body, .. } => each(body),
        AstNode::Array(items) | AstNode::Block(items) | AstNode::ArrayGroup(items) => {
            items.iter().for_each(each)
        }
        AstNode::Object(pairs) => {
            for (k, v) in pairs {
                each(k);
                each(v);
            }
        }
        AstNode::ObjectTransform { input, pattern } => {
            each(input);
            for (k, v) in pattern {
                each(k);
                each(v);
            }
        }
        AstNode::Conditional {
            condition,
            then_branch,
            else_branch,
        } => {
            each(condition);
            each(then_branch);
            if let Some(e) = else_branch {
                each(e);
            }
        }
        AstNode::FunctionApplication(n) => each(n),
        AstNode::Sort { input, terms } => {
            each(input);
            for (t, _) in terms {
                each(t);
            }
        }
        AstNode::Transform {
            location,
            update,
            delete,
        } => {
            each(location);
            each(update);
            if let Some(d) = delete {
                each(d);
            }
        }
        _ => {}
    }
}

/// The context object as expressions read it: whole for jsonata-core, in part (borrowed where
/// it can be) for the fast path.
pub trait ContextObject {
    fn whole(&self) -> Value;
    /// The value at `path`, a JSONPath rooted at the context object (`$$.Map.Item.Value`).
    fn select(&self, path: &JsonPath) -> Option<Cow<'_, Value>>;
}

/// Where no context object exists (evaluations outside any state).
pub struct NoContext;

impl ContextObject for NoContext {
    fn whole(&self) -> Value {
        Value::Null
    }
    fn select(&self, _: &JsonPath) -> Option<Cow<'_, Value>> {
        None
    }
}

/// What an expression sees: `$states` and the workflow variables.
pub struct Env<'a> {
    pub input: &'a Value,
    /// `input` is in JSONata's spelling of numbers already (a JSONata `Output` made it, see
    /// [`JTemplate::spells_numbers`]): what is read from it needs no respelling.
    pub input_spelled: bool,
    /// `$states.result`: a Task's, Map's or Parallel's result, in `Output` and `Assign`.
    pub result: Option<&'a Value>,
    /// `$states.errorOutput`, in a Catcher's `Output` and `Assign`.
    pub error_output: Option<&'a Value>,
    /// `$states.context`, built (or read in part) only if an expression reads it.
    pub context: &'a dyn ContextObject,
    pub variables: Option<&'a Map<String, Value>>,
    /// The step's time: `$now()` and `$millis()`.
    pub now: Millis,
    /// Seeds `$random()` and `$uuid()`, so an execution replays the same values.
    pub seed: u64,
    /// `$states` in jsonata-core's form, converted once per state.
    states: OnceCell<JValue>,
    with_context: OnceCell<JValue>,
}

impl<'a> Env<'a> {
    pub fn new(
        input: &'a Value,
        context: &'a dyn ContextObject,
        variables: Option<&'a Map<String, Value>>,
        now: Millis,
        seed: u64,
    ) -> Self {
        Env {
            input,
            input_spelled: false,
            result: None,
            error_output: None,
            context,
            variables,
            now,
            seed,
            states: OnceCell::new(),
            with_context: OnceCell::new(),
        }
    }

    fn states(&self, with_context: bool) -> &JValue {
        let build = |context: bool| {
            let mut m = indexmap::IndexMap::new();
            m.insert("input".to_string(), to_jvalue(self.input));
            if let Some(r) = self.result {
                m.insert("result".to_string(), to_jvalue(r));
            }
            if let Some(e) = self.error_output {
                m.insert("errorOutput".to_string(), to_jvalue(e));
            }
            if context {
                m.insert("context".to_string(), to_jvalue(&self.context.whole()));
            }
            JValue::object(m)
        };
        if with_context {
            self.with_context.get_or_init(|| build(true))
        } else {
            self.states.get_or_init(|| build(false))
        }
    }

    pub fn variable(&self, name: &str) -> Option<&'a Value> {
        self.variables.and_then(|v| v.get(name))
    }
}

/// A JSONata field: JSON in which every string `{% ... %}` is an expression.
#[derive(Debug)]
pub enum JTemplate {
    Const(Value),
    /// An expression and the field path AWS names in causes (`Output/result`).
    Expr {
        expr: Box<Expr>,
        field: Box<str>,
    },
    Object {
        fields: Vec<(String, JTemplate)>,
        /// The keys of `fields`, distinct as a JSON object's are.
        keys: OutputKeys,
        /// Which fields [`JTemplate::eval_taking`] may move instead of copying.
        moves: Moves,
        /// [`JTemplate::spells_numbers`], worked out once: it is asked on every state.
        spelled: bool,
    },
    Array(Vec<JTemplate>),
}

impl JTemplate {
    /// Compiles the value of field `field`. Errors carry the JSON pointer (relative to the
    /// field) of the expression that does not parse.
    pub fn compile(v: &Value, field: &str) -> Result<JTemplate, (String, String)> {
        Self::compile_at(v, field, "")
    }

    fn compile_at(v: &Value, field: &str, ptr: &str) -> Result<JTemplate, (String, String)> {
        if !has_expression(v) {
            return Ok(JTemplate::Const(v.clone()));
        }
        Ok(match v {
            Value::String(s) => {
                let text = expression_text(s).unwrap_or_default();
                let expr = Expr::parse(text).map_err(|e| (ptr.to_string(), e))?;
                JTemplate::Expr {
                    expr: Box::new(expr),
                    field: field.into(),
                }
            }
            Value::Object(m) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let sub = Self::compile_at(
                        v,
                        &format!("{field}/{k}"),
                        &super::diagnostic::pointer_push(ptr, k),
                    )?;
                    fields.push((k.clone(), sub));
                }
                let moves = Moves::of(&fields);
                let keys = OutputKeys::new(fields.iter().map(|(k, _)| k.as_str()))
                    .expect("a JSON object's keys are distinct");
                let spelled = fields.iter().all(|(_, t)| t.spells_numbers());
                JTemplate::Object {
                    fields,
                    keys,
                    moves,
                    spelled,
                }
            }
            Value::Array(a) => {
                let mut items = Vec::with_capacity(a.len());
                for (i, v) in a.iter().enumerate() {
                    let i = i.to_string();
                    let sub = Self::compile_at(
                        v,
                        &format!("{field}[{i}]"),
                        &super::diagnostic::pointer_push(ptr, &i),
                    )?;
                    items.push(sub);
                }
                JTemplate::Array(items)
            }
            _ => JTemplate::Const(v.clone()),
        })
    }

    /// A bound on the extent of this field's value over `$states.input`'s (see
    /// [`size::LinearBound`]); `None` where an expression is not bounded by the input (or is
    /// not one the fast path knows, which is as much as this looks into).
    pub fn size_bound(&self) -> Option<LinearBound> {
        match self {
            JTemplate::Const(v) => Some((size::extent(v), 0)),
            JTemplate::Expr { expr, .. } => expr.fast.as_ref()?.size_bound(),
            JTemplate::Object { fields, .. } => Some(size::object_bound(
                fields
                    .iter()
                    .map(|(k, t)| Some((k.as_str(), t.size_bound()?)))
                    .collect::<Option<Vec<_>>>()?,
            )),
            JTemplate::Array(items) => Some(size::array_bound(
                items
                    .iter()
                    .map(JTemplate::size_bound)
                    .collect::<Option<Vec<_>>>()?,
            )),
        }
    }

    /// [`eval`](Self::eval) for an `Output` whose state input and result are dropped right
    /// after, in two steps: here every field is evaluated against the untouched input and
    /// result except an object's fields that are plain paths into them, which
    /// [`Taking::finish`] then moves out instead of copying (as JSONPath templates do).
    /// Paths into the input of one object that overlap are all evaluated here, and so is
    /// every path into the result after the first. `$merge([$states.input, …])` likewise
    /// sets the other items' fields on the input itself rather than on a copy.
    pub fn eval_taking<'t>(&'t self, env: &Env) -> Result<Taking<'t>, EvalError> {
        if let JTemplate::Expr { expr, .. } = self {
            if let Some(merge) = expr.fast.as_ref().and_then(|f| f.merge_onto_input(env)) {
                return Ok(Taking::MergeInto(merge));
            }
        }
        let JTemplate::Object {
            fields,
            keys,
            moves,
            ..
        } = self
        else {
            return self.eval(env).map(Taking::Done);
        };
        if !moves.input && !moves.result {
            return self.eval(env).map(Taking::Done);
        }
        let mut result_moved = false;
        let mut slots = Vec::with_capacity(fields.len());
        for (_, t) in fields {
            match t.plain_path() {
                Some((Owner::Input, names))
                    if moves.input && fast::select_plain(env.input, names).is_some() =>
                {
                    slots.push(Slot::Take(Owner::Input, names));
                }
                Some((Owner::Result, names))
                    if !result_moved
                        && env
                            .result
                            .is_some_and(|r| fast::select_plain(r, names).is_some()) =>
                {
                    result_moved = true;
                    slots.push(Slot::Take(Owner::Result, names));
                }
                _ => {
                    // Evaluated into its slot: returned, the value was copied through the
                    // stack twice, and the loads stalled on the stores just made.
                    slots.push(Slot::Value(Value::Null));
                    if let Some(Slot::Value(v)) = slots.last_mut() {
                        t.eval_into(env, v)?;
                    }
                }
            }
        }
        Ok(Taking::Object(keys, slots))
    }

    fn plain_path(&self) -> Option<(Owner, &[String])> {
        match self {
            JTemplate::Expr { expr, .. } => expr.fast.as_ref()?.plain_path(),
            _ => None,
        }
    }

    /// The whole field is one expression.
    pub fn as_expr(&self) -> Option<&Expr> {
        match self {
            JTemplate::Expr { expr, .. } => Some(expr),
            _ => None,
        }
    }

    pub fn eval(&self, env: &Env) -> Result<Value, EvalError> {
        match self {
            JTemplate::Const(v) => Ok(v.clone()),
            JTemplate::Expr { expr, field } => expr.eval(env, field),
            JTemplate::Object { fields, keys, .. } => {
                let mut object = keys.skeleton();
                for ((_, t), slot) in fields.iter().zip(object.values_mut()) {
                    t.eval_into(env, slot)?;
                }
                Ok(Value::Object(object))
            }
            JTemplate::Array(items) => items
                .iter()
                .map(|t| t.eval(env))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        }
    }

    /// [`eval`](Self::eval) into `slot`: a plain path's value is copied straight there
    /// rather than returned through the evaluation's layers, each of which would copy it
    /// again.
    fn eval_into(&self, env: &Env, slot: &mut Value) -> Result<(), EvalError> {
        if let JTemplate::Expr { expr, .. } = self {
            if let Some(v) = expr.fast.as_ref().and_then(|f| f.select(env)) {
                match v {
                    Cow::Borrowed(v) => slot.clone_from(v),
                    Cow::Owned(v) => *slot = v,
                }
                if !expr.fast.as_ref().is_some_and(|f| f.reads_spelled(env)) {
                    fast::respell(slot);
                }
                return Ok(());
            }
        }
        *slot = self.eval(env)?;
        Ok(())
    }

    /// [`eval`](Self::eval) of a `Condition` the fast path finds a boolean; `None`
    /// otherwise (the caller then evaluates, and reports a value that is not a boolean).
    pub fn test(&self, env: &Env) -> Option<bool> {
        match self {
            JTemplate::Expr { expr, .. } => expr.fast.as_ref()?.test(env),
            _ => None,
        }
    }

    /// Whether every value [`eval`](Self::eval) makes is in JSONata's spelling of numbers:
    /// expressions' values are, literals are kept as written (`4.0` stays `4.0`).
    pub fn spells_numbers(&self) -> bool {
        match self {
            JTemplate::Const(v) => !fast::needs_respelling(v),
            JTemplate::Expr { .. } => true,
            JTemplate::Object { spelled, .. } => *spelled,
            JTemplate::Array(items) => items.iter().all(JTemplate::spells_numbers),
        }
    }

    /// Whether any expression of the template may read the context object.
    pub fn reads_context(&self) -> bool {
        match self {
            JTemplate::Const(_) => false,
            JTemplate::Expr { expr, .. } => expr.reads_context,
            JTemplate::Object { fields: f, .. } => f.iter().any(|(_, t)| t.reads_context()),
            JTemplate::Array(a) => a.iter().any(JTemplate::reads_context),
        }
    }
}

/// Which fields of an `Output` object [`JTemplate::eval_taking`] may move.
#[derive(Debug, Clone, Copy)]
pub struct Moves {
    /// Some fields are plain paths into `$states.input` and none overlap.
    input: bool,
    /// Some field is a plain path into `$states.result` (the first of them moves).
    result: bool,
}

impl Moves {
    fn of(fields: &[(String, JTemplate)]) -> Moves {
        let paths = |owner| -> Vec<&[String]> {
            fields
                .iter()
                .filter_map(|(_, t)| t.plain_path().filter(|(o, _)| *o == owner))
                .map(|(_, names)| names)
                .collect()
        };
        let inputs = paths(Owner::Input);
        let overlap = inputs.iter().enumerate().any(|(i, a)| {
            inputs[i + 1..]
                .iter()
                .any(|b| a.starts_with(b) || b.starts_with(a))
        });
        Moves {
            input: !inputs.is_empty() && !overlap,
            result: !paths(Owner::Result).is_empty(),
        }
    }
}

/// An `Output` between the two steps of [`JTemplate::eval_taking`].
pub enum Taking<'t> {
    Done(Value),
    /// The fields `$merge([$states.input, …])` sets on the input.
    MergeInto(MergeOnto<'t>),
    /// An object's keys and its fields in order: evaluated, or to be moved out of the input
    /// or the result.
    Object(&'t OutputKeys, Vec<Slot<'t>>),
}

pub enum Slot<'t> {
    Value(Value),
    Take(Owner, &'t [String]),
}

impl Taking<'_> {
    /// A bound on the output's extent, for an input within `input`, measuring only the
    /// parts that are not moved or kept from the input (a `$parse`, `$states.result`):
    /// an Output such as `$merge([$states.input, {'r': $states.result}])` is then not
    /// measured whole. What is not yet in JSONata's spelling (the input, the result, a
    /// `$merge`'s fields) counts twice, as in [`fast`]'s bounds: JSONata may write its
    /// numbers two bytes longer. `None` when the output is one value (measured whole by the
    /// caller) or a part is over `limit`. `result_size`, when known, bounds `result`: the
    /// whole result moved into the output (a Map's results) is then not measured either.
    pub fn bound(
        &self,
        input: Extent,
        result: Option<&Value>,
        result_size: Option<Extent>,
        limit: usize,
    ) -> Option<Extent> {
        let from_input = Extent::default().with_input(2, input);
        let respelled = |e: Extent| Extent::default().with_input(2, e);
        let field = |key: &str, e: Extent| e.nested(0, 2 * key.len() + 4);
        let moved_result = |names: &[String]| {
            // The whole result: its size is known.
            if let Some(size) = result_size.filter(|_| names.is_empty()) {
                return Some(respelled(size));
            }
            let part = result.and_then(|r| fast::part(r, names))?;
            Some(respelled(size::measure(part, limit)?))
        };
        match self {
            Taking::Done(_) => None,
            Taking::MergeInto(merge) => {
                let fields = merge.fields.iter().try_fold(from_input, |b, (k, v)| {
                    Some(b.beside(field(k, respelled(size::measure(v, limit)?)).nested(1, 2)))
                })?;
                match &merge.from_result {
                    Some((k, names)) => {
                        Some(fields.beside(field(k, moved_result(names)?).nested(1, 2)))
                    }
                    None => Some(fields),
                }
            }
            Taking::Object(keys, slots) => {
                let mut skeleton = Extent::default();
                let mut takes = false;
                for (key, slot) in keys.names().zip(slots) {
                    skeleton = skeleton.beside(match slot {
                        Slot::Value(v) => field(key, size::measure(v, limit)?),
                        Slot::Take(Owner::Result, names) => field(key, moved_result(names)?),
                        Slot::Take(Owner::Input, _) => {
                            takes = true;
                            Extent::new(2 * key.len() + 4, 0)
                        }
                    });
                }
                let skeleton = skeleton.nested(1, 2);
                // The moved paths are disjoint parts of the input: one input for all.
                Some(if takes {
                    skeleton.with_input(2, input)
                } else {
                    skeleton
                })
            }
        }
    }

    /// The output, moving the selected values out of `input` and `result`: the state's
    /// input and result the first step read, unchanged since (both are dropped after).
    /// `input_spelled` as [`Env::input_spelled`].
    pub fn finish(
        self,
        input: &mut Value,
        mut result: Option<Value>,
        input_spelled: bool,
    ) -> Value {
        match self {
            Taking::Done(v) => v,
            Taking::MergeInto(merge) => {
                fast::merge_into(std::mem::take(input), merge, result.as_mut(), input_spelled)
            }
            Taking::Object(keys, slots) => {
                let mut object = keys.skeleton();
                for (slot, out) in slots.into_iter().zip(object.values_mut()) {
                    let (from, names, spelled) = match slot {
                        Slot::Value(v) => {
                            *out = v;
                            continue;
                        }
                        Slot::Take(Owner::Input, names) => (&mut *input, names, input_spelled),
                        Slot::Take(Owner::Result, names) => (
                            result.as_mut().expect("the result the first step read"),
                            names,
                            false,
                        ),
                    };
                    // Disjoint paths, selected by the first step: each still there.
                    fast::take_plain_into(from, names, out, spelled)
                        .expect("a path the first step selected");
                }
                Value::Object(object)
            }
        }
    }
}

fn has_expression(v: &Value) -> bool {
    match v {
        Value::String(s) => expression_text(s).is_some(),
        Value::Array(a) => a.iter().any(has_expression),
        Value::Object(m) => m.values().any(has_expression),
        _ => false,
    }
}

/// A field that is a literal value or a whole `{% %}` string, e.g. `TimeoutSeconds` or a
/// Wait's `Seconds`, with what AWS's causes call it.
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// AWS's cause for an expression whose value has the wrong type.
pub fn unexpected_type(expr: &Expr, field: &str, expected: &str, got: &Value) -> EvalError {
    expr.error(
        field,
        &format!(
            "returned an unexpected result type. Expected '{expected}', but was '{}' for value: {}",
            value_kind(got),
            json_text(got)
        ),
    )
}

/// Makes the panics that [`contained`] turns into errors print one line on stderr instead
/// of the default message and backtrace: any caller who can run an expression could
/// otherwise fill the daemon's log with backtraces. Other panics print as before.
pub fn quiet_contained_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match info.location() {
        Some(at) if panicked_in_jsonata_core(info) => {
            eprintln!("jsonata-core panicked at {at} (the expression fails)")
        }
        _ => previous(info),
    }));
}

/// Whether a panic comes from jsonata-core, whose panics [`contained`] turns into errors
/// (the fuzz targets let those unwind too).
pub fn panicked_in_jsonata_core(info: &std::panic::PanicHookInfo) -> bool {
    info.location()
        .is_some_and(|l| l.file().contains("jsonata-core"))
}

/// Runs a call into jsonata-core, turning its panics into an error. It panics on some
/// inputs (`$fromMillis(0, "[,D1o]")` slices a picture out of bounds): that must fail the
/// expression, not the thread running every execution of a shard.
fn contained<T>(part: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        format!("The JSONata {part} failed: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A context object with a Map item, as an `ItemSelector` sees it.
    struct MapItem(Value);

    impl ContextObject for MapItem {
        fn whole(&self) -> Value {
            json!({"Map": {"Item": {"Index": 1, "Value": self.0}}, "State": {"Name": "S"}})
        }
        fn select(&self, path: &JsonPath) -> Option<Cow<'_, Value>> {
            path.select(&self.whole())
                .map(|v| Cow::Owned(v.into_owned()))
        }
    }

    /// A value, `None` for undefined, `Err` for an error.
    type Evaluated = Result<Option<Value>, ()>;

    /// The fast path's result (`None` if it declines) and jsonata-core's.
    fn both(text: &str, env: &Env) -> (Option<Evaluated>, Evaluated) {
        let expr = Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let fast = expr
            .fast
            .as_ref()
            .and_then(|f| f.eval(env))
            .map(|v| Ok(v.map(Cow::into_owned)));
        let full = expr
            .eval_full(env)
            .map(|j| (!j.is_undefined()).then(|| from_jvalue(&j).unwrap()))
            .map_err(|_| ());
        (fast, full)
    }

    /// Expressions of every form the fast path knows, and some it declines.
    const EXPRESSIONS: &[&str] = &[
        "$states.input",
        "$states.input.a",
        "$states.input.missing",
        "$states.input.o.p.q",
        "$states.input.arr",
        "$states.input.empty",
        "$states.input.nested",
        "$states.input.objs.k",
        "$states.input.o.arr.z",
        "$states.result.r",
        "$states.context.Map.Item.Value",
        "$states.context.Map.Item.Value.id",
        "$states.context.Map.Item.Index",
        "$states.context.State.Name",
        "$states.context.Nope",
        "$v.w",
        "$list",
        "$nope",
        "1",
        "1.5",
        "\"s\"",
        "true",
        "null",
        "-$states.input.a",
        "-$states.input.s",
        "$states.input.a + $states.input.b",
        "$states.input.a - 3",
        "7 % 3",
        "1 / 3",
        "$states.input.a * $states.input.big",
        "$states.input.whole * 1",
        "$states.input.s + 1",
        "$states.input.missing + 1",
        "$states.input.a = 1",
        "$states.input.a != 1.0",
        "$states.input.s = \"x\"",
        "$states.input.n = null",
        "$states.input.arr = 1",
        "$states.input.o = 1",
        "$states.input.a < $states.input.b",
        "$states.input.s >= \"a\"",
        "$states.input.t > \"a\"",
        "$states.input.s < 1",
        "$states.input.yes and $states.input.no",
        "$states.input.yes or $states.input.a",
        "$states.input.s & $states.input.a",
        "$states.input.s & $states.input.b",
        "$states.input.s & $states.input.n",
        "$states.input.s & $states.input.missing",
        "$states.input.yes ? \"y\" : \"n\"",
        "$states.input.no ? 1",
        "$states.input.a ? 1 : 2",
        "{\"a\": $states.input.a, \"m\": $states.input.missing}",
        "[$states.input.a, $states.input.arr]",
        "[$states.input.a, [1, 2]]",
        "[$states.input.missing]",
        "[]",
        "$count($states.input.arr)",
        "$count($states.input.missing)",
        "$count(5)",
        "$exists($states.input.n)",
        "$exists($states.input.missing)",
        "$not($states.input.yes)",
        "$not($states.input.a)",
        "$merge([$states.input.o, {\"x\": 1}])",
        "$merge($states.input.objs)",
        "$merge($states.input.o)",
        "$merge($states.input.missing)",
        "$merge([])",
        "$merge([1])",
        "$merge(1)",
        "$merge([$states.input.o, $states.result])",
        "$parse($states.input.json)",
        "$parse($states.input.bad_json)",
        "$parse(1)",
        "$parse(\"[1.0, 2, 1e2, 12345678901234567890]\")",
        "$parse(\"\\\"s\\\"\")",
        "$states.input.u",
        "$states.input & $states.input",
        "$states.input.c & $states.input.objs",
        "{\"all\": $states.input, \"k\": $states.input.objs.k, \"d\": $states.input.deep}",
        "[$states.input.deep, $states.input.objs, [$states.input.u]]",
        "$states.input.yes ? $states.input : $states.input.objs",
    ];

    /// The fast path must give exactly jsonata-core's result whenever it does not decline.
    #[test]
    fn fast_path_agrees_with_jsonata_core() {
        let input = json!({
            "a": 1, "b": 2.5, "s": "x", "t": "ü", "n": null, "yes": true, "no": false,
            "big": 1e300, "whole": 4.0, "arr": [1, 2, 3], "empty": [], "nested": [[1], [2]],
            "objs": [{"k": 1}, {"k": 2}], "o": {"p": {"q": "deep"}, "arr": [{"z": 1}]},
            "json": "{\"x\": 1.0, \"y\": [2.5, 3]}", "bad_json": "{x"
        });
        let vars: Map<String, Value> =
            serde_json::from_value(json!({"v": {"w": 7}, "list": [1, 2]})).unwrap();
        let context = MapItem(json!({"id": 5}));
        let mut env = Env::new(&input, &context, Some(&vars), 0, 0);
        let result = json!({"r": [1, {"x": 2}]});
        env.result = Some(&result);
        for text in EXPRESSIONS {
            let (fast, full) = both(text, &env);
            if let Some(fast) = fast {
                assert_eq!(
                    fast, full,
                    "{text}: the fast path differs from jsonata-core"
                );
            }
        }
        // The forms states are mostly made of must not decline.
        for text in [
            "$states.input.o.p.q",
            "$states.context.Map.Item.Value",
            "$merge([$states.input.o, {\"x\": 1}])",
            "$parse($states.input.json)",
            "{\"a\": $states.input.a & \"-\" & $states.input.s}",
        ] {
            assert!(
                both(text, &env).0.is_some(),
                "{text} declined the fast path"
            );
        }
    }

    /// A compiled size bound holds for what jsonata-core computes, on inputs made to grow:
    /// numbers JSONata rewrites longer, characters that need escaping inside `&`'s string,
    /// arrays it maps over and flattens.
    #[test]
    fn size_bounds_hold_for_jsonata_core_results() {
        let inputs = [
            json!({"a": 1, "s": "x", "arr": [1, 2, 3], "objs": [{"k": 1}, {"k": 2}], "yes": true}),
            json!({
                "u": 18446744073709551615u64, "c": "\u{1}\"\\", "yes": false,
                "objs": [{"k": [[9999999999999999999u64]]}, {"k": "\"\""}, {"k": {"k": 1e300}}],
                "deep": [[[1, [2]]], [[3]]], "a": 99999999999999999999.0, "s": "é\n"
            }),
            // 20 digits each, which come back as 22 (`1.8446744073709552e+19`).
            json!(vec![u64::MAX; 8]),
        ];
        let vars = Map::new();
        let context = MapItem(json!(null));
        let mut bounded = 0;
        for input in &inputs {
            let env = Env::new(input, &context, Some(&vars), 0, 0);
            let input_extent = size::extent(input);
            for text in EXPRESSIONS {
                let expr = Expr::parse(text).unwrap();
                let Some((constant, copies)) = expr.fast.as_ref().and_then(|f| f.size_bound())
                else {
                    continue;
                };
                bounded += 1;
                let Ok(Some(value)) = both(text, &env).1 else {
                    continue;
                };
                let (actual, bound) = (
                    size::extent(&value),
                    constant.with_input(copies, input_extent),
                );
                assert!(
                    actual.bytes <= bound.bytes && actual.depth <= bound.depth,
                    "{text} on {input}: {actual:?} exceeds its bound {bound:?}"
                );
            }
        }
        assert!(bounded > 40, "only {bounded} bounded");
    }

    /// Outputs that move parts of the input or the result ([`JTemplate::eval_taking`]),
    /// keep the input whole (`$merge` onto it) or hold values the input does not bound
    /// (`$parse`, `$states.result`): what [`Taking::finish`] makes is what the copying
    /// [`JTemplate::eval`] makes, and [`Taking::bound`] holds for it, on inputs and results
    /// whose numbers JSONata writes longer. An input already in JSONata's spelling, read
    /// without respelling ([`Env::input_spelled`]), gives what respelling it gives.
    #[test]
    fn moving_outputs_equal_copying_ones_within_their_bounds() {
        let inputs = [
            json!({"a": 1, "s": "x", "text": "{\"k\": [1, 2.0, 1e2]}", "arr": [1, 2.5]}),
            json!({"a": 18446744073709551615u64, "s": "\u{1}\"", "text": "[1e300, -0, 18446744073709551615]",
                   "arr": vec![u64::MAX; 8]}),
        ];
        let outputs = [
            json!({"a": "{% $states.input.a %}", "p": "{% $parse($states.input.text) %}", "c": 1.0}),
            json!({"arr": "{% $states.input.arr %}", "s": "{% $states.input.s & '!' %}"}),
            json!("{% $merge([$states.input, {'r': $states.result, 'p': $parse($states.input.text)}]) %}"),
            json!("{% $merge([$states.input, {'a': $states.input.arr}]) %}"),
            json!({"r": "{% $states.result %}", "again": "{% $states.result %}", "a": "{% $states.input.a %}"}),
            json!({"first": "{% $states.result.first %}", "n": "{% $count($states.result.rest) %}"}),
            json!({"r": "{% $states.result %}", "a": "{% $states.input.a %}", "b": "{% $states.input %}"}),
            json!("{% $merge([$states.input, {'r': $states.result}, {'r': 1}]) %}"),
            json!("{% $merge([$states.input, {'r': $states.result.rest, 'x': $states.result}]) %}"),
            json!("{% $merge([$states.input, {'r': $states.result.missing, 'a': 2}]) %}"),
        ];
        let results = [
            json!({"first": [{"index": 0, "value": 1e300}], "rest": {"index": 99999999999999999999.0}}),
            json!({"first": 18446744073709551615u64, "rest": [4.0, {"k": -0.0}]}),
        ];
        let (vars, context) = (Map::new(), MapItem(json!(null)));
        let mut bounded = 0;
        let spelled_inputs = inputs.clone().map(|mut input| {
            fast::respell(&mut input);
            input
        });
        let runs = inputs.iter().map(|input| (input, false));
        let runs = runs.chain(spelled_inputs.iter().map(|input| (input, true)));
        for ((input, spelled), result) in runs.zip(results.iter().cycle()) {
            for output in &outputs {
                let template = JTemplate::compile(output, "Output").unwrap();
                let mut env = Env::new(input, &context, Some(&vars), 0, 0);
                env.result = Some(result);
                let copied = template.eval(&env).unwrap();
                env.input_spelled = spelled;
                assert_eq!(template.eval(&env).unwrap(), copied, "{output} on {input}");
                let taking = template.eval_taking(&env).unwrap();
                let input_size = size::extent(input);
                // The result's size measured here, or known from where it came from.
                let bounds = [None, Some(size::extent(result))]
                    .map(|known| taking.bound(input_size, Some(result), known, usize::MAX / 4));
                let moved = taking.finish(&mut input.clone(), Some(result.clone()), spelled);
                assert_eq!(moved, copied, "{output} on {input}");
                for bound in bounds.into_iter().flatten() {
                    bounded += 1;
                    let actual = size::extent(&moved);
                    assert!(
                        actual.bytes <= bound.bytes && actual.depth <= bound.depth,
                        "{output} on {input}: {actual:?} exceeds its bound {bound:?}"
                    );
                }
            }
        }
        assert_eq!(bounded, 80, "every output here is bounded from its parts");
    }
}
