//! `arn:aws:states:::sqs:sendMessage`, and the daemon's SQS source and sinks, against a real
//! SQS API: moto's server (through `moto_server.py`, which fixes a race in moto's deletes), from
//! a Python venv cached in `target/sqs-venv` (`pip install` of the pinned [`PACKAGES`]),
//! driven through the `expressway exec` binary with SigV4 credentials in the environment
//! (moto routes a request to SQS by its signature's credential scope). The queue is made,
//! and the message read back, with boto3. Skipped, saying why, when the venv cannot be made.

use super::api::{free_port, python_venv};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Check = (&'static str, Result<(), String>);

/// Pinned: `moto_server.py` patches moto 5.2.5's internals.
const PACKAGES: [&str; 2] = ["moto[server]==5.2.5", "boto3==1.44.8"];

const KEYS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
];

/// Kills moto when the checks end, however they end.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a boto3 snippet against moto with `sqs` bound to a client; returns its stdout.
fn boto3(python: &Path, endpoint: &str, code: &str, args: &[&str]) -> Result<String, String> {
    let script = format!(
        "import boto3, json, sys\n\
         sqs = boto3.client('sqs', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}\n"
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `expressway exec` on a definition and input with the credentials set; its JSON line.
fn exec(definition: Value, input: Value, extra: &[&str]) -> Value {
    crate::integrations::exec_with(definition, input, extra, &KEYS)
}

fn check(name: &'static str, ok: bool, detail: impl FnOnce() -> String) -> Check {
    (name, if ok { Ok(()) } else { Err(detail()) })
}

fn send_task(parameters: Value, extra: Value) -> Value {
    let mut state = json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": parameters,
        "End": true
    });
    for (k, v) in extra.as_object().expect("an object") {
        state[k] = v.clone();
    }
    json!({"StartAt": "Send", "States": {"Send": state}})
}

pub fn checks() -> Vec<Check> {
    let python = match python_venv("sqs-venv", &PACKAGES, "moto.server, boto3", &[]) {
        Ok(p) => p,
        Err(why) => {
            println!("sqs: skipped ({why})");
            return Vec::new();
        }
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("expressway-sqs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let log = dir.join("moto.log");
    let server = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn();
    let mut server = match server {
        Ok(child) => Server(child),
        Err(e) => return vec![("sqs: moto_server starts", Err(e.to_string()))],
    };
    let started = Instant::now();
    let mut up = false;
    while started.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return vec![("sqs: moto_server starts", Err(format!("{status}: {text}")))];
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !up {
        return vec![(
            "sqs: moto_server starts",
            Err("nothing listens on its port after 30 s".into()),
        )];
    }
    let queue_url = match boto3(
        &python,
        &endpoint,
        "print(sqs.create_queue(QueueName='expressway')['QueueUrl'])",
        &[],
    ) {
        Ok(url) => url,
        Err(e) => return vec![("sqs: boto3 creates a queue on moto", Err(e))],
    };
    let mut out = Vec::new();

    // (1) A JSON body is sent as its text, with attributes; the result is AWS's shape.
    let definition = send_task(
        json!({
            "QueueUrl.$": "$.queue",
            "MessageBody": {"greeting.$": "$.who", "n": 1},
            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "test"}}
        }),
        json!({}),
    );
    let result = exec(
        definition,
        json!({"queue": queue_url, "who": "world"}),
        &["--sqs-endpoint", &endpoint],
    );
    let output = &result["output"];
    let keys: Vec<&str> = output
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    out.push(check(
        "sqs: sendMessage returns MessageId, MD5s and the SDK metadata",
        result["status"] == json!("SUCCEEDED")
            && keys
                == [
                    "MD5OfMessageAttributes",
                    "MD5OfMessageBody",
                    "MessageId",
                    "SdkHttpMetadata",
                    "SdkResponseMetadata",
                ]
            && output["SdkHttpMetadata"]["HttpStatusCode"] == json!(200)
            && output["SdkResponseMetadata"]["RequestId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
        || result.to_string(),
    ));
    let received = boto3(
        &python,
        &endpoint,
        "r = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, \
         MessageAttributeNames=['All'], WaitTimeSeconds=1)\n\
         print(json.dumps(r.get('Messages', [])))",
        &[&queue_url],
    )
    .map_err(|e| e.to_string())
    .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| format!("{e}: {text}")));
    out.push(check(
        "sqs: the queue holds the message, its body the JSON text, its attribute and MD5 as sent",
        received.as_ref().is_ok_and(|messages| {
            messages.as_array().is_some_and(|m| m.len() == 1)
                && messages[0]["MessageId"] == output["MessageId"]
                && messages[0]["Body"] == json!(r#"{"greeting":"world","n":1}"#)
                && messages[0]["MD5OfBody"] == output["MD5OfMessageBody"]
                && messages[0]["MessageAttributes"]["kind"]["StringValue"] == json!("test")
        }),
        || format!("{received:?} for {result}"),
    ));

    // (2) No MessageBody: SQS's MissingParameter, caught by its name.
    let definition = json!({"StartAt": "Send", "States": {
        "Send": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage",
            "Parameters": {"QueueUrl.$": "$.queue", "MessageBody.$": "$.body"},
            "Catch": [
                {"ErrorEquals": ["SQS.SdkClientException"], "Next": "Client"},
                {"ErrorEquals": ["SQS.AmazonSQSException"], "ResultPath": "$.aws_error", "Next": "Service"}
            ],
            "End": true
        },
        "Client": {"Type": "Fail", "Error": "Client"},
        "Service": {"Type": "Pass", "End": true}
    }});
    let result = exec(
        definition,
        json!({"queue": queue_url, "body": null}),
        &["--sqs-endpoint", &endpoint],
    );
    let error = &result["output"]["aws_error"];
    out.push(check(
        "sqs: a missing MessageBody fails with SQS.AmazonSQSException (MissingParameter), caught",
        result["status"] == json!("SUCCEEDED")
            && error["Error"] == json!("SQS.AmazonSQSException")
            && error["Cause"].as_str().is_some_and(|c| {
                c.starts_with(
                    "The request must contain the parameter MessageBody. (Service: AmazonSQS; \
                     Status Code: 400; Error Code: MissingParameter; Request ID: ",
                )
            }),
        || result.to_string(),
    ));

    // (3) A queue that does not exist, reached through the QueueUrl's own host (no endpoint).
    let missing = format!("{endpoint}/123456789012/no-such-queue");
    let result = exec(
        send_task(json!({"QueueUrl": missing, "MessageBody": "x"}), json!({})),
        json!({}),
        &[],
    );
    out.push(check(
        "sqs: a queue that does not exist fails with SQS.QueueDoesNotExistException",
        result["status"] == json!("FAILED")
            && result["error"] == json!("SQS.QueueDoesNotExistException")
            && result["cause"].as_str().is_some_and(|c| {
                c.contains("(Service: AmazonSQS; Status Code: 400; Error Code: AWS.SimpleQueueService.NonExistentQueue; Request ID: ")
            }),
        || result.to_string(),
    ));

    out.extend(daemon_checks(&python, &endpoint, &dir));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Makes a queue (with `attributes`, a Python dict literal); its URL.
fn create_queue(python: &Path, endpoint: &str, name: &str, attributes: &str) -> String {
    boto3(
        python,
        endpoint,
        &format!(
            "print(sqs.create_queue(QueueName='{name}', Attributes={attributes})['QueueUrl'])"
        ),
        &[],
    )
    .unwrap_or_else(|e| panic!("creating queue {name}: {e}"))
}

/// Sends `{"id": i, "wait": 0}` for `i` in `from..to`, ten a call, with a message attribute.
fn send_ids(
    python: &Path,
    endpoint: &str,
    queue: &str,
    from: u64,
    to: u64,
) -> Result<String, String> {
    boto3(
        python,
        endpoint,
        "a, b = int(sys.argv[2]), int(sys.argv[3])\n\
         for i in range(a, b, 10):\n\
         \x20   sqs.send_message_batch(QueueUrl=sys.argv[1], Entries=[{'Id': str(j), \
         'MessageBody': json.dumps({'id': j, 'wait': 0}), 'MessageAttributes': \
         {'kind': {'DataType': 'String', 'StringValue': 'test'}}} for j in range(i, min(i + 10, b))])",
        &[queue, &from.to_string(), &to.to_string()],
    )
}

/// Sends one message body as it is.
fn send_body(python: &Path, endpoint: &str, queue: &str, body: &str) -> Result<String, String> {
    boto3(
        python,
        endpoint,
        "sqs.send_message(QueueUrl=sys.argv[1], MessageBody=sys.argv[2])",
        &[queue, body],
    )
}

/// Every message now visible in `queue`, received once (hidden for 12 hours, not deleted:
/// moto's deletes race with the daemon's sends), as `{"body": …, "attributes": {…}}`.
fn drain(python: &Path, endpoint: &str, queue: &str) -> Vec<Value> {
    let text = boto3(
        python,
        endpoint,
        "out = []\n\
         while True:\n\
         \x20   r = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, \
         VisibilityTimeout=43200, MessageAttributeNames=['All'])\n\
         \x20   m = r.get('Messages', [])\n\
         \x20   if not m: break\n\
         \x20   out += [{'body': json.loads(x['Body']), 'attributes': {k: v.get('StringValue') \
         for k, v in x.get('MessageAttributes', {}).items()}} for x in m]\n\
         print(json.dumps(out))",
        &[queue],
    )
    .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// Messages in `queue`, visible or in flight.
fn queue_depth(python: &Path, endpoint: &str, queue: &str) -> Option<u64> {
    boto3(
        python,
        endpoint,
        "a = sqs.get_queue_attributes(QueueUrl=sys.argv[1], AttributeNames=['All'])['Attributes']\n\
         print(int(a['ApproximateNumberOfMessages']) + int(a['ApproximateNumberOfMessagesNotVisible']))",
        &[queue],
    )
    .ok()?
    .parse()
    .ok()
}

/// Waits until `done` holds (polling every 200 ms) or `timeout` passes; whether it held.
fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The daemon with SQS in and out (no `[kafka]`): thousands of messages each produce a result
/// and are deleted, a slow execution keeps its message invisible (heartbeats), failures reach
/// the dead-letter queue or are released to the queue's redrive policy, and a `kill -9`
/// mid-stream loses nothing.
fn daemon_checks(python: &Path, endpoint: &str, dir: &Path) -> Vec<Check> {
    use super::kafka::{metric, metrics_text, start_daemon};
    const BATCH: u64 = 3000;
    let mut out = Vec::new();
    let input = create_queue(python, endpoint, "in", "{}");
    let results = create_queue(python, endpoint, "results", "{}");
    let dlq = create_queue(python, endpoint, "dlq", "{}");
    let redrive_dlq = create_queue(python, endpoint, "redrive-dlq", "{}");
    let redrive_in = create_queue(
        python,
        endpoint,
        "redrive-in",
        "{'RedrivePolicy': json.dumps({'deadLetterTargetArn': \
         'arn:aws:sqs:us-east-1:123456789012:redrive-dlq', 'maxReceiveCount': '2'})}",
    );
    std::fs::write(
        dir.join("sm.asl.json"),
        json!({"StartAt": "Check", "States": {
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "IsPresent": true, "Next": "Boom"}], "Default": "Hold"},
            "Hold": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
            "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id", "source.$": "$$.Execution.Source"}, "End": true},
            "Boom": {"Type": "Fail", "Error": "Rejected", "Cause": "asked to fail"}}})
        .to_string(),
    )
    .expect("definition");
    let metrics_port = free_port();
    let config = dir.join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[state_machines]]
name = "it"
definition = "sm.asl.json"
[[sources]]
name = "in"
type = "sqs"
queue_url = "{input}"
state_machine = "it"
results_queue_url = "{results}"
dead_letter_queue_url = "{dlq}"
visibility_timeout_secs = 3
wait_time_secs = 1
[[sources]]
name = "redrive"
type = "sqs"
queue_url = "{redrive_in}"
state_machine = "it"
on_failure = "release"
wait_time_secs = 1
[workers]
shards = 2
shutdown_grace_secs = 10
[logs]
level = "OFF"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[integrations.sqs]
access_key_id = "testing"
secret_access_key = "testing"
"#
        ),
    )
    .expect("config");
    let deleted = || {
        metric(
            &metrics_text(metrics_port),
            "expressway_sqs_deletes_total{source=\"in\",result=\"ok\"}",
        )
    };

    // (1) Thousands of messages (and two poison ones): a result each, all deleted.
    if let Err(e) = send_ids(python, endpoint, &input, 0, BATCH) {
        return vec![("sqs daemon: boto3 sends the input", Err(e))];
    }
    let _ = send_body(python, endpoint, &input, "{not json");
    let _ = send_body(python, endpoint, &input, r#"{"id": "f", "fail": true}"#);
    let started = Instant::now();
    let mut daemon = start_daemon(&config);
    let all_deleted = wait_for(Duration::from_secs(120), || deleted() >= (BATCH + 2) as f64);
    let elapsed = started.elapsed();
    let rate = (BATCH + 2) as f64 / elapsed.as_secs_f64();
    println!(
        "sqs daemon: {} messages received, run and deleted in {:.1} s: {rate:.0} messages/s (moto)",
        BATCH + 2,
        elapsed.as_secs_f64()
    );
    let mut seen: HashMap<u64, Vec<Value>> = HashMap::new();
    let collect = |seen: &mut HashMap<u64, Vec<Value>>| {
        for r in drain(python, endpoint, &results) {
            if let Some(id) = r["body"]["id"].as_u64() {
                seen.entry(id).or_default().push(r);
            }
        }
    };
    collect(&mut seen);
    let missing = (0..BATCH).filter(|i| !seen.contains_key(i)).count();
    let sample = seen
        .get(&7)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default();
    out.push(check(
        "sqs daemon: every message of 3000 produces a result in the results queue and is deleted",
        all_deleted && missing == 0 && queue_depth(python, endpoint, &input) == Some(0),
        || {
            format!(
                "deleted {}, {missing} without a result, depth {:?}",
                deleted(),
                queue_depth(python, endpoint, &input)
            )
        },
    ));
    out.push(check(
        "sqs daemon: $$.Execution.Source has the message id, receive count and attributes; results carry the execution",
        sample["body"]["source"]["ReceiveCount"] == json!(1)
            && sample["body"]["source"]["MessageId"].as_str().is_some_and(|id| id.len() == 36)
            && sample["body"]["source"]["MessageAttributes"]["kind"]["StringValue"] == json!("test")
            && sample["body"]["source"]["Attributes"]["SentTimestamp"].is_string()
            && sample["attributes"]["expressway-execution"].is_string(),
        || sample.to_string(),
    ));
    let letters = drain(python, endpoint, &dlq);
    let reason = |r: &str| {
        letters
            .iter()
            .find(|l| l["body"]["reason"] == json!(r))
            .cloned()
            .unwrap_or_default()
    };
    let (bad, failed) = (reason("invalid_json"), reason("failed"));
    out.push(check(
        "sqs daemon: a body that is not JSON and a failing execution reach the DLQ with error and cause",
        letters.len() == 2
            && bad["body"]["error"] == json!("Expressway.InvalidJson")
            && bad["body"]["payload"] == json!("{not json")
            && bad["body"]["source"]["QueueUrl"] == json!(input)
            && failed["body"]["error"] == json!("Rejected")
            && failed["body"]["cause"] == json!("asked to fail"),
        || format!("{letters:?}"),
    ));

    // (2) An execution three times longer than the visibility timeout runs once.
    let _ = send_body(python, endpoint, &input, r#"{"id": 1000000, "wait": 10}"#);
    let slow_done = wait_for(Duration::from_secs(40), || deleted() >= (BATCH + 3) as f64);
    collect(&mut seen);
    let slow = seen.get(&1_000_000).cloned().unwrap_or_default();
    let text = metrics_text(metrics_port);
    out.push(check(
        "sqs daemon: an execution outliving the visibility timeout is not delivered twice (heartbeats)",
        slow_done
            && slow.len() == 1
            && slow[0]["body"]["source"]["ReceiveCount"] == json!(1)
            && metric(&text, "expressway_sqs_visibility_extensions_total{source=\"in\",result=\"ok\"}") >= 3.0,
        || format!("{slow:?}; {}", text.lines().filter(|l| l.contains("sqs_")).collect::<Vec<_>>().join("\n")),
    ));

    // (3) on_failure = "release": the queue's redrive policy moves a failing message to its DLQ.
    let _ = send_body(
        python,
        endpoint,
        &redrive_in,
        r#"{"id": "r", "fail": true}"#,
    );
    let mut redriven = Vec::new();
    let moved = wait_for(Duration::from_secs(30), || {
        redriven.extend(drain(python, endpoint, &redrive_dlq));
        !redriven.is_empty()
    });
    out.push(check(
        "sqs daemon: with on_failure = \"release\" a failing message is released and redriven to the queue's DLQ",
        moved && redriven[0]["body"] == json!({"id": "r", "fail": true}),
        || format!("{redriven:?}"),
    ));

    // (4) kill -9 mid-stream and restart: every message still produces its result.
    let before = deleted();
    let _ = send_ids(python, endpoint, &input, BATCH, 2 * BATCH);
    wait_for(Duration::from_secs(60), || {
        deleted() >= before + (BATCH / 3) as f64
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let mut daemon = start_daemon(&config);
    let drained = wait_for(Duration::from_secs(120), || {
        collect(&mut seen);
        (BATCH..2 * BATCH).all(|i| seen.contains_key(&i))
            && queue_depth(python, endpoint, &input) == Some(0)
    });
    let missing: Vec<u64> = (BATCH..2 * BATCH)
        .filter(|i| !seen.contains_key(i))
        .take(10)
        .collect();
    out.push(check(
        "sqs daemon: killed (kill -9) mid-stream and restarted, it loses nothing: the held messages reappear and complete",
        drained,
        || format!("missing ids (first 10) {missing:?}, depth {:?}", queue_depth(python, endpoint, &input)),
    ));
    sigterm(&daemon);
    let status = daemon.wait();
    out.push(check(
        "sqs daemon: SIGTERM drains and exits 0",
        status.as_ref().is_ok_and(|s| s.success()),
        || {
            format!(
                "{status:?}: {}",
                std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
            )
        },
    ));
    out
}

/// Sends SIGTERM to the daemon.
fn sigterm(daemon: &Child) {
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
}
