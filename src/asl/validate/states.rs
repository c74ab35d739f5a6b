//! The checks of each state type (Pass, Task, Choice, Wait, Succeed, Fail, Parallel); Map has
//! its own file.

use super::fields::{
    Lang, Obj, StateType, CONDITION_RULE_FIELDS, CREDENTIALS_FIELDS, JSONATA, JSONPATH,
};
use super::values::{describe, is_jsonata, PathRule};
use super::{Machine, Node, Validator, MAX_SECONDS};
use crate::asl::choice;
use crate::asl::diagnostic::{pointer_push, type_name};
use crate::asl::intrinsics::Intrinsic;
use crate::asl::timestamp;
use serde_json::Value;
use std::collections::BTreeSet;

use crate::asl::diagnostic::codes::*;

impl Validator {
    pub(super) fn state(
        &mut self,
        v: &Value,
        ptr: &str,
        inherited: Lang,
        names: &BTreeSet<&str>,
    ) -> Node {
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
        for key in ["ErrorPath", "CausePath"] {
            self.path_or_intrinsic_field(st, key);
            self.fail_path_intrinsic(st, key);
        }
    }

    /// AWS allows only the intrinsics that make text in a Fail state's `ErrorPath` and
    /// `CausePath`.
    fn fail_path_intrinsic(&mut self, st: &Obj, key: &str) {
        const ALLOWED: [&str; 7] = [
            "States.Format",
            "States.JsonToString",
            "States.ArrayGetItem",
            "States.Base64Encode",
            "States.Base64Decode",
            "States.Hash",
            "States.UUID",
        ];
        let Some(Value::String(s)) = st.get(key) else {
            return;
        };
        let Some(name) = Intrinsic::parse(s).ok().map(|c| c.name()) else {
            return;
        };
        if !ALLOWED.contains(&name) {
            self.report(
                INVALID_INTRINSIC,
                &st.at(key),
                format!(
                    "'{key}' may not call {name}: only {} are allowed there",
                    ALLOWED.join(", ")
                ),
            );
        }
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
}
