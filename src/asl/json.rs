//! JSON text read into values as Step Functions reads it.
//!
//! AWS parses with Jackson, and a number keeps the kind its text has: `-0` is the integer
//! 0 (written back `0`), `-0.0` the double −0.0 (written back `-0.0`). serde_json reads
//! both as the double −0.0, to keep the sign. Every text that becomes a value an execution
//! sees — inputs, task results, `States.StringToJson`, `$parse`, definitions — is read
//! here, so a `-0` comes out of the engine as AWS writes it.
//!
//! Integers past 64 bits (Jackson's `BigInteger`) still become the nearest double: keeping
//! their digits would need serde_json's `arbitrary_precision`, which stores every number of
//! every event as a heap string (README, "Behaviour worth knowing").

use serde_json::Value;

/// Reads JSON text as Jackson would (see the module doc).
pub fn from_slice(text: &[u8]) -> serde_json::Result<Value> {
    let value = serde_json::from_slice(text)?;
    if !may_hold_integer_negative_zero(text) {
        return Ok(value);
    }
    // Rare: read it again with the `-` of each integer `-0` dropped.
    serde_json::from_slice(&without_integer_negative_zero(text))
}

/// [`from_slice`] of a `str`.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    from_slice(text.as_bytes())
}

/// Whether `text` has a `-0` not followed by a digit, `.` or an exponent: an integer
/// negative zero, or the same characters inside a string. Dates (`2024-01-05`) and
/// `-0.5` are not.
fn may_hold_integer_negative_zero(text: &[u8]) -> bool {
    // `memchr` over `-` rather than `memmem` over `-0`: setting up a `memmem` searcher per
    // event cost ~2.4 k instructions (docs/performance.md).
    memchr::memchr_iter(b'-', text).any(|at| {
        text.get(at + 1) == Some(&b'0')
            && !matches!(text.get(at + 2), Some(b'0'..=b'9' | b'.' | b'e' | b'E'))
    })
}

/// `text` with the sign of every integer `-0` outside strings removed.
fn without_integer_negative_zero(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for (at, &byte) in text.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte == b'-'
            && text.get(at + 1) == Some(&b'0')
            && !matches!(text.get(at + 2), Some(b'0'..=b'9' | b'.' | b'e' | b'E'))
        {
            continue;
        }
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(json: &str) -> String {
        serde_json::to_string(&from_str(json).expect("json")).expect("text")
    }

    #[test]
    fn integer_negative_zero_reads_as_zero_and_double_negative_zero_keeps_its_sign() {
        assert_eq!(text_of("-0"), "0");
        assert_eq!(
            text_of(r#"{"a":-0,"b":[-0 ,-0.0],"c":-0e0}"#),
            r#"{"a":0,"b":[0,-0.0],"c":-0.0}"#
        );
    }

    #[test]
    fn strings_dates_and_other_numbers_are_untouched() {
        assert_eq!(
            text_of(r#"{"d":"2024-01-05","s":"x -0 y","e":"\"-0","n":-10,"f":-0.25}"#),
            r#"{"d":"2024-01-05","s":"x -0 y","e":"\"-0","n":-10,"f":-0.25}"#
        );
    }

    #[test]
    fn invalid_text_is_refused_as_serde_json_refuses_it() {
        assert!(from_str("-").is_err());
        assert!(from_str("-01").is_err());
        assert!(from_str(r#"{"a":-0"#).is_err());
    }
}
