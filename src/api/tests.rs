//! The protocol over real HTTP: a server on a free port, requests written by hand.

use super::*;
use crate::integrations::Served;
use crate::mock::MockConfig;
use crate::telemetry::Observers;
use std::io::{Read, Write};
use std::net::TcpStream;

fn server() -> ApiServer {
    server_with(None)
}

fn server_with(auth: Option<&str>) -> ApiServer {
    server_keeping(auth, 3)
}

/// A server keeping the last `recent_executions` finished executions.
fn server_keeping(auth: Option<&str>, recent_executions: usize) -> ApiServer {
    let settings = ApiSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        security: config::ApiSecurity {
            bearer_token: auth.map(|a| config::Secret(a.to_string())),
            ..config::ApiSecurity::default()
        },
        recent_executions,
        ..ApiSettings::default()
    };
    let seeds = vec![Seed {
        name: "hello".into(),
        definition: json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"greeting.$": "States.Format('hello {}', $.who)"}, "End": true}}}).to_string(),
        workflow_type: WorkflowType::Express,
    }];
    let state = build(
        settings,
        seeds,
        Arc::new(crate::runner::NoResources),
        Callbacks::new("us-east-1", "123456789012"),
        Served {
            callbacks: true,
            nested_executions: true,
            kafka_produce: false,
        },
        None,
        Observers::default(),
    )
    .unwrap();
    spawn(state).unwrap()
}

/// POSTs a body with a target (`None`: no X-Amz-Target); returns status and JSON body.
fn post_raw(
    server: &ApiServer,
    target: Option<&str>,
    extra: &str,
    body: &str,
) -> (u16, Value, String) {
    let mut s = TcpStream::connect(server.addr).unwrap();
    let target = target
        .map(|t| format!("X-Amz-Target: AWSStepFunctions.{t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.0\r\n{target}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        head.to_string(),
    )
}

fn post(server: &ApiServer, target: &str, body: Value) -> (u16, Value) {
    let (status, v, _) = post_raw(server, Some(target), "", &body.to_string());
    (status, v)
}

const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:hello";

/// Creates state machine `name` and returns its ARN.
fn create(server: &ApiServer, name: &str, definition: &Value) -> Value {
    let (status, created) = post(
        server,
        "CreateStateMachine",
        json!({"name": name, "roleArn": "arn:aws:iam::123456789012:role/r", "definition": definition.to_string()}),
    );
    assert_eq!(status, 200, "{created}");
    created["stateMachineArn"].clone()
}

#[test]
fn errors_have_aws_shapes() {
    let s = server();
    let (status, v, head) = post_raw(&s, Some("NoSuchThing"), "", "{}");
    assert_eq!(status, 400);
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#UnknownOperationException"
    );
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/x-amz-json-1.0"));
    let (_, v, _) = post_raw(&s, None, "", "{}");
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#UnknownOperationException"
    );
    let (status, v, _) = post_raw(&s, Some("StartSyncExecution"), "", "{not json");
    assert_eq!(status, 400);
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#SerializationException"
    );
    let (_, v) = post(&s, "StartSyncExecution", json!({}));
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#ValidationException"
    );
    let (_, v) = post(&s, "StartSyncExecution", json!({"stateMachineArn": 7}));
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#SerializationException"
    );
    let (_, v) = post(
        &s,
        "DescribeExecution",
        json!({"executionArn": "arn:aws:states:us-east-1:123456789012:express:hello:x:y"}),
    );
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#ExecutionDoesNotExist"
    );
    assert!(v["message"].as_str().unwrap().contains("express:hello:x:y"));
    let (_, v) = post(&s, "DescribeExecution", json!({"executionArn": "nope"}));
    assert_eq!(v["__type"], "com.amazonaws.swf.service.v2.model#InvalidArn");
    let (_, v) = post(
        &s,
        "StartExecution",
        json!({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:absent"}),
    );
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#StateMachineDoesNotExist"
    );
    let (_, v) = post(
        &s,
        "StartExecution",
        json!({"stateMachineArn": SM, "input": "{"}),
    );
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#InvalidExecutionInput"
    );
    let (_, v) = post(
        &s,
        "CreateStateMachine",
        json!({"name": "bad", "roleArn": "r", "definition": "{\"StartAt\": \"X\", \"States\": {}}"}),
    );
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#InvalidDefinition"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid State Machine Definition: '"),
        "{v}"
    );
    s.shutdown();
}

#[test]
fn sync_and_async_executions() {
    let s = server();
    let (status, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": SM, "input": "{\"who\": \"world\"}", "name": "one"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "SUCCEEDED");
    assert_eq!(v["output"], "{\"greeting\":\"hello world\"}");
    assert!(v["executionArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:states:us-east-1:123456789012:express:hello:one:"));
    assert!(v["startDate"].is_f64() && v["stopDate"].is_f64());
    assert!(
        v["billingDetails"]["billedDurationInMilliseconds"]
            .as_i64()
            .unwrap()
            >= 100
    );

    let (_, started) = post(
        &s,
        "StartExecution",
        json!({"stateMachineArn": SM, "input": "{\"who\": \"you\"}"}),
    );
    let arn = started["executionArn"].as_str().unwrap().to_string();
    let mut described = Value::Null;
    for _ in 0..100 {
        described = post(&s, "DescribeExecution", json!({"executionArn": arn})).1;
        if described["status"] != "RUNNING" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(described["status"], "SUCCEEDED", "{described}");
    assert_eq!(described["output"], "{\"greeting\":\"hello you\"}");
    let (_, listed) = post(&s, "ListExecutions", json!({"stateMachineArn": SM}));
    assert_eq!(listed["executions"].as_array().unwrap().len(), 2);
    assert_eq!(listed["executions"][0]["executionArn"], arn.as_str());

    // The bound: 3 finished executions are kept.
    for _ in 0..4 {
        post(
            &s,
            "StartSyncExecution",
            json!({"stateMachineArn": SM, "input": "{\"who\": 1}"}),
        );
    }
    let (_, v) = post(&s, "DescribeExecution", json!({"executionArn": arn}));
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#ExecutionDoesNotExist"
    );
    s.shutdown();
}

#[test]
fn failures_waits_and_stop() {
    let s = server();
    let def = json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "IsPresent": true, "Next": "F"}], "Default": "S"},
        "S": {"Type": "Succeed"},
        "F": {"Type": "Fail", "Error": "Boom", "Cause": "asked"}}});
    let (status, created) = post(
        &s,
        "CreateStateMachine",
        json!({"name": "waits", "roleArn": "arn:aws:iam::123456789012:role/r", "definition": def.to_string()}),
    );
    assert_eq!(status, 200, "{created}");
    let arn = created["stateMachineArn"].as_str().unwrap();
    let (_, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": arn, "input": "{\"wait\": 0, \"fail\": 1}"}),
    );
    assert_eq!(
        (
            v["status"].as_str(),
            v["error"].as_str(),
            v["cause"].as_str()
        ),
        (Some("FAILED"), Some("Boom"), Some("asked"))
    );
    let (_, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": arn, "input": "{\"wait\": 1}"}),
    );
    assert_eq!(v["status"], "SUCCEEDED");
    assert!(
        v["stopDate"].as_f64().unwrap() - v["startDate"].as_f64().unwrap() >= 0.99,
        "{v}"
    );

    let (_, started) = post(
        &s,
        "StartExecution",
        json!({"stateMachineArn": arn, "input": "{\"wait\": 60}"}),
    );
    let exec = started["executionArn"].as_str().unwrap();
    let (status, stopped) = post(
        &s,
        "StopExecution",
        json!({"executionArn": exec, "error": "E", "cause": "stopped by test"}),
    );
    assert_eq!(status, 200, "{stopped}");
    let (_, v) = post(&s, "DescribeExecution", json!({"executionArn": exec}));
    assert_eq!(
        (v["status"].as_str(), v["error"].as_str()),
        (Some("ABORTED"), Some("E"))
    );

    let (_, v) = post(&s, "DescribeStateMachine", json!({"stateMachineArn": arn}));
    assert_eq!(v["definition"], def.to_string());
    assert_eq!(v["type"], "EXPRESS");
    let (_, v) = post(&s, "ListStateMachines", json!({}));
    let names: Vec<&str> = v["stateMachines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "waits"]);
    let (status, _) = post(&s, "DeleteStateMachine", json!({"stateMachineArn": arn}));
    assert_eq!(status, 200);
    let (_, v) = post(&s, "DescribeStateMachine", json!({"stateMachineArn": arn}));
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#StateMachineDoesNotExist"
    );
    s.shutdown();
}

#[test]
fn nested_executions() {
    let s = server();
    let parent = json!({"StartAt": "Child", "States": {
        "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                  "Parameters": {"StateMachineArn": SM, "Input": {"who.$": "$.who"}}, "Next": "Fire"},
        "Fire": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                 "Parameters": {"StateMachineArn": "hello", "Input": "{\"who\": \"later\"}"}, "ResultPath": "$.fired",
                 "OutputPath": "$.Output", "End": true}}});
    let arn = create(&s, "parent", &parent);
    let (_, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": arn, "input": "{\"who\": \"child\"}"}),
    );
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"], "{\"greeting\":\"hello child\"}");

    let failing = json!({"StartAt": "Child", "States": {
        "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                  "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:boom"}, "End": true}}});
    post(
        &s,
        "CreateStateMachine",
        json!({"name": "boom", "roleArn": "r", "definition": json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E"}}}).to_string()}),
    );
    let (_, created) = post(
        &s,
        "CreateStateMachine",
        json!({"name": "failing-parent", "roleArn": "r", "definition": failing.to_string()}),
    );
    let (_, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": created["stateMachineArn"]}),
    );
    assert_eq!(
        (v["status"].as_str(), v["error"].as_str()),
        (Some("FAILED"), Some("States.TaskFailed")),
        "{v}"
    );
    let cause: Value = serde_json::from_str(v["cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        (cause["Status"].as_str(), cause["Error"].as_str()),
        (Some("FAILED"), Some("E"))
    );
    s.shutdown();
}

#[test]
fn validate_and_test_state() {
    let s = server();
    let (_, v) = post(
        &s,
        "ValidateStateMachineDefinition",
        json!({"definition": "{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Pass\", \"Next\": \"Nowhere\"}}}"}),
    );
    assert_eq!(v["result"], "FAIL", "{v}");
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "ERROR");
    assert_eq!(d["location"], "/States/A/Next", "{v}");
    let (_, v) = post(
        &s,
        "ValidateStateMachineDefinition",
        json!({"definition": "{\"StartAt\": \"A\", \"States\": {\"A\": {\"Type\": \"Succeed\"}}}"}),
    );
    assert_eq!(
        v,
        json!({"result": "OK", "diagnostics": [], "truncated": false})
    );

    let (_, v) = post(
        &s,
        "TestState",
        json!({"definition": "{\"Type\": \"Pass\", \"Parameters\": {\"x.$\": \"$.a\"}, \"Next\": \"After\"}", "input": "{\"a\": 1}"}),
    );
    assert_eq!(
        v,
        json!({"status": "SUCCEEDED", "output": "{\"x\":1}", "nextState": "After"})
    );
    let choice = json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "One"}], "Default": "Other"});
    let (_, v) = post(
        &s,
        "TestState",
        json!({"definition": choice.to_string(), "input": "{\"a\": 1}", "inspectionLevel": "DEBUG"}),
    );
    assert_eq!(
        (v["status"].as_str(), v["nextState"].as_str()),
        (Some("SUCCEEDED"), Some("One")),
        "{v}"
    );
    assert_eq!(v["inspectionData"]["input"], "{\"a\":1}");
    let task = json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "Next": "Ok",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handle"}]});
    let (_, v) = post(
        &s,
        "TestState",
        json!({"definition": task.to_string(), "input": "{\"a\": 1}"}),
    );
    assert_eq!(
        (
            v["status"].as_str(),
            v["nextState"].as_str(),
            v["error"].as_str()
        ),
        (
            Some("CAUGHT_ERROR"),
            Some("Handle"),
            Some("States.TaskFailed")
        ),
        "{v}"
    );
    let output: Value = serde_json::from_str(v["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["a"], 1);
    assert_eq!(output["err"]["Error"], "States.TaskFailed");
    let (_, v) = post(
        &s,
        "TestState",
        json!({"definition": "{\"Type\": \"Pass\", \"Next\": 3}"}),
    );
    assert_eq!(
        v["__type"], "com.amazonaws.swf.service.v2.model#InvalidDefinition",
        "{v}"
    );
    s.shutdown();
}

#[test]
fn auth_by_bearer_token_or_access_key_id() {
    let s = server_with(Some("sekrit-of-16-chars"));
    let body = json!({}).to_string();
    let (_, v, _) = post_raw(&s, Some("ListStateMachines"), "", &body);
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#MissingAuthenticationTokenException"
    );
    let (_, v, _) = post_raw(
        &s,
        Some("ListStateMachines"),
        "Authorization: Bearer wrong\r\n",
        &body,
    );
    assert_eq!(
        v["__type"],
        "com.amazonaws.swf.service.v2.model#UnrecognizedClientException"
    );
    let (status, _, _) = post_raw(
        &s,
        Some("ListStateMachines"),
        "Authorization: Bearer sekrit-of-16-chars\r\n",
        &body,
    );
    assert_eq!(status, 200);
    // The secret as a SigV4 access key id no longer lets anyone in (issue 17).
    let sigv4 = "Authorization: AWS4-HMAC-SHA256 Credential=sekrit/20260101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=abc\r\n";
    let (status, v, _) = post_raw(&s, Some("ListStateMachines"), sigv4, &body);
    assert_eq!(
        (status, v["__type"].as_str()),
        (
            400,
            Some("com.amazonaws.swf.service.v2.model#UnrecognizedClientException")
        )
    );
    s.shutdown();
}

#[test]
fn tasks_reach_the_injected_resource() {
    let mock = MockConfig::from_json(
        &json!({"StateMachines": {"m": {"TestCases": {"T": {"Call": "R"}}}},
                "MockedResponses": {"R": {"0": {"Return": {"ok": true}}}}})
        .to_string(),
    )
    .unwrap();
    let resource = mock.test_case(Some("m"), "T").unwrap();
    let settings = ApiSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ApiSettings::default()
    };
    let seeds = vec![Seed {
        name: "m".into(),
        definition: json!({"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}}).to_string(),
        workflow_type: WorkflowType::Express,
    }];
    let state = build(
        settings,
        seeds,
        Arc::new(resource),
        Callbacks::new("us-east-1", "123456789012"),
        Served {
            callbacks: true,
            nested_executions: true,
            kafka_produce: false,
        },
        None,
        Observers::default(),
    )
    .unwrap();
    let s = spawn(state).unwrap();
    let (_, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:m"}),
    );
    assert_eq!(
        (v["status"].as_str(), v["output"].as_str()),
        (Some("SUCCEEDED"), Some("{\"ok\":true}")),
        "{v}"
    );
    s.shutdown();
}

#[test]
fn one_host_thread_holds_many_waiting_executions() {
    let program = Arc::new(
        crate::asl::compile(&json!({"StartAt": "W", "States": {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {"Type": "Pass", "End": true}}}))
        .unwrap(),
    );
    let host = Host::new(10, UNLIMITED);
    let handle = host
        .spawn(
            Arc::new(crate::runner::NoResources),
            None,
            Observers::default(),
        )
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    const N: usize = 5000;
    for i in 0..N {
        let tx = tx.clone();
        handle.start(StartRequest {
            program: program.clone(),
            input: json!({"i": i}),
            opts: ExecutionOptions::default(),
            arn: format!("arn:aws:states:us-east-1:123456789012:express:w:{i}:x"),
            state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:w".into(),
            start_ms: wall_millis(),
            on_finish: Some(Box::new(move |r: &ExecutionRecord| {
                let _ = tx.send(r.status);
            })),
            reserved_bytes: 0,
        });
    }
    for _ in 0..N {
        let status = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        assert_eq!(status, host::Status::Succeeded);
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= std::time::Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    // Only the last 10 finished are kept.
    assert_eq!(handle.list(|_| true).len(), 10);
    handle.shutdown();
}

const UNLIMITED: HostLimits = HostLimits {
    max_running: usize::MAX,
    max_held_bytes: usize::MAX,
};

/// A host with `limits` and no Task resources, its worker running.
fn running_host(limits: HostLimits) -> HostHandle {
    Host::new(10, limits)
        .spawn(
            Arc::new(crate::runner::NoResources),
            None,
            Observers::default(),
        )
        .unwrap()
}

/// An execution waiting a minute, with an input of about `reserved_bytes`.
fn waiting_request(i: usize, reserved_bytes: usize) -> StartRequest {
    StartRequest {
        program: Arc::new(
            crate::asl::compile(&json!({"StartAt": "W", "States": {
                "W": {"Type": "Wait", "Seconds": 60, "End": true}}}))
            .unwrap(),
        ),
        input: json!({"pad": "x".repeat(reserved_bytes)}),
        opts: ExecutionOptions::default(),
        arn: format!("arn:aws:states:us-east-1:123456789012:express:w:{i}:x"),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:w".into(),
        start_ms: wall_millis(),
        on_finish: None,
        reserved_bytes,
    }
}

#[test]
fn the_host_refuses_starts_past_max_running_executions() {
    let handle = running_host(HostLimits {
        max_running: 2,
        ..UNLIMITED
    });
    for i in 0..2 {
        handle.admit(10).unwrap();
        handle.start(waiting_request(i, 10));
    }
    let refused = handle.admit(10).unwrap_err();
    assert!(refused.contains("max_running_executions"), "{refused}");
    handle.shutdown();
}

#[test]
fn the_host_refuses_starts_past_max_held_bytes() {
    let handle = running_host(HostLimits {
        max_held_bytes: 400_000,
        ..UNLIMITED
    });
    // Reserved but not yet started, admitted inputs count.
    for _ in 0..4 {
        handle.admit(90_000).unwrap();
    }
    let refused = handle.admit(90_000).unwrap_err();
    assert!(refused.contains("max_held_bytes"), "{refused}");
    // Once running (each within its quarter of the budget), the executions' own held
    // bytes count instead.
    for i in 0..4 {
        handle.start(waiting_request(i, 90_000));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let running = handle.list(|r| r.status == host::Status::Running);
    assert_eq!(running.len(), 4, "each within its share keeps running");
    assert!(handle.admit(60_000).is_err());
    assert!(handle.admit(1_000).is_ok());
    handle.shutdown();
}

#[test]
fn a_state_machine_starting_itself_stops_at_the_nesting_depth_whatever_names_it_picks() {
    // The depth used to be looked up by execution name in a process-wide map, so unrelated
    // executions sharing a name shared a depth; it now travels with the execution
    // (`ExecutionOptions::nesting_depth`), and each level here reuses one name.
    let s = server_keeping(None, 100);
    let itself = json!({"StartAt": "Again", "States": {"Again": {"Type": "Task",
        "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "itself", "Name": "same-name-every-time"}, "End": true}}});
    let (status, v) = post(
        &s,
        "CreateStateMachine",
        json!({"name": "itself", "roleArn": "r", "definition": itself.to_string()}),
    );
    assert_eq!(status, 200, "{v}");
    let (_, v) = post(
        &s,
        "StartSyncExecution",
        json!({"stateMachineArn": v["stateMachineArn"]}),
    );
    assert_eq!(v["status"], "FAILED", "{v}");
    // Each level quotes its child's failure: cut at AWS's cause limit, not exponential.
    let cause = v["cause"].as_str().unwrap();
    assert!(cause.chars().count() <= crate::asl::error::MAX_CAUSE_CHARS);
    // The one started from outside, and MAX_NESTING_DEPTH levels below it.
    let (_, listed) = post(
        &s,
        "ListExecutions",
        json!({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:itself"}),
    );
    let executions = listed["executions"].as_array().expect("executions");
    assert_eq!(
        executions.len() as u32,
        nested::MAX_NESTING_DEPTH + 1,
        "{listed}"
    );
    let (_, innermost) = post(
        &s,
        "DescribeExecution",
        json!({"executionArn": executions[0]["executionArn"]}),
    );
    assert_eq!(
        innermost["error"], "StepFunctions.ExecutionLimitExceededException",
        "{innermost}"
    );
    s.shutdown();
}

#[test]
fn describe_execution_of_a_timed_out_execution_has_no_error_or_cause() {
    let s = server();
    let def = json!({"TimeoutSeconds": 1, "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 5, "End": true}}});
    let arn = create(&s, "slow", &def);
    let (_, started) = post(
        &s,
        "StartExecution",
        json!({"stateMachineArn": arn, "input": "{}"}),
    );
    let arn = started["executionArn"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v = loop {
        let (_, v) = post(&s, "DescribeExecution", json!({"executionArn": arn}));
        if v["status"] != "RUNNING" || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(v["status"], "TIMED_OUT", "{v}");
    assert!(v.get("error").is_none() && v.get("cause").is_none(), "{v}");
}
