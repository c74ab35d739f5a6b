//! The graph model of a definition: one `Machine` per state machine (the top level, each
//! Parallel branch, each Map processor), each with a Start and an End node, its states, and
//! its transitions labelled from the definition (Choice rules, Catch errors).

use super::GraphError;
use crate::asl::compile;
use crate::asl::diagnostic::codes::UNSUPPORTED;
use serde_json::{Map, Value};

/// What a node is: a state's type, or one of a machine's two pseudo-states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Start,
    End,
    Task,
    Choice,
    Pass,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl Kind {
    fn of(type_name: &str) -> Kind {
        match type_name {
            "Task" => Kind::Task,
            "Choice" => Kind::Choice,
            "Wait" => Kind::Wait,
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail,
            "Parallel" => Kind::Parallel,
            "Map" => Kind::Map,
            _ => Kind::Pass,
        }
    }

    /// The ASL `Type` (or `Start`/`End`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Start => "Start",
            Kind::End => "End",
            Kind::Task => "Task",
            Kind::Choice => "Choice",
            Kind::Pass => "Pass",
            Kind::Wait => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail => "Fail",
            Kind::Parallel => "Parallel",
            Kind::Map => "Map",
        }
    }

    /// A state, not a pseudo-state.
    pub fn is_state(self) -> bool {
        !matches!(self, Kind::Start | Kind::End)
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// Unique in the graph: the state's name, or `MACHINE#start` / `MACHINE#end`.
    pub id: String,
    /// The state's name, or `Start` / `End`.
    pub name: String,
    pub kind: Kind,
    /// One short line about what the state does: a Task's resource, a Wait's time, a Fail's
    /// error, a Map's items.
    pub detail: Option<String>,
    /// One line per Retry rule: `retry ERRORS ×N`.
    pub retry: Vec<String>,
    /// Parallel branches, or a Map's processor.
    pub machines: Vec<Machine>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    Next,
    /// A Choice's `Default`.
    Default,
    /// A Choice rule's `Next`; labelled with the rule.
    Choice,
    /// A Catch rule's `Next`; labelled with its `ErrorEquals`.
    Catch,
    /// `End: true` or a Succeed state, to the machine's End node.
    End,
}

#[derive(Clone, Debug)]
pub struct Edge {
    /// Indexes into the machine's `nodes`.
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    pub label: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Machine {
    /// `""` for the top level, `STATE[i]` for a Parallel branch, `STATE` for a Map processor.
    pub id: String,
    /// `nodes[0]` is Start, `nodes[1]` End, then the states in definition order.
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

pub const START: usize = 0;
pub const END: usize = 1;

impl Machine {
    /// Every state of this machine and of those nested in it.
    pub fn states(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Node>) {
        for node in self.nodes.iter().filter(|n| n.kind.is_state()) {
            out.push(node);
            for m in &node.machines {
                m.collect(out);
            }
        }
    }
}

/// Longest label text on an edge or a node line, in characters.
const LABEL_CHARS: usize = 36;

/// Validates `definition` as `expressway validate` does (`UNSUPPORTED` is not an error) and
/// builds its graph.
pub fn build(definition: &Value) -> Result<Machine, GraphError> {
    if let Err(diags) = compile(definition) {
        let errors: Vec<_> = diags
            .into_iter()
            .filter(|d| d.code != UNSUPPORTED)
            .collect();
        if !errors.is_empty() {
            return Err(GraphError::Invalid(errors));
        }
    }
    let jsonata = definition.get("QueryLanguage").and_then(Value::as_str) == Some("JSONata");
    Ok(machine(definition, String::new(), jsonata))
}

fn machine(def: &Value, id: String, jsonata: bool) -> Machine {
    let jsonata = match def.get("QueryLanguage").and_then(Value::as_str) {
        Some(lang) => lang == "JSONata",
        None => jsonata,
    };
    let empty = Map::new();
    let states = def
        .get("States")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let pseudo = |suffix: &str, kind: Kind| Node {
        id: format!("{id}#{suffix}"),
        name: kind.name().to_string(),
        kind,
        detail: None,
        retry: Vec::new(),
        machines: Vec::new(),
    };
    let mut nodes = vec![pseudo("start", Kind::Start), pseudo("end", Kind::End)];
    for (name, state) in states {
        let kind = Kind::of(state.get("Type").and_then(Value::as_str).unwrap_or(""));
        let state_jsonata = match state.get("QueryLanguage").and_then(Value::as_str) {
            Some(lang) => lang == "JSONata",
            None => jsonata,
        };
        let mut machines = Vec::new();
        if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
            for (i, branch) in branches.iter().enumerate() {
                machines.push(machine(branch, format!("{name}[{i}]"), state_jsonata));
            }
        }
        if let Some(p) = state.get("ItemProcessor").or_else(|| state.get("Iterator")) {
            machines.push(machine(p, name.clone(), state_jsonata));
        }
        nodes.push(Node {
            id: name.clone(),
            name: name.clone(),
            kind,
            detail: detail(kind, state),
            retry: retry(state),
            machines,
        });
    }
    let index = |name: &str| {
        nodes
            .iter()
            .skip(2)
            .position(|n| n.name == name)
            .map(|i| i + 2)
    };
    let mut edges = Vec::new();
    if let Some(to) = def.get("StartAt").and_then(Value::as_str).and_then(index) {
        edges.push(edge(START, to, EdgeKind::Next, None));
    }
    for (i, state) in states.values().enumerate() {
        let from = i + 2;
        let mut to = |name: Option<&Value>, kind, label| {
            if let Some(t) = name.and_then(Value::as_str).and_then(index) {
                edges.push(edge(from, t, kind, label));
            }
        };
        for rule in state
            .get("Choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            to(rule.get("Next"), EdgeKind::Choice, Some(rule_label(rule)));
        }
        to(
            state.get("Default"),
            EdgeKind::Default,
            Some("default".into()),
        );
        to(state.get("Next"), EdgeKind::Next, None);
        for rule in state
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let errors = shorten(&errors(rule), LABEL_CHARS);
            to(
                rule.get("Next"),
                EdgeKind::Catch,
                Some(format!("catch {errors}")),
            );
        }
        let ends = state.get("End").and_then(Value::as_bool) == Some(true)
            || nodes[from].kind == Kind::Succeed;
        if ends {
            edges.push(edge(from, END, EdgeKind::End, None));
        }
    }
    Machine { id, nodes, edges }
}

fn edge(from: usize, to: usize, kind: EdgeKind, label: Option<String>) -> Edge {
    Edge {
        from,
        to,
        kind,
        label,
    }
}

fn errors(rule: &Value) -> String {
    rule.get("ErrorEquals")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| e.as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn retry(state: &Value) -> Vec<String> {
    let rules = state.get("Retry").and_then(Value::as_array);
    rules
        .into_iter()
        .flatten()
        .map(|rule| {
            let attempts = rule.get("MaxAttempts").and_then(Value::as_u64).unwrap_or(3);
            let errors = shorten(&errors(rule), LABEL_CHARS - 10);
            format!("retry {errors} ×{attempts}")
        })
        .collect()
}

fn detail(kind: Kind, state: &Value) -> Option<String> {
    let s = |field: &str| state.get(field).and_then(Value::as_str);
    let text = match kind {
        Kind::Task => s("Resource").map(|r| match r.strip_prefix("arn:aws:states:::") {
            Some(service) => service.to_string(),
            // A Lambda function or activity ARN: its name is what people recognise.
            None => r.rsplit(':').next().unwrap_or(r).to_string(),
        }),
        Kind::Wait => {
            if let Some(n) = state.get("Seconds").and_then(Value::as_f64) {
                Some(format!("{n} s"))
            } else {
                ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                    .iter()
                    .find_map(|f| s(f).map(|v| format!("{f} {}", expression(v))))
            }
        }
        Kind::Fail => s("Error").map(expression),
        Kind::Map => s("ItemsPath").or(s("Items")).map(expression),
        _ => None,
    };
    text.map(|t| shorten(&t, LABEL_CHARS))
}

/// A JSONata `{% … %}` string as its expression, else as written.
fn expression(text: &str) -> String {
    match text
        .trim()
        .strip_prefix("{%")
        .and_then(|t| t.strip_suffix("%}"))
    {
        Some(inner) => inner.split_whitespace().collect::<Vec<_>>().join(" "),
        None => text.to_string(),
    }
}

/// At most `max` characters, an ellipsis standing for the rest.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A Choice rule in a few words: `$.temp > 30`, `$.a == "x" and not ($.b is null)`, or a
/// JSONata condition's expression.
pub fn rule_label(rule: &Value) -> String {
    if let Some(cond) = rule.get("Condition") {
        let text = match cond {
            Value::String(s) => expression(s),
            other => other.to_string(),
        };
        return shorten(&text, LABEL_CHARS);
    }
    shorten(&rule_text(rule, false), LABEL_CHARS)
}

fn rule_text(rule: &Value, nested: bool) -> String {
    let compound = |op: &str, word: &str| -> Option<String> {
        let parts = rule.get(op)?.as_array()?;
        let text = parts
            .iter()
            .map(|r| rule_text(r, true))
            .collect::<Vec<_>>()
            .join(word);
        Some(if nested { format!("({text})") } else { text })
    };
    if let Some(t) = compound("And", " and ").or_else(|| compound("Or", " or ")) {
        return t;
    }
    if let Some(inner) = rule.get("Not") {
        return format!("not {}", parenthesised(&rule_text(inner, true)));
    }
    let var = rule.get("Variable").and_then(Value::as_str).unwrap_or("?");
    let Some((op, value)) = rule
        .as_object()
        .into_iter()
        .flatten()
        .find(|(k, _)| !matches!(k.as_str(), "Variable" | "Next" | "Comment" | "Assign"))
    else {
        return var.to_string();
    };
    let op = op.as_str();
    let flag = value.as_bool() == Some(true);
    let negated = |yes: &str, no: &str| format!("{var} {}", if flag { yes } else { no });
    match op {
        "IsNull" => return negated("is null", "is not null"),
        "IsPresent" => return negated("is present", "is absent"),
        "IsNumeric" => return negated("is numeric", "is not numeric"),
        "IsString" => return negated("is string", "is not string"),
        "IsBoolean" => return negated("is boolean", "is not boolean"),
        "IsTimestamp" => return negated("is timestamp", "is not timestamp"),
        _ => {}
    }
    let (base, path) = match op.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let relation = [
        ("GreaterThanEquals", ">="),
        ("LessThanEquals", "<="),
        ("GreaterThan", ">"),
        ("LessThan", "<"),
        ("Equals", "=="),
        ("Matches", "matches"),
    ]
    .iter()
    .find(|(suffix, _)| base.ends_with(suffix))
    .map_or(op, |(_, symbol)| symbol);
    let operand = match value {
        Value::String(s) if path => s.clone(),
        other => other.to_string(),
    };
    format!("{var} {relation} {operand}")
}

fn parenthesised(text: &str) -> String {
    if text.starts_with('(') {
        text.to_string()
    } else {
        format!("({text})")
    }
}
