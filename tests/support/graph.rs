//! `expressway graph`: every shipped definition and a sample of the conformance corpus drawn
//! in all three formats (the SVG parsed as XML, one `class="state"` group per state, nested
//! ones too), a 30-state workflow laid out without overlapping boxes, and the command's exit
//! codes.

use crate::cases::case_files;
use crate::harness::{group, verdict, Group, Problem, Verdict};
use expressway::asl::diagnostic::codes::UNSUPPORTED;
use quick_xml::events::Event;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn group() -> Group<()> {
    group!(
        "graph",
        || Ok(()),
        [
            every_shipped_definition_draws_as_svg_dot_and_mermaid,
            a_sample_of_the_conformance_corpus_draws_every_state,
            thirty_states_lay_out_without_overlapping_boxes,
            graph_command_exits_as_validate_does,
        ]
    )
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The names of every state of `machine` and of the machines nested in it.
fn state_names(machine: &Value, out: &mut Vec<String>) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states {
        out.push(name.clone());
        for branch in state
            .get("Branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            state_names(branch, out);
        }
        if let Some(p) = state.get("ItemProcessor").or_else(|| state.get("Iterator")) {
            state_names(p, out);
        }
    }
}

/// An SVG's state groups: (data-state, data-box).
fn svg_states(svg: &str) -> Result<Vec<(String, [f64; 4])>, String> {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut states = Vec::new();
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| format!("not XML: {e}"))?;
        match event {
            Event::Eof => break,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Start(e) => {
                depth += 1;
                if e.name().as_ref() != b"g" {
                    continue;
                }
                let mut class = String::new();
                let mut name = None;
                let mut bbox = None;
                for a in e.attributes() {
                    let a = a.map_err(|e| format!("bad attribute: {e}"))?;
                    let value = a
                        .unescape_value()
                        .map_err(|e| format!("bad attribute value: {e}"))?
                        .into_owned();
                    match a.key.as_ref() {
                        b"class" => class = value,
                        b"data-state" => name = Some(value),
                        b"data-box" => {
                            let v: Vec<f64> =
                                value.split(' ').filter_map(|n| n.parse().ok()).collect();
                            bbox = <[f64; 4]>::try_from(v).ok();
                        }
                        _ => {}
                    }
                }
                if class.split(' ').next() == Some("state") {
                    let name = name.ok_or("a state group without data-state")?;
                    let bbox = bbox.ok_or_else(|| format!("{name}: no data-box"))?;
                    states.push((name, bbox));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced elements".into());
    }
    Ok(states)
}

/// Draws `definition` three ways; what is wrong with any of the drawings.
fn check_drawings(definition: &Value) -> Result<(), String> {
    let svg = expressway::graph::svg(definition).map_err(|e| e.to_string())?;
    let dot = expressway::graph::dot(definition).map_err(|e| e.to_string())?;
    let mermaid = expressway::graph::mermaid(definition).map_err(|e| e.to_string())?;
    let mut expected = Vec::new();
    state_names(definition, &mut expected);
    let mut drawn: Vec<String> = svg_states(&svg)?.into_iter().map(|s| s.0).collect();
    expected.sort();
    drawn.sort();
    if drawn != expected {
        return Err(format!("SVG states {drawn:?}, definition's {expected:?}"));
    }
    if !svg.contains("viewBox=\"0 0 ") || !svg.contains("width=\"") {
        return Err("no viewBox or width".into());
    }
    for name in &expected {
        // Names with markup characters are escaped each its own way; plain ones appear as is.
        let plain = name
            .chars()
            .all(|c| c.is_alphanumeric() || " _-.:,()".contains(c));
        if plain && !dot.contains(name.as_str()) {
            return Err(format!("{name} not in the DOT"));
        }
        if plain && !mermaid.contains(name.as_str()) {
            return Err(format!("{name} not in the Mermaid"));
        }
    }
    if !dot.starts_with("digraph") || !mermaid.starts_with("flowchart TD") {
        return Err("DOT or Mermaid header missing".into());
    }
    Ok(())
}

fn every_shipped_definition_draws_as_svg_dot_and_mermaid(_: &mut ()) -> Verdict {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config/state-machines"))
        .map_err(|e| e.to_string())?
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let def: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if let Err(why) = check_drawings(&def) {
            problems.push(format!("{}: {why}", file.display()));
        }
    }
    verdict(files.len() >= 2 && problems.is_empty(), || {
        format!("{} files: {problems:?}", files.len())
    })
}

/// `$EXPRESSWAY_CONFORMANCE_CASES`, by default `../shared/conformance/cases` (as the corpus
/// group finds it), or a skip.
fn conformance_cases() -> Result<PathBuf, Problem> {
    let dir = match std::env::var_os("EXPRESSWAY_CONFORMANCE_CASES") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("../shared/conformance/cases"),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Problem::Skipped(format!("{} not found", dir.display())))
    }
}

fn a_sample_of_the_conformance_corpus_draws_every_state(_: &mut ()) -> Verdict {
    let dir = conformance_cases()?;
    let mut files = Vec::new();
    case_files(&dir, &mut files);
    let (mut drawn, mut refused) = (0, 0);
    let mut problems = Vec::new();
    for file in files.iter().step_by(10) {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let case: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let Some(def) = case.get("definition") else {
            continue;
        };
        let valid = match expressway::asl::compile(def) {
            Ok(_) => true,
            Err(diags) => diags.iter().all(|d| d.code == UNSUPPORTED),
        };
        if !valid {
            // An invalid definition is refused, not drawn.
            if expressway::graph::svg(def).is_ok() {
                problems.push(format!("{}: an invalid definition drawn", file.display()));
            }
            refused += 1;
            continue;
        }
        match check_drawings(def) {
            Ok(()) => drawn += 1,
            Err(why) => problems.push(format!("{}: {why}", file.display())),
        }
    }
    verdict(drawn >= 20 && problems.is_empty(), || {
        format!("{drawn} drawn, {refused} refused: {problems:#?}")
    })
}

/// 30 states: Choices fanning out three ways, Tasks with Retry and a Catch to one handler,
/// Waits, Parallels of two branches, Maps.
fn thirty_states() -> Value {
    let mut states = serde_json::Map::new();
    let n = 30;
    for i in 0..n {
        let next = format!("Step {}", i + 1);
        let state = match i % 6 {
            _ if i == n - 1 => json!({"Type": "Succeed"}),
            0 => json!({"Type": "Choice", "Choices": [
                    {"Variable": "$.x", "NumericGreaterThan": i, "Next": next},
                    {"Variable": "$.kind", "StringEquals": "fast lane", "Next": format!("Step {}", i + 2)}
                 ], "Default": format!("Step {}", i + 3)}),
            1 => json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                 "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 4}],
                 "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle failure"}],
                 "Next": next}),
            2 => json!({"Type": "Wait", "Seconds": 30, "Next": next}),
            3 => json!({"Type": "Parallel", "Next": next, "Branches": [
                 {"StartAt": format!("Left {i}"), "States": {format!("Left {i}"): {"Type": "Pass", "End": true}}},
                 {"StartAt": format!("Right {i}"), "States": {
                     format!("Right {i}"): {"Type": "Pass", "Next": format!("Right {i} done")},
                     format!("Right {i} done"): {"Type": "Pass", "End": true}}}]}),
            4 => json!({"Type": "Map", "ItemsPath": "$.items", "Next": next, "ItemProcessor": {
                 "StartAt": format!("Item {i}"),
                 "States": {format!("Item {i}"): {"Type": "Pass", "End": true}}}}),
            _ => json!({"Type": "Pass", "Next": next}),
        };
        states.insert(format!("Step {i}"), state);
    }
    states.insert(
        "Handle failure".into(),
        json!({"Type": "Fail", "Error": "Failed"}),
    );
    json!({"Comment": "30 states", "StartAt": "Step 0", "States": states})
}

fn thirty_states_lay_out_without_overlapping_boxes(_: &mut ()) -> Verdict {
    let def = thirty_states();
    let started = std::time::Instant::now();
    let svg = expressway::graph::svg(&def).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    check_drawings(&def)?;
    let states = svg_states(&svg)?;
    let inside = |a: &[f64; 4], b: &[f64; 4]| {
        a[0] <= b[0] && a[1] <= b[1] && a[0] + a[2] >= b[0] + b[2] && a[1] + a[3] >= b[1] + b[3]
    };
    let mut overlaps = Vec::new();
    for (i, (a, ba)) in states.iter().enumerate() {
        for (b, bb) in &states[i + 1..] {
            let disjoint = ba[0] + ba[2] <= bb[0]
                || bb[0] + bb[2] <= ba[0]
                || ba[1] + ba[3] <= bb[1]
                || bb[1] + bb[3] <= ba[1];
            if !disjoint && !inside(ba, bb) && !inside(bb, ba) {
                overlaps.push(format!("{a} {ba:?} and {b} {bb:?}"));
            }
        }
    }
    verdict(
        states.len() >= 30 && overlaps.is_empty() && took.as_secs() < 2,
        || {
            format!(
                "{} states in {took:?}; overlapping: {overlaps:#?}",
                states.len()
            )
        },
    )
}

fn graph_command_exits_as_validate_does(_: &mut ()) -> Verdict {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_expressway"))
            .arg("graph")
            .args(args)
            .current_dir(root())
            .output()
            .expect("the expressway binary runs")
    };
    let demo = "config/state-machines/sensor-alert.asl.json";
    let svg = run(&[demo]);
    let text = String::from_utf8_lossy(&svg.stdout);
    verdict(
        svg.status.code() == Some(0) && text.starts_with("<svg"),
        || format!("svg: {:?} {}", svg.status, &text[..text.len().min(200)]),
    )?;
    for (format, head) in [("dot", "digraph"), ("mermaid", "flowchart TD")] {
        let out = run(&["--format", format, demo]);
        let text = String::from_utf8_lossy(&out.stdout);
        verdict(out.status.success() && text.starts_with(head), || {
            format!("{format}: {:?} {text}", out.status)
        })?;
    }
    let dir = std::env::temp_dir().join(format!("expressway-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}"#,
    )
    .map_err(|e| e.to_string())?;
    let written = dir.join("out.svg");
    let to_file = run(&["--output", &written.to_string_lossy(), demo]);
    let invalid = run(&[&bad.to_string_lossy()]);
    let missing = run(&["no/such/file.json"]);
    let file_text = std::fs::read_to_string(&written).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    verdict(
        to_file.status.success() && to_file.stdout.is_empty() && file_text.starts_with("<svg"),
        || format!("--output: {:?}", to_file.status),
    )?;
    verdict(
        invalid.status.code() == Some(1)
            && invalid.stdout.is_empty()
            && stderr.contains("bad.json:/States/A/Next: "),
        || format!("invalid: {:?} {stderr}", invalid.status),
    )?;
    verdict(missing.status.code() == Some(2), || {
        format!("missing file: {:?}", missing.status)
    })
}
