//! Definition validation: every problem at once, each with a stable code and a JSON pointer.
//!
//! The checks follow the Amazon States Language spec and what AWS's
//! `ValidateStateMachineDefinition` accepts: the AWS-recorded conformance corpus must validate
//! clean. Both query languages are handled; a state's language is its own `QueryLanguage`, else
//! that of the enclosing (sub) state machine, else that of the state holding it. JSONata
//! expressions (`"{% ... %}"`) are opaque here: only their place is checked, not their syntax.
//!
//! Pointers are RFC 6901. A missing field is reported where it would be (`/States/T/Resource`);
//! "one of several fields" and transition problems are reported at the state itself.

use super::choice;
use super::diagnostic::{pointer_push, type_name, Diagnostic};
use super::error::names;
use super::intrinsics::{is_intrinsic, Intrinsic};
use super::path::{JsonPath, Root, Segment};
use super::timestamp;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::diagnostic::codes::*;

/// Validates a whole state machine definition; returns every problem at once.
pub fn validate(definition: &Value) -> Vec<Diagnostic> {
    let mut v = Validator {
        diags: Vec::new(),
        jsonata_top: definition.get("QueryLanguage").and_then(Value::as_str) == Some(JSONATA),
    };
    v.machine(definition, "", Machine::Top, Lang::JsonPath);
    v.diags
}

const JSONPATH: &str = "JSONPath";
const JSONATA: &str = "JSONata";

/// Upper bound AWS documents for timeouts, intervals and attempt counts.
const MAX_SECONDS: f64 = 99_999_999.0;
/// `MaxDelaySeconds` must be below one year and a day.
const MAX_DELAY_SECONDS: f64 = 31_622_400.0;

/// The query language a state (or field) is evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    JsonPath,
    Jsonata,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::JsonPath => JSONPATH,
            Lang::Jsonata => JSONATA,
        }
    }
}

/// Which query languages a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum In {
    Both,
    JsonPath,
    Jsonata,
}

impl In {
    fn admits(self, lang: Lang) -> bool {
        match self {
            In::Both => true,
            In::JsonPath => lang == Lang::JsonPath,
            In::Jsonata => lang == Lang::Jsonata,
        }
    }
}

type Field = (&'static str, In);

// Field allow-lists, grouped the way the AWS "common state fields" table groups them.
const BASE: &[Field] = &[
    ("Type", In::Both),
    ("Comment", In::Both),
    ("QueryLanguage", In::Both),
];
const TRANSITION: &[Field] = &[("Next", In::Both), ("End", In::Both)];
const IO_PATHS: &[Field] = &[("InputPath", In::JsonPath), ("OutputPath", In::JsonPath)];
const ASSIGN: &[Field] = &[("Assign", In::Both)];
const OUTPUT: &[Field] = &[("Output", In::Jsonata)];
const RESULT: &[Field] = &[
    ("Parameters", In::JsonPath),
    ("ResultSelector", In::JsonPath),
    ("ResultPath", In::JsonPath),
];
const ERRORS: &[Field] = &[("Retry", In::Both), ("Catch", In::Both)];

const PASS: &[Field] = &[
    ("Parameters", In::JsonPath),
    ("Result", In::JsonPath),
    ("ResultPath", In::JsonPath),
];
const TASK: &[Field] = &[
    ("Resource", In::Both),
    ("Arguments", In::Jsonata),
    ("Credentials", In::Both),
    ("TimeoutSeconds", In::Both),
    ("TimeoutSecondsPath", In::JsonPath),
    ("HeartbeatSeconds", In::Both),
    ("HeartbeatSecondsPath", In::JsonPath),
];
const CHOICE: &[Field] = &[("Choices", In::Both), ("Default", In::Both)];
const WAIT: &[Field] = &[
    ("Seconds", In::Both),
    ("SecondsPath", In::JsonPath),
    ("Timestamp", In::Both),
    ("TimestampPath", In::JsonPath),
];
const FAIL: &[Field] = &[
    ("Error", In::Both),
    ("ErrorPath", In::JsonPath),
    ("Cause", In::Both),
    ("CausePath", In::JsonPath),
];
const PARALLEL: &[Field] = &[("Branches", In::Both), ("Arguments", In::Jsonata)];
const MAP: &[Field] = &[
    ("ItemProcessor", In::Both),
    ("Iterator", In::Both),
    ("ItemsPath", In::JsonPath),
    ("Items", In::Jsonata),
    ("ItemSelector", In::Both),
    ("ItemReader", In::Both),
    ("ItemBatcher", In::Both),
    ("ResultWriter", In::Both),
    ("MaxConcurrency", In::Both),
    ("MaxConcurrencyPath", In::JsonPath),
    ("ToleratedFailureCount", In::Both),
    ("ToleratedFailureCountPath", In::JsonPath),
    ("ToleratedFailurePercentage", In::Both),
    ("ToleratedFailurePercentagePath", In::JsonPath),
    ("Label", In::Both),
];

const TOP_FIELDS: &[Field] = &[
    ("StartAt", In::Both),
    ("States", In::Both),
    ("Comment", In::Both),
    ("Version", In::Both),
    ("TimeoutSeconds", In::Both),
    ("QueryLanguage", In::Both),
];
const BRANCH_FIELDS: &[Field] = &[
    ("StartAt", In::Both),
    ("States", In::Both),
    ("Comment", In::Both),
    ("QueryLanguage", In::Both),
];
const PROCESSOR_FIELDS: &[Field] = &[
    ("StartAt", In::Both),
    ("States", In::Both),
    ("Comment", In::Both),
    ("QueryLanguage", In::Both),
    ("ProcessorConfig", In::Both),
];
const PROCESSOR_CONFIG_FIELDS: &[Field] = &[("Mode", In::Both), ("ExecutionType", In::Both)];
const RETRIER_FIELDS: &[Field] = &[
    ("ErrorEquals", In::Both),
    ("IntervalSeconds", In::Both),
    ("MaxAttempts", In::Both),
    ("BackoffRate", In::Both),
    ("MaxDelaySeconds", In::Both),
    ("JitterStrategy", In::Both),
    ("Comment", In::Both),
];
const CATCHER_FIELDS: &[Field] = &[
    ("ErrorEquals", In::Both),
    ("Next", In::Both),
    ("ResultPath", In::JsonPath),
    ("Assign", In::Both),
    ("Output", In::Jsonata),
    ("Comment", In::Both),
];
/// A JSONata Choice rule; JSONPath rules are checked by [`choice::validate_rule`].
const CONDITION_RULE_FIELDS: &[Field] = &[
    ("Condition", In::Both),
    ("Next", In::Both),
    ("Assign", In::Both),
    ("Output", In::Both),
    ("Comment", In::Both),
];
const CREDENTIALS_FIELDS: &[Field] = &[("RoleArn", In::Both), ("RoleArnPath", In::JsonPath)];
const ITEM_READER_FIELDS: &[Field] = &[
    ("Resource", In::Both),
    ("ReaderConfig", In::Both),
    ("Parameters", In::JsonPath),
    ("Arguments", In::Jsonata),
];
const ITEM_BATCHER_FIELDS: &[Field] = &[
    ("MaxItemsPerBatch", In::Both),
    ("MaxItemsPerBatchPath", In::JsonPath),
    ("MaxInputBytesPerBatch", In::Both),
    ("MaxInputBytesPerBatchPath", In::JsonPath),
    ("BatchInput", In::Both),
];
const RESULT_WRITER_FIELDS: &[Field] = &[
    ("Resource", In::Both),
    ("Parameters", In::JsonPath),
    ("Arguments", In::Jsonata),
    ("WriterConfig", In::Both),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StateType {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl StateType {
    const ALL: [(&'static str, StateType); 8] = [
        ("Pass", StateType::Pass),
        ("Task", StateType::Task),
        ("Choice", StateType::Choice),
        ("Wait", StateType::Wait),
        ("Succeed", StateType::Succeed),
        ("Fail", StateType::Fail),
        ("Parallel", StateType::Parallel),
        ("Map", StateType::Map),
    ];

    fn parse(s: &str) -> Option<StateType> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("", |(n, _)| n)
    }

    fn fields(self) -> &'static [&'static [Field]] {
        match self {
            StateType::Pass => &[BASE, TRANSITION, IO_PATHS, ASSIGN, OUTPUT, PASS],
            StateType::Task => &[
                BASE, TRANSITION, IO_PATHS, ASSIGN, OUTPUT, RESULT, ERRORS, TASK,
            ],
            StateType::Choice => &[BASE, IO_PATHS, ASSIGN, OUTPUT, CHOICE],
            StateType::Wait => &[BASE, TRANSITION, IO_PATHS, ASSIGN, OUTPUT, WAIT],
            StateType::Succeed => &[BASE, IO_PATHS, OUTPUT],
            StateType::Fail => &[BASE, FAIL],
            StateType::Parallel => &[
                BASE, TRANSITION, IO_PATHS, ASSIGN, OUTPUT, RESULT, ERRORS, PARALLEL,
            ],
            StateType::Map => &[
                BASE, TRANSITION, IO_PATHS, ASSIGN, OUTPUT, RESULT, ERRORS, MAP,
            ],
        }
    }

    /// Succeed and Fail end the machine; Choice transitions through its rules.
    fn has_transition(self) -> bool {
        !matches!(
            self,
            StateType::Choice | StateType::Succeed | StateType::Fail
        )
    }
}

/// The three places a state machine appears, each with its own allowed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Machine {
    Top,
    Branch,
    Processor,
}

impl Machine {
    fn fields(self) -> &'static [Field] {
        match self {
            Machine::Top => TOP_FIELDS,
            Machine::Branch => BRANCH_FIELDS,
            Machine::Processor => PROCESSOR_FIELDS,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Machine::Top => "the state machine",
            Machine::Branch => "a Parallel branch",
            Machine::Processor => "a Map item processor",
        }
    }
}

/// What a path-valued field may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathRule {
    /// `InputPath`, `OutputPath`, `.$` values: any path on the input, the context or a variable.
    Any,
    /// `ResultPath`: a reference path into the state input; it is written to, so no `$$`.
    Reference,
    /// `SecondsPath` and friends: a single node of the input, the context or a variable.
    Sampler,
}

/// An object being checked: its members minus those already reported as not allowed, so a
/// misplaced field is reported once, not again for its value.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    ptr: String,
    rejected: Vec<&'a str>,
}

impl<'a> Obj<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        if self.rejected.contains(&key) {
            return None;
        }
        self.map.get(key)
    }

    fn at(&self, key: &str) -> String {
        pointer_push(&self.ptr, key)
    }
}

/// A state as the transition graph sees it.
#[derive(Default)]
struct Node {
    /// States this one can transition to (only names that exist).
    edges: Vec<String>,
    /// Ends the machine, or is broken in a way already reported (so the graph checks do not
    /// pile further diagnostics onto it and its predecessors).
    terminal: bool,
}

struct Validator {
    diags: Vec<Diagnostic>,
    /// A machine whose top level selects JSONata may not switch any state back to JSONPath.
    jsonata_top: bool,
}

impl Validator {
    fn report(&mut self, code: &'static str, ptr: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, ptr, message));
    }

    // ---- state machines and the transition graph -------------------------------------------

    fn machine(&mut self, v: &Value, ptr: &str, kind: Machine, inherited: Lang) {
        let Some(map) = v.as_object() else {
            let what = kind.what();
            self.report(
                INVALID_TYPE,
                ptr,
                format!("{what} must be a JSON object, not {}", type_name(v)),
            );
            return;
        };
        let obj = self.known_fields(map, ptr, &[kind.fields()], Lang::JsonPath, kind.what());
        let lang = self.query_language(&obj, inherited);
        self.optional_string(&obj, "Comment");
        if kind == Machine::Top {
            self.optional_string(&obj, "Version");
            self.integer(&obj, "TimeoutSeconds", 1.0, MAX_SECONDS, Lang::JsonPath);
        }
        if kind == Machine::Processor {
            self.processor_config(&obj);
        }

        let states = match obj.get("States") {
            None => {
                self.report(
                    MISSING_FIELD,
                    &obj.at("States"),
                    "missing required field 'States'",
                );
                None
            }
            Some(Value::Object(m)) if m.is_empty() => {
                self.report(
                    INVALID_VALUE,
                    &obj.at("States"),
                    "'States' must define at least one state",
                );
                None
            }
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.report(
                    INVALID_TYPE,
                    &obj.at("States"),
                    format!("'States' must be an object, not {}", type_name(other)),
                );
                None
            }
        };
        let names: BTreeSet<&str> = states
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();

        let start = match obj.get("StartAt") {
            None => {
                self.report(
                    MISSING_FIELD,
                    &obj.at("StartAt"),
                    "missing required field 'StartAt'",
                );
                None
            }
            Some(Value::String(s)) if names.contains(s.as_str()) => Some(s.as_str()),
            Some(Value::String(s)) => {
                // With no usable States, an unknown StartAt is a consequence, not a finding.
                if states.is_some() {
                    self.report(
                        UNKNOWN_STATE,
                        &obj.at("StartAt"),
                        format!("StartAt names state '{s}', which does not exist"),
                    );
                }
                None
            }
            Some(other) => {
                self.report(
                    INVALID_TYPE,
                    &obj.at("StartAt"),
                    format!("'StartAt' must be a string, not {}", type_name(other)),
                );
                None
            }
        };

        let Some(states) = states else { return };
        let states_ptr = obj.at("States");
        let mut graph = BTreeMap::new();
        for (name, state) in states {
            let state_ptr = pointer_push(&states_ptr, name);
            let node = self.state(state, &state_ptr, lang, &names);
            graph.insert(name.as_str(), (state_ptr, node));
        }
        self.check_graph(start, &graph);
    }

    /// Unreachable states, and states that can never reach a terminal state.
    fn check_graph(&mut self, start: Option<&str>, graph: &BTreeMap<&str, (String, Node)>) {
        let reachable = start.map(|s| {
            let mut seen = BTreeSet::from([s]);
            let mut queue = VecDeque::from([s]);
            while let Some(n) = queue.pop_front() {
                for e in graph
                    .get(n)
                    .map(|(_, node)| &node.edges)
                    .into_iter()
                    .flatten()
                {
                    if seen.insert(e.as_str()) {
                        queue.push_back(e.as_str());
                    }
                }
            }
            seen
        });

        // Walk the edges backwards from every terminal state.
        let mut preds: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, (_, node)) in graph {
            for e in &node.edges {
                preds.entry(e.as_str()).or_default().push(name);
            }
        }
        let mut finishes: BTreeSet<&str> = graph
            .iter()
            .filter(|(_, (_, node))| node.terminal)
            .map(|(name, _)| *name)
            .collect();
        let mut queue: VecDeque<&str> = finishes.iter().copied().collect();
        while let Some(n) = queue.pop_front() {
            for p in preds.get(n).into_iter().flatten() {
                if finishes.insert(p) {
                    queue.push_back(p);
                }
            }
        }

        for (name, (ptr, _)) in graph {
            let is_reachable = reachable.as_ref().is_none_or(|r| r.contains(name));
            if !is_reachable {
                self.report(
                    UNREACHABLE_STATE,
                    ptr,
                    format!("state '{name}' cannot be reached from StartAt"),
                );
            } else if !finishes.contains(name) {
                self.report(
                    NO_TERMINAL_STATE,
                    ptr,
                    format!(
                        "no terminal state (End, Succeed or Fail) can be reached from state \
                         '{name}': the machine would loop forever"
                    ),
                );
            }
        }
    }

    /// Records a transition to `target` (the value at `ptr`), reporting an unknown state.
    fn edge(&mut self, node: &mut Node, target: &Value, ptr: &str, names: &BTreeSet<&str>) {
        match target {
            Value::String(s) if names.contains(s.as_str()) => node.edges.push(s.clone()),
            Value::String(s) => {
                self.report(
                    UNKNOWN_STATE,
                    ptr,
                    format!("transition to state '{s}', which does not exist in this scope"),
                );
                node.terminal = true;
            }
            other => {
                self.report(
                    INVALID_TYPE,
                    ptr,
                    format!("a state name must be a string, not {}", type_name(other)),
                );
                node.terminal = true;
            }
        }
    }

    // ---- states ------------------------------------------------------------------------------

    fn state(&mut self, v: &Value, ptr: &str, inherited: Lang, names: &BTreeSet<&str>) -> Node {
        let mut node = Node::default();
        let Some(map) = v.as_object() else {
            self.report(
                INVALID_TYPE,
                ptr,
                format!("a state must be a JSON object, not {}", type_name(v)),
            );
            node.terminal = true;
            return node;
        };
        let ty = match map.get("Type") {
            Some(Value::String(s)) => match StateType::parse(s) {
                Some(t) => Some(t),
                None => {
                    let all = StateType::ALL.map(|(n, _)| n).join(", ");
                    self.report(
                        INVALID_VALUE,
                        &pointer_push(ptr, "Type"),
                        format!("unknown state type '{s}' (expected one of {all})"),
                    );
                    None
                }
            },
            Some(other) => {
                self.report(
                    INVALID_TYPE,
                    &pointer_push(ptr, "Type"),
                    format!("'Type' must be a string, not {}", type_name(other)),
                );
                None
            }
            None => {
                self.report(
                    MISSING_FIELD,
                    &pointer_push(ptr, "Type"),
                    "missing required field 'Type'",
                );
                None
            }
        };
        let Some(ty) = ty else {
            // Without a type nothing else can be judged; keep its Next so that the states
            // after it are not reported as unreachable.
            if let Some(Value::String(next)) = map.get("Next") {
                if names.contains(next.as_str()) {
                    node.edges.push(next.clone());
                }
            }
            node.terminal = true;
            return node;
        };

        let lang = match map.get("QueryLanguage") {
            Some(Value::String(s)) if s == JSONATA => Lang::Jsonata,
            Some(Value::String(s)) if s == JSONPATH => Lang::JsonPath,
            _ => inherited,
        };
        let what = format!("a {} state", ty.name());
        let st = self.known_fields(map, ptr, ty.fields(), lang, &what);
        self.query_language(&st, inherited);
        self.optional_string(&st, "Comment");

        if ty.has_transition() {
            self.transition(&st, &mut node, names);
        } else {
            node.terminal = ty != StateType::Choice;
        }
        self.path(&st, "InputPath", PathRule::Any, true);
        self.path(&st, "OutputPath", PathRule::Any, true);
        self.path(&st, "ResultPath", PathRule::Reference, true);
        self.template_field(&st, "Parameters", lang);
        self.template_field(&st, "ResultSelector", lang);
        self.assign(&st, lang);
        self.arguments(&st);
        self.retriers(&st, lang);
        self.catchers(&st, lang, &mut node, names);

        match ty {
            StateType::Pass | StateType::Succeed => {}
            StateType::Task => self.task(&st, lang),
            StateType::Choice => self.choice(&st, lang, &mut node, names),
            StateType::Wait => self.wait(&st, lang),
            StateType::Fail => self.fail(&st),
            StateType::Parallel => self.parallel(&st, lang),
            StateType::Map => self.map_state(&st, lang),
        }
        node
    }

    /// `Next` / `End` of a state that must have exactly one of them.
    fn transition(&mut self, st: &Obj, node: &mut Node, names: &BTreeSet<&str>) {
        let end = match st.get("End") {
            None => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.report(
                    INVALID_TYPE,
                    &st.at("End"),
                    format!("'End' must be a boolean, not {}", type_name(other)),
                );
                None
            }
        };
        match (st.get("Next"), end) {
            (Some(next), Some(true)) => {
                self.report(
                    NEXT_AND_END,
                    &st.ptr,
                    "a state cannot have both 'Next' and 'End: true'",
                );
                self.edge(node, next, &st.at("Next"), names);
                node.terminal = true;
            }
            (Some(next), _) => self.edge(node, next, &st.at("Next"), names),
            (None, Some(true)) => node.terminal = true,
            (None, Some(false)) => {
                self.report(
                    MISSING_NEXT,
                    &st.ptr,
                    "a non-terminal state needs 'Next' or 'End: true'",
                );
                node.terminal = true;
            }
            // An ill-typed End was reported already.
            (None, None) => node.terminal = true,
        }
    }

    fn task(&mut self, st: &Obj, lang: Lang) {
        match st.get("Resource") {
            None => self.report(
                MISSING_FIELD,
                &st.at("Resource"),
                "a Task state needs 'Resource'",
            ),
            Some(Value::String(s)) if !s.starts_with("arn:") => self.report(
                INVALID_VALUE,
                &st.at("Resource"),
                format!("'Resource' must be an ARN, not '{s}'"),
            ),
            Some(Value::String(_)) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &st.at("Resource"),
                format!("'Resource' must be a string, not {}", type_name(other)),
            ),
        }
        let timeout = self.integer(st, "TimeoutSeconds", 1.0, MAX_SECONDS, lang);
        let heartbeat = self.integer(st, "HeartbeatSeconds", 1.0, MAX_SECONDS, lang);
        self.path(st, "TimeoutSecondsPath", PathRule::Sampler, false);
        self.path(st, "HeartbeatSecondsPath", PathRule::Sampler, false);
        self.exclusive(st, &["TimeoutSeconds", "TimeoutSecondsPath"]);
        self.exclusive(st, &["HeartbeatSeconds", "HeartbeatSecondsPath"]);
        if let (Some(t), Some(h)) = (timeout, heartbeat) {
            if h >= t {
                self.report(
                    INVALID_VALUE,
                    &st.at("HeartbeatSeconds"),
                    format!("'HeartbeatSeconds' ({h}) must be smaller than 'TimeoutSeconds' ({t})"),
                );
            }
        }
        if let Some(obj) = self.sub_object(st, "Credentials", CREDENTIALS_FIELDS, lang) {
            self.one_of(&obj, &["RoleArn", "RoleArnPath"]);
            self.optional_string(&obj, "RoleArn");
            self.path_or_intrinsic_field(&obj, "RoleArnPath");
        }
    }

    fn choice(&mut self, st: &Obj, lang: Lang, node: &mut Node, names: &BTreeSet<&str>) {
        // Broken Choices are reported once; the graph checks then leave this state alone.
        node.terminal = !matches!(st.get("Choices"), Some(Value::Array(r)) if !r.is_empty());
        match st.get("Choices") {
            None => self.report(
                MISSING_FIELD,
                &st.at("Choices"),
                "a Choice state needs 'Choices'",
            ),
            Some(Value::Array(rules)) if rules.is_empty() => self.report(
                INVALID_VALUE,
                &st.at("Choices"),
                "'Choices' must hold at least one rule",
            ),
            Some(Value::Array(rules)) => {
                for (i, rule) in rules.iter().enumerate() {
                    let ptr = pointer_push(&st.at("Choices"), &i.to_string());
                    match lang {
                        Lang::JsonPath => {
                            choice::validate_rule(rule, &ptr, true, &mut self.diags);
                            // The rule's shape is choice.rs's concern; its target is ours.
                            if let Some(next @ Value::String(_)) = rule.get("Next") {
                                self.edge(node, next, &pointer_push(&ptr, "Next"), names);
                            }
                        }
                        Lang::Jsonata => self.condition_rule(rule, &ptr, node, names),
                    }
                }
            }
            Some(other) => self.report(
                INVALID_TYPE,
                &st.at("Choices"),
                format!("'Choices' must be an array, not {}", type_name(other)),
            ),
        }
        if let Some(default) = st.get("Default") {
            self.edge(node, default, &st.at("Default"), names);
        }
    }

    /// A JSONata Choice rule: `{"Condition": "{% ... %}", "Next": ...}`.
    fn condition_rule(&mut self, rule: &Value, ptr: &str, node: &mut Node, names: &BTreeSet<&str>) {
        let Some(map) = rule.as_object() else {
            self.report(
                INVALID_TYPE,
                ptr,
                format!("a Choice rule must be an object, not {}", type_name(rule)),
            );
            return;
        };
        let obj = self.known_fields(
            map,
            ptr,
            &[CONDITION_RULE_FIELDS],
            Lang::Jsonata,
            "a JSONata Choice rule",
        );
        match obj.get("Condition") {
            None => self.report(
                MISSING_FIELD,
                &obj.at("Condition"),
                "a JSONata Choice rule needs 'Condition'",
            ),
            Some(Value::Bool(_)) => {}
            Some(Value::String(s)) if is_jsonata(s) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &obj.at("Condition"),
                format!(
                    "'Condition' must be a boolean or a JSONata expression '{{% ... %}}', not {}",
                    describe(other)
                ),
            ),
        }
        match obj.get("Next") {
            Some(next) => self.edge(node, next, &obj.at("Next"), names),
            None => self.report(MISSING_FIELD, &obj.at("Next"), "a Choice rule needs 'Next'"),
        }
        self.assign(&obj, Lang::Jsonata);
        self.optional_string(&obj, "Comment");
    }

    fn wait(&mut self, st: &Obj, lang: Lang) {
        // The *Path forms are JSONPath-only; name only the choices this language has.
        let durations: &[&str] = match lang {
            Lang::JsonPath => &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
            Lang::Jsonata => &["Seconds", "Timestamp"],
        };
        self.one_of(st, durations);
        self.integer(st, "Seconds", 0.0, MAX_SECONDS, lang);
        self.path(st, "SecondsPath", PathRule::Sampler, false);
        self.path(st, "TimestampPath", PathRule::Sampler, false);
        match st.get("Timestamp") {
            Some(Value::String(s)) if lang == Lang::Jsonata && is_jsonata(s) => {}
            Some(Value::String(s)) if timestamp::parse(s).is_none() => self.report(
                INVALID_VALUE,
                &st.at("Timestamp"),
                format!("'Timestamp' must be an RFC 3339 timestamp, not '{s}'"),
            ),
            None | Some(Value::String(_)) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &st.at("Timestamp"),
                format!("'Timestamp' must be a string, not {}", type_name(other)),
            ),
        }
    }

    fn fail(&mut self, st: &Obj) {
        self.exclusive(st, &["Error", "ErrorPath"]);
        self.exclusive(st, &["Cause", "CausePath"]);
        self.optional_string(st, "Error");
        self.optional_string(st, "Cause");
        self.path_or_intrinsic_field(st, "ErrorPath");
        self.path_or_intrinsic_field(st, "CausePath");
    }

    fn parallel(&mut self, st: &Obj, lang: Lang) {
        match st.get("Branches") {
            None => self.report(
                MISSING_FIELD,
                &st.at("Branches"),
                "a Parallel state needs 'Branches'",
            ),
            Some(Value::Array(b)) if b.is_empty() => self.report(
                INVALID_VALUE,
                &st.at("Branches"),
                "'Branches' must hold at least one branch",
            ),
            Some(Value::Array(branches)) => {
                for (i, b) in branches.iter().enumerate() {
                    let ptr = pointer_push(&st.at("Branches"), &i.to_string());
                    self.machine(b, &ptr, Machine::Branch, lang);
                }
            }
            Some(other) => self.report(
                INVALID_TYPE,
                &st.at("Branches"),
                format!("'Branches' must be an array, not {}", type_name(other)),
            ),
        }
    }

    fn map_state(&mut self, st: &Obj, lang: Lang) {
        self.one_of(st, &["ItemProcessor", "Iterator"]);
        for key in ["ItemProcessor", "Iterator"] {
            if let Some(p) = st.get(key) {
                self.machine(p, &st.at(key), Machine::Processor, lang);
            }
        }
        self.path(st, "ItemsPath", PathRule::Sampler, false);
        match st.get("Items") {
            None | Some(Value::Array(_) | Value::Object(_)) => {}
            Some(Value::String(s)) if is_jsonata(s) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &st.at("Items"),
                format!(
                    "'Items' must be an array or a JSONata expression, not {}",
                    describe(other)
                ),
            ),
        }
        self.template_field(st, "ItemSelector", lang);
        self.exclusive(st, &["ItemSelector", "Parameters"]);

        self.integer(st, "MaxConcurrency", 0.0, f64::MAX, lang);
        self.path(st, "MaxConcurrencyPath", PathRule::Sampler, false);
        self.exclusive(st, &["MaxConcurrency", "MaxConcurrencyPath"]);
        self.integer(st, "ToleratedFailureCount", 0.0, f64::MAX, lang);
        self.path(st, "ToleratedFailureCountPath", PathRule::Sampler, false);
        self.exclusive(st, &["ToleratedFailureCount", "ToleratedFailureCountPath"]);
        self.number(st, "ToleratedFailurePercentage", 0.0, 100.0, lang);
        self.path(
            st,
            "ToleratedFailurePercentagePath",
            PathRule::Sampler,
            false,
        );
        self.exclusive(
            st,
            &[
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
            ],
        );
        self.optional_string(st, "Label");

        if let Some(reader) = self.sub_object(st, "ItemReader", ITEM_READER_FIELDS, lang) {
            self.resource(&reader, true);
            self.object_field(&reader, "ReaderConfig");
            self.template_field(&reader, "Parameters", lang);
            self.arguments(&reader);
        }
        if let Some(batcher) = self.sub_object(st, "ItemBatcher", ITEM_BATCHER_FIELDS, lang) {
            self.integer(&batcher, "MaxItemsPerBatch", 1.0, f64::MAX, lang);
            self.integer(&batcher, "MaxInputBytesPerBatch", 1.0, f64::MAX, lang);
            self.path(&batcher, "MaxItemsPerBatchPath", PathRule::Sampler, false);
            self.path(
                &batcher,
                "MaxInputBytesPerBatchPath",
                PathRule::Sampler,
                false,
            );
            self.exclusive(&batcher, &["MaxItemsPerBatch", "MaxItemsPerBatchPath"]);
            self.exclusive(
                &batcher,
                &["MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath"],
            );
            self.template_field(&batcher, "BatchInput", lang);
        }
        if let Some(writer) = self.sub_object(st, "ResultWriter", RESULT_WRITER_FIELDS, lang) {
            self.resource(&writer, false);
            self.object_field(&writer, "WriterConfig");
            self.template_field(&writer, "Parameters", lang);
            self.arguments(&writer);
        }
    }

    fn processor_config(&mut self, obj: &Obj) {
        let Some(cfg) = self.sub_object(
            obj,
            "ProcessorConfig",
            PROCESSOR_CONFIG_FIELDS,
            Lang::JsonPath,
        ) else {
            return;
        };
        let mode = self.enum_field(&cfg, "Mode", &["INLINE", "DISTRIBUTED"]);
        self.enum_field(&cfg, "ExecutionType", &["STANDARD", "EXPRESS"]);
        if mode == Some("DISTRIBUTED") && cfg.get("ExecutionType").is_none() {
            self.report(
                MISSING_FIELD,
                &cfg.at("ExecutionType"),
                "a DISTRIBUTED item processor needs 'ExecutionType'",
            );
        }
    }

    // ---- error handling --------------------------------------------------------------------

    fn retriers(&mut self, st: &Obj, lang: Lang) {
        let Some(list) = self.array_field(st, "Retry") else {
            return;
        };
        for (i, r) in list.iter().enumerate() {
            let ptr = pointer_push(&st.at("Retry"), &i.to_string());
            let Some(obj) = self.element_object(r, &ptr, RETRIER_FIELDS, lang, "a retrier") else {
                continue;
            };
            self.error_equals(&obj, i + 1 == list.len(), "retrier");
            self.integer(&obj, "IntervalSeconds", 1.0, MAX_SECONDS, Lang::JsonPath);
            self.integer(&obj, "MaxAttempts", 0.0, MAX_SECONDS, Lang::JsonPath);
            self.number(&obj, "BackoffRate", 1.0, f64::MAX, Lang::JsonPath);
            self.integer(
                &obj,
                "MaxDelaySeconds",
                1.0,
                MAX_DELAY_SECONDS,
                Lang::JsonPath,
            );
            self.enum_field(&obj, "JitterStrategy", &["FULL", "NONE"]);
            self.optional_string(&obj, "Comment");
        }
    }

    fn catchers(&mut self, st: &Obj, lang: Lang, node: &mut Node, names: &BTreeSet<&str>) {
        let Some(list) = self.array_field(st, "Catch") else {
            return;
        };
        for (i, c) in list.iter().enumerate() {
            let ptr = pointer_push(&st.at("Catch"), &i.to_string());
            let Some(obj) = self.element_object(c, &ptr, CATCHER_FIELDS, lang, "a catcher") else {
                continue;
            };
            self.error_equals(&obj, i + 1 == list.len(), "catcher");
            match obj.get("Next") {
                Some(next) => self.edge(node, next, &obj.at("Next"), names),
                None => self.report(MISSING_FIELD, &obj.at("Next"), "a catcher needs 'Next'"),
            }
            self.path(&obj, "ResultPath", PathRule::Reference, true);
            self.assign(&obj, lang);
            self.optional_string(&obj, "Comment");
        }
    }

    fn error_equals(&mut self, obj: &Obj, is_last: bool, what: &str) {
        let ptr = obj.at("ErrorEquals");
        let list = match obj.get("ErrorEquals") {
            None => {
                self.report(MISSING_FIELD, &ptr, format!("a {what} needs 'ErrorEquals'"));
                return;
            }
            Some(Value::Array(l)) if l.is_empty() => {
                self.report(
                    INVALID_VALUE,
                    &ptr,
                    "'ErrorEquals' must name at least one error",
                );
                return;
            }
            Some(Value::Array(l)) => l,
            Some(other) => {
                self.report(
                    INVALID_TYPE,
                    &ptr,
                    format!("'ErrorEquals' must be an array, not {}", type_name(other)),
                );
                return;
            }
        };
        for (j, name) in list.iter().enumerate() {
            let item = pointer_push(&ptr, &j.to_string());
            let Some(name) = name.as_str() else {
                self.report(
                    INVALID_TYPE,
                    &item,
                    format!("an error name must be a string, not {}", type_name(name)),
                );
                continue;
            };
            if name == names::ALL {
                if list.len() > 1 {
                    self.report(
                        STATES_ALL_NOT_LAST,
                        &item,
                        "'States.ALL' must be the only error name in its 'ErrorEquals'",
                    );
                } else if !is_last {
                    self.report(
                        STATES_ALL_NOT_LAST,
                        &item,
                        format!("'States.ALL' may only appear in the last {what}"),
                    );
                }
            } else if name.starts_with("States.") && !names::is_built_in(name) {
                self.report(
                    UNKNOWN_ERROR_NAME,
                    &item,
                    format!("'{name}' is not a Step Functions error name (the 'States.' prefix is reserved)"),
                );
            }
        }
    }

    // ---- field helpers -----------------------------------------------------------------------

    /// Reports fields that `groups` do not list or that belong to the other query language.
    fn known_fields<'a>(
        &mut self,
        map: &'a Map<String, Value>,
        ptr: &str,
        groups: &[&[Field]],
        lang: Lang,
        what: &str,
    ) -> Obj<'a> {
        let mut rejected = Vec::new();
        for key in map.keys() {
            let found = groups.iter().flat_map(|g| g.iter()).find(|(n, _)| n == key);
            let message = match found {
                None => format!("field '{key}' is not allowed in {what}"),
                Some((_, scope)) if !scope.admits(lang) => format!(
                    "field '{key}' is not allowed in {what} using {}: it belongs to {}",
                    lang.name(),
                    match scope {
                        In::JsonPath => JSONPATH,
                        _ => JSONATA,
                    }
                ),
                Some(_) => continue,
            };
            self.report(UNKNOWN_FIELD, &pointer_push(ptr, key), message);
            rejected.push(key.as_str());
        }
        Obj {
            map,
            ptr: ptr.to_string(),
            rejected,
        }
    }

    /// Checks `QueryLanguage` and returns the language in force.
    fn query_language(&mut self, obj: &Obj, inherited: Lang) -> Lang {
        let ptr = obj.at("QueryLanguage");
        match obj.get("QueryLanguage") {
            None => inherited,
            Some(Value::String(s)) if s == JSONATA => Lang::Jsonata,
            Some(Value::String(s)) if s == JSONPATH => {
                if self.jsonata_top && !obj.ptr.is_empty() {
                    self.report(
                        INVALID_VALUE,
                        &ptr,
                        "a state machine whose top-level QueryLanguage is JSONata cannot use \
                         JSONPath anywhere",
                    );
                }
                Lang::JsonPath
            }
            Some(Value::String(s)) => {
                self.report(
                    INVALID_VALUE,
                    &ptr,
                    format!("'QueryLanguage' must be 'JSONPath' or 'JSONata', not '{s}'"),
                );
                inherited
            }
            Some(other) => {
                self.report(
                    INVALID_TYPE,
                    &ptr,
                    format!("'QueryLanguage' must be a string, not {}", type_name(other)),
                );
                inherited
            }
        }
    }

    /// At most one of `keys` may be present; reports every one after the first.
    fn exclusive(&mut self, obj: &Obj, keys: &[&str]) -> usize {
        let present: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| obj.get(k).is_some())
            .collect();
        for extra in present.iter().skip(1) {
            self.report(
                MUTUALLY_EXCLUSIVE_FIELDS,
                &obj.at(extra),
                format!("'{extra}' cannot be used together with '{}'", present[0]),
            );
        }
        present.len()
    }

    /// Exactly one of `keys` must be present.
    fn one_of(&mut self, obj: &Obj, keys: &[&str]) {
        if self.exclusive(obj, keys) == 0 {
            let list = keys.join("', '");
            self.report(
                MISSING_FIELD,
                &obj.ptr,
                format!("one of '{list}' is required"),
            );
        }
    }

    fn optional_string(&mut self, obj: &Obj, key: &str) {
        if let Some(v) = obj.get(key) {
            if !v.is_string() {
                self.report(
                    INVALID_TYPE,
                    &obj.at(key),
                    format!("'{key}' must be a string, not {}", type_name(v)),
                );
            }
        }
    }

    fn enum_field<'v>(&mut self, obj: &Obj<'v>, key: &str, allowed: &[&str]) -> Option<&'v str> {
        match obj.get(key)? {
            Value::String(s) if allowed.contains(&s.as_str()) => Some(s.as_str()),
            Value::String(s) => {
                self.report(
                    INVALID_VALUE,
                    &obj.at(key),
                    format!("'{key}' must be one of {}, not '{s}'", allowed.join(", ")),
                );
                None
            }
            other => {
                self.report(
                    INVALID_TYPE,
                    &obj.at(key),
                    format!("'{key}' must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A whole number in `min..=max`; under JSONata it may also be an expression (then `None`).
    fn integer(&mut self, obj: &Obj, key: &str, min: f64, max: f64, lang: Lang) -> Option<f64> {
        let v = obj.get(key)?;
        let n = self.numeric(obj, key, v, lang, "an integer")?;
        if n.fract() != 0.0 {
            self.report(
                INVALID_TYPE,
                &obj.at(key),
                format!("'{key}' must be an integer, not {v}"),
            );
            return None;
        }
        self.in_range(obj, key, n, min, max)
    }

    /// A number in `min..=max`; under JSONata it may also be an expression (then `None`).
    fn number(&mut self, obj: &Obj, key: &str, min: f64, max: f64, lang: Lang) -> Option<f64> {
        let v = obj.get(key)?;
        let n = self.numeric(obj, key, v, lang, "a number")?;
        self.in_range(obj, key, n, min, max)
    }

    fn numeric(&mut self, obj: &Obj, key: &str, v: &Value, lang: Lang, kind: &str) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if lang == Lang::Jsonata && is_jsonata(s) => None,
            other => {
                let alt = if lang == Lang::Jsonata {
                    " or a JSONata expression"
                } else {
                    ""
                };
                self.report(
                    INVALID_TYPE,
                    &obj.at(key),
                    format!("'{key}' must be {kind}{alt}, not {}", describe(other)),
                );
                None
            }
        }
    }

    fn in_range(&mut self, obj: &Obj, key: &str, n: f64, min: f64, max: f64) -> Option<f64> {
        if n < min || n > max {
            let bound = if n < min {
                format!("at least {min}")
            } else {
                format!("at most {max}")
            };
            self.report(
                INVALID_VALUE,
                &obj.at(key),
                format!("'{key}' must be {bound}, not {n}"),
            );
            return None;
        }
        Some(n)
    }

    fn array_field<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<&'v Vec<Value>> {
        match obj.get(key)? {
            Value::Array(a) => Some(a),
            other => {
                self.report(
                    INVALID_TYPE,
                    &obj.at(key),
                    format!("'{key}' must be an array, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn object_field(&mut self, obj: &Obj, key: &str) {
        if let Some(v) = obj.get(key) {
            if !v.is_object() {
                self.report(
                    INVALID_TYPE,
                    &obj.at(key),
                    format!("'{key}' must be an object, not {}", type_name(v)),
                );
            }
        }
    }

    /// A nested configuration object (`Credentials`, `ItemReader`...) with its own fields.
    fn sub_object<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        fields: &[Field],
        lang: Lang,
    ) -> Option<Obj<'v>> {
        let v = obj.get(key)?;
        self.element_object(v, &obj.at(key), fields, lang, &format!("'{key}'"))
    }

    fn element_object<'v>(
        &mut self,
        v: &'v Value,
        ptr: &str,
        fields: &[Field],
        lang: Lang,
        what: &str,
    ) -> Option<Obj<'v>> {
        match v {
            Value::Object(map) => Some(self.known_fields(map, ptr, &[fields], lang, what)),
            other => {
                self.report(
                    INVALID_TYPE,
                    ptr,
                    format!("{what} must be an object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn resource(&mut self, obj: &Obj, required: bool) {
        match obj.get("Resource") {
            None if required => self.report(
                MISSING_FIELD,
                &obj.at("Resource"),
                "missing required field 'Resource'",
            ),
            None | Some(Value::String(_)) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &obj.at("Resource"),
                format!("'Resource' must be a string, not {}", type_name(other)),
            ),
        }
    }

    /// `Arguments` (JSONata): an object template or a single expression.
    fn arguments(&mut self, obj: &Obj) {
        match obj.get("Arguments") {
            None | Some(Value::Object(_)) => {}
            Some(Value::String(s)) if is_jsonata(s) => {}
            Some(other) => self.report(
                INVALID_TYPE,
                &obj.at("Arguments"),
                format!(
                    "'Arguments' must be an object or a JSONata expression, not {}",
                    describe(other)
                ),
            ),
        }
    }

    /// `Assign`: an object whose keys name variables; under JSONPath it is a payload template.
    fn assign(&mut self, obj: &Obj, lang: Lang) {
        let Some(v) = obj.get("Assign") else { return };
        let ptr = obj.at("Assign");
        let Some(map) = v.as_object() else {
            self.report(
                INVALID_TYPE,
                &ptr,
                format!("'Assign' must be an object, not {}", type_name(v)),
            );
            return;
        };
        for key in map.keys() {
            let name = match lang {
                Lang::JsonPath => key.strip_suffix(".$").unwrap_or(key),
                Lang::Jsonata => key,
            };
            if !is_variable_name(name) {
                self.report(
                    INVALID_VALUE,
                    &pointer_push(&ptr, key),
                    format!("'{name}' is not a valid variable name"),
                );
            }
        }
        if lang == Lang::JsonPath {
            self.template(v, &ptr);
        }
    }

    /// A payload template field (`Parameters`, `ResultSelector`, `ItemSelector`...): an object
    /// whose `.$` keys hold paths or intrinsic calls. Under JSONata its strings are opaque.
    fn template_field(&mut self, obj: &Obj, key: &str, lang: Lang) {
        let Some(v) = obj.get(key) else { return };
        if !v.is_object() {
            self.report(
                INVALID_TYPE,
                &obj.at(key),
                format!("'{key}' must be an object, not {}", type_name(v)),
            );
            return;
        }
        if lang == Lang::JsonPath {
            self.template(v, &obj.at(key));
        }
    }

    fn template(&mut self, v: &Value, ptr: &str) {
        match v {
            Value::Object(map) => {
                for (key, value) in map {
                    let p = pointer_push(ptr, key);
                    if !key.ends_with(".$") {
                        self.template(value, &p);
                    } else if let Value::String(s) = value {
                        self.path_or_intrinsic(s, &p);
                    } else {
                        self.report(
                            INVALID_TYPE,
                            &p,
                            format!(
                                "the value of '{key}' must be a path or an intrinsic call \
                                 (a string), not {}",
                                type_name(value)
                            ),
                        );
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.template(item, &pointer_push(ptr, &i.to_string()));
                }
            }
            _ => {}
        }
    }

    fn path_or_intrinsic_field(&mut self, obj: &Obj, key: &str) {
        match obj.get(key) {
            None => {}
            Some(Value::String(s)) => self.path_or_intrinsic(s, &obj.at(key)),
            Some(other) => self.report(
                INVALID_TYPE,
                &obj.at(key),
                format!("'{key}' must be a string, not {}", type_name(other)),
            ),
        }
    }

    fn path_or_intrinsic(&mut self, s: &str, ptr: &str) {
        if is_intrinsic(s) {
            if let Err(e) = Intrinsic::parse(s) {
                self.report(
                    INVALID_INTRINSIC,
                    ptr,
                    format!("invalid intrinsic function call '{s}': {e}"),
                );
            }
        } else {
            self.check_path(s, ptr, PathRule::Any);
        }
    }

    fn path(&mut self, obj: &Obj, key: &str, rule: PathRule, nullable: bool) {
        match obj.get(key) {
            None => {}
            Some(Value::Null) if nullable => {}
            Some(Value::String(s)) => self.check_path(s, &obj.at(key), rule),
            Some(other) => {
                let alt = if nullable { " or null" } else { "" };
                self.report(
                    INVALID_TYPE,
                    &obj.at(key),
                    format!(
                        "'{key}' must be a path string{alt}, not {}",
                        type_name(other)
                    ),
                );
            }
        }
    }

    fn check_path(&mut self, s: &str, ptr: &str, rule: PathRule) {
        let (path, variable) = match parse_path(s) {
            Ok(p) => p,
            Err(reason) => {
                self.report(
                    INVALID_PATH,
                    ptr,
                    format!("'{s}' is not a valid JSONPath: {reason}"),
                );
                return;
            }
        };
        let single_node = path.segments().iter().all(|seg| match seg {
            Segment::Name(_) => true,
            Segment::Index(i) => *i >= 0,
            _ => false,
        });
        let problem = match rule {
            PathRule::Any => None,
            PathRule::Reference if variable.is_some() => Some("it cannot name a variable"),
            PathRule::Reference if path.root() == Root::Context => {
                Some("it cannot point into the context object ($$)")
            }
            PathRule::Reference | PathRule::Sampler if !single_node => {
                Some("it must select a single node (names and non-negative indexes only)")
            }
            PathRule::Reference | PathRule::Sampler => None,
        };
        if let Some(problem) = problem {
            self.report(
                INVALID_REFERENCE_PATH,
                ptr,
                format!("'{s}' is not a valid reference path: {problem}"),
            );
        }
    }
}

/// Parses a JSONPath that may start with a variable (`$name.field`), returning the path
/// relative to that variable and its name.
fn parse_path(s: &str) -> Result<(JsonPath, Option<&str>), String> {
    let trimmed = s.trim();
    if let Some(rest) = trimmed.strip_prefix('$') {
        let name_len = rest.find(['.', '[']).unwrap_or(rest.len());
        if name_len > 0 && !rest.starts_with('$') {
            let name = &rest[..name_len];
            if !is_variable_name(name) {
                return Err(format!("'{name}' is not a valid variable name"));
            }
            let path = JsonPath::parse(&format!("${}", &rest[name_len..])).map_err(|e| e.reason)?;
            return Ok((path, Some(name)));
        }
    }
    JsonPath::parse(s).map(|p| (p, None)).map_err(|e| e.reason)
}

/// A variable name: a letter or `_`, then letters, digits or `_`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// A JSONata expression as Step Functions recognises it: the whole string is `{% ... %}`.
fn is_jsonata(s: &str) -> bool {
    s.len() >= 4 && s.starts_with("{%") && s.ends_with("%}")
}

/// Names a scalar by its value, a container by its type.
fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => type_name(v).to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::compile;
    use serde_json::json;
    use std::path::Path;

    fn codes_and_pointers(diags: &[Diagnostic]) -> Vec<(String, String)> {
        let mut out: Vec<_> = diags
            .iter()
            .map(|d| (d.code.to_string(), d.pointer.clone()))
            .collect();
        out.sort();
        out
    }

    fn json_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("readable directory").flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "json") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn read_json(p: &Path) -> Value {
        let text = std::fs::read_to_string(p).expect("readable file");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Every definition AWS accepted must validate clean.
    #[test]
    fn conformance_definitions_validate_clean() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/conformance/cases"
        ));
        if !dir.is_dir() {
            eprintln!("skipped: no conformance corpus at {}", dir.display());
            return;
        }
        let files = json_files(dir);
        assert!(files.len() >= 700, "only {} cases found", files.len());
        let mut failures = Vec::new();
        for f in &files {
            let case = read_json(f);
            let diags = validate(&case["definition"]);
            if !diags.is_empty() {
                let list: Vec<_> = diags.iter().map(ToString::to_string).collect();
                failures.push(format!("{}:\n  {}", f.display(), list.join("\n  ")));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} accepted definitions were rejected:\n{}",
            failures.len(),
            files.len(),
            failures.join("\n")
        );
    }

    /// Data-driven cases: `tests/validate/*.json` hold a definition and exactly the
    /// diagnostics (code and pointer) it must produce: everything `expressway validate`
    /// reports, so through `compile` (JSONata syntax and unsupported features included).
    #[test]
    fn invalid_definitions_report_expected_diagnostics() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate"));
        let files = json_files(dir);
        assert!(files.len() >= 30, "only {} cases found", files.len());
        let mut failures = Vec::new();
        let mut seen_codes = BTreeSet::new();
        for f in &files {
            let case = read_json(f);
            let expected_list = case["expected"].as_array().expect("'expected' array");
            let mut expected: Vec<(String, String)> = expected_list
                .iter()
                .map(|e| {
                    let field = |k: &str| e[k].as_str().expect("code and pointer strings");
                    (field("code").to_string(), field("pointer").to_string())
                })
                .collect();
            expected.sort();
            let diags = compile(&case["definition"]).err().unwrap_or_default();
            let actual = codes_and_pointers(&diags);
            seen_codes.extend(actual.iter().map(|(c, _)| c.clone()));
            if actual != expected {
                let messages: Vec<_> = diags.iter().map(ToString::to_string).collect();
                failures.push(format!(
                    "{}\n  expected {expected:?}\n  actual   {actual:?}\n  {}",
                    f.display(),
                    messages.join("\n  ")
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        let all = [
            MISSING_FIELD,
            UNKNOWN_FIELD,
            INVALID_TYPE,
            INVALID_VALUE,
            MISSING_NEXT,
            UNKNOWN_STATE,
            UNREACHABLE_STATE,
            NO_TERMINAL_STATE,
            NEXT_AND_END,
            INVALID_PATH,
            INVALID_REFERENCE_PATH,
            STATES_ALL_NOT_LAST,
            UNKNOWN_ERROR_NAME,
            MUTUALLY_EXCLUSIVE_FIELDS,
            INVALID_INTRINSIC,
        ];
        let missing: Vec<_> = all.iter().filter(|c| !seen_codes.contains(**c)).collect();
        assert!(missing.is_empty(), "no data-driven case covers {missing:?}");
    }

    #[test]
    fn minimal_machine_is_valid() {
        let def = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
        assert_eq!(validate(&def), vec![]);
    }

    #[test]
    fn messages_name_the_offending_value() {
        let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}});
        let diags = validate(&def);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, UNKNOWN_STATE);
        assert_eq!(diags[0].pointer, "/States/A/Next");
        assert!(
            diags[0].message.contains("'Nowhere'"),
            "{}",
            diags[0].message
        );
    }

    #[test]
    fn pointers_escape_state_names() {
        let def = json!({"StartAt": "a/b", "States": {
            "a/b": {"Type": "Pass", "End": true},
            "c~d": {"Type": "Pass", "End": true}
        }});
        let diags = validate(&def);
        assert_eq!(
            codes_and_pointers(&diags),
            vec![(UNREACHABLE_STATE.into(), "/States/c~0d".into())]
        );
    }

    #[test]
    fn variables_and_context_paths_are_accepted() {
        for ok in [
            "$",
            "$$",
            "$$.Execution.Input",
            "$var",
            "$var.a[0]",
            "$.a['b c']",
        ] {
            assert!(parse_path(ok).is_ok(), "{ok}");
        }
        for bad in ["var", "$.", "$1x", "$a-b.c"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_intrinsic_calls_are_accepted() {
        let def = json!({"StartAt": "A", "States": {"A": {
            "Type": "Pass",
            "Parameters": {"greeting.$": "States.Format('Hello {}', $.name)"},
            "End": true
        }}});
        assert_eq!(validate(&def), vec![]);
    }

    /// Whatever the input, validation (and the compiler, which runs on invalid definitions
    /// too) reports and never panics.
    #[test]
    fn junk_never_panics() {
        let junk = [
            json!(null),
            json!(42),
            json!("x"),
            json!([]),
            json!({}),
            json!({"StartAt": 1, "States": []}),
            json!({"StartAt": "A", "States": {"A": 7}}),
            json!({"StartAt": "A", "States": {"A": {"Type": 7}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "ItemProcessor": [], "Iterator": 3}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": [1, {}, {"States": {}}], "End": true}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Retry": [1, {"ErrorEquals": [1, null]}], "Catch": {"x": 1}}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [null, 1, {"Next": 5}], "Default": []}}}),
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [1, {"Condition": 3}]}}}),
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"a.$": 1, "b": [{"c.$": "$..x"}]}, "InputPath": "$[", "End": "yes"}}}),
        ];
        for def in &junk {
            let _ = compile(def);
        }
        // Deep nesting through Parallel branches.
        let mut def = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
        for _ in 0..40 {
            def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [def], "End": true}}});
        }
        assert_eq!(validate(&def), vec![]);
    }

    /// Random mutations of accepted definitions: never a panic, in validation or compiler.
    #[test]
    fn mutated_definitions_never_panic() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/conformance/cases"
        ));
        let mut defs: Vec<Value> = json_files(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/validate"
        )))
        .iter()
        .map(|f| read_json(f)["definition"].clone())
        .collect();
        if dir.is_dir() {
            defs.extend(
                json_files(dir)
                    .iter()
                    .step_by(7)
                    .map(|f| read_json(f)["definition"].clone()),
            );
        }
        let junk = [
            json!(null),
            json!(-1),
            json!(1.5),
            json!("$$"),
            json!("{% x %}"),
            json!("States.ALL"),
            json!([]),
            json!({}),
            json!([{"Type": "Pass"}]),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for def in &defs {
            for _ in 0..20 {
                let mut d = def.clone();
                mutate(&mut d, &mut rng, &junk);
                let _ = compile(&d);
            }
        }
    }

    /// Replaces one randomly chosen node (or deletes one member) of `v`.
    fn mutate(v: &mut Value, rng: &mut fastrand::Rng, junk: &[Value]) {
        let depth_stop = rng.u8(0..4) == 0;
        match v {
            Value::Object(m) if !m.is_empty() && !depth_stop => {
                let i = rng.usize(0..m.len());
                if rng.u8(0..6) == 0 {
                    let key = m.keys().nth(i).cloned().unwrap_or_default();
                    m.remove(&key);
                } else if let Some((_, child)) = m.iter_mut().nth(i) {
                    mutate(child, rng, junk);
                }
            }
            Value::Array(a) if !a.is_empty() && !depth_stop => {
                let i = rng.usize(0..a.len());
                mutate(&mut a[i], rng, junk);
            }
            _ => *v = junk[rng.usize(0..junk.len())].clone(),
        }
    }
}
