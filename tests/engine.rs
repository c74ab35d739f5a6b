//! Data-driven engine tests: every `tests/cases/**/*.json` file is one execution.
//!
//! A case holds a `definition`, an `input`, optionally a `mock_config` (Step Functions
//! Local's MockConfigFile format) with the `test_case` to use, and `hang` (Task states whose
//! calls never answer, to exercise timeouts). `expected` gives the outcome as `expressway
//! exec` prints it (`status` plus `output`, or `error`/`cause`), and optionally
//! `elapsed_ms` (virtual time from start to end: Waits, backoffs and timeouts run on a fake
//! clock), `transitions`, and `events` (the history event types, in order).
//!
//! One binary for all integration tests keeps link time down (see ARCHITECTURE.md).

use expressway::asl::{compile, ExecutionOptions, Outcome};
use expressway::mock::MockConfig;
use expressway::resource::{TaskCall, TaskReply, TaskResource};
use expressway::runner::{run_to_completion, Clock, NoResources};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[path = "support/integrations.rs"]
mod integrations;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/readme.rs"]
mod readme;

#[path = "support/api.rs"]
mod api;
#[path = "support/sqs.rs"]
mod sqs;

const START_MS: i64 = 1_700_000_000_000;

/// Wraps a resource so that calls from the named states never answer.
struct Hanging<R> {
    inner: R,
    states: Vec<String>,
    parked: Mutex<Vec<TaskReply>>,
}

impl<R: TaskResource> TaskResource for Hanging<R> {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        if self.states.iter().any(|s| **s == *call.state_name) {
            self.parked.lock().unwrap().push(reply);
        } else {
            self.inner.invoke(call, reply);
        }
    }
}

fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            case_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Succeeded(v) => json!({"status": "SUCCEEDED", "output": v}),
        Outcome::Failed(f) | Outcome::TimedOut(f) => {
            json!({"status": outcome.status(), "error": f.error, "cause": f.cause})
        }
    }
}

/// Runs one case; returns what differs from the expectation.
fn check(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let program = compile(&case["definition"]).map_err(|d| format!("does not compile: {d:?}"))?;
    let hang: Vec<String> = case["hang"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let inner: Box<dyn TaskResource> = match case.get("mock_config") {
        Some(config) => {
            let config = MockConfig::from_json(&config.to_string()).map_err(|e| e.to_string())?;
            let test_case = case["test_case"]
                .as_str()
                .ok_or("mock_config needs test_case")?;
            Box::new(
                config
                    .test_case(case["state_machine"].as_str(), test_case)
                    .map_err(|e| e.to_string())?,
            )
        }
        None => Box::new(NoResources),
    };
    let resources = Hanging {
        inner,
        states: hang,
        parked: Mutex::new(Vec::new()),
    };
    let opts = ExecutionOptions {
        record_history: true,
        ..ExecutionOptions::default()
    };
    let mut clock = Clock::Virtual { now: START_MS };
    let exec = run_to_completion(
        Arc::new(program),
        case["input"].clone(),
        opts,
        &resources,
        &mut clock,
    );
    let expected = &case["expected"];
    let mut problems = Vec::new();
    let actual = outcome_json(exec.outcome().ok_or("no outcome")?);
    for key in ["status", "output", "error", "cause"] {
        if let Some(want) = expected.get(key) {
            if actual[key] != *want {
                problems.push(format!("{key}: expected {want}, got {}", actual[key]));
            }
        }
    }
    if let Some(want) = expected.get("elapsed_ms") {
        let got = clock.now() - START_MS;
        if want.as_i64() != Some(got) {
            problems.push(format!("elapsed_ms: expected {want}, got {got}"));
        }
    }
    if let Some(want) = expected.get("transitions") {
        if want.as_u64() != Some(exec.transitions()) {
            problems.push(format!(
                "transitions: expected {want}, got {}",
                exec.transitions()
            ));
        }
    }
    if let Some(want) = expected.get("events") {
        let got: Vec<&str> = exec.history().iter().map(|e| e.kind).collect();
        if *want != json!(got) {
            problems.push(format!("events: expected {want}, got {}", json!(got)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

/// Runs every definition of the conformance corpus (when `../shared` is there) on inputs it
/// was not written for; returns how many executions panicked. Any panic is a bug: bad input
/// must end as a failure with a cause.
fn corpus_definitions_survive_odd_inputs() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
    if !dir.is_dir() {
        println!("robustness: skipped, {} not found", dir.display());
        return 0;
    }
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({ "a": [deep] });
    }
    let odd_inputs = [
        json!(null),
        json!({}),
        json!([]),
        json!("text"),
        json!(-1.5),
        json!({"items": [1, "2", null, {"x": []}], "Values": {}, "waitSeconds": -3}),
        deep,
    ];
    let mut files = Vec::new();
    case_files(&dir, &mut files);
    let (mut runs, mut panics) = (0, 0);
    for file in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let Ok(program) = compile(&case["definition"]) else {
            continue;
        };
        let program = Arc::new(program);
        for input in odd_inputs.iter().chain([&case["input"]]) {
            runs += 1;
            let run = std::panic::catch_unwind(|| {
                let mut clock = Clock::Virtual { now: START_MS };
                let opts = ExecutionOptions::default();
                run_to_completion(
                    program.clone(),
                    input.clone(),
                    opts,
                    &NoResources,
                    &mut clock,
                )
                .outcome()
                .is_some()
            });
            if !matches!(run, Ok(true)) {
                panics += 1;
                println!("robustness: {} panicked on input {input}", file.display());
            }
        }
    }
    println!(
        "robustness: {runs} executions of corpus definitions on odd inputs, {panics} panicked"
    );
    panics
}

/// `benches/workflows/iot-enrich-jsonata.asl.json` must do what the JSONPath `iot-enrich`
/// does, or the benchmark compares different work: same outcome on every input variant.
fn jsonata_bench_matches_jsonpath() -> (&'static str, Result<(), String>) {
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workflows");
    let read = |path: PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let program = |definition: Value| Arc::new(compile(&definition).expect("compiles"));
    let jsonpath = program(read(workflows.join("iot-enrich.asl.json")));
    let jsonata = program(read(workflows.join("iot-enrich-jsonata.asl.json")));
    let run = |program: &Arc<expressway::asl::Program>, input: &Value| {
        let mut clock = Clock::Virtual { now: START_MS };
        let exec = run_to_completion(
            program.clone(),
            input.clone(),
            ExecutionOptions::default(),
            &NoResources,
            &mut clock,
        );
        (outcome_json(exec.outcome().unwrap()), exec.transitions())
    };
    let mut inputs = vec![read(workflows.join("iot-enrich.input.json"))];
    inputs.extend(
        read(workflows.join("iot-enrich.variants.json"))
            .as_array()
            .unwrap()
            .clone(),
    );
    let differences: Vec<String> = inputs
        .iter()
        .filter_map(|input| {
            let (want, got) = (run(&jsonpath, input), run(&jsonata, input));
            (!same_numbers_aside(&want.0, &got.0) || want.1 != got.1)
                .then(|| format!("input {input}: JSONPath {want:?}, JSONata {got:?}"))
        })
        .collect();
    (
        "bench: iot-enrich-jsonata does what iot-enrich does on every input variant",
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences.join("\n    "))
        },
    )
}

/// Equal JSON, where numbers compare by value: JSONata's numbers are doubles, so AWS (like
/// us) writes `1000.0` from JSONata as `1000`, while JSONPath keeps the input's `1000.0`.
fn same_numbers_aside(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_numbers_aside(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_numbers_aside(v, w)))
        }
        _ => a == b,
    }
}

/// The command line, as users and the conformance runner call it.
fn cli_checks() -> Vec<(&'static str, Result<(), String>)> {
    use std::process::Command;
    let bin = env!("CARGO_BIN_EXE_expressway");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .current_dir(root)
            .output()
            .expect("the expressway binary runs")
    };
    let mut checks = Vec::new();

    let bad = std::env::temp_dir().join(format!("expressway-cli-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Succeed"}}}"#,
    )
    .expect("temp file");
    let bad_path = bad.to_string_lossy().to_string();
    let out = run(&["validate", &bad_path]);
    let _ = std::fs::remove_file(&bad);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let wanted = [
        format!("{bad_path}:/States/A/Next: UNKNOWN_STATE"),
        format!("{bad_path}:/States/B: UNREACHABLE_STATE"),
    ];
    checks.push((
        "cli: validate reports every problem as FILE:/pointer: CODE and exits 1",
        if out.status.code() == Some(1)
            && wanted
                .iter()
                .all(|w| text.lines().any(|l| l.starts_with(w.as_str())))
        {
            Ok(())
        } else {
            Err(format!("exit {:?}, stdout {text:?}", out.status.code()))
        },
    ));

    let item_reader = std::env::temp_dir().join(format!(
        "expressway-cli-item-reader-{}.json",
        std::process::id()
    ));
    std::fs::write(
        &item_reader,
        r#"{"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}}"#,
    )
    .expect("temp file");
    let out = run(&["validate", &item_reader.to_string_lossy()]);
    let _ = std::fs::remove_file(&item_reader);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    checks.push((
        "cli: validate accepts valid ASL it cannot run yet, saying UNSUPPORTED",
        if out.status.success() && text.contains(": UNSUPPORTED ") {
            Ok(())
        } else {
            Err(format!("exit {:?}, stdout {text:?}", out.status.code()))
        },
    ));

    let out = run(&["validate", "config/state-machines/sensor-alert.asl.json"]);
    checks.push((
        "cli: validate accepts a valid definition with one ok line",
        if out.status.success()
            && out.stdout == b"config/state-machines/sensor-alert.asl.json: ok\n"
        {
            Ok(())
        } else {
            Err(format!(
                "exit {:?}, stdout {:?}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout)
            ))
        },
    ));

    let out = run(&[
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
    checks.push((
        "cli: exec prints one JSON line with the outcome",
        if out.status.success()
            && line["status"] == "SUCCEEDED"
            && line["output"]["alertError"]["Error"] == "SNS.InternalErrorException"
        {
            Ok(())
        } else {
            Err(format!("exit {:?}, stdout {line}", out.status.code()))
        },
    ));

    let out = run(&[
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
    checks.push((
        "cli: exec rejects an input that is not JSON with exit 2",
        if out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("not JSON")
        {
            Ok(())
        } else {
            Err(format!(
                "exit {:?}, stderr {:?}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ))
        },
    ));
    let out = run(&[
        "exec",
        "--definition",
        "config/state-machines/sensor-alert.asl.json",
        "--input",
        "config/state-machines/sensor-alert.input.json",
    ]);
    let config = std::env::temp_dir().join(format!(
        "expressway-cli-unserved-{}.toml",
        std::process::id()
    ));
    std::fs::write(
        &config,
        format!(
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
            root.join("config/state-machines/sensor-alert.asl.json")
                .display()
        ),
    )
    .expect("temp config");
    let validated = run(&["validate", "--config", &config.to_string_lossy()]);
    let _ = std::fs::remove_file(&config);
    let text = String::from_utf8_lossy(&validated.stdout).to_string();
    checks.push((
        "cli: validate --config refuses a Task resource the deployment does not serve",
        if validated.status.code() == Some(1)
            && text.contains("/States/Notify/Resource: UNKNOWN_RESOURCE")
        {
            Ok(())
        } else {
            Err(format!(
                "exit {:?}, stdout {text:?}",
                validated.status.code()
            ))
        },
    ));
    // Regression: config/api.toml named a state machine calling SNS, which `run` refuses.
    let mut shipped: Vec<PathBuf> = std::fs::read_dir(root.join("config"))
        .expect("config/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    shipped.push(root.join("loadtest/lambda/daemon.toml"));
    let refused: Vec<String> = shipped
        .iter()
        .filter_map(|config| {
            let out = run(&["validate", "--config", &config.to_string_lossy()]);
            (!out.status.success()).then(|| {
                format!(
                    "{}: {}",
                    config.display(),
                    String::from_utf8_lossy(&out.stdout)
                )
            })
        })
        .collect();
    checks.push((
        "cli: every shipped config validates as the daemon would load it",
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused.join("\n"))
        },
    ));
    checks.push((
        "cli: exec refuses a Task resource no integration serves, naming where it is",
        if out.status.code() == Some(2)
            && String::from_utf8_lossy(&out.stderr)
                .contains("/States/Notify/Resource: UNKNOWN_RESOURCE")
        {
            Ok(())
        } else {
            Err(format!(
                "exit {:?}, stderr {:?}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ))
        },
    ));
    checks
}

fn main() {
    let panics = corpus_definitions_survive_odd_inputs();
    let mut files = Vec::new();
    case_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases"),
        &mut files,
    );
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut failed = 0;
    let mut passed = 0;
    for file in &files {
        let name = file.display().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        match check(file) {
            Ok(()) => {
                passed += 1;
                println!("case {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("case {name} ... FAILED\n    {e}");
            }
        }
    }
    let kafka_checks = if std::env::var_os("EXPRESSWAY_SKIP_KAFKA").is_some() {
        println!("kafka: skipped (EXPRESSWAY_SKIP_KAFKA is set)");
        Vec::new()
    } else {
        kafka::checks()
    };
    let api_checks = if std::env::var_os("EXPRESSWAY_SKIP_API").is_some() {
        println!("api: skipped (EXPRESSWAY_SKIP_API is set)");
        Vec::new()
    } else {
        api::checks()
    };
    let sqs_checks = if std::env::var_os("EXPRESSWAY_SKIP_SQS").is_some() {
        println!("sqs: skipped (EXPRESSWAY_SKIP_SQS is set)");
        Vec::new()
    } else {
        sqs::checks()
    };
    for (name, result) in cli_checks()
        .into_iter()
        .chain(readme::checks())
        .chain([jsonata_bench_matches_jsonpath()])
        .chain(integrations::checks())
        .chain(kafka_checks)
        .chain(api_checks)
        .chain(sqs_checks)
    {
        match result {
            Ok(()) => {
                passed += 1;
                println!("{name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("{name} ... FAILED\n    {e}");
            }
        }
    }
    println!();
    println!("engine cases: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 || panics > 0 {
        std::process::exit(1);
    }
}
