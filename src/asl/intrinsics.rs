//! Intrinsic functions (`States.Format(...)` etc.): parsed once, evaluated against a scope.
//!
//! Parsing resolves everything that does not depend on the input: the function, its arity,
//! literal arguments (as JSON values), paths (as [`JsonPath`]) and, for `States.Format` with a
//! literal template, the template itself. Evaluation then only selects and computes.
//!
//! The file is long because AWS defines eighteen functions, each with its own argument kinds
//! and error texts, plus the argument parser and `States.Format`'s rendering; all of them read
//! one `Func` table, which splitting the file would scatter.
//!
//! Where AWS's behaviour is observable but undocumented, the comments say what we follow.
//! AWS runs on the JVM: "integer" arguments are Java `int`s, fractional numbers are truncated
//! (except `States.MathAdd`, which rounds), and `States.Format` prints values the way Java's
//! `toString` does.

use super::error::{json_text, names, EvalError};
use super::path::JsonPath;
use super::scope::Scope;
use super::size::{Budget, Extent};
use base64::Engine as _;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

/// The error AWS reports for arguments an intrinsic rejects at run time. Executions on AWS
/// fail with `States.Runtime` and the cause "Invalid arguments in States.X", not with
/// `States.IntrinsicFailure`, which is why the name lives in this one place.
const INVALID_ARGUMENTS_ERROR: &str = names::RUNTIME;

/// Deepest nesting of calls we parse; only guards the parser's stack (AWS allows about 10).
const MAX_DEPTH: usize = 32;

/// AWS's cap on the items `States.ArrayRange` may produce.
const MAX_RANGE_ITEMS: i64 = 1000;

/// AWS's cap on the length (in UTF-16 units, as Java counts) of strings that
/// `States.Base64Encode`, `States.Base64Decode` and `States.Hash` accept.
const MAX_ENCODED_INPUT: usize = 10_000;

/// How many items `States.Array` builds before they are measured as they come (see
/// [`Budget`]): up to this many copies of a payload are held without measuring.
const UNGUARDED_ITEMS: usize = 16;

/// A parsed intrinsic function call.
#[derive(Clone, Debug, PartialEq)]
pub struct Intrinsic {
    call: Call,
}

impl Intrinsic {
    /// Parses a call such as `States.Format('{} {}', $.a, States.ArrayLength($.b))`.
    pub fn parse(src: &str) -> Result<Intrinsic, String> {
        let mut parser = Parser { src, pos: 0 };
        parser.skip_ws();
        if !parser.rest().starts_with("States.") {
            return Err(format!(
                "'{src}' is not an intrinsic function call (expected 'States.')"
            ));
        }
        let call = parser.call(0)?;
        parser.skip_ws();
        if parser.pos < src.len() {
            return Err(parser.error("unexpected text after the closing ')'"));
        }
        Ok(Intrinsic { call })
    }

    /// The function called, e.g. `States.Format`.
    pub fn name(&self) -> &'static str {
        self.call.func.name()
    }

    /// A bound on the result's extent that holds for any arguments: for the functions that
    /// return a number, a boolean or a string of fixed length. A template calling only these
    /// is bounded without measuring its output (a counter incremented in a loop).
    pub fn result_bound(&self) -> Option<Extent> {
        let bytes = match self.call.func {
            // An integer that fits in 64 bits: `-9223372036854775808`.
            Func::MathAdd | Func::MathRandom | Func::ArrayLength => 20,
            Func::ArrayContains => "false".len(),
            // 36 characters and the quotes.
            Func::Uuid => 38,
            // SHA-512's 128 hex digits and the quotes.
            Func::Hash => 130,
            _ => return None,
        };
        Some(Extent::new(bytes, 0))
    }

    /// Evaluates the call. A path argument that selects nothing fails with `States.Runtime`;
    /// so do arguments the function rejects (see [`INVALID_ARGUMENTS_ERROR`]).
    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, EvalError> {
        self.call.eval(scope)
    }
}

/// Whether a `.$` field value is an intrinsic call rather than a path.
pub fn is_intrinsic(s: &str) -> bool {
    s.trim_start().starts_with("States.")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

/// The JSON type a parameter expects, checked on literals at parse time and on every value
/// at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Any,
    String,
    Number,
    Array,
    Object,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Any => true,
            Kind::String => v.is_string(),
            Kind::Number => v.is_number(),
            Kind::Array => v.is_array(),
            Kind::Object => v.is_object(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Any => "any value",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

impl Func {
    const ALL: [Func; 18] = [
        Func::Format,
        Func::StringToJson,
        Func::JsonToString,
        Func::Array,
        Func::ArrayPartition,
        Func::ArrayContains,
        Func::ArrayRange,
        Func::ArrayGetItem,
        Func::ArrayLength,
        Func::ArrayUnique,
        Func::Base64Encode,
        Func::Base64Decode,
        Func::Hash,
        Func::JsonMerge,
        Func::MathRandom,
        Func::MathAdd,
        Func::StringSplit,
        Func::Uuid,
    ];

    fn name(self) -> &'static str {
        match self {
            Func::Format => "States.Format",
            Func::StringToJson => "States.StringToJson",
            Func::JsonToString => "States.JsonToString",
            Func::Array => "States.Array",
            Func::ArrayPartition => "States.ArrayPartition",
            Func::ArrayContains => "States.ArrayContains",
            Func::ArrayRange => "States.ArrayRange",
            Func::ArrayGetItem => "States.ArrayGetItem",
            Func::ArrayLength => "States.ArrayLength",
            Func::ArrayUnique => "States.ArrayUnique",
            Func::Base64Encode => "States.Base64Encode",
            Func::Base64Decode => "States.Base64Decode",
            Func::Hash => "States.Hash",
            Func::JsonMerge => "States.JsonMerge",
            Func::MathRandom => "States.MathRandom",
            Func::MathAdd => "States.MathAdd",
            Func::StringSplit => "States.StringSplit",
            Func::Uuid => "States.UUID",
        }
    }

    fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Parameter kinds, then how many are required; `Format` and `Array` repeat their last
    /// kind without limit.
    fn signature(self) -> (&'static [Kind], usize) {
        use Kind::*;
        match self {
            Func::Format => (&[String, Any], 1),
            Func::Array => (&[Any], 0),
            Func::StringToJson | Func::Base64Encode | Func::Base64Decode => (&[String], 1),
            Func::JsonToString => (&[Any], 1),
            Func::ArrayLength | Func::ArrayUnique => (&[Array], 1),
            Func::ArrayPartition | Func::ArrayGetItem => (&[Array, Number], 2),
            Func::ArrayContains => (&[Array, Any], 2),
            Func::ArrayRange => (&[Number, Number, Number], 3),
            // AWS hashes non-string data by its text, so only the algorithm is typed.
            Func::Hash => (&[Any, String], 2),
            // AWS treats any third argument but `true` as "shallow".
            Func::JsonMerge => (&[Object, Object, Any], 3),
            Func::MathRandom => (&[Number, Number, Number], 2),
            Func::MathAdd => (&[Number, Number], 2),
            Func::StringSplit => (&[String, String], 2),
            Func::Uuid => (&[], 0),
        }
    }

    fn is_variadic(self) -> bool {
        matches!(self, Func::Format | Func::Array)
    }

    fn param_kind(self, i: usize) -> Kind {
        let (kinds, _) = self.signature();
        match kinds.get(i) {
            Some(k) => *k,
            None => kinds.last().copied().unwrap_or(Kind::Any),
        }
    }

    fn invalid(self) -> EvalError {
        EvalError::new(
            INVALID_ARGUMENTS_ERROR,
            format!("Invalid arguments in {}", self.name()),
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Call {
    func: Func,
    args: Vec<Arg>,
    /// `States.Format`'s template when it is a literal.
    template: Option<Template>,
}

#[derive(Clone, Debug, PartialEq)]
enum Arg {
    Literal(Value),
    Path(JsonPath),
    Call(Box<Call>),
}

impl Call {
    /// Checks what can be checked without the input, and pre-parses a literal template.
    fn new(func: Func, args: Vec<Arg>, raw_template: Option<&str>) -> Result<Call, String> {
        let (kinds, required) = func.signature();
        let max = (!func.is_variadic()).then_some(kinds.len());
        if args.len() < required || max.is_some_and(|m| args.len() > m) {
            let expected = match max {
                None => format!("at least {required}"),
                Some(m) if m == required => required.to_string(),
                Some(m) => format!("{required} to {m}"),
            };
            let plural = if expected == "1" { "" } else { "s" };
            return Err(format!(
                "{} takes {expected} argument{plural}, but got {}",
                func.name(),
                args.len()
            ));
        }
        for (i, arg) in args.iter().enumerate() {
            let kind = func.param_kind(i);
            if let Arg::Literal(v) = arg {
                if !kind.accepts(v) {
                    return Err(format!(
                        "argument {} of {} must be {}, but is {}",
                        i + 1,
                        func.name(),
                        kind.describe(),
                        json_text(v)
                    ));
                }
            }
        }
        let literal = |i: usize| match args.get(i) {
            Some(Arg::Literal(v)) => Some(v),
            _ => None,
        };
        match (func, literal(1), literal(2)) {
            (Func::Hash, Some(Value::String(alg)), _)
                if HashAlgorithm::from_name(alg).is_none() =>
            {
                return Err(format!(
                    "unsupported hash algorithm '{alg}' in States.Hash \
                     (use MD5, SHA-1, SHA-256, SHA-384 or SHA-512)"
                ));
            }
            (Func::JsonMerge, _, Some(Value::Bool(true))) => {
                return Err("States.JsonMerge supports only shallow merges: \
                            its third argument must be false"
                    .to_string());
            }
            _ => {}
        }
        let template = match raw_template {
            Some(raw) if func == Func::Format => {
                let t = Template::parse(raw).map_err(|e| format!("States.Format template: {e}"))?;
                if t.placeholders != args.len() - 1 {
                    return Err(format!(
                        "States.Format template has {} placeholder(s) but {} value(s) follow it",
                        t.placeholders,
                        args.len() - 1
                    ));
                }
                Some(t)
            }
            _ => None,
        };
        Ok(Call {
            func,
            args,
            template,
        })
    }

    /// Evaluates argument `i`, borrowing literals and selected values where it can.
    fn arg<'s>(&'s self, i: usize, scope: &'s dyn Scope) -> Result<Cow<'s, Value>, EvalError> {
        match self.args.get(i) {
            Some(Arg::Literal(v)) => Ok(Cow::Borrowed(v)),
            Some(Arg::Path(p)) => scope.select(p).ok_or_else(|| {
                EvalError::runtime(format!(
                    "The JSONPath '{p}' could not be found in the input '{}'",
                    json_text(scope.input())
                ))
            }),
            Some(Arg::Call(c)) => c.eval(scope).map(Cow::Owned),
            // Arity is checked at parse time; an optional argument that is absent lands here.
            None => Err(self.func.invalid()),
        }
    }

    /// Argument `i`, which must be of the parameter's kind.
    fn typed_arg<'s>(
        &'s self,
        i: usize,
        scope: &'s dyn Scope,
    ) -> Result<Cow<'s, Value>, EvalError> {
        let v = self.arg(i, scope)?;
        if self.func.param_kind(i).accepts(&v) {
            Ok(v)
        } else {
            Err(self.func.invalid())
        }
    }

    fn string_arg<'s>(&'s self, i: usize, scope: &'s dyn Scope) -> Result<Cow<'s, str>, EvalError> {
        match self.arg(i, scope)? {
            Cow::Borrowed(Value::String(s)) => Ok(Cow::Borrowed(s)),
            Cow::Owned(Value::String(s)) => Ok(Cow::Owned(s)),
            _ => Err(self.func.invalid()),
        }
    }

    fn array_arg<'s>(
        &'s self,
        i: usize,
        scope: &'s dyn Scope,
    ) -> Result<Cow<'s, [Value]>, EvalError> {
        match self.arg(i, scope)? {
            Cow::Borrowed(Value::Array(a)) => Ok(Cow::Borrowed(a)),
            Cow::Owned(Value::Array(a)) => Ok(Cow::Owned(a)),
            _ => Err(self.func.invalid()),
        }
    }

    /// An integer argument as Java's `int` sees it: fractions truncated toward zero.
    fn int_arg(&self, i: usize, scope: &dyn Scope) -> Result<i32, EvalError> {
        truncate_to_int(&*self.arg(i, scope)?).ok_or_else(|| self.func.invalid())
    }

    fn eval(&self, scope: &dyn Scope) -> Result<Value, EvalError> {
        let func = self.func;
        Ok(match func {
            Func::Format => Value::String(self.format(scope)?),
            Func::StringToJson => {
                let s = self.string_arg(0, scope)?;
                // AWS turns a blank string into null rather than failing.
                if s.trim().is_empty() {
                    Value::Null
                } else {
                    crate::asl::json::from_str(&s).map_err(|_| func.invalid())?
                }
            }
            Func::JsonToString => Value::String(json_text(&*self.arg(0, scope)?)),
            Func::Array => {
                let mut budget = self.fans_out().then(|| Budget::new(scope.payload_limit()));
                let mut items = Vec::with_capacity(self.args.len());
                for i in 0..self.args.len() {
                    let item = self.arg(i, scope)?.into_owned();
                    if budget.as_mut().is_some_and(|b| !b.charge(&item)) {
                        return Err(self.too_large(scope));
                    }
                    items.push(item);
                }
                Value::Array(items)
            }
            Func::ArrayPartition => {
                let items = self.array_arg(0, scope)?;
                let size = self.int_arg(1, scope)?;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| func.invalid())?;
                Value::Array(
                    items
                        .chunks(size)
                        .map(|chunk| Value::Array(chunk.to_vec()))
                        .collect(),
                )
            }
            Func::ArrayContains => {
                let items = self.array_arg(0, scope)?;
                let needle = self.arg(1, scope)?;
                Value::Bool(items.contains(&needle))
            }
            Func::ArrayRange => {
                let start = i64::from(self.int_arg(0, scope)?);
                let end = i64::from(self.int_arg(1, scope)?);
                let step = i64::from(self.int_arg(2, scope)?);
                if step == 0 {
                    return Err(func.invalid());
                }
                // Inclusive of `end`; a step pointing away from it yields nothing. The
                // operands are Java ints, so none of this can overflow an i64.
                let count = if (end - start).signum() == -step.signum() {
                    0
                } else {
                    (end - start) / step + 1
                };
                if count > MAX_RANGE_ITEMS {
                    return Err(func.invalid());
                }
                Value::Array((0..count).map(|k| Value::from(start + k * step)).collect())
            }
            Func::ArrayGetItem => {
                let items = self.array_arg(0, scope)?;
                let index = self.int_arg(1, scope)?;
                let item = usize::try_from(index).ok().and_then(|i| items.get(i));
                item.cloned().ok_or_else(|| func.invalid())?
            }
            Func::ArrayLength => Value::from(self.array_arg(0, scope)?.len()),
            Func::ArrayUnique => Value::Array(unique(&self.array_arg(0, scope)?)),
            Func::Base64Encode => {
                let s = self.string_arg(0, scope)?;
                if exceeds_java_length(&s, MAX_ENCODED_INPUT) {
                    return Err(func.invalid());
                }
                Value::String(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
            }
            Func::Base64Decode => {
                let s = self.string_arg(0, scope)?;
                if exceeds_java_length(&s, MAX_ENCODED_INPUT) {
                    return Err(func.invalid());
                }
                let bytes = JAVA_BASE64.decode(&*s).map_err(|_| func.invalid())?;
                // Like Java's `new String(bytes, UTF_8)`: malformed sequences become U+FFFD.
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            Func::Hash => {
                let data = self.arg(0, scope)?;
                let data: Cow<'_, str> = match &*data {
                    Value::String(s) => Cow::Borrowed(s),
                    other => {
                        let mut text = String::new();
                        render(other, &mut text);
                        Cow::Owned(text)
                    }
                };
                let algorithm = self.string_arg(1, scope)?;
                let algorithm =
                    HashAlgorithm::from_name(&algorithm).ok_or_else(|| func.invalid())?;
                if exceeds_java_length(&data, MAX_ENCODED_INPUT) {
                    return Err(func.invalid());
                }
                Value::String(algorithm.hex_digest(data.as_bytes()))
            }
            Func::JsonMerge => {
                let left = self.typed_arg(0, scope)?;
                let right = self.typed_arg(1, scope)?;
                if *self.arg(2, scope)? == Value::Bool(true) {
                    return Err(func.invalid());
                }
                let Value::Object(mut merged) = left.into_owned() else {
                    return Err(func.invalid());
                };
                // Shallow: keys of the second object replace those of the first. A second
                // object made by a nested call (`States.StringToJson`, say) is moved in.
                match right {
                    Cow::Owned(Value::Object(right)) => merged.extend(right),
                    Cow::Borrowed(Value::Object(right)) => {
                        merged.extend(right.iter().map(|(k, v)| (k.clone(), v.clone())))
                    }
                    _ => return Err(func.invalid()),
                }
                Value::Object(merged)
            }
            Func::MathRandom => {
                let start = i64::from(self.int_arg(0, scope)?);
                let end = i64::from(self.int_arg(1, scope)?);
                // AWS draws from [start, end) and refuses an empty range.
                if start >= end {
                    return Err(func.invalid());
                }
                let n = if self.args.len() > 2 {
                    let seed = seed_value(&*self.arg(2, scope)?).ok_or_else(|| func.invalid())?;
                    fastrand::Rng::with_seed(seed).i64(start..end)
                } else {
                    fastrand::i64(start..end)
                };
                Value::from(n)
            }
            Func::MathAdd => {
                let a = round_to_int(&*self.arg(0, scope)?).ok_or_else(|| func.invalid())?;
                let b = round_to_int(&*self.arg(1, scope)?).ok_or_else(|| func.invalid())?;
                Value::from(a.checked_add(b).ok_or_else(|| func.invalid())?)
            }
            Func::StringSplit => {
                let s = self.string_arg(0, scope)?;
                let delimiters = self.string_arg(1, scope)?;
                // Like Java's StringTokenizer: every character of the second argument
                // delimits, and empty tokens are dropped.
                Value::Array(
                    s.split(|c| delimiters.contains(c))
                        .filter(|token| !token.is_empty())
                        .map(|token| Value::String(token.to_string()))
                        .collect(),
                )
            }
            Func::Uuid => Value::String(uuid::Uuid::new_v4().to_string()),
        })
    }

    fn format(&self, scope: &dyn Scope) -> Result<String, EvalError> {
        let dynamic;
        let template = match &self.template {
            Some(t) => t,
            None => {
                let raw = self.string_arg(0, scope)?;
                dynamic = Template::parse(&raw).map_err(|_| self.func.invalid())?;
                &dynamic
            }
        };
        if template.placeholders != self.args.len() - 1 {
            return Err(self.func.invalid());
        }
        let limit = scope.payload_limit();
        let mut out = String::with_capacity(template.text_len);
        let mut next = 1;
        for piece in &template.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Value => {
                    render(&*self.arg(next, scope)?, &mut out);
                    next += 1;
                }
            }
            if out.len() > limit {
                return Err(self.too_large(scope));
            }
        }
        Ok(out)
    }

    /// Whether this `States.Array` may copy its input more than [`UNGUARDED_ITEMS`] times
    /// (directly, or through nested calls), so that its items are charged to a
    /// [`Budget`] as they are built.
    fn fans_out(&self) -> bool {
        self.args.len() > UNGUARDED_ITEMS || self.args.iter().any(|a| matches!(a, Arg::Call(_)))
    }

    fn too_large(&self, scope: &dyn Scope) -> EvalError {
        EvalError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!(
                "{} built a value exceeding the maximum of {} bytes.",
                self.func.name(),
                scope.payload_limit()
            ),
        )
    }
}

/// A `States.Format` template split at its `{}` placeholders.
#[derive(Clone, Debug, PartialEq)]
struct Template {
    pieces: Vec<Piece>,
    placeholders: usize,
    text_len: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Value,
}

impl Template {
    /// Parses template text as written: `\{`, `\}` (and the other escapes) are literal
    /// characters, `{}` is a placeholder, and any other brace is an error, as on AWS.
    fn parse(raw: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut placeholders = 0;
        let mut text_len = 0;
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => text.push(unescape_one(&mut chars)?),
                '{' => {
                    if chars.next() != Some('}') {
                        return Err("'{' must be followed by '}' (write \\{ for a brace)".into());
                    }
                    if !text.is_empty() {
                        text_len += text.len();
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Value);
                    placeholders += 1;
                }
                '}' => return Err("unmatched '}' (write \\} for a brace)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            text_len += text.len();
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            pieces,
            placeholders,
            text_len,
        })
    }
}

/// Decodes the escape after a backslash. `\'`, `\{`, `\}` and `\\` stand for themselves,
/// `\n`, `\t`, `\r` and `\uXXXX` for what they mean in JSON; any other escaped character
/// stands for itself.
fn unescape_one(chars: &mut std::str::Chars<'_>) -> Result<char, String> {
    match chars.next() {
        Some('n') => Ok('\n'),
        Some('t') => Ok('\t'),
        Some('r') => Ok('\r'),
        Some('u') => {
            let hex: String = chars.by_ref().take(4).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .filter(|_| hex.len() == 4)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("invalid escape '\\u{hex}'"))
        }
        Some(c) => Ok(c),
        None => Err("a string cannot end with a lone backslash".into()),
    }
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            unescape_one(&mut chars)?
        } else {
            c
        });
    }
    Ok(out)
}

/// Writes `v` as `States.Format` prints it, which is Java's `toString` of the value:
/// strings bare, `[a, b]` for arrays and `{k=v, k2=v2}` for objects.
fn render(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // serde_json prints integers without a fraction and floats as their JSON text.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                render(item, out);
            }
            out.push('}');
        }
    }
}

/// A number as a Java `int`, fractions truncated toward zero; `None` for anything else.
fn truncate_to_int(v: &Value) -> Option<i32> {
    let n = v.as_number()?;
    match n.as_i64() {
        Some(i) => i32::try_from(i).ok(),
        None => float_to_int(n.as_f64()?.trunc()),
    }
}

/// A number rounded as Java's `Math.round` does (halves toward positive infinity), which
/// must then fit a Java `int`.
fn round_to_int(v: &Value) -> Option<i32> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return i32::try_from(i).ok();
    }
    let x = n.as_f64()?;
    let mut r = x.round(); // halves away from zero
    if x - r == 0.5 {
        r += 1.0; // a negative half: Java rounds it up
    }
    float_to_int(r)
}

fn float_to_int(x: f64) -> Option<i32> {
    (x.is_finite() && x >= f64::from(i32::MIN) && x <= f64::from(i32::MAX)).then_some(x as i32)
}

/// `States.MathRandom`'s seed: any number, used as a 64-bit seed.
fn seed_value(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i as u64);
    }
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let x = n.as_f64()?.trunc();
    // Out-of-range floats saturate, which is fine for a seed.
    x.is_finite().then_some(x as i64 as u64)
}

/// Whether `s` is longer than `max` UTF-16 units (Java's `String.length`).
fn exceeds_java_length(s: &str, max: usize) -> bool {
    // Cheap test first: a string never has more UTF-16 units than bytes.
    s.len() > max && s.encode_utf16().count() > max
}

/// Base64 decoding as Java's `Base64.getDecoder()` does it, which AWS uses: the standard
/// alphabet only, padding optional (but right when present), trailing bits ignored; any
/// other character is an error (`States.Base64Decode('bad!')` fails).
const JAVA_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    /// The names AWS accepts, exactly (case and hyphen matter).
    fn from_name(name: &str) -> Option<HashAlgorithm> {
        Some(match name {
            "MD5" => HashAlgorithm::Md5,
            "SHA-1" => HashAlgorithm::Sha1,
            "SHA-256" => HashAlgorithm::Sha256,
            "SHA-384" => HashAlgorithm::Sha384,
            "SHA-512" => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    fn hex_digest(self, data: &[u8]) -> String {
        use sha2::Digest as _;
        match self {
            HashAlgorithm::Md5 => hex(&md5::Md5::digest(data)),
            HashAlgorithm::Sha1 => hex(&sha1::Sha1::digest(data)),
            HashAlgorithm::Sha256 => hex(&sha2::Sha256::digest(data)),
            HashAlgorithm::Sha384 => hex(&sha2::Sha384::digest(data)),
            HashAlgorithm::Sha512 => hex(&sha2::Sha512::digest(data)),
        }
    }
}

/// The hex digest of `data` by an algorithm named as AWS names them (`MD5`, `SHA-1`,
/// `SHA-256`, `SHA-384`, `SHA-512`); `None` for any other name. JSONata's `$hash` too.
pub fn hash_hex(data: &str, algorithm: &str) -> Option<String> {
    HashAlgorithm::from_name(algorithm).map(|a| a.hex_digest(data.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The distinct items of `items`, first occurrences in order. Items are bucketed by a hash
/// consistent with JSON equality, so large arrays are not compared pairwise.
fn unique(items: &[Value]) -> Vec<Value> {
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hash_json(item, &mut hasher);
        let bucket = buckets.entry(hasher.finish()).or_default();
        if !bucket.iter().any(|&i| out[i] == *item) {
            bucket.push(out.len());
            out.push(item.clone());
        }
    }
    out
}

/// Hashes a value so that equal values (as `serde_json` compares them: object key order
/// ignored, `1` and `1.0` distinct) hash alike.
fn hash_json<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => (0u8, u).hash(h),
                (None, Some(i), _) => (1u8, i).hash(h),
                // 0.0 and -0.0 are equal, so they must hash alike.
                (None, None, Some(f)) => (2u8, if f == 0.0 { 0 } else { f.to_bits() }).hash(h),
                _ => {}
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            a.iter().for_each(|x| hash_json(x, h));
        }
        Value::Object(m) => {
            // Order-independent: combine the entries' own hashes commutatively.
            let mut sum: u64 = 0;
            for (k, x) in m {
                let mut eh = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut eh);
                hash_json(x, &mut eh);
                sum = sum.wrapping_add(eh.finish());
            }
            (5u8, m.len(), sum).hash(h);
        }
    }
}

/// A hand-written recursive-descent parser over the call's text.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, msg: &str) -> String {
        format!("{msg} at offset {} in '{}'", self.pos, self.src)
    }

    /// `States.Name(arg, ...)`, starting at `States.`.
    fn call(&mut self, depth: usize) -> Result<Call, String> {
        if depth >= MAX_DEPTH {
            return Err(self.error("intrinsic functions are nested too deeply"));
        }
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(self.rest().len());
        self.pos += len;
        let name = &self.src[start..self.pos];
        let func =
            Func::from_name(name).ok_or_else(|| format!("unknown intrinsic function '{name}'"))?;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error(&format!("expected '(' after {name}")));
        }
        self.pos += 1;
        self.skip_ws();
        let mut args = Vec::new();
        let mut raw_template = None;
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                let (arg, raw) = self.arg(depth)?;
                if args.is_empty() {
                    raw_template = raw;
                }
                args.push(arg);
                self.skip_ws();
                match self.peek() {
                    Some(',') => {
                        self.pos += 1;
                        self.skip_ws();
                    }
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => return Err(self.error("expected ',' or ')' after an argument")),
                    None => return Err(self.error(&format!("missing ')' closing {name}"))),
                }
            }
        }
        Call::new(func, args, raw_template)
    }

    /// One argument; for a string literal, also its text as written (for templates).
    fn arg(&mut self, depth: usize) -> Result<(Arg, Option<&'a str>), String> {
        match self.peek() {
            Some('\'') => {
                let raw = self.string_literal()?;
                Ok((Arg::Literal(Value::String(unescape(raw)?)), Some(raw)))
            }
            Some('$') => self.path().map(|p| (Arg::Path(p), None)),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                self.number().map(|n| (Arg::Literal(n), None))
            }
            Some(_) if self.rest().starts_with("States.") => {
                let call = self.call(depth + 1)?;
                Ok((Arg::Call(Box::new(call)), None))
            }
            Some(_) => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    let rest = self.rest();
                    if rest.starts_with(word)
                        && rest[word.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| c == ',' || c == ')' || c.is_whitespace())
                    {
                        self.pos += word.len();
                        return Ok((Arg::Literal(value), None));
                    }
                }
                Err(self.error("expected an argument (a 'string', number, true, false, null, a $path or a States. call)"))
            }
            None => Err(self.error("expected an argument")),
        }
    }

    /// A single-quoted string; returns its text between the quotes, escapes undecoded.
    fn string_literal(&mut self) -> Result<&'a str, String> {
        let open = self.pos;
        self.pos += 1;
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '\'' => {
                    let body = &self.src[open + 1..open + 1 + i];
                    self.pos = open + 1 + i + 1;
                    return Ok(body);
                }
                _ => {}
            }
        }
        self.pos = open;
        Err(self.error("unterminated string literal"))
    }

    /// A path runs to the `,` or `)` that ends the argument; brackets and quotes inside
    /// it (`$['a,b']`, `$[?(@.x)]`) do not end it.
    fn path(&mut self) -> Result<JsonPath, String> {
        let start = self.pos;
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut chars = self.rest().char_indices();
        let mut end = self.rest().len();
        while let Some((i, c)) = chars.next() {
            match (quote, c) {
                (Some(_), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') if depth > 0 => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, ')') if depth > 0 => depth -= 1,
                // A union inside brackets (`$.l[0,1]`) is part of the path.
                (None, ',') if depth > 0 => {}
                (None, ',' | ')') => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let text = self.rest()[..end].trim_end();
        self.pos = start + end;
        JsonPath::parse(text).map_err(|e| e.to_string())
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<Value, String> {
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(self.rest().len());
        let text = &self.rest()[..len];
        let n: serde_json::Number = serde_json::from_str(text)
            .map_err(|_| self.error(&format!("invalid number '{text}'")))?;
        self.pos += len;
        Ok(Value::Number(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::scope::DocScope;
    use serde_json::{json, Map};
    use std::path::Path;

    fn eval_in(src: &str, input: &Value) -> Result<Value, EvalError> {
        let context = json!({"Execution": {"Input": input}});
        let scope = DocScope {
            input,
            context: &context,
        };
        Intrinsic::parse(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .eval(&scope)
    }

    fn eval(src: &str) -> Value {
        eval_in(src, &json!({})).unwrap_or_else(|e| panic!("{src}: {e}"))
    }

    fn eval_err(src: &str, input: &Value) -> EvalError {
        match eval_in(src, input) {
            Ok(v) => panic!("{src} should fail, got {v}"),
            Err(e) => e,
        }
    }

    #[test]
    fn fixed_result_bounds_hold_at_the_extremes() {
        let input = json!({"long": (0..300).collect::<Vec<_>>(), "text": "x".repeat(9000)});
        let calls = [
            "States.MathAdd(-2147483648, 0)",
            "States.MathAdd(2147483646, 1)",
            "States.MathAdd(-1.5, 0)",
            "States.MathRandom(-2147483648, -2147483647)",
            "States.MathRandom(-2147483648, 2147483647, 7)",
            "States.ArrayLength($.long)",
            "States.ArrayContains($.long, 299)",
            "States.ArrayContains($.long, 'no')",
            "States.UUID()",
            "States.Hash($.text, 'SHA-512')",
            "States.Hash($.long, 'SHA-384')",
            "States.Hash('', 'MD5')",
        ];
        for src in calls {
            let bound = Intrinsic::parse(src).unwrap().result_bound();
            let bound = bound.unwrap_or_else(|| panic!("{src}: no fixed bound"));
            let result = eval_in(src, &input).unwrap_or_else(|e| panic!("{src}: {e}"));
            let extent = crate::asl::size::extent(&result);
            assert!(
                extent.bytes <= bound.bytes && extent.depth <= bound.depth,
                "{src}: {result} is {extent:?}, over {bound:?}"
            );
        }
        // Results that grow with their arguments have none.
        for src in ["States.Format('{}', $.text)", "States.ArrayRange(1, 3, 1)"] {
            assert_eq!(Intrinsic::parse(src).unwrap().result_bound(), None, "{src}");
        }
    }

    #[test]
    fn string_literals_decode_escapes() {
        assert_eq!(
            eval(r"States.Array('it\'s', 'a\\b', '\{\}', 'x\ny')"),
            json!(["it's", "a\\b", "{}", "x\ny"])
        );
        assert_eq!(eval(r"States.Format('\{{}\}', 'x')"), json!("{x}"));
        assert_eq!(eval(r"States.Format('\u0041{}', 1)"), json!("A1"));
        // A literal `{` outside Format is just a character.
        assert_eq!(
            eval(r#"States.StringToJson('{"a": [1, "b,c)"]}')"#),
            json!({"a": [1, "b,c)"]})
        );
        assert_eq!(eval("States.Array('')"), json!([""]));
    }

    #[test]
    fn numbers_booleans_null_and_whitespace() {
        assert_eq!(
            eval("States.Array( 1 ,-2,3.5, -1e2 , true,false ,null )"),
            json!([1, -2, 3.5, -100.0, true, false, null])
        );
        assert_eq!(eval("  States.Array()  "), json!([]));
    }

    #[test]
    fn nested_calls_and_paths() {
        let input = json!({"a": "x", "b": [1, 2, 3], "odd,key)": 5, "items": [{"v": 1}, {"v": 2}]});
        assert_eq!(
            eval_in(
                "States.Format('{} {}', $.a, States.ArrayLength($.b))",
                &input
            )
            .unwrap(),
            json!("x 3")
        );
        assert_eq!(
            eval_in("States.Array($['odd,key)'], $.b[0])", &input).unwrap(),
            json!([5, 1])
        );
        assert_eq!(
            eval_in("States.Array($.items[?(@.v > 1)].v)", &input).unwrap(),
            json!([[2]])
        );
        assert_eq!(
            eval_in("States.Array($$.Execution.Input.a)", &input).unwrap(),
            json!(["x"])
        );
        assert_eq!(
            eval("States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit('arn:aws:x/y.z/w', '/'), 1), '.'), 1)"),
            json!("z")
        );
    }

    #[test]
    fn malformed_calls_are_errors_not_panics() {
        for bad in [
            "",
            "States",
            "States.",
            "States.Nope()",
            "States.Format",
            "States.Format(",
            "States.Format('x'",
            "States.Format('x',)",
            "States.Format('unterminated)",
            "States.Format('a\\",
            "States.Format('{}')",
            "States.Format('{} {}', 1)",
            "States.Format('}', 1)",
            "States.Format('{', 1)",
            "States.Format('{{}}', 1)",
            "States.Format(1)",
            "States.Array(1) trailing",
            "States.Array(1 2)",
            "States.Array(tru)",
            "States.Array(1.2.3)",
            "States.Array(--1)",
            "States.Array(1e999)",
            "States.Array('\\u12')",
            "States.Array($.a[)",
            "States.Array($.)",
            "States.Array(foo)",
            "States.ArrayLength()",
            "States.ArrayLength($.a, $.b)",
            "States.ArrayLength('x')",
            "States.MathAdd(1)",
            "States.MathRandom(1, 2, 3, 4)",
            "States.Hash('x', 'SHA256')",
            "States.JsonMerge($.a, $.b, true)",
            "States.UUID(1)",
            "States.Array(States.Nope())",
            "States.Array(\u{e9}, 'é')",
        ] {
            assert!(Intrinsic::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let deep = format!("{}1{}", "States.Array(".repeat(100), ")".repeat(100));
        assert!(Intrinsic::parse(&deep).is_err());
    }

    #[test]
    fn format_prints_values_like_java() {
        let input =
            json!({"o": {"a": 1, "b": [true, null, "s"], "c": {"d": 1.5}}, "n": 10, "f": 0.1});
        assert_eq!(
            eval_in("States.Format('{}|{}|{}', $.o, $.n, $.f)", &input).unwrap(),
            json!("{a=1, b=[true, null, s], c={d=1.5}}|10|0.1")
        );
        let input = json!({"t": "It's {}!", "bad": "{", "num": 3});
        assert_eq!(
            eval_in("States.Format($.t, 'me')", &input).unwrap(),
            json!("It's me!")
        );
        for src in [
            "States.Format($.bad, 1)",
            "States.Format($.num)",
            "States.Format($.t)",
        ] {
            assert_eq!(eval_err(src, &input).error, names::RUNTIME);
        }
    }

    #[test]
    fn runtime_argument_errors() {
        let input = json!({"s": "x", "arr": [1, 2, 3], "o": {}, "big": 3000000000i64, "huge": "a".repeat(10_001)});
        for src in [
            "States.ArrayLength($.s)",
            "States.ArrayGetItem($.arr, 3)",
            "States.ArrayGetItem($.arr, -1)",
            "States.ArrayGetItem($.arr, $.s)",
            "States.ArrayPartition($.arr, 0)",
            "States.ArrayPartition($.arr, 0.6)",
            "States.ArrayPartition($.arr, -1)",
            "States.ArrayRange(1, 1001, 1)",
            "States.ArrayRange(1, 10, 0)",
            "States.ArrayRange(0, 2147483647, 1)",
            "States.ArrayRange(1, $.big, 1)",
            "States.MathAdd(2147483647, 1)",
            "States.MathAdd($.big, 1)",
            "States.MathAdd($.s, 1)",
            "States.MathRandom(1, 1)",
            "States.MathRandom(5, 1)",
            "States.MathRandom(1, 10, $.o)",
            "States.StringToJson('{not json')",
            "States.StringSplit($.arr, ',')",
            "States.JsonMerge($.o, $.arr, false)",
            "States.Hash($.s, $.s)",
            "States.Hash($.huge, 'MD5')",
            "States.Base64Encode($.huge)",
            "States.Base64Decode($.o)",
        ] {
            let e = eval_err(src, &input);
            assert_eq!(e.error, names::RUNTIME, "{src}");
            assert!(
                e.detail.starts_with("Invalid arguments in States."),
                "{src}: {}",
                e.detail
            );
        }
        let e = eval_err("States.ArrayLength($.missing)", &input);
        assert_eq!(e.error, names::RUNTIME);
        assert!(e
            .detail
            .starts_with("The JSONPath '$.missing' could not be found in the input '{\"s\":\"x\""));
    }

    #[test]
    fn array_functions() {
        assert_eq!(eval("States.ArrayRange(5, 1, -2)"), json!([5, 3, 1]));
        assert_eq!(eval("States.ArrayRange(1, 5, -1)"), json!([]));
        assert_eq!(eval("States.ArrayRange(3, 3, -1)"), json!([3]));
        assert_eq!(eval("States.ArrayRange(1.6, 5.4, 2.2)"), json!([1, 3, 5]));
        assert_eq!(
            eval("States.ArrayRange(1, 1000, 1)")
                .as_array()
                .map(Vec::len),
            Some(1000)
        );
        assert_eq!(
            eval("States.ArrayRange(-2147483648, 2147483647, 2147483647)"),
            json!([-2147483648i64, -1, 2147483646])
        );
        assert_eq!(
            eval("States.ArrayPartition(States.Array(1,2,3,4,5), 2.9)"),
            json!([[1, 2], [3, 4], [5]])
        );
        assert_eq!(
            eval("States.ArrayGetItem(States.Array('a', 'b'), 1.7)"),
            json!("b")
        );
        let input = json!({"a": [1, 1.0, {"x": 1, "y": 2}, {"y": 2, "x": 1}, [1], [1], "1", null, null, -0.0, 0.0]});
        assert_eq!(
            eval_in("States.ArrayUnique($.a)", &input).unwrap(),
            json!([1, 1.0, {"x": 1, "y": 2}, [1], "1", null, -0.0])
        );
        assert_eq!(
            eval("States.ArrayContains(States.Array(States.Array(1)), States.Array(1))"),
            json!(true)
        );
    }

    #[test]
    fn math_functions() {
        assert_eq!(eval("States.MathAdd(-1.5, 0)"), json!(-1));
        assert_eq!(eval("States.MathAdd(2.5, -0.5)"), json!(3));
        assert_eq!(
            eval("States.MathAdd(-2147483648, 0)"),
            json!(-2147483648i64)
        );
        let a = eval("States.MathRandom(1, 1000, 42)");
        assert_eq!(a, eval("States.MathRandom(1, 1000, 42)"));
        for _ in 0..100 {
            let n = eval("States.MathRandom(-3, 2)").as_i64().unwrap_or(99);
            assert!((-3..2).contains(&n));
        }
        assert_eq!(eval("States.MathRandom(1.6, 2.4, 1.5)"), json!(1));
    }

    #[test]
    fn encoding_and_hashing() {
        assert_eq!(eval("States.Base64Encode('hello')"), json!("aGVsbG8="));
        assert_eq!(eval("States.Base64Decode('aGVsbG8=')"), json!("hello"));
        // Java's basic decoder, as AWS's: no character outside the alphabet, blanks included.
        for bad in ["' YWJj\\nZA== '", "'bad!'", "'QQ==QQ'"] {
            let e = eval_err(&format!("States.Base64Decode({bad})"), &json!({}));
            assert_eq!(e.error, names::RUNTIME, "{bad}");
        }
        assert_eq!(eval("States.Base64Decode('abc')"), json!("i\u{fffd}"));
        assert_eq!(eval("States.Base64Decode('4pyT')"), json!("✓"));
        assert_eq!(
            eval("States.Hash('hello', 'MD5')"),
            json!("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(
            eval("States.Hash('hello', 'SHA-512')"),
            json!("9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043")
        );
        let uuid = eval("States.UUID()");
        let uuid = uuid.as_str().unwrap_or_default();
        assert_eq!((uuid.len(), uuid.as_bytes().get(14)), (36, Some(&b'4')));
    }

    #[test]
    fn json_functions() {
        let input = json!({"a": {"x": 1, "y": {"z": 1}}, "b": {"y": 2, "w": 3}});
        let merged = eval_in("States.JsonMerge($.a, $.b, false)", &input).unwrap();
        assert_eq!(json_text(&merged), r#"{"x":1,"y":2,"w":3}"#);
        // A second object a nested call made is moved in: the same keys, order and values.
        let made = r#"States.JsonMerge($.a, States.StringToJson('{"y": 2, "w": 3}'), false)"#;
        let merged = eval_in(made, &input).unwrap();
        assert_eq!(json_text(&merged), r#"{"x":1,"y":2,"w":3}"#);
        assert_eq!(
            eval("States.JsonToString(States.StringToJson(' {\"b\": 1, \"a\": [1.5]} '))"),
            json!(r#"{"b":1,"a":[1.5]}"#)
        );
        assert_eq!(eval("States.StringToJson('  ')"), json!(null));
    }

    // ---- The conformance corpus (recorded on AWS) ----

    /// JSON equality with numbers compared by value (`1 == 1.0`), as the corpus runner does.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// Applies a payload template (`Parameters`) the simple way: `.$` keys hold an intrinsic
    /// or a path, other values are copied (objects walked).
    fn apply_template(template: &Value, scope: &dyn Scope) -> Result<Value, EvalError> {
        let Value::Object(fields) = template else {
            return Ok(template.clone());
        };
        let mut out = Map::new();
        for (key, value) in fields {
            match (key.strip_suffix(".$"), value) {
                (Some(name), Value::String(expr)) => {
                    let v = eval_expr(expr, scope)?;
                    out.insert(name.to_string(), v);
                }
                _ => {
                    out.insert(key.clone(), apply_template(value, scope)?);
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn eval_expr(expr: &str, scope: &dyn Scope) -> Result<Value, EvalError> {
        if is_intrinsic(expr) {
            let call = Intrinsic::parse(expr).map_err(EvalError::runtime)?;
            call.eval(scope)
        } else {
            let path = JsonPath::parse(expr).map_err(|e| EvalError::runtime(e.to_string()))?;
            scope
                .select(&path)
                .map(Cow::into_owned)
                .ok_or_else(|| EvalError::runtime(format!("path {expr} selects nothing")))
        }
    }

    /// Runs a one-state machine (a Pass state with Parameters, or a Fail state with
    /// ErrorPath/CausePath); `None` when the case needs more than that.
    fn run_simple_case(case: &Value) -> Option<Value> {
        let states = case["definition"]["States"].as_object()?;
        if states.len() != 1 {
            return None;
        }
        let state = states.values().next()?.as_object()?;
        let input = &case["input"];
        let context = json!({"Execution": {"Input": input}});
        let scope = DocScope {
            input,
            context: &context,
        };
        let known = [
            "Type",
            "Parameters",
            "End",
            "ResultPath",
            "OutputPath",
            "ErrorPath",
            "CausePath",
        ];
        if state.keys().any(|k| !known.contains(&k.as_str())) {
            return None;
        }
        let failed =
            |e: EvalError| json!({"status": "FAILED", "error": e.error, "cause": e.detail});
        match state.get("Type")?.as_str()? {
            "Pass" => {
                let result = match apply_template(state.get("Parameters")?, &scope) {
                    Ok(v) => v,
                    Err(e) => return Some(failed(e)),
                };
                let mut output = result.clone();
                if let Some(rp) = state.get("ResultPath").and_then(Value::as_str) {
                    output = input.clone();
                    JsonPath::parse(rp).ok()?.assign(&mut output, result).ok()?;
                }
                if let Some(op) = state.get("OutputPath").and_then(Value::as_str) {
                    output = JsonPath::parse(op).ok()?.select(&output)?.into_owned();
                }
                Some(json!({"status": "SUCCEEDED", "output": output}))
            }
            "Fail" => {
                let field = |name: &str| -> Result<Value, EvalError> {
                    match state.get(name).and_then(Value::as_str) {
                        Some(expr) => eval_expr(expr, &scope),
                        None => Ok(Value::Null),
                    }
                };
                match (field("ErrorPath"), field("CausePath")) {
                    (Ok(error), Ok(cause)) => {
                        Some(json!({"status": "FAILED", "error": error, "cause": cause}))
                    }
                    (Err(e), _) | (_, Err(e)) => Some(failed(e)),
                }
            }
            _ => None,
        }
    }

    fn matches_expected(actual: &Value, expected: &Value) -> bool {
        if actual["status"] != expected["status"] {
            return false;
        }
        if expected["status"] == "SUCCEEDED" {
            same(&actual["output"], &expected["output"])
        } else {
            actual["error"] == expected["error"] && actual["cause"] == expected["cause"]
        }
    }

    #[test]
    fn conformance_corpus() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
        let Ok(categories) = std::fs::read_dir(&root) else {
            eprintln!(
                "conformance corpus not found at {}; skipped",
                root.display()
            );
            return;
        };
        let mut files: Vec<_> = categories
            .flatten()
            .filter_map(|c| std::fs::read_dir(c.path()).ok())
            .flat_map(|dir| dir.flatten().map(|f| f.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let (mut run, mut passed, mut skipped_intrinsic) = (0, 0, 0);
        let mut failures = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let Ok(case) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let in_category = file
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "intrinsic_functions");
            let uses_intrinsics = case["definition"].to_string().contains("States.");
            if !in_category && !uses_intrinsics {
                continue;
            }
            let Some(actual) = run_simple_case(&case) else {
                skipped_intrinsic += usize::from(in_category);
                continue;
            };
            run += 1;
            if matches_expected(&actual, &case["expected"]) {
                passed += 1;
            } else {
                failures.push(format!(
                    "{}: expected {}, got {actual}",
                    file.display(),
                    case["expected"]
                ));
            }
        }
        eprintln!(
            "conformance: {passed}/{run} simple cases pass \
             ({skipped_intrinsic} intrinsic_functions cases skipped: not a single JSONPath Pass/Fail state)"
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(run > 0);
    }
}
