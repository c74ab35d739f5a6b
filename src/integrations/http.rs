//! `arn:aws:states:::http:invoke`: any HTTP(S) endpoint, with AWS's parameters
//! (`ApiEndpoint`, `Method`, `Headers`, `QueryParameters`, `RequestBody`, `Transform`), result
//! shape (`ResponseBody`, `Headers`, `StatusCode`, `StatusText`) and error names
//! (`States.Http.StatusCode.<code>`, `States.Http.Socket`).
//!
//! Where AWS takes credentials from an EventBridge connection (`Authentication.ConnectionArn`),
//! Expressway takes them from the config: a connection names the ARN it stands for, the URL
//! prefix it may call, and the headers and query parameters to add.
//!
//! Only what a connection allows is called (issue 17: a TestState or StartSyncExecution
//! caller could otherwise make the daemon fetch loopback or cloud-metadata URLs and read the
//! answer): as on AWS, a Task must name its connection (`Authentication.ConnectionArn`), the
//! connection must be configured, and the endpoint must lie under its `url_prefix` (same
//! scheme, host and port; the path starting with the prefix's). Redirects are not followed:
//! a 3xx answer is the Task's result (`States.Http.StatusCode.3xx`), never a second request
//! to wherever it points.

use super::lambda::error_chain;
use super::{Limits, Pool};
use crate::asl::effect::TaskCall;
use crate::asl::error::data_limit_exceeded;
use crate::asl::error::Failure;
use crate::asl::size::PAYLOAD_LIMIT_BYTES;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A connection that failed or timed out (no HTTP status to name).
pub const SOCKET_ERROR: &str = "States.Http.Socket";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpConfig {
    pub limits: Limits,
    pub connections: Vec<HttpConnection>,
}

/// A destination Tasks may call and the credentials to call it with, in place of an
/// EventBridge connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpConnection {
    /// Matches Tasks whose `Authentication.ConnectionArn` is this.
    pub arn: String,
    /// What such Tasks may call: URLs under this one.
    pub url_prefix: String,
    pub headers: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
}

pub struct Http {
    pool: Pool,
    config: Arc<HttpConfig>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

impl Http {
    pub fn new(config: &HttpConfig) -> Result<Http, String> {
        let mut pool = Pool::new(&config.limits)?;
        // No redirects: each would be a request to a destination no connection allowed.
        pool.client = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Http {
            pool,
            config: Arc::new(config.clone()),
        })
    }

    pub fn invoke(
        &self,
        call: TaskCall,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let pool = self.pool.clone();
        let config = self.config.clone();
        async move {
            let request = build(&pool.client, &config, &call.payload)?;
            let timeout = pool.timeout(&call);
            let response = match pool.run(timeout, read(request)).await {
                Some(Ok(r)) => r,
                Some(Err(e)) => return Err(Failure::new(SOCKET_ERROR, error_chain(&e))),
                None => {
                    return Err(Failure::new(
                        SOCKET_ERROR,
                        format!("no response within {} s", timeout.as_secs()),
                    ))
                }
            };
            answer(response, &call.state_name)
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    // AWS rejects malformed HTTP Task parameters at run time with States.Runtime.
    Failure::new(crate::asl::error::names::RUNTIME, message)
}

fn build(
    client: &reqwest::Client,
    config: &HttpConfig,
    parameters: &Value,
) -> Result<reqwest::RequestBuilder, Failure> {
    let endpoint = parameters
        .get("ApiEndpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("The field 'ApiEndpoint' is required and must be a string"))?;
    let method = parameters
        .get("Method")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
        .filter(|m| METHODS.contains(&m.as_str()))
        .ok_or_else(|| {
            invalid(format!(
                "The field 'Method' is required and must be one of {}",
                METHODS.join(", ")
            ))
        })?;
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| invalid(format!("'ApiEndpoint' is not a URL ({e}): {endpoint}")))?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a listed method");
    let mut request = client.request(method, url.clone());

    let connection = Some(allowed(config, parameters, &url)?);

    let mut query: Vec<(String, String)> = Vec::new();
    if let Some(q) = parameters.get("QueryParameters") {
        let Value::Object(fields) = q else {
            return Err(invalid("'QueryParameters' must be an object"));
        };
        for (k, v) in fields {
            match v {
                Value::Array(items) => {
                    query.extend(items.iter().map(|i| (k.clone(), scalar_text(i))))
                }
                other => query.push((k.clone(), scalar_text(other))),
            }
        }
    }
    if let Some(c) = connection {
        query.extend(c.query.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if !query.is_empty() {
        request = request.query(&query);
    }

    let mut has_content_type = false;
    if let Some(h) = parameters.get("Headers") {
        let Value::Object(fields) = h else {
            return Err(invalid("'Headers' must be an object"));
        };
        for (k, v) in fields {
            has_content_type |= k.eq_ignore_ascii_case("content-type");
            request = request.header(k.as_str(), scalar_text(v));
        }
    }
    if let Some(c) = connection {
        for (k, v) in &c.headers {
            request = request.header(k.as_str(), v.as_str());
        }
    }

    let url_encoded = parameters
        .pointer("/Transform/RequestBodyEncoding")
        .and_then(Value::as_str)
        == Some("URL_ENCODED");
    match parameters.get("RequestBody") {
        None | Some(Value::Null) => {}
        Some(body) if url_encoded => {
            let format = parameters
                .pointer("/Transform/RequestEncodingOptions/ArrayFormat")
                .and_then(Value::as_str)
                .unwrap_or("INDICES");
            let Value::Object(fields) = body else {
                return Err(invalid("A URL_ENCODED 'RequestBody' must be an object"));
            };
            let mut pairs = Vec::new();
            for (k, v) in fields {
                url_encode_field(k, v, format, &mut pairs);
            }
            let encoded = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
                .collect::<Vec<_>>()
                .join("&");
            if !has_content_type {
                request = request.header("Content-Type", "application/x-www-form-urlencoded");
            }
            request = request.body(encoded);
        }
        Some(Value::String(text)) => request = request.body(text.clone()),
        Some(body) => {
            if !has_content_type {
                request = request.header("Content-Type", "application/json");
            }
            request = request.body(body.to_string());
        }
    }
    Ok(request)
}

/// The connection that allows this call: the one the Task names whose `url_prefix` the
/// endpoint lies under; otherwise why not (`States.Runtime`, nothing is sent).
fn allowed<'c>(
    config: &'c HttpConfig,
    parameters: &Value,
    url: &reqwest::Url,
) -> Result<&'c HttpConnection, Failure> {
    let Some(arn) = parameters
        .pointer("/Authentication/ConnectionArn")
        .and_then(Value::as_str)
    else {
        return Err(invalid(
            "The field 'Authentication.ConnectionArn' is required: an HTTP Task calls only \
             through a connection, configured as [[integrations.http.connections]] with that arn \
             and the url_prefix it may call",
        ));
    };
    let mut named = config
        .connections
        .iter()
        .filter(|c| c.arn == arn)
        .peekable();
    if named.peek().is_none() {
        return Err(invalid(format!(
            "No connection '{arn}': configure [[integrations.http.connections]] with \
             arn = \"{arn}\" and the url_prefix its Tasks may call"
        )));
    }
    named
        .find(|c| under_prefix(url, &c.url_prefix))
        .ok_or_else(|| {
            invalid(format!(
                "'ApiEndpoint' {url} is not under the url_prefix of connection '{arn}': it may \
                 not be called"
            ))
        })
}

/// Whether `url` is under `prefix`: same scheme, host and port, and its path starts with the
/// prefix's (compared on parsed URLs, so `https://api.example@evil/` is host `evil`).
pub fn under_prefix(url: &reqwest::Url, prefix: &str) -> bool {
    let Ok(prefix) = reqwest::Url::parse(prefix) else {
        return false;
    };
    url.scheme() == prefix.scheme()
        && url.host_str().is_some()
        && url.host_str() == prefix.host_str()
        && url.port_or_known_default() == prefix.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path().starts_with(prefix.path())
}

/// A header or query value: strings as they are, other scalars as JSON text.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One body field in `application/x-www-form-urlencoded`, arrays per `ArrayFormat`.
fn url_encode_field(key: &str, value: &Value, format: &str, out: &mut Vec<(String, String)>) {
    let Value::Array(items) = value else {
        out.push((key.to_owned(), scalar_text(value)));
        return;
    };
    match format {
        "COMMAS" => out.push((
            key.to_owned(),
            items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        )),
        "BRACKETS" => out.extend(items.iter().map(|i| (format!("{key}[]"), scalar_text(i)))),
        "REPEAT" => out.extend(items.iter().map(|i| (key.to_owned(), scalar_text(i)))),
        _ => out.extend(
            items
                .iter()
                .enumerate()
                .map(|(n, i)| (format!("{key}[{n}]"), scalar_text(i))),
        ),
    }
}

fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

struct Response {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

async fn read(request: reqwest::RequestBuilder) -> Result<Response, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn answer(response: Response, state: &str) -> Result<Value, Failure> {
    if response.body.len() > PAYLOAD_LIMIT_BYTES {
        return Err(data_limit_exceeded(state));
    }
    let mut headers = Map::new();
    for name in response.headers.keys() {
        let values: Vec<Value> = response
            .headers
            .get_all(name)
            .iter()
            .map(|v| json!(String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let body = crate::asl::json::from_slice(&response.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));
    let code = response.status.as_u16();
    let result = json!({
        "Headers": headers,
        "ResponseBody": body,
        "StatusCode": code.to_string(),
        "StatusText": response.status.canonical_reason().unwrap_or(""),
    });
    if response.status.is_success() {
        Ok(result)
    } else {
        Err(Failure::new(
            format!("States.Http.StatusCode.{code}"),
            result.to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_arrays_follow_the_array_format() {
        let value = json!(["a b", 2]);
        let encode = |format| {
            let mut pairs = Vec::new();
            url_encode_field("k", &value, format, &mut pairs);
            pairs
                .iter()
                .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
                .collect::<Vec<_>>()
                .join("&")
        };
        assert_eq!(encode("INDICES"), "k%5B0%5D=a+b&k%5B1%5D=2");
        assert_eq!(encode("BRACKETS"), "k%5B%5D=a+b&k%5B%5D=2");
        assert_eq!(encode("REPEAT"), "k=a+b&k=2");
        assert_eq!(encode("COMMAS"), "k=a+b%2C2");
    }

    #[test]
    fn only_what_a_configured_connection_allows_is_called() {
        let config = HttpConfig {
            connections: vec![HttpConnection {
                arn: "arn:aws:events:us-east-1:123456789012:connection/api/1".into(),
                url_prefix: "https://api.example/v1/".into(),
                ..HttpConnection::default()
            }],
            ..HttpConfig::default()
        };
        let client = reqwest::Client::new();
        let call = |endpoint: &str, arn: Option<&str>| {
            let mut p = json!({"ApiEndpoint": endpoint, "Method": "GET"});
            if let Some(arn) = arn {
                p["Authentication"] = json!({"ConnectionArn": arn});
            }
            build(&client, &config, &p)
                .map(|_| ())
                .map_err(|f| f.cause.unwrap_or_default())
        };
        let arn = Some("arn:aws:events:us-east-1:123456789012:connection/api/1");
        assert_eq!(call("https://api.example/v1/items?x=1", arn), Ok(()));
        // No connection named: the metadata endpoint, loopback, anything, refused.
        let no_arn = call("http://169.254.169.254/latest/meta-data/", None).unwrap_err();
        assert!(
            no_arn.contains("'Authentication.ConnectionArn' is required"),
            "{no_arn}"
        );
        let unknown = call("https://api.example/v1/", Some("arn:other")).unwrap_err();
        assert!(unknown.contains("No connection 'arn:other'"), "{unknown}");
        for outside in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8083/",
            "https://api.example/v2/",
            "https://api.example.evil/v1/",
            "https://api.example@evil.example/v1/",
            "https://api.example:8443/v1/",
            "http://api.example/v1/",
            "https://user@api.example/v1/",
        ] {
            let e = call(outside, arn).unwrap_err();
            assert!(e.contains("is not under the url_prefix"), "{outside}: {e}");
        }
    }

    #[test]
    fn a_non_2xx_status_is_an_error_named_by_its_code() {
        let response = Response {
            status: reqwest::StatusCode::NOT_FOUND,
            headers: Default::default(),
            body: br#"{"missing":true}"#.to_vec(),
        };
        let f = answer(response, "S").unwrap_err();
        assert_eq!(f.error.as_deref(), Some("States.Http.StatusCode.404"));
        let cause: Value = serde_json::from_str(f.cause.as_deref().unwrap()).unwrap();
        assert_eq!(cause["ResponseBody"], json!({"missing": true}));
        assert_eq!(cause["StatusText"], json!("Not Found"));
    }
}
