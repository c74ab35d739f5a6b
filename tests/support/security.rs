//! Who may call the API and how much they may take (issue 17), against an API-only daemon
//! configured with a SigV4 key pair, a bearer token and small limits. Each check is named
//! after what was broken:
//!
//! - SigV4 was not verified: any request carrying the configured key id in `Credential=` got
//!   in, whatever its signature, secret or date (`support/security_clients.py` signs with the
//!   real aws-cli and boto3; the checks here sign with `aws-sigv4` and then tamper).
//! - No header-read timeout and no connection cap: idle connections starved a normal request.
//!   The daemon runs with `ulimit -n 256`, so 400 idle connections exhaust its descriptors
//!   unless it closes them.
//! - No quotas: definitions and state machines without bound, `statusFilter` unchecked,
//!   `roleArn` optional, request bodies up to axum's default.
//!
//! How they were shown to fail before the fix: `EXPRESSWAY_SECURITY_LEGACY_BIN=<an expressway
//! binary built from before it>` runs the same checks against that binary, configured the old
//! way (`auth = "<key id>"`, which it also accepts as a bearer token). Against main at
//! c2736cf, 17 of the 19 fail; only the real clients' correct signatures (accepted then too)
//! and the non-loopback refusal (already enforced for `auth`) pass.

use crate::harness::{verdict, Group, Problem, Verdict};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const KEY: &str = "AKIDSECURITY";
const SECRET: &str = "security-test-secret-0123";
const BEARER: &str = "security-bearer-token-0123";

/// The bearer token the daemon accepts: the legacy binary's is its one `auth` secret.
fn bearer() -> &'static str {
    if std::env::var_os("EXPRESSWAY_SECURITY_LEGACY_BIN").is_some() {
        KEY
    } else {
        BEARER
    }
}

const SCRIPT_CHECKS: &[&str] = &[
    "aws_cli_and_boto3_signatures_verify",
    "boto3_with_a_wrong_secret_is_invalid_signature_exception",
    "aws_cli_with_a_wrong_secret_is_refused",
    "boto3_with_a_clock_ten_minutes_slow_is_signature_expired",
    "list_executions_rejects_a_bogus_status_filter",
    "create_state_machine_without_role_arn_is_a_validation_exception",
    "a_definition_over_max_definition_bytes_is_a_validation_exception",
    "the_state_machine_quota_is_state_machine_limit_exceeded",
];

pub fn group() -> Group<Security> {
    let group = SCRIPT_CHECKS
        .iter()
        .fold(Group::new("security", Security::start), |group, &name| {
            group.check(name, move |s: &mut Security| s.run_script_check(name))
        });
    group
        .check(
            "a_signature_tampered_after_signing_is_invalid_signature_exception",
            a_signature_tampered_after_signing_is_invalid_signature_exception,
        )
        .check(
            "a_body_changed_after_signing_is_invalid_signature_exception",
            a_body_changed_after_signing_is_invalid_signature_exception,
        )
        .check(
            "a_stale_x_amz_date_is_signature_expired",
            a_stale_x_amz_date_is_signature_expired,
        )
        .check(
            "the_access_key_id_alone_no_longer_authenticates",
            the_access_key_id_alone_no_longer_authenticates,
        )
        .check(
            "a_bearer_token_authenticates_and_a_wrong_one_does_not",
            a_bearer_token_authenticates_and_a_wrong_one_does_not,
        )
        .check(
            "a_request_body_over_max_request_bytes_is_refused",
            a_request_body_over_max_request_bytes_is_refused,
        )
        .check(
            "idle_connections_do_not_starve_a_normal_request",
            idle_connections_do_not_starve_a_normal_request,
        )
        .check(
            "a_secret_shorter_than_16_characters_is_refused_at_load",
            a_secret_shorter_than_16_characters_is_refused_at_load,
        )
        .check(
            "a_non_loopback_listen_without_credentials_is_refused_at_load",
            a_non_loopback_listen_without_credentials_is_refused_at_load,
        )
        .check(
            "http_invoke_to_loopback_without_a_configured_connection_returns_nothing",
            http_invoke_to_loopback_without_a_configured_connection_returns_nothing,
        )
        .check(
            "http_invoke_to_the_metadata_endpoint_without_a_configured_connection_fails",
            http_invoke_to_the_metadata_endpoint_without_a_configured_connection_fails,
        )
        .skipped_by("EXPRESSWAY_SKIP_API")
}

/// The daemon under test: `EXPRESSWAY_SECURITY_LEGACY_BIN` if set, else this build's.
fn bin() -> PathBuf {
    std::env::var_os("EXPRESSWAY_SECURITY_LEGACY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_expressway")))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/security_clients.py")
}

/// The venv's python and the daemon.
pub struct Security {
    python: PathBuf,
    port: u16,
    dir: PathBuf,
    daemon: Child,
    up: Option<Result<(), String>>,
}

impl Security {
    fn start() -> Result<Self, Problem> {
        let python = crate::api::aws_clients_venv()?;
        let dir = crate::api::dir_with_hello("security")?;
        let port = crate::daemon::free_port();
        let legacy = std::env::var_os("EXPRESSWAY_SECURITY_LEGACY_BIN");
        let api = if legacy.is_some() {
            format!("auth = \"{KEY}\"\n")
        } else {
            format!(
                "access_key_id = \"{KEY}\"\nsecret_access_key = \"{SECRET}\"\n\
                 bearer_token = \"{BEARER}\"\nheader_read_timeout_secs = 2\n\
                 max_connections = 64\nmax_request_bytes = 65536\n\
                 max_definition_bytes = 4096\nmax_state_machines = 3\n"
            )
        };
        let config = dir.join("security.toml");
        std::fs::write(
            &config,
            format!(
                "[[state_machines]]\nname = \"hello\"\ndefinition = \"hello.asl.json\"\n\n\
                 [metrics]\nlisten = \"\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n{api}"
            ),
        )
        .map_err(|e| format!("config: {e}"))?;
        let bin = bin();
        let log = std::fs::File::create(dir.join("daemon.log")).map_err(|e| e.to_string())?;
        // Few descriptors, so that holding idle connections open would exhaust them.
        let daemon = Command::new("sh")
            .args(["-c", "ulimit -n 1024 && exec \"$0\" run --config \"$1\""])
            .arg(&bin)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("the daemon does not start: {e}"))?;
        Ok(Security {
            python,
            port,
            dir,
            daemon,
            up: None,
        })
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    fn listening(&mut self) -> Verdict {
        if self.up.is_none() {
            let started = Instant::now();
            let mut up = Err("nothing listens on the API port after 20 s".to_string());
            while started.elapsed() < Duration::from_secs(20) {
                if TcpStream::connect(self.addr()).is_ok() {
                    up = Ok(());
                    break;
                }
                if let Ok(Some(status)) = self.daemon.try_wait() {
                    up = Err(format!("exited with {status}: {}", self.log()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.up = Some(up);
        }
        Ok(self.up.clone().expect("just set")?)
    }

    fn run_script_check(&mut self, name: &str) -> Verdict {
        self.listening()?;
        let out = Command::new(&self.python)
            .arg(script())
            .arg(format!("http://127.0.0.1:{}", self.port))
            .arg(self.python.with_file_name("aws"))
            .arg(name)
            .output()
            .map_err(|e| format!("the client script does not run: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            if line == format!("ok {name}") {
                return Ok(());
            }
            if let Some(detail) = line.strip_prefix(&format!("FAIL {name}: ")) {
                return Err(detail.to_string().into());
            }
        }
        Err(format!(
            "the client script gave no verdict: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

impl Drop for Security {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// POSTs `body` with `headers` on a new connection; the status and the JSON answer.
pub fn post(
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &str,
) -> Result<(u16, Value), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(60))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut head = String::from("POST / HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("write: {e}"))?;
    let mut text = Vec::new();
    s.read_to_end(&mut text)
        .map_err(|e| format!("no answer: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// The headers of a JSON-protocol request to `target`, without credentials.
pub fn base_headers(addr: SocketAddr, target: &str) -> Vec<(String, String)> {
    vec![
        ("host".into(), addr.to_string()),
        ("content-type".into(), "application/x-amz-json-1.0".into()),
        ("x-amz-target".into(), format!("AWSStepFunctions.{target}")),
    ]
}

/// `base` with a SigV4 signature made by aws-sigv4 (as our SQS client signs), at `time`.
fn signed(
    addr: SocketAddr,
    target: &str,
    body: &str,
    secret: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let mut headers = base_headers(addr, target);
    let identity =
        aws_credential_types::Credentials::new(KEY, secret, None, None, "security").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("states")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let url = format!("http://{addr}/");
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signs").into_parts();
    headers.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    headers
}

pub fn error_type(v: &Value) -> &str {
    v["__type"]
        .as_str()
        .and_then(|t| t.rsplit('#').next())
        .unwrap_or("")
}

/// A status and error code as expected, or what came instead.
fn expect(found: Result<(u16, Value), String>, status: u16, code: &str) -> Verdict {
    match found {
        Ok((s, v)) if s == status && error_type(&v) == code => Ok(()),
        Ok((s, v)) => Err(format!("expected {status} {code}, got {s} {v}").into()),
        Err(e) => Err(e.into()),
    }
}

fn a_signature_tampered_after_signing_is_invalid_signature_exception(s: &mut Security) -> Verdict {
    s.listening()?;
    let body = "{}";
    let mut headers = signed(
        s.addr(),
        "ListStateMachines",
        body,
        SECRET,
        SystemTime::now(),
    );
    // The same request, correctly signed, is let in ...
    let ok = post(s.addr(), &headers, body)?;
    if ok.0 != 200 {
        return Err(format!("the correctly signed request was refused: {ok:?}").into());
    }
    // ... one hex digit of its signature changed, it is not.
    let auth = headers
        .iter_mut()
        .find(|(k, _)| k == "authorization")
        .ok_or("no authorization header")?;
    let last = auth.1.pop().ok_or("empty")?;
    auth.1.push(if last == '0' { '1' } else { '0' });
    expect(
        post(s.addr(), &headers, body),
        400,
        "InvalidSignatureException",
    )
}

fn a_body_changed_after_signing_is_invalid_signature_exception(s: &mut Security) -> Verdict {
    s.listening()?;
    let signed_body = r#"{"maxResults": 1}"#;
    let headers = signed(
        s.addr(),
        "ListStateMachines",
        signed_body,
        SECRET,
        SystemTime::now(),
    );
    expect(
        post(s.addr(), &headers, r#"{"maxResults": 2}"#),
        400,
        "InvalidSignatureException",
    )
}

fn a_stale_x_amz_date_is_signature_expired(s: &mut Security) -> Verdict {
    s.listening()?;
    let body = "{}";
    let stale = SystemTime::now() - Duration::from_secs(600);
    let headers = signed(s.addr(), "ListStateMachines", body, SECRET, stale);
    let found = post(s.addr(), &headers, body);
    if let Ok((_, v)) = &found {
        let message = v["message"].as_str().unwrap_or("");
        if error_type(v) == "InvalidSignatureException" && !message.starts_with("Signature expired")
        {
            return Err(format!("not a `Signature expired` message: {message}").into());
        }
    }
    expect(found, 400, "InvalidSignatureException")
}

/// What used to be enough: the key id in `Credential=`, any signature.
fn the_access_key_id_alone_no_longer_authenticates(s: &mut Security) -> Verdict {
    s.listening()?;
    let mut headers = base_headers(s.addr(), "ListStateMachines");
    let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    headers.push(("x-amz-date".into(), date.clone()));
    headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={KEY}/{}/us-east-1/states/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={}",
            &date[..8],
            "0".repeat(64)
        ),
    ));
    expect(
        post(s.addr(), &headers, "{}"),
        400,
        "InvalidSignatureException",
    )
}

fn a_bearer_token_authenticates_and_a_wrong_one_does_not(s: &mut Security) -> Verdict {
    s.listening()?;
    let with = |token: &str| {
        let mut h = base_headers(s.addr(), "ListStateMachines");
        h.push(("authorization".into(), format!("Bearer {token}")));
        h
    };
    let (status, v) = post(s.addr(), &with(bearer()), "{}")?;
    if status != 200 || v["stateMachines"][0]["name"] != json!("hello") {
        return Err(format!("the bearer token was refused: {status} {v}").into());
    }
    // The SigV4 key id is not a bearer token (it was the one shared secret once).
    expect(
        post(s.addr(), &with(KEY), "{}"),
        400,
        "UnrecognizedClientException",
    )
}

fn a_request_body_over_max_request_bytes_is_refused(s: &mut Security) -> Verdict {
    s.listening()?;
    let mut headers = base_headers(s.addr(), "StartSyncExecution");
    headers.push(("authorization".into(), format!("Bearer {}", bearer())));
    let input = json!({"who": "x".repeat(70_000)}).to_string();
    let body = json!({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:hello", "input": input}).to_string();
    expect(post(s.addr(), &headers, &body), 413, "ValidationException")
}

/// Slowloris: 2000 connections that send nothing or half a request head, more than the
/// daemon's 1024 descriptors; a request made after them is still answered, correctly.
/// (Correctness only, with generous timeouts: nothing here measures how fast.)
fn idle_connections_do_not_starve_a_normal_request(s: &mut Security) -> Verdict {
    s.listening()?;
    let mut idle = Vec::new();
    for i in 0..2000 {
        let Ok(mut c) = TcpStream::connect_timeout(&s.addr(), Duration::from_secs(5)) else {
            break;
        };
        if i % 2 == 0 {
            let _ = c.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        }
        idle.push(c);
    }
    if idle.len() < 1100 {
        return Err(format!("only {} idle connections opened", idle.len()).into());
    }
    let mut headers = base_headers(s.addr(), "ListStateMachines");
    headers.push(("authorization".into(), format!("Bearer {}", bearer())));
    let answer = post(s.addr(), &headers, "{}");
    drop(idle);
    match answer {
        Ok((200, v)) if v["stateMachines"][0]["name"] == json!("hello") => Ok(()),
        other => Err(format!("{other:?}; daemon log: {}", s.log()).into()),
    }
}

/// `expressway validate --config` on `[api]` lines `api`: its exit status and what it printed.
fn validate_api_config(api: &str) -> Result<(bool, String), String> {
    let dir = std::env::temp_dir().join(format!(
        "expressway-security-config-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    let config = dir.join("config.toml");
    std::fs::write(&config, format!("[metrics]\nlisten = \"\"\n\n[api]\n{api}"))
        .map_err(|e| format!("config: {e}"))?;
    let out = Command::new(bin())
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .map_err(|e| format!("validate does not run: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// A short shared secret was accepted (the retired `auth` took 1 character); a SigV4 secret
/// or bearer token under 16 characters is now a config error, and the daemon does not start.
fn a_secret_shorter_than_16_characters_is_refused_at_load(_: &mut Security) -> Verdict {
    let legacy = std::env::var_os("EXPRESSWAY_SECURITY_LEGACY_BIN").is_some();
    for (key, api) in [
        (
            "secret_access_key",
            if legacy {
                "auth = \"short\"\n".to_string()
            } else {
                format!("access_key_id = \"{KEY}\"\nsecret_access_key = \"short\"\n")
            },
        ),
        ("bearer_token", "bearer_token = \"short\"\n".to_string()),
    ] {
        let (ok, printed) = validate_api_config(&api)?;
        if ok || !printed.contains("must be 16 to 256 characters") {
            return Err(format!("{key} = \"short\": exit ok={ok}: {printed}").into());
        }
    }
    Ok(())
}

/// An API on every interface with no credential would serve anyone who can reach the host.
fn a_non_loopback_listen_without_credentials_is_refused_at_load(_: &mut Security) -> Verdict {
    let (ok, printed) = validate_api_config("listen = \"0.0.0.0:8083\"\n")?;
    verdict(!ok && printed.contains("is not a loopback address"), || {
        format!("exit ok={ok}: {printed}")
    })?;
    // With a credential it may listen there.
    let (ok, printed) = validate_api_config(&format!(
        "listen = \"0.0.0.0:8083\"\nbearer_token = \"{BEARER}\"\n"
    ))?;
    if std::env::var_os("EXPRESSWAY_SECURITY_LEGACY_BIN").is_none() {
        verdict(ok, || format!("refused with a bearer token: {printed}"))?;
    }
    Ok(())
}

/// `expressway exec` of `definition`: its result line as JSON.
fn exec(definition: &Value) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "expressway-security-exec-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let def = dir.join("def.json");
    let input = dir.join("input.json");
    std::fs::write(&def, definition.to_string()).expect("definition");
    std::fs::write(&input, "{}").expect("input");
    let out = Command::new(bin())
        .arg("exec")
        .arg("--definition")
        .arg(&def)
        .arg("--input")
        .arg(&input)
        .output()
        .expect("exec runs");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({"no_json": String::from_utf8_lossy(&out.stderr)}))
}

/// One `http:invoke` Task calling `url`, naming a connection that is not configured.
fn http_invoke(url: &str) -> Value {
    json!({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {"ApiEndpoint": url, "Method": "GET",
                       "Authentication": {"ConnectionArn": "arn:aws:events:us-east-1:123456789012:connection/none/1"}},
        "End": true}}})
}

/// SSRF: a Task could call a loopback service (here one holding a "secret") and its answer
/// became the execution's output. Without a configured connection it now calls nothing.
fn http_invoke_to_loopback_without_a_configured_connection_returns_nothing(
    _: &mut Security,
) -> Verdict {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = c.read(&mut buf);
            let body = r#"{"secret": "loopback-only"}"#;
            let _ = c.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let result = exec(&http_invoke(&format!("http://127.0.0.1:{port}/admin")));
    let calls = calls.load(std::sync::atomic::Ordering::SeqCst);
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.Runtime")
            && !result.to_string().contains("loopback-only")
            && calls == 0,
        || format!("{result} after {calls} calls"),
    )
}

/// The cloud metadata endpoint (169.254.169.254) likewise: refused before any connection.
fn http_invoke_to_the_metadata_endpoint_without_a_configured_connection_fails(
    _: &mut Security,
) -> Verdict {
    let result = exec(&http_invoke("http://169.254.169.254/latest/meta-data/"));
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.Runtime")
            && result["cause"]
                .as_str()
                .is_some_and(|c| c.contains("connection"))
            && result.get("output").is_none_or(Value::is_null),
        || result.to_string(),
    )
}
