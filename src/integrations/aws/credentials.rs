//! The default credentials chain, in the AWS SDKs' order: environment variables, web
//! identity (EKS service accounts: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, through
//! STS), the shared files' profile (static keys, `credential_process`), container
//! credentials (ECS, EKS Pod Identity) and EC2 instance metadata (IMDSv2). Temporary
//! credentials are kept until five minutes before they expire.

use super::profile::Profile;
use super::protocol::xml;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Mutex;

#[derive(Clone, Debug, PartialEq)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// When temporary credentials stop working.
    pub expires: Option<SystemTime>,
}

impl Keys {
    fn fresh(&self) -> bool {
        match self.expires {
            Some(at) => at > SystemTime::now() + Duration::from_secs(300),
            None => true,
        }
    }
}

pub struct Chain {
    profile: Profile,
    /// Where STS is (web identity, assumed roles), and the region its requests are signed for.
    sts_endpoint: String,
    region: String,
    http: reqwest::Client,
    cached: Mutex<Resolved>,
}

enum Resolved {
    Not,
    Keys(Keys),
    /// No provider had credentials: said again without asking for a while, so that calls
    /// that sign only when they can (local function servers) do not wait on every call.
    Failed {
        why: String,
        at: Instant,
    },
}

/// How long "no credentials" stands before the chain is asked again.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Chain {
    pub fn new(
        profile: Profile,
        sts_endpoint: String,
        region: String,
        http: reqwest::Client,
    ) -> Chain {
        Chain {
            profile,
            sts_endpoint,
            region,
            http,
            cached: Mutex::new(Resolved::Not),
        }
    }

    /// Credentials to sign with, resolved once and again before they expire.
    pub async fn keys(&self) -> Result<Keys, String> {
        let mut cached = self.cached.lock().await;
        match &*cached {
            Resolved::Keys(keys) if keys.fresh() => return Ok(keys.clone()),
            Resolved::Failed { why, at } if at.elapsed() < RETRY_FAILED_AFTER => {
                return Err(why.clone())
            }
            _ => {}
        }
        match self.resolve().await {
            Ok(keys) => {
                *cached = Resolved::Keys(keys.clone());
                Ok(keys)
            }
            Err(why) => {
                *cached = Resolved::Failed {
                    why: why.clone(),
                    at: Instant::now(),
                };
                Err(why)
            }
        }
    }

    async fn resolve(&self) -> Result<Keys, String> {
        let mut tried = Vec::new();
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Keys {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
                expires: None,
            });
        }
        tried.push(
            "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): not set".to_owned(),
        );
        let token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE").or_else(|| {
            self.profile
                .get("web_identity_token_file")
                .map(str::to_owned)
        });
        let role = env("AWS_ROLE_ARN").or_else(|| self.profile.get("role_arn").map(str::to_owned));
        if let (Some(file), Some(role)) = (token_file, role) {
            return self.web_identity(&file, &role).await;
        }
        tried.push("web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN): not set".into());
        let profile = &self.profile;
        if let (Some(role), Some(source)) = (profile.get("role_arn"), profile.get("source_profile"))
        {
            return self.assume_role(role, source).await;
        }
        if let Some(keys) = profile_keys(profile) {
            return Ok(keys);
        }
        if let Some(command) = profile.get("credential_process") {
            return credential_process(command).await;
        }
        tried.push(format!(
            "profile '{}' of the shared config and credentials files: no keys and no credential_process",
            profile.name
        ));
        if let Some(url) = container_url() {
            return self.container(&url).await;
        }
        tried.push(
            "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, _FULL_URI): not set"
                .into(),
        );
        if env("AWS_EC2_METADATA_DISABLED").as_deref() != Some("true") {
            match self.instance_metadata().await {
                Ok(keys) => return Ok(keys),
                Err(e) => tried.push(format!("EC2 instance metadata: {e}")),
            }
        }
        Err(format!(
            "Unable to load credentials from any of the providers in the chain: {}",
            tried.join("; ")
        ))
    }

    /// STS AssumeRoleWithWebIdentity: an unsigned call with the token file's contents.
    async fn web_identity(&self, file: &str, role: &str) -> Result<Keys, String> {
        let token = std::fs::read_to_string(file)
            .map_err(|e| format!("web identity token file {file}: {e}"))?;
        let session = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "expressway".into());
        let request = self
            .http
            .post(format!("{}/", self.sts_endpoint))
            .form(&[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", role),
                ("RoleSessionName", &session),
                ("WebIdentityToken", token.trim()),
            ])
            .timeout(Duration::from_secs(10));
        sts_keys(request, "AssumeRoleWithWebIdentity").await
    }

    /// A profile's `role_arn` assumed with its `source_profile`'s keys (STS AssumeRole).
    async fn assume_role(&self, role: &str, source: &str) -> Result<Keys, String> {
        let keys = profile_keys(&Profile::load(Some(source))).ok_or_else(|| {
            format!(
                "profile '{}' assumes {role} with source_profile '{source}', which has no keys",
                self.profile.name
            )
        })?;
        let session = self
            .profile
            .get("role_session_name")
            .unwrap_or("expressway")
            .to_owned();
        let mut parameters = serde_json::json!({"RoleArn": role, "RoleSessionName": session});
        if let Some(id) = self.profile.get("external_id") {
            parameters["ExternalId"] = Value::String(id.to_owned());
        }
        let sts = super::model::model("sts").expect("shipped");
        let (name, op) = sts.operation("AssumeRole").expect("STS has AssumeRole");
        let request = super::protocol::build(sts, name, op, &parameters)?;
        let url = format!("{}/", self.sts_endpoint);
        let signed = super::client::sign(&keys, &self.region, "sts", &url, &request, false)?;
        let mut builder = self.http.post(&url).timeout(Duration::from_secs(10));
        for (k, v) in request.headers.iter().chain(&signed) {
            builder = builder.header(k, v);
        }
        sts_keys(builder.body(request.body), "AssumeRole").await
    }

    async fn container(&self, url: &str) -> Result<Keys, String> {
        let mut request = self.http.get(url).timeout(Duration::from_secs(5));
        let token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN").or_else(|| {
            env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
                .and_then(|f| std::fs::read_to_string(f).ok())
                .map(|t| t.trim().to_owned())
        });
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("container credentials from {url}: {e}"))?;
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        keys_of_json(&body).ok_or_else(|| format!("container credentials from {url}: {body}"))
    }

    /// IMDSv2: a session token, the instance profile's role, then its credentials.
    async fn instance_metadata(&self) -> Result<Keys, String> {
        let base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|| "http://169.254.169.254".into());
        let base = base.trim_end_matches('/');
        let timeout = Duration::from_secs(1);
        let token = self
            .http
            .put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
            .timeout(timeout)
            .send()
            .await
            .map_err(|_| "not reachable".to_owned())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let get = |path: String| {
            self.http
                .get(format!("{base}{path}"))
                .header("x-aws-ec2-metadata-token", &token)
                .timeout(timeout)
                .send()
        };
        let prefix = "/latest/meta-data/iam/security-credentials/";
        let role = get(prefix.to_owned())
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let role = role.lines().next().unwrap_or_default().trim().to_owned();
        if role.is_empty() {
            return Err("the instance has no instance profile".into());
        }
        let body = get(format!("{prefix}{role}"))
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        keys_of_json(&body).ok_or_else(|| format!("no credentials for role {role}"))
    }
}

/// A profile's static keys, if it has them.
fn profile_keys(profile: &Profile) -> Option<Keys> {
    Some(Keys {
        access_key_id: profile.get("aws_access_key_id")?.to_owned(),
        secret_access_key: profile.get("aws_secret_access_key")?.to_owned(),
        session_token: profile.get("aws_session_token").map(str::to_owned),
        expires: None,
    })
}

/// Sends an STS `action` request and reads the temporary credentials of its answer
/// (`<{action}Result><Credentials>`), or says why there are none.
async fn sts_keys(request: reqwest::RequestBuilder, action: &str) -> Result<Keys, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("STS {action}: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let root = xml::parse(&body).map_err(|e| format!("STS {action} answered {status}: {e}"))?;
    let result = format!("{action}Result");
    let text = |name: &str| {
        root.text_at(&[&result, "Credentials", name])
            .map(str::to_owned)
    };
    match (text("AccessKeyId"), text("SecretAccessKey")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Keys {
            access_key_id,
            secret_access_key,
            session_token: text("SessionToken"),
            expires: text("Expiration").and_then(|t| expiry(&t)),
        }),
        _ => Err(format!(
            "STS {action} answered {status}: {}",
            root.text_at(&["Error", "Message"]).unwrap_or_default()
        )),
    }
}

fn container_url() -> Option<String> {
    env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .map(|relative| format!("http://169.254.170.2{relative}"))
        .or_else(|| env("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
}

/// `credential_process`: a command that prints `{"Version": 1, "AccessKeyId": …}`.
async fn credential_process(command: &str) -> Result<Keys, String> {
    let output = tokio::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .await
        .map_err(|e| format!("credential_process '{command}': {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "credential_process '{command}' failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let body: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("credential_process '{command}' printed no JSON: {e}"))?;
    keys_of_json(&body).ok_or_else(|| format!("credential_process '{command}' printed no keys"))
}

/// The container, IMDS and `credential_process` answer: `AccessKeyId`, `SecretAccessKey`,
/// `Token` or `SessionToken`, `Expiration`.
fn keys_of_json(body: &Value) -> Option<Keys> {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(Keys {
        access_key_id: text("AccessKeyId")?,
        secret_access_key: text("SecretAccessKey")?,
        session_token: text("Token").or_else(|| text("SessionToken")),
        expires: text("Expiration").and_then(|t| expiry(&t)),
    })
}

fn expiry(text: &str) -> Option<SystemTime> {
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(at.timestamp().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_credentials_are_read_and_expire() {
        let keys = keys_of_json(&serde_json::json!({
            "AccessKeyId": "AKID", "SecretAccessKey": "s", "Token": "t",
            "Expiration": "2020-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(keys.session_token.as_deref(), Some("t"));
        assert!(!keys.fresh(), "expired in 2020");
        assert!(keys_of_json(&serde_json::json!({"AccessKeyId": "x"})).is_none());
    }
}
