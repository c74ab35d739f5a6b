//! Payload size as AWS counts it: the bytes of the value's compact JSON text.
//!
//! Computed by walking the value, with no allocation, and cut short once past the limit, so
//! that checking every state output stays cheap.

use serde_json::Value;

/// The Step Functions payload limit: 256 KiB of UTF-8 JSON.
pub const PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;

/// Whether `v` serialises to more than `limit` bytes.
pub fn exceeds(v: &Value, limit: usize) -> bool {
    // Floats are costly to measure exactly; count them at their longest first, and measure
    // exactly only when that bound does not settle it.
    let mut budget = limit as isize;
    if fits(v, &mut budget, false) {
        return false;
    }
    let mut budget = limit as isize;
    !fits(v, &mut budget, true)
}

/// An upper bound on the size of `v` (exact but for floats), or `None` when `v` exceeds
/// `limit` bytes.
pub fn measure(v: &Value, limit: usize) -> Option<usize> {
    let mut budget = limit as isize;
    if fits(v, &mut budget, false) {
        return Some((limit as isize - budget) as usize);
    }
    let mut budget = limit as isize;
    fits(v, &mut budget, true).then(|| (limit as isize - budget) as usize)
}

/// Exact compact-JSON length of `v` (as `serde_json::to_string(v).len()`).
pub fn json_len(v: &Value) -> usize {
    let mut budget = isize::MAX;
    fits(v, &mut budget, true);
    (isize::MAX - budget) as usize
}

/// The longest text serde_json writes for an f64, e.g. `-2.2250738585072014e-308`.
const MAX_FLOAT_LEN: usize = 24;

fn fits(v: &Value, budget: &mut isize, exact: bool) -> bool {
    let n = match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) if !exact && n.is_f64() => MAX_FLOAT_LEN,
        Value::Number(n) => number_len(n),
        Value::String(s) if !exact => string_len_bound(s),
        Value::String(s) => string_len(s),
        Value::Array(a) => {
            *budget -= (2 + a.len().saturating_sub(1)) as isize;
            for x in a {
                if !fits(x, budget, exact) {
                    return false;
                }
            }
            0
        }
        Value::Object(m) => {
            // braces, and per entry a colon plus a comma between entries
            *budget -= (2 + m.len() + m.len().saturating_sub(1)) as isize;
            for (k, x) in m {
                *budget -= if exact {
                    string_len(k)
                } else {
                    string_len_bound(k)
                } as isize;
                if !fits(x, budget, exact) {
                    return false;
                }
            }
            0
        }
    };
    *budget -= n as isize;
    *budget >= 0
}

fn number_len(n: &serde_json::Number) -> usize {
    if let Some(u) = n.as_u64() {
        digits(u)
    } else if let Some(i) = n.as_i64() {
        1 + digits(i.unsigned_abs())
    } else {
        // Floats are rare in hot payloads; let serde_json format them exactly.
        let mut w = Counter(0);
        let _ = serde_json::to_writer(&mut w, n);
        w.0
    }
}

fn digits(mut u: u64) -> usize {
    let mut d = 1;
    while u >= 10 {
        u /= 10;
        d += 1;
    }
    d
}

/// At least [`string_len`]: every control character counted as a `\u00XX` escape. Branch-free,
/// so the compiler vectorises it.
fn string_len_bound(s: &str) -> usize {
    let extra: usize = s
        .bytes()
        .map(|b| usize::from(b < 0x20) * 5 + usize::from(b == b'"' || b == b'\\'))
        .sum();
    s.len() + 2 + extra
}

fn string_len(s: &str) -> usize {
    let mut n = s.len() + 2;
    for b in s.bytes() {
        match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => n += 1,
            0..=0x1f => n += 5,
            _ => {}
        }
    }
    n
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_len_matches_serde_json() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(-12345),
            json!(1.5e300),
            json!(0.1),
            json!("a\"b\\c\n\u{1}é"),
            json!({"a": [1, {"b": null}], "c": "", "d": {}}),
            json!([]),
        ] {
            assert_eq!(
                json_len(&v),
                serde_json::to_string(&v).unwrap().len(),
                "{v}"
            );
        }
    }

    #[test]
    fn float_bound_holds() {
        for f in [-2.2250738585072014e-308, -1.7976931348623157e308, 0.1 + 0.2] {
            assert!(json_len(&json!(f)) <= MAX_FLOAT_LEN);
        }
        let v = json!([0.5, 0.25]); // 10 bytes exactly, 50 by the bound
        assert!(!exceeds(&v, 10));
        assert!(exceeds(&v, 9));
    }

    #[test]
    fn exceeds_is_exact_at_the_limit() {
        let v = json!("x".repeat(10)); // 12 bytes
        assert!(!exceeds(&v, 12));
        assert!(exceeds(&v, 11));
    }
}
