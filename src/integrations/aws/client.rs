//! One client for every AWS service: where a service is ([`Client::endpoint`]), who signs
//! (the credentials chain), SigV4, and the standard retry mode. Requests and responses are
//! the protocols' ([`super::protocol`]); this module moves them.

use super::credentials::{Chain, Keys};
use super::model::{self, Model, Operation};
use super::profile::Profile;
use super::protocol::{self, Request, Response, ServiceError};
use crate::integrations::lambda::error_chain;
use crate::integrations::{Limits, Pool};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `[integrations.aws]`: region, profile and endpoints beyond what the environment and the
/// shared files say, retries, limits.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Every service's endpoint (as `AWS_ENDPOINT_URL`, which it overrides).
    pub endpoint_url: Option<String>,
    /// Endpoints by service (`dynamodb`, `s3`, … as in `aws-sdk:<service>`).
    pub endpoints: BTreeMap<String, String>,
    /// Attempts per call, the first included (the standard retry mode's 3).
    pub max_attempts: u32,
    pub limits: Limits,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            profile: None,
            endpoint_url: None,
            endpoints: BTreeMap::new(),
            max_attempts: 3,
            limits: Limits::default(),
        }
    }
}

pub struct Client {
    pool: Pool,
    config: Arc<AwsConfig>,
    profile: Profile,
    region: String,
    credentials: Chain,
    quota: RetryQuota,
}

/// A call's answer: the result or the service's error, the response it came in, and how
/// many attempts it took.
pub struct Answer {
    pub result: Result<Value, ServiceError>,
    pub response: Response,
    pub attempts: u32,
}

#[derive(Debug, PartialEq)]
pub enum CallError {
    /// The parameters do not fit the operation.
    Parameters(String),
    /// No answer: no credentials, no connection, no response in time.
    Client { message: String, attempts: u32 },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `https://{prefix}.{region}.amazonaws.com` (`.com.cn` in China).
fn default_endpoint(endpoint_prefix: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{endpoint_prefix}.{region}.{suffix}")
}

impl Client {
    pub fn new(config: &AwsConfig) -> Result<Client, String> {
        let pool = Pool::new(&config.limits)?;
        let profile = Profile::load(config.profile.as_deref());
        let region = config
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| profile.get("region").map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".into());
        // Web identity credentials come from STS, wherever STS is configured to be.
        let sts = model::model("sts").expect("shipped");
        let (sts_endpoint, _) = resolve_endpoint(config, &profile, &region, "sts", sts);
        let credentials = Chain::new(
            profile.clone(),
            sts_endpoint,
            region.clone(),
            pool.client.clone(),
        );
        Ok(Client {
            pool,
            config: Arc::new(config.clone()),
            profile,
            region,
            credentials,
            quota: RetryQuota::new(),
        })
    }

    /// Where `service` is, and whether that was configured: see [`resolve_endpoint`].
    pub fn endpoint(&self, service: &str, model: &Model) -> (String, bool) {
        resolve_endpoint(&self.config, &self.profile, &self.region, service, model)
    }

    /// How long one attempt of `call` may take: `[integrations.aws] timeout_secs`, or the
    /// Task's `TimeoutSeconds` if shorter.
    pub fn timeout(&self, call: &crate::asl::effect::TaskCall) -> Duration {
        self.pool.timeout(call)
    }

    /// Where `service` (a shipped model's name) is; see [`Client::endpoint`].
    pub fn service_endpoint(&self, service: &str) -> (String, bool) {
        let model = model::model(service).expect("a shipped service");
        self.endpoint(service, model)
    }

    /// The SigV4 headers for a request to `service` that another client makes (Lambda's
    /// Invoke), signed with the chain's credentials.
    pub async fn signature(
        &self,
        service: &str,
        url: &str,
        request: &Request,
    ) -> Result<Vec<(String, String)>, String> {
        let model = model::model(service).ok_or_else(|| format!("no model for {service}"))?;
        let keys = self.credentials.keys().await?;
        sign(
            &keys,
            &self.region,
            model.signing_name(),
            url,
            request,
            false,
        )
    }

    /// Calls `operation` of `service` with a Task's parameters, retrying throttling and
    /// transient errors as the standard retry mode does.
    pub async fn call(
        &self,
        service: &str,
        operation: &str,
        parameters: &Value,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let model = model::model(service)
            .ok_or_else(|| CallError::Parameters(format!("no model for service {service}")))?;
        let (name, op) = model
            .operation(operation)
            .ok_or_else(|| CallError::Parameters(format!("{service} has no action {operation}")))?;
        let request =
            protocol::build(model, name, op, parameters).map_err(CallError::Parameters)?;
        let url = self.url(service, model, op, &request);
        let max = self.config.max_attempts.max(1);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let sent = self.send(model, &url, &request, timeout).await;
            let (retryable, cost) = match &sent {
                Ok(response) if (200..300).contains(&response.status) => (false, 0),
                Ok(response) => {
                    let error = protocol::read(model, op, response).err();
                    let code = error.as_ref().map_or("", |e| e.code.as_str());
                    (is_retryable(response.status, code), RETRY_COST)
                }
                Err(_) => (true, TIMEOUT_RETRY_COST),
            };
            if retryable && attempts < max && self.quota.take(cost) {
                tokio::time::sleep(backoff(attempts)).await;
                continue;
            }
            if attempts == 1 && !retryable {
                self.quota.refund();
            }
            return match sent {
                Ok(response) => Ok(Answer {
                    result: protocol::read(model, op, &response),
                    response,
                    attempts,
                }),
                Err(message) => Err(CallError::Client { message, attempts }),
            };
        }
    }

    fn url(&self, service: &str, model: &Model, op: &Operation, request: &Request) -> String {
        let (endpoint, custom) = self.endpoint(service, model);
        let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", &endpoint));
        let mut host = host.to_owned();
        let mut path = request.path_and_query.clone();
        if !custom {
            if let Some(prefix) = op
                .endpoint
                .as_ref()
                .and_then(|e| e.host_prefix.as_deref())
                .filter(|p| !p.contains('{'))
            {
                host = format!("{prefix}{host}");
            }
            // Virtual-hosted addressing for a bucket that can be a host name label.
            if let Some(bucket) = request.bucket.as_deref().filter(|b| dns_compatible(b)) {
                if let Some(rest) = path.strip_prefix(&format!("/{bucket}")) {
                    host = format!("{bucket}.{host}");
                    path = if rest.is_empty() || rest.starts_with('?') {
                        format!("/{rest}")
                    } else {
                        rest.to_owned()
                    };
                }
            }
        }
        format!("{scheme}://{host}{path}")
    }

    /// One attempt: signed, within `timeout`, in a free slot.
    async fn send(
        &self,
        model: &Model,
        url: &str,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        let keys = self.credentials.keys().await?;
        let s3 = model.metadata.endpoint_prefix == "s3";
        let signed = sign(&keys, &self.region, model.signing_name(), url, request, s3)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| format!("method {}: {e}", request.method))?;
        let mut builder = self.pool.client.request(method, url);
        for (k, v) in request.headers.iter().chain(&signed) {
            builder = builder.header(k, v);
        }
        let builder = builder.body(request.body.clone());
        let exchange = async move {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Response {
                status,
                headers,
                body,
            })
        };
        match self.pool.run(timeout, exchange).await {
            Some(Ok(response)) => Ok(response),
            Some(Err(e)) => Err(format!(
                "Unable to execute HTTP request: {}",
                error_chain(&e)
            )),
            None => Err(format!(
                "Unable to execute HTTP request: no response within {} s",
                timeout.as_secs()
            )),
        }
    }
}

/// Where `service` is, and whether that was configured (a custom endpoint: S3 then
/// addresses buckets by path, and no host prefix is added). In the SDKs' order:
/// `[integrations.aws.endpoints]`, `AWS_ENDPOINT_URL_<SERVICE>`, `endpoint_url`,
/// `AWS_ENDPOINT_URL`, the profile's `services` section and `endpoint_url`, else AWS's.
fn resolve_endpoint(
    config: &AwsConfig,
    profile: &Profile,
    region: &str,
    service: &str,
    model: &Model,
) -> (String, bool) {
    let id = &model.metadata.service_id;
    let env_key = id.to_uppercase().replace([' ', '-'], "_");
    let file_key = id.to_lowercase().replace([' ', '-'], "_");
    let ignore_env = env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").as_deref() == Some("true");
    let configured = config
        .endpoints
        .get(service)
        .cloned()
        .or_else(|| {
            (!ignore_env)
                .then(|| env(&format!("AWS_ENDPOINT_URL_{env_key}")))
                .flatten()
        })
        .or_else(|| config.endpoint_url.clone())
        .or_else(|| (!ignore_env).then(|| env("AWS_ENDPOINT_URL")).flatten())
        .or_else(|| {
            (!ignore_env)
                .then(|| {
                    profile
                        .services
                        .get(&file_key)
                        .and_then(|s| s.get("endpoint_url"))
                        .cloned()
                        .or_else(|| profile.get("endpoint_url").map(str::to_owned))
                })
                .flatten()
        });
    match configured {
        Some(url) => (url.trim_end_matches('/').to_owned(), true),
        None => (
            default_endpoint(&model.metadata.endpoint_prefix, region),
            false,
        ),
    }
}

/// A bucket name usable as a host name label (no dots: TLS wildcard certificates).
fn dns_compatible(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// The SigV4 headers for `request` to `url`.
pub(super) fn sign(
    keys: &Keys,
    region: &str,
    signing_name: &str,
    url: &str,
    request: &Request,
    s3: bool,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SigningSettings, UriPathNormalizationMode,
    };
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.clone(),
        keys.session_token.clone(),
        keys.expires,
        "expressway",
    )
    .into();
    let mut settings = SigningSettings::default();
    if s3 {
        // S3 wants the payload's hash as a header and its keys' paths as they are.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(signing_name)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| format!("Unable to sign the request: {e}"))?
        .into();
    let headers = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let signable = SignableRequest::new(
        &request.method,
        url,
        headers,
        SignableBody::Bytes(&request.body),
    )
    .map_err(|e| format!("Unable to sign the request: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("Unable to sign the request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// The standard retry mode's throttling and transient error codes.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
];

fn is_retryable(status: u16, code: &str) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504) || RETRYABLE_CODES.contains(&code)
}

/// `min(random(0..1) * 2^attempt, 20 s)`, as the standard mode's backoff.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 2f64.powi(attempt.min(10) as i32).min(20.0);
    Duration::from_secs_f64(fastrand::f64() * ceiling)
}

const RETRY_COST: i64 = 5;
const TIMEOUT_RETRY_COST: i64 = 10;

/// The standard mode's retry quota: retries spend tokens, first-attempt successes return
/// one, so a failing service is not hammered by every caller's retries at once.
struct RetryQuota(AtomicI64);

impl RetryQuota {
    const CAPACITY: i64 = 500;

    fn new() -> RetryQuota {
        RetryQuota(AtomicI64::new(Self::CAPACITY))
    }

    fn take(&self, cost: i64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left >= cost).then_some(left - cost)
            })
            .is_ok()
    }

    fn refund(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left < Self::CAPACITY).then_some(left + 1)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_transient_errors_are_retried_within_the_quota() {
        assert!(is_retryable(400, "ThrottlingException"));
        assert!(is_retryable(400, "ProvisionedThroughputExceededException"));
        assert!(is_retryable(503, "SlowDown"));
        assert!(is_retryable(500, ""));
        assert!(!is_retryable(400, "ResourceNotFoundException"));
        assert!(!is_retryable(404, "NoSuchBucket"));
        let quota = RetryQuota::new();
        let mut taken = 0;
        while quota.take(RETRY_COST) {
            taken += 1;
        }
        assert_eq!(taken, 100);
        quota.refund();
        assert!(!quota.take(RETRY_COST));
        assert!(backoff(1) <= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_secs(20));
    }

    #[test]
    fn buckets_move_into_the_host_only_on_aws() {
        assert!(dns_compatible("my-bucket-1"));
        assert!(!dns_compatible("My.Bucket"));
        assert!(!dns_compatible("ab"));
        assert_eq!(
            default_endpoint("dynamodb", "eu-west-1"),
            "https://dynamodb.eu-west-1.amazonaws.com"
        );
    }
}
