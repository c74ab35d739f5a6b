//! `arn:aws:states:::sqs:sendMessage` over the SQS JSON protocol (`POST /` with
//! `X-Amz-Target: AmazonSQS.SendMessage`, `Content-Type: application/x-amz-json-1.0`), which
//! AWS, LocalStack, ElasticMQ and moto serve.
//!
//! The parameters are the SendMessage request's (`QueueUrl`, `MessageBody`, `DelaySeconds`,
//! `MessageAttributes`, `MessageGroupId`, `MessageDeduplicationId`, …); a `MessageBody` that is
//! not a string is sent as its JSON text, as AWS does. The result is SendMessage's response
//! with the AWS Java SDK's `SdkHttpMetadata` and `SdkResponseMetadata`, as Step Functions
//! returns it. A refused call is `SQS.<Modelled>Exception` (e.g.
//! `SQS.QueueDoesNotExistException`) or `SQS.AmazonSQSException`, with the SDK's cause text;
//! no connection is `SQS.SdkClientException`.
//!
//! Requests are signed with SigV4 when credentials are configured or in the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).

use super::lambda::{error_chain, sdk_http_metadata, train_case};
use super::{Limits, Pool};
use crate::asl::effect::TaskCall;
use crate::asl::error::Failure;
use reqwest::header::HeaderMap;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SqsConfig {
    /// Base URL every call goes to; without it, `AWS_ENDPOINT_URL` (as every AWS SDK reads
    /// it), else the `QueueUrl`'s own scheme and host.
    pub endpoint: Option<String>,
    /// Signing region; without it, the region of an AWS `QueueUrl`, else `us-east-1`.
    pub region: Option<String>,
    /// Credentials; without them, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from the
    /// environment; without those, requests are not signed.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub limits: Limits,
}

#[derive(Clone)]
struct Keys {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

pub struct Sqs {
    pool: Pool,
    config: Arc<SqsConfig>,
    keys: Option<Arc<Keys>>,
}

/// SendMessage's modelled errors: the AWS Java SDK raises `<Name>Exception` for these and
/// `AmazonSQSException` for every other error code.
const MODELLED: &[&str] = &[
    "QueueDoesNotExist",
    "InvalidMessageContents",
    "UnsupportedOperation",
    "RequestThrottled",
    "InvalidAddress",
    "InvalidSecurity",
    "KmsAccessDenied",
    "KmsDisabled",
    "KmsInvalidKeyUsage",
    "KmsInvalidState",
    "KmsNotFound",
    "KmsOptInRequired",
    "KmsThrottled",
];

impl Sqs {
    pub fn new(config: &SqsConfig) -> Result<Sqs, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let keys = match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => Some(Keys {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: None,
            }),
            _ => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => Some(Keys {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token: env("AWS_SESSION_TOKEN"),
                }),
                _ => None,
            },
        };
        Ok(Sqs {
            pool: Pool::new(&config.limits)?,
            config: Arc::new(config.clone()),
            keys: keys.map(Arc::new),
        })
    }

    pub fn send_message(
        &self,
        call: TaskCall,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let timeout = self.pool.timeout(&call);
        let request = request_body(&call.payload)
            .map(|(queue_url, body)| self.post("SendMessage", timeout, queue_url, body));
        async move { answer(request?.await?) }
    }

    /// One SQS API call (`AmazonSQS.<action>`, e.g. `ReceiveMessage`), for the daemon's SQS
    /// source and sinks: the response's JSON, or the failure named as for a Task.
    pub fn call(
        &self,
        action: &'static str,
        queue_url: &str,
        body: &Value,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let request = self.post(action, timeout, queue_url.to_owned(), body);
        async move {
            let response = request.await?;
            let parsed: Value = crate::asl::json::from_slice(&response.body).unwrap_or(Value::Null);
            if (200..300).contains(&response.status) {
                return Ok(parsed);
            }
            let id = response
                .headers
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            Err(service_error(&response, &parsed, &id))
        }
    }

    /// Sends one `action` request to the queue's endpoint (signed when there are keys)
    /// within `timeout`.
    fn post(
        &self,
        action: &'static str,
        timeout: Duration,
        queue_url: String,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Response, Failure>> + Send + 'static {
        let pool = self.pool.clone();
        let config = self.config.clone();
        let keys = self.keys.clone();
        async move {
            let endpoint = match config.endpoint.clone().or_else(shared_endpoint) {
                Some(e) => e.trim_end_matches('/').to_owned(),
                None => origin(&queue_url).ok_or_else(|| {
                    client_failure(format!(
                        "Unable to execute HTTP request: the QueueUrl is not an http(s) URL and \
                         no SQS endpoint is configured ([integrations.sqs] endpoint): {queue_url}"
                    ))
                })?,
            };
            let region = config
                .region
                .clone()
                .or_else(|| region_of(&queue_url))
                .unwrap_or_else(|| "us-east-1".to_owned());
            let url = format!("{endpoint}/");
            let target = format!("AmazonSQS.{action}");
            let mut request = pool
                .client
                .post(&url)
                .header("Content-Type", "application/x-amz-json-1.0")
                .header("X-Amz-Target", &target);
            if let Some(keys) = &keys {
                for (name, value) in sign(keys, &region, &url, &target, &body)
                    .map_err(|e| client_failure(format!("Unable to sign the request: {e}")))?
                {
                    request = request.header(name, value);
                }
            }
            match pool.run(timeout, read(request.body(body))).await {
                Some(Ok(response)) => Ok(response),
                Some(Err(e)) => Err(client_failure(format!(
                    "Unable to execute HTTP request: {}",
                    error_chain(&e)
                ))),
                None => Err(client_failure(format!(
                    "Unable to execute HTTP request: no response within {} s",
                    timeout.as_secs()
                ))),
            }
        }
    }
}

/// `AWS_ENDPOINT_URL`, the endpoint of every service, unless the SDKs' switch says to ignore
/// configured endpoints. (`AWS_ENDPOINT_URL_SQS` arrives as the configured endpoint.)
fn shared_endpoint() -> Option<String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").as_deref() == Some("true") {
        return None;
    }
    env("AWS_ENDPOINT_URL")
}

fn client_failure(cause: String) -> Failure {
    Failure::new("SQS.SdkClientException", cause)
}

/// The SendMessage request body from the Task's parameters, and its `QueueUrl`.
fn request_body(parameters: &Value) -> Result<(String, Vec<u8>), Failure> {
    let mut fields = match parameters {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    // SQS refuses a request without these with MissingParameter; refusing it here gives
    // AWS's answer whatever the endpoint (moto, for one, fails it with a 500).
    let queue_url = match fields.get("QueueUrl") {
        Some(Value::String(url)) => url.clone(),
        _ => return Err(missing_parameter("QueueUrl")),
    };
    match fields.get("MessageBody") {
        None | Some(Value::Null) => return Err(missing_parameter("MessageBody")),
        Some(Value::String(_)) => {}
        Some(other) => {
            let text = other.to_string();
            fields.insert("MessageBody".into(), Value::String(text));
        }
    }
    fields.retain(|_, v| !v.is_null());
    let body = serde_json::to_vec(&Value::Object(fields)).unwrap_or_default();
    Ok((queue_url, body))
}

fn missing_parameter(name: &str) -> Failure {
    sqs_exception(
        "AmazonSQSException",
        &format!("The request must contain the parameter {name}."),
        400,
        "MissingParameter",
        &uuid::Uuid::new_v4().to_string(),
    )
}

fn sqs_exception(exception: &str, message: &str, status: u16, code: &str, id: &str) -> Failure {
    Failure::new(
        format!("SQS.{exception}"),
        format!(
            "{message} (Service: AmazonSQS; Status Code: {status}; Error Code: {code}; Request ID: {id}; Proxy: null)"
        ),
    )
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = parsed.host_str()?;
    Some(match parsed.port() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

/// The region of an AWS queue URL (`sqs.REGION.amazonaws.com`, `REGION.queue.amazonaws.com`).
fn region_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let labels: Vec<&str> = parsed.host_str()?.split('.').collect();
    match labels.as_slice() {
        ["sqs", region, "amazonaws", ..] | [region, "queue", "amazonaws", ..] => {
            Some((*region).to_owned())
        }
        _ => None,
    }
}

/// The SigV4 headers (`Authorization`, `X-Amz-Date`, maybe `X-Amz-Security-Token`) for a
/// request with `X-Amz-Target: target`.
fn sign(
    keys: &Keys,
    region: &str,
    url: &str,
    target: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
        keys.session_token.clone(),
        None,
        "expressway",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sqs")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers = [
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-target", target),
    ];
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
            .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

struct Response {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn read(request: reqwest::RequestBuilder) -> Result<Response, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn answer(response: Response) -> Result<Value, Failure> {
    let header = |name: &str| {
        response
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let request_id = header("x-amzn-requestid").to_owned();
    let parsed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !(200..300).contains(&response.status) {
        return Err(service_error(&response, &parsed, &request_id));
    }
    let Value::Object(fields) = parsed else {
        return Err(client_failure(format!(
            "Unable to unmarshall response: not a JSON object: {}",
            String::from_utf8_lossy(&response.body)
        )));
    };
    // AWS's result lists the fields in name order, the SDK metadata among them.
    let mut result: Vec<(String, Value)> = fields.into_iter().collect();
    result.push((
        "SdkHttpMetadata".into(),
        sdk_http_metadata(response.status, &response.headers, header_spelling),
    ));
    result.push((
        "SdkResponseMetadata".into(),
        json!({ "RequestId": request_id }),
    ));
    result.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Object(result.into_iter().collect()))
}

/// A refused call, named as the AWS Java SDK names it to Step Functions.
fn service_error(response: &Response, parsed: &Value, request_id: &str) -> Failure {
    let header = |name: &str| response.headers.get(name).and_then(|v| v.to_str().ok());
    // `com.amazonaws.sqs#QueueDoesNotExist` → `QueueDoesNotExist`.
    let shape = parsed
        .get("__type")
        .and_then(Value::as_str)
        .or_else(|| header("x-amzn-errortype"))
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .map(|t| t.split(':').next().unwrap_or(t))
        .filter(|t| !t.is_empty());
    // The query protocol's code (`AWS.SimpleQueueService.NonExistentQueue`), which the SDK
    // reports as the Error Code, when the server says it.
    let code = header("x-amzn-query-error")
        .and_then(|q| q.split(';').next())
        .filter(|c| !c.is_empty())
        .or(shape)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if response.status >= 500 {
                "InternalError".into()
            } else {
                "null".into()
            }
        });
    let exception = match shape {
        Some(s) if MODELLED.contains(&s) => format!("{s}Exception"),
        _ => "AmazonSQSException".into(),
    };
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| parsed.get(*k).and_then(Value::as_str))
        .map_or_else(
            || String::from_utf8_lossy(&response.body).trim().to_owned(),
            str::to_owned,
        );
    sqs_exception(&exception, &message, response.status, &code, request_id)
}

/// SQS sends `x-amzn-RequestId` and `connection` so; other names arrive Train-Case.
fn header_spelling(name: &str) -> String {
    match name {
        "x-amzn-requestid" => "x-amzn-RequestId".into(),
        "connection" => "connection".into(),
        _ => train_case(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        Response {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_body_is_text_and_required() {
        let (url, body) = request_body(
            &json!({"QueueUrl": "http://q/1/a", "MessageBody": {"a": [1]}, "DelaySeconds": 3}),
        )
        .unwrap();
        assert_eq!(url, "http://q/1/a");
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["MessageBody"], json!(r#"{"a":[1]}"#));
        assert_eq!(sent["DelaySeconds"], json!(3));
        let f =
            request_body(&json!({"QueueUrl": "http://q/1/a", "MessageBody": null})).unwrap_err();
        assert_eq!(f.error.as_deref(), Some("SQS.AmazonSQSException"));
        let cause = f.cause.unwrap();
        assert!(
            cause.starts_with("The request must contain the parameter MessageBody. (Service: AmazonSQS; Status Code: 400; Error Code: MissingParameter; Request ID: "),
            "{cause}"
        );
        assert!(cause.ends_with("; Proxy: null)"));
    }

    #[test]
    fn endpoints_and_regions_come_from_the_queue_url() {
        let aws = "https://sqs.eu-west-1.amazonaws.com/111111111111/q";
        assert_eq!(
            origin(aws).as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com")
        );
        assert_eq!(region_of(aws).as_deref(), Some("eu-west-1"));
        assert_eq!(
            region_of("https://us-east-2.queue.amazonaws.com/1/q").as_deref(),
            Some("us-east-2")
        );
        let local = "http://127.0.0.1:9324/000000000000/q";
        assert_eq!(origin(local).as_deref(), Some("http://127.0.0.1:9324"));
        assert_eq!(region_of(local), None);
        assert_eq!(origin("q"), None);
    }

    #[test]
    fn requests_are_signed_for_sqs_in_the_region() {
        let keys = Keys {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: Some("token".into()),
        };
        let headers = sign(
            &keys,
            "eu-west-1",
            "http://127.0.0.1:9324/",
            "AmazonSQS.SendMessage",
            b"{}",
        )
        .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        let authorization = get("authorization");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKID/")
                && authorization.contains("/eu-west-1/sqs/aws4_request")
                && authorization.contains("content-type;host;")
                && authorization.contains("x-amz-target"),
            "{authorization}"
        );
        assert_eq!(get("x-amz-date").len(), "20260101T000000Z".len());
        assert_eq!(get("x-amz-security-token"), "token");
    }

    #[test]
    fn a_missing_queue_is_the_modelled_exception() {
        let r = response(
            400,
            &[
                (
                    "x-amzn-query-error",
                    "AWS.SimpleQueueService.NonExistentQueue;Sender",
                ),
                ("x-amzn-requestid", "r1"),
            ],
            r#"{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The specified queue does not exist."}"#,
        );
        let f = answer(r).unwrap_err();
        assert_eq!(f.error.as_deref(), Some("SQS.QueueDoesNotExistException"));
        assert_eq!(
            f.cause.as_deref(),
            Some("The specified queue does not exist. (Service: AmazonSQS; Status Code: 400; Error Code: AWS.SimpleQueueService.NonExistentQueue; Request ID: r1; Proxy: null)")
        );
        let r = response(
            400,
            &[],
            r#"{"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": "bad"}"#,
        );
        assert_eq!(
            answer(r).unwrap_err().error.as_deref(),
            Some("SQS.AmazonSQSException")
        );
    }

    #[test]
    fn the_result_is_the_response_with_the_sdk_metadata() {
        let r = response(
            200,
            &[
                ("x-amzn-requestid", "r1"),
                ("connection", "keep-alive"),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            r#"{"MessageId": "m", "MD5OfMessageBody": "d"}"#,
        );
        let v = answer(r).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "MD5OfMessageBody",
                "MessageId",
                "SdkHttpMetadata",
                "SdkResponseMetadata"
            ]
        );
        assert_eq!(v["SdkResponseMetadata"]["RequestId"], json!("r1"));
        assert_eq!(
            v["SdkHttpMetadata"]["HttpHeaders"]["connection"],
            json!("keep-alive")
        );
        assert_eq!(
            v["SdkHttpMetadata"]["AllHttpHeaders"]["Content-Type"],
            json!(["application/x-amz-json-1.0"])
        );
        assert_eq!(v["SdkHttpMetadata"]["HttpStatusCode"], json!(200));
    }
}
