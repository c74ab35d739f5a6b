//! serde_json values to and from jsonata-core's `JValue`.

use jsonata_core::value::JValue;
use serde_json::{Map, Number, Value};

pub fn to_jvalue(v: &Value) -> JValue {
    match v {
        Value::Null => JValue::Null,
        Value::Bool(b) => JValue::Bool(*b),
        Value::Number(n) => JValue::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => JValue::string(s.as_str()),
        Value::Array(a) => JValue::array(a.iter().map(to_jvalue).collect()),
        Value::Object(m) => JValue::object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_jvalue(v)))
                .collect::<indexmap::IndexMap<_, _>>(),
        ),
    }
}

/// A JSON value; `None` for what JSON cannot hold (functions, regexes, non-finite numbers).
/// Integral numbers become JSON integers, as AWS prints them. `undefined` inside arrays and
/// objects is dropped, as JSONata drops it when it serialises.
pub fn from_jvalue(v: &JValue) -> Option<Value> {
    Some(match v {
        JValue::Null | JValue::Undefined => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) => number(*n)?,
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(a) => Value::Array(
            a.iter()
                .filter(|x| !x.is_undefined())
                .map(from_jvalue)
                .collect::<Option<Vec<_>>>()?,
        ),
        JValue::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, x) in m.iter() {
                if !x.is_undefined() {
                    out.insert(k.clone(), from_jvalue(x)?);
                }
            }
            Value::Object(out)
        }
        _ => return None,
    })
}

/// A JSON number for a JSONata number: integral values within 2^53 as integers.
pub fn number(n: f64) -> Option<Value> {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Some(Value::Number(Number::from(n as i64)))
    } else {
        Number::from_f64(n).map(Value::Number)
    }
}
