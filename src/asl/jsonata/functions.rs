//! The functions AWS adds to JSONata, and `$now()`/`$millis()` frozen to the step's time.
//!
//! AWS documents them in "Transforming data with JSONata in Step Functions":
//! `$partition(array, size)`, `$range(start, end, step)`, `$hash(value, algorithm)`,
//! `$random([seed])`, `$uuid()`, `$parse(jsonString)`.

use super::convert::{from_jvalue, to_jvalue};
use crate::asl::time::{iso8601, Millis};
use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError};
use jsonata_core::value::JValue;
use std::cell::RefCell;
use std::rc::Rc;

type Result = std::result::Result<JValue, EvaluatorError>;

fn fail(name: &str, why: &str) -> EvaluatorError {
    EvaluatorError::EvaluationError(format!("${name}: {why}"))
}

fn number_arg(
    name: &str,
    args: &[JValue],
    i: usize,
    what: &str,
) -> std::result::Result<f64, EvaluatorError> {
    args.get(i)
        .and_then(JValue::as_f64)
        .ok_or_else(|| fail(name, &format!("the {what} argument must be a number")))
}

pub fn register(ev: &mut Evaluator, now: Millis, seed: u64) {
    // The same generator for `$random()` and `$uuid()` across one evaluation.
    let rng = Rc::new(RefCell::new(fastrand::Rng::with_seed(
        seed ^ (now as u64).rotate_left(17),
    )));
    let _ = ev.register_fn("partition", partition);
    let _ = ev.register_fn("range", range);
    let _ = ev.register_fn("hash", hash);
    let _ = ev.register_fn("parse", parse);
    let _ = ev.register_fn_override("pad", pad);
    let uuid_rng = rng.clone();
    let _ = ev.register_fn("uuid", move |_: &[JValue]| -> Result {
        let bytes = uuid_rng.borrow_mut().u128(..).to_le_bytes();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        Ok(JValue::string(id.to_string()))
    });
    let _ = ev.register_fn_override("random", move |args: &[JValue]| -> Result {
        match args.first().filter(|a| !a.is_undefined()) {
            // A seed makes the value repeatable, as AWS documents.
            Some(seed) => {
                let s = seed
                    .as_f64()
                    .ok_or_else(|| fail("random", "the seed must be a number"))?;
                Ok(JValue::Number(fastrand::Rng::with_seed(s.to_bits()).f64()))
            }
            None => Ok(JValue::Number(rng.borrow_mut().f64())),
        }
    });
    let _ = ev.register_fn_override("now", move |args: &[JValue]| -> Result {
        if args.iter().all(JValue::is_undefined) {
            return Ok(JValue::string(iso8601(now)));
        }
        now_formatted(now, args)
    });
    let _ = ev.register_fn_override("millis", move |_: &[JValue]| -> Result {
        Ok(JValue::Number(now as f64))
    });
}

/// `$now(picture, timezone)` is `$fromMillis($millis(), picture, timezone)`: the library's
/// own formatter, so the two agree on every picture.
fn now_formatted(now: Millis, args: &[JValue]) -> Result {
    let mut context = Context::new();
    context.bind("m".to_string(), JValue::Number(now as f64));
    for (name, arg) in ["p", "t"].iter().zip(args) {
        context.bind(name.to_string(), arg.clone());
    }
    let ast = jsonata_core::parser::parse("$fromMillis($m, $p, $t)")
        .map_err(|e| fail("now", &e.to_string()))?;
    Evaluator::with_context(context).evaluate(&ast, &JValue::Undefined)
}

/// `$partition(array, size)`: the array cut into arrays of `size` items (the last shorter).
fn partition(args: &[JValue]) -> Result {
    let items = match args.first() {
        Some(JValue::Array(a)) => a.to_vec(),
        Some(v) if !v.is_undefined() => vec![v.clone()],
        _ => return Err(fail("partition", "the first argument must be an array")),
    };
    let size = number_arg("partition", args, 1, "second")?;
    if size < 1.0 || size.fract() != 0.0 {
        return Err(fail(
            "partition",
            "the chunk size must be a positive integer",
        ));
    }
    Ok(JValue::array(
        items
            .chunks(size as usize)
            .map(|c| JValue::array(c.to_vec()))
            .collect(),
    ))
}

/// `$range(start, end, step)`: numbers from `start` to `end` inclusive, `step` apart.
fn range(args: &[JValue]) -> Result {
    let start = number_arg("range", args, 0, "first")?;
    let end = number_arg("range", args, 1, "second")?;
    let step = number_arg("range", args, 2, "third")?;
    if step == 0.0 {
        return Err(fail("range", "the step must not be zero"));
    }
    let count = ((end - start) / step).floor() + 1.0;
    if count > 10_000_000.0 {
        return Err(fail("range", "the range has more than 10,000,000 items"));
    }
    let items = (0..count.max(0.0) as usize)
        .map(|i| JValue::Number(start + step * i as f64))
        .collect();
    // A sequence, as AWS returns it: one item is the item itself.
    Ok(JValue::sequence(items))
}

/// `$hash(value, algorithm)`: the hex digest of a string (MD5, SHA-1, SHA-256, SHA-384,
/// SHA-512), as `States.Hash` computes it.
fn hash(args: &[JValue]) -> Result {
    let data = match args.first() {
        Some(JValue::String(s)) => s.to_string(),
        Some(v) if !v.is_undefined() => from_jvalue(v)
            .map(|j| crate::asl::error::json_text(&j))
            .map_err(|_| fail("hash", "the value cannot be hashed"))?,
        _ => return Err(fail("hash", "the first argument must be a string")),
    };
    let algorithm = args
        .get(1)
        .and_then(JValue::as_str)
        .ok_or_else(|| fail("hash", "the second argument must be the algorithm's name"))?;
    crate::asl::intrinsics::hash_hex(&data, algorithm)
        .map(JValue::string)
        .ok_or_else(|| {
            fail(
                "hash",
                &format!(
                    "unsupported algorithm '{algorithm}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                ),
            )
        })
}

/// The widest `$pad` result, in characters: four times the payload limit, as no output can
/// hold more; `$pad("x", -1000000000)` would otherwise build a 1 GB string in one allocation,
/// past any memory budget.
const MAX_PAD_WIDTH: usize = 4 * crate::asl::size::PAYLOAD_LIMIT_BYTES;

/// `$pad(str, width, char)`, as jsonata-core's (and jsonata-js's) but refusing widths over
/// [`MAX_PAD_WIDTH`].
fn pad(args: &[JValue]) -> Result {
    let string = match args.first() {
        Some(JValue::String(s)) => s.clone(),
        Some(JValue::Null) => return Ok(JValue::Null),
        Some(JValue::Undefined) | None => return Ok(JValue::Undefined),
        _ => return Err(fail("pad", "the first argument must be a string")),
    };
    // An undefined width leaves the string as it is (jsonata-js: `NaN > 0` is false).
    let width = match args.get(1) {
        Some(JValue::Number(n)) => *n as i32,
        Some(JValue::Undefined) | None => return Ok(JValue::String(string)),
        _ => return Err(fail("pad", "the second argument must be a number")),
    };
    let abs_width = width.unsigned_abs() as usize;
    if abs_width > MAX_PAD_WIDTH {
        return Err(fail(
            "pad",
            &format!("the width {width} is beyond the limit of {MAX_PAD_WIDTH} characters"),
        ));
    }
    let fill: Vec<char> = match args.get(2) {
        Some(JValue::String(s)) if !s.is_empty() => s.chars().collect(),
        _ => vec![' '],
    };
    let Some(needed) = abs_width
        .checked_sub(string.chars().count())
        .filter(|n| *n > 0)
    else {
        return Ok(JValue::String(string));
    };
    let padding: String = fill.iter().cycle().take(needed).collect();
    Ok(JValue::string(if width < 0 {
        format!("{padding}{string}")
    } else {
        format!("{string}{padding}")
    }))
}

/// `$parse(text)`: JSON text to a value.
fn parse(args: &[JValue]) -> Result {
    let text = args
        .first()
        .and_then(JValue::as_str)
        .ok_or_else(|| fail("parse", "the argument must be a string"))?;
    crate::asl::json::from_str(text)
        .map(|v| to_jvalue(&v))
        .map_err(|e| fail("parse", &format!("not valid JSON: {e}")))
}
