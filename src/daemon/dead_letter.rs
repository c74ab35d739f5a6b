//! The event payload inside a dead-letter record, kept lossless: whoever reads the record
//! can always recover the exact bytes the source delivered.
//!
//! - A payload that is exactly one JSON value (no surrounding whitespace) nested at most
//!   [`MAX_EMBEDDED_DEPTH`] deep is embedded as it is, byte for byte: `"payload": {...}`.
//! - Any other UTF-8 payload (not JSON, JSON nested deeper, JSON with surrounding
//!   whitespace) is a string: `"payload": "...", "encoding": "text"`.
//! - Anything else (bytes that are not UTF-8) is base64 (standard alphabet, padded):
//!   `"payload": "...", "encoding": "base64"`.
//!
//! `encoding` is absent exactly when the payload is embedded JSON.

use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

/// The deepest nesting of arrays and objects embedded as JSON. The record adds one level
/// around the payload, so the whole record stays under serde_json's default recursion limit
/// of 128 (which clients built on it, and many others, refuse past): a payload deeper than
/// this goes as text instead.
pub const MAX_EMBEDDED_DEPTH: usize = 126;

/// Serialises as the `payload` field (and `encoding` when it is not embedded JSON):
/// a record holds it with `#[serde(flatten)]`.
#[derive(Debug)]
pub struct DeadLetterPayload<'a>(Repr<'a>);

#[derive(Debug)]
enum Repr<'a> {
    /// Embedded as received, byte for byte: nothing re-parsed or reformatted.
    Json(&'a RawValue),
    Text(&'a str),
    Base64(String),
}

impl<'a> DeadLetterPayload<'a> {
    pub fn of(payload: &'a [u8]) -> Self {
        if let Ok(raw) = serde_json::from_slice::<&RawValue>(payload) {
            if raw.get().len() == payload.len() && nesting_depth(raw.get()) <= MAX_EMBEDDED_DEPTH {
                return DeadLetterPayload(Repr::Json(raw));
            }
        }
        match std::str::from_utf8(payload) {
            Ok(text) => DeadLetterPayload(Repr::Text(text)),
            Err(_) => DeadLetterPayload(Repr::Base64(
                base64::engine::general_purpose::STANDARD.encode(payload),
            )),
        }
    }
}

impl Serialize for DeadLetterPayload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match &self.0 {
            Repr::Json(raw) => map.serialize_entry("payload", raw)?,
            Repr::Text(text) => {
                map.serialize_entry("payload", text)?;
                map.serialize_entry("encoding", "text")?;
            }
            Repr::Base64(b64) => {
                map.serialize_entry("payload", b64)?;
                map.serialize_entry("encoding", "base64")?;
            }
        }
        map.end()
    }
}

/// The deepest nesting of arrays and objects in valid JSON text, without recursion.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[derive(Serialize)]
    struct Record<'a> {
        reason: &'a str,
        #[serde(flatten)]
        payload: DeadLetterPayload<'a>,
    }

    /// The record as a client reads it (serde_json's default limits), and the payload bytes
    /// recovered from it.
    fn round_trip(payload: &[u8]) -> (Value, Vec<u8>) {
        let record = Record {
            reason: "invalid_json",
            payload: DeadLetterPayload::of(payload),
        };
        let text = serde_json::to_vec(&record).unwrap();
        let v: Value = serde_json::from_slice(&text).expect("the record parses");
        let bytes = match v.get("encoding").and_then(Value::as_str) {
            None => {
                // Embedded: the bytes are in the record as they came.
                let raw: Box<RawValue> = serde_json::from_slice::<Record2>(&text).unwrap().payload;
                raw.get().as_bytes().to_vec()
            }
            Some("text") => v["payload"].as_str().unwrap().as_bytes().to_vec(),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(v["payload"].as_str().unwrap())
                .unwrap(),
            Some(other) => panic!("encoding {other}"),
        };
        (v, bytes)
    }

    #[derive(serde::Deserialize)]
    struct Record2 {
        payload: Box<RawValue>,
    }

    #[test]
    fn json_payloads_are_embedded_byte_for_byte() {
        let payload = br#"{"b": 1,  "a":[1.50, "\u00e9"]}"#;
        let (v, bytes) = round_trip(payload);
        assert_eq!(v["payload"], json!({"a": [1.5, "é"], "b": 1}));
        assert!(v.get("encoding").is_none());
        assert_eq!(bytes, payload);
    }

    #[test]
    fn non_utf8_payloads_are_base64_not_replacement_characters() {
        let payload = b"{\"a\": \"\xff\xfe\x00\"}\xc3";
        let (v, bytes) = round_trip(payload);
        assert_eq!(v["encoding"], "base64");
        assert!(!v.to_string().contains('\u{FFFD}'));
        assert_eq!(bytes, payload);
    }

    #[test]
    fn deeply_nested_json_payloads_are_text_and_the_record_stays_parseable() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (v, bytes) = round_trip(deep.as_bytes());
        assert_eq!(v["encoding"], "text");
        assert_eq!(bytes, deep.as_bytes());
        // Just under the limit: embedded, and the record still parses.
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_EMBEDDED_DEPTH),
            "]".repeat(MAX_EMBEDDED_DEPTH)
        );
        let (v, bytes) = round_trip(ok.as_bytes());
        assert!(v.get("encoding").is_none());
        assert_eq!(bytes, ok.as_bytes());
        // Brackets inside strings do not count.
        let strings = format!("[\"{}\\\"\"]", "[".repeat(500));
        assert_eq!(nesting_depth(&strings), 1);
    }

    #[test]
    fn text_and_whitespace_are_kept_exactly() {
        for payload in [&b"{not json"[..], b" {\"a\":1}\n", b"", b"\"quoted\"x"] {
            let (v, bytes) = round_trip(payload);
            assert_eq!(v["encoding"], "text", "{v}");
            assert_eq!(bytes, payload);
        }
        // A JSON string stays embedded: its quotes tell it from text.
        let (v, _) = round_trip(b"\"quoted\"");
        assert_eq!(v["payload"], "quoted");
        assert!(v.get("encoding").is_none());
    }
}
