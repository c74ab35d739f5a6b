//! A JSONata expression (first line) parsed and evaluated on `$states.input` (the rest,
//! JSON; a fixed one when it is not). Bounded only by what the engine bounds itself.
#![no_main]
use expressway::asl::jsonata::{Env, Expr, NoContext};
use libfuzzer_sys::fuzz_target;

#[path = "contained_panics.rs"]
mod contained_panics;
use serde_json::{json, Value};

fuzz_target!(
    init: contained_panics::let_jsonata_core_panics_unwind(),
    |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expr, doc) = text.split_once('\n').unwrap_or((text, ""));
    // Kept short: a long expression only finds the parser's recursion again.
    if expr.len() > 512 {
        return;
    }
    let Ok(expr) = Expr::parse(expr) else {
        return;
    };
    let input: Value = serde_json::from_str(doc)
        .unwrap_or_else(|_| json!({"a": [1, 2, 3], "s": "text", "o": {"k": 1}}));
    let env = Env::new(&input, &NoContext, None, 1_700_000_000_000, 7);
    let _ = expr.eval(&env, "Output");
});
