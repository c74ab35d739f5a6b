//! A fast path for the JSONata that states are mostly made of: paths into `$states` and
//! variables, literals, comparisons, arithmetic, `&`, `and`/`or`, `? :`, object and array
//! constructors and a few functions (`$count`, `$exists`, `$not`, `$merge`, `$parse`), evaluated on serde values without converting them.
//!
//! Why: jsonata-core works on its own `Rc` values, so every evaluation would convert the
//! state's input and set up an evaluator. The fast path gives exactly jsonata-core's result
//! or *declines* (`None`), and the caller then runs jsonata-core: on arrays met mid-path
//! (JSONata maps over them), mixed or undefined operands, non-integral numbers where JSONata
//! formats them, and anything it does not know. A differential test holds the two together.

use super::convert::number;
use super::Env;
use crate::asl::path::JsonPath;
use crate::asl::size::{self, Extent, LinearBound};
use jsonata_core::ast::{AstNode, BinaryOp, UnaryOp};
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug)]
pub struct Fast(Node);

#[derive(Debug)]
enum Root {
    Input,
    Result,
    ErrorOutput,
    /// `$states.context.` and the first name (three for `Map.Item.Value`/`.Index`), as a
    /// JSONPath the context object answers without being built whole.
    Context(Box<JsonPath>),
    Variable(Box<str>),
}

#[derive(Debug)]
enum Node {
    Literal(Value),
    Path(Root, Box<[String]>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    Negate(Box<Node>),
    Conditional(Box<Node>, Box<Node>, Option<Box<Node>>),
    Object(Vec<(String, Node)>),
    /// Items of an array constructor; `true` marks items that are themselves constructors
    /// (kept as arrays, where other array values would be spliced in: declined).
    Array(Vec<(Node, bool)>),
    Count(Box<Node>),
    Exists(Box<Node>),
    Not(Box<Node>),
    Merge(Box<Node>),
    Parse(Box<Node>),
}

/// `None`: declined. `Some(None)`: JSONata's `undefined`.
type Out<'a> = Option<Option<Cow<'a, Value>>>;

impl Fast {
    pub fn compile(ast: &AstNode) -> Option<Fast> {
        node(ast).map(Fast)
    }

    /// A bound on the extent of the expression's value over `$states.input`'s (see
    /// [`size::LinearBound`]), true of JSONata's semantics whichever evaluator runs it;
    /// `None` when the input does not bound it (it reads the result, a variable or the
    /// context object, or parses text).
    pub fn size_bound(&self) -> Option<LinearBound> {
        bound(&self.0)
    }

    /// Where the expression's value could be moved from, when it is nothing but a path
    /// into `$states.input` below its root (`$states.input.a.b`) or into `$states.result`
    /// (`$states.result` itself included).
    pub fn plain_path(&self) -> Option<(Owner, &[String])> {
        match &self.0 {
            Node::Path(Root::Input, names) if !names.is_empty() => Some((Owner::Input, names)),
            Node::Path(Root::Result, names) => Some((Owner::Result, names)),
            _ => None,
        }
    }

    /// For `$merge([$states.input, …])`, JSONata's way to add a result to the input: the
    /// fields the other items add, evaluated as the fast path would; the output is then the
    /// input with them set ([`merge_into`]). `None` when the expression is not of that form
    /// or the fast path would decline it.
    ///
    /// One field of an object constructor that is a path into `$states.result` (`{'r':
    /// $states.result}`) is left for the caller to move out of the result instead of
    /// copying it ([`MergeOnto::from_result`]).
    pub fn merge_onto_input<'n>(&'n self, env: &Env) -> Option<MergeOnto<'n>> {
        let Node::Merge(list) = &self.0 else {
            return None;
        };
        let Node::Array(items) = &**list else {
            return None;
        };
        let ((first, _), rest) = items.split_first()?;
        if !matches!(first, Node::Path(Root::Input, names) if names.is_empty())
            || !env.input.is_object()
        {
            return None;
        }
        let mut merge = MergeOnto {
            fields: Map::new(),
            from_result: None,
        };
        for (item, constructor) in rest {
            let object = match item {
                Node::Object(entries) => merge.object(entries, env)?,
                _ => match eval(item, env)? {
                    None => continue,
                    Some(v) if v.is_array() && !constructor => return None,
                    Some(v) => match v.into_owned() {
                        Value::Object(m) => {
                            m.keys().for_each(|k| merge.replaced(k));
                            m
                        }
                        _ => return None,
                    },
                },
            };
            merge.fields.extend(object);
        }
        Some(merge)
    }

    /// What [`eval`](Self::eval) gives, before JSONata's spelling of numbers ([`respell`]),
    /// when the expression is a plain path that selects a value; `None` otherwise (the
    /// caller then evaluates).
    #[inline]
    pub fn select<'a>(&'a self, env: &'a Env) -> Option<Cow<'a, Value>> {
        let Node::Path(..) = &self.0 else {
            return None;
        };
        // What [`eval`](Self::eval) declines is left to it.
        let v = eval(&self.0, env)??;
        match &*v {
            Value::Array(a) if a.is_empty() || a.iter().any(Value::is_array) => None,
            _ => Some(v),
        }
    }

    #[inline]
    pub fn eval<'a>(&'a self, env: &'a Env) -> Out<'a> {
        let out = eval(&self.0, env)?;
        match out.as_deref() {
            // An empty array or arrays of arrays: JSONata's sequence rules decide; decline.
            Some(Value::Array(a)) if a.is_empty() || a.iter().any(Value::is_array) => None,
            _ if self.reads_spelled(env) => Some(out),
            _ => Some(out.map(as_jsonata_numbers)),
        }
    }

    /// The expression's value when the fast path finds a boolean (a `Condition`), read
    /// where it was made rather than returned as a JSON value through the layers above;
    /// `None` otherwise (the caller then evaluates).
    #[inline]
    pub fn test(&self, env: &Env) -> Option<bool> {
        match eval(&self.0, env)?.as_deref()? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether what [`select`](Self::select) gives is already in JSONata's spelling of
    /// numbers: a path into an input that is ([`Env::input_spelled`]).
    #[inline]
    pub fn reads_spelled(&self, env: &Env) -> bool {
        env.input_spelled && matches!(self.0, Node::Path(Root::Input, _))
    }
}

/// What a value moved rather than copied is moved out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `$states.input`
    Input,
    /// `$states.result`
    Result,
}

/// See [`Fast::merge_onto_input`].
pub struct MergeOnto<'n> {
    /// The fields set on the input, in order.
    pub fields: Map<String, Value>,
    /// A field of `fields` holding a placeholder, and the path into `$states.result` whose
    /// value is to be moved there.
    pub from_result: Option<(String, &'n [String])>,
}

impl<'n> MergeOnto<'n> {
    /// An object constructor's fields, as [`eval`] makes them, but for the first field that
    /// is a path into `$states.result` (one that selects something), left as a placeholder.
    fn object(&mut self, entries: &'n [(String, Node)], env: &Env) -> Option<Map<String, Value>> {
        let mut m = Map::with_capacity(entries.len());
        for (k, v) in entries {
            if let Node::Path(Root::Result, names) = v {
                if self.from_result.is_none() && env.result.and_then(|r| part(r, names)).is_some() {
                    m.insert(k.clone(), Value::Null);
                    self.from_result = Some((k.clone(), names));
                    continue;
                }
            }
            if let Some(v) = eval(v, env)? {
                self.replaced(k);
                m.insert(k.clone(), v.into_owned());
            }
        }
        Some(m)
    }

    /// Field `key` is set again: the value left to move would be replaced.
    fn replaced(&mut self, key: &str) {
        if self.from_result.as_ref().is_some_and(|(k, _)| k == key) {
            self.from_result = None;
        }
    }
}

/// See [`Fast::size_bound`]. A path into the input counts as two inputs: what it selects
/// is a part of the input, or disjoint parts gathered into a new array when it maps over
/// arrays, but JSONata's numbers are doubles (`18446744073709551615` comes back as
/// `1.8446744073709552e+19`): two bytes longer at most, for a number of at least 17 digits.
/// `&` joins the texts of its operands into a string, whose quotes and backslashes are then
/// escaped: at most twice their bytes.
fn bound(n: &Node) -> Option<LinearBound> {
    use BinaryOp::*;
    let number = (Extent::new(size::MAX_FLOAT_LEN, 0), 0);
    let boolean = (Extent::new(5, 0), 0);
    Some(match n {
        Node::Literal(v) => (size::extent(v), 0),
        Node::Path(Root::Input, _) => (Extent::new(2, 1), 2),
        Node::Path(..) | Node::Parse(_) => return None,
        Node::Binary(Concatenate, l, r) => {
            let ((cl, kl), (cr, kr)) = (bound(l)?, bound(r)?);
            (Extent::new(2 * (cl.bytes + cr.bytes) + 2, 0), 2 * (kl + kr))
        }
        Node::Binary(Add | Subtract | Multiply | Divide | Modulo, ..) | Node::Negate(_) => number,
        Node::Binary(..) | Node::Exists(_) | Node::Not(_) => boolean,
        Node::Count(_) => number,
        Node::Conditional(_, then, otherwise) => {
            let (ct, kt) = bound(then)?;
            match otherwise {
                Some(e) => {
                    let (ce, ke) = bound(e)?;
                    (ct.beside(ce), kt + ke)
                }
                None => (ct, kt),
            }
        }
        Node::Object(fields) => size::object_bound(
            fields
                .iter()
                .map(|(k, v)| Some((k.as_str(), bound(v)?)))
                .collect::<Option<Vec<_>>>()?,
        ),
        Node::Array(items) => size::array_bound(
            items
                .iter()
                .map(|(item, _)| bound(item))
                .collect::<Option<Vec<_>>>()?,
        ),
        // A merge of objects is no larger than the objects.
        Node::Merge(x) => bound(x)?,
    })
}

/// What the fast path gives for the input path `names` (see [`Fast::input_path`]), when it
/// is the selected value itself but for JSONata's spelling of numbers: a value reached
/// through objects only, not an empty array or one holding arrays (JSONata's sequence rules).
pub fn select_plain<'v>(input: &'v Value, names: &[String]) -> Option<&'v Value> {
    match walk(input, names)?? {
        Value::Array(a) if a.is_empty() || a.iter().any(Value::is_array) => None,
        v => Some(v),
    }
}

/// Moves the value [`select_plain`] found out of `input` (leaving `null`) into `slot` (a
/// `null`), as the fast path would have given it: swapped there rather than returned, which
/// would copy it again. `spelled`: `input` is in JSONata's spelling of numbers already.
pub fn take_plain_into(
    input: &mut Value,
    names: &[String],
    slot: &mut Value,
    spelled: bool,
) -> Option<()> {
    std::mem::swap(at(input, names)?, slot);
    if !spelled {
        respell(slot);
    }
    Some(())
}

/// Moves the value at `names`, reached through objects only, out of `v` (leaving `null`).
fn take(v: &mut Value, names: &[String]) -> Option<Value> {
    at(v, names).map(std::mem::take)
}

/// The value at `names`, reached through objects only: what a moved path moves.
pub fn part<'v>(v: &'v Value, names: &[String]) -> Option<&'v Value> {
    walk(v, names).flatten()
}

/// The value at `names`, reached through objects only.
fn at<'v>(mut v: &'v mut Value, names: &[String]) -> Option<&'v mut Value> {
    for name in names {
        v = crate::asl::path::field_mut(v.as_object_mut()?, name)?;
    }
    Some(v)
}

/// `input` (an object) with `merge`'s fields set, as `$merge([$states.input, …])` gives it:
/// the input's fields in their order, then the new ones; the field left to move out of
/// `result` gets its value from there. `input_spelled`: the input is in JSONata's spelling
/// of numbers already (only the new fields are then respelled).
pub fn merge_into(
    input: Value,
    mut merge: MergeOnto,
    result: Option<&mut Value>,
    input_spelled: bool,
) -> Value {
    let mut merged = match input {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if !input_spelled {
        merged.values_mut().for_each(respell);
    }
    merge.fields.values_mut().for_each(respell);
    merged.extend(merge.fields);
    if let Some((key, names)) = merge.from_result {
        let mut moved = result
            .and_then(|r| take(r, names))
            .expect("a path the first step selected");
        respell(&mut moved);
        let slot =
            crate::asl::path::field_mut(&mut merged, &key).expect("the placeholder merged in");
        *slot = moved;
    }
    Value::Object(merged)
}

fn node(ast: &AstNode) -> Option<Node> {
    Some(match ast {
        AstNode::String(s) => Node::Literal(Value::String(s.clone())),
        AstNode::Number(n) => Node::Literal(number(*n)?),
        AstNode::Boolean(b) => Node::Literal(Value::Bool(*b)),
        AstNode::Null => Node::Literal(Value::Null),
        AstNode::Variable(name) => path(name, &[])?,
        AstNode::Path { steps } => {
            let (first, rest) = steps.split_first()?;
            let AstNode::Variable(name) = &first.node else {
                return None;
            };
            let plain = |s: &jsonata_core::ast::PathStep| {
                s.stages.is_empty()
                    && s.focus.is_none()
                    && s.index_var.is_none()
                    && s.ancestor_label.is_none()
                    && !s.is_tuple
                    && !s.inner_tuple
            };
            if !steps.iter().all(plain) {
                return None;
            }
            let names = rest
                .iter()
                .map(|s| match &s.node {
                    AstNode::Name(n) => Some(n.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            path(name, &names)?
        }
        AstNode::Binary { op, lhs, rhs } => {
            use BinaryOp::*;
            match op {
                Add | Subtract | Multiply | Divide | Modulo | Equal | NotEqual | LessThan
                | LessThanOrEqual | GreaterThan | GreaterThanOrEqual | And | Or | Concatenate => {
                    Node::Binary(*op, Box::new(node(lhs)?), Box::new(node(rhs)?))
                }
                _ => return None,
            }
        }
        AstNode::Unary {
            op: UnaryOp::Negate,
            operand,
        } => Node::Negate(Box::new(node(operand)?)),
        AstNode::Conditional {
            condition,
            then_branch,
            else_branch,
        } => Node::Conditional(
            Box::new(node(condition)?),
            Box::new(node(then_branch)?),
            match else_branch {
                Some(e) => Some(Box::new(node(e)?)),
                None => None,
            },
        ),
        AstNode::Object(pairs) => {
            let mut fields: Vec<(String, Node)> = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                let AstNode::String(k) = k else { return None };
                if fields.iter().any(|(seen, _)| seen == k) {
                    return None;
                }
                fields.push((k.clone(), node(v)?));
            }
            Node::Object(fields)
        }
        AstNode::Array(items) => Node::Array(
            items
                .iter()
                .map(|i| Some((node(i)?, matches!(i, AstNode::Array(_)))))
                .collect::<Option<Vec<_>>>()?,
        ),
        AstNode::Block(items) if items.len() == 1 => node(&items[0])?,
        AstNode::Function { name, args, .. } if args.len() == 1 => {
            let arg = Box::new(node(&args[0])?);
            match name.as_str() {
                "count" => Node::Count(arg),
                "exists" => Node::Exists(arg),
                "not" => Node::Not(arg),
                "merge" => Node::Merge(arg),
                "parse" => Node::Parse(arg),
                _ => return None,
            }
        }
        _ => return None,
    })
}

fn path(variable: &str, names: &[String]) -> Option<Node> {
    if variable != "states" {
        return Some(Node::Path(
            Root::Variable(variable.into()),
            names.to_vec().into_boxed_slice(),
        ));
    }
    let (first, rest) = names.split_first()?;
    let root = match first.as_str() {
        "input" => Root::Input,
        "result" => Root::Result,
        "errorOutput" => Root::ErrorOutput,
        "context" => return context_path(rest),
        _ => return None,
    };
    Some(Node::Path(root, rest.to_vec().into_boxed_slice()))
}

fn context_path(names: &[String]) -> Option<Node> {
    let prefix = match names {
        [map, item, field, ..]
            if map == "Map" && item == "Item" && (field == "Value" || field == "Index") =>
        {
            3
        }
        // The whole context object: building it is the slow path's job.
        [] => return None,
        _ => 1,
    };
    let (prefix, rest) = names.split_at(prefix);
    if !prefix
        .iter()
        .all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return None;
    }
    let path = JsonPath::parse(&format!("$$.{}", prefix.join("."))).ok()?;
    Some(Node::Path(
        Root::Context(Box::new(path)),
        rest.to_vec().into_boxed_slice(),
    ))
}

fn eval<'a>(n: &'a Node, env: &'a Env) -> Out<'a> {
    match n {
        // Borrowed: a comparison with a string literal copied the string every time.
        Node::Literal(v) => Some(Some(Cow::Borrowed(v))),
        Node::Path(root, names) => {
            let start: Cow<'a, Value> = match root {
                Root::Input => Cow::Borrowed(env.input),
                Root::Result => Cow::Borrowed(env.result?),
                Root::ErrorOutput => Cow::Borrowed(env.error_output?),
                Root::Context(path) => match env.context.select(path) {
                    Some(v) => v,
                    None => return Some(None),
                },
                Root::Variable(name) => match env.variable(name) {
                    Some(v) => Cow::Borrowed(v),
                    // Not a variable: a function name, or a `:=` binding: decline.
                    None => return None,
                },
            };
            match start {
                Cow::Borrowed(v) => Some(walk(v, names)?.map(Cow::Borrowed)),
                Cow::Owned(v) if names.is_empty() => Some(Some(Cow::Owned(v))),
                Cow::Owned(v) => Some(walk(&v, names)?.map(|x| Cow::Owned(x.clone()))),
            }
        }
        Node::Binary(op, l, r) => {
            // Read in place: moving an operand out (`?`) copied it with wide loads that
            // stalled on the narrow stores that had just written it.
            let l = eval(l, env);
            let l = l.as_ref()?;
            let r = eval(r, env);
            binary(*op, l.as_deref(), r.as_ref()?.as_deref())
        }
        Node::Negate(x) => match eval(x, env)?.as_deref()? {
            Value::Number(n) => Some(Some(Cow::Owned(number(-n.as_f64()?)?))),
            _ => None,
        },
        Node::Conditional(c, t, e) => match eval(c, env)?.as_deref() {
            Some(Value::Bool(true)) => eval(t, env),
            Some(Value::Bool(false)) => match e {
                Some(e) => eval(e, env),
                None => Some(None),
            },
            _ => None,
        },
        Node::Object(fields) => {
            let mut m = Map::with_capacity(fields.len());
            for (k, v) in fields {
                if let Some(v) = eval(v, env)? {
                    m.insert(k.clone(), v.into_owned());
                }
            }
            Some(Some(Cow::Owned(Value::Object(m))))
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (item, constructor) in items {
                match eval(item, env)? {
                    Some(v) if v.is_array() && !constructor => return None,
                    Some(v) => out.push(v.into_owned()),
                    None => {}
                }
            }
            Some(Some(Cow::Owned(Value::Array(out))))
        }
        Node::Count(x) => {
            let n = match eval(x, env)?.as_deref() {
                None => 0,
                Some(Value::Array(a)) => a.len(),
                Some(_) => 1,
            };
            Some(Some(Cow::Owned(Value::from(n))))
        }
        Node::Exists(x) => Some(Some(Cow::Owned(Value::Bool(eval(x, env)?.is_some())))),
        Node::Not(x) => match eval(x, env)?.as_deref() {
            Some(Value::Bool(b)) => Some(Some(Cow::Owned(Value::Bool(!b)))),
            _ => None,
        },
        Node::Merge(x) => {
            let objects = match eval(x, env)? {
                None => return Some(None),
                Some(Cow::Owned(Value::Array(a))) => a,
                Some(Cow::Borrowed(Value::Array(a))) => a.clone(),
                Some(v @ Cow::Owned(Value::Object(_)) | v @ Cow::Borrowed(Value::Object(_))) => {
                    vec![v.into_owned()]
                }
                // Not objects: the signature error is jsonata-core's to raise.
                Some(_) => return None,
            };
            let mut merged = Map::new();
            for object in objects {
                let Value::Object(fields) = object else {
                    return None;
                };
                merged.extend(fields);
            }
            Some(Some(Cow::Owned(Value::Object(merged))))
        }
        Node::Parse(x) => match eval(x, env)?.as_deref() {
            Some(Value::String(text)) => {
                // Invalid JSON: the error (and its text) is the slow path's.
                Some(Some(Cow::Owned(crate::asl::json::from_str(text).ok()?)))
            }
            _ => None,
        },
    }
}

/// JSONata's numbers are doubles, printed as [`number`] does: `4.0` from the input comes
/// out as `4`, as it does from the slow path (and from AWS). Rewrites `v`'s numbers in
/// place: one walk, no copy.
pub fn respell(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(x) = respelled(n) {
                *v = x;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(respell),
        Value::Object(m) => m.values_mut().for_each(respell),
        _ => {}
    }
}

/// [`respell`] for a value that may be borrowed: one that needs no change stays borrowed.
fn as_jsonata_numbers(v: Cow<'_, Value>) -> Cow<'_, Value> {
    match v {
        Cow::Borrowed(b) if !needs_respelling(b) => Cow::Borrowed(b),
        v => {
            let mut owned = v.into_owned();
            respell(&mut owned);
            Cow::Owned(owned)
        }
    }
}

pub fn needs_respelling(v: &Value) -> bool {
    match v {
        Value::Number(n) => misspelled(n),
        Value::Array(a) => a.iter().any(needs_respelling),
        Value::Object(m) => m.values().any(needs_respelling),
        _ => false,
    }
}

/// Whether [`number`] spells `n` differently: an integral double within 2^53 (`4.0`), or an
/// integer beyond it. Checked without building the new spelling.
fn misspelled(n: &serde_json::Number) -> bool {
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64() {
        return u >= EXACT;
    }
    if let Some(i) = n.as_i64() {
        return i.unsigned_abs() >= EXACT;
    }
    // Integral within 2^53: the cast is exact there (and cheaper than `fract`).
    n.as_f64()
        .is_some_and(|x| x.abs() < EXACT as f64 && x == x as i64 as f64)
}

fn respelled(n: &serde_json::Number) -> Option<Value> {
    misspelled(n).then(|| number(n.as_f64()?)).flatten()
}

/// Follows `names` from `v`: `Some(None)` when a field is missing, `None` (declined) on an
/// array, which JSONata would map the rest of the path over.
fn walk<'v>(mut v: &'v Value, names: &[String]) -> Option<Option<&'v Value>> {
    for name in names {
        match v {
            Value::Object(m) => match crate::asl::path::field(m, name) {
                Some(x) => v = x,
                None => return Some(None),
            },
            Value::Array(_) => return None,
            _ => return Some(None),
        }
    }
    Some(Some(v))
}

fn binary(op: BinaryOp, l: Option<&Value>, r: Option<&Value>) -> Out<'static> {
    use BinaryOp::*;
    let (l, r) = (l?, r?);
    let owned = |v: Value| Some(Some(Cow::Owned(v)));
    match op {
        Concatenate => {
            let text = |v: &Value| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            owned(Value::String(text(l)? + &text(r)?))
        }
        And | Or => match (l, r) {
            (Value::Bool(a), Value::Bool(b)) => {
                owned(Value::Bool(if op == And { *a && *b } else { *a || *b }))
            }
            _ => None,
        },
        Equal | NotEqual => {
            let eq = match (l, r) {
                (Value::Number(a), Value::Number(b)) => a.as_f64()? == b.as_f64()?,
                (Value::String(a), Value::String(b)) => a == b,
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Null, Value::Null) => true,
                (Value::Array(_) | Value::Object(_), _)
                | (_, Value::Array(_) | Value::Object(_)) => return None,
                _ => false,
            };
            owned(Value::Bool(eq == (op == Equal)))
        }
        LessThan | LessThanOrEqual | GreaterThan | GreaterThanOrEqual => {
            let ord = match (l, r) {
                (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?)?,
                (Value::String(a), Value::String(b)) => {
                    // JavaScript compares UTF-16 code units; equal for ASCII only.
                    if !a.is_ascii() || !b.is_ascii() {
                        return None;
                    }
                    a.cmp(b)
                }
                _ => return None,
            };
            use std::cmp::Ordering::*;
            let result = match op {
                LessThan => ord == Less,
                LessThanOrEqual => ord != Greater,
                GreaterThan => ord == Greater,
                _ => ord != Less,
            };
            owned(Value::Bool(result))
        }
        _ => {
            let (Value::Number(a), Value::Number(b)) = (l, r) else {
                return None;
            };
            let (a, b) = (a.as_f64()?, b.as_f64()?);
            let x = match op {
                Add => a + b,
                Subtract => a - b,
                Multiply => a * b,
                Divide => a / b,
                Modulo => a % b,
                _ => return None,
            };
            if !x.is_finite() {
                return None;
            }
            owned(number(x)?)
        }
    }
}
