//! The AWS JSON 1.0 protocol as Step Functions speaks it: `POST /` with
//! `X-Amz-Target: AWSStepFunctions.<Operation>`, JSON bodies with AWS's member names, and
//! errors as HTTP 400 with `{"__type": "com.amazonaws.swf.service.v2.model#<Code>",
//! "message": …}` — botocore keeps what follows `#` as the error code, which is how
//! `client.exceptions.ExecutionDoesNotExist` and friends are raised.

use crate::asl::time::Millis;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
pub const TARGET_PREFIX: &str = "AWSStepFunctions.";
const ERROR_NAMESPACE: &str = "com.amazonaws.swf.service.v2.model#";

/// An AWS-shaped error: its code (the exception's name in botocore's service model) and
/// message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// A required member is absent, worded as AWS words it.
    pub fn missing(member: &str) -> ApiError {
        ApiError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }

    pub fn body(&self) -> Value {
        serde_json::json!({
            "__type": format!("{ERROR_NAMESPACE}{}", self.code),
            "message": self.message,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(v) = HeaderValue::from_str(self.code) {
            headers.insert("x-amzn-errortype", v);
        }
        response
    }
}

/// A successful reply: the JSON object, with AWS's content type.
pub fn ok(body: Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Timestamps on the wire: epoch seconds with a fraction, as botocore parses them for the
/// JSON protocol.
pub fn timestamp(ms: Millis) -> Value {
    Value::from(ms as f64 / 1000.0)
}

/// A request body: a JSON object, read member by member.
pub struct Body(pub Map<String, Value>);

impl Body {
    /// Parses a request body. An empty body is an empty object (aws-cli sends `{}`, others
    /// may send nothing for operations without members).
    pub fn parse(bytes: &[u8]) -> Result<Body, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Body(m)),
            Ok(_) => Err(ApiError::new(
                "SerializationException",
                "The request body must be a JSON object",
            )),
            Err(e) => Err(ApiError::new(
                "SerializationException",
                format!("The request body is not valid JSON: {e}"),
            )),
        }
    }

    /// An optional string member; any other type is a `SerializationException`, as AWS
    /// reports type mismatches.
    pub fn opt_str(&self, member: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::new(
                "SerializationException",
                format!("'{member}' must be a string"),
            )),
        }
    }

    pub fn str(&self, member: &str) -> Result<&str, ApiError> {
        self.opt_str(member)?
            .ok_or_else(|| ApiError::missing(member))
    }

    pub fn opt_bool(&self, member: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::new(
                "SerializationException",
                format!("'{member}' must be a boolean"),
            )),
        }
    }

    pub fn opt_u64(&self, member: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::new(
                    "SerializationException",
                    format!("'{member}' must be a non-negative integer"),
                )
            }),
        }
    }
}

/// `[A-Za-z0-9-_]`, 1 to 80 characters: names of executions, state machines, activities
/// (AWS allows more characters; these are the ones safe everywhere, ARNs included).
pub fn valid_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Pages of a listing: `nextToken` is the index of the next item as text.
pub fn page<T>(
    items: Vec<T>,
    max_results: Option<u64>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match next_token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::new("InvalidToken", format!("Invalid nextToken: {t}")))?,
    };
    let max = match max_results {
        None | Some(0) => 100,
        Some(n) if n > 1000 => {
            return Err(ApiError::new(
                "ValidationException",
                format!("1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000"),
            ))
        }
        Some(n) => n as usize,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = (start + max < total).then(|| (start + max).to_string());
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_botocore_shape() {
        let e = ApiError::new("ExecutionDoesNotExist", "Execution Does Not Exist: 'x'");
        assert_eq!(
            e.body(),
            serde_json::json!({
                "__type": "com.amazonaws.swf.service.v2.model#ExecutionDoesNotExist",
                "message": "Execution Does Not Exist: 'x'"
            })
        );
    }

    #[test]
    fn bodies() {
        assert!(Body::parse(b"").unwrap().0.is_empty());
        assert_eq!(
            Body::parse(b"{").err().unwrap().code,
            "SerializationException"
        );
        assert_eq!(
            Body::parse(b"[]").err().unwrap().code,
            "SerializationException"
        );
        let b = Body::parse(br#"{"a": "x", "n": 3, "bad": 1}"#).unwrap();
        assert_eq!(b.str("a").unwrap(), "x");
        assert_eq!(b.str("z").err().unwrap().code, "ValidationException");
        assert_eq!(
            b.opt_str("bad").err().unwrap().code,
            "SerializationException"
        );
        assert_eq!(b.opt_u64("n").unwrap(), Some(3));
    }

    #[test]
    fn paging() {
        let (p, next) = page((0..5).collect(), Some(2), None).unwrap();
        assert_eq!((p, next.as_deref()), (vec![0, 1], Some("2")));
        let (p, next) = page((0..5).collect(), Some(2), Some("4")).unwrap();
        assert_eq!((p, next), (vec![4], None));
        assert!(page::<u8>(vec![], None, Some("x")).is_err());
    }
}
