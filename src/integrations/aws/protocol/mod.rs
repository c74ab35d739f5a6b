//! AWS's wire protocols, driven by a service's [`Model`]: a Task's parameters become an HTTP
//! request ([`build`]), a response becomes the Task's result or a [`ServiceError`]
//! ([`read`]). JSON 1.0/1.1 (`json`), query (`query`), REST-JSON and REST-XML (`rest`).
//!
//! Step Functions' conventions, which every protocol shares: parameters are matched to a
//! shape's members by name, PascalCase or not (`TaskToken` is SFN's `taskToken`); results
//! carry each member under its name with the first letter capitalised; timestamps come out
//! as ISO-8601 text; a blob goes in as text and comes out as base64, except an HTTP payload
//! (S3's `Body`), which comes out as text.

mod json;
mod query;
mod rest;
pub mod xml;

use super::model::{Member, Model, Operation, Protocol, Shape};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

/// A request before its endpoint and signature: method, path with query, headers, body.
#[derive(Debug, Default, PartialEq)]
pub struct Request {
    pub method: String,
    /// Starts with `/`; percent-encoded.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// S3's bucket when it may move into the host name (virtual-hosted addressing).
    pub bucket: Option<String>,
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn request_id(&self) -> String {
        ["x-amzn-requestid", "x-amz-request-id", "x-amz-id-1"]
            .iter()
            .find_map(|h| self.header(h))
            .unwrap_or_default()
            .to_owned()
    }
}

/// An error the service answered with.
#[derive(Debug, PartialEq)]
pub struct ServiceError {
    pub status: u16,
    /// The wire code (`ResourceNotFoundException`, `NoSuchBucket`, `NotFound`).
    pub code: String,
    pub message: String,
    pub request_id: String,
    /// S3's `x-amz-id-2`.
    pub extended_request_id: Option<String>,
}

/// Builds the request for `operation` from a Task's parameters; `Err` says which parameter
/// does not fit the operation.
pub fn build(
    model: &Model,
    name: &str,
    operation: &Operation,
    parameters: &Value,
) -> Result<Request, String> {
    let empty = Map::new();
    let parameters = match parameters {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => return Err(format!("the parameters must be an object, not {other}")),
    };
    match model.protocol() {
        Protocol::Json => json::build(model, name, operation, parameters),
        Protocol::Query => query::build(model, name, operation, parameters),
        Protocol::RestJson | Protocol::RestXml => rest::build(model, operation, parameters),
    }
}

/// The Task's result from a successful response, or the service's error.
pub fn read(
    model: &Model,
    operation: &Operation,
    response: &Response,
) -> Result<Value, ServiceError> {
    let ok = (200..300).contains(&response.status);
    match (model.protocol(), ok) {
        (Protocol::Json, true) => json::read(model, operation, response),
        (Protocol::Json | Protocol::RestJson, false) => Err(json::error(response)),
        (Protocol::Query, true) => query::read(model, operation, response),
        (Protocol::Query | Protocol::RestXml, false) => Err(xml_error(response)),
        (Protocol::RestJson | Protocol::RestXml, true) => rest::read(model, operation, response),
    }
}

/// The error of the XML protocols: `<ErrorResponse><Error><Code>…` (query) or `<Error>…`
/// (S3); a body-less answer (S3's HEAD) is named by its status.
fn xml_error(response: &Response) -> ServiceError {
    let root = xml::parse(&response.body).ok();
    let error = root.as_ref().and_then(|r| {
        if r.name == "Error" {
            Some(r)
        } else {
            r.child("Error")
        }
    });
    let text = |name: &str| error.and_then(|e| e.text_at(&[name])).map(str::to_owned);
    let code = text("Code").unwrap_or_else(|| status_code_name(response.status).to_owned());
    let message = text("Message").unwrap_or_else(|| {
        if root.is_some() {
            String::new()
        } else {
            String::from_utf8_lossy(&response.body).trim().to_owned()
        }
    });
    let request_id = match response.request_id() {
        id if !id.is_empty() => id,
        _ => text("RequestId")
            .or_else(|| {
                root.as_ref()
                    .and_then(|r| r.text_at(&["RequestId"]))
                    .map(str::to_owned)
            })
            .unwrap_or_default(),
    };
    ServiceError {
        status: response.status,
        code,
        message,
        request_id,
        extended_request_id: response.header("x-amz-id-2").map(str::to_owned),
    }
}

/// What SDKs call an error that came without a code.
fn status_code_name(status: u16) -> &'static str {
    match status {
        301 => "PermanentRedirect",
        304 => "NotModified",
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        412 => "PreconditionFailed",
        s if s >= 500 => "InternalError",
        _ => "Unknown",
    }
}

/// The member of `shape` a parameter names: by its exact name, else ignoring case
/// (`TaskToken` for SFN's `taskToken`).
fn member<'m>(shape: &'m Shape, key: &str) -> Option<(&'m str, &'m Member)> {
    shape
        .members
        .get_key_value(key)
        .or_else(|| {
            shape
                .members
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
        })
        .map(|(name, m)| (name.as_str(), m))
}

/// `key` of a result: the member's name with its first letter capitalised.
fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn unknown_member(shape_name: &str, key: &str) -> String {
    format!("the field '{key}' is not a member of {shape_name}")
}

fn shape_of<'m>(model: &'m Model, member: &Member) -> Result<&'m Shape, String> {
    model
        .shape(&member.shape)
        .ok_or_else(|| format!("the model has no shape {}", member.shape))
}

/// A timestamp parameter: ISO-8601 text, or seconds since the epoch.
fn timestamp_in(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
        }
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| s.parse::<f64>().ok().and_then(|f| timestamp_in(&f.into()))),
        _ => None,
    }
}

/// A timestamp on the wire, in `format` (`iso8601`, `rfc822`, `unixTimestamp`).
fn timestamp_text(t: DateTime<Utc>, format: &str) -> String {
    match format {
        "rfc822" => t.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        "unixTimestamp" => epoch_seconds(t).to_string(),
        _ => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

fn epoch_seconds(t: DateTime<Utc>) -> Value {
    let millis = t.timestamp_millis();
    if millis % 1000 == 0 {
        Value::from(millis / 1000)
    } else {
        Value::from(millis as f64 / 1000.0)
    }
}

/// A timestamp from the wire (any of the three forms) as a result's ISO-8601 text, as Java's
/// `Instant` prints it.
fn timestamp_out(value: &Value) -> Value {
    let parsed = match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_rfc2822(s))
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| timestamp_in(value)),
        other => timestamp_in(other),
    };
    match parsed {
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        None => value.clone(),
    }
}

/// A blob parameter's bytes: text as its UTF-8, anything else as its JSON text.
fn blob_in(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => other.to_string().into_bytes(),
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A scalar parameter as wire text (query strings, headers, XML, form fields).
fn scalar_text(shape: &Shape, member: &Member, value: &Value, default_ts: &str) -> String {
    match (shape.kind.as_str(), value) {
        ("timestamp", v) => match timestamp_in(v) {
            Some(t) => timestamp_text(
                t,
                member
                    .timestamp_format
                    .as_deref()
                    .or(shape.timestamp_format.as_deref())
                    .unwrap_or(default_ts),
            ),
            None => text_of(v),
        },
        ("blob", v) => base64(&blob_in(v)),
        (_, v) => text_of(v),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A scalar from wire text, typed by its shape.
fn scalar_from_text(shape: &Shape, text: &str) -> Value {
    match shape.kind.as_str() {
        "integer" | "long" => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        "float" | "double" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        "boolean" => Value::Bool(text.trim() == "true"),
        "timestamp" => timestamp_out(&Value::String(text.trim().to_owned())),
        _ => Value::String(text.to_owned()),
    }
}

/// The result read from an XML element by `shape`: members by their element names (or
/// attributes), lists wrapped or flattened, maps as `entry`/`key`/`value`.
fn from_xml(model: &Model, shape: &Shape, element: &xml::Element) -> Value {
    match shape.kind.as_str() {
        "structure" => {
            let mut out = Map::new();
            for (name, m) in &shape.members {
                let Some(target) = model.shape(&m.shape) else {
                    continue;
                };
                if m.location.is_some() {
                    continue;
                }
                let wire = m.location_name.as_deref().unwrap_or(name);
                if m.xml_attribute {
                    if let Some(v) = element.attribute(wire) {
                        out.insert(pascal(name), scalar_from_text(target, v));
                    }
                    continue;
                }
                let flattened = m.flattened || target.flattened;
                let value = match target.kind.as_str() {
                    "list" if flattened => {
                        let item_name = target
                            .member
                            .as_ref()
                            .and_then(|i| i.location_name.as_deref())
                            .filter(|_| m.location_name.is_none())
                            .unwrap_or(wire);
                        let items: Vec<&xml::Element> = element.children(item_name).collect();
                        if items.is_empty() {
                            continue;
                        }
                        list_items(model, target, items.into_iter())
                    }
                    "map" if flattened => {
                        let entries: Vec<&xml::Element> = element.children(wire).collect();
                        if entries.is_empty() {
                            continue;
                        }
                        map_entries(model, target, entries.into_iter())
                    }
                    _ => match element.child(wire) {
                        Some(child) => from_xml(model, target, child),
                        None => continue,
                    },
                };
                out.insert(pascal(name), value);
            }
            Value::Object(out)
        }
        "list" => list_items(model, shape, element.children.iter()),
        "map" => map_entries(model, shape, element.children("entry")),
        _ => scalar_from_text(shape, &element.text),
    }
}

fn list_items<'e>(
    model: &Model,
    list: &Shape,
    items: impl Iterator<Item = &'e xml::Element>,
) -> Value {
    let Some(item) = list.member.as_ref().and_then(|m| model.shape(&m.shape)) else {
        return Value::Array(Vec::new());
    };
    Value::Array(items.map(|e| from_xml(model, item, e)).collect())
}

fn map_entries<'e>(
    model: &Model,
    map: &Shape,
    entries: impl Iterator<Item = &'e xml::Element>,
) -> Value {
    let (Some(key), Some(value)) = (map.key.as_ref(), map.value.as_ref()) else {
        return Value::Object(Map::new());
    };
    let Some(value_shape) = model.shape(&value.shape) else {
        return Value::Object(Map::new());
    };
    let key_name = key.location_name.as_deref().unwrap_or("key");
    let value_name = value.location_name.as_deref().unwrap_or("value");
    let mut out = Map::new();
    for entry in entries {
        if let (Some(k), Some(v)) = (entry.text_at(&[key_name]), entry.child(value_name)) {
            out.insert(k.to_owned(), from_xml(model, value_shape, v));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
