//! Property: any definition the generator makes (seeded `fastrand`, so a failure replays)
//! runs through the CLI's runner on a virtual clock to an end — no panic, no hang — within
//! the duration cap it is given.
//!
//! Excluded for now: cycles in which no time passes (a Pass ↔ Choice loop). They would spin
//! until the VM's step budget, which is being added separately (they will then end as
//! `States.Timeout`); here every backward transition leaves from a Wait of at least a second,
//! so every cycle lets virtual time pass and the cap ends it.

use crate::harness::{group, verdict, Group, Verdict};
use expressway::asl::{compile, ExecutionOptions};
use expressway::engine::Clock;
use expressway::runner::{NoResources, Runner};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn group() -> Group<()> {
    group!(
        "random_definitions",
        || Ok(()),
        [random_definitions_run_to_an_end_within_the_cap]
    )
}

const CAP_MS: i64 = 60_000;

fn random_definitions_run_to_an_end_within_the_cap(_: &mut ()) -> Verdict {
    let mut rng = fastrand::Rng::with_seed(17);
    let mut problems = Vec::new();
    let (mut ran, mut invalid) = (0, 0);
    // About one generated definition in six is valid: draw until 200 have run.
    for case in 0..4000 {
        if ran == 200 {
            break;
        }
        let states = 2 + rng.usize(0..8);
        let definition = machine(&mut rng, states, 0);
        let program = match compile(&definition) {
            Ok(p) => Arc::new(p),
            // Unreachable states and the like: the generator does not avoid them.
            Err(_) => {
                invalid += 1;
                continue;
            }
        };
        let input = json!({"n": rng.i64(-5..20), "a": [1, 2, 3], "s": "x", "o": {"k": rng.bool()}});
        let opts = ExecutionOptions {
            max_duration_ms: Some(CAP_MS),
            record_history: true,
            ..ExecutionOptions::default()
        };
        let start = 1_700_000_000_000;
        let mut clock = Clock::Virtual { now: start };
        let wall = Instant::now();
        let exec = Runner::new(&NoResources).run(program, input, opts, &mut clock);
        let elapsed = clock.now() - start;
        ran += 1;
        if exec.into_outcome().is_none()
            || elapsed > CAP_MS + 1_000
            || wall.elapsed() > Duration::from_secs(5)
        {
            problems.push(format!(
                "case {case}: ended after {elapsed} ms virtual, {:?} wall\n{definition}",
                wall.elapsed()
            ));
        }
    }
    verdict(problems.is_empty() && ran >= 200, || {
        format!("{ran} ran, {invalid} invalid:\n{}", problems.join("\n"))
    })
}

/// A machine of `n` states `S0…`; forward transitions anywhere, backward ones only from Waits.
fn machine(rng: &mut fastrand::Rng, n: usize, depth: u32) -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let last = i + 1 == n;
        // Mostly the next state, so that most machines have every state reachable.
        let forward = |rng: &mut fastrand::Rng| match rng.u8(0..3) {
            0 => format!("S{}", rng.usize(i + 1..n)),
            _ => format!("S{}", i + 1),
        };
        let mut state = match if last { 9 } else { rng.u8(0..9) } {
            0 | 1 => {
                let mut s = json!({"Type": "Pass"});
                match rng.u8(0..5) {
                    0 => s["InputPath"] = json!("$.o"),
                    1 => s["Parameters"] = json!({"v.$": "$.n", "f.$": "States.Format('{}', $.s)"}),
                    2 => s["Result"] = json!({"n": 1, "a": [], "s": "y", "o": {}}),
                    3 => s["ResultPath"] = json!("$.r"),
                    _ => {}
                }
                s
            }
            2 => json!({"Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThan": rng.i64(-5..20), "Next": forward(rng)}],
                "Default": forward(rng)}),
            3 => {
                // The one way back: time passes first.
                let back = match rng.bool() {
                    true => format!("S{}", rng.usize(0..n)),
                    false => format!("S{}", i + 1),
                };
                json!({"Type": "Wait", "Seconds": rng.u64(1..10), "Next": back})
            }
            4 => {
                let mut s = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f"});
                if rng.bool() {
                    s["Retry"] = json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": rng.u8(0..3), "IntervalSeconds": 1}]);
                }
                if rng.bool() {
                    s["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "Next": forward(rng), "ResultPath": "$.err"}]);
                }
                s
            }
            5 if depth < 2 => json!({"Type": "Parallel",
                "Branches": [sub(rng, depth), sub(rng, depth)]}),
            6 if depth < 2 => {
                json!({"Type": "Map", "ItemsPath": "$.a", "MaxConcurrency": rng.u8(0..3),
                "ItemProcessor": sub(rng, depth)})
            }
            7 => json!({"Type": "Fail", "Error": "E", "Cause": "c"}),
            _ => json!({"Type": "Succeed"}),
        };
        let terminal = matches!(
            state["Type"].as_str(),
            Some("Fail" | "Succeed" | "Choice" | "Wait")
        );
        if !terminal {
            if last {
                state["End"] = json!(true);
            } else {
                state["Next"] = json!(forward(rng));
            }
        }
        states.insert(format!("S{i}"), state);
    }
    json!({"StartAt": "S0", "States": states})
}

fn sub(rng: &mut fastrand::Rng, depth: u32) -> Value {
    let n = 1 + rng.usize(0..3);
    machine(rng, n, depth + 1)
}
