//! Payload size and nesting depth, as the limits count them: the bytes of the value's
//! compact JSON text (AWS's 256 KiB) and how many arrays and objects are nested in it.
//!
//! Computed by walking the value, with no allocation, and cut short once past a limit, so
//! that checking every state output stays cheap. The walk recurses at most [`MAX_DEPTH`]
//! levels: the VM fails any value deeper than that where it is produced, so every other
//! recursive walk over an execution's values (clone, drop, serialise, compare) stays shallow.

use serde_json::Value;

/// The Step Functions payload limit: 256 KiB of UTF-8 JSON.
pub const PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;

/// The deepest nesting of arrays and objects a value may have. AWS documents none; deeper
/// values would overflow the stack of recursive walks, and 100 stays below serde_json's
/// parse limit (127 levels) with room for the envelope a sink wraps a result in, so every
/// output can be read back by common JSON clients.
pub const MAX_DEPTH: usize = 100;

/// A value's size and nesting depth, or a bound on them. A scalar has depth 0, `[1]` 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    pub bytes: usize,
    pub depth: usize,
}

impl Extent {
    pub const fn new(bytes: usize, depth: usize) -> Extent {
        Extent { bytes, depth }
    }

    /// Within `limit` bytes and [`MAX_DEPTH`].
    pub fn within(self, limit: usize) -> bool {
        self.bytes <= limit && self.depth <= MAX_DEPTH
    }

    /// Two values side by side (in one container, or one inserted into the other at the
    /// top): their bytes add, the deeper one sets the depth.
    pub fn beside(self, other: Extent) -> Extent {
        Extent {
            bytes: self.bytes.saturating_add(other.bytes),
            depth: self.depth.max(other.depth),
        }
    }

    /// `levels` containers deeper, adding `bytes` of their own text.
    pub fn nested(self, levels: usize, bytes: usize) -> Extent {
        Extent {
            bytes: self.bytes.saturating_add(bytes),
            depth: self.depth.saturating_add(levels),
        }
    }

    /// The bound of a value built from a skeleton of extent `self` holding up to `copies`
    /// parts of an input of extent `input`, each at most the skeleton's depth down.
    pub fn with_input(self, copies: usize, input: Extent) -> Extent {
        if copies == 0 {
            return self;
        }
        Extent {
            bytes: self
                .bytes
                .saturating_add(copies.saturating_mul(input.bytes)),
            depth: self.depth.saturating_add(input.depth),
        }
    }
}

/// A bound on the extent of `v` (exact but for floats), or `None` when `v` exceeds `limit`
/// bytes or [`MAX_DEPTH`].
pub fn measure(v: &Value, limit: usize) -> Option<Extent> {
    // Floats are costly to measure exactly; count them at their longest first, and measure
    // exactly only when that bound does not settle it.
    let mut walk = Walk::new(limit, false);
    if walk.fits(v, 0) {
        return Some(walk.extent(limit));
    }
    if walk.too_deep {
        return None;
    }
    let mut walk = Walk::new(limit, true);
    walk.fits(v, 0).then(|| walk.extent(limit))
}

/// Whether `v` nests deeper than [`MAX_DEPTH`]: to say which limit a failed [`measure`] hit.
pub fn too_deep(v: &Value) -> bool {
    let mut walk = Walk::new(usize::MAX / 2, false);
    !walk.fits(v, 0) && walk.too_deep
}

/// The exact extent of `v`, a value within [`MAX_DEPTH`] (past it, the count stops there).
pub fn extent(v: &Value) -> Extent {
    walk_whole(v, true)
}

/// A bound on the extent of `v`, a value within [`MAX_DEPTH`]: [`extent`] but for floats,
/// counted at their longest rather than formatted.
pub fn bound(v: &Value) -> Extent {
    walk_whole(v, false)
}

fn walk_whole(v: &Value, exact: bool) -> Extent {
    let limit = isize::MAX as usize;
    let mut walk = Walk::new(limit, exact);
    walk.fits(v, 0);
    walk.extent(limit)
}

/// Exact compact-JSON length of `v` (as `serde_json::to_string(v).len()`), a value within
/// [`MAX_DEPTH`].
pub fn json_len(v: &Value) -> usize {
    extent(v).bytes
}

/// The bytes left for a value built from many parts (a template's fields, the items of
/// `States.Array`; `States.Format` checks its text's length itself). Each part is charged
/// as it is built, so that building stops once the parts alone pass the limit, before the
/// value holds thousands of copies of a payload. A part nested too deep is not charged: the
/// state's own check reports it.
pub struct Budget {
    left: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget { left: limit }
    }

    /// Charges `v`'s bytes; false once the parts so far are over the limit.
    pub fn charge(&mut self, v: &Value) -> bool {
        match measure(v, self.left) {
            Some(e) => {
                self.left -= e.bytes;
                true
            }
            None => too_deep(v),
        }
    }
}

/// The longest text serde_json writes for an f64, e.g. `-2.2250738585072014e-308` (and
/// JSONata's number format, `-1.7976931348623157e+308`, is no longer).
pub const MAX_FLOAT_LEN: usize = 24;

/// A bound on a value built from parts, as `(skeleton, per_input)`: the value is at most
/// `skeleton.with_input(per_input, input)` (see [`Extent::with_input`]).
pub type LinearBound = (Extent, usize);

/// The bound of an object whose fields are bounded by `fields`: each key with its quotes,
/// colon and comma (escapes at most double a key), the braces, one level deeper.
pub fn object_bound<'a>(fields: impl IntoIterator<Item = (&'a str, LinearBound)>) -> LinearBound {
    let (inner, k) = fields
        .into_iter()
        .fold((Extent::default(), 0), |(c, k), (key, (fc, fk))| {
            (c.beside(fc.nested(0, key.len() * 2 + 4)), k + fk)
        });
    (inner.nested(1, 2), k)
}

/// The bound of an array whose items are bounded by `items`: each with its comma, the
/// brackets, one level deeper.
pub fn array_bound(items: impl IntoIterator<Item = LinearBound>) -> LinearBound {
    let (inner, k) = items
        .into_iter()
        .fold((Extent::default(), 0), |(c, k), (ic, ik)| {
            (c.beside(ic.nested(0, 1)), k + ik)
        });
    (inner.nested(1, 2), k)
}

struct Walk {
    budget: isize,
    exact: bool,
    depth: usize,
    too_deep: bool,
}

impl Walk {
    fn new(limit: usize, exact: bool) -> Walk {
        Walk {
            budget: limit as isize,
            exact,
            depth: 0,
            too_deep: false,
        }
    }

    fn extent(&self, limit: usize) -> Extent {
        Extent::new((limit as isize - self.budget) as usize, self.depth)
    }

    /// Counts `v`, found `level` containers down, against the budget.
    fn fits(&mut self, v: &Value, level: usize) -> bool {
        let n = match v {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!b),
            Value::Number(n) if !self.exact && n.is_f64() => MAX_FLOAT_LEN,
            Value::Number(n) => number_len(n),
            Value::String(s) => string_len(s),
            Value::Array(_) | Value::Object(_) if level == MAX_DEPTH => {
                self.too_deep = true;
                return false;
            }
            Value::Array(a) => {
                self.depth = self.depth.max(level + 1);
                self.budget -= (2 + a.len().saturating_sub(1)) as isize;
                for x in a {
                    if !self.fits(x, level + 1) {
                        return false;
                    }
                }
                0
            }
            Value::Object(m) => {
                self.depth = self.depth.max(level + 1);
                // braces, and per entry a colon plus a comma between entries
                self.budget -= (2 + m.len() + m.len().saturating_sub(1)) as isize;
                for (k, x) in m {
                    self.budget -= string_len(k) as isize;
                    if !self.fits(x, level + 1) {
                        return false;
                    }
                }
                0
            }
        };
        self.budget -= n as isize;
        self.budget >= 0
    }
}

fn number_len(n: &serde_json::Number) -> usize {
    if let Some(u) = n.as_u64() {
        digits(u)
    } else if let Some(i) = n.as_i64() {
        1 + digits(i.unsigned_abs())
    } else {
        // Only exact walks get here (others count floats at their longest): let serde_json
        // format it.
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

/// The length of a string's JSON text: its quotes, and what serde_json's escapes add.
fn string_len(s: &str) -> usize {
    // A table lookup per byte: fewer instructions than a `match`, and than a vectorised
    // count on the short strings payloads are made of.
    let extra: usize = s
        .bytes()
        .map(|b| usize::from(ESCAPE_EXTRA[b as usize]))
        .sum();
    s.len() + 2 + extra
}

/// The bytes serde_json's escape of each byte adds: one for `\"`, `\\`, `\n`, `\r`, `\t`,
/// `\b` and `\f`, five for the other control characters (`\u00XX`).
static ESCAPE_EXTRA: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = 5;
        b += 1;
    }
    let short = [b'"', b'\\', b'\n', b'\r', b'\t', 0x08, 0x0c];
    let mut i = 0;
    while i < short.len() {
        table[short[i] as usize] = 1;
        i += 1;
    }
    table
};

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
    fn a_budget_charges_parts_until_they_pass_the_limit_and_leaves_depth_to_the_state() {
        let mut b = Budget::new(10);
        assert!(b.charge(&json!("abc"))); // 5 bytes
        assert!(b.charge(&json!("ab"))); // 4 bytes
        assert!(!b.charge(&json!([1])));
        let mut deep = json!(1);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(Budget::new(10_000).charge(&deep));
    }

    fn exceeds(v: &Value, limit: usize) -> bool {
        measure(v, limit).is_none()
    }

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
    fn number_lengths_are_serde_jsons() {
        let numbers = [
            json!(21.5),
            json!(-0.0),
            json!(1e15),
            json!(1e16),
            json!(1.5e-7),
            json!(0.1 + 0.2),
            json!(-1.7976931348623157e308),
            json!(5e-324),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(0),
        ];
        for n in numbers {
            let Value::Number(x) = &n else { unreachable!() };
            assert_eq!(number_len(x), n.to_string().len(), "{n}");
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
        let nested = json!({"a": [0.5, {"b\n": -1e300}], "c": "\u{1}"});
        let (exact, bounded) = (extent(&nested), bound(&nested));
        assert!(bounded.bytes >= exact.bytes && bounded.bytes <= exact.bytes + 2 * MAX_FLOAT_LEN);
        assert_eq!((bounded.depth, exact.depth), (3, 3));
    }

    #[test]
    fn depth_counts_nested_containers_and_stops_past_the_limit() {
        assert_eq!(extent(&json!(1)).depth, 0);
        assert_eq!(extent(&json!({"a": [1, {"b": []}]})).depth, 4);
        let mut v = json!(0);
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        assert_eq!(
            measure(&v, PAYLOAD_LIMIT_BYTES).map(|e| e.depth),
            Some(MAX_DEPTH)
        );
        assert!(!too_deep(&v));
        let v = json!({ "a": v });
        assert_eq!(measure(&v, PAYLOAD_LIMIT_BYTES), None);
        assert!(too_deep(&v));
    }

    #[test]
    fn exceeds_is_exact_at_the_limit() {
        let v = json!("x".repeat(10)); // 12 bytes
        assert!(!exceeds(&v, 12));
        assert!(exceeds(&v, 11));
    }
}
