//! serde_json values to and from jsonata-core's `JValue`.

use crate::asl::size;
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

/// Why a JSONata value has no JSON form.
#[derive(Debug, PartialEq, Eq)]
pub enum NotJson {
    /// A function, a regex or a non-finite number.
    Unsupported,
    /// Arrays and objects nested deeper than [`size::MAX_DEPTH`].
    TooDeep,
}

/// A JSON value for a JSONata one. Integral numbers become JSON integers, as AWS prints
/// them. `undefined` inside arrays and objects is dropped, as JSONata drops it when it
/// serialises. Converting stops at [`size::MAX_DEPTH`], so that a value an expression nests
/// thousands deep fails the state instead of the stack.
pub fn from_jvalue(v: &JValue) -> Result<Value, NotJson> {
    convert(v, 0)
}

fn convert(v: &JValue, level: usize) -> Result<Value, NotJson> {
    Ok(match v {
        JValue::Null | JValue::Undefined => Value::Null,
        JValue::Bool(b) => Value::Bool(*b),
        JValue::Number(n) => number(*n).ok_or(NotJson::Unsupported)?,
        JValue::String(s) => Value::String(s.to_string()),
        JValue::Array(_) | JValue::Object(_) if level == size::MAX_DEPTH => {
            return Err(NotJson::TooDeep)
        }
        JValue::Array(a) => Value::Array(
            a.iter()
                .filter(|x| !x.is_undefined())
                .map(|x| convert(x, level + 1))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        JValue::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (k, x) in m.iter() {
                if !x.is_undefined() {
                    out.insert(k.clone(), convert(x, level + 1)?);
                }
            }
            Value::Object(out)
        }
        _ => return Err(NotJson::Unsupported),
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
