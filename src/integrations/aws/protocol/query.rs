//! The query protocol (SNS, STS): form-encoded `Action=…&Version=…` requests with members
//! flattened into dotted names (`Attributes.entry.1.key`), XML responses wrapped in
//! `<{Op}Response><{Op}Result>`.

use super::{
    from_xml, member, scalar_text, shape_of, unknown_member, xml, Request, Response, ServiceError,
};
use crate::integrations::aws::model::{Model, Operation, Shape};
use serde_json::{Map, Value};

pub fn build(
    model: &Model,
    name: &str,
    operation: &Operation,
    parameters: &Map<String, Value>,
) -> Result<Request, String> {
    let mut fields = vec![
        ("Action".to_owned(), name.to_owned()),
        ("Version".to_owned(), model.metadata.api_version.clone()),
    ];
    match &operation.input {
        Some(input) => {
            let shape = shape_of(model, input)?;
            structure(model, &input.shape, shape, parameters, "", &mut fields)?
        }
        None if parameters.is_empty() => {}
        None => return Err(format!("{name} takes no parameters")),
    }
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        form.append_pair(k, v);
    }
    Ok(Request {
        method: "POST".into(),
        path_and_query: "/".into(),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body: form.finish().into_bytes(),
        bucket: None,
    })
}

fn structure(
    model: &Model,
    shape_name: &str,
    shape: &Shape,
    parameters: &Map<String, Value>,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for (key, value) in parameters {
        let (name, m) = member(shape, key).ok_or_else(|| unknown_member(shape_name, key))?;
        if value.is_null() {
            continue;
        }
        let wire = m.location_name.as_deref().unwrap_or(name);
        let path = if prefix.is_empty() {
            wire.to_owned()
        } else {
            format!("{prefix}.{wire}")
        };
        field(model, &m.shape, m.flattened, value, &path, out)?;
    }
    Ok(())
}

fn field(
    model: &Model,
    shape_name: &str,
    flattened: bool,
    value: &Value,
    path: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let shape = model
        .shape(shape_name)
        .ok_or_else(|| format!("the model has no shape {shape_name}"))?;
    match (shape.kind.as_str(), value) {
        ("structure", Value::Object(fields)) => {
            structure(model, shape_name, shape, fields, path, out)
        }
        ("list", Value::Array(items)) => {
            let item = shape.member.as_ref().ok_or("a list without a member")?;
            if items.is_empty() {
                out.push((path.to_owned(), String::new()));
                return Ok(());
            }
            let base = if flattened || shape.flattened {
                path.to_owned()
            } else {
                format!(
                    "{path}.{}",
                    item.location_name.as_deref().unwrap_or("member")
                )
            };
            for (i, v) in items.iter().enumerate() {
                field(
                    model,
                    &item.shape,
                    false,
                    v,
                    &format!("{base}.{}", i + 1),
                    out,
                )?;
            }
            Ok(())
        }
        ("map", Value::Object(entries)) => {
            let (key, item) = match (&shape.key, &shape.value) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err("a map without a key or value".into()),
            };
            let base = if flattened || shape.flattened {
                path.to_owned()
            } else {
                format!("{path}.entry")
            };
            let key_name = key.location_name.as_deref().unwrap_or("key");
            let value_name = item.location_name.as_deref().unwrap_or("value");
            for (i, (k, v)) in entries.iter().enumerate() {
                let entry = format!("{base}.{}", i + 1);
                out.push((format!("{entry}.{key_name}"), k.clone()));
                field(
                    model,
                    &item.shape,
                    false,
                    v,
                    &format!("{entry}.{value_name}"),
                    out,
                )?;
            }
            Ok(())
        }
        ("boolean", Value::Bool(b)) => {
            out.push((path.to_owned(), b.to_string()));
            Ok(())
        }
        (_, v) => {
            let m = crate::integrations::aws::model::Member::default();
            out.push((path.to_owned(), scalar_text(shape, &m, v, "iso8601")));
            Ok(())
        }
    }
}

pub fn read(
    model: &Model,
    operation: &Operation,
    response: &Response,
) -> Result<Value, ServiceError> {
    let Some(output) = &operation.output else {
        return Ok(Value::Object(Map::new()));
    };
    let root = xml::parse(&response.body).map_err(|e| super::json::unreadable(response, &e))?;
    let result = match &output.result_wrapper {
        Some(wrapper) => root.child(wrapper),
        None => Some(&root),
    };
    Ok(match (result, model.shape(&output.shape)) {
        (Some(element), Some(shape)) => from_xml(model, shape, element),
        _ => Value::Object(Map::new()),
    })
}
