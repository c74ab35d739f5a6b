//! The README's commands, run as written: every command in the shell code blocks of its
//! "Run it" section ("Commands" included), read from README.md itself so that the two cannot
//! drift. `expressway` is the binary under test, put first on `PATH` (what `cargo install
//! --path .` does for a user); `cargo run --release -- ARGS` is the same as `expressway ARGS`.
//! A command runs from the repository root and must exit 0; the daemon (`expressway run`)
//! must still be running after a few seconds and exit 0 on SIGTERM.

use crate::harness::{group, verdict, Group, Verdict};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon runs before SIGTERM, and how long each command may take to finish.
const DAEMON_RUNS_FOR: Duration = Duration::from_secs(4);
const TIMEOUT: Duration = Duration::from_secs(60);

pub fn group() -> Group<()> {
    group!(
        "readme",
        || Ok(()),
        [every_command_of_run_it_runs_as_written]
    )
}

fn every_command_of_run_it_runs_as_written(_: &mut ()) -> Verdict {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let commands = commands_of_section(&readme, "## Run it");
    let mut failures = Vec::new();
    for command in &commands {
        let outcome = run(command, root);
        println!(
            "readme: `{command}` ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if let Err(e) = outcome {
            failures.push(format!("`{command}`: {e}"));
        }
    }
    // The section's known commands, so that an extraction that finds nothing cannot pass.
    let expected = [
        "cargo install --path .",
        "expressway run --config config/demo.toml",
        "expressway validate --config config/demo.toml",
    ];
    for want in expected {
        if !commands.iter().any(|c| c == want) {
            failures.push(format!(
                "`{want}` not found in README.md's \"Run it\" section"
            ));
        }
    }
    verdict(failures.is_empty(), || failures.join("\n    "))
}

/// The commands of the shell code blocks (fenced, no language or `sh`) from `heading` to
/// the next heading of the same level; a line ending in `\` continues on the next.
fn commands_of_section(markdown: &str, heading: &str) -> Vec<String> {
    let level = heading.split(' ').next().unwrap_or("##");
    let mut lines = markdown
        .lines()
        .skip_while(|l| l.trim_end() != heading)
        .skip(1)
        .take_while(|l| !(l.starts_with(level) && l[level.len()..].starts_with(' ')));
    let mut commands = Vec::new();
    while let Some(line) = lines.next() {
        let Some(language) = line.strip_prefix("```") else {
            continue;
        };
        let shell = matches!(language.trim(), "" | "sh" | "bash");
        let mut command = String::new();
        for line in lines.by_ref().take_while(|l| !l.starts_with("```")) {
            if !shell {
                continue;
            }
            match line.trim().strip_suffix('\\') {
                Some(part) => command.push_str(part),
                None => {
                    command.push_str(line.trim());
                    commands.push(std::mem::take(&mut command));
                }
            }
        }
    }
    commands.retain(|c| !c.is_empty());
    commands
}

fn run(command: &str, root: &Path) -> Result<(), String> {
    let command = match command.strip_prefix("cargo run --release -- ") {
        Some(args) => format!("expressway {args}"),
        None => command.to_string(),
    };
    if command == "cargo install --path ." {
        // What it does (the built binary on PATH) is what `shell` does for every command.
        return Ok(());
    }
    if !command.starts_with("expressway ") {
        return Err("not an expressway command: teach tests/support/readme.rs to run it".into());
    }
    let out_dir = std::env::temp_dir().join(format!("expressway-readme-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let (stdout, stderr) = (out_dir.join("stdout"), out_dir.join("stderr"));
    let mut child = shell(&command, root)
        .stdout(std::fs::File::create(&stdout).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&stderr).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("does not start: {e}"))?;
    let daemon = command.starts_with("expressway run ");
    if daemon {
        let started = Instant::now();
        while started.elapsed() < DAEMON_RUNS_FOR {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the daemon exited by itself ({status}){}",
                    tail(&stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // `exec` in `shell` makes the child the daemon itself, so the signal reaches it.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {TIMEOUT:?}{}", tail(&stderr)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let result = if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{status}{}",
            if daemon { "after SIGTERM: " } else { "" },
            tail(&stderr)
        ))
    };
    let _ = std::fs::remove_dir_all(&out_dir);
    result
}

/// `bash -c 'exec COMMAND'` from the repository root, with the binary under test first on
/// `PATH`: the command as a user types it, globs and quoting included.
fn shell(command: &str, root: &Path) -> Command {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_expressway"))
        .parent()
        .expect("the binary's directory");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    let mut shell = Command::new("bash");
    shell
        .arg("-c")
        .arg(format!("exec {command}"))
        .current_dir(root)
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .stdin(Stdio::null());
    shell
}

/// The end of a command's stderr, for a failure message.
fn tail(stderr: &Path) -> String {
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    format!(", stderr:\n      {}", lines[start..].join("\n      "))
}
