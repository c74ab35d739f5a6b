//! A whole execution of a fuzzed definition (first line, JSON) on an input (the rest, JSON;
//! `{}` when it is not), through the CLI's runner on a virtual clock. Task states fail with
//! `States.TaskFailed` (no resources). The virtual clock caps the execution at one minute;
//! libFuzzer's -timeout catches a loop that never lets time pass.
#![no_main]
use expressway::asl::{compile, ExecutionOptions};
use expressway::engine::Clock;
use expressway::runner::{NoResources, Runner};
use libfuzzer_sys::fuzz_target;

#[path = "contained_panics.rs"]
mod contained_panics;
use serde_json::{json, Value};
use std::sync::Arc;

fuzz_target!(
    init: contained_panics::let_jsonata_core_panics_unwind(),
    |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (definition, input) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(definition) = serde_json::from_str::<Value>(definition) else {
        return;
    };
    let Ok(program) = compile(&definition) else {
        return;
    };
    let input: Value = serde_json::from_str(input).unwrap_or_else(|_| json!({}));
    let opts = ExecutionOptions {
        max_duration_ms: Some(60_000),
        record_history: true,
        ..ExecutionOptions::default()
    };
    let mut clock = Clock::Virtual {
        now: 1_700_000_000_000,
    };
    let exec = Runner::new(&NoResources).run(Arc::new(program), input, opts, &mut clock);
    assert!(
        exec.into_outcome().is_some(),
        "the runner returned an unfinished execution"
    );
});
