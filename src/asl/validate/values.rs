//! Field values: numbers, templates and their intrinsic calls, JSONPath paths and variable
//! names, and where JSONata expressions may stand.

use super::fields::{Lang, Obj};
use super::Validator;
use crate::asl::diagnostic::{pointer_push, type_name};
use crate::asl::intrinsics::{is_intrinsic, Intrinsic};
use crate::asl::path::{JsonPath, Root};
use serde_json::Value;

use crate::asl::diagnostic::codes::*;

/// What a path-valued field may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PathRule {
    /// `InputPath`, `OutputPath`, `.$` values: any path on the input, the context or a variable.
    Any,
    /// `ResultPath`: a reference path into the state input; it is written to, so no `$$`.
    Reference,
    /// `SecondsPath` and friends: a single node of the input, the context or a variable.
    Sampler,
}

impl Validator {
    /// A whole number in `min..=max`; under JSONata it may also be an expression (then `None`).
    pub(super) fn integer(
        &mut self,
        obj: &Obj,
        key: &str,
        min: f64,
        max: f64,
        lang: Lang,
    ) -> Option<f64> {
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
    pub(super) fn number(
        &mut self,
        obj: &Obj,
        key: &str,
        min: f64,
        max: f64,
        lang: Lang,
    ) -> Option<f64> {
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

    /// `Arguments` (JSONata): an object template or a single expression.
    pub(super) fn arguments(&mut self, obj: &Obj) {
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
    pub(super) fn assign(&mut self, obj: &Obj, lang: Lang) {
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
    pub(super) fn template_field(&mut self, obj: &Obj, key: &str, lang: Lang) {
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

    pub(super) fn path_or_intrinsic_field(&mut self, obj: &Obj, key: &str) {
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

    pub(super) fn path(&mut self, obj: &Obj, key: &str, rule: PathRule, nullable: bool) {
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
        let single_node = path.names_one_node();
        let problem = match rule {
            PathRule::Any => None,
            PathRule::Reference if variable.is_some() => Some("it cannot name a variable"),
            PathRule::Reference if path.root() == Root::Context => {
                Some("it cannot point into the context object ($$)")
            }
            PathRule::Reference | PathRule::Sampler if !single_node => {
                Some("it must select a single node (names and indexes only)")
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
pub(super) fn parse_path(s: &str) -> Result<(JsonPath, Option<&str>), String> {
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
pub(super) fn is_jsonata(s: &str) -> bool {
    s.len() >= 4 && s.starts_with("{%") && s.ends_with("%}")
}

/// Names a scalar by its value, a container by its type.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => type_name(v).to_string(),
        other => other.to_string(),
    }
}
