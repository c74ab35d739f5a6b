//! JSONPath as Step Functions evaluates it (the Jayway dialect), parsed once at compile time.
//!
//! A *definite* path (names and indexes only) selects one value or nothing; an *indefinite*
//! one (wildcard, slice, union, deep scan, filter) always selects a list, possibly empty.
//! Reference paths (`ResultPath`, Choice `Variable`) are definite paths with no `$$` root
//! and no negative index; [`JsonPath::is_reference`] tells.

use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// Which document a path starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// `$`: the state's (effective) input.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable. The name is the path's first segment.
    Variable,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Name(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Names(Vec<String>),
    Indexes(Vec<i64>),
    DeepScan(Box<Segment>),
    Filter(Box<FilterExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum FilterExpr {
    Exists(Vec<Segment>),
    Compare(Operand, CmpOp, Operand),
    And(Box<FilterExpr>, Box<FilterExpr>),
    Or(Box<FilterExpr>, Box<FilterExpr>),
    Not(Box<FilterExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Current(Vec<Segment>),
    Literal(Value),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    src: String,
    root: Root,
    segments: Vec<Segment>,
    definite: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath '{path}': {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.src)
    }
}

impl JsonPath {
    pub fn parse(src: &str) -> Result<JsonPath, PathError> {
        let err = |reason: &str| PathError {
            path: src.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = src.trim();
        let mut variable = None;
        let (root, rest) = if let Some(rest) = trimmed.strip_prefix("$$") {
            (Root::Context, rest)
        } else if let Some(rest) = trimmed.strip_prefix('$') {
            let name_len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if rest
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            {
                variable = Some(rest[..name_len].to_string());
                (Root::Variable, &rest[name_len..])
            } else {
                (Root::Input, rest)
            }
        } else {
            return Err(err("must start with '$'"));
        };
        let mut parser = Parser {
            s: rest.as_bytes(),
            text: rest,
            pos: 0,
            filter_operators: 0,
        };
        let mut segments = parser.segments(false).map_err(|r| err(&r))?;
        if let Some(name) = variable {
            segments.insert(0, Segment::Name(name));
        }
        if parser.pos != parser.s.len() {
            return Err(err(&format!(
                "unexpected character at offset {}",
                parser.pos + (src.len() - rest.len())
            )));
        }
        let definite = segments
            .iter()
            .all(|s| matches!(s, Segment::Name(_) | Segment::Index(_)));
        Ok(JsonPath {
            src: src.to_string(),
            root,
            segments,
            definite,
        })
    }

    /// The path exactly as written in the definition.
    pub fn as_str(&self) -> &str {
        &self.src
    }

    pub fn root(&self) -> Root {
        self.root
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn is_definite(&self) -> bool {
        self.definite
    }

    /// `$` (or `$$`) alone: selects the whole document.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty() && self.root != Root::Variable
    }

    /// The variable a `$name…` path reads.
    pub fn variable(&self) -> Option<&str> {
        match (self.root, self.segments.first()) {
            (Root::Variable, Some(Segment::Name(n))) => Some(n),
            _ => None,
        }
    }

    /// A reference path may only name one node of the input: `$`, `.name`, `['name']`, `[n]`
    /// (`n` may be negative).
    pub fn is_reference(&self) -> bool {
        self.root == Root::Input && self.names_one_node()
    }

    /// Whether the path is only names and indexes. A negative index (`[-1]`, the last
    /// item) names one node too: Jayway, the library AWS uses, counts it as definite.
    pub fn names_one_node(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Name(_) | Segment::Index(_)))
    }

    /// Whether an index counts from the end (`[-1]`): such a path may name the same node as
    /// one with a plain index, which comparing their segments does not show.
    pub fn indexes_from_end(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Index(i) if *i < 0))
    }

    /// Selects from `doc`. A definite path yields the value it names or `None`; an indefinite
    /// path yields an array of every match (borrowed where it can be).
    pub fn select<'a>(&self, doc: &'a Value) -> Option<Cow<'a, Value>> {
        self.select_from(doc, 0)
    }

    /// Like [`select`](Self::select), skipping the first `skip` segments (used by the
    /// context object, which resolves its top-level names itself).
    pub fn select_from<'a>(&self, doc: &'a Value, skip: usize) -> Option<Cow<'a, Value>> {
        let segs = self.segments.get(skip..).unwrap_or(&[]);
        if self.definite {
            select_definite(doc, segs).map(Cow::Borrowed)
        } else {
            let mut out = Vec::new();
            collect(doc, segs, &mut out);
            Some(Cow::Owned(Value::Array(out.into_iter().cloned().collect())))
        }
    }

    /// The node a definite path names inside `doc`, if there is one: a value is moved out of
    /// it (leaving `null`) when the document is about to be discarded, instead of copied.
    pub fn node_mut<'a>(&self, doc: &'a mut Value) -> Option<&'a mut Value> {
        if !self.definite {
            return None;
        }
        let mut v = doc;
        for seg in &self.segments {
            v = match (seg, v) {
                (Segment::Name(n), Value::Object(m)) => field_mut(m, n)?,
                (Segment::Index(i), Value::Array(a)) => {
                    let len = a.len();
                    a.get_mut(resolve_index(*i, len)?)?
                }
                _ => return None,
            };
        }
        Some(v)
    }

    /// Whether the node this path names contains (or is) the node `other` names.
    pub fn contains(&self, other: &JsonPath) -> bool {
        self.root == other.root
            && self.segments.len() <= other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a == b)
    }

    /// Writes `value` at this (reference) path inside `doc`, creating missing objects on the
    /// way, as `ResultPath` does. Fails when an existing node on the way cannot hold it.
    pub fn assign(&self, doc: &mut Value, value: Value) -> Result<(), String> {
        // Checked before anything is written: a failed ResultPath quotes the state's input
        // as it was, not with the parents created on the way (`{"arr": null}`).
        self.check_assignable(doc)?;
        let mut cur = doc;
        for seg in &self.segments {
            cur = match seg {
                Segment::Name(n) => {
                    if cur.is_null() {
                        *cur = Value::Object(Map::new());
                    }
                    let Value::Object(m) = cur else {
                        return Err(format!("cannot set field '{n}' on a non-object"));
                    };
                    // Look up before inserting: `entry` would copy the key every time.
                    if field(m, n).is_none() {
                        m.insert(n.clone(), Value::Null);
                    }
                    field_mut(m, n).expect("inserted above")
                }
                Segment::Index(i) => match cur {
                    Value::Array(a) => {
                        let len = a.len() as i64;
                        let idx = if *i < 0 { len + *i } else { *i };
                        if idx < 0 || idx >= len {
                            return Err(format!("index {i} is out of bounds"));
                        }
                        &mut a[idx as usize]
                    }
                    _ => return Err(format!("cannot set index {i} on a non-array")),
                },
                _ => return Err("not a reference path".to_string()),
            };
        }
        *cur = value;
        Ok(())
    }
}

impl JsonPath {
    /// The error [`assign`](Self::assign) would meet, found without writing: a missing
    /// field or a null on the way becomes an object, anything else must already be there.
    fn check_assignable(&self, doc: &Value) -> Result<(), String> {
        // `None`: a node `assign` would create (null, then an object).
        let mut cur = Some(doc);
        for seg in &self.segments {
            cur = match (seg, cur) {
                (Segment::Name(_), None | Some(Value::Null)) => None,
                (Segment::Name(n), Some(Value::Object(m))) => field(m, n),
                (Segment::Name(n), Some(_)) => {
                    return Err(format!("cannot set field '{n}' on a non-object"))
                }
                (Segment::Index(i), Some(Value::Array(a))) => {
                    let len = a.len() as i64;
                    let idx = if *i < 0 { len + *i } else { *i };
                    if idx < 0 || idx >= len {
                        return Err(format!("index {i} is out of bounds"));
                    }
                    Some(&a[idx as usize])
                }
                (Segment::Index(i), _) => {
                    return Err(format!("cannot set index {i} on a non-array"))
                }
                _ => return Err("not a reference path".to_string()),
            };
        }
        Ok(())
    }

    /// Why a definite path selected nothing, in the words of the Jayway library AWS uses:
    /// a missing leaf is "No results for path: $['a']['b']", a missing node on the way is
    /// "Missing property in path $['a']".
    pub fn missing_message(&self, doc: &Value) -> String {
        let mut v = doc;
        for (i, seg) in self.segments.iter().enumerate() {
            let next = match (seg, v) {
                (Segment::Name(n), Value::Object(m)) => field(m, n),
                (Segment::Index(ix), Value::Array(a)) => {
                    resolve_index(*ix, a.len()).and_then(|x| a.get(x))
                }
                _ => None,
            };
            match next {
                Some(n) => v = n,
                None if i + 1 == self.segments.len() => {
                    return format!("No results for path: {}", self.normalized(i + 1))
                }
                None => return format!("Missing property in path {}", self.normalized(i + 1)),
            }
        }
        format!(
            "No results for path: {}",
            self.normalized(self.segments.len())
        )
    }

    /// The first `n` segments in bracket notation, e.g. `$['a'][0]`.
    fn normalized(&self, n: usize) -> String {
        let mut out = String::from(if self.root == Root::Context {
            "$$"
        } else {
            "$"
        });
        let mut segs = &self.segments[..n.min(self.segments.len())];
        if let (Some(name), Some((_, rest))) = (self.variable(), segs.split_first()) {
            // The variable's name is the first segment: `$name['a']`.
            out.push_str(name);
            segs = rest;
        }
        for seg in segs {
            match seg {
                Segment::Name(name) => out.push_str(&format!("['{name}']")),
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                _ => out.push_str("[*]"),
            }
        }
        out
    }
}

/// Whether an expression (a path or an intrinsic call) refers to a workflow variable:
/// a `$` followed by a letter or `_`, outside single-quoted string literals. `$.a`, `$[0]`
/// and `$$` are not variables.
pub fn mentions_variable(expr: &str) -> bool {
    let bytes = expr.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'\'' => in_quotes = !in_quotes,
            b'$' if !in_quotes => {
                if bytes.get(i + 1) == Some(&b'$') {
                    i += 1;
                } else if bytes
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                {
                    return true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Objects up to this many fields are searched by scanning their keys: cheaper than hashing
/// the name (the map's hasher is SipHash), and most state data is small objects.
const SCAN_LIMIT: usize = 8;

/// `m.get(name)`, without hashing for small objects.
pub fn field<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if m.len() <= SCAN_LIMIT {
        m.iter().find_map(|(k, v)| same_key(k, name).then_some(v))
    } else {
        m.get(name)
    }
}

/// `m.get_mut(name)`, without hashing for small objects.
pub fn field_mut<'a>(m: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    if m.len() <= SCAN_LIMIT {
        m.iter_mut()
            .find_map(|(k, v)| same_key(k, name).then_some(v))
    } else {
        m.get_mut(name)
    }
}

/// `*slot = v`, for a slot that mostly holds `null` (a value moved out of it) or a number:
/// then there is nothing to drop, and the out-of-line `drop_in_place` call is skipped (~20
/// instructions, several times per state).
#[inline]
pub fn put(slot: &mut Value, v: Value) {
    let nothing_to_drop = match slot {
        Value::Null | Value::Bool(_) => true,
        // A heap string only with serde_json's `arbitrary_precision`.
        Value::Number(_) => !std::mem::needs_drop::<serde_json::Number>(),
        _ => false,
    };
    if nothing_to_drop {
        std::mem::forget(std::mem::replace(slot, v));
    } else {
        *slot = v;
    }
}

/// `a == b` for object keys. Keys are mostly short, and for them a call to `memcmp` cost
/// more than the comparison: up to 16 bytes are compared inline, as two words read from
/// each end (overlapping when shorter than 16, which compares some bytes twice).
#[inline]
pub fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        0 => true,
        // The first, middle and last bytes cover every byte of 1 to 3.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

fn select_definite<'a>(mut v: &'a Value, segs: &[Segment]) -> Option<&'a Value> {
    for seg in segs {
        v = match (seg, v) {
            (Segment::Name(n), Value::Object(m)) => field(m, n)?,
            (Segment::Index(i), Value::Array(a)) => a.get(resolve_index(*i, a.len())?)?,
            _ => return None,
        };
    }
    Some(v)
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let idx = if i < 0 { len as i64 + i } else { i };
    (idx >= 0 && (idx as usize) < len).then_some(idx as usize)
}

fn collect<'a>(v: &'a Value, segs: &[Segment], out: &mut Vec<&'a Value>) {
    let Some((seg, rest)) = segs.split_first() else {
        out.push(v);
        return;
    };
    match seg {
        Segment::Name(n) => {
            if let Some(c) = v.as_object().and_then(|m| field(m, n)) {
                collect(c, rest, out);
            }
        }
        Segment::Index(i) => {
            if let Value::Array(a) = v {
                if let Some(c) = resolve_index(*i, a.len()).and_then(|i| a.get(i)) {
                    collect(c, rest, out);
                }
            }
        }
        Segment::Wildcard => match v {
            Value::Array(a) => a.iter().for_each(|c| collect(c, rest, out)),
            Value::Object(m) => m.values().for_each(|c| collect(c, rest, out)),
            _ => {}
        },
        Segment::Slice(start, end, step) => {
            if let Value::Array(a) = v {
                for i in slice_indexes(a.len(), *start, *end, *step) {
                    collect(&a[i], rest, out);
                }
            }
        }
        Segment::Names(names) => {
            if let Value::Object(m) = v {
                for n in names {
                    if let Some(c) = field(m, n) {
                        collect(c, rest, out);
                    }
                }
            }
        }
        Segment::Indexes(idxs) => {
            if let Value::Array(a) = v {
                for i in idxs {
                    if let Some(c) = resolve_index(*i, a.len()) {
                        collect(&a[c], rest, out);
                    }
                }
            }
        }
        Segment::DeepScan(inner) => {
            let step = std::slice::from_ref(inner.as_ref());
            let mut stack = vec![v];
            // Breadth of the document in document order: the node itself, then descendants.
            while let Some(node) = stack.pop() {
                let mut matched = Vec::new();
                collect(node, step, &mut matched);
                for m in matched {
                    collect(m, rest, out);
                }
                match node {
                    Value::Array(a) => stack.extend(a.iter().rev()),
                    Value::Object(m) => stack.extend(m.values().rev()),
                    _ => {}
                }
            }
        }
        Segment::Filter(expr) => {
            let candidates: Box<dyn Iterator<Item = &Value>> = match v {
                Value::Array(a) => Box::new(a.iter()),
                Value::Object(m) => Box::new(m.values()),
                _ => Box::new(std::iter::empty()),
            };
            for c in candidates {
                if eval_filter(expr, c) {
                    collect(c, rest, out);
                }
            }
        }
    }
}

fn slice_indexes(
    len: usize,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
) -> impl Iterator<Item = usize> {
    let len = len as i64;
    let step = step.unwrap_or(1).max(1);
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let s = start.map(norm).unwrap_or(0);
    let e = end.map(norm).unwrap_or(len);
    (s..e).step_by(step as usize).map(|i| i as usize)
}

fn eval_filter(expr: &FilterExpr, item: &Value) -> bool {
    match expr {
        FilterExpr::Exists(segs) => select_definite(item, segs).is_some(),
        FilterExpr::And(a, b) => eval_filter(a, item) && eval_filter(b, item),
        FilterExpr::Or(a, b) => eval_filter(a, item) || eval_filter(b, item),
        FilterExpr::Not(a) => !eval_filter(a, item),
        FilterExpr::Compare(l, op, r) => {
            let resolve = |o: &Operand| -> Option<Value> {
                match o {
                    Operand::Current(segs) => select_definite(item, segs).cloned(),
                    Operand::Literal(v) => Some(v.clone()),
                }
            };
            let (Some(l), Some(r)) = (resolve(l), resolve(r)) else {
                return false;
            };
            compare(&l, *op, &r)
        }
    }
}

fn compare(l: &Value, op: CmpOp, r: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => {
            return match op {
                CmpOp::Eq => l == r,
                CmpOp::Ne => l != r,
                _ => false,
            }
        }
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// The most operators (`&&`, `||`, `!`, parentheses) a path's filters may hold together.
/// Filters are parsed, evaluated and dropped recursively; this keeps that shallow whatever
/// a definition contains.
const MAX_FILTER_OPERATORS: usize = 256;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    filter_operators: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Segments until the end, or (inside a filter) until a character that ends an operand.
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, String> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(b'.') => {
                    self.pos += 1;
                    if self.eat(b'.') {
                        let inner = if self.peek() == Some(b'[') {
                            self.bracket()?
                        } else if self.eat(b'*') {
                            Segment::Wildcard
                        } else {
                            Segment::Name(self.dot_name()?)
                        };
                        segs.push(Segment::DeepScan(Box::new(inner)));
                    } else if self.eat(b'*') {
                        segs.push(Segment::Wildcard);
                    } else {
                        segs.push(Segment::Name(self.dot_name()?));
                    }
                }
                Some(b'[') => segs.push(self.bracket()?),
                Some(_) if in_filter => break,
                Some(c) => return Err(format!("unexpected character '{}'", c as char)),
            }
        }
        Ok(segs)
    }

    fn dot_name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b'.' | b'[' | b' ' | b')' | b'=' | b'!' | b'<' | b'>' | b'&' | b'|'
            ) {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err("empty field name".to_string());
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn bracket(&mut self) -> Result<Segment, String> {
        self.pos += 1; // '['
        self.skip_ws();
        let seg = match self.peek() {
            Some(b'*') => {
                self.pos += 1;
                Segment::Wildcard
            }
            Some(b'\'' | b'"') => {
                let mut names = vec![self.quoted()?];
                self.skip_ws();
                while self.eat(b',') {
                    self.skip_ws();
                    names.push(self.quoted()?);
                    self.skip_ws();
                }
                if names.len() == 1 {
                    Segment::Name(names.pop().unwrap_or_default())
                } else {
                    Segment::Names(names)
                }
            }
            Some(b'?') => {
                self.pos += 1;
                self.skip_ws();
                if !self.eat(b'(') {
                    return Err("expected '(' after '?'".to_string());
                }
                let expr = self.filter_or()?;
                self.skip_ws();
                if !self.eat(b')') {
                    return Err("expected ')' closing the filter".to_string());
                }
                Segment::Filter(Box::new(expr))
            }
            _ => self.index_or_slice()?,
        };
        self.skip_ws();
        if !self.eat(b']') {
            return Err("expected ']'".to_string());
        }
        Ok(seg)
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self
            .peek()
            .filter(|q| matches!(q, b'\'' | b'"'))
            .ok_or("expected a quoted name")?;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let c = self.peek().ok_or("unterminated quoted name")?;
            self.pos += 1;
            if c == q {
                return Ok(out);
            }
            // Jayway only unescapes the quote itself; any other backslash is literal.
            if c == b'\\' && self.peek() == Some(q) {
                self.pos += 1;
                out.push(q as char);
                continue;
            }
            // Re-decode multi-byte UTF-8 from the source text.
            let start = self.pos - 1;
            let ch = self.text[start..].chars().next().ok_or("invalid text")?;
            self.pos = start + ch.len_utf8();
            out.push(ch);
        }
    }

    fn int(&mut self) -> Result<Option<i64>, String> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == start {
            return Ok(None);
        }
        let n = self.text[start..self.pos]
            .parse::<i64>()
            .map_err(|_| format!("invalid index '{}'", &self.text[start..self.pos]))?;
        self.skip_ws();
        Ok(Some(n))
    }

    fn index_or_slice(&mut self) -> Result<Segment, String> {
        let first = self.int()?;
        if self.eat(b':') {
            let end = self.int()?;
            let step = if self.eat(b':') { self.int()? } else { None };
            return Ok(Segment::Slice(first, end, step));
        }
        let first = first.ok_or("expected an index, a name, '*' or a filter")?;
        let mut idxs = vec![first];
        while self.eat(b',') {
            idxs.push(self.int()?.ok_or("expected an index after ','")?);
        }
        Ok(if idxs.len() == 1 {
            Segment::Index(first)
        } else {
            Segment::Indexes(idxs)
        })
    }

    /// Counts one more filter operator against [`MAX_FILTER_OPERATORS`].
    fn filter_operator(&mut self) -> Result<(), String> {
        self.filter_operators += 1;
        if self.filter_operators > MAX_FILTER_OPERATORS {
            return Err(format!(
                "filters may hold at most {MAX_FILTER_OPERATORS} operators and parentheses"
            ));
        }
        Ok(())
    }

    fn filter_or(&mut self) -> Result<FilterExpr, String> {
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if self.s[self.pos..].starts_with(b"||") {
                self.filter_operator()?;
                self.pos += 2;
                let right = self.filter_and()?;
                left = FilterExpr::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_and(&mut self) -> Result<FilterExpr, String> {
        let mut left = self.filter_atom()?;
        loop {
            self.skip_ws();
            if self.s[self.pos..].starts_with(b"&&") {
                self.filter_operator()?;
                self.pos += 2;
                let right = self.filter_atom()?;
                left = FilterExpr::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn filter_atom(&mut self) -> Result<FilterExpr, String> {
        self.skip_ws();
        if self.eat(b'!') {
            self.filter_operator()?;
            return Ok(FilterExpr::Not(Box::new(self.filter_atom()?)));
        }
        if self.eat(b'(') {
            self.filter_operator()?;
            let e = self.filter_or()?;
            self.skip_ws();
            if !self.eat(b')') {
                return Err("expected ')'".to_string());
            }
            return Ok(e);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = if self.s[self.pos..].starts_with(b"==") {
            Some(CmpOp::Eq)
        } else if self.s[self.pos..].starts_with(b"!=") {
            Some(CmpOp::Ne)
        } else if self.s[self.pos..].starts_with(b"<=") {
            Some(CmpOp::Le)
        } else if self.s[self.pos..].starts_with(b">=") {
            Some(CmpOp::Ge)
        } else if self.peek() == Some(b'<') {
            Some(CmpOp::Lt)
        } else if self.peek() == Some(b'>') {
            Some(CmpOp::Gt)
        } else {
            None
        };
        let Some(op) = op else {
            return match left {
                Operand::Current(segs) => Ok(FilterExpr::Exists(segs)),
                Operand::Literal(_) => Err("a filter needs a comparison".to_string()),
            };
        };
        self.pos += if matches!(op, CmpOp::Lt | CmpOp::Gt) {
            1
        } else {
            2
        };
        let right = self.operand()?;
        Ok(FilterExpr::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        match self.peek() {
            Some(b'@') => {
                self.pos += 1;
                let segs = self.segments(true)?;
                if !segs
                    .iter()
                    .all(|s| matches!(s, Segment::Name(_) | Segment::Index(_)))
                {
                    return Err("filter operands must be definite paths".to_string());
                }
                Ok(Operand::Current(segs))
            }
            Some(b'\'' | b'"') => Ok(Operand::Literal(Value::String(self.quoted()?))),
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if matches!(c, b')' | b' ' | b'&' | b'|' | b'=' | b'!' | b'<' | b'>') {
                        break;
                    }
                    self.pos += 1;
                }
                let lit = &self.text[start..self.pos];
                serde_json::from_str(lit)
                    .map(Operand::Literal)
                    .map_err(|_| format!("invalid literal '{lit}' in filter"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_key_is_string_equality_at_every_length() {
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_key(&a, &a.clone()), "{n}");
            for i in 0..n {
                let mut b = a.clone().into_bytes();
                b[i] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_key(&a, &b), "{a} {b}");
            }
            assert!(!same_key(&a, &format!("{a}x")), "{n}");
        }
    }

    fn sel(path: &str, doc: &Value) -> Option<Value> {
        JsonPath::parse(path)
            .unwrap()
            .select(doc)
            .map(Cow::into_owned)
    }

    #[test]
    fn definite_paths_select_one_value_or_nothing() {
        let doc = json!({"a": {"b": [1, 2, {"c": true}]}, "odd key": 5});
        assert_eq!(sel("$.a.b[2].c", &doc), Some(json!(true)));
        assert_eq!(sel("$['odd key']", &doc), Some(json!(5)));
        assert_eq!(sel("$.a.b[-1].c", &doc), Some(json!(true)));
        assert_eq!(sel("$.a.x", &doc), None);
        assert_eq!(sel("$", &doc), Some(doc.clone()));
    }

    #[test]
    fn indefinite_paths_select_lists() {
        let doc = json!({"items": [{"v": 1}, {"v": 2}, {"w": 3}, {"v": 4}]});
        assert_eq!(sel("$.items[*].v", &doc), Some(json!([1, 2, 4])));
        assert_eq!(sel("$.items[1:3].v", &doc), Some(json!([2])));
        assert_eq!(sel("$.items[:1]", &doc), Some(json!([{"v": 1}])));
        assert_eq!(sel("$.missing[1:]", &doc), Some(json!([])));
        assert_eq!(sel("$..v", &doc), Some(json!([1, 2, 4])));
        assert_eq!(sel("$.items[?(@.v > 1)].v", &doc), Some(json!([2, 4])));
        assert_eq!(sel("$.items[?(@.w)]", &doc), Some(json!([{"w": 3}])));
        assert_eq!(sel("$.items[0,3].v", &doc), Some(json!([1, 4])));
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for bad in ["a.b", "$.", "$[", "$.a[?(@.x >)]", "$[abc]", "$.a b"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn a_name_list_item_that_is_not_quoted_is_an_error_not_a_char_boundary_panic() {
        // Found by fuzzing (fuzz/regressions/jsonpath-path-rs-657-not-a-char-boundary-min).
        assert!(JsonPath::parse("$['',\u{512}").is_err());
        assert!(JsonPath::parse("$['a',b]").is_err());
    }

    #[test]
    fn filters_nested_twenty_thousand_deep_are_an_error_not_a_stack_overflow() {
        let n = 20_000;
        let nested = format!("$.a[?({}@.b == 1{})]", "(".repeat(n), ")".repeat(n));
        let negated = format!("$.a[?({}@.b)]", "!".repeat(n));
        let chained = format!("$.a[?(@.b{})]", " && @.b".repeat(n));
        for path in [nested, negated, chained] {
            let e = JsonPath::parse(&path).unwrap_err();
            assert!(e.to_string().contains("at most 256 operators"), "{e}");
        }
        let fine = format!("$.a[?({}@.b == 1{})]", "(".repeat(100), ")".repeat(100));
        assert!(JsonPath::parse(&fine).is_ok());
    }

    #[test]
    fn reference_paths_are_definite_input_paths() {
        assert!(JsonPath::parse("$.a['b'][0]").unwrap().is_reference());
        assert!(!JsonPath::parse("$.a[*]").unwrap().is_reference());
        assert!(!JsonPath::parse("$$.Execution").unwrap().is_reference());
    }

    #[test]
    fn variables_are_told_from_paths() {
        for var in ["$x", "$_y.z", "States.Format('{}', $name)", "$a[0]"] {
            assert!(mentions_variable(var), "{var}");
        }
        for not in [
            "$",
            "$.a",
            "$[0]",
            "$$.Execution",
            "States.Format('$x {}', $.a)",
            "cost: 5$",
        ] {
            assert!(!mentions_variable(not), "{not}");
        }
    }

    #[test]
    fn assign_creates_missing_objects() {
        let mut doc = json!({"a": 1});
        JsonPath::parse("$.x.y")
            .unwrap()
            .assign(&mut doc, json!(2))
            .unwrap();
        assert_eq!(doc, json!({"a": 1, "x": {"y": 2}}));
        assert!(JsonPath::parse("$.a.b")
            .unwrap()
            .assign(&mut doc, json!(3))
            .is_err());
    }
}
