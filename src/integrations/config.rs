//! `[integrations]` and its `[integrations.*]` sections: what Task states may reach, and
//! their reader. Each integration's own settings type lives with its client
//! ([`LambdaConfig`], [`HttpConfig`], [`SqsConfig`], [`AwsConfig`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::aws::AwsConfig;
use super::http::{HttpConfig, HttpConnection};
use super::lambda::LambdaConfig;
use super::sqs::SqsConfig;
use crate::config_reader::{check_url, Section};

/// What the integrations are allowed to reach, and how hard they may push.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationsConfig {
    /// Threads of the runtime that carries every integration's I/O.
    pub threads: usize,
    /// Whether `.waitForTaskToken` and activity Tasks may run (see
    /// [`Served::callbacks`](super::Served::callbacks)).
    pub allow_callbacks: bool,
    pub lambda: LambdaConfig,
    pub http: HttpConfig,
    pub sqs: SqsConfig,
    pub aws: AwsConfig,
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        IntegrationsConfig {
            threads: 1,
            allow_callbacks: false,
            lambda: Default::default(),
            http: Default::default(),
            sqs: Default::default(),
            aws: Default::default(),
        }
    }
}

/// Limits every integration has.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Calls in flight at once; more wait for a free slot.
    pub max_concurrency: usize,
    /// Longest a single request may take (the Task's `TimeoutSeconds` applies as well).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrency: 512,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Reads `[integrations]` with its `lambda`, `http` and `sqs` sub-sections.
pub fn read_integrations(mut section: Section<'_>) -> IntegrationsConfig {
    let defaults = IntegrationsConfig::default();
    let threads = section.uint("threads", defaults.threads, 1, 64);
    let allow_callbacks = section.bool("allow_callbacks", defaults.allow_callbacks);
    let lambda = section
        .section("lambda")
        .map(read_lambda)
        .unwrap_or_default();
    let http = section.section("http").map(read_http).unwrap_or_default();
    let sqs = section.section("sqs").map(read_sqs).unwrap_or_default();
    let aws = section.section("aws").map(read_aws).unwrap_or_default();
    section.finish();
    IntegrationsConfig {
        threads,
        allow_callbacks,
        lambda,
        http,
        sqs,
        aws,
    }
}

fn read_aws(mut aws: Section<'_>) -> AwsConfig {
    let defaults = AwsConfig::default();
    let region = aws.string("region").map(str::to_owned);
    let profile = aws.string("profile").map(str::to_owned);
    let endpoint_url = aws.string("endpoint_url").map(str::to_owned);
    if let Some(url) = &endpoint_url {
        check_url(&aws, "endpoint_url", url);
    }
    let mut endpoints = BTreeMap::new();
    if let Some(table) = aws.table("endpoints") {
        for (service, url) in table {
            let key = format!("endpoints.{service}");
            match url.as_str() {
                Some(_) if super::aws::model::model(service).is_none() => aws.error(
                    &key,
                    format!(
                        "no such AWS service (supported: {})",
                        super::aws::model::services().collect::<Vec<_>>().join(", ")
                    ),
                ),
                Some(url) => {
                    check_url(&aws, &key, url);
                    endpoints.insert(service.clone(), url.to_owned());
                }
                None => aws.error(&key, "expected a URL string"),
            }
        }
    }
    let max_attempts = aws.uint("max_attempts", defaults.max_attempts as usize, 1, 10) as u32;
    let limits = read_limits(&mut aws);
    aws.finish();
    AwsConfig {
        region,
        profile,
        endpoint_url,
        endpoints,
        max_attempts,
        limits,
    }
}

fn read_lambda(mut lambda: Section<'_>) -> LambdaConfig {
    let endpoint = lambda.string("endpoint").map(str::to_owned);
    if let Some(url) = &endpoint {
        check_url(&lambda, "endpoint", url);
    }
    let mut functions = BTreeMap::new();
    if let Some(table) = lambda.table("functions") {
        for (name, url) in table {
            let key = format!("functions.{name}");
            match url.as_str() {
                Some(url) => {
                    check_url(&lambda, &key, url);
                    functions.insert(name.clone(), url.to_owned());
                }
                None => lambda.error(&key, "expected a URL string"),
            }
        }
    }
    let limits = read_limits(&mut lambda);
    lambda.finish();
    LambdaConfig {
        endpoint,
        functions,
        limits,
    }
}

fn read_http(mut http: Section<'_>) -> HttpConfig {
    let limits = read_limits(&mut http);
    let connections = http
        .sections("connections")
        .into_iter()
        .map(read_http_connection)
        .collect();
    http.finish();
    HttpConfig {
        limits,
        connections,
    }
}

fn read_sqs(mut sqs: Section<'_>) -> SqsConfig {
    let endpoint = sqs.string("endpoint").map(str::to_owned);
    if let Some(url) = &endpoint {
        check_url(&sqs, "endpoint", url);
    }
    let region = sqs.string("region").map(str::to_owned);
    let access_key_id = sqs.string("access_key_id").map(str::to_owned);
    let secret_access_key = sqs.string("secret_access_key").map(str::to_owned);
    if access_key_id.is_some() != secret_access_key.is_some() {
        let (key, other) = if access_key_id.is_some() {
            ("secret_access_key", "access_key_id")
        } else {
            ("access_key_id", "secret_access_key")
        };
        sqs.error(key, format!("missing (required with {other})"));
    }
    let limits = read_limits(&mut sqs);
    sqs.finish();
    SqsConfig {
        endpoint,
        region,
        access_key_id,
        secret_access_key,
        limits,
    }
}

fn read_limits(section: &mut Section<'_>) -> Limits {
    let defaults = Limits::default();
    let max_concurrency = section.uint("max_concurrency", defaults.max_concurrency, 1, 65_536);
    let timeout_secs = section.uint("timeout_secs", defaults.timeout.as_secs(), 1, 300);
    Limits {
        max_concurrency,
        timeout: Duration::from_secs(timeout_secs),
    }
}

fn read_http_connection(mut section: Section<'_>) -> HttpConnection {
    // Both required (issue 17): a Task calls only through a connection it names, and only
    // under the connection's URL prefix.
    let arn = section.required_string("arn").map(str::to_owned);
    if arn.as_deref().is_some_and(str::is_empty) {
        section.error(
            "arn",
            "must not be empty (the Tasks' Authentication.ConnectionArn)",
        );
    }
    let url_prefix = section.required_string("url_prefix").map(str::to_owned);
    if let Some(prefix) = &url_prefix {
        check_url(&section, "url_prefix", prefix);
        let has_path = reqwest::Url::parse(prefix).is_ok_and(|u| u.host_str().is_some());
        if prefix.starts_with("http") && !has_path {
            section.error(
                "url_prefix",
                "must be a URL with a host, such as \"https://api.example/v1/\"",
            );
        }
    }
    let mut string_map = |key: &'static str| {
        let mut out = BTreeMap::new();
        if let Some(table) = section.table(key) {
            for (name, value) in table {
                match value.as_str() {
                    Some(v) => {
                        out.insert(name.clone(), v.to_owned());
                    }
                    None => section.error(&format!("{key}.{name}"), "expected a string"),
                }
            }
        }
        out
    };
    let headers = string_map("headers");
    let query = string_map("query");
    section.finish();
    HttpConnection {
        arn: arn.unwrap_or_default(),
        url_prefix: url_prefix.unwrap_or_default(),
        headers,
        query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_reader::testing::{assert_section_errors, read_section};

    fn read(text: &str) -> Result<Option<IntegrationsConfig>, Vec<(String, String)>> {
        read_section(text, "integrations", read_integrations)
    }

    #[test]
    fn the_sqs_section_is_read_and_checked() {
        let text =
            "[integrations.sqs]\nendpoint = \"http://127.0.0.1:9324\"\nregion = \"eu-west-1\"\n\
                    access_key_id = \"a\"\nsecret_access_key = \"s\"\ntimeout_secs = 5\n";
        let config = read(text).unwrap_or_else(|e| panic!("{e:?}")).unwrap();
        let sqs = &config.sqs;
        assert_eq!(sqs.endpoint.as_deref(), Some("http://127.0.0.1:9324"));
        assert_eq!(sqs.region.as_deref(), Some("eu-west-1"));
        assert_eq!(sqs.access_key_id.as_deref(), Some("a"));
        assert_eq!(sqs.secret_access_key.as_deref(), Some("s"));
        assert_eq!(sqs.limits.timeout, Duration::from_secs(5));
        assert_section_errors(
            read("[integrations.sqs]\nendpoint = \"127.0.0.1:9324\"\naccess_key_id = \"a\"\n"),
            &[
                (
                    "integrations.sqs.endpoint",
                    "is not an http:// or https:// URL",
                ),
                (
                    "integrations.sqs.secret_access_key",
                    "missing (required with access_key_id)",
                ),
            ],
        );
    }

    #[test]
    fn lambda_and_http_sections_are_read_and_checked() {
        // Entries of free-form tables are reported under one quoted key (`"functions.f"`),
        // as they always were.
        let text = r#"
[integrations]
threads = 2
[integrations.lambda]
endpoint = "http://127.0.0.1:9000"
functions = { geocode = "http://127.0.0.1:9001" }
max_concurrency = 8
[[integrations.http.connections]]
arn = "arn:aws:events:us-east-1:123456789012:connection/api/1"
url_prefix = "https://api.example/"
headers = { Authorization = "Bearer x" }
"#;
        let config = read(text).unwrap_or_else(|e| panic!("{e:?}")).unwrap();
        assert_eq!(config.threads, 2);
        assert_eq!(config.lambda.functions["geocode"], "http://127.0.0.1:9001");
        assert_eq!(config.lambda.limits.max_concurrency, 8);
        assert_eq!(
            config.http.connections[0].headers["Authorization"],
            "Bearer x"
        );
        assert_section_errors(
            read("[integrations.lambda]\nfunctions = { f = 1, g = \"ftp://x\" }\n[[integrations.http.connections]]\nquery = { a = 1 }\n"),
            &[
                (r#"integrations.lambda."functions.f""#, "expected a URL string"),
                (r#"integrations.lambda."functions.g""#, "is not an http:// or https:// URL"),
                ("integrations.http.connections[0].arn", "missing (required: a string)"),
                ("integrations.http.connections[0].url_prefix", "missing (required: a string)"),
                (r#"integrations.http.connections[0]."query.a""#, "expected a string"),
            ],
        );
    }
}
