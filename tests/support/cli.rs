//! The command line, as users and the conformance runner call it: the `expressway` binary run
//! from the checkout's root.

use crate::harness::{group, verdict, Group, Verdict};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn group() -> Group<Cli> {
    group!(
        "cli",
        || Ok(Cli::new()),
        [
            validate_reports_every_problem_as_file_pointer_code_and_exits_1,
            validate_accepts_valid_asl_it_cannot_run_yet_saying_unsupported,
            validate_accepts_a_valid_definition_with_one_ok_line,
            exec_prints_one_json_line_with_the_outcome,
            exec_rejects_an_input_that_is_not_json_with_exit_2,
            exec_refuses_a_task_resource_no_integration_serves_naming_where_it_is,
            validate_config_refuses_a_task_resource_the_deployment_does_not_serve,
            every_shipped_config_validates_as_the_daemon_would_load_it,
            validate_checks_the_json_files_of_a_directory_and_goes_on_past_it,
            validate_reports_duplicate_state_names_and_fields,
            validate_into_a_closed_pipe_exits_quietly_without_a_panic,
            validate_config_names_the_tasks_an_exactly_once_source_does_not_cover,
        ]
    )
}

/// The binary, and a temporary directory for the files the checks write (removed on drop).
pub struct Cli {
    root: &'static Path,
    temp: PathBuf,
}

impl Cli {
    fn new() -> Self {
        let temp = std::env::temp_dir().join(format!("expressway-cli-{}", std::process::id()));
        std::fs::create_dir_all(&temp).expect("temp dir");
        Cli {
            root: Path::new(env!("CARGO_MANIFEST_DIR")),
            temp,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_expressway"))
            .args(args)
            .current_dir(self.root)
            .output()
            .expect("the expressway binary runs")
    }

    /// Writes `text` to a temporary file; its path.
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.temp.join(name);
        std::fs::write(&path, text).expect("temp file");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn validate_reports_every_problem_as_file_pointer_code_and_exits_1(cli: &mut Cli) -> Verdict {
    let bad = cli.write(
        "bad.json",
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Succeed"}}}"#,
    );
    let out = cli.run(&["validate", &bad]);
    let text = stdout(&out);
    let wanted = [
        format!("{bad}:/States/A/Next: UNKNOWN_STATE"),
        format!("{bad}:/States/B: UNREACHABLE_STATE"),
    ];
    verdict(
        out.status.code() == Some(1)
            && wanted
                .iter()
                .all(|w| text.lines().any(|l| l.starts_with(w.as_str()))),
        || format!("exit {:?}, stdout {text:?}", out.status.code()),
    )
}

fn validate_accepts_valid_asl_it_cannot_run_yet_saying_unsupported(cli: &mut Cli) -> Verdict {
    let item_reader = cli.write(
        "item-reader.json",
        r#"{"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"},
                           "ReaderConfig": {"InputType": "MANIFEST"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}}"#,
    );
    let out = cli.run(&["validate", &item_reader]);
    let text = stdout(&out);
    verdict(
        out.status.success() && text.contains(": UNSUPPORTED "),
        || format!("exit {:?}, stdout {text:?}", out.status.code()),
    )
}

fn validate_accepts_a_valid_definition_with_one_ok_line(cli: &mut Cli) -> Verdict {
    let out = cli.run(&["validate", "config/state-machines/sensor-alert.asl.json"]);
    let ok_line = b"config/state-machines/sensor-alert.asl.json: ok\n";
    verdict(out.status.success() && out.stdout == ok_line, || {
        format!("exit {:?}, stdout {:?}", out.status.code(), stdout(&out))
    })
}

fn exec_prints_one_json_line_with_the_outcome(cli: &mut Cli) -> Verdict {
    let out = cli.run(&[
        "exec",
        "--definition",
        "config/state-machines/sensor-alert.asl.json",
        "--input",
        "config/state-machines/sensor-alert.input.json",
        "--mock-config",
        "config/state-machines/sensor-alert.mocks.json",
        "--test-case",
        "SnsDown",
    ]);
    let line: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    verdict(
        out.status.success()
            && line["status"] == "SUCCEEDED"
            && line["output"]["alertError"]["Error"] == "SNS.InternalErrorException",
        || format!("exit {:?}, stdout {line}", out.status.code()),
    )
}

fn exec_rejects_an_input_that_is_not_json_with_exit_2(cli: &mut Cli) -> Verdict {
    let out = cli.run(&[
        "exec",
        "--definition",
        "config/state-machines/sensor-alert.asl.json",
        "--input",
        "Cargo.toml",
        "--mock-config",
        "config/state-machines/sensor-alert.mocks.json",
        "--test-case",
        "HappyPath",
    ]);
    verdict(
        out.status.code() == Some(2) && stderr(&out).contains("not JSON"),
        || format!("exit {:?}, stderr {:?}", out.status.code(), stderr(&out)),
    )
}

/// A definition whose Task calls a service no integration serves (ECS).
fn unserved_definition(cli: &Cli) -> String {
    cli.write(
        "unserved.asl.json",
        r#"{"StartAt": "Check", "States": {"Check": {"Type": "Pass", "Next": "Run"},
            "Run": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask", "End": true}}}"#,
    )
}

fn exec_refuses_a_task_resource_no_integration_serves_naming_where_it_is(cli: &mut Cli) -> Verdict {
    let definition = unserved_definition(cli);
    let input = cli.write("unserved.input.json", "{}");
    let out = cli.run(&["exec", "--definition", &definition, "--input", &input]);
    verdict(
        out.status.code() == Some(2)
            && stderr(&out).contains("/States/Run/Resource: UNKNOWN_RESOURCE"),
        || format!("exit {:?}, stderr {:?}", out.status.code(), stderr(&out)),
    )
}

fn validate_config_refuses_a_task_resource_the_deployment_does_not_serve(cli: &mut Cli) -> Verdict {
    let config = cli.write(
        "unserved.toml",
        &format!(
            r#"
[kafka]
brokers = "embedded"
[[state_machines]]
name = "alerts"
definition = "{}"
[[sources]]
name = "in"
type = "kafka"
topics = ["in"]
state_machine = "alerts"
"#,
            unserved_definition(cli)
        ),
    );
    let out = cli.run(&["validate", "--config", &config]);
    let text = stdout(&out);
    verdict(
        out.status.code() == Some(1) && text.contains("/States/Run/Resource: UNKNOWN_RESOURCE"),
        || format!("exit {:?}, stdout {text:?}", out.status.code()),
    )
}

/// `delivery = "exactly_once"` covers records and offsets, not a Task's call to another
/// service: `validate --config` says so for each Task, with its pointer (a notice: exit 0).
fn validate_config_names_the_tasks_an_exactly_once_source_does_not_cover(cli: &mut Cli) -> Verdict {
    let definition = cli.write(
        "tasks.asl.json",
        r#"{"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "Call", "States": {"Call": {"Type": "Task", "End": true,
             "Resource": "arn:aws:states:::http:invoke",
             "Parameters": {"ApiEndpoint": "http://127.0.0.1:1/", "Method": "GET"}}}}]}}}"#,
    );
    let config = cli.write(
        "exactly-once.toml",
        &format!(
            r#"
[kafka]
brokers = "embedded"
[[state_machines]]
name = "calls"
definition = "{definition}"
[[sources]]
name = "in"
type = "kafka"
topics = ["in"]
state_machine = "calls"
results_topic = "out"
delivery = "exactly_once"
"#
        ),
    );
    let out = cli.run(&["validate", "--config", &config]);
    let text = stdout(&out);
    verdict(
        out.status.success()
            && text.contains("/States/P/Branches/0/States/Call: notice: source in is exactly_once, but this Task's call to arn:aws:states:::http:invoke is outside its Kafka transaction"),
        || format!("exit {:?}, stdout {text:?}", out.status.code()),
    )
}

/// Regression: config/api.toml named a state machine calling SNS, which `run` refuses.
fn every_shipped_config_validates_as_the_daemon_would_load_it(cli: &mut Cli) -> Verdict {
    let mut shipped: Vec<PathBuf> = std::fs::read_dir(cli.root.join("config"))
        .expect("config/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    shipped.push(cli.root.join("loadtest/lambda/daemon.toml"));
    let refused: Vec<String> = shipped
        .iter()
        .filter_map(|config| {
            let out = cli.run(&["validate", "--config", &config.to_string_lossy()]);
            (!out.status.success()).then(|| format!("{}: {}", config.display(), stdout(&out)))
        })
        .collect();
    verdict(refused.is_empty(), || refused.join("\n"))
}

/// Regression: `validate a.json DIR b.json` stopped at DIR with "cannot read". A directory
/// stands for its `.json` files; an unreadable argument is said on stderr, the rest checked,
/// and the exit code is then 2.
fn validate_checks_the_json_files_of_a_directory_and_goes_on_past_it(cli: &mut Cli) -> Verdict {
    let dir = cli.temp.join("defs");
    std::fs::create_dir_all(dir.join("nested")).expect("temp dir");
    let good = r#"{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}"#;
    let bad = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}"#;
    std::fs::write(dir.join("one.json"), good).expect("temp file");
    std::fs::write(dir.join("nested/two.json"), bad).expect("temp file");
    std::fs::write(dir.join("notes.txt"), "not a definition").expect("temp file");
    let a = cli.write("a.json", good);
    let b = cli.write("b.json", good);
    let d = dir.to_string_lossy().into_owned();
    let out = cli.run(&["validate", &a, &d, &b]);
    let text = stdout(&out);
    let wanted = [
        format!("{a}: ok"),
        format!("{d}/nested/two.json:/States/A/Next: UNKNOWN_STATE"),
        format!("{d}/one.json: ok"),
        format!("{b}: ok"),
    ];
    let lines: Vec<&str> = text.lines().collect();
    let in_order = wanted.len() == lines.len()
        && wanted
            .iter()
            .zip(&lines)
            .all(|(w, l)| l.starts_with(w.as_str()));
    let missing = cli.temp.join("missing.json").to_string_lossy().into_owned();
    let out2 = cli.run(&["validate", &missing, &b]);
    verdict(
        out.status.code() == Some(1)
            && in_order
            && out2.status.code() == Some(2)
            && stdout(&out2) == format!("{b}: ok\n")
            && stderr(&out2).contains("cannot read"),
        || {
            format!(
                "exit {:?}, stdout {text:?}; missing file: exit {:?}, stdout {:?}, stderr {:?}",
                out.status.code(),
                out2.status.code(),
                stdout(&out2),
                stderr(&out2)
            )
        },
    )
}

/// Regression: two states with one name were merged silently (the last won), and so was
/// any field given twice.
fn validate_reports_duplicate_state_names_and_fields(cli: &mut Cli) -> Verdict {
    let dup = cli.write(
        "dup.json",
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true},
            "A": {"Type": "Succeed", "Comment": "x", "Comment": "y"}}}"#,
    );
    let out = cli.run(&["validate", &dup]);
    let text = stdout(&out);
    verdict(
        out.status.code() == Some(1)
            && text.contains(&format!("{dup}:/States/A: DUPLICATE_STATE_NAME "))
            && text.contains(&format!("{dup}:/States/A/Comment: DUPLICATE_FIELD ")),
        || format!("exit {:?}, stdout {text:?}", out.status.code()),
    )
}

/// Regression: `expressway validate --config … | head -1` panicked ("failed printing to
/// stdout") when the reader had gone. Like ripgrep, it now stops quietly with exit 0.
fn validate_into_a_closed_pipe_exits_quietly_without_a_panic(cli: &mut Cli) -> Verdict {
    let mut failures = Vec::new();
    for args in [
        vec!["validate", "--config", "config/demo.toml"],
        vec!["validate", "tests/validate"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_expressway"))
            .args(&args)
            .current_dir(cli.root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the expressway binary runs");
        // The reader is gone before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("it ends");
        if out.status.code() != Some(0) || !out.stderr.is_empty() {
            failures.push(format!(
                "{args:?}: exit {:?}, stderr {:?}",
                out.status.code(),
                stderr(&out)
            ));
        }
    }
    verdict(failures.is_empty(), || failures.join("\n"))
}
