//! Payload templates: `Parameters`, `ResultSelector`, `ItemSelector`.
//!
//! A template is compiled once: constant subtrees stay plain JSON, every `"key.$"` field
//! becomes a pre-parsed path or intrinsic call, and what does not depend on the input (the
//! size bound, whether it can consume its input, each object's keys) is worked out then, not
//! per execution.

use super::error::{json_text, names, EvalError};
use super::intrinsics::{is_intrinsic, Intrinsic};
use super::path::{put, same_key, JsonPath, Root};
use super::scope::Scope;
use super::size::{self, Budget, Extent};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::convert::Infallible;

/// How many path and call fields a template builds before their values are measured as
/// they come (see [`Budget`]): each is at most about a payload, so up to this many copies
/// of one are held without measuring, and the common templates pay nothing.
const UNGUARDED_PARTS: usize = 16;

/// A compiled template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    root: Node,
    /// See [`bound_besides_calls`](Self::bound_besides_calls).
    bound_besides_calls: (Extent, usize),
    /// How many intrinsic calls the template makes.
    calls: usize,
    /// How many of them return values of no fixed bound (see [`Intrinsic::result_bound`]).
    unbounded_calls: usize,
    /// Whether it has more than [`UNGUARDED_PARTS`] path and call fields, so that
    /// [`eval`](Self::eval) charges their values to a [`Budget`] as it builds them.
    fans_out: bool,
    /// Whether every path reads the input (`$`), not the context object or a variable,
    /// whose size the input's does not bound.
    reads_only_input: bool,
    /// The path fields in template order, when the template is
    /// [`consumable`](Self::consumable).
    consumed_paths: Option<Vec<JsonPath>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// A subtree with no dynamic field: cloned as is.
    Const(Value),
    Object {
        fields: Vec<(String, Node)>,
        /// The output's keys, when the field names are distinct.
        keys: Option<OutputKeys>,
    },
    Array(Vec<Node>),
    /// `"field.$": "$.path"`; `field` keeps the `.$` suffix for error messages.
    Path {
        field: String,
        path: JsonPath,
    },
    /// `"field.$": "States.Fn(...)"`.
    Call {
        field: String,
        call: Box<Intrinsic>,
    },
}

impl Template {
    /// Compiles a template. Errors name the offending field; validation reports them earlier
    /// with a pointer, so here they only guard against unvalidated input.
    pub fn compile(v: &Value) -> Result<Template, String> {
        let root = Node::compile(v)?;
        let mut paths = Vec::new();
        let definite = root.collect_paths(&mut paths);
        let disjoint = paths.iter().enumerate().all(|(i, a)| {
            paths[i + 1..]
                .iter()
                .all(|b| !a.contains(b) && !b.contains(a))
        });
        let consumed_paths = (definite && disjoint).then(|| paths.into_iter().cloned().collect());
        let (skeleton, mut copies) = root.bound_besides_calls();
        if consumed_paths.is_some() {
            // Disjoint parts of the input: their texts are separate pieces of the input's
            // text, so together they are at most one input. (Counting one input per path let
            // a chain of Pass states double its bound at every state until it passed the
            // payload limit and every output was measured.)
            copies = copies.min(1);
        }
        Ok(Template {
            bound_besides_calls: (skeleton, copies),
            calls: root.calls(|_| true),
            unbounded_calls: root.calls(|c| c.result_bound().is_none()),
            fans_out: root.parts() > UNGUARDED_PARTS,
            reads_only_input: root.reads_only_input(),
            consumed_paths,
            root,
        })
    }

    /// A bound on the extent of this template's output as `(skeleton, per_input)`: see
    /// [`Extent::with_input`]. `None` when an intrinsic call whose result has no fixed
    /// bound, or a path outside the input, makes it unknowable without evaluating.
    pub fn size_bound(&self) -> Option<(Extent, usize)> {
        (self.unbounded_calls == 0 && self.reads_only_input).then_some(self.bound_besides_calls)
    }

    /// Like [`size_bound`](Self::size_bound), counting the results of intrinsic calls with
    /// no fixed bound as empty: add the measured extents of the calls' results, each at
    /// most the skeleton's depth down, to get a bound (the calls with a fixed bound are
    /// then counted twice, which only loosens it).
    pub fn bound_besides_calls(&self) -> (Extent, usize) {
        self.bound_besides_calls
    }

    /// Whether [`eval_consuming`](Self::eval_consuming) applies: every path field is a
    /// definite `$` path below the root, and no two of them overlap (so each value can be
    /// moved out of the input exactly once). Intrinsic calls are fine: they are evaluated
    /// first, against the untouched input.
    pub fn consumable(&self) -> bool {
        self.consumed_paths.is_some()
    }

    /// The results of this template's intrinsic calls, in template order: the first step of
    /// [`eval_consuming`](Self::eval_consuming).
    // Inlined: the `Vec` returned through memory was reloaded right after it was stored.
    #[inline]
    pub fn eval_calls(&self, scope: &dyn Scope) -> Result<Vec<Value>, EvalError> {
        let mut out = Vec::with_capacity(self.calls);
        // Most templates call nothing: skip the walk (~2 k of pass-chain's ~44 k
        // instructions per execution).
        if self.calls > 0 {
            self.root.eval_calls(scope, &mut out)?;
        }
        Ok(out)
    }

    /// Evaluates a [`consumable`](Self::consumable) template by moving values out of
    /// `input`, given the results of [`eval_calls`](Self::eval_calls), and replaces `input`
    /// with the output. Returns false, with `input` restored, when a path selects nothing
    /// (or the template is not consumable): the caller then runs [`eval`](Self::eval) for
    /// AWS's error.
    // `calls` is borrowed (and drained), not moved: a `Vec` just built, passed by value,
    // was copied through the stack in a load that stalled on its stores.
    pub fn eval_consuming(&self, input: &mut Value, calls: &mut Vec<Value>) -> bool {
        let Some(paths) = self.consumed_paths.as_ref() else {
            return false;
        };
        let mut taken = Vec::with_capacity(paths.len());
        for path in paths {
            // Taken straight from its node: an `Option<Value>` in between was copied at
            // another offset, and that load stalled on the stores just made.
            match path.node_mut(input) {
                Some(node) => taken.push(std::mem::take(node)),
                None => {
                    for (p, v) in paths.iter().zip(taken) {
                        let _ = p.assign(input, v);
                    }
                    return false;
                }
            }
        }
        let (mut taken, mut calls) = (taken.into_iter(), calls.drain(..));
        if let (
            Node::Object {
                fields,
                keys: Some(keys),
            },
            Value::Object(m),
        ) = (&self.root, &mut *input)
        {
            let kept = keys.kept_in(m);
            // At least half the output's keys are in the input, in the output's order (a
            // state that updates, drops or adds fields): the output is built in the input's
            // map, which keeps those keys and their hashes, instead of a new map with every
            // key copied while the input's is dropped. Every value the template reads has
            // been moved out already, so the input's other keys are dropped first.
            if kept * 2 >= fields.len() {
                if kept < m.len() {
                    keys.retain_kept(m);
                }
                let (kept, added) = fields.split_at(kept);
                for ((_, t), slot) in kept.iter().zip(m.values_mut()) {
                    t.build_into(&mut taken, &mut calls, slot);
                }
                for (k, t) in added {
                    m.insert(k.clone(), t.build(&mut taken, &mut calls));
                }
                return true;
            }
        }
        *input = self.root.build(&mut taken, &mut calls);
        true
    }

    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, EvalError> {
        let mut budget = self.fans_out.then(|| Budget::new(scope.payload_limit()));
        self.root.eval(scope, &mut budget)
    }
}

impl Node {
    fn compile(v: &Value) -> Result<Node, String> {
        if !has_dynamic_field(v) {
            return Ok(Node::Const(v.clone()));
        }
        match v {
            Value::Object(m) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, v) in m {
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err(format!("the value of field '{k}' must be a string"));
                        };
                        let t = if is_intrinsic(expr) {
                            Node::Call {
                                field: k.clone(),
                                call: Box::new(Intrinsic::parse(expr)?),
                            }
                        } else {
                            Node::Path {
                                field: k.clone(),
                                path: JsonPath::parse(expr).map_err(|e| e.to_string())?,
                            }
                        };
                        fields.push((name.to_string(), t));
                    } else {
                        fields.push((k.clone(), Node::compile(v)?));
                    }
                }
                // `"a"` and `"a.$"` in one template name one output field: then the
                // fields are inserted one by one, the last value winning.
                let keys = OutputKeys::new(fields.iter().map(|(k, _)| k.as_str()));
                Ok(Node::Object { fields, keys })
            }
            Value::Array(a) => Ok(Node::Array(
                a.iter().map(Node::compile).collect::<Result<_, _>>()?,
            )),
            _ => Ok(Node::Const(v.clone())),
        }
    }

    fn bound_besides_calls(&self) -> (Extent, usize) {
        match self {
            Node::Const(v) => (size::extent(v), 0),
            Node::Object { fields, .. } => size::object_bound(
                fields
                    .iter()
                    .map(|(key, t)| (key.as_str(), t.bound_besides_calls())),
            ),
            Node::Array(items) => size::array_bound(items.iter().map(Node::bound_besides_calls)),
            Node::Path { .. } => (Extent::default(), 1),
            Node::Call { call, .. } => (call.result_bound().unwrap_or_default(), 0),
        }
    }

    fn reads_only_input(&self) -> bool {
        match self {
            Node::Const(_) | Node::Call { .. } => true,
            Node::Object { fields, .. } => fields.iter().all(|(_, t)| t.reads_only_input()),
            Node::Array(a) => a.iter().all(Node::reads_only_input),
            Node::Path { path, .. } => path.root() == Root::Input,
        }
    }

    /// Path and call fields.
    fn parts(&self) -> usize {
        match self {
            Node::Const(_) => 0,
            Node::Object { fields, .. } => fields.iter().map(|(_, t)| t.parts()).sum(),
            Node::Array(a) => a.iter().map(Node::parts).sum(),
            Node::Path { .. } | Node::Call { .. } => 1,
        }
    }

    /// The intrinsic calls `counted` counts.
    fn calls(&self, counted: fn(&Intrinsic) -> bool) -> usize {
        match self {
            Node::Const(_) | Node::Path { .. } => 0,
            Node::Object { fields, .. } => fields.iter().map(|(_, t)| t.calls(counted)).sum(),
            Node::Array(a) => a.iter().map(|t| t.calls(counted)).sum(),
            Node::Call { call, .. } => usize::from(counted(call)),
        }
    }

    /// Pushes the path fields in template order; false if one is not a definite `$` path
    /// below the root, or counts an index from the end (`$.l[-1]` and `$.l[2]` may be one
    /// item: taking it twice left `null` in the second field).
    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a JsonPath>) -> bool {
        match self {
            Node::Const(_) | Node::Call { .. } => true,
            Node::Object { fields, .. } => fields.iter().all(|(_, t)| t.collect_paths(out)),
            Node::Array(a) => a.iter().all(|t| t.collect_paths(out)),
            Node::Path { path, .. } => {
                out.push(path);
                path.root() == Root::Input
                    && path.is_definite()
                    && !path.is_root()
                    && !path.indexes_from_end()
            }
        }
    }

    fn eval_calls(&self, scope: &dyn Scope, out: &mut Vec<Value>) -> Result<(), EvalError> {
        match self {
            Node::Const(_) | Node::Path { .. } => Ok(()),
            Node::Object { fields, .. } => fields
                .iter()
                .try_for_each(|(_, t)| t.eval_calls(scope, out)),
            Node::Array(a) => a.iter().try_for_each(|t| t.eval_calls(scope, out)),
            Node::Call { call, .. } => {
                out.push(call.eval(scope)?);
                Ok(())
            }
        }
    }

    /// [`build`](Self::build) into `slot`: a moved value goes straight there rather than
    /// through the return value, whose copy stalled on the wide load of a value just stored.
    #[inline]
    fn build_into(
        &self,
        taken: &mut std::vec::IntoIter<Value>,
        calls: &mut std::vec::Drain<'_, Value>,
        slot: &mut Value,
    ) {
        match self {
            Node::Path { .. } => put(slot, taken.next().unwrap_or_default()),
            Node::Call { .. } => put(slot, calls.next().unwrap_or_default()),
            _ => put(slot, self.build(taken, calls)),
        }
    }

    fn build(
        &self,
        taken: &mut std::vec::IntoIter<Value>,
        calls: &mut std::vec::Drain<'_, Value>,
    ) -> Value {
        match self {
            Node::Const(v) => v.clone(),
            Node::Object { fields, keys } => {
                let Ok(object) = object::<Infallible>(fields, keys, |t, slot| {
                    t.build_into(taken, calls, slot);
                    Ok(())
                });
                object
            }
            Node::Array(items) => {
                Value::Array(items.iter().map(|t| t.build(taken, calls)).collect())
            }
            Node::Path { .. } => taken.next().unwrap_or_default(),
            Node::Call { .. } => calls.next().unwrap_or_default(),
        }
    }

    fn eval(&self, scope: &dyn Scope, budget: &mut Option<Budget>) -> Result<Value, EvalError> {
        let (field, v) = match self {
            Node::Const(v) => return Ok(v.clone()),
            Node::Object { fields, keys } => {
                return object(fields, keys, |t, slot| t.eval_into(scope, budget, slot))
            }
            Node::Array(items) => {
                return Ok(Value::Array(
                    items
                        .iter()
                        .map(|t| t.eval(scope, budget))
                        .collect::<Result<_, _>>()?,
                ))
            }
            Node::Path { field, path } => match scope.select(path) {
                Some(v) => (field, v.into_owned()),
                None => return Err(missing_field(field, path, scope.input())),
            },
            Node::Call { field, call } => (field, call.eval(scope)?),
        };
        charge(budget, field, &v, scope)?;
        Ok(v)
    }

    /// [`eval`](Self::eval) into `slot`: a path's value is copied straight there rather than
    /// returned through the evaluation, which would copy it again.
    fn eval_into(
        &self,
        scope: &dyn Scope,
        budget: &mut Option<Budget>,
        slot: &mut Value,
    ) -> Result<(), EvalError> {
        let Node::Path { field, path } = self else {
            *slot = self.eval(scope, budget)?;
            return Ok(());
        };
        match scope.select(path) {
            Some(Cow::Borrowed(v)) => slot.clone_from(v),
            Some(Cow::Owned(v)) => *slot = v,
            None => return Err(missing_field(field, path, scope.input())),
        }
        charge(budget, field, slot, scope)
    }
}

/// Charges field `field`'s value `v` to the template's budget, if it keeps one.
fn charge(
    budget: &mut Option<Budget>,
    field: &str,
    v: &Value,
    scope: &dyn Scope,
) -> Result<(), EvalError> {
    if budget.as_mut().is_some_and(|b| !b.charge(v)) {
        return Err(EvalError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!(
                "The values of the field '{field}' and the fields before it exceed the maximum of {} bytes.",
                scope.payload_limit()
            ),
        ));
    }
    Ok(())
}

/// The keys of an object a template builds, made once with every value null. Cloning it
/// copies the keys with their hashes: SipHash over every key of every output object was
/// ~10% of an execution's instructions. Each value is then written in place, in key order.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputKeys(Map<String, Value>);

impl OutputKeys {
    /// `None` if a name repeats (the object then has fewer keys than fields).
    pub fn new<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Option<OutputKeys> {
        let count = names.len();
        let keys: Map<String, Value> = names.map(|k| (k.to_owned(), Value::Null)).collect();
        (keys.len() == count).then_some(OutputKeys(keys))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The object with every value `null`, to be filled in key order.
    pub fn skeleton(&self) -> Map<String, Value> {
        self.0.clone()
    }

    /// How many of these keys, from the first, are `object`'s keys in the same order, not
    /// necessarily side by side: the keys [`retain_kept`](Self::retain_kept) keeps.
    pub fn kept_in(&self, object: &Map<String, Value>) -> usize {
        let mut wanted = self.0.keys().peekable();
        let mut kept = 0;
        for key in object.keys() {
            match wanted.peek() {
                None => break,
                Some(w) if same_key(w, key) => {
                    wanted.next();
                    kept += 1;
                }
                Some(_) => {}
            }
        }
        kept
    }

    /// Drops `object`'s keys other than the [`kept_in`](Self::kept_in) ones, in order.
    pub fn retain_kept(&self, object: &mut Map<String, Value>) {
        let mut wanted = self.0.keys();
        let mut next = wanted.next();
        object.retain(|key, _| {
            let keep = next.is_some_and(|w| same_key(w, key));
            if keep {
                next = wanted.next();
            }
            keep
        });
    }
}

/// An output object: each field's value written in field order by `value`, into a copy of
/// `keys` when there is one.
fn object<E>(
    fields: &[(String, Node)],
    keys: &Option<OutputKeys>,
    mut value: impl FnMut(&Node, &mut Value) -> Result<(), E>,
) -> Result<Value, E> {
    let out = match keys {
        Some(keys) => {
            let mut out = keys.skeleton();
            for ((_, t), slot) in fields.iter().zip(out.values_mut()) {
                value(t, slot)?;
            }
            out
        }
        None => {
            let mut out = Map::with_capacity(fields.len());
            for (k, t) in fields {
                let mut v = Value::Null;
                value(t, &mut v)?;
                out.insert(k.clone(), v);
            }
            out
        }
    };
    Ok(Value::Object(out))
}

fn has_dynamic_field(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.ends_with(".$") || has_dynamic_field(v)),
        Value::Array(a) => a.iter().any(has_dynamic_field),
        _ => false,
    }
}

fn missing_field(field: &str, path: &JsonPath, input: &Value) -> EvalError {
    EvalError::runtime(format!(
        "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
        json_text(input)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::scope::DocScope;
    use serde_json::json;

    #[test]
    fn disjoint_paths_are_bounded_by_one_input_overlapping_ones_by_a_copy_each() {
        let copies = |t: Value| Template::compile(&t).unwrap().size_bound().unwrap().1;
        let disjoint = json!({"a.$": "$.a", "b.$": "$.b", "n": {"c.$": "$.c[0]"}, "k": 1});
        assert_eq!(copies(disjoint), 1);
        assert_eq!(copies(json!({"a.$": "$.a", "b.$": "$.a.b"})), 2);
        assert_eq!(copies(json!({"a.$": "$.a", "b.$": "$.a"})), 2);
        assert_eq!(copies(json!({"x.$": "$.l[-1]", "y.$": "$.l[2]"})), 2);
        assert_eq!(copies(json!({"all.$": "$", "a.$": "$.a"})), 2);
        assert_eq!(copies(json!({"k": 1})), 0);
    }

    #[test]
    fn many_copies_of_the_input_stop_at_the_first_field_past_the_payload_limit() {
        let fields: Map<String, Value> =
            (0..1000).map(|i| (format!("f{i}.$"), json!("$"))).collect();
        let t = Template::compile(&Value::Object(fields)).unwrap();
        let input = json!({"s": "x".repeat(100_000)});
        let context = json!({});
        let scope = DocScope {
            input: &input,
            context: &context,
        };
        let e = t.eval(&scope).unwrap_err();
        assert_eq!(e.error, names::DATA_LIMIT_EXCEEDED);
        // Two copies of 100 KB fit in 256 KiB, the third does not.
        assert!(e.detail.contains("'f2.$'"), "{}", e.detail);
        // Few fields are not measured as they are built: the state's check catches them.
        let few: Map<String, Value> = (0..3).map(|i| (format!("f{i}.$"), json!("$"))).collect();
        assert!(Template::compile(&Value::Object(few))
            .unwrap()
            .eval(&scope)
            .is_ok());
    }

    #[test]
    fn dynamic_fields_are_resolved_and_constants_kept() {
        let t =
            Template::compile(&json!({"a.$": "$.x", "b": {"c.$": "$$.Name"}, "d": [1]})).unwrap();
        let input = json!({"x": 7});
        let ctx = json!({"Name": "n"});
        let scope = DocScope {
            input: &input,
            context: &ctx,
        };
        assert_eq!(
            t.eval(&scope).unwrap(),
            json!({"a": 7, "b": {"c": "n"}, "d": [1]})
        );
    }

    #[test]
    fn output_keys_keep_the_template_order_consumed_or_not() {
        let t = Template::compile(&json!({"z.$": "$.x", "a": 1, "m.$": "$.y"})).unwrap();
        assert!(t.consumable());
        let input = json!({"x": 7, "y": [2]});
        let ctx = json!({});
        let scope = DocScope {
            input: &input,
            context: &ctx,
        };
        let expected = r#"{"z":7,"a":1,"m":[2]}"#;
        assert_eq!(t.eval(&scope).unwrap().to_string(), expected);
        let mut calls = t.eval_calls(&scope).unwrap();
        let mut owned = input.clone();
        assert!(t.eval_consuming(&mut owned, &mut calls));
        assert_eq!(owned.to_string(), expected);
    }

    #[test]
    fn outputs_built_in_their_inputs_map_equal_copied_ones() {
        let cases = [
            // The input's keys, values swapped and replaced.
            (
                json!({"a.$": "$.b", "b.$": "$.a", "c": 1}),
                json!({"a": 1, "b": [2], "c": 3}),
            ),
            // The input's keys and two more after them, one from a call.
            (
                json!({"a.$": "$.a.x", "b": {"k.$": "$.b"}, "n.$": "$.a.y", "m.$": "States.MathAdd($.a.y, 1)"}),
                json!({"a": {"x": 1, "y": 2}, "b": "t"}),
            ),
            // Some of the input's keys, in order, and more after them: the others dropped.
            (
                json!({"b.$": "$.a", "c": 1, "a.$": "$.c.d"}),
                json!({"a": 1, "b": 2, "x": {"y": 3}, "c": {"d": 4}}),
            ),
            (json!({"a.$": "$.b"}), json!({"a": 1, "b": 2})),
            (json!({"b.$": "$.a"}), json!({"a": 1, "b": [2], "c": 3})),
            // The same keys in another order; more new keys than kept ones: a new map.
            (json!({"b.$": "$.a", "a.$": "$.b"}), json!({"a": 1, "b": 2})),
            (
                json!({"x.$": "$.a", "b": 0, "c": 1}),
                json!({"a": 1, "b": 2}),
            ),
        ];
        for (template, input) in cases {
            let t = Template::compile(&template).unwrap();
            assert!(t.consumable(), "{template}");
            let ctx = json!({});
            let scope = DocScope {
                input: &input,
                context: &ctx,
            };
            let copied = t
                .eval(&scope)
                .unwrap_or_else(|e| panic!("{template}: {e:?}"));
            let mut calls = t.eval_calls(&scope).unwrap();
            let mut owned = input.clone();
            assert!(t.eval_consuming(&mut owned, &mut calls));
            assert_eq!(
                owned.to_string(),
                copied.to_string(),
                "{template} on {input}"
            );
        }
    }

    #[test]
    fn a_field_named_twice_keeps_its_first_place_and_last_value() {
        let t = Template::compile(&json!({"a": 1, "b": 2, "a.$": "$.x"})).unwrap();
        let input = json!({"x": 7});
        let ctx = json!({});
        let scope = DocScope {
            input: &input,
            context: &ctx,
        };
        assert_eq!(t.eval(&scope).unwrap().to_string(), r#"{"a":7,"b":2}"#);
    }

    #[test]
    fn a_missing_path_names_the_field_and_the_input() {
        let t = Template::compile(&json!({"value.$": "$.nope"})).unwrap();
        let input = json!({"x": 1});
        let ctx = json!({});
        let err = t
            .eval(&DocScope {
                input: &input,
                context: &ctx,
            })
            .unwrap_err();
        assert_eq!(
            err.detail,
            "The JSONPath '$.nope' specified for the field 'value.$' could not be found in the input '{\"x\":1}'"
        );
    }
}
