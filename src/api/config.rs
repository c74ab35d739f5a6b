//! `[api]`: the settings of the AWS Step Functions-compatible HTTP API, and their reader.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config_reader::Section;

/// What the `[api]` section of the config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// Authentication, listener limits and API quotas (the block at the end of this file).
    pub security: ApiSecurity,
    pub region: String,
    pub account: String,
    /// Finished executions kept for `DescribeExecution`/`ListExecutions`.
    pub recent_executions: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8083)),
            security: ApiSecurity::default(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            recent_executions: 1000,
        }
    }
}

/// Reads `[api]`.
pub fn read_api(mut section: Section<'_>) -> ApiSettings {
    let defaults = ApiSettings::default();
    let listen = match section.string("listen") {
        None => defaults.listen,
        Some(text) => text.parse().unwrap_or_else(|_| {
            section.error(
                "listen",
                format!("{text:?} is not an IP:port such as \"127.0.0.1:8083\""),
            );
            defaults.listen
        }),
    };
    let security = read_security(&mut section, listen);
    let region = section
        .string("region")
        .unwrap_or(&defaults.region)
        .to_string();
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        section.error(
            "region",
            format!("{region:?} is not a region name such as \"us-east-1\""),
        );
    }
    let account = section
        .string("account")
        .unwrap_or(&defaults.account)
        .to_string();
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        section.error(
            "account",
            format!("{account:?} is not a 12-digit account id"),
        );
    }
    let recent_executions = section.uint(
        "recent_executions",
        defaults.recent_executions,
        0,
        10_000_000,
    );
    section.finish();
    ApiSettings {
        listen,
        security,
        region,
        account,
        recent_executions,
    }
}

// ---- Security (issue 17): authentication, listener limits, API quotas -------------------
// Keys: access_key_id, secret_access_key, bearer_token, header_read_timeout_secs,
// max_connections, max_request_bytes, max_definition_bytes, max_state_machines,
// max_running_executions, max_held_bytes (and the retired `auth`). docs/security.md is the threat model they serve.

/// The shortest secret (SigV4 secret access key, bearer token) the config accepts.
pub const MIN_SECRET_LEN: usize = 16;
/// The longest one.
pub const MAX_SECRET_LEN: usize = 256;

/// A secret from the config; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The one credential SigV4 requests must be signed with (`AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` for aws-cli, boto3 and the SDKs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigV4Key {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

/// Who may call the API, and how much a caller may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSecurity {
    /// `access_key_id` + `secret_access_key`: SigV4 signatures are verified against them.
    pub sigv4: Option<SigV4Key>,
    /// `bearer_token`: accepted as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// `header_read_timeout_secs`: a connection that has not sent a whole request head
    /// within this (idle keep-alive connections included) is closed.
    pub header_read_timeout: Duration,
    /// `max_connections`: connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// `max_request_bytes`: the largest request body (AWS: 1 MB per request).
    pub max_request_bytes: usize,
    /// `max_definition_bytes`: the largest definition (AWS: 1 MB, botocore's `Definition`
    /// shape has `max: 1048576`).
    pub max_definition_bytes: usize,
    /// `max_state_machines`: state machines held at once, configured ones included (AWS's
    /// default quota: 10,000 per account and region).
    pub max_state_machines: usize,
    /// `max_running_executions`: executions the host runs at once (StartExecution,
    /// StartSyncExecution, nested); past it a start is refused with `ThrottlingException`.
    pub max_running_executions: usize,
    /// `max_held_bytes`: the bytes the running executions may hold (inputs, states' data,
    /// Map and Parallel results); a start that would pass it is refused the same way.
    pub max_held_bytes: usize,
}

impl Default for ApiSecurity {
    fn default() -> Self {
        ApiSecurity {
            sigv4: None,
            bearer_token: None,
            header_read_timeout: Duration::from_secs(20),
            max_connections: 512,
            max_request_bytes: 1 << 20,
            max_definition_bytes: 1 << 20,
            max_state_machines: 10_000,
            max_running_executions: 10_000,
            max_held_bytes: crate::engine::DEFAULT_BYTE_BUDGET,
        }
    }
}

impl ApiSecurity {
    /// Whether requests must authenticate (some credential is configured).
    pub fn authenticates(&self) -> bool {
        self.sigv4.is_some() || self.bearer_token.is_some()
    }
}

/// A secret key's value, checked for length (`None` when absent or refused).
pub(crate) fn read_secret(section: &mut Section<'_>, key: &'static str) -> Option<Secret> {
    let text = section.string(key)?;
    let chars = text.chars().count();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&chars) || text.trim() != text {
        section.error(
            key,
            format!(
                "must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters without surrounding \
                 spaces (got {chars}); generate one with `openssl rand -base64 32`"
            ),
        );
        return None;
    }
    Some(Secret(text.to_string()))
}

fn read_security(section: &mut Section<'_>, listen: SocketAddr) -> ApiSecurity {
    let defaults = ApiSecurity::default();
    if section.string("auth").is_some() {
        section.error(
            "auth",
            "is retired: it let anyone who knew the access key id in, unsigned. Set \
             bearer_token for `Authorization: Bearer`, and access_key_id + secret_access_key \
             for SigV4 (aws-cli, boto3, the SDKs), whose signatures are now verified",
        );
    }
    let access_key_id = section.string("access_key_id").map(str::to_string);
    if let Some(id) = &access_key_id {
        let ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            section.error(
                "access_key_id",
                "must be 1 to 128 of A-Z a-z 0-9 _ - (it travels in clear in every request)",
            );
        }
    }
    let secret_access_key = read_secret(section, "secret_access_key");
    let sigv4 = match (access_key_id, secret_access_key) {
        (Some(id), Some(secret)) => {
            if id == secret.0 {
                section.error(
                    "secret_access_key",
                    "must differ from access_key_id (the key id is sent in clear)",
                );
            }
            Some(SigV4Key {
                access_key_id: id,
                secret_access_key: secret,
            })
        }
        (Some(_), None) if !section.has("secret_access_key") => {
            section.error("secret_access_key", "missing (required with access_key_id)");
            None
        }
        (None, _) if section.has("secret_access_key") && !section.has("access_key_id") => {
            section.error("access_key_id", "missing (required with secret_access_key)");
            None
        }
        _ => None,
    };
    let bearer_token = read_secret(section, "bearer_token");
    let header_read_timeout_secs = section.uint(
        "header_read_timeout_secs",
        defaults.header_read_timeout.as_secs(),
        1,
        300,
    );
    let max_connections = section.uint("max_connections", defaults.max_connections, 1, 65_536);
    let max_request_bytes = section.uint(
        "max_request_bytes",
        defaults.max_request_bytes,
        1024,
        64 << 20,
    );
    let max_definition_bytes = section.uint(
        "max_definition_bytes",
        defaults.max_definition_bytes,
        1,
        1 << 20,
    );
    let max_state_machines = section.uint(
        "max_state_machines",
        defaults.max_state_machines,
        1,
        1_000_000,
    );
    let max_running_executions = section.uint(
        "max_running_executions",
        defaults.max_running_executions,
        1,
        10_000_000,
    );
    let max_held_bytes = section.uint(
        "max_held_bytes",
        defaults.max_held_bytes,
        1 << 20,
        usize::MAX,
    );
    let security = ApiSecurity {
        sigv4,
        bearer_token,
        header_read_timeout: Duration::from_secs(header_read_timeout_secs),
        max_connections,
        max_request_bytes,
        max_definition_bytes,
        max_state_machines,
        max_running_executions,
        max_held_bytes,
    };
    let tried = ["auth", "access_key_id", "secret_access_key", "bearer_token"]
        .iter()
        .any(|k| section.has(k));
    if !security.authenticates() && !tried && !listen.ip().is_loopback() {
        section.error(
            "listen",
            format!(
                "{listen} is not a loopback address: set access_key_id + secret_access_key \
                 (SigV4) or bearer_token to expose the API beyond this host"
            ),
        );
    }
    security
}
// ---- end of security ------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_reader::testing::{assert_section_errors, read_section};

    #[test]
    fn api_settings_are_checked() {
        assert_section_errors(
            read_section(
                r#"
[api]
listen = "0.0.0.0:8083"
region = "US East"
account = "12"
recent_executions = -1
colour = "blue"
"#,
                "api",
                read_api,
            ),
            &[
                ("api.listen", "0.0.0.0:8083 is not a loopback address: set access_key_id + secret_access_key (SigV4) or bearer_token to expose the API beyond this host"),
                ("api.region", "\"US East\" is not a region name such as \"us-east-1\""),
                ("api.account", "\"12\" is not a 12-digit account id"),
                ("api.recent_executions", "must be at least 0, got -1"),
                ("api.colour", "unknown key (known here: listen, auth, access_key_id, secret_access_key, bearer_token, header_read_timeout_secs, max_connections, max_request_bytes, max_definition_bytes, max_state_machines, max_running_executions, max_held_bytes, region, account, recent_executions)"),
            ],
        );
        assert_section_errors(
            read_section("[api]\nlisten = \"nope\"\n", "api", read_api),
            &[(
                "api.listen",
                "\"nope\" is not an IP:port such as \"127.0.0.1:8083\"",
            )],
        );
    }

    #[test]
    fn credentials_are_checked_at_load() {
        let text = "[api]\nlisten = \"0.0.0.0:8083\"\naccess_key_id = \"AKIDEXPRESSWAY\"\n\
                    secret_access_key = \"0123456789abcdefXYZ\"\nbearer_token = \"a-token-of-16-chars\"\n";
        let api = read_section(text, "api", read_api).unwrap().unwrap();
        let key = api.security.sigv4.as_ref().unwrap();
        assert_eq!(key.access_key_id, "AKIDEXPRESSWAY");
        assert_eq!(key.secret_access_key.expose(), "0123456789abcdefXYZ");
        assert!(
            !format!("{api:?}").contains("0123456789abcdefXYZ"),
            "secrets are not Debug"
        );
        assert_eq!(
            api.security.bearer_token.as_ref().map(Secret::expose),
            Some("a-token-of-16-chars")
        );
        assert_section_errors(
            read_section(
                "[api]\nauth = \"s3cret\"\nsecret_access_key = \"short\"\nbearer_token = \"short\"\nmax_connections = 0\n",
                "api",
                read_api,
            ),
            &[
                ("api.auth", "is retired: it let anyone who knew the access key id in"),
                ("api.secret_access_key", "must be 16 to 256 characters without surrounding spaces (got 5)"),
                ("api.access_key_id", "missing (required with secret_access_key)"),
                ("api.bearer_token", "must be 16 to 256 characters"),
                ("api.max_connections", "must be at least 1, got 0"),
            ],
        );
        assert_section_errors(
            read_section("[api]\naccess_key_id = \"AKID/x\"\n", "api", read_api),
            &[
                ("api.access_key_id", "must be 1 to 128 of A-Z a-z 0-9 _ -"),
                (
                    "api.secret_access_key",
                    "missing (required with access_key_id)",
                ),
            ],
        );
        assert_section_errors(
            read_section(
                "[api]\naccess_key_id = \"same-as-the-secret\"\nsecret_access_key = \"same-as-the-secret\"\n",
                "api",
                read_api,
            ),
            &[("api.secret_access_key", "must differ from access_key_id")],
        );
    }

    #[test]
    fn an_empty_section_takes_the_defaults() {
        let api = read_section("[api]\n", "api", read_api).unwrap();
        assert_eq!(api, Some(ApiSettings::default()));
        let api = ApiSettings::default();
        assert_eq!(api.listen, "127.0.0.1:8083".parse().unwrap());
        assert_eq!(
            (api.region.as_str(), api.account.as_str()),
            ("us-east-1", "123456789012")
        );
        assert_eq!(api.recent_executions, 1000);
        assert!(!api.security.authenticates());
        assert_eq!(api.security.max_definition_bytes, 1_048_576);
        assert_eq!(api.security.max_state_machines, 10_000);
    }
}
