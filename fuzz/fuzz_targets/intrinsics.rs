//! An intrinsic call (`States.Format(...)`, first line) parsed and evaluated against an
//! input document (the rest, JSON; a fixed one when it is not).
#![no_main]
use expressway::asl::intrinsics::Intrinsic;
use expressway::asl::scope::DocScope;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (call, doc) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(call) = Intrinsic::parse(call) else {
        return;
    };
    let input: Value = serde_json::from_str(doc).unwrap_or_else(
        |_| json!({"a": [1, 2, 3], "s": "a,b,c", "n": 42, "o": {"k": "v"}, "b64": "aGVsbG8="}),
    );
    let context = json!({"Execution": {"Id": "x"}, "State": {"Name": "S"}});
    let _ = call.eval(&DocScope {
        input: &input,
        context: &context,
    });
});
