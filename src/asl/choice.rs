//! Choice rules: compiled once, evaluated against a scope.
//!
//! A rule is either a boolean expression (`And`, `Or`, `Not`) or a data-test expression: a
//! `Variable` path plus exactly one comparison operator. Compiling checks everything a
//! definition can get wrong and pre-parses paths, literal timestamps and `StringMatches`
//! patterns, so that evaluating only selects values and compares them, without allocating.

use super::diagnostic::{pointer_push, type_name, Diagnostic};
use super::error::EvalError;
use super::path::JsonPath;
use super::scope::Scope;
use super::timestamp;
use chrono::{DateTime, FixedOffset};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

use super::diagnostic::codes::*;

#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceRule {
    expr: Expr,
}

impl ChoiceRule {
    /// Compiles one rule: a top-level Choices element (its `Next`, `Assign` and `Comment`
    /// are ignored here) or a nested rule. Never panics; any problem is an `Err`.
    pub fn compile(rule: &Value) -> Result<ChoiceRule, String> {
        let mut diags = Vec::new();
        match parse_rule(rule, "", Level::Compiled, &mut diags) {
            Some(expr) if diags.is_empty() => Ok(ChoiceRule { expr }),
            _ if diags.is_empty() => Err("invalid Choice rule".to_string()),
            _ => Err(diags
                .iter()
                .map(|d| match d.pointer.as_str() {
                    "" => d.message.clone(),
                    p => format!("{p}: {}", d.message),
                })
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    /// Whether the rule matches. Fails with `States.Runtime` when `Variable` (other than for
    /// `IsPresent`) or a `…Path` operand selects nothing.
    pub fn eval(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        self.expr.eval(scope)
    }
}

/// Reports every problem of one rule at `pointer` (JSON pointer of the rule, e.g.
/// `/States/Check/Choices/0`). `top_level` rules must carry `Next`; nested ones (inside
/// `And`/`Or`/`Not`) must not.
pub fn validate_rule(rule: &Value, pointer: &str, top_level: bool, diags: &mut Vec<Diagnostic>) {
    let level = if top_level { Level::Top } else { Level::Nested };
    parse_rule(rule, pointer, level, diags);
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Test { variable: JsonPath, test: Test },
}

#[derive(Clone, Debug, PartialEq)]
enum Test {
    IsPresent(bool),
    IsType(TypeCheck, bool),
    Matches(Glob),
    Compare(Relation, Operand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TypeCheck {
    Null,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

/// How a comparison reads its two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

/// The right-hand side of a comparison: a literal, pre-parsed, or a path read at run time.
#[derive(Clone, Debug, PartialEq)]
enum Operand {
    String(String),
    Number(Number),
    Boolean(bool),
    Timestamp(DateTime<FixedOffset>),
    Path(Kind, JsonPath),
}

/// A value read as one kind: borrowed, except timestamps, which are parsed on the spot.
#[derive(Clone, Copy)]
enum Typed<'a> {
    String(&'a str),
    Number(&'a Number),
    Boolean(bool),
    Timestamp(DateTime<FixedOffset>),
}

/// The comparison operators; each also exists with a `…Path` suffix, whose value is a path
/// to the value to compare against.
const COMPARISONS: &[(&str, Kind, Relation)] = &[
    ("StringEquals", Kind::String, Relation::Equals),
    ("StringLessThan", Kind::String, Relation::LessThan),
    ("StringGreaterThan", Kind::String, Relation::GreaterThan),
    (
        "StringLessThanEquals",
        Kind::String,
        Relation::LessThanEquals,
    ),
    (
        "StringGreaterThanEquals",
        Kind::String,
        Relation::GreaterThanEquals,
    ),
    ("NumericEquals", Kind::Numeric, Relation::Equals),
    ("NumericLessThan", Kind::Numeric, Relation::LessThan),
    ("NumericGreaterThan", Kind::Numeric, Relation::GreaterThan),
    (
        "NumericLessThanEquals",
        Kind::Numeric,
        Relation::LessThanEquals,
    ),
    (
        "NumericGreaterThanEquals",
        Kind::Numeric,
        Relation::GreaterThanEquals,
    ),
    ("BooleanEquals", Kind::Boolean, Relation::Equals),
    ("TimestampEquals", Kind::Timestamp, Relation::Equals),
    ("TimestampLessThan", Kind::Timestamp, Relation::LessThan),
    (
        "TimestampGreaterThan",
        Kind::Timestamp,
        Relation::GreaterThan,
    ),
    (
        "TimestampLessThanEquals",
        Kind::Timestamp,
        Relation::LessThanEquals,
    ),
    (
        "TimestampGreaterThanEquals",
        Kind::Timestamp,
        Relation::GreaterThanEquals,
    ),
];

const TYPE_TESTS: &[(&str, TypeCheck)] = &[
    ("IsNull", TypeCheck::Null),
    ("IsNumeric", TypeCheck::Numeric),
    ("IsString", TypeCheck::String),
    ("IsBoolean", TypeCheck::Boolean),
    ("IsTimestamp", TypeCheck::Timestamp),
];

/// What an operator field of a rule is.
#[derive(Clone, Copy)]
enum Operator {
    And,
    Or,
    Not,
    IsPresent,
    IsType(TypeCheck),
    Matches,
    Compare {
        kind: Kind,
        relation: Relation,
        path: bool,
    },
}

impl Operator {
    fn lookup(name: &str) -> Option<Operator> {
        match name {
            "And" => return Some(Operator::And),
            "Or" => return Some(Operator::Or),
            "Not" => return Some(Operator::Not),
            "IsPresent" => return Some(Operator::IsPresent),
            "StringMatches" => return Some(Operator::Matches),
            _ => {}
        }
        if let Some(&(_, check)) = TYPE_TESTS.iter().find(|(n, _)| *n == name) {
            return Some(Operator::IsType(check));
        }
        let (base, path) = match name.strip_suffix("Path") {
            Some(base) => (base, true),
            None => (name, false),
        };
        COMPARISONS
            .iter()
            .find(|(n, ..)| *n == base)
            .map(|&(_, kind, relation)| Operator::Compare {
                kind,
                relation,
                path,
            })
    }

    fn is_boolean(self) -> bool {
        matches!(self, Operator::And | Operator::Or | Operator::Not)
    }
}

/// Where a rule sits, which decides what it may say about `Next` and `Assign`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// A Choices element being validated: `Next` is required.
    Top,
    /// The rule given to `compile`: its `Next` (if any) is the caller's business.
    Compiled,
    /// Inside `And`, `Or` or `Not`: no `Next`.
    Nested,
}

/// What one operator field compiles to.
enum Node {
    Expr(Expr),
    Test(Test),
}

/// Checks one rule, reporting every problem into `diags`; returns the compiled rule when
/// it (and everything nested in it) is valid.
fn parse_rule(rule: &Value, ptr: &str, level: Level, diags: &mut Vec<Diagnostic>) -> Option<Expr> {
    let Some(fields) = rule.as_object() else {
        diags.push(Diagnostic::new(
            INVALID_TYPE,
            ptr,
            format!("a Choice rule must be an object, got {}", type_name(rule)),
        ));
        return None;
    };
    let reported = diags.len();
    let mut variable = None;
    let mut operators = Vec::new();
    for (key, value) in fields {
        let at = || pointer_push(ptr, key);
        match key.as_str() {
            "Comment" => {}
            "Next" => match level {
                Level::Nested => diags.push(Diagnostic::new(
                    CHOICE_RULE_NESTED_NEXT,
                    at(),
                    "a rule nested in And/Or/Not cannot have Next",
                )),
                Level::Top if !value.is_string() => diags.push(Diagnostic::new(
                    INVALID_TYPE,
                    at(),
                    format!("Next must be a state name, got {}", type_name(value)),
                )),
                Level::Top | Level::Compiled => {}
            },
            // Top-level rules may assign variables when they match; the caller handles it.
            "Assign" if level != Level::Nested => {}
            "Variable" => variable = Some(value),
            _ => match Operator::lookup(key) {
                Some(op) => operators.push((key.as_str(), op, value)),
                None => diags.push(Diagnostic::new(
                    CHOICE_RULE_UNKNOWN_FIELD,
                    at(),
                    format!("'{key}' is not a Choice rule field"),
                )),
            },
        }
    }
    if level == Level::Top && !fields.contains_key("Next") {
        diags.push(Diagnostic::new(
            CHOICE_RULE_MISSING_NEXT,
            ptr,
            "a top-level Choice rule must have Next",
        ));
    }

    match operators.as_slice() {
        [] => diags.push(Diagnostic::new(
            CHOICE_RULE_NO_OPERATOR,
            ptr,
            "a Choice rule needs one operator (a comparison such as StringEquals, or And/Or/Not)",
        )),
        [_] => {}
        [_, (extra, ..), ..] => {
            let names: Vec<&str> = operators.iter().map(|(name, ..)| *name).collect();
            diags.push(Diagnostic::new(
                CHOICE_RULE_MULTIPLE_OPERATORS,
                pointer_push(ptr, extra),
                format!(
                    "a Choice rule takes exactly one operator, found {}",
                    names.join(", ")
                ),
            ));
        }
    }

    // A boolean expression has no Variable; a comparison needs one.
    let is_test = operators.iter().any(|(_, op, _)| !op.is_boolean());
    let variable = match variable {
        Some(_) if !is_test && !operators.is_empty() => {
            diags.push(Diagnostic::new(
                CHOICE_RULE_UNKNOWN_FIELD,
                pointer_push(ptr, "Variable"),
                "Variable has no meaning in an And/Or/Not rule",
            ));
            None
        }
        Some(v) => parse_variable(v, &pointer_push(ptr, "Variable"), diags),
        None if is_test => {
            diags.push(Diagnostic::new(
                CHOICE_RULE_MISSING_VARIABLE,
                ptr,
                "a comparison needs a Variable",
            ));
            None
        }
        None => None,
    };

    let mut nodes: Vec<Option<Node>> = operators
        .iter()
        .map(|&(name, op, value)| parse_operator(name, op, value, &pointer_push(ptr, name), diags))
        .collect();
    if diags.len() > reported {
        return None;
    }
    // Valid from here on: exactly one operator, and a Variable exactly when it is a test.
    match nodes.pop()?? {
        Node::Expr(expr) => Some(expr),
        Node::Test(test) => Some(Expr::Test {
            variable: variable?,
            test,
        }),
    }
}

fn parse_variable(value: &Value, ptr: &str, diags: &mut Vec<Diagnostic>) -> Option<JsonPath> {
    let Some(src) = value.as_str() else {
        diags.push(Diagnostic::new(
            INVALID_TYPE,
            ptr,
            format!(
                "Variable must be a JSONPath string, got {}",
                type_name(value)
            ),
        ));
        return None;
    };
    // Any JSONPath: an indefinite one (filter, wildcard) tests the array of its matches, as
    // Jayway hands it to AWS. Rejecting it would refuse definitions AWS accepts.
    parse_path(src, ptr, diags)
}

fn parse_path(src: &str, ptr: &str, diags: &mut Vec<Diagnostic>) -> Option<JsonPath> {
    JsonPath::parse(src)
        .map_err(|e| diags.push(Diagnostic::new(INVALID_PATH, ptr, e.to_string())))
        .ok()
}

fn parse_operator(
    name: &str,
    op: Operator,
    value: &Value,
    ptr: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Node> {
    match (op, value) {
        (Operator::And | Operator::Or, Value::Array(items)) if !items.is_empty() => {
            // Parse every item so that each reports its own problems.
            let rules: Vec<Option<Expr>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_rule(
                        item,
                        &pointer_push(ptr, &i.to_string()),
                        Level::Nested,
                        diags,
                    )
                })
                .collect();
            let rules = rules.into_iter().collect::<Option<Vec<_>>>()?;
            Some(Node::Expr(if matches!(op, Operator::And) {
                Expr::And(rules)
            } else {
                Expr::Or(rules)
            }))
        }
        (Operator::And | Operator::Or, _) => {
            diags.push(Diagnostic::new(
                CHOICE_RULE_EMPTY_BOOLEAN,
                ptr,
                format!("{name} must be a non-empty array of rules"),
            ));
            None
        }
        (Operator::Not, _) => {
            let rule = parse_rule(value, ptr, Level::Nested, diags)?;
            Some(Node::Expr(Expr::Not(Box::new(rule))))
        }
        _ => match parse_test(name, op, value) {
            Ok(test) => Some(Node::Test(test)),
            Err((code, message)) => {
                diags.push(Diagnostic::new(code, ptr, message));
                None
            }
        },
    }
}

/// Compiles a data-test operator's value; on failure, the diagnostic code and message.
fn parse_test(name: &str, op: Operator, value: &Value) -> Result<Test, (&'static str, String)> {
    let invalid = |expected: &str| {
        let message = format!("{name} must be {expected}, got {}", type_name(value));
        Err((CHOICE_RULE_INVALID_VALUE, message))
    };
    let (relation, operand) = match (op, value) {
        (Operator::IsPresent, Value::Bool(b)) => return Ok(Test::IsPresent(*b)),
        (Operator::IsType(check), Value::Bool(b)) => return Ok(Test::IsType(check, *b)),
        (Operator::IsPresent | Operator::IsType(_), _) => return invalid("true or false"),
        (Operator::Matches, Value::String(s)) => return Ok(Test::Matches(Glob::new(s))),
        (Operator::Matches, _) => return invalid("a string pattern"),
        (Operator::And | Operator::Or | Operator::Not, _) => {
            return Err((CHOICE_RULE_INVALID_VALUE, format!("{name} is not a test")))
        }
        (
            Operator::Compare {
                kind,
                relation,
                path: true,
            },
            Value::String(s),
        ) => {
            let path = JsonPath::parse(s).map_err(|e| (INVALID_PATH, e.to_string()))?;
            (relation, Operand::Path(kind, path))
        }
        (Operator::Compare { path: true, .. }, _) => return invalid("a JSONPath string"),
        (Operator::Compare { kind, relation, .. }, _) => match (kind, value) {
            (Kind::String, Value::String(s)) => (relation, Operand::String(s.clone())),
            (Kind::Numeric, Value::Number(n)) => (relation, Operand::Number(n.clone())),
            (Kind::Boolean, Value::Bool(b)) => (relation, Operand::Boolean(*b)),
            (Kind::Timestamp, Value::String(s)) => match timestamp::parse(s) {
                Some(t) => (relation, Operand::Timestamp(t)),
                None => return invalid("an ISO-8601 timestamp such as 2016-03-14T01:59:00Z"),
            },
            (Kind::String, _) => return invalid("a string"),
            (Kind::Numeric, _) => return invalid("a number"),
            (Kind::Boolean, _) => return invalid("true or false"),
            (Kind::Timestamp, _) => return invalid("a timestamp string"),
        },
    };
    Ok(Test::Compare(relation, operand))
}

impl Expr {
    fn eval(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        match self {
            Expr::And(rules) => {
                for rule in rules {
                    if !rule.eval(scope)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Expr::Or(rules) => {
                for rule in rules {
                    if rule.eval(scope)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Expr::Not(rule) => Ok(!rule.eval(scope)?),
            Expr::Test { variable, test } => {
                // IsPresent is the one test that may look at nothing.
                if let Test::IsPresent(expected) = test {
                    return Ok(scope.select(variable).is_some() == *expected);
                }
                let value = select(scope, variable)?;
                test.eval(&value, scope)
            }
        }
    }
}

impl Test {
    fn eval(&self, value: &Value, scope: &dyn Scope) -> Result<bool, EvalError> {
        Ok(match self {
            Test::IsPresent(expected) => *expected,
            Test::IsType(check, expected) => check.matches(value) == *expected,
            Test::Matches(glob) => value.as_str().is_some_and(|s| glob.matches(s)),
            Test::Compare(relation, Operand::Path(kind, path)) => {
                // The operand path must resolve even when the Variable has the wrong type.
                let other = select(scope, path)?;
                match (typed(*kind, value), typed(*kind, &other)) {
                    (Some(a), Some(b)) => relation.holds(compare(a, b)),
                    _ => false,
                }
            }
            Test::Compare(relation, literal) => {
                match (typed(literal.kind(), value), literal.typed()) {
                    (Some(a), Some(b)) => relation.holds(compare(a, b)),
                    _ => false,
                }
            }
        })
    }
}

fn select<'s>(scope: &'s dyn Scope, path: &JsonPath) -> Result<Cow<'s, Value>, EvalError> {
    scope.select(path).ok_or_else(|| {
        EvalError::runtime(format!(
            "Invalid path '{path}': The choice state's condition path references an invalid value."
        ))
    })
}

impl TypeCheck {
    fn matches(self, v: &Value) -> bool {
        match self {
            TypeCheck::Null => v.is_null(),
            TypeCheck::Numeric => v.is_number(),
            TypeCheck::String => v.is_string(),
            TypeCheck::Boolean => v.is_boolean(),
            TypeCheck::Timestamp => v.as_str().and_then(timestamp::parse).is_some(),
        }
    }
}

impl Relation {
    /// `None` (incomparable values) never holds.
    fn holds(self, ord: Option<Ordering>) -> bool {
        let Some(ord) = ord else { return false };
        match self {
            Relation::Equals => ord.is_eq(),
            Relation::LessThan => ord.is_lt(),
            Relation::GreaterThan => ord.is_gt(),
            Relation::LessThanEquals => ord.is_le(),
            Relation::GreaterThanEquals => ord.is_ge(),
        }
    }
}

impl Operand {
    fn kind(&self) -> Kind {
        match self {
            Operand::String(_) => Kind::String,
            Operand::Number(_) => Kind::Numeric,
            Operand::Boolean(_) => Kind::Boolean,
            Operand::Timestamp(_) => Kind::Timestamp,
            Operand::Path(kind, _) => *kind,
        }
    }

    /// The literal's value; a path operand is resolved by the caller instead.
    fn typed(&self) -> Option<Typed<'_>> {
        Some(match self {
            Operand::String(s) => Typed::String(s),
            Operand::Number(n) => Typed::Number(n),
            Operand::Boolean(b) => Typed::Boolean(*b),
            Operand::Timestamp(t) => Typed::Timestamp(*t),
            Operand::Path(..) => return None,
        })
    }
}

/// Reads `v` as `kind`; `None` on a type mismatch (which makes the comparison false).
fn typed(kind: Kind, v: &Value) -> Option<Typed<'_>> {
    match (kind, v) {
        (Kind::String, Value::String(s)) => Some(Typed::String(s)),
        (Kind::Numeric, Value::Number(n)) => Some(Typed::Number(n)),
        (Kind::Boolean, Value::Bool(b)) => Some(Typed::Boolean(*b)),
        (Kind::Timestamp, Value::String(s)) => timestamp::parse(s).map(Typed::Timestamp),
        _ => None,
    }
}

fn compare(a: Typed<'_>, b: Typed<'_>) -> Option<Ordering> {
    match (a, b) {
        (Typed::String(a), Typed::String(b)) => Some(java_string_cmp(a, b)),
        (Typed::Number(a), Typed::Number(b)) => compare_numbers(a, b),
        (Typed::Boolean(a), Typed::Boolean(b)) => Some(a.cmp(&b)),
        (Typed::Timestamp(a), Typed::Timestamp(b)) => Some(a.cmp(&b)),
        _ => None,
    }
}

/// Compares by value, so `1 == 1.0`; integers exactly, anything else as `f64`.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Orders strings as Java's `String.compareTo` does (by UTF-16 code unit). That differs from
/// Rust's code point order only when a supplementary character meets one in U+E000..=U+FFFF.
fn java_string_cmp(a: &str, b: &str) -> Ordering {
    let Some(i) = a.bytes().zip(b.bytes()).position(|(x, y)| x != y) else {
        return a.len().cmp(&b.len());
    };
    // Both strings share the bytes before `i`, hence the char boundary before it.
    let start = (0..=i).rev().find(|&j| a.is_char_boundary(j)).unwrap_or(0);
    match (a[start..].chars().next(), b[start..].chars().next()) {
        (Some(x), Some(y)) => utf16_lead(x).cmp(&utf16_lead(y)).then(x.cmp(&y)),
        _ => a.len().cmp(&b.len()),
    }
}

/// The first UTF-16 code unit of `c`.
fn utf16_lead(c: char) -> u32 {
    match c as u32 {
        c @ 0x10000.. => 0xD800 + ((c - 0x10000) >> 10),
        c => c,
    }
}

/// A `StringMatches` pattern: literal parts separated by `*` wildcards. `\*` is a literal
/// star and `\\` a literal backslash; any other backslash stands for itself.
#[derive(Clone, Debug, PartialEq)]
struct Glob {
    /// Always at least one part; `n` parts mean `n - 1` wildcards.
    parts: Vec<String>,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        let mut parts = vec![String::new()];
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let part = parts.last_mut().expect("parts is never empty");
            match c {
                '\\' => match chars.peek() {
                    Some(&e @ ('*' | '\\')) => {
                        part.push(e);
                        chars.next();
                    }
                    _ => part.push('\\'),
                },
                '*' => parts.push(String::new()),
                c => part.push(c),
            }
        }
        Glob { parts }
    }

    fn matches(&self, s: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return s == first;
        };
        let Some(mut s) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        // With only `*` wildcards, taking each middle part at its leftmost match is optimal.
        for part in middle {
            match s.find(part.as_str()) {
                Some(i) => s = &s[i + part.len()..],
                None => return false,
            }
        }
        s.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::error::names;
    use crate::asl::scope::DocScope;
    use serde_json::json;

    fn eval(rule: Value, input: Value) -> Result<bool, EvalError> {
        let rule = ChoiceRule::compile(&rule).expect("rule compiles");
        rule.eval(&DocScope {
            input: &input,
            context: &json!({"Execution": {"Name": "run-1"}}),
        })
    }

    fn check(rule: Value, input: Value) -> bool {
        eval(rule, input).expect("rule evaluates")
    }

    fn codes(rule: Value, top_level: bool) -> Vec<(&'static str, String)> {
        let mut diags = Vec::new();
        validate_rule(&rule, "/States/C/Choices/0", top_level, &mut diags);
        diags.into_iter().map(|d| (d.code, d.pointer)).collect()
    }

    #[test]
    fn string_comparisons() {
        let v = json!({"v": "b"});
        assert!(check(
            json!({"Variable": "$.v", "StringEquals": "b"}),
            v.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.v", "StringEquals": "B"}),
            v.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "StringLessThan": "c"}),
            v.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.v", "StringLessThan": "b"}),
            v.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "StringLessThanEquals": "b"}),
            v.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "StringGreaterThan": "a"}),
            v.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "StringGreaterThanEquals": "b"}),
            v.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "StringGreaterThan": "ab"}),
            v
        ));
        // Type mismatch is a non-match, not an error.
        assert!(!check(
            json!({"Variable": "$.v", "StringEquals": "1"}),
            json!({"v": 1})
        ));
    }

    #[test]
    fn strings_order_by_utf16_code_units() {
        // U+FF5E sorts before U+1F600 in code points but after it in UTF-16 (0xD83D...).
        assert_eq!(java_string_cmp("\u{FF5E}", "\u{1F600}"), Ordering::Greater);
        assert_eq!(java_string_cmp("a\u{1F600}", "a\u{1F601}"), Ordering::Less);
        assert_eq!(java_string_cmp("é", "éa"), Ordering::Less);
        assert_eq!(java_string_cmp("é", "ê"), Ordering::Less);
        assert_eq!(java_string_cmp("", ""), Ordering::Equal);
        let input = json!({"v": "\u{FF5E}"});
        assert!(check(
            json!({"Variable": "$.v", "StringGreaterThan": "\u{1F600}"}),
            input
        ));
    }

    #[test]
    fn numeric_comparisons_are_by_value() {
        let one = json!({"v": 1});
        assert!(check(
            json!({"Variable": "$.v", "NumericEquals": 1.0}),
            one.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "NumericLessThan": 1.5}),
            one.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "NumericGreaterThan": -2}),
            one.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "NumericLessThanEquals": 1}),
            one.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "NumericGreaterThanEquals": 1}),
            one.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.v", "NumericGreaterThan": 1}),
            one
        ));
        let big = json!({"v": u64::MAX});
        assert!(check(
            json!({"Variable": "$.v", "NumericEquals": u64::MAX}),
            big.clone()
        ));
        assert!(check(
            json!({"Variable": "$.v", "NumericGreaterThan": u64::MAX - 1}),
            big
        ));
        for other in [
            json!("1"),
            json!(true),
            json!(null),
            json!([1]),
            json!({"a": 1}),
        ] {
            let input = json!({ "v": other });
            assert!(!check(
                json!({"Variable": "$.v", "NumericEquals": 1}),
                input
            ));
        }
    }

    #[test]
    fn boolean_equals_needs_a_boolean() {
        assert!(check(
            json!({"Variable": "$.v", "BooleanEquals": false}),
            json!({"v": false})
        ));
        assert!(!check(
            json!({"Variable": "$.v", "BooleanEquals": false}),
            json!({"v": 0})
        ));
        assert!(!check(
            json!({"Variable": "$.v", "BooleanEquals": true}),
            json!({"v": "true"})
        ));
    }

    #[test]
    fn timestamp_comparisons_compare_instants() {
        let t = json!({"v": "2012-10-09T20:00:55+01:00"});
        let rule = |op: &str, lit: &str| json!({"Variable": "$.v", op: lit});
        assert!(check(
            rule("TimestampEquals", "2012-10-09T19:00:55Z"),
            t.clone()
        ));
        assert!(check(
            rule("TimestampLessThan", "2012-10-09T19:00:55.001Z"),
            t.clone()
        ));
        assert!(check(
            rule("TimestampGreaterThan", "2012-10-09T19:00:54Z"),
            t.clone()
        ));
        assert!(check(
            rule("TimestampLessThanEquals", "2012-10-09T19:00:55Z"),
            t.clone()
        ));
        assert!(check(
            rule("TimestampGreaterThanEquals", "2012-10-09T19:00:55Z"),
            t
        ));
        // An unparsable variable is a non-match.
        for bad in ["2012-10-09T19:00:55", "2012-10-09 19:00:55Z", "yesterday"] {
            let input = json!({ "v": bad });
            assert!(!check(
                rule("TimestampEquals", "2012-10-09T19:00:55Z"),
                input.clone()
            ));
            assert!(!check(
                rule("TimestampLessThan", "2099-01-01T00:00:00Z"),
                input
            ));
        }
    }

    #[test]
    fn path_operands_compare_against_the_selected_value() {
        let input = json!({"a": 3, "b": 3.0, "s": "x", "t": "2020-01-01T00:00:00Z", "f": true});
        assert!(check(
            json!({"Variable": "$.a", "NumericEqualsPath": "$.b"}),
            input.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.a", "NumericLessThanPath": "$.b"}),
            input.clone()
        ));
        assert!(check(
            json!({"Variable": "$.s", "StringEqualsPath": "$.s"}),
            input.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.a", "StringEqualsPath": "$.s"}),
            input.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.s", "StringEqualsPath": "$.a"}),
            input.clone()
        ));
        assert!(check(
            json!({"Variable": "$.f", "BooleanEqualsPath": "$.f"}),
            input.clone()
        ));
        assert!(check(
            json!({"Variable": "$.t", "TimestampGreaterThanEqualsPath": "$.t"}),
            input.clone()
        ));
        assert!(!check(
            json!({"Variable": "$.t", "TimestampEqualsPath": "$.s"}),
            input.clone()
        ));
        // Context paths work on either side.
        assert!(check(
            json!({"Variable": "$$.Execution.Name", "StringEquals": "run-1"}),
            input.clone()
        ));
        assert!(check(
            json!({"Variable": "$.n", "StringEqualsPath": "$$.Execution.Name"}),
            json!({"n": "run-1"})
        ));
    }

    #[test]
    fn missing_paths_fail_with_states_runtime() {
        let err = eval(json!({"Variable": "$.nope", "NumericEquals": 1}), json!({})).unwrap_err();
        assert_eq!(err.error, names::RUNTIME);
        assert_eq!(
            err.detail,
            "Invalid path '$.nope': The choice state's condition path references an invalid value."
        );
        for op in [
            "IsNull",
            "IsString",
            "IsNumeric",
            "IsBoolean",
            "IsTimestamp",
        ] {
            assert!(eval(json!({"Variable": "$.nope", op: false}), json!({})).is_err());
        }
        // The operand path too, even when the Variable's type already rules out a match.
        let err = eval(
            json!({"Variable": "$.a", "StringEqualsPath": "$.nope"}),
            json!({"a": 1}),
        )
        .unwrap_err();
        assert!(err.detail.starts_with("Invalid path '$.nope'"));
        // A missing context field is just as missing.
        assert!(eval(json!({"Variable": "$$.Nope", "IsNull": false}), json!({})).is_err());
    }

    #[test]
    fn is_present_and_type_tests() {
        let input = json!({"n": null, "s": "x", "i": 0, "b": false, "t": "2016-03-14T01:59:00Z"});
        let is = |op: &str, var: &str, want: bool| {
            check(json!({"Variable": var, op: want}), input.clone())
        };
        assert!(is("IsPresent", "$.n", true));
        assert!(is("IsPresent", "$.missing", false));
        assert!(is("IsPresent", "$.n.deeper", false));
        assert!(!is("IsPresent", "$.missing", true));
        assert!(is("IsNull", "$.n", true));
        assert!(is("IsNull", "$.s", false));
        assert!(is("IsString", "$.s", true));
        assert!(is("IsString", "$.n", false));
        assert!(is("IsNumeric", "$.i", true));
        assert!(is("IsNumeric", "$.s", false));
        assert!(is("IsBoolean", "$.b", true));
        assert!(is("IsBoolean", "$.i", false));
        assert!(is("IsTimestamp", "$.t", true));
        assert!(is("IsTimestamp", "$.s", false));
        assert!(is("IsTimestamp", "$.i", false));
    }

    #[test]
    fn string_matches_globs() {
        let m = |pattern: &str, s: &str| {
            check(
                json!({"Variable": "$.v", "StringMatches": pattern}),
                json!({ "v": s }),
            )
        };
        assert!(m("foo*.log", "foo23.log"));
        assert!(m("*.log", "zebra.log"));
        assert!(m("foo*.*", "foobar.zebra"));
        assert!(m("*", ""));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"));
        assert!(m("*ab*ab*", "xxabyyab"));
        assert!(!m("*ab*ab", "xxab"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exactly"));
        assert!(!m("foo*.log", "foo23.txt"));
        // Escapes: `\*` is a literal star, `\\` a literal backslash.
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\\*", r"a\anything"));
        assert!(!m(r"a\\*", "ab"));
        assert!(m(r"a\\\*", r"a\*"));
        assert!(m(r"a\b", r"a\b"));
        assert!(m("ü*ß", "üxyzß"));
        assert!(!check(
            json!({"Variable": "$.v", "StringMatches": "*"}),
            json!({"v": 1})
        ));
    }

    #[test]
    fn boolean_expressions() {
        let input = json!({"a": 1, "b": "x"});
        let a = json!({"Variable": "$.a", "NumericEquals": 1});
        let b = json!({"Variable": "$.b", "StringEquals": "y"});
        let missing = json!({"Variable": "$.zzz", "NumericEquals": 1});
        assert!(!check(json!({"And": [a, b]}), input.clone()));
        assert!(check(json!({"Or": [a, b]}), input.clone()));
        assert!(check(json!({"Not": b}), input.clone()));
        assert!(check(
            json!({"And": [a, {"Not": {"Or": [b, {"Not": a}]}}]}),
            input.clone()
        ));
        // Evaluation stops at the first deciding rule, before a missing path could fail it.
        assert!(!check(json!({"And": [b, missing]}), input.clone()));
        assert!(check(json!({"Or": [a, missing]}), input.clone()));
        assert!(eval(json!({"And": [a, missing]}), input).is_err());
    }

    #[test]
    fn compile_ignores_next_assign_and_comment_but_rejects_bad_rules() {
        let rule = json!({
            "Variable": "$.a", "NumericEquals": 1, "Next": "X", "Assign": {"x": 1}, "Comment": "c"
        });
        assert!(ChoiceRule::compile(&rule).is_ok());
        assert!(ChoiceRule::compile(&json!({"Variable": "$.a", "NumericEquals": 1})).is_ok());
        for bad in [
            json!(null),
            json!([]),
            json!({}),
            json!({"Variable": "$.a"}),
            json!({"NumericEquals": 1}),
            json!({"Variable": "$.a", "NumericEquals": "1"}),
            json!({"Variable": "$.a", "NumericEquals": 1, "StringEquals": "1"}),
            json!({"Variable": "a", "NumericEquals": 1}),
            json!({"Variable": "$.a", "TimestampEquals": "2016-03-14"}),
            json!({"Variable": "$.a", "NumericEqualsPath": "nope"}),
            json!({"And": []}),
            json!({"And": {}}),
            json!({"Not": [{"Variable": "$.a", "IsNull": true}]}),
            json!({"Not": {"Variable": "$.a", "IsNull": true, "Next": "X"}}),
            json!({"Or": [{"Variable": "$.a", "IsNull": "yes"}]}),
            json!({"Variable": "$.a", "IsNull": true, "Bogus": 1}),
            json!({"Variable": "$.a", "StringMatchesPath": "$.b"}),
        ] {
            assert!(
                ChoiceRule::compile(&bad).is_err(),
                "{bad} should not compile"
            );
        }
        let err = ChoiceRule::compile(&json!({"And": [{"Variable": "$.a", "NumericEquals": "x"}]}))
            .unwrap_err();
        assert_eq!(
            err,
            "/And/0/NumericEquals: NumericEquals must be a number, got a string"
        );
    }

    #[test]
    fn validate_accepts_good_rules() {
        let rule = json!({
            "Comment": "top",
            "And": [
                {"Variable": "$.a", "NumericGreaterThanPath": "$.b", "Comment": "nested"},
                {"Not": {"Variable": "$$.Execution.Name", "StringMatches": "x*"}},
                {"Or": [{"Variable": "$['odd key'][0]", "IsPresent": false}]}
            ],
            "Assign": {"seen": true},
            "Next": "Done"
        });
        assert_eq!(codes(rule, true), vec![]);
        assert_eq!(
            codes(json!({"Variable": "$.a", "IsNull": true}), false),
            vec![]
        );
    }

    #[test]
    fn validate_reports_each_problem_where_it_is() {
        let at = |p: &str| format!("/States/C/Choices/0{p}");
        assert_eq!(codes(json!("x"), true), vec![(INVALID_TYPE, at(""))]);
        assert_eq!(
            codes(json!({"Variable": "$.a", "Next": "X"}), true),
            vec![(CHOICE_RULE_NO_OPERATOR, at(""))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "IsNull": true, "IsString": true, "Next": "X"}),
                true
            ),
            vec![(CHOICE_RULE_MULTIPLE_OPERATORS, at("/IsString"))]
        );
        assert_eq!(
            codes(json!({"NumericEquals": 1, "Next": "X"}), true),
            vec![(CHOICE_RULE_MISSING_VARIABLE, at(""))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "NumericEquals": "x", "Next": "X"}),
                true
            ),
            vec![(CHOICE_RULE_INVALID_VALUE, at("/NumericEquals"))]
        );
        assert_eq!(
            codes(json!({"Variable": "$.a", "IsNull": 1, "Next": "X"}), true),
            vec![(CHOICE_RULE_INVALID_VALUE, at("/IsNull"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "TimestampLessThan": "2016-13-01T00:00:00Z", "Next": "X"}),
                true
            ),
            vec![(CHOICE_RULE_INVALID_VALUE, at("/TimestampLessThan"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "StringEqualsPath": 3, "Next": "X"}),
                true
            ),
            vec![(CHOICE_RULE_INVALID_VALUE, at("/StringEqualsPath"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "StringEqualsPath": "$.[", "Next": "X"}),
                true
            ),
            vec![(INVALID_PATH, at("/StringEqualsPath"))]
        );
        // An indefinite Variable is legal: it tests the array of its matches.
        assert_eq!(
            codes(
                json!({"Variable": "$..a", "IsNull": true, "Next": "X"}),
                true
            ),
            vec![]
        );
        assert_eq!(
            codes(json!({"Variable": "x", "IsNull": true, "Next": "X"}), true),
            vec![(INVALID_PATH, at("/Variable"))]
        );
        assert_eq!(
            codes(json!({"Variable": 7, "IsNull": true, "Next": "X"}), true),
            vec![(INVALID_TYPE, at("/Variable"))]
        );
        assert_eq!(
            codes(json!({"Variable": "$.a", "IsNull": true}), true),
            vec![(CHOICE_RULE_MISSING_NEXT, at(""))]
        );
        assert_eq!(
            codes(json!({"Variable": "$.a", "IsNull": true, "Next": 1}), true),
            vec![(INVALID_TYPE, at("/Next"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "IsNull": true, "Next": "X"}),
                false
            ),
            vec![(CHOICE_RULE_NESTED_NEXT, at("/Next"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "IsNull": true, "Assign": {}}),
                false
            ),
            vec![(CHOICE_RULE_UNKNOWN_FIELD, at("/Assign"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "IsNull": true, "Nxt": "X", "Next": "X"}),
                true
            ),
            vec![(CHOICE_RULE_UNKNOWN_FIELD, at("/Nxt"))]
        );
        assert_eq!(
            codes(
                json!({"Variable": "$.a", "Not": {"Variable": "$.a", "IsNull": true}}),
                false
            ),
            vec![(CHOICE_RULE_UNKNOWN_FIELD, at("/Variable"))]
        );
        assert_eq!(
            codes(json!({"And": [], "Next": "X"}), true),
            vec![(CHOICE_RULE_EMPTY_BOOLEAN, at("/And"))]
        );
        assert_eq!(
            codes(json!({"Or": "x", "Next": "X"}), true),
            vec![(CHOICE_RULE_EMPTY_BOOLEAN, at("/Or"))]
        );
        assert_eq!(
            codes(json!({"Not": [], "Next": "X"}), true),
            vec![(INVALID_TYPE, at("/Not"))]
        );
    }

    #[test]
    fn validate_reports_every_problem_at_once() {
        let rule = json!({
            "Or": [
                {"Variable": "$.a", "NumericEquals": true, "Next": "X"},
                {"StringEquals": "x"},
                {"Not": {"Variable": "$.b", "IsBoolean": "no"}},
                5
            ],
            "Colour": "red"
        });
        let at = |p: &str| format!("/States/C/Choices/0{p}");
        let mut got = codes(rule, true);
        got.sort();
        let mut want = vec![
            (CHOICE_RULE_UNKNOWN_FIELD, at("/Colour")),
            (CHOICE_RULE_MISSING_NEXT, at("")),
            (CHOICE_RULE_NESTED_NEXT, at("/Or/0/Next")),
            (CHOICE_RULE_INVALID_VALUE, at("/Or/0/NumericEquals")),
            (CHOICE_RULE_MISSING_VARIABLE, at("/Or/1")),
            (CHOICE_RULE_INVALID_VALUE, at("/Or/2/Not/IsBoolean")),
            (INVALID_TYPE, at("/Or/3")),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn compile_never_panics_on_odd_input() {
        let values = [
            json!(null),
            json!(1),
            json!("s"),
            json!([]),
            json!({}),
            json!({"Not": null}),
            json!({"Not": {"Not": {"Not": {}}}}),
            json!({"And": [null, [], {}]}),
            json!({"Variable": "", "IsNull": true}),
            json!({"Variable": "$", "IsNull": true}),
            json!({"Variable": "$$", "StringMatches": "\\"}),
            json!({"Variable": "$.a", "StringMatches": ""}),
            json!({"Variable": "$.a", "Path": "$.b"}),
            json!({"Variable": "$.a", "IsPresentPath": "$.b"}),
        ];
        for v in values {
            let _ = ChoiceRule::compile(&v);
            let mut diags = Vec::new();
            validate_rule(&v, "", true, &mut diags);
        }
    }

    /// Every `choice_operators` case of the AWS-recorded corpus: a Choice state whose rules
    /// lead to Pass states with a constant `Result`, so the expected output names the branch.
    #[test]
    fn agrees_with_aws_on_the_choice_operators_corpus() {
        let dir = std::env::var("EXPRESSWAY_CONFORMANCE_CASES").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance/cases").into()
        });
        let dir = std::path::Path::new(&dir).join("choice_operators");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: no corpus at {}", dir.display());
            return;
        };
        let (mut checked, mut unchecked, mut disagree) = (0, 0, Vec::new());
        for entry in entries {
            let path = entry.expect("readable corpus dir").path();
            let text = std::fs::read_to_string(&path).expect("readable case");
            let case: Value = serde_json::from_str(&text).expect("case is JSON");
            let name = case["name"].as_str().unwrap_or_default().to_string();
            let states = &case["definition"]["States"];
            let choice = &states[case["definition"]["StartAt"].as_str().unwrap_or_default()];
            let Some(rules) = choice["Choices"].as_array() else {
                unchecked += 1;
                continue;
            };
            let scope_context = json!({});
            let scope = DocScope {
                input: &case["input"],
                context: &scope_context,
            };
            let mut outcome = Ok(None);
            for (i, rule) in rules.iter().enumerate() {
                let mut diags = Vec::new();
                validate_rule(rule, &format!("/Choices/{i}"), true, &mut diags);
                assert_eq!(diags, vec![], "{name}: rule {i} should validate");
                let compiled = ChoiceRule::compile(rule).unwrap_or_else(|e| panic!("{name}: {e}"));
                match compiled.eval(&scope) {
                    Ok(true) => {
                        outcome = Ok(rule["Next"].as_str());
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            let expected = &case["expected"];
            let agrees = match outcome {
                Ok(next) => {
                    let target = &states[next.or(choice["Default"].as_str()).unwrap_or_default()];
                    let is_constant = target["Type"] == "Pass" && target["End"] == true;
                    if !is_constant || expected["status"] != "SUCCEEDED" {
                        unchecked += 1;
                        continue;
                    }
                    target["Result"] == expected["output"]
                }
                Err(e) => expected["status"] == "FAILED" && expected["error"] == e.error,
            };
            checked += 1;
            if !agrees {
                disagree.push(name);
            }
        }
        eprintln!("choice_operators corpus: {checked} checked, {unchecked} not checkable");
        assert!(checked > 0, "no case could be checked");
        assert_eq!(
            disagree,
            Vec::<String>::new(),
            "cases where AWS chose another branch"
        );
    }
}
