//! Payload templates: `Parameters`, `ResultSelector`, `ItemSelector`.
//!
//! A template is compiled once: constant subtrees stay plain JSON, and every `"key.$"` field
//! becomes a pre-parsed path or intrinsic call.

use super::error::{json_text, EvalError};
use super::intrinsics::{is_intrinsic, Intrinsic};
use super::path::{JsonPath, Root};
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

    /// A bound on the size of this template's output as `(constant, per_input)`: at most
    /// `constant + per_input * size(input)` bytes. `None` when an intrinsic call makes it
    /// unknowable without evaluating.
    pub fn size_bound(&self) -> Option<(usize, usize)> {
        (!self.has_calls()).then(|| self.bound_besides_calls())
    }

    /// Like [`size_bound`](Self::size_bound), counting intrinsic call results as empty: add
    /// their measured sizes to get a bound.
    pub fn bound_besides_calls(&self) -> (usize, usize) {
        match self {
            Template::Const(v) => (super::size::json_len(v), 0),
            Template::Object(fields) => fields.iter().fold((2, 0), |(c, k), (key, t)| {
                let (tc, tk) = t.bound_besides_calls();
                // quotes, colon and comma around each key (escapes at most double it)
                (c + key.len() * 2 + 4 + tc, k + tk)
            }),
            Template::Array(items) => items.iter().fold((2, 0), |(c, k), t| {
                let (tc, tk) = t.bound_besides_calls();
                (c + 1 + tc, k + tk)
            }),
            Template::Path { .. } => (0, 1),
            Template::Call { .. } => (0, 0),
        }
    }

    fn has_calls(&self) -> bool {
        match self {
            Template::Const(_) | Template::Path { .. } => false,
            Template::Object(f) => f.iter().any(|(_, t)| t.has_calls()),
            Template::Array(a) => a.iter().any(Template::has_calls),
            Template::Call { .. } => true,
        }
    }

    /// Whether [`eval_consuming`](Self::eval_consuming) applies: every path field is a
    /// definite `$` path below the root, and no two of them overlap (so each value can be
    /// moved out of the input exactly once). Intrinsic calls are fine: they are evaluated
    /// first, against the untouched input.
    pub fn consumable(&self) -> bool {
        let mut paths = Vec::new();
        if !self.collect_paths(&mut paths) {
            return false;
        }
        paths.iter().enumerate().all(|(i, a)| {
            paths[i + 1..]
                .iter()
                .all(|b| !a.contains(b) && !b.contains(a))
        })
    }

    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a JsonPath>) -> bool {
        match self {
            Template::Const(_) | Template::Call { .. } => true,
            Template::Object(f) => f.iter().all(|(_, t)| t.collect_paths(out)),
            Template::Array(a) => a.iter().all(|t| t.collect_paths(out)),
            Template::Path { path, .. } => {
                out.push(path);
                path.root() == Root::Input && path.is_definite() && !path.is_root()
            }
        }
    }

    /// The results of this template's intrinsic calls, in template order: the first step of
    /// [`eval_consuming`](Self::eval_consuming).
    pub fn eval_calls(&self, scope: &dyn Scope) -> Result<Vec<Value>, EvalError> {
        fn walk(t: &Template, scope: &dyn Scope, out: &mut Vec<Value>) -> Result<(), EvalError> {
            match t {
                Template::Const(_) | Template::Path { .. } => Ok(()),
                Template::Object(f) => f.iter().try_for_each(|(_, t)| walk(t, scope, out)),
                Template::Array(a) => a.iter().try_for_each(|t| walk(t, scope, out)),
                Template::Call { call, .. } => {
                    out.push(call.eval(scope)?);
                    Ok(())
                }
            }
        }
        let mut out = Vec::new();
        walk(self, scope, &mut out)?;
        Ok(out)
    }

    /// Evaluates a [`consumable`](Self::consumable) template by moving values out of
    /// `input`, which the caller is about to discard, given the results of
    /// [`eval_calls`](Self::eval_calls). Returns `None`, with `input` restored, when a path
    /// selects nothing: the caller then runs [`eval`](Self::eval) for AWS's error.
    pub fn eval_consuming(&self, input: &mut Value, calls: Vec<Value>) -> Option<Value> {
        let mut paths = Vec::new();
        self.collect_paths(&mut paths);
        let mut taken = Vec::with_capacity(paths.len());
        for path in &paths {
            match path.take(input) {
                Some(v) => taken.push(v),
                None => {
                    for (p, v) in paths.iter().zip(taken) {
                        let _ = p.assign(input, v);
                    }
                    return None;
                }
            }
        }
        Some(self.build(&mut taken.into_iter(), &mut calls.into_iter()))
    }

    fn build(
        &self,
        taken: &mut std::vec::IntoIter<Value>,
        calls: &mut std::vec::IntoIter<Value>,
    ) -> Value {
        match self {
            Template::Const(v) => v.clone(),
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    out.insert(k.clone(), t.build(taken, calls));
                }
                Value::Object(out)
            }
            Template::Array(items) => {
                Value::Array(items.iter().map(|t| t.build(taken, calls)).collect())
            }
            Template::Path { .. } => taken.next().unwrap_or_default(),
            Template::Call { .. } => calls.next().unwrap_or_default(),
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
                None => Err(missing_field(field, path, scope.input())),
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

fn missing_field(field: &str, path: &JsonPath, input: &Value) -> EvalError {
    EvalError::runtime(format!(
        "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
        json_text(input)
    ))
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
