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

mod duplicates;
mod fields;
mod map;
mod retry_catch;
mod states;
#[cfg(test)]
mod tests;
mod values;

pub use duplicates::duplicate_keys;

use crate::asl::diagnostic::{pointer_push, type_name, Diagnostic};
use fields::{Lang, Machine, Obj, JSONATA};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::asl::diagnostic::codes::*;

/// Validates a whole state machine definition; returns every problem at once.
pub fn validate(definition: &Value) -> Vec<Diagnostic> {
    let mut v = Validator {
        diags: Vec::new(),
        jsonata_top: definition.get("QueryLanguage").and_then(Value::as_str) == Some(JSONATA),
    };
    v.machine(definition, "", Machine::Top, Lang::JsonPath);
    v.diags
}

/// Upper bound AWS documents for timeouts, intervals and attempt counts.
const MAX_SECONDS: f64 = 99_999_999.0;

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
}
