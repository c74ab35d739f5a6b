//! A definition's text through everything `expressway validate` does: duplicate keys,
//! validation, compilation. Any panic is a bug ("No panics on input", ARCHITECTURE.md).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "contained_panics.rs"]
mod contained_panics;

fuzz_target!(
    init: contained_panics::let_jsonata_core_panics_unwind(),
    |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = expressway::asl::validate::duplicate_keys(text);
    if let Ok(definition) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = expressway::asl::validate::validate(&definition);
        let _ = expressway::asl::compile(&definition);
    }
});
