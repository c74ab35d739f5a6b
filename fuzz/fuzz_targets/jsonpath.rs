//! A JSONPath (first line) parsed, then selected, taken and assigned on a document (the
//! rest, JSON; a fixed one when it is not).
#![no_main]
use expressway::asl::path::JsonPath;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, doc) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(path) = JsonPath::parse(path) else {
        return;
    };
    let mut doc: Value = serde_json::from_str(doc).unwrap_or_else(
        |_| json!({"a": {"b": [1, 2, {"c": "d"}], "e f": null}, "x": [[0], {"y": true}], "n": 1.5}),
    );
    let _ = path.select(&doc);
    let _ = path.missing_message(&doc);
    let _ = path.take(&mut doc.clone());
    let _ = path.assign(&mut doc, json!({"v": 1}));
});
