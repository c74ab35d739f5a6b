//! Checks over definitions this checkout does not own: the conformance corpus and the
//! benchmark workflows in `../shared`. Skipped, saying so, when `../shared` is not there.

use crate::cases::{case_files, outcome_json, START_MS};
use crate::harness::{group, verdict, Group, Problem, Verdict};
use expressway::asl::{compile, ExecutionOptions, Program};
use expressway::engine::Clock;
use expressway::runner::{run_to_completion, NoResources};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn group() -> Group<()> {
    group!(
        "corpus",
        || Ok(()),
        [
            definitions_survive_odd_inputs,
            recorded_results_hold_inside_a_parallel_branch_and_a_map_iteration
        ]
    )
}

/// The benchmark workflows of `benches/workflows`.
pub fn bench_group() -> Group<()> {
    group!(
        "bench",
        || Ok(()),
        [iot_enrich_jsonata_does_what_iot_enrich_does]
    )
}

/// The conformance suite's cases: `$EXPRESSWAY_CONFORMANCE_CASES` (set by `scripts/test`), by
/// default `../shared/conformance/cases`; or a skip naming where it was looked for.
fn conformance_cases() -> Result<PathBuf, Problem> {
    let dir = match std::env::var_os("EXPRESSWAY_CONFORMANCE_CASES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases"),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Problem::Skipped(format!("{} not found", dir.display())))
    }
}

/// Every definition of the conformance corpus, run on inputs it was not written for, ends
/// with an outcome. Any panic is a bug: bad input must end as a failure with a cause.
fn definitions_survive_odd_inputs(_: &mut ()) -> Verdict {
    let dir = conformance_cases()?;
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
    let mut runs = 0;
    let mut panicked = Vec::new();
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
                panicked.push(format!("{} panicked on input {input}", file.display()));
            }
        }
    }
    println!(
        "corpus: {runs} executions of corpus definitions on odd inputs, {} panicked",
        panicked.len()
    );
    verdict(panicked.is_empty(), || panicked.join("\n    "))
}

/// A differential check with AWS's recordings as the oracle: a state machine wrapped as the
/// one branch of a Parallel state, or as a Map's processor over one item, must end as AWS
/// recorded it unwrapped — its output inside an array, or the same error. A branch or an
/// iteration has its own frame, context and variables but the same rules, so any difference
/// is a rule applied in one place and not the other. Only the
/// pure cases this engine reproduces unwrapped (the conformance gate's job) are wrapped.
/// Causes are not compared: they name event ids, which the wrapping shifts.
fn recorded_results_hold_inside_a_parallel_branch_and_a_map_iteration(_: &mut ()) -> Verdict {
    let dir = conformance_cases()?;
    let mut files = Vec::new();
    case_files(&dir, &mut files);
    let (mut wrapped, mut differences) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let case = expressway::asl::json::from_str(&text).unwrap();
        if case["needs"]
            .as_array()
            .is_none_or(|needs| !needs.is_empty())
        {
            continue;
        }
        let expected = &case["expected"];
        let Some(Ok(unwrapped)) = run_case_definition(&case["definition"], &case["input"]) else {
            continue;
        };
        if !matches_recording(&unwrapped, expected) {
            continue;
        }
        let as_branch = json!([expected["output"].clone()]);
        let expected_wrapped = match expected["status"].as_str() {
            Some("SUCCEEDED") => json!({"status": "SUCCEEDED", "output": as_branch}),
            _ => expected.clone(),
        };
        let mut wrappings = vec![(
            "a Parallel branch",
            in_a_parallel_branch(&case["definition"]),
        )];
        wrappings.extend(in_a_map_iteration(&case["definition"]).map(|d| ("a Map iteration", d)));
        for (place, definition) in wrappings {
            wrapped += 1;
            let file = file.display();
            match run_case_definition(&definition, &case["input"]) {
                Some(Ok(got)) if matches_recording(&got, &expected_wrapped) => {}
                Some(Ok(got)) => differences.push(format!(
                    "{file} in {place}: expected {expected_wrapped}, got {got}"
                )),
                Some(Err(diagnostics)) => differences.push(format!(
                    "{file} in {place}: does not compile: {diagnostics}"
                )),
                None => differences.push(format!("{file} in {place}: no outcome")),
            }
        }
    }
    println!(
        "corpus: {wrapped} recorded results checked inside a Parallel branch or a Map iteration, {} differ",
        differences.len()
    );
    verdict(differences.is_empty(), || differences.join("\n    "))
}

/// `definition` as the only branch of a Parallel state; the fields only a top level may
/// have stay on the top level.
fn in_a_parallel_branch(definition: &Value) -> Value {
    let mut branch = definition.as_object().cloned().unwrap_or_default();
    let mut top = serde_json::Map::new();
    for key in ["QueryLanguage", "TimeoutSeconds"] {
        if let Some(v) = branch.remove(key) {
            top.insert(key.into(), v);
        }
    }
    branch.remove("Version");
    top.insert("StartAt".into(), json!("Wrapper"));
    top.insert(
        "States".into(),
        json!({"Wrapper": {"Type": "Parallel", "Branches": [branch], "End": true}}),
    );
    Value::Object(top)
}

/// `definition` as the processor of a Map over a one-item array holding the execution's
/// input (`States.Array($)`), so the iteration's input is the input. JSONPath top levels
/// only: a JSONata Pass would write the input's numbers as JSONata does.
fn in_a_map_iteration(definition: &Value) -> Option<Value> {
    let mut processor = definition.as_object().cloned().unwrap_or_default();
    if processor.contains_key("QueryLanguage") {
        return None;
    }
    let timeout = processor.remove("TimeoutSeconds");
    processor.remove("Version");
    let mut top = json!({
        "StartAt": "Items",
        "States": {
            "Items": {"Type": "Pass", "Parameters": {"items.$": "States.Array($)"}, "Next": "Wrapper"},
            "Wrapper": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": processor, "End": true}
        }
    });
    if let Some(t) = timeout {
        top["TimeoutSeconds"] = t;
    }
    Some(top)
}

/// The outcome of `definition` on `input` as `{status, output | error, cause}`, an `Err`
/// with the diagnostics if it does not compile, `None` if it does not end.
fn run_case_definition(definition: &Value, input: &Value) -> Option<Result<Value, String>> {
    let program = match compile(definition) {
        Ok(p) => Arc::new(p),
        Err(d) => return Some(Err(format!("{d:?}"))),
    };
    let mut clock = Clock::Virtual { now: START_MS };
    let exec = run_to_completion(
        program,
        input.clone(),
        ExecutionOptions::default(),
        &NoResources,
        &mut clock,
    );
    exec.outcome().map(|o| Ok(outcome_json(o)))
}

/// Whether an outcome is what AWS recorded: its status, its output (numbers by value, as
/// the conformance runner compares them) or its error.
fn matches_recording(outcome: &Value, expected: &Value) -> bool {
    outcome["status"] == expected["status"]
        && match expected["status"].as_str() {
            Some("SUCCEEDED") => same_numbers_aside(&outcome["output"], &expected["output"]),
            _ => expected.get("error").is_none_or(|e| outcome["error"] == *e),
        }
}

/// `benches/workflows/iot-enrich-jsonata.asl.json` must do what the JSONPath `iot-enrich`
/// does, or the benchmark compares different work: same outcome on every input variant.
fn iot_enrich_jsonata_does_what_iot_enrich_does(_: &mut ()) -> Verdict {
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workflows");
    let read = |path: PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let program = |definition: Value| Arc::new(compile(&definition).expect("compiles"));
    let jsonpath = program(read(workflows.join("iot-enrich.asl.json")));
    let jsonata = program(read(workflows.join("iot-enrich-jsonata.asl.json")));
    let run = |program: &Arc<Program>, input: &Value| {
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
    verdict(differences.is_empty(), || differences.join("\n    "))
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
