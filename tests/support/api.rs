//! The AWS-compatible API against the real clients: the `expressway` binary runs an API-only
//! config (no Kafka) on a free port, and `support/api_clients.py` drives it with aws-cli and
//! boto3 from a Python venv cached in `target/api-venv` (made with `python3 -m venv` and
//! `pip install awscli boto3` on the first run). Each `@check` function of the script is a
//! check here, run by itself against the one daemon. Skipped, saying why, when the venv cannot
//! be made (no python3 venv module, no network).

use crate::daemon::{free_port, Daemon};
use crate::harness::{Group, Problem, Verdict};
use crate::python::python_venv;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn group() -> Group<Api> {
    let group = Group::new("api", Api::start)
        .check("daemon_runs_with_api_and_no_kafka", |api: &mut Api| {
            api.listening()
        });
    script_checks()
        .into_iter()
        .fold(group, |group, name| {
            let check = name.clone();
            group.check(name, move |api: &mut Api| api.run_script_check(&check))
        })
        .check(
            "sigterm_stops_the_api_only_daemon_with_exit_0",
            sigterm_stops_the_api_only_daemon_with_exit_0,
        )
        .skipped_by("EXPRESSWAY_SKIP_API")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/api_clients.py")
}

/// The names of the script's checks: each `def` right under a `@check` line.
fn script_checks() -> Vec<String> {
    let text = std::fs::read_to_string(script()).expect("api_clients.py");
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == "@check")
        .filter_map(|pair| pair[1].strip_prefix("def ")?.split('(').next())
        .map(String::from)
        .collect()
}

/// The python of the venv with aws-cli and boto3 that the client scripts
/// (`api_clients.py`, `security_clients.py`, both on `aws_clients.py`) run in.
pub fn aws_clients_venv() -> Result<PathBuf, Problem> {
    python_venv(
        "api-venv",
        &["awscli", "boto3"],
        "boto3, botocore",
        &["aws"],
    )
    .map_err(Problem::Skipped)
}

/// A fresh `expressway-{what}-{pid}` temp dir holding `hello.asl.json`: the state machine
/// `hello` the client scripts call (`{"who": x}` → `{"greeting": "hello x"}`).
pub fn dir_with_hello(what: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("expressway-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    std::fs::write(
        dir.join("hello.asl.json"),
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.who)"}, "End": true}}}"#,
    )
    .map_err(|e| format!("definition: {e}"))?;
    Ok(dir)
}

/// The venv's python, and the API-only daemon on `port`.
pub struct Api {
    python: PathBuf,
    port: u16,
    dir: PathBuf,
    daemon: Option<Daemon>,
    /// Whether the daemon came to listen on `port`, once known.
    up: Option<Result<(), String>>,
}

impl Api {
    fn start() -> Result<Self, Problem> {
        let python = aws_clients_venv()?;
        let dir = dir_with_hello("api")?;
        let port = free_port();
        let config = dir.join("api.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[state_machines]]
name = "hello"
definition = "hello.asl.json"

[metrics]
listen = ""

[api]
listen = "127.0.0.1:{port}"
access_key_id = "AKIDEXPRESSWAY"
secret_access_key = "expressway-api-test-secret"

[integrations]
allow_callbacks = true

[history]
sample_rate = 1.0
include_data = true
"#
            ),
        )
        .map_err(|e| format!("config: {e}"))?;
        Ok(Api {
            daemon: Some(Daemon::start(&config)),
            python,
            port,
            dir,
            up: None,
        })
    }

    /// Waits (once) until the daemon listens on its port.
    fn listening(&mut self) -> Verdict {
        if self.up.is_none() {
            self.up = Some(self.wait_until_listening());
        }
        Ok(self.up.clone().expect("just set")?)
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let daemon = self.daemon.as_mut().ok_or("the daemon was stopped")?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = daemon.exited() {
                return Err(format!("exited with {status}: {}", daemon.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("nothing listens on the API port after 20 s".into())
    }

    /// Runs the script's check `name` alone; its verdict line.
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
            let (verdict, rest) = line.split_once(' ').unwrap_or((line, ""));
            let (check, detail) = rest.split_once(": ").unwrap_or((rest, ""));
            if check != name {
                continue;
            }
            match verdict {
                "ok" => return Ok(()),
                "FAIL" => return Err(detail.to_string().into()),
                "skip" => return Err(Problem::Skipped(detail.to_string())),
                _ => {}
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

impl Drop for Api {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Last: it stops the daemon the other checks use.
fn sigterm_stops_the_api_only_daemon_with_exit_0(api: &mut Api) -> Verdict {
    // Listening first: a signal before the daemon installs its handler would kill it outright.
    let _ = api.listening();
    let mut daemon = api.daemon.take().ok_or("the daemon was already stopped")?;
    let _ = daemon.sigterm();
    match daemon.exit_within(Duration::from_secs(10)) {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("exited with {s}: {}", daemon.log()).into()),
        // Dropping it kills it.
        None => Err(format!("still running 10 s after SIGTERM: {}", daemon.log()).into()),
    }
}
