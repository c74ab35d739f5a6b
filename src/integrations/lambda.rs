//! AWS Lambda over the Lambda Invoke HTTP API
//! (`POST /2015-03-31/functions/{FunctionName}/invocations`), which AWS, a Lambda container
//! image's runtime interface emulator, LocalStack and small function servers all serve.
//!
//! Two resource forms, as on AWS: `arn:aws:states:::lambda:invoke` (Parameters carry
//! `FunctionName`, `Payload`, …; the result is the whole Invoke response) and a bare
//! function ARN (the effective input is the event; the result is the function's payload).
//! A function error surfaces as the function's `errorType`, so Retry and Catch match it as on
//! AWS; a refused call as `Lambda.<ErrorCode>`; a transport failure as
//! `Lambda.SdkClientException`.
//!
//! A function without a configured endpoint is AWS Lambda's, found and signed for as every
//! AWS call is (`AWS_ENDPOINT_URL_LAMBDA`, the region, the credentials chain: see
//! [`super::aws`]). Calls to configured endpoints are signed when credentials are at hand.

use super::aws;
use super::{Limits, Pool};
use crate::asl::effect::TaskCall;
use crate::asl::error::data_limit_exceeded;
use crate::asl::error::{names, Failure};
use crate::asl::size::PAYLOAD_LIMIT_BYTES;
use reqwest::header::HeaderMap;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LambdaConfig {
    /// Base URL of the Lambda Invoke API for every function `functions` does not name.
    pub endpoint: Option<String>,
    /// Base URL by function name, for functions served elsewhere.
    pub functions: BTreeMap<String, String>,
    pub limits: Limits,
}

pub struct Lambda {
    pool: Pool,
    config: Arc<LambdaConfig>,
    aws: Arc<aws::Client>,
}

/// One Invoke request, read from the Task's parameters.
struct Invoke {
    /// As given (name, partial or full ARN, maybe with a qualifier): the URL carries it.
    function: String,
    /// The bare name, which `functions` is keyed by.
    name: String,
    qualifier: Option<String>,
    invocation_type: Option<String>,
    log_type: Option<String>,
    client_context: Option<String>,
    payload: Vec<u8>,
}

impl Lambda {
    pub fn new(config: &LambdaConfig, aws: Arc<aws::Client>) -> Result<Lambda, String> {
        Ok(Lambda {
            pool: Pool::new(&config.limits)?,
            config: Arc::new(config.clone()),
            aws,
        })
    }

    /// The call as a future that owns what it needs. `optimised`: the
    /// `arn:aws:states:::lambda:invoke` form; otherwise the resource is the function's ARN.
    pub fn invoke(
        &self,
        call: TaskCall,
        optimised: bool,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let pool = self.pool.clone();
        let config = self.config.clone();
        let aws = self.aws.clone();
        async move {
            let invoke = if optimised {
                Invoke::from_parameters(&call.payload)?
            } else {
                Invoke::of_function_arn(&call.resource, &call.payload)
            };
            let configured = config
                .functions
                .get(&invoke.name)
                .or(config.endpoint.as_ref());
            let (base, on_aws) = match configured {
                Some(base) => (base.clone(), false),
                None => {
                    let (endpoint, custom) = aws.service_endpoint("lambda");
                    (endpoint, !custom)
                }
            };
            let (url, mut headers) = request_of(&base, &invoke);
            let signable = aws::Request {
                method: "POST".into(),
                path_and_query: String::new(),
                headers: headers.clone(),
                body: invoke.payload.clone(),
                bucket: None,
            };
            match aws.signature("lambda", &url, &signable).await {
                Ok(signature) => headers.extend(signature),
                // A local function server needs no signature; AWS Lambda does.
                Err(e) if on_aws => return Err(Failure::new("Lambda.SdkClientException", e)),
                Err(_) => {}
            }
            let timeout = pool.timeout(&call);
            let request = send(&pool.client, url, headers, invoke.payload);
            let response = match pool.run(timeout, request).await {
                Some(result) => result.map_err(|e| transport_failure(&e))?,
                None => {
                    return Err(Failure::new(
                        "Lambda.SdkClientException",
                        format!(
                            "Unable to execute HTTP request: no response within {} s",
                            timeout.as_secs()
                        ),
                    ))
                }
            };
            // AWS names the service for the optimised form, the function for the bare one.
            let task = if optimised { "lambda" } else { &*call.resource };
            answer(response, optimised, task)
        }
    }
}

impl Invoke {
    fn from_parameters(parameters: &Value) -> Result<Invoke, Failure> {
        let text = |key: &str| {
            parameters
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let function = text("FunctionName").ok_or_else(|| {
            Failure::new(
                names::TASK_FAILED,
                "The Parameters of arn:aws:states:::lambda:invoke need a string 'FunctionName'",
            )
        })?;
        let payload = match parameters.get("Payload") {
            Some(Value::String(s)) => s.clone().into_bytes(),
            // No payload: the function gets `{}`, as from AWS.
            None | Some(Value::Null) => Vec::new(),
            Some(v) => serde_json::to_vec(v).unwrap_or_default(),
        };
        Ok(Invoke {
            name: bare_name(&function).to_owned(),
            function,
            qualifier: text("Qualifier"),
            invocation_type: text("InvocationType"),
            log_type: text("LogType"),
            client_context: text("ClientContext"),
            payload,
        })
    }

    fn of_function_arn(arn: &str, input: &Value) -> Invoke {
        Invoke {
            name: bare_name(arn).to_owned(),
            function: arn.to_owned(),
            qualifier: None,
            invocation_type: None,
            log_type: None,
            client_context: None,
            payload: serde_json::to_vec(input).unwrap_or_default(),
        }
    }
}

/// `NAME`, `NAME:QUALIFIER`, `ACCOUNT:function:NAME[:Q]`, `arn:…:function:NAME[:Q]` → `NAME`.
fn bare_name(function: &str) -> &str {
    let parts: Vec<&str> = function.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) if i + 1 < parts.len() => parts[i + 1],
        _ => parts[0],
    }
}

/// The Invoke request's URL and headers.
fn request_of(base: &str, invoke: &Invoke) -> (String, Vec<(String, String)>) {
    let mut url = format!(
        "{}/2015-03-31/functions/{}/invocations",
        base.trim_end_matches('/'),
        url_segment(&invoke.function)
    );
    if let Some(q) = &invoke.qualifier {
        url.push_str(&format!("?Qualifier={}", url_segment(q)));
    }
    let mut headers = Vec::new();
    for (header, value) in [
        ("x-amz-invocation-type", &invoke.invocation_type),
        ("x-amz-log-type", &invoke.log_type),
        ("x-amz-client-context", &invoke.client_context),
    ] {
        if let Some(v) = value {
            headers.push((header.to_owned(), v.clone()));
        }
    }
    (url, headers)
}

async fn send(
    client: &reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
    let mut request = client.post(url).body(payload);
    for (header, value) in headers {
        request = request.header(header, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok((status, headers, body))
}

/// Percent-encodes a path segment (function names may carry `:` and `$`).
fn url_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    Failure::new(
        "Lambda.SdkClientException",
        format!("Unable to execute HTTP request: {}", error_chain(e)),
    )
}

/// An error and its sources on one line ("connection refused" sits at the bottom).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Turns an Invoke response into the Task's result or failure. `task` is what a
/// DataLimitExceeded cause names.
fn answer(
    (status, headers, body): (u16, HeaderMap, Vec<u8>),
    optimised: bool,
    task: &str,
) -> Result<Value, Failure> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !(200..300).contains(&status) {
        return Err(service_error(status, &headers, &body));
    }
    if let Some(kind) = header("x-amz-function-error") {
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let error = parsed
            .as_ref()
            .and_then(|p| p.get("errorType"))
            .and_then(Value::as_str)
            .unwrap_or(kind)
            .to_owned();
        // The optimised integration re-serialises the error payload; the bare form passes
        // the function's own text.
        let cause = match parsed {
            Some(p) if optimised => p.to_string(),
            _ => String::from_utf8_lossy(&body).into_owned(),
        };
        return Err(Failure::new(error, cause));
    }
    if body.len() > PAYLOAD_LIMIT_BYTES {
        return Err(data_limit_exceeded(task));
    }
    let payload = if body.is_empty() {
        Value::String(String::new())
    } else {
        crate::asl::json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if !optimised {
        return Ok(payload);
    }
    let mut result = Map::new();
    if let Some(version) = header("x-amz-executed-version") {
        result.insert("ExecutedVersion".into(), json!(version));
    }
    if let Some(log) = header("x-amz-log-result") {
        result.insert("LogResult".into(), json!(log));
    }
    result.insert("Payload".into(), payload);
    result.insert(
        "SdkHttpMetadata".into(),
        sdk_http_metadata(status, &headers, header_spelling),
    );
    result.insert(
        "SdkResponseMetadata".into(),
        json!({ "RequestId": header("x-amzn-requestid").unwrap_or_default() }),
    );
    result.insert("StatusCode".into(), json!(status));
    Ok(Value::Object(result))
}

/// A refused call: `Lambda.<ErrorCode>` with the AWS Java SDK's cause text, which is what
/// Step Functions reports.
fn service_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Failure {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = header("x-amzn-errortype")
        .map(|t| t.split(':').next().unwrap_or(t).to_owned())
        .or_else(|| {
            parsed
                .get("Type")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|c| !c.is_empty() && c != "User" && c != "Service")
        .unwrap_or_else(|| {
            if status >= 500 {
                "ServiceException".to_owned()
            } else {
                "AWSLambdaException".to_owned()
            }
        });
    let message = ["Message", "message", "errorMessage"]
        .iter()
        .find_map(|k| parsed.get(*k).and_then(Value::as_str))
        .map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned);
    Failure::new(
        format!("Lambda.{code}"),
        format!(
            "{message} (Service: AWSLambda; Status Code: {status}; Error Code: {code}; Request ID: {}; Proxy: null)",
            header("x-amzn-requestid").unwrap_or_default()
        ),
    )
}

/// The response headers as the AWS Java SDK reports them to Step Functions: every header
/// once (`HttpHeaders`) and as a list (`AllHttpHeaders`), names as `spelling` says the service
/// sends them.
pub(crate) fn sdk_http_metadata(
    status: u16,
    headers: &HeaderMap,
    spelling: fn(&str) -> String,
) -> Value {
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut all = Map::new();
    let mut single = Map::new();
    for name in names {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| json!(String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let spelled = spelling(name);
        if let Some(last) = values.last() {
            single.insert(spelled.clone(), last.clone());
        }
        all.insert(spelled, Value::Array(values));
    }
    json!({ "AllHttpHeaders": all, "HttpHeaders": single, "HttpStatusCode": status })
}

/// HTTP header names arrive lower-cased; AWS reports them as the Lambda front end sends
/// them: its own `x-amzn-*` names with their fixed spelling, everything else Train-Case.
fn header_spelling(name: &str) -> String {
    const LAMBDA: &[&str] = &[
        "x-amzn-RequestId",
        "x-amzn-Remapped-Content-Length",
        "X-Amzn-Trace-Id",
        "X-Amz-Executed-Version",
        "X-Amz-Function-Error",
        "X-Amz-Log-Result",
        "x-amzn-ErrorType",
    ];
    if let Some(known) = LAMBDA.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return (*known).to_owned();
    }
    train_case(name)
}

/// `content-type` → `Content-Type`.
pub(crate) fn train_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_are_read_from_every_form() {
        for (given, name) in [
            ("f", "f"),
            ("f:$LATEST", "f"),
            ("111111111111:function:f", "f"),
            ("arn:aws:lambda:us-east-1:111111111111:function:f", "f"),
            ("arn:aws:lambda:us-east-1:111111111111:function:f:prod", "f"),
        ] {
            assert_eq!(bare_name(given), name, "{given}");
        }
        assert_eq!(url_segment("f:$LATEST"), "f%3A%24LATEST");
    }

    #[test]
    fn header_names_are_spelled_as_lambda_sends_them() {
        assert_eq!(header_spelling("x-amzn-requestid"), "x-amzn-RequestId");
        assert_eq!(header_spelling("content-type"), "Content-Type");
        assert_eq!(
            header_spelling("x-amz-executed-version"),
            "X-Amz-Executed-Version"
        );
    }

    fn response(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> (u16, HeaderMap, Vec<u8>) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        (status, map, body.as_bytes().to_vec())
    }

    #[test]
    fn a_function_error_is_named_by_its_error_type() {
        let body = r#"{"errorMessage": "boom", "errorType": "CustomException"}"#;
        let r = response(200, &[("x-amz-function-error", "Unhandled")], body);
        let f = answer(r.clone(), true, "S").unwrap_err();
        assert_eq!(f.error.as_deref(), Some("CustomException"));
        assert_eq!(
            f.cause.as_deref(),
            Some(r#"{"errorMessage":"boom","errorType":"CustomException"}"#)
        );
        let f = answer(r, false, "arn").unwrap_err();
        assert_eq!(f.cause.as_deref(), Some(body));
    }

    #[test]
    fn a_refused_call_is_named_lambda_error_code() {
        let r = response(
            404,
            &[
                ("x-amzn-errortype", "ResourceNotFoundException"),
                ("x-amzn-requestid", "r1"),
            ],
            r#"{"Message":"Function not found: f","Type":"User"}"#,
        );
        let f = answer(r, true, "S").unwrap_err();
        assert_eq!(f.error.as_deref(), Some("Lambda.ResourceNotFoundException"));
        assert_eq!(
            f.cause.as_deref(),
            Some("Function not found: f (Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException; Request ID: r1; Proxy: null)")
        );
    }

    #[test]
    fn the_optimised_result_wraps_the_payload_with_the_response_metadata() {
        let r = response(
            200,
            &[
                ("x-amz-executed-version", "$LATEST"),
                ("x-amzn-requestid", "r1"),
            ],
            r#"{"a": 1}"#,
        );
        let v = answer(r.clone(), true, "S").unwrap();
        assert_eq!(v["Payload"], json!({"a": 1}));
        assert_eq!(v["StatusCode"], json!(200));
        assert_eq!(v["ExecutedVersion"], json!("$LATEST"));
        assert_eq!(v["SdkResponseMetadata"]["RequestId"], json!("r1"));
        assert_eq!(
            v["SdkHttpMetadata"]["AllHttpHeaders"]["x-amzn-RequestId"],
            json!(["r1"])
        );
        assert_eq!(answer(r, false, "S").unwrap(), json!({"a": 1}));
    }

    #[test]
    fn an_oversize_payload_is_a_data_limit_failure_naming_the_task() {
        let big = "a".repeat(PAYLOAD_LIMIT_BYTES + 1);
        let f = answer(response(200, &[], &big), false, "arn:fn").unwrap_err();
        assert_eq!(f.error.as_deref(), Some(names::DATA_LIMIT_EXCEEDED));
        assert!(f.cause.unwrap().contains("'arn:fn'"));
    }
}
