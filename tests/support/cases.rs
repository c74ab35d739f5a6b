//! Data-driven engine tests: every `tests/cases/**/*.json` file is one execution, one check
//! named after its path under `tests/cases/` (`cases::choice/…json`).
//!
//! A case holds a `definition`, an `input`, optionally a `mock_config` (Step Functions
//! Local's MockConfigFile format) with the `test_case` to use, and `hang` (Task states whose
//! calls never answer, to exercise timeouts). `expected` gives the outcome as `expressway
//! exec` prints it (`status` plus `output`, or `error`/`cause`), and optionally
//! `elapsed_ms` (virtual time from start to end: Waits, backoffs and timeouts run on a fake
//! clock), `transitions`, `events` (the history event types, in order), and `event_links`
//! (each event's `[id, previousEventId]`, in order).

use crate::harness::Group;
use expressway::asl::effect::TaskCall;
use expressway::asl::{compile, ExecutionOptions, Outcome};
use expressway::engine::Clock;
use expressway::mock::MockConfig;
use expressway::resource::{TaskReply, TaskResource};
use expressway::runner::{run_to_completion, NoResources};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub fn group() -> Group<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files = Vec::new();
    case_files(&root, &mut files);
    files
        .into_iter()
        .fold(Group::new("cases", || Ok(())), |group, file| {
            let name = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            group.check(name, move |_| Ok(run_case(&file)?))
        })
}

pub const START_MS: i64 = 1_700_000_000_000;

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

pub fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Succeeded(v) => json!({"status": "SUCCEEDED", "output": v}),
        Outcome::Failed(f) | Outcome::TimedOut(f) => {
            json!({"status": outcome.status(), "error": f.error, "cause": f.cause})
        }
    }
}

/// Runs one case; returns what differs from the expectation.
fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    // Read as the engine reads any text (`-0` is the integer 0, as in Jackson).
    let case = expressway::asl::json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
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
    if let Some(want) = expected.get("event_links") {
        let got: Vec<[u64; 2]> = exec.history().iter().map(|e| [e.id, e.previous]).collect();
        if *want != json!(got) {
            problems.push(format!("event_links: expected {want}, got {}", json!(got)));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}
