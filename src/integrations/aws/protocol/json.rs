//! The JSON protocols: AWS JSON 1.0/1.1 (`POST /` with `X-Amz-Target`) and the JSON bodies
//! of REST-JSON.

use super::{
    base64, blob_in, epoch_seconds, member, pascal, shape_of, timestamp_in, timestamp_out,
    unknown_member, Request, Response, ServiceError,
};
use crate::integrations::aws::model::{Model, Operation, Shape};
use serde_json::{Map, Value};

pub fn build(
    model: &Model,
    name: &str,
    operation: &Operation,
    parameters: &Map<String, Value>,
) -> Result<Request, String> {
    let body = match &operation.input {
        Some(input) => to_wire(model, &input.shape, shape_of(model, input)?, parameters)?,
        None if parameters.is_empty() => Value::Object(Map::new()),
        None => return Err(format!("{name} takes no parameters")),
    };
    let version = model.metadata.json_version.as_deref().unwrap_or("1.0");
    let target = format!(
        "{}.{name}",
        model.metadata.target_prefix.as_deref().unwrap_or_default()
    );
    Ok(Request {
        method: "POST".into(),
        path_and_query: "/".into(),
        headers: vec![
            (
                "content-type".into(),
                format!("application/x-amz-json-{version}"),
            ),
            ("x-amz-target".into(), target),
        ],
        body: serde_json::to_vec(&body).unwrap_or_default(),
        bucket: None,
    })
}

/// A structure's parameters as the service's JSON: wire names, timestamps as epoch
/// seconds, blobs as base64, nulls left out (an SDK leaves an unset member out).
pub fn to_wire(
    model: &Model,
    shape_name: &str,
    shape: &Shape,
    parameters: &Map<String, Value>,
) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, value) in parameters {
        let (name, m) = member(shape, key).ok_or_else(|| unknown_member(shape_name, key))?;
        if value.is_null() || m.location.is_some() {
            continue;
        }
        let wire = m.location_name.as_deref().unwrap_or(name);
        out.insert(wire.to_owned(), value_to_wire(model, &m.shape, value)?);
    }
    Ok(Value::Object(out))
}

fn value_to_wire(model: &Model, shape_name: &str, value: &Value) -> Result<Value, String> {
    let shape = model
        .shape(shape_name)
        .ok_or_else(|| format!("the model has no shape {shape_name}"))?;
    Ok(match (shape.kind.as_str(), value) {
        ("structure", Value::Object(fields)) => to_wire(model, shape_name, shape, fields)?,
        ("list", Value::Array(items)) => {
            let item = &shape
                .member
                .as_ref()
                .ok_or("a list without a member")?
                .shape;
            Value::Array(
                items
                    .iter()
                    .map(|v| value_to_wire(model, item, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        ("map", Value::Object(entries)) => {
            let item = &shape.value.as_ref().ok_or("a map without a value")?.shape;
            let mut out = Map::new();
            for (k, v) in entries {
                if !v.is_null() {
                    out.insert(k.clone(), value_to_wire(model, item, v)?);
                }
            }
            Value::Object(out)
        }
        ("timestamp", v) => timestamp_in(v)
            .map(epoch_seconds)
            .unwrap_or_else(|| v.clone()),
        ("blob", v) => Value::String(base64(&blob_in(v))),
        // A document or a scalar goes as given.
        (_, v) => v.clone(),
    })
}

pub fn read(
    model: &Model,
    operation: &Operation,
    response: &Response,
) -> Result<Value, ServiceError> {
    let body: Value = if response.body.is_empty() {
        Value::Object(Map::new())
    } else {
        crate::asl::json::from_slice(&response.body)
            .map_err(|e| unreadable(response, &e.to_string()))?
    };
    Ok(match &operation.output {
        Some(output) => match model.shape(&output.shape) {
            Some(shape) => from_wire(model, shape, &body),
            None => body,
        },
        None => Value::Object(Map::new()),
    })
}

/// A response that does not parse: the SDK's "Unable to unmarshall" failure, as an error
/// of the service's answer.
pub fn unreadable(response: &Response, why: &str) -> ServiceError {
    ServiceError {
        status: response.status,
        code: "SdkClientException".into(),
        message: format!("Unable to unmarshall response ({why})"),
        request_id: response.request_id(),
        extended_request_id: None,
    }
}

/// The service's JSON as a result: members under their PascalCase names, timestamps as
/// ISO-8601 text, map keys as they are.
pub fn from_wire(model: &Model, shape: &Shape, value: &Value) -> Value {
    match (shape.kind.as_str(), value) {
        ("structure", Value::Object(fields)) => {
            let mut out = Map::new();
            for (name, m) in &shape.members {
                let wire = m.location_name.as_deref().unwrap_or(name);
                // An SDK reads a null member as one that is not there.
                let Some(v) = fields.get(wire).filter(|v| !v.is_null()) else {
                    continue;
                };
                let converted = match model.shape(&m.shape) {
                    Some(target) => from_wire(model, target, v),
                    None => v.clone(),
                };
                out.insert(pascal(name), converted);
            }
            Value::Object(out)
        }
        ("list", Value::Array(items)) => {
            match shape.member.as_ref().and_then(|m| model.shape(&m.shape)) {
                Some(item) => {
                    Value::Array(items.iter().map(|v| from_wire(model, item, v)).collect())
                }
                None => value.clone(),
            }
        }
        ("map", Value::Object(entries)) => {
            match shape.value.as_ref().and_then(|m| model.shape(&m.shape)) {
                Some(item) => Value::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), from_wire(model, item, v)))
                        .collect(),
                ),
                None => value.clone(),
            }
        }
        ("timestamp", v) => timestamp_out(v),
        (_, v) => v.clone(),
    }
}

/// A JSON protocol's error: the code from `__type` (or `code`, or the `x-amzn-ErrorType`
/// header) without its namespace, the message from `message` in any casing.
pub fn error(response: &Response) -> ServiceError {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let code = response
        .header("x-amzn-errortype")
        .or_else(|| body.get("__type").and_then(Value::as_str))
        .or_else(|| body.get("code").and_then(Value::as_str))
        .map(|t| t.split(':').next().unwrap_or(t))
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| super::status_code_name(response.status).to_owned());
    let message = ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map_or_else(
            || {
                if body.is_null() {
                    String::from_utf8_lossy(&response.body).trim().to_owned()
                } else {
                    String::new()
                }
            },
            str::to_owned,
        );
    ServiceError {
        status: response.status,
        code,
        message,
        request_id: response.request_id(),
        extended_request_id: None,
    }
}
