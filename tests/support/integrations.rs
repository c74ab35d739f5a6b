//! Task integrations against real HTTP servers on loopback, through the `expressway exec`
//! binary: a Lambda Invoke API function server and a plain HTTP endpoint, each a small
//! HTTP/1.1 server in this process that answers from a script and records what it was sent.
//! (The AWS-recorded Lambda cases run against the corpus runner's function server in
//! `scripts/conformance_gate.py`.)

use crate::harness::{group, verdict, Group, Verdict};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A reply: status, headers, body; `delay` before answering.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

pub fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type", "application/json".into())],
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// Serves `script` in order (the last reply repeats) on a free port, a thread per
/// connection; returns the base URL and the log of requests. A reply's body may say
/// `{{event}}`: the request body goes there (a function that wraps its event).
pub fn serve(script: Vec<Reply>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let script = Arc::new(script);
    let next = Arc::new(Mutex::new(0usize));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, script, next) = (log.clone(), script.clone(), next.clone());
            std::thread::spawn(move || answer_connection(stream, &log, &script, &next));
        }
    });
    (url, seen)
}

/// Answers requests on one keep-alive connection until the client closes it.
fn answer_connection(
    stream: std::net::TcpStream,
    log: &Mutex<Vec<Seen>>,
    script: &[Reply],
    next: &Mutex<usize>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let body = String::from_utf8_lossy(&body).into_owned();
        let r = {
            let mut n = next.lock().unwrap();
            *n += 1;
            script[(*n - 1).min(script.len() - 1)].clone()
        };
        let event = if body.is_empty() { "{}" } else { body.as_str() };
        let content = r.body.replace("{{event}}", event);
        log.lock().unwrap().push(Seen {
            method,
            target,
            headers,
            body,
        });
        std::thread::sleep(r.delay);
        let mut out = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            r.status,
            content.len()
        );
        for (k, v) in &r.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&content);
        if stream.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// Runs `exec` on a definition and input; returns its one JSON line.
fn exec(definition: Value, input: Value, extra: &[&str]) -> Value {
    exec_with(definition, input, extra, &[])
}

/// [`exec`] with extra environment variables (credentials); endpoints and tokens from the
/// test's own environment never leak in.
pub fn exec_with(definition: Value, input: Value, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "expressway-integrations-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let def = dir.join("def.json");
    let inp = dir.join("input.json");
    std::fs::write(&def, definition.to_string()).expect("definition");
    std::fs::write(&inp, input.to_string()).expect("input");
    let out = Command::new(env!("CARGO_BIN_EXE_expressway"))
        .arg("exec")
        .arg("--definition")
        .arg(&def)
        .arg("--input")
        .arg(&inp)
        .args(extra)
        .env_remove("AWS_ENDPOINT_URL_LAMBDA")
        .env_remove("AWS_ENDPOINT_URL_SQS")
        .env_remove("AWS_SESSION_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("exec runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({"no_json": String::from_utf8_lossy(&out.stderr)}))
}

fn lambda_task(extra: Value) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "enrich", "Payload.$": "$"},
        "OutputPath": "$.Payload",
        "End": true
    });
    for (k, v) in extra.as_object().unwrap() {
        state[k] = v.clone();
    }
    json!({"StartAt": "Call", "States": {"Call": state}})
}

/// Each check serves its own script, so they share nothing.
pub fn group() -> Group<()> {
    group!(
        "integrations",
        || Ok(()),
        [
            lambda_invoke_posts_the_payload_to_the_function_and_returns_its_result,
            a_function_error_is_caught_by_a_catch_naming_its_error_type,
            retry_on_lambda_too_many_requests_retries_until_the_function_answers,
            a_function_slower_than_timeout_seconds_fails_the_state_with_states_timeout,
            an_unreachable_lambda_endpoint_fails_with_lambda_sdk_client_exception,
            http_invoke_sends_method_query_headers_and_body_and_returns_aws_response_shape,
            an_http_404_is_states_http_status_code_404_caught_by_a_catch_naming_it,
            http_invoke_without_a_connection_arn_calls_nothing,
            http_invoke_outside_its_connections_url_prefix_calls_nothing,
            http_invoke_does_not_follow_a_redirect,
        ]
    )
}

/// The event reaches the function by name, its payload comes back.
fn lambda_invoke_posts_the_payload_to_the_function_and_returns_its_result(_: &mut ()) -> Verdict {
    let (url, seen) = serve(vec![reply(200, json!({"enriched": true}))]);
    let result = exec(
        lambda_task(json!({})),
        json!({"id": 7}),
        &["--lambda-endpoint", &url],
    );
    let requests = seen.lock().unwrap().clone();
    verdict(
        result == json!({"status": "SUCCEEDED", "output": {"enriched": true}})
            && requests.len() == 1
            && requests[0].method == "POST"
            && requests[0].target == "/2015-03-31/functions/enrich/invocations"
            && serde_json::from_str::<Value>(&requests[0].body).ok() == Some(json!({"id": 7})),
        || format!("{result} after {requests:?}"),
    )
}

fn a_function_error_is_caught_by_a_catch_naming_its_error_type(_: &mut ()) -> Verdict {
    let (url, _) = serve(vec![Reply {
        headers: vec![("X-Amz-Function-Error", "Unhandled".into())],
        ..reply(
            200,
            json!({"errorType": "SensorOffline", "errorMessage": "no signal"}),
        )
    }]);
    let definition = json!({"StartAt": "Call", "States": {
        "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:enrich",
                 "Catch": [{"ErrorEquals": ["SensorOffline"], "ResultPath": "$.error", "Next": "Fallback"}],
                 "End": true},
        "Fallback": {"Type": "Pass", "End": true}}});
    let result = exec(definition, json!({"id": 1}), &["--lambda-endpoint", &url]);
    verdict(
        result["output"]["error"]["Error"] == json!("SensorOffline")
            && result["output"]["error"]["Cause"]
                .as_str()
                .is_some_and(|c| c.contains("no signal")),
        || result.to_string(),
    )
}

/// A throttle twice, then success.
fn retry_on_lambda_too_many_requests_retries_until_the_function_answers(_: &mut ()) -> Verdict {
    let throttle = Reply {
        headers: vec![("x-amzn-ErrorType", "TooManyRequestsException".into())],
        ..reply(429, json!({"Type": "User", "message": "Rate exceeded"}))
    };
    let (url, seen) = serve(vec![throttle.clone(), throttle, reply(200, json!("ok"))]);
    let retry = json!({"Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "IntervalSeconds": 1, "MaxAttempts": 3}]});
    let result = exec(lambda_task(retry), json!({}), &["--lambda-endpoint", &url]);
    let calls = seen.lock().unwrap().len();
    verdict(
        result == json!({"status": "SUCCEEDED", "output": "ok"}) && calls == 3,
        || format!("{result} after {calls} calls"),
    )
}

/// States.Timeout, without waiting for the function.
fn a_function_slower_than_timeout_seconds_fails_the_state_with_states_timeout(
    _: &mut (),
) -> Verdict {
    let (url, _) = serve(vec![Reply {
        delay: Duration::from_secs(5),
        ..reply(200, json!("late"))
    }]);
    let started = std::time::Instant::now();
    let result = exec(
        lambda_task(json!({"TimeoutSeconds": 1})),
        json!({}),
        &["--lambda-endpoint", &url],
    );
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.Timeout")
            && started.elapsed() < Duration::from_secs(4),
        || format!("{result} after {:?}", started.elapsed()),
    )
}

/// No server at all: a transport error AWS's way.
fn an_unreachable_lambda_endpoint_fails_with_lambda_sdk_client_exception(_: &mut ()) -> Verdict {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let result = exec(
        lambda_task(json!({})),
        json!({}),
        &["--lambda-endpoint", &closed],
    );
    verdict(
        result["error"] == json!("Lambda.SdkClientException"),
        || result.to_string(),
    )
}

/// The connection the HTTP Tasks name (`Authentication.ConnectionArn`).
const CONNECTION: &str = "arn:aws:events:us-east-1:123456789012:connection/devices/1";

/// `--http-connection` allowing [`CONNECTION`] to call under `prefix`.
fn connection(prefix: &str) -> String {
    format!("{CONNECTION}={prefix}")
}

/// An HTTP Task calling `{url}/devices`, with a Catch on States.Http.StatusCode.404 if `catch_404`.
fn http_task(url: &str, catch_404: bool) -> Value {
    let mut state = json!({
        "Type": "Task", "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {
            "ApiEndpoint": format!("{url}/devices"), "Method": "POST",
            "Authentication": {"ConnectionArn": CONNECTION},
            "Headers": {"X-Device": "d1"},
            "QueryParameters": {"unit": "C"},
            "RequestBody": {"id.$": "$.id"}},
        "End": true});
    let mut states = json!({});
    if catch_404 {
        state["Catch"] = json!([{"ErrorEquals": ["States.Http.StatusCode.404"], "ResultPath": "$.error", "Next": "Missing"}]);
        states["Missing"] = json!({"Type": "Pass", "End": true});
    }
    states["Call"] = state;
    json!({"StartAt": "Call", "States": states})
}

fn http_invoke_sends_method_query_headers_and_body_and_returns_aws_response_shape(
    _: &mut (),
) -> Verdict {
    let (url, seen) = serve(vec![reply(200, json!({"temperature": 21.5}))]);
    let ok = exec(
        http_task(&url, false),
        json!({"id": "d1"}),
        &["--http-connection", &connection(&format!("{url}/"))],
    );
    let first = seen.lock().unwrap().first().cloned();
    verdict(
        ok["output"]["ResponseBody"] == json!({"temperature": 21.5})
            && ok["output"]["StatusCode"] == json!("200")
            && first.as_ref().is_some_and(|r| {
                r.method == "POST"
                    && r.target == "/devices?unit=C"
                    && r.headers.iter().any(|(k, v)| k == "x-device" && v == "d1")
                    && serde_json::from_str::<Value>(&r.body).ok() == Some(json!({"id": "d1"}))
            }),
        || format!("{ok} after {first:?}"),
    )
}

fn an_http_404_is_states_http_status_code_404_caught_by_a_catch_naming_it(_: &mut ()) -> Verdict {
    let (url, _) = serve(vec![reply(404, json!({"message": "no such device"}))]);
    let missing = exec(
        http_task(&url, true),
        json!({"id": "d2"}),
        &["--http-connection", &connection(&format!("{url}/"))],
    );
    verdict(
        missing["output"]["error"]["Error"] == json!("States.Http.StatusCode.404"),
        || missing.to_string(),
    )
}

/// SSRF (issue 17): a Task naming no connection called any URL it liked and handed the answer
/// back — loopback services, the cloud metadata endpoint. Now it calls nothing.
fn http_invoke_without_a_connection_arn_calls_nothing(_: &mut ()) -> Verdict {
    let (url, seen) = serve(vec![reply(200, json!({"secret": "metadata"}))]);
    let mut definition = http_task(&url, false);
    definition["States"]["Call"]["Parameters"]
        .as_object_mut()
        .unwrap()
        .remove("Authentication");
    let result = exec(
        definition,
        json!({"id": "d1"}),
        &["--http-connection", &connection(&format!("{url}/"))],
    );
    let calls = seen.lock().unwrap().len();
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.Runtime")
            && calls == 0,
        || format!("{result} after {calls} calls"),
    )
}

/// A connection allows its `url_prefix` only: the same host under another path is refused.
fn http_invoke_outside_its_connections_url_prefix_calls_nothing(_: &mut ()) -> Verdict {
    let (url, seen) = serve(vec![reply(200, json!({"secret": "admin"}))]);
    let result = exec(
        http_task(&url, false),
        json!({"id": "d1"}),
        &["--http-connection", &connection(&format!("{url}/public/"))],
    );
    let calls = seen.lock().unwrap().len();
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.Runtime")
            && result["cause"]
                .as_str()
                .is_some_and(|c| c.contains("url_prefix"))
            && calls == 0,
        || format!("{result} after {calls} calls"),
    )
}

/// A redirect is the Task's answer, never a second request to where it points.
fn http_invoke_does_not_follow_a_redirect(_: &mut ()) -> Verdict {
    let (elsewhere, seen) = serve(vec![reply(200, json!({"secret": "metadata"}))]);
    let (allowed, _) = serve(vec![Reply {
        headers: vec![("Location", format!("{elsewhere}/latest/meta-data/"))],
        ..reply(302, json!({}))
    }]);
    let result = exec(
        http_task(&allowed, false),
        json!({"id": "d1"}),
        &["--http-connection", &connection(&format!("{allowed}/"))],
    );
    let calls = seen.lock().unwrap().len();
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.Http.StatusCode.302")
            && calls == 0,
        || format!("{result} after {calls} calls elsewhere"),
    )
}
