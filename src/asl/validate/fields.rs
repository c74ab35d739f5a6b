//! What may appear where: the field allow-lists per state type and per (sub) state machine,
//! the query languages, and the helpers that check an object's members and their shapes.

use super::Validator;
use crate::asl::diagnostic::{pointer_push, type_name};
use serde_json::{Map, Value};

use crate::asl::diagnostic::codes::*;

pub(super) const JSONPATH: &str = "JSONPath";
pub(super) const JSONATA: &str = "JSONata";

/// The query language a state (or field) is evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lang {
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
pub(super) enum In {
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

pub(super) type Field = (&'static str, In);

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
pub(super) const PROCESSOR_CONFIG_FIELDS: &[Field] =
    &[("Mode", In::Both), ("ExecutionType", In::Both)];
pub(super) const RETRIER_FIELDS: &[Field] = &[
    ("ErrorEquals", In::Both),
    ("IntervalSeconds", In::Both),
    ("MaxAttempts", In::Both),
    ("BackoffRate", In::Both),
    ("MaxDelaySeconds", In::Both),
    ("JitterStrategy", In::Both),
    ("Comment", In::Both),
];
pub(super) const CATCHER_FIELDS: &[Field] = &[
    ("ErrorEquals", In::Both),
    ("Next", In::Both),
    ("ResultPath", In::JsonPath),
    ("Assign", In::Both),
    ("Output", In::Jsonata),
    ("Comment", In::Both),
];
/// A JSONata Choice rule; JSONPath rules are checked by
/// [`choice::validate_rule`](crate::asl::choice::validate_rule).
pub(super) const CONDITION_RULE_FIELDS: &[Field] = &[
    ("Condition", In::Both),
    ("Next", In::Both),
    ("Assign", In::Both),
    ("Output", In::Both),
    ("Comment", In::Both),
];
pub(super) const CREDENTIALS_FIELDS: &[Field] =
    &[("RoleArn", In::Both), ("RoleArnPath", In::JsonPath)];
pub(super) const ITEM_READER_FIELDS: &[Field] = &[
    ("Resource", In::Both),
    ("ReaderConfig", In::Both),
    ("Parameters", In::JsonPath),
    ("Arguments", In::Jsonata),
];
pub(super) const ITEM_BATCHER_FIELDS: &[Field] = &[
    ("MaxItemsPerBatch", In::Both),
    ("MaxItemsPerBatchPath", In::JsonPath),
    ("MaxInputBytesPerBatch", In::Both),
    ("MaxInputBytesPerBatchPath", In::JsonPath),
    ("BatchInput", In::Both),
];
pub(super) const RESULT_WRITER_FIELDS: &[Field] = &[
    ("Resource", In::Both),
    ("Parameters", In::JsonPath),
    ("Arguments", In::Jsonata),
    ("WriterConfig", In::Both),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StateType {
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
    pub(super) const ALL: [(&'static str, StateType); 8] = [
        ("Pass", StateType::Pass),
        ("Task", StateType::Task),
        ("Choice", StateType::Choice),
        ("Wait", StateType::Wait),
        ("Succeed", StateType::Succeed),
        ("Fail", StateType::Fail),
        ("Parallel", StateType::Parallel),
        ("Map", StateType::Map),
    ];

    pub(super) fn parse(s: &str) -> Option<StateType> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub(super) fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("", |(n, _)| n)
    }

    pub(super) fn fields(self) -> &'static [&'static [Field]] {
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
    pub(super) fn has_transition(self) -> bool {
        !matches!(
            self,
            StateType::Choice | StateType::Succeed | StateType::Fail
        )
    }
}

/// The three places a state machine appears, each with its own allowed fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Machine {
    Top,
    Branch,
    Processor,
}

impl Machine {
    pub(super) fn fields(self) -> &'static [Field] {
        match self {
            Machine::Top => TOP_FIELDS,
            Machine::Branch => BRANCH_FIELDS,
            Machine::Processor => PROCESSOR_FIELDS,
        }
    }

    pub(super) fn what(self) -> &'static str {
        match self {
            Machine::Top => "the state machine",
            Machine::Branch => "a Parallel branch",
            Machine::Processor => "a Map item processor",
        }
    }
}

/// An object being checked: its members minus those already reported as not allowed, so a
/// misplaced field is reported once, not again for its value.
pub(super) struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub(super) ptr: String,
    rejected: Vec<&'a str>,
}

impl<'a> Obj<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        if self.rejected.contains(&key) {
            return None;
        }
        self.map.get(key)
    }

    pub(super) fn at(&self, key: &str) -> String {
        pointer_push(&self.ptr, key)
    }
}

impl Validator {
    /// Reports fields that `groups` do not list or that belong to the other query language.
    pub(super) fn known_fields<'a>(
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
    pub(super) fn query_language(&mut self, obj: &Obj, inherited: Lang) -> Lang {
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
    pub(super) fn exclusive(&mut self, obj: &Obj, keys: &[&str]) -> usize {
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
    pub(super) fn one_of(&mut self, obj: &Obj, keys: &[&str]) {
        if self.exclusive(obj, keys) == 0 {
            let list = keys.join("', '");
            self.report(
                MISSING_FIELD,
                &obj.ptr,
                format!("one of '{list}' is required"),
            );
        }
    }

    pub(super) fn optional_string(&mut self, obj: &Obj, key: &str) {
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

    pub(super) fn enum_field<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        allowed: &[&str],
    ) -> Option<&'v str> {
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

    pub(super) fn array_field<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<&'v Vec<Value>> {
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

    pub(super) fn object_field(&mut self, obj: &Obj, key: &str) {
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
    pub(super) fn sub_object<'v>(
        &mut self,
        obj: &Obj<'v>,
        key: &str,
        fields: &[Field],
        lang: Lang,
    ) -> Option<Obj<'v>> {
        let v = obj.get(key)?;
        self.element_object(v, &obj.at(key), fields, lang, &format!("'{key}'"))
    }

    pub(super) fn element_object<'v>(
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

    pub(super) fn resource(&mut self, obj: &Obj, required: bool) {
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
}
