//! Payload templates: `Parameters`, `ResultSelector`, `ItemSelector`.
//!
//! A template is compiled once: constant subtrees stay plain JSON, and every `"key.$"` field
//! becomes a pre-parsed path or intrinsic call.

use super::error::{json_text, EvalError};
use super::intrinsics::{is_intrinsic, Intrinsic};
use super::path::JsonPath;
use super::scope::Scope;
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq)]
pub enum Template {
    /// A subtree with no dynamic field: cloned as is.
    Const(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// `"field.$": "$.path"`; `field` keeps the `.$` suffix for error messages.
    Path {
        field: String,
        path: JsonPath,
    },
    /// `"field.$": "States.Fn(...)"`.
    Call {
        field: String,
        call: Box<Intrinsic>,
    },
}

impl Template {
    /// Compiles a template. Errors name the offending field; validation reports them earlier
    /// with a pointer, so here they only guard against unvalidated input.
    pub fn compile(v: &Value) -> Result<Template, String> {
        if !has_dynamic_field(v) {
            return Ok(Template::Const(v.clone()));
        }
        match v {
            Value::Object(m) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, v) in m {
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err(format!("the value of field '{k}' must be a string"));
                        };
                        let t = if is_intrinsic(expr) {
                            Template::Call {
                                field: k.clone(),
                                call: Box::new(Intrinsic::parse(expr)?),
                            }
                        } else {
                            Template::Path {
                                field: k.clone(),
                                path: JsonPath::parse(expr).map_err(|e| e.to_string())?,
                            }
                        };
                        fields.push((name.to_string(), t));
                    } else {
                        fields.push((k.clone(), Template::compile(v)?));
                    }
                }
                Ok(Template::Object(fields))
            }
            Value::Array(a) => Ok(Template::Array(
                a.iter().map(Template::compile).collect::<Result<_, _>>()?,
            )),
            _ => Ok(Template::Const(v.clone())),
        }
    }

    /// Whether evaluating this template may read the context object (`$$`).
    pub fn uses_context(&self) -> bool {
        match self {
            Template::Const(_) => false,
            Template::Object(f) => f.iter().any(|(_, t)| t.uses_context()),
            Template::Array(a) => a.iter().any(Template::uses_context),
            Template::Path { path, .. } => path.root() == super::path::Root::Context,
            // Intrinsic arguments may be context paths; assume they can.
            Template::Call { .. } => true,
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, EvalError> {
        match self {
            Template::Const(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    out.insert(k.clone(), t.eval(scope)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(scope))
                    .collect::<Result<_, _>>()?,
            )),
            Template::Path { field, path } => match scope.select(path) {
                Some(v) => Ok(v.into_owned()),
                None => Err(EvalError::runtime(format!(
                    "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
                    json_text(scope.input())
                ))),
            },
            Template::Call { call, .. } => call.eval(scope),
        }
    }
}

fn has_dynamic_field(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.ends_with(".$") || has_dynamic_field(v)),
        Value::Array(a) => a.iter().any(has_dynamic_field),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::scope::DocScope;
    use serde_json::json;

    #[test]
    fn dynamic_fields_are_resolved_and_constants_kept() {
        let t =
            Template::compile(&json!({"a.$": "$.x", "b": {"c.$": "$$.Name"}, "d": [1]})).unwrap();
        let input = json!({"x": 7});
        let ctx = json!({"Name": "n"});
        let scope = DocScope {
            input: &input,
            context: &ctx,
        };
        assert_eq!(
            t.eval(&scope).unwrap(),
            json!({"a": 7, "b": {"c": "n"}, "d": [1]})
        );
    }

    #[test]
    fn a_missing_path_names_the_field_and_the_input() {
        let t = Template::compile(&json!({"value.$": "$.nope"})).unwrap();
        let input = json!({"x": 1});
        let ctx = json!({});
        let err = t
            .eval(&DocScope {
                input: &input,
                context: &ctx,
            })
            .unwrap_err();
        assert_eq!(
            err.detail,
            "The JSONPath '$.nope' specified for the field 'value.$' could not be found in the input '{\"x\":1}'"
        );
    }
}
