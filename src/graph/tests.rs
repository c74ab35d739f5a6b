use super::layout::{layout, Laid};
use super::model::{rule_label, EdgeKind, Kind, Machine};
use super::*;
use serde_json::{json, Value};

fn sensor_alert() -> Value {
    let text = include_str!("../../config/state-machines/sensor-alert.asl.json");
    serde_json::from_str(text).unwrap()
}

/// A definition of `n` states: Choices fanning out, a Wait loop, a Parallel, a Map, Catch
/// edges to a shared handler.
pub(super) fn big_definition(n: usize) -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let name = format!("Step {i}");
        let next = format!("Step {}", i + 1);
        let state = match i % 6 {
            _ if i == n - 1 => json!({"Type": "Succeed"}),
            0 if i + 3 < n => json!({
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.x", "NumericGreaterThan": i, "Next": next},
                    {"And": [{"Variable": "$.y", "IsPresent": true},
                             {"Not": {"Variable": "$.y", "StringEquals": "no"}}],
                     "Next": format!("Step {}", i + 2)}
                ],
                "Default": format!("Step {}", i + 3)
            }),
            1 => json!({
                "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}],
                "Next": next
            }),
            2 => json!({"Type": "Wait", "Seconds": 5, "Next": next}),
            3 => json!({"Type": "Parallel", "Next": next, "Branches": [
                {"StartAt": format!("P{i}a"), "States": {format!("P{i}a"): {"Type": "Pass", "End": true}}},
                {"StartAt": format!("P{i}b"), "States": {
                    format!("P{i}b"): {"Type": "Pass", "Next": format!("P{i}c")},
                    format!("P{i}c"): {"Type": "Pass", "End": true}}}
            ]}),
            4 => json!({"Type": "Map", "ItemsPath": "$.items", "Next": next, "ItemProcessor": {
                "StartAt": format!("M{i}"), "States": {format!("M{i}"): {"Type": "Pass", "End": true}}}}),
            _ => json!({"Type": "Pass", "Next": next}),
        };
        states.insert(name, state);
    }
    states.insert(
        "Handler".into(),
        json!({"Type": "Fail", "Error": "Broken", "Cause": "a step failed"}),
    );
    json!({"StartAt": "Step 0", "States": states})
}

/// Every box (states, Start/End, and each nested machine) with its depth-first path, in
/// absolute coordinates.
fn boxes(machine: &Machine, laid: &Laid, out: &mut Vec<(String, [f64; 4])>) {
    for (node, p) in machine.nodes.iter().zip(&laid.nodes) {
        out.push((node.id.clone(), [p.x, p.y, p.w, p.h]));
        for (m, child) in node.machines.iter().zip(&p.children) {
            out.push((
                format!("machine {}", m.id),
                [child.x, child.y, child.w, child.h],
            ));
            boxes(m, child, out);
        }
    }
}

fn contains(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] <= b[0] + 0.01
        && a[1] <= b[1] + 0.01
        && a[0] + a[2] >= b[0] + b[2] - 0.01
        && a[1] + a[3] >= b[1] + b[3] - 0.01
}

fn overlap(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
}

fn assert_no_overlap(definition: &Value) {
    let machine = model(definition).unwrap();
    let laid = layout(&machine);
    let mut all = Vec::new();
    boxes(&machine, &laid, &mut all);
    for (i, (a, ba)) in all.iter().enumerate() {
        assert!(
            ba[0] >= 0.0 && ba[1] >= 0.0 && ba[0] + ba[2] <= laid.w && ba[1] + ba[3] <= laid.h,
            "{a} {ba:?} outside {}x{}",
            laid.w,
            laid.h
        );
        for (b, bb) in &all[i + 1..] {
            if !contains(ba, bb) && !contains(bb, ba) {
                assert!(!overlap(ba, bb), "{a} {ba:?} overlaps {b} {bb:?}");
            }
        }
    }
}

#[test]
fn graph_model_of_the_demo_has_labels_catch_and_retry() {
    let m = model(&sensor_alert()).unwrap();
    let names: Vec<_> = m.states().iter().map(|n| n.name.clone()).collect();
    assert_eq!(
        names,
        ["Classify", "Check", "High", "Normal", "Count", "AnyHigh", "Notify", "Done"]
    );
    let labels: Vec<_> = m.edges.iter().filter_map(|e| e.label.clone()).collect();
    assert_eq!(
        labels,
        ["$.summary.high > 0", "default", "catch States.ALL"]
    );
    let notify = m.nodes.iter().find(|n| n.name == "Notify").unwrap();
    assert_eq!(notify.retry, ["retry SNS.ThrottledException ×3"]);
    assert_eq!(notify.detail.as_deref(), Some("sns:publish"));
    let classify = &m.nodes[2];
    assert_eq!(classify.kind, Kind::Map);
    let inner = &classify.machines[0];
    assert_eq!(inner.id, "Classify");
    assert_eq!(inner.nodes[0].id, "Classify#start");
    assert_eq!(
        inner
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::End)
            .count(),
        2
    );
    assert!(inner
        .edges
        .iter()
        .any(|e| e.label.as_deref() == Some("$.value > $.threshold")));
}

#[test]
fn graph_choice_rules_read_as_short_conditions() {
    let cases = [
        (
            json!({"Variable": "$.temp", "NumericGreaterThan": 30, "Next": "X"}),
            "$.temp > 30",
        ),
        (
            json!({"Variable": "$.s", "StringEquals": "on", "Next": "X"}),
            "$.s == \"on\"",
        ),
        (
            json!({"Variable": "$.a", "IsNull": false, "Next": "X"}),
            "$.a is not null",
        ),
        (
            json!({"Variable": "$.t", "TimestampLessThanEqualsPath": "$.u", "Next": "X"}),
            "$.t <= $.u",
        ),
        (
            json!({"Or": [{"Variable": "$.a", "BooleanEquals": true},
                          {"Not": {"Variable": "$.b", "IsPresent": true}}], "Next": "X"}),
            "$.a == true or not ($.b is present)",
        ),
        (
            json!({"Condition": "{%  $states.input.temp   > 30 %}", "Next": "X"}),
            "$states.input.temp > 30",
        ),
        (
            json!({"Variable": "$.name", "StringMatches": "log-*.txt", "Next": "X"}),
            "$.name matches \"log-*.txt\"",
        ),
    ];
    for (rule, label) in cases {
        assert_eq!(rule_label(&rule), label);
    }
    let long = json!({"Condition": format!("{{% {} %}}", "$x = 1 and ".repeat(20)), "Next": "X"});
    let label = rule_label(&long);
    assert!(
        label.ends_with('…') && label.chars().count() <= 36,
        "{label}"
    );
}

#[test]
fn graph_refuses_an_invalid_definition_with_its_diagnostics() {
    let bad = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}});
    let Err(GraphError::Invalid(diags)) = svg(&bad) else {
        panic!("an invalid definition was drawn");
    };
    assert!(
        diags.iter().any(|d| d.pointer == "/States/A/Next"),
        "{diags:?}"
    );
    assert!(dot(&bad).is_err() && mermaid(&bad).is_err());
}

#[test]
fn graph_svg_is_xml_with_one_state_group_per_state_and_escaped_names() {
    let def = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Read <\"a\" & 'b'>",
        "States": {
            "Read <\"a\" & 'b'>": {"Type": "Pass", "Next": "Loop?"},
            "Loop?": {"Type": "Choice", "Choices": [
                {"Condition": "{% $states.input.n < 3 %}", "Next": "Read <\"a\" & 'b'>"}
            ], "Default": "Fan"},
            "Fan": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "B1", "States": {"B1": {"Type": "Wait", "Seconds": 1, "Next": "B1x"},
                                             "B1x": {"Type": "Fail", "Error": "E"}}},
                {"StartAt": "B2", "States": {"B2": {"Type": "Succeed"}}}
            ]}
        }
    });
    let text = svg(&def).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut states = Vec::new();
    let mut edges = 0;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"g" => {
                let attr = |name: &[u8]| {
                    e.attributes()
                        .map(Result::unwrap)
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                let class = attr(b"class").unwrap_or_default();
                if class.split(' ').next() == Some("state") {
                    states.push(attr(b"data-state").unwrap());
                }
                if class.starts_with("edge") {
                    edges += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        states,
        ["Fan", "B1", "B1x", "B2", "Read <\"a\" & 'b'>", "Loop?"]
    );
    // Start→Read, Read→Loop?, the rule back to Read, default, Fan→End; per branch: Start, B1→B1x,
    // B2→End.
    assert_eq!(edges, 5 + 1 + 1 + 2);
    assert!(text
        .contains(r#"data-from="Loop?" data-to="Read &lt;&quot;a&quot; &amp; &apos;b&apos;&gt;""#));
    assert!(text.contains(r#"data-from="Fan[1]#start" data-to="B2""#));
    assert!(text.contains("$states.input.n &lt; 3"));
}

#[test]
fn graph_dot_and_mermaid_name_every_state() {
    let def = big_definition(30);
    let (d, m) = (dot(&def).unwrap(), mermaid(&def).unwrap());
    assert!(d.starts_with("digraph") && m.starts_with("flowchart TD"));
    for state in model(&def).unwrap().states() {
        assert!(d.contains(&state.name), "{} not in the DOT", state.name);
        assert!(m.contains(&state.name), "{} not in the Mermaid", state.name);
    }
    assert!(d.contains("lhead=cluster_") && d.contains("style=dashed"));
    assert!(m.contains("-.->|\"catch States.ALL\"|") && m.contains("subgraph"));
}

#[test]
fn graph_layout_of_thirty_states_has_no_overlapping_boxes() {
    let def = big_definition(30);
    assert_eq!(model(&def).unwrap().states().len(), 31 + 5 * 3 + 5);
    assert_no_overlap(&def);
    assert_no_overlap(&sensor_alert());
    let started = std::time::Instant::now();
    let big = big_definition(200);
    let text = svg(&big).unwrap();
    assert!(text.contains("Step 199"));
    // Generous: about a millisecond per state in release.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

#[test]
fn graph_a_state_looping_on_itself_is_drawn() {
    let def = json!({"StartAt": "Poll", "States": {
        "Poll": {"Type": "Choice", "Choices": [
            {"Variable": "$.done", "BooleanEquals": false, "Next": "Poll"}
        ], "Default": "Done"},
        "Done": {"Type": "Succeed"}
    }});
    let text = svg(&def).unwrap();
    assert!(text.contains(r#"data-from="Poll" data-to="Poll""#));
    assert_no_overlap(&def);
}
