//! A payload template (`Parameters`, first line, JSON) compiled and evaluated, both ways,
//! against an input document (the rest, JSON; a fixed one when it is not).
#![no_main]
use expressway::asl::scope::DocScope;
use expressway::asl::template::Template;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, doc) = text.split_once('\n').unwrap_or((text, ""));
    // Two evaluations of a random intrinsic differ by design: compare only the others.
    let random = template.contains("Random") || template.contains("UUID");
    let Ok(template) = serde_json::from_str::<Value>(template) else {
        return;
    };
    let Ok(template) = Template::compile(&template) else {
        return;
    };
    let mut input: Value = serde_json::from_str(doc)
        .unwrap_or_else(|_| json!({"a": [1, 2, 3], "s": "a,b", "o": {"k": {"l": 2}}}));
    let context = json!({"Execution": {"Id": "x"}, "Map": {"Item": {"Index": 0}}});
    let _ = template.size_bound();
    let scope = DocScope {
        input: &input,
        context: &context,
    };
    let plain = template.eval(&scope);
    if template.consumable() {
        if let Ok(calls) = template.eval_calls(&scope) {
            let consumed = template.eval_consuming(&mut input, calls);
            if let (false, Ok(a), Some(b)) = (random, &plain, &consumed) {
                assert_eq!(a, b, "consuming evaluation differs from the plain one");
            }
        }
    }
});
