//! What this engine does not run yet, found before compiling: valid ASL (validation accepts
//! it) that gets an `UNSUPPORTED` diagnostic instead of a program. One list, so that adding a
//! feature means deleting a line here.

use super::diagnostic::codes::UNSUPPORTED;
use super::diagnostic::{pointer_push, Diagnostic};
use super::path::mentions_variable;
use super::walk::{each_machine, states};
use serde_json::{Map, Value};

/// State fields that belong to JSONata, variables or Distributed Map's S3 integration.
const FIELDS: &[(&str, &str)] = &[
    (
        "Assign",
        "workflow variables (Assign) are not supported yet",
    ),
    ("Output", "Output (JSONata) is not supported yet"),
    ("Arguments", "Arguments (JSONata) is not supported yet"),
    ("Items", "Items (JSONata) is not supported yet"),
    (
        "ItemReader",
        "ItemReader (Distributed Map over S3) is not supported yet",
    ),
    (
        "ResultWriter",
        "ResultWriter (Distributed Map to S3) is not supported yet",
    ),
];

/// Every use of an unsupported feature in a (valid) definition.
pub fn find(definition: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    each_machine(definition, &mut |machine, ptr| {
        query_language(machine, ptr, &mut out);
        for (state, sptr) in states(machine, ptr) {
            query_language(state, &sptr, &mut out);
            for (field, why) in FIELDS {
                if state.get(*field).is_some() {
                    out.push(Diagnostic::new(
                        UNSUPPORTED,
                        pointer_push(&sptr, field),
                        *why,
                    ));
                }
            }
            variables(state, &sptr, &mut out);
        }
    });
    out
}

fn query_language(v: &Value, ptr: &str, out: &mut Vec<Diagnostic>) {
    if let Some(lang) = v.get("QueryLanguage").and_then(Value::as_str) {
        if lang != "JSONPath" {
            out.push(Diagnostic::new(
                UNSUPPORTED,
                pointer_push(ptr, "QueryLanguage"),
                format!("QueryLanguage {lang} is not supported yet"),
            ));
        }
    }
}

/// Variable references (`$name`) in a state's expressions: `"key.$"` values, `…Path` fields
/// and Choice `Variable`s. Constants (`Result`, plain template values) may hold any text.
/// Nested machines are visited by [`find`].
fn variables(state: &Value, ptr: &str, out: &mut Vec<Diagnostic>) {
    if let Some(fields) = state.as_object() {
        walk(fields, ptr, true, out);
    }
}

fn walk(fields: &Map<String, Value>, ptr: &str, top: bool, out: &mut Vec<Diagnostic>) {
    for (k, v) in fields {
        if top && matches!(k.as_str(), "Branches" | "ItemProcessor" | "Iterator") {
            continue;
        }
        let at = pointer_push(ptr, k);
        match v {
            Value::String(s) if is_expression_key(k) && mentions_variable(s) => {
                out.push(Diagnostic::new(
                    UNSUPPORTED,
                    at,
                    format!("workflow variables are not supported yet: '{s}'"),
                ))
            }
            _ if k == "Result" => {}
            Value::Object(m) => walk(m, &at, false, out),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    if let Value::Object(m) = x {
                        walk(m, &pointer_push(&at, &i.to_string()), false, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_expression_key(k: &str) -> bool {
    k.ends_with(".$") || k.ends_with("Path") || k == "Variable"
}
