//! `arn:aws:states:::sqs:sendMessage` against a real SQS API: moto's server, from a Python
//! venv cached in `target/sqs-venv` (`pip install "moto[server]" boto3` on the first run),
//! driven through the `expressway exec` binary with SigV4 credentials in the environment
//! (moto routes a request to SQS by its signature's credential scope). The queue is made,
//! and the message read back, with boto3. Skipped, saying why, when the venv cannot be made.

use super::api::{free_port, python_venv};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Check = (&'static str, Result<(), String>);

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
    let python = match python_venv(
        "sqs-venv",
        &["moto[server]", "boto3"],
        "moto.server, boto3",
        &["moto_server"],
    ) {
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
    let server = Command::new(python.with_file_name("moto_server"))
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

    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    out
}
