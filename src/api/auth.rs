//! Who may call the API: `Authorization: Bearer <bearer_token>`, or a SigV4 signature
//! (`AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`) made with the configured
//! access key id and secret access key, as aws-cli, boto3 and the SDKs sign.
//!
//! A SigV4 request is verified as AWS verifies it: the access key id, the credential scope
//! (`DATE/REGION/states/aws4_request`, the API's region), the request time within 5 minutes
//! of ours, then the signature itself, recomputed over AWS's canonical request (method, path,
//! query, the headers the client signed, the body's SHA-256) and compared in constant time.
//! The signing key and the HMAC are `aws-sigv4`'s (the crate that signs our SQS requests);
//! the canonical request is built here, from the headers the client says it signed, because
//! the crate only builds it for requests it signs itself.
//!
//! Errors are those AWS's JSON-protocol services answer with (botocore raises them by code):
//! `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
//! `UnrecognizedClientException` (unknown key id or token), `InvalidSignatureException`
//! (wrong signature, wrong scope, `Signature expired: …`, `Signature not yet current: …`).

use super::config::ApiSecurity;
use super::protocol::ApiError;
use axum::http::{HeaderMap, Method, Uri};
use chrono::{DateTime, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// How far a request's time may be from ours, either way (AWS: 5 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// The service name in the credential scope.
pub const SERVICE: &str = "states";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const AMZ_DATE: &str = "%Y%m%dT%H%M%SZ";

/// A request as the check sees it.
pub struct Request<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks a request's credentials against `security` (which authenticates something);
/// `now` is the server's time.
pub fn check(
    security: &ApiSecurity,
    region: &str,
    request: &Request<'_>,
    now: SystemTime,
) -> Result<(), ApiError> {
    let Some(value) = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return match &security.bearer_token {
            Some(want) if constant_time_eq(token.trim().as_bytes(), want.expose().as_bytes()) => {
                Ok(())
            }
            _ => Err(invalid_token()),
        };
    }
    if let Some(fields) = value.strip_prefix(ALGORITHM) {
        return match &security.sigv4 {
            Some(key) => verify_sigv4(
                &key.access_key_id,
                key.secret_access_key.expose(),
                region,
                fields,
                request,
                now,
            ),
            None => Err(invalid_token()),
        };
    }
    Err(ApiError::new(
        "IncompleteSignatureException",
        format!("Unsupported Authorization Type (expected {ALGORITHM} or Bearer)"),
    ))
}

fn invalid_token() -> ApiError {
    ApiError::new(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

fn invalid_signature(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidSignatureException", message)
}

fn mismatch() -> ApiError {
    invalid_signature(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service \
         documentation for details.",
    )
}

/// `Credential=…, SignedHeaders=…, Signature=…` (after the algorithm name).
struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(fields: &str) -> Result<Authorization<'_>, ApiError> {
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let Some((name, value)) = field.trim().split_once('=') else {
            continue;
        };
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let missing: Vec<String> = [
        ("Credential", credential.is_none()),
        ("SignedHeaders", signed_headers.is_none()),
        ("Signature", signature.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
    .collect();
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => Ok(Authorization {
            credential,
            signed_headers,
            signature,
        }),
        _ => Err(ApiError::new(
            "IncompleteSignatureException",
            missing.join(" "),
        )),
    }
}

fn verify_sigv4(
    access_key_id: &str,
    secret: &str,
    region: &str,
    fields: &str,
    request: &Request<'_>,
    now: SystemTime,
) -> Result<(), ApiError> {
    let auth = parse_authorization(fields)?;
    // KEY/DATE/REGION/SERVICE/aws4_request
    let scope: Vec<&str> = auth.credential.split('/').collect();
    let [key, date, scope_region, service, terminator] = scope[..] else {
        return Err(ApiError::new(
            "IncompleteSignatureException",
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{}'",
                auth.credential
            ),
        ));
    };
    if !constant_time_eq(key.as_bytes(), access_key_id.as_bytes()) {
        return Err(invalid_token());
    }
    if scope_region != region {
        return Err(invalid_signature(format!(
            "Credential should be scoped to a valid region, not '{scope_region}'. "
        )));
    }
    if service != SERVICE {
        return Err(invalid_signature(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    if terminator != "aws4_request" {
        return Err(invalid_signature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not \
             '{terminator}'. "
        )));
    }
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(invalid_signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    // The request's time: X-Amz-Date, signed.
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .filter(|_| signed.contains(&"x-amz-date"))
        .ok_or_else(|| {
            ApiError::new(
                "IncompleteSignatureException",
                "Authorization header requires existence of a signed 'X-Amz-Date' header.",
            )
        })?;
    let time = NaiveDateTime::parse_from_str(amz_date, AMZ_DATE)
        .map(|t| t.and_utc())
        .map_err(|_| {
            ApiError::new(
                "IncompleteSignatureException",
                format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
            )
        })?;
    if !amz_date.starts_with(date) || date.len() != 8 {
        return Err(invalid_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{date}' != '{}', from '{amz_date}'.",
            &amz_date[..8]
        )));
    }
    let now: DateTime<Utc> = now.into();
    let skew = chrono::Duration::from_std(MAX_SKEW).expect("5 minutes");
    let fmt = |t: DateTime<Utc>| t.format(AMZ_DATE).to_string();
    if time < now - skew {
        return Err(invalid_signature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            fmt(now - skew),
            fmt(now)
        )));
    }
    if time > now + skew {
        return Err(invalid_signature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            fmt(now + skew),
            fmt(now)
        )));
    }
    let canonical = canonical_request(request, &signed);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{date}/{region}/{SERVICE}/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let signing_key =
        aws_sigv4::sign::v4::generate_signing_key(secret, time.into(), region, SERVICE);
    let expected = aws_sigv4::sign::v4::calculate_signature(signing_key, string_to_sign.as_bytes());
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// AWS's canonical request for a service other than S3: the path URI-encoded once more
/// (botocore encodes the already-encoded path), the query sorted and encoded, the signed
/// headers' values trimmed with inner runs of spaces collapsed, the body's SHA-256.
pub fn canonical_request(request: &Request<'_>, signed: &[&str]) -> String {
    let path = match request.uri.path() {
        "" => "/".to_string(),
        p => uri_encode(p, false),
    };
    let mut query: Vec<(String, String)> = request
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), true),
                uri_encode(&percent_decode(v), true),
            )
        })
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    format!(
        "{}\n{path}\n{query}\n{headers}\n{}\n{}",
        request.method.as_str(),
        signed.join(";"),
        hex(&Sha256::digest(request.body))
    )
}

/// Percent-encodes all but the unreserved characters (and `/` unless `slash`).
fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (b == b'/' && !slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |j: usize| {
            bytes
                .get(j)
                .and_then(|b| (*b as char).to_digit(16))
                .map(|d| d as u8)
        };
        match (bytes[i], hex_at(i + 1), hex_at(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config::{Secret, SigV4Key};

    const KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn security() -> ApiSecurity {
        ApiSecurity {
            sigv4: Some(SigV4Key {
                access_key_id: KEY.into(),
                secret_access_key: Secret(SECRET.into()),
            }),
            bearer_token: Some(Secret("a-bearer-token-of-length".into())),
            ..ApiSecurity::default()
        }
    }

    /// Headers signed by aws-sigv4 (as our SQS client signs) at `time`.
    fn signed(secret: &str, time: SystemTime, body: &[u8]) -> HeaderMap {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let identity = aws_credential_types::Credentials::new(KEY, secret, None, None, "t").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let base = [
            ("host", "localhost:8083"),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AWSStepFunctions.ListStateMachines"),
        ];
        let signable = SignableRequest::new(
            "POST",
            "http://localhost:8083/",
            base.into_iter(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut headers = HeaderMap::new();
        for (k, v) in base {
            headers.insert(k, v.parse().unwrap());
        }
        for (k, v) in instructions.headers() {
            headers.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        headers
    }

    fn run(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<(), ApiError> {
        let uri: Uri = "/".parse().unwrap();
        let request = Request {
            method: &Method::POST,
            uri: &uri,
            headers,
            body,
        };
        check(&security(), "us-east-1", &request, now)
    }

    #[test]
    fn a_signature_by_aws_sigv4_verifies() {
        let now = SystemTime::now();
        let headers = signed(SECRET, now, b"{}");
        assert_eq!(run(&headers, b"{}", now), Ok(()));
        // Within the skew either way.
        assert_eq!(run(&headers, b"{}", now + Duration::from_secs(240)), Ok(()));
        assert_eq!(run(&headers, b"{}", now - Duration::from_secs(240)), Ok(()));
    }

    #[test]
    fn tampering_a_wrong_secret_or_a_stale_date_are_refused() {
        let now = SystemTime::now();
        let headers = signed(SECRET, now, b"{}");
        let code = |r: Result<(), ApiError>| r.unwrap_err().code;
        // The body changed after signing.
        assert_eq!(
            code(run(&headers, b"{\"x\":1}", now)),
            "InvalidSignatureException"
        );
        // One hex digit of the signature changed.
        let mut tampered = headers.clone();
        let auth = tampered["authorization"].to_str().unwrap().to_string();
        let last = auth.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &auth[..auth.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        tampered.insert("authorization", flipped.parse().unwrap());
        assert_eq!(
            code(run(&tampered, b"{}", now)),
            "InvalidSignatureException"
        );
        // A signed header changed.
        let mut retargeted = headers.clone();
        retargeted.insert(
            "x-amz-target",
            "AWSStepFunctions.DeleteStateMachine".parse().unwrap(),
        );
        assert_eq!(
            code(run(&retargeted, b"{}", now)),
            "InvalidSignatureException"
        );
        // The right key id with another secret.
        let wrong = signed("another-secret-of-some-length", now, b"{}");
        assert_eq!(code(run(&wrong, b"{}", now)), "InvalidSignatureException");
        // Ten minutes old, or ten minutes ahead.
        let stale = signed(SECRET, now - Duration::from_secs(600), b"{}");
        let e = run(&stale, b"{}", now).unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");
        assert!(
            e.message.starts_with("Signature expired: "),
            "{}",
            e.message
        );
        let ahead = signed(SECRET, now + Duration::from_secs(600), b"{}");
        let e = run(&ahead, b"{}", now).unwrap_err();
        assert!(
            e.message.starts_with("Signature not yet current: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_key_id_alone_or_an_unknown_one_does_not_authenticate() {
        let now = SystemTime::now();
        let code = |auth: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", auth.parse().unwrap());
            run(&headers, b"{}", now).unwrap_err().code
        };
        // What used to be enough: the key id, any signature.
        assert_eq!(
            code(&format!("AWS4-HMAC-SHA256 Credential={KEY}/20250101/us-east-1/states/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")),
            "IncompleteSignatureException"
        );
        assert_eq!(
            code("AWS4-HMAC-SHA256 Credential=AKIDOTHER/20250101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=00"),
            "UnrecognizedClientException"
        );
        assert_eq!(
            code("AWS4-HMAC-SHA256 Credential=x"),
            "IncompleteSignatureException"
        );
        assert_eq!(code("Bearer nope"), "UnrecognizedClientException");
        assert_eq!(code("Basic abc"), "IncompleteSignatureException");
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "Bearer a-bearer-token-of-length".parse().unwrap(),
        );
        assert_eq!(run(&headers, b"", now), Ok(()));
        assert_eq!(
            run(&HeaderMap::new(), b"", now).unwrap_err().code,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
