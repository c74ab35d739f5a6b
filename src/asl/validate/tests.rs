//! The validator's tests: the conformance corpus validates clean, the data-driven cases in
//! `tests/validate` report exactly their diagnostics, and no input makes it panic.

use super::values::parse_path;
use super::*;
use crate::asl::compile;
use serde_json::json;
use std::path::Path;

fn codes_and_pointers(diags: &[Diagnostic]) -> Vec<(String, String)> {
    let mut out: Vec<_> = diags
        .iter()
        .map(|d| (d.code.to_string(), d.pointer.clone()))
        .collect();
    out.sort();
    out
}

fn json_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable directory").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).expect("readable file");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every definition AWS accepted must validate clean.
#[test]
fn conformance_definitions_validate_clean() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/cases"
    ));
    if !dir.is_dir() {
        eprintln!("skipped: no conformance corpus at {}", dir.display());
        return;
    }
    let files = json_files(dir);
    assert!(files.len() >= 700, "only {} cases found", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let case = read_json(f);
        let diags = validate(&case["definition"]);
        if !diags.is_empty() {
            let list: Vec<_> = diags.iter().map(ToString::to_string).collect();
            failures.push(format!("{}:\n  {}", f.display(), list.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} accepted definitions were rejected:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Data-driven cases: `tests/validate/*.json` hold a definition and exactly the
/// diagnostics (code and pointer) it must produce: everything `expressway validate`
/// reports, so through `compile` (JSONata syntax and unsupported features included).
#[test]
fn invalid_definitions_report_expected_diagnostics() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate"));
    let files = json_files(dir);
    assert!(files.len() >= 30, "only {} cases found", files.len());
    let mut failures = Vec::new();
    let mut seen_codes = BTreeSet::new();
    for f in &files {
        let case = read_json(f);
        let expected_list = case["expected"].as_array().expect("'expected' array");
        let mut expected: Vec<(String, String)> = expected_list
            .iter()
            .map(|e| {
                let field = |k: &str| e[k].as_str().expect("code and pointer strings");
                (field("code").to_string(), field("pointer").to_string())
            })
            .collect();
        expected.sort();
        // The definition as written, so that duplicate keys are seen as `validate` sees them.
        #[derive(serde::Deserialize)]
        struct Raw {
            definition: Box<serde_json::value::RawValue>,
        }
        let text = std::fs::read_to_string(f).expect("readable file");
        let raw: Raw = serde_json::from_str(&text).expect("a definition");
        let mut diags = compile(&case["definition"]).err().unwrap_or_default();
        diags.extend(duplicate_keys(raw.definition.get()));
        let actual = codes_and_pointers(&diags);
        seen_codes.extend(actual.iter().map(|(c, _)| c.clone()));
        if actual != expected {
            let messages: Vec<_> = diags.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{}\n  expected {expected:?}\n  actual   {actual:?}\n  {}",
                f.display(),
                messages.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let all = [
        MISSING_FIELD,
        UNKNOWN_FIELD,
        INVALID_TYPE,
        INVALID_VALUE,
        MISSING_NEXT,
        UNKNOWN_STATE,
        UNREACHABLE_STATE,
        NO_TERMINAL_STATE,
        NEXT_AND_END,
        INVALID_PATH,
        INVALID_REFERENCE_PATH,
        STATES_ALL_NOT_LAST,
        UNKNOWN_ERROR_NAME,
        MUTUALLY_EXCLUSIVE_FIELDS,
        INVALID_INTRINSIC,
        DUPLICATE_STATE_NAME,
        DUPLICATE_FIELD,
    ];
    let missing: Vec<_> = all.iter().filter(|c| !seen_codes.contains(**c)).collect();
    assert!(missing.is_empty(), "no data-driven case covers {missing:?}");
}

#[test]
fn minimal_machine_is_valid() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
    assert_eq!(validate(&def), vec![]);
}

#[test]
fn messages_name_the_offending_value() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}});
    let diags = validate(&def);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, UNKNOWN_STATE);
    assert_eq!(diags[0].pointer, "/States/A/Next");
    assert!(
        diags[0].message.contains("'Nowhere'"),
        "{}",
        diags[0].message
    );
}

#[test]
fn pointers_escape_state_names() {
    let def = json!({"StartAt": "a/b", "States": {
        "a/b": {"Type": "Pass", "End": true},
        "c~d": {"Type": "Pass", "End": true}
    }});
    let diags = validate(&def);
    assert_eq!(
        codes_and_pointers(&diags),
        vec![(UNREACHABLE_STATE.into(), "/States/c~0d".into())]
    );
}

#[test]
fn variables_and_context_paths_are_accepted() {
    for ok in [
        "$",
        "$$",
        "$$.Execution.Input",
        "$var",
        "$var.a[0]",
        "$.a['b c']",
    ] {
        assert!(parse_path(ok).is_ok(), "{ok}");
    }
    for bad in ["var", "$.", "$1x", "$a-b.c"] {
        assert!(parse_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn valid_intrinsic_calls_are_accepted() {
    let def = json!({"StartAt": "A", "States": {"A": {
        "Type": "Pass",
        "Parameters": {"greeting.$": "States.Format('Hello {}', $.name)"},
        "End": true
    }}});
    assert_eq!(validate(&def), vec![]);
}

/// Whatever the input, validation (and the compiler, which runs on invalid definitions
/// too) reports and never panics.
#[test]
fn junk_never_panics() {
    let junk = [
        json!(null),
        json!(42),
        json!("x"),
        json!([]),
        json!({}),
        json!({"StartAt": 1, "States": []}),
        json!({"StartAt": "A", "States": {"A": 7}}),
        json!({"StartAt": "A", "States": {"A": {"Type": 7}}}),
        json!({"StartAt": "A", "States": {"A": {"Type": "Map", "ItemProcessor": [], "Iterator": 3}}}),
        json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "Branches": [1, {}, {"States": {}}], "End": true}}}),
        json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Retry": [1, {"ErrorEquals": [1, null]}], "Catch": {"x": 1}}}}),
        json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [null, 1, {"Next": 5}], "Default": []}}}),
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [1, {"Condition": 3}]}}}),
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"a.$": 1, "b": [{"c.$": "$..x"}]}, "InputPath": "$[", "End": "yes"}}}),
    ];
    for def in &junk {
        let _ = compile(def);
    }
    // Deep nesting through Parallel branches.
    let mut def = json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}});
    for _ in 0..40 {
        def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [def], "End": true}}});
    }
    assert_eq!(validate(&def), vec![]);
}

/// Random mutations of accepted definitions: never a panic, in validation or compiler.
#[test]
fn mutated_definitions_never_panic() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/cases"
    ));
    let mut defs: Vec<Value> = json_files(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/validate"
    )))
    .iter()
    .map(|f| read_json(f)["definition"].clone())
    .collect();
    if dir.is_dir() {
        defs.extend(
            json_files(dir)
                .iter()
                .step_by(7)
                .map(|f| read_json(f)["definition"].clone()),
        );
    }
    let junk = [
        json!(null),
        json!(-1),
        json!(1.5),
        json!("$$"),
        json!("{% x %}"),
        json!("States.ALL"),
        json!([]),
        json!({}),
        json!([{"Type": "Pass"}]),
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for def in &defs {
        for _ in 0..20 {
            let mut d = def.clone();
            mutate(&mut d, &mut rng, &junk);
            let _ = compile(&d);
        }
    }
}

/// Replaces one randomly chosen node (or deletes one member) of `v`.
fn mutate(v: &mut Value, rng: &mut fastrand::Rng, junk: &[Value]) {
    let depth_stop = rng.u8(0..4) == 0;
    match v {
        Value::Object(m) if !m.is_empty() && !depth_stop => {
            let i = rng.usize(0..m.len());
            if rng.u8(0..6) == 0 {
                let key = m.keys().nth(i).cloned().unwrap_or_default();
                m.remove(&key);
            } else if let Some((_, child)) = m.iter_mut().nth(i) {
                mutate(child, rng, junk);
            }
        }
        Value::Array(a) if !a.is_empty() && !depth_stop => {
            let i = rng.usize(0..a.len());
            mutate(&mut a[i], rng, junk);
        }
        _ => *v = junk[rng.usize(0..junk.len())].clone(),
    }
}
