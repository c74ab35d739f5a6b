//! REST-JSON and REST-XML (Lambda, S3): members bound to the URI (`/{Bucket}/{Key+}`), the
//! query string, headers, the status code or the body; a structure's `payload` member is the
//! whole body.

use super::json;
use super::{
    blob_in, from_xml, member, pascal, scalar_from_text, scalar_text, shape_of, unknown_member,
    xml, Request, Response, ServiceError,
};
use crate::integrations::aws::model::{Member, Model, Operation, Protocol, Shape};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

/// Everything but RFC 3986's unreserved characters is encoded in a URI label.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// A greedy label (`{Key+}`) keeps its slashes.
const GREEDY: &AsciiSet = &LABEL.remove(b'/');

pub fn build(
    model: &Model,
    operation: &Operation,
    parameters: &Map<String, Value>,
) -> Result<Request, String> {
    let (template, literal_query) = match operation.http.request_uri.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (operation.http.request_uri.as_str(), None),
    };
    let mut path = template.to_owned();
    let mut query: Vec<(String, String)> = literal_query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|q| !q.is_empty())
        .map(|q| match q.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (q.to_owned(), String::new()),
        })
        .collect();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut body_members = Map::new();
    let mut payload: Option<(&Member, &Value)> = None;
    let mut bucket = None;
    let input = match &operation.input {
        Some(input) => Some((input, shape_of(model, input)?)),
        None if parameters.is_empty() => None,
        None => return Err("the operation takes no parameters".into()),
    };
    if let Some((input_ref, input)) = input {
        for (key, value) in parameters {
            let (name, m) =
                member(input, key).ok_or_else(|| unknown_member(&input_ref.shape, key))?;
            if value.is_null() {
                continue;
            }
            let target = shape_of(model, m)?;
            let wire = m.location_name.as_deref().unwrap_or(name);
            match m.location.as_deref() {
                Some("uri") => {
                    let text = scalar_text(target, m, value, "iso8601");
                    if model.metadata.endpoint_prefix == "s3" && wire == "Bucket" {
                        bucket = Some(text.clone());
                    }
                    let greedy = format!("{{{wire}+}}");
                    if path.contains(&greedy) {
                        path =
                            path.replace(&greedy, &utf8_percent_encode(&text, GREEDY).to_string());
                    } else {
                        let label = format!("{{{wire}}}");
                        path = path.replace(&label, &utf8_percent_encode(&text, LABEL).to_string());
                    }
                }
                Some("querystring") => match (target.kind.as_str(), value) {
                    ("list", Value::Array(items)) => {
                        for item in items {
                            query.push((wire.to_owned(), text_of_item(model, target, item)));
                        }
                    }
                    ("map", Value::Object(entries)) => {
                        for (k, v) in entries {
                            query.push((k.clone(), text_of_item(model, target, v)));
                        }
                    }
                    _ => query.push((wire.to_owned(), scalar_text(target, m, value, "iso8601"))),
                },
                Some("header") => {
                    let text = match (target.kind.as_str(), value) {
                        ("list", Value::Array(items)) => items
                            .iter()
                            .map(|i| text_of_item(model, target, i))
                            .collect::<Vec<_>>()
                            .join(","),
                        _ if m.jsonvalue => super::base64(value.to_string().as_bytes()),
                        _ => scalar_text(target, m, value, "rfc822"),
                    };
                    headers.push((wire.to_lowercase(), text));
                }
                Some("headers") => {
                    if let Value::Object(entries) = value {
                        for (k, v) in entries {
                            headers.push((format!("{wire}{k}").to_lowercase(), super::text_of(v)));
                        }
                    }
                }
                _ if input.payload.as_deref() == Some(name) => payload = Some((m, value)),
                _ => {
                    body_members.insert(name.to_owned(), value.clone());
                }
            }
        }
        // A label the parameters did not fill is a required parameter missing.
        if let Some(start) = path.find('{') {
            let label = path[start + 1..].split('}').next().unwrap_or_default();
            return Err(format!(
                "the parameter '{}' is required",
                label.trim_end_matches('+')
            ));
        }
    }
    let xml_protocol = model.protocol() == Protocol::RestXml;
    let mut body = Vec::new();
    if let Some((m, value)) = payload {
        let target = shape_of(model, m)?;
        match (target.kind.as_str(), value) {
            ("structure", Value::Object(fields)) if xml_protocol => {
                let root = m.location_name.as_deref().unwrap_or(&m.shape);
                let namespace = m
                    .xml_namespace
                    .as_ref()
                    .or(target.xml_namespace.as_ref())
                    .map(|n| n.uri());
                body = xml_document(model, root, namespace, &m.shape, target, fields)?.into_bytes();
                headers.push(("content-type".into(), "application/xml".into()));
            }
            ("structure", Value::Object(fields)) => {
                body = serde_json::to_vec(&json::to_wire(model, &m.shape, target, fields)?)
                    .unwrap_or_default();
                headers.push(("content-type".into(), "application/json".into()));
            }
            (_, v) => {
                body = blob_in(v);
                if !headers.iter().any(|(k, _)| k == "content-type") {
                    headers.push(("content-type".into(), "application/octet-stream".into()));
                }
            }
        }
    } else if let Some((input_ref, input)) = input.filter(|_| !body_members.is_empty()) {
        if xml_protocol {
            let root = input_ref
                .location_name
                .as_deref()
                .unwrap_or(&input_ref.shape);
            let namespace = input_ref.xml_namespace.as_ref().map(|n| n.uri());
            body = xml_document(
                model,
                root,
                namespace,
                &input_ref.shape,
                input,
                &body_members,
            )?
            .into_bytes();
            headers.push(("content-type".into(), "application/xml".into()));
        } else {
            body = serde_json::to_vec(&json::to_wire(
                model,
                &input_ref.shape,
                input,
                &body_members,
            )?)
            .unwrap_or_default();
            headers.push(("content-type".into(), "application/json".into()));
        }
    }
    if xml_protocol && !body.is_empty() && !headers.iter().any(|(k, _)| k == "content-md5") {
        // S3 refuses some bodies (DeleteObjects, PutBucketTagging…) without a checksum.
        use md5::Digest as _;
        headers.push((
            "content-md5".into(),
            super::base64(&md5::Md5::digest(&body)),
        ));
    }
    let mut path_and_query = path;
    if !query.is_empty() {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            form.append_pair(k, v);
        }
        // SigV4 and AWS want %20, not the form encoding's `+`.
        path_and_query = format!("{path_and_query}?{}", form.finish().replace('+', "%20"));
    }
    Ok(Request {
        method: operation.http.method.clone(),
        path_and_query,
        headers,
        body,
        bucket,
    })
}

fn text_of_item(model: &Model, container: &Shape, value: &Value) -> String {
    let item = container
        .member
        .as_ref()
        .or(container.value.as_ref())
        .and_then(|m| model.shape(&m.shape).map(|s| (m, s)));
    match item {
        Some((m, shape)) => scalar_text(shape, m, value, "iso8601"),
        None => super::text_of(value),
    }
}

/// A structure as an XML document whose root element is `root`.
fn xml_document(
    model: &Model,
    root: &str,
    namespace: Option<&str>,
    shape_name: &str,
    shape: &Shape,
    fields: &Map<String, Value>,
) -> Result<String, String> {
    let mut out = String::new();
    match namespace {
        Some(ns) => out.push_str(&format!("<{root} xmlns=\"{}\">", xml::escape(ns))),
        None => out.push_str(&format!("<{root}>")),
    }
    xml_members(model, shape_name, shape, fields, &mut out)?;
    out.push_str(&format!("</{root}>"));
    Ok(out)
}

fn xml_members(
    model: &Model,
    shape_name: &str,
    shape: &Shape,
    fields: &Map<String, Value>,
    out: &mut String,
) -> Result<(), String> {
    // In the model's member order: XML schemas (S3's) are ordered.
    for (name, m) in &shape.members {
        let Some(value) = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
        else {
            continue;
        };
        if m.location.is_some() {
            continue;
        }
        let wire = m.location_name.as_deref().unwrap_or(name);
        xml_value(model, m, wire, value, out)?;
    }
    for key in fields.keys() {
        member(shape, key).ok_or_else(|| unknown_member(shape_name, key))?;
    }
    Ok(())
}

fn xml_value(
    model: &Model,
    m: &Member,
    element: &str,
    value: &Value,
    out: &mut String,
) -> Result<(), String> {
    let shape = shape_of(model, m)?;
    match (shape.kind.as_str(), value) {
        ("structure", Value::Object(fields)) => {
            out.push_str(&format!("<{element}>"));
            xml_members(model, &m.shape, shape, fields, out)?;
            out.push_str(&format!("</{element}>"));
        }
        ("list", Value::Array(items)) => {
            let item = shape.member.as_ref().ok_or("a list without a member")?;
            if m.flattened || shape.flattened {
                for v in items {
                    xml_value(model, item, element, v, out)?;
                }
            } else {
                let item_name = item.location_name.as_deref().unwrap_or("member");
                out.push_str(&format!("<{element}>"));
                for v in items {
                    xml_value(model, item, item_name, v, out)?;
                }
                out.push_str(&format!("</{element}>"));
            }
        }
        ("map", Value::Object(entries)) => {
            let (key, item) = match (&shape.key, &shape.value) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err("a map without a key or value".into()),
            };
            let key_name = key.location_name.as_deref().unwrap_or("key");
            let value_name = item.location_name.as_deref().unwrap_or("value");
            out.push_str(&format!("<{element}>"));
            for (k, v) in entries {
                out.push_str(&format!(
                    "<entry><{key_name}>{}</{key_name}>",
                    xml::escape(k)
                ));
                xml_value(model, item, value_name, v, out)?;
                out.push_str("</entry>");
            }
            out.push_str(&format!("</{element}>"));
        }
        (_, v) => {
            let text = scalar_text(shape, m, v, "iso8601");
            out.push_str(&format!("<{element}>{}</{element}>", xml::escape(&text)));
        }
    }
    Ok(())
}

pub fn read(
    model: &Model,
    operation: &Operation,
    response: &Response,
) -> Result<Value, ServiceError> {
    let Some(output_ref) = &operation.output else {
        return Ok(Value::Object(Map::new()));
    };
    let Some(output) = model.shape(&output_ref.shape) else {
        return Ok(Value::Object(Map::new()));
    };
    let xml_protocol = model.protocol() == Protocol::RestXml;
    let mut out = Map::new();
    // The body first: its members, or the payload member.
    match output
        .payload
        .as_deref()
        .and_then(|p| output.members.get_key_value(p))
    {
        Some((name, m)) => {
            let target = model.shape(&m.shape);
            let value = match target.map(|t| t.kind.as_str()) {
                Some("structure") if response.body.is_empty() => None,
                Some("structure") if xml_protocol => {
                    let root =
                        xml::parse(&response.body).map_err(|e| json::unreadable(response, &e))?;
                    Some(from_xml(model, target.expect("matched"), &root))
                }
                Some("structure") => {
                    let body: Value = crate::asl::json::from_slice(&response.body)
                        .map_err(|e| json::unreadable(response, &e.to_string()))?;
                    Some(json::from_wire(model, target.expect("matched"), &body))
                }
                // A blob or string payload (S3's Body, Lambda's Payload) comes out as text.
                _ => Some(Value::String(
                    String::from_utf8_lossy(&response.body).into_owned(),
                )),
            };
            if let Some(v) = value {
                out.insert(pascal(name), v);
            }
        }
        None if response.body.iter().any(|b| !b.is_ascii_whitespace()) => {
            let parsed = if xml_protocol {
                let root =
                    xml::parse(&response.body).map_err(|e| json::unreadable(response, &e))?;
                from_xml(model, output, &root)
            } else {
                let body: Value = crate::asl::json::from_slice(&response.body)
                    .map_err(|e| json::unreadable(response, &e.to_string()))?;
                json::from_wire(model, output, &body)
            };
            if let Value::Object(fields) = parsed {
                out.extend(fields);
            }
        }
        None => {}
    }
    for (name, m) in &output.members {
        let Some(target) = model.shape(&m.shape) else {
            continue;
        };
        let wire = m.location_name.as_deref().unwrap_or(name);
        match m.location.as_deref() {
            Some("header") => {
                if let Some(text) = response.header(&wire.to_lowercase()) {
                    let value = match target.kind.as_str() {
                        "list" => Value::Array(
                            text.split(',')
                                .map(|t| Value::String(t.trim().to_owned()))
                                .collect(),
                        ),
                        _ if m.jsonvalue => {
                            use base64::Engine as _;
                            base64::engine::general_purpose::STANDARD
                                .decode(text)
                                .ok()
                                .and_then(|b| crate::asl::json::from_slice(&b).ok())
                                .unwrap_or_else(|| Value::String(text.to_owned()))
                        }
                        _ => scalar_from_text(target, text),
                    };
                    out.insert(pascal(name), value);
                }
            }
            Some("headers") => {
                let prefix = wire.to_lowercase();
                let entries: Map<String, Value> = response
                    .headers
                    .iter()
                    .filter_map(|(k, v)| {
                        let key = k.as_str().strip_prefix(&prefix)?;
                        Some((key.to_owned(), Value::String(v.to_str().ok()?.to_owned())))
                    })
                    .collect();
                if !entries.is_empty() || name == "Metadata" {
                    out.insert(pascal(name), Value::Object(entries));
                }
            }
            Some("statusCode") => {
                out.insert(pascal(name), Value::from(response.status));
            }
            _ => {}
        }
    }
    // In the model's member order, wherever each came from.
    let mut ordered = Map::new();
    for name in output.members.keys() {
        if let Some((k, v)) = out.remove_entry(&pascal(name)) {
            ordered.insert(k, v);
        }
    }
    Ok(Value::Object(ordered))
}
