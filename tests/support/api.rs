//! The AWS-compatible API against the real clients: the `expressway` binary runs an API-only
//! config (no Kafka) on a free port, and `support/api_clients.py` drives it with aws-cli and
//! boto3 from a Python venv cached in `target/api-venv` (made with `python3 -m venv` and
//! `pip install awscli boto3` on the first run). One check per line the script prints.
//! Skipped, saying why, when the venv cannot be made (no python3 venv module, no network).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Check = (&'static str, Result<(), String>);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn target_dir() -> PathBuf {
    option_env!("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The python of a venv in `target/<name>` holding `packages`, made on first use (and
/// reused while `imports` import and `scripts` are in its `bin/`); `Err` says why it cannot be.
pub fn python_venv(
    name: &str,
    packages: &[&str],
    imports: &str,
    scripts: &[&str],
) -> Result<PathBuf, String> {
    let dir = target_dir().join(name);
    let python = dir.join("bin/python");
    let ready = |python: &Path| {
        python.exists()
            && scripts.iter().all(|s| dir.join("bin").join(s).exists())
            && Command::new(python)
                .args(["-c", &format!("import {imports}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    if ready(&python) {
        return Ok(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .map_err(|e| format!("python3 -m venv: {e}"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet"])
        .args(packages)
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install {} failed: {}",
            packages.join(" "),
            String::from_utf8_lossy(&pip.stderr).trim()
        ));
    }
    if ready(&python) {
        Ok(python)
    } else {
        Err(format!(
            "the venv lacks {imports} or {scripts:?} after pip install {}",
            packages.join(" ")
        ))
    }
}

pub fn checks() -> Vec<Check> {
    let python = match python_venv(
        "api-venv",
        &["awscli", "boto3"],
        "boto3, botocore",
        &["aws"],
    ) {
        Ok(p) => p,
        Err(why) => {
            println!("api: skipped ({why})");
            return Vec::new();
        }
    };
    let mut out: Vec<Check> = Vec::new();
    let dir = std::env::temp_dir().join(format!("expressway-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("hello.asl.json"),
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.who)"}, "End": true}}}"#,
    )
    .expect("definition");
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
auth = "AKIDEXPRESSWAY"

[integrations]
allow_callbacks = true
"#
        ),
    )
    .expect("config");
    let log = dir.join("daemon.log");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_expressway"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("the daemon starts");
    let started = Instant::now();
    let mut up = false;
    while started.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            out.push((
                "api: the daemon runs with [api] and no Kafka",
                Err(format!(
                    "exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )),
            ));
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    out.push((
        "api: the daemon runs with [api] and no Kafka",
        if up {
            Ok(())
        } else {
            Err("nothing listens on the API port after 20 s".into())
        },
    ));
    if up {
        let mut script = Command::new(&python);
        script
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/api_clients.py"))
            .arg(format!("http://127.0.0.1:{port}"))
            .arg(python.with_file_name("aws"));
        match script.output() {
            Ok(result) => {
                let stdout = String::from_utf8_lossy(&result.stdout);
                let mut any = false;
                for line in stdout.lines() {
                    let (verdict, rest) = line.split_once(' ').unwrap_or((line, ""));
                    let (name, detail) = rest.split_once(": ").unwrap_or((rest, ""));
                    let name: &'static str = Box::leak(format!("api: {name}").into_boxed_str());
                    match verdict {
                        "ok" => out.push((name, Ok(()))),
                        "FAIL" => out.push((name, Err(detail.to_string()))),
                        "skip" => println!("{name} ... skipped ({detail})"),
                        _ => continue,
                    }
                    any = true;
                }
                if !any || !result.status.success() && !stdout.contains("FAIL ") {
                    out.push((
                        "api: the client script runs",
                        Err(format!(
                            "exit {:?}: {}",
                            result.status.code(),
                            String::from_utf8_lossy(&result.stderr)
                        )),
                    ));
                }
            }
            Err(e) => out.push(("api: the client script runs", Err(e.to_string()))),
        }
    }
    // SIGTERM: the API-only daemon stops cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match daemon.try_wait() {
            Ok(Some(status)) => break Some(status),
            _ if Instant::now() > deadline => break None,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(&log) {
        let _ = f.read_to_string(&mut text);
    }
    out.push((
        "api: SIGTERM stops the API-only daemon with exit 0",
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("exited with {s}: {text}")),
            None => {
                let _ = daemon.kill();
                Err(format!("still running 10 s after SIGTERM: {text}"))
            }
        },
    ));
    let _ = std::fs::remove_dir_all(&dir);
    out
}
