//! `[api]`: the settings of the AWS Step Functions-compatible HTTP API, and their reader.

use std::net::SocketAddr;

use crate::config_reader::Section;

/// What the `[api]` section of the config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// A shared secret: accepted as `Authorization: Bearer <auth>`, or as the access key id
    /// of a SigV4 `Authorization` header (`Credential=<auth>/…`; the signature itself is not
    /// verified). `None`: no authentication (loopback only, enforced by [`read_api`]).
    pub auth: Option<String>,
    pub region: String,
    pub account: String,
    /// Finished executions kept for `DescribeExecution`/`ListExecutions`.
    pub recent_executions: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8083)),
            auth: None,
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
    let auth = section.string("auth").map(str::to_string);
    if auth
        .as_deref()
        .is_some_and(|a| a.trim().is_empty() || a.len() > 256)
    {
        section.error("auth", "must be 1 to 256 characters (or left out)");
    }
    if auth.is_none() && !listen.ip().is_loopback() {
        section.error(
            "listen",
            format!(
                "{listen} is not a loopback address: set api.auth to expose the API beyond this host"
            ),
        );
    }
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
        auth,
        region,
        account,
        recent_executions,
    }
}

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
                ("api.listen", "0.0.0.0:8083 is not a loopback address: set api.auth to expose the API beyond this host"),
                ("api.region", "\"US East\" is not a region name such as \"us-east-1\""),
                ("api.account", "\"12\" is not a 12-digit account id"),
                ("api.recent_executions", "must be at least 0, got -1"),
                ("api.colour", "unknown key (known here: listen, auth, region, account, recent_executions)"),
            ],
        );
        let text = "[api]\nlisten = \"0.0.0.0:8083\"\nauth = \"s3cret\"\n";
        let api = read_section(text, "api", read_api).unwrap().unwrap();
        assert_eq!(api.auth.as_deref(), Some("s3cret"));
        assert_section_errors(
            read_section("[api]\nlisten = \"nope\"\n", "api", read_api),
            &[(
                "api.listen",
                "\"nope\" is not an IP:port such as \"127.0.0.1:8083\"",
            )],
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
    }
}
