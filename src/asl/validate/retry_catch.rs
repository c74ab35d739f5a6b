//! Error handling: a state's retriers (`Retry`) and catchers (`Catch`), and the error names
//! they match.

use super::fields::{Lang, Obj, CATCHER_FIELDS, RETRIER_FIELDS};
use super::values::PathRule;
use super::{Node, Validator, MAX_SECONDS};
use crate::asl::diagnostic::{pointer_push, type_name};
use crate::asl::error::names;
use serde_json::Value;
use std::collections::BTreeSet;

use crate::asl::diagnostic::codes::*;

/// `MaxDelaySeconds` must be below one year and a day.
const MAX_DELAY_SECONDS: f64 = 31_622_400.0;

impl Validator {
    pub(super) fn retriers(&mut self, st: &Obj, lang: Lang) {
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

    pub(super) fn catchers(
        &mut self,
        st: &Obj,
        lang: Lang,
        node: &mut Node,
        names: &BTreeSet<&str>,
    ) {
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
}
