//! `arn:aws:states:::sqs:sendMessage`, and the daemon's SQS source and sinks, against a real
//! SQS API: moto's server (through `moto_server.py`, which fixes a race in moto's deletes), from
//! a Python venv cached in `target/sqs-venv` (`pip install` of the pins of
//! `moto-requirements.txt`, [`packages`]),
//! driven through the `expressway exec` binary with SigV4 credentials in the environment
//! (moto routes a request to SQS by its signature's credential scope). The queue is made,
//! and the message read back, with boto3. Skipped, saying why, when the venv cannot be made.
//!
//! The `daemon_*` checks share one daemon with SQS in and out (no `[kafka]`), made when the
//! first of them needs it ([`Sqs::daemon`]); those about the first 3,000 messages share
//! their run ([`SqsDaemon::batch`]).

use crate::daemon::{free_port, metric, metrics_text, Daemon};
use crate::harness::{group, verdict, Group, Problem, Verdict};
use crate::python::python_venv;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pins of `moto-requirements.txt` (`moto_server.py` patches moto 5.2.5's internals), the
/// one list for every venv that runs moto: this group's, `parity`'s, `aws`'s and the
/// conformance gate's (`moto_venv.py`), all `target/sqs-venv`.
fn packages() -> Vec<&'static str> {
    include_str!("moto-requirements.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

const KEYS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
];

/// Messages of the daemon's first batch, and of the batch sent around its `kill -9`.
const BATCH: u64 = 3000;

pub fn group() -> Group<Sqs> {
    group!(
        "sqs",
        Sqs::start,
        [
            send_message_returns_message_id_md5s_and_sdk_metadata,
            the_queue_holds_the_message_its_body_the_json_text_its_attribute_and_md5_as_sent,
            a_missing_message_body_fails_with_amazon_sqs_exception_caught,
            a_queue_that_does_not_exist_fails_with_queue_does_not_exist_exception,
            daemon_every_message_of_3000_produces_a_result_and_is_deleted,
            daemon_execution_source_has_message_id_receive_count_and_attributes,
            daemon_a_body_not_json_and_a_failing_execution_reach_the_dlq_with_error_and_cause,
            daemon_an_execution_outliving_the_visibility_timeout_is_not_delivered_twice,
            daemon_on_failure_release_lets_the_redrive_policy_move_a_failing_message,
            daemon_kill_9_mid_stream_and_restart_loses_nothing,
            daemon_sigterm_drains_and_exits_0,
        ]
    )
    .skipped_by("EXPRESSWAY_SKIP_SQS")
}

/// Kills moto when the checks end, however they end.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's server (through `moto_server.py`) from the venv, on a free port; stopped when
/// dropped. Also used by the `parity` and `aws` groups.
pub struct Moto {
    pub python: PathBuf,
    pub endpoint: String,
    _server: Server,
}

impl Moto {
    /// Starts it, its log in `dir`; skipped, saying why, when the venv cannot be made.
    pub fn start(dir: &Path) -> Result<Moto, Problem> {
        let python = python_venv("sqs-venv", &packages(), "moto.server, boto3", &[])
            .map_err(Problem::Skipped)?;
        let port = free_port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let log = dir.join("moto.log");
        let mut server = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_err(|e| format!("moto log: {e}"))?)
            .spawn()
            .map(Server)
            .map_err(|e| format!("moto_server does not start: {e}"))?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.0.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("moto_server exited with {status}: {text}").into());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("nothing listens on moto_server's port after 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Moto {
            python,
            endpoint,
            _server: server,
        })
    }

    /// Makes a queue (with `attributes`, a Python dict literal); its URL.
    pub fn create_queue(&self, name: &str, attributes: &str) -> Result<String, String> {
        create_queue(&self.python, &self.endpoint, name, attributes)
    }

    /// Sends one message body as it is.
    pub fn send_body(&self, queue: &str, body: &str) -> Result<String, String> {
        send_body(&self.python, &self.endpoint, queue, body)
    }
}

/// moto's server from the venv, with a queue for the `sendMessage` checks.
pub struct Sqs {
    dir: PathBuf,
    queue_url: String,
    /// The `exec` that sent a message to `queue_url`, once: one check reads its output, the
    /// next reads the message back.
    sent: Option<Value>,
    daemon: Option<Result<SqsDaemon, String>>,
    // Last, so that the daemon above stops before moto does.
    moto: Moto,
}

impl Sqs {
    fn start() -> Result<Self, Problem> {
        let dir = std::env::temp_dir().join(format!("expressway-sqs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let moto = Moto::start(&dir)?;
        let queue_url = boto3(
            &moto.python,
            &moto.endpoint,
            "print(sqs.create_queue(QueueName='expressway')['QueueUrl'])",
            &[],
        )
        .map_err(|e| format!("boto3 does not create a queue on moto: {e}"))?;
        Ok(Sqs {
            dir,
            queue_url,
            sent: None,
            daemon: None,
            moto,
        })
    }

    /// Sends a JSON body with an attribute to `queue_url` (once); the `exec` line.
    fn sent(&mut self) -> &Value {
        let (queue, endpoint) = (&self.queue_url, &self.moto.endpoint);
        self.sent.get_or_insert_with(|| {
            let definition = send_task(
                json!({
                    "QueueUrl.$": "$.queue",
                    "MessageBody": {"greeting.$": "$.who", "n": 1},
                    "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "test"}}
                }),
                json!({}),
            );
            exec(
                definition,
                json!({"queue": queue, "who": "world"}),
                &["--sqs-endpoint", endpoint],
            )
        })
    }

    /// The daemon's queues and config, made on first use.
    fn daemon(&mut self) -> Result<&mut SqsDaemon, Problem> {
        if self.daemon.is_none() {
            self.daemon = Some(SqsDaemon::configure(
                &self.moto.python,
                &self.moto.endpoint,
                &self.dir,
            ));
        }
        match self.daemon.as_mut().expect("just made") {
            Ok(daemon) => Ok(daemon),
            Err(why) => Err(format!("setting up the daemon: {why}").into()),
        }
    }
}

impl Drop for Sqs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daemon with SQS in and out: its queues, config, and the results read so far.
pub struct SqsDaemon {
    python: PathBuf,
    endpoint: String,
    input: String,
    results: String,
    dlq: String,
    redrive_in: String,
    redrive_dlq: String,
    config: PathBuf,
    metrics_port: u16,
    running: Option<Daemon>,
    /// Results by id: reading hides them (see [`drain`]), so every read lands here.
    seen: HashMap<u64, Vec<Value>>,
    batch: Option<Result<Batch, String>>,
}

/// How the first batch went.
#[derive(Clone, Copy)]
struct Batch {
    all_deleted: bool,
    /// Ids of the batch without a result.
    missing: usize,
}

impl SqsDaemon {
    fn configure(python: &Path, endpoint: &str, dir: &Path) -> Result<Self, String> {
        let queue = |name: &str, attributes: &str| create_queue(python, endpoint, name, attributes);
        let input = queue("in", "{}")?;
        let results = queue("results", "{}")?;
        let dlq = queue("dlq", "{}")?;
        let redrive_dlq = queue("redrive-dlq", "{}")?;
        let redrive_in = queue(
            "redrive-in",
            "{'RedrivePolicy': json.dumps({'deadLetterTargetArn': \
             'arn:aws:sqs:us-east-1:123456789012:redrive-dlq', 'maxReceiveCount': '2'})}",
        )?;
        std::fs::write(
            dir.join("sm.asl.json"),
            json!({"StartAt": "Check", "States": {
                "Check": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "IsPresent": true, "Next": "Boom"}], "Default": "Hold"},
                "Hold": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
                "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id", "source.$": "$$.Execution.Source"}, "End": true},
                "Boom": {"Type": "Fail", "Error": "Rejected", "Cause": "asked to fail"}}})
            .to_string(),
        )
        .map_err(|e| format!("definition: {e}"))?;
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
        .map_err(|e| format!("config: {e}"))?;
        Ok(SqsDaemon {
            python: python.to_owned(),
            endpoint: endpoint.to_owned(),
            input,
            results,
            dlq,
            redrive_in,
            redrive_dlq,
            config,
            metrics_port,
            running: None,
            seen: HashMap::new(),
            batch: None,
        })
    }

    /// The daemon, started if it is not running.
    fn running(&mut self) -> &mut Daemon {
        let config = &self.config;
        self.running.get_or_insert_with(|| Daemon::start(config))
    }

    /// Messages of `in` deleted by the running daemon.
    fn deleted(&self) -> f64 {
        metric(
            &metrics_text(self.metrics_port),
            "expressway_sqs_deletes_total{source=\"in\",result=\"ok\"}",
        )
    }

    /// Reads the results queue into `seen`.
    fn collect(&mut self) {
        for r in drain(&self.python, &self.endpoint, &self.results) {
            if let Some(id) = r["body"]["id"].as_u64() {
                self.seen.entry(id).or_default().push(r);
            }
        }
    }

    fn depth(&self) -> Option<u64> {
        queue_depth(&self.python, &self.endpoint, &self.input)
    }

    /// The first batch, once: ids `0..BATCH` and two poison messages sent, then the daemon
    /// started and given two minutes to delete them all.
    fn batch(&mut self) -> Result<Batch, Problem> {
        if self.batch.is_none() {
            self.batch = Some(self.run_batch());
        }
        match self.batch.clone().expect("just run") {
            Ok(batch) => Ok(batch),
            Err(why) => Err(format!("the first batch: {why}").into()),
        }
    }

    fn run_batch(&mut self) -> Result<Batch, String> {
        let (python, endpoint) = (&self.python, &self.endpoint);
        send_ids(python, endpoint, &self.input, 0, BATCH)
            .map_err(|e| format!("boto3 does not send the input: {e}"))?;
        let _ = send_body(python, endpoint, &self.input, "{not json");
        let _ = send_body(
            python,
            endpoint,
            &self.input,
            r#"{"id": "f", "fail": true}"#,
        );
        let started = Instant::now();
        self.running();
        let all_deleted = wait_for(Duration::from_secs(120), || {
            self.deleted() >= (BATCH + 2) as f64
        });
        let elapsed = started.elapsed();
        let rate = (BATCH + 2) as f64 / elapsed.as_secs_f64();
        println!(
            "sqs daemon: {} messages received, run and deleted in {:.1} s: {rate:.0} messages/s (moto)",
            BATCH + 2,
            elapsed.as_secs_f64()
        );
        self.collect();
        let missing = (0..BATCH).filter(|i| !self.seen.contains_key(i)).count();
        Ok(Batch {
            all_deleted,
            missing,
        })
    }
}

/// A JSON body is sent as its text, with attributes; the result is AWS's shape.
fn send_message_returns_message_id_md5s_and_sdk_metadata(s: &mut Sqs) -> Verdict {
    let result = s.sent();
    let output = &result["output"];
    let keys: Vec<&str> = output
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    verdict(
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
    )
}

fn the_queue_holds_the_message_its_body_the_json_text_its_attribute_and_md5_as_sent(
    s: &mut Sqs,
) -> Verdict {
    let result = s.sent().clone();
    let output = &result["output"];
    let received = boto3(
        &s.moto.python,
        &s.moto.endpoint,
        "r = sqs.receive_message(QueueUrl=sys.argv[1], MaxNumberOfMessages=10, \
         MessageAttributeNames=['All'], WaitTimeSeconds=1)\n\
         print(json.dumps(r.get('Messages', [])))",
        &[&s.queue_url],
    )
    .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| format!("{e}: {text}")));
    verdict(
        received.as_ref().is_ok_and(|messages| {
            messages.as_array().is_some_and(|m| m.len() == 1)
                && messages[0]["MessageId"] == output["MessageId"]
                && messages[0]["Body"] == json!(r#"{"greeting":"world","n":1}"#)
                && messages[0]["MD5OfBody"] == output["MD5OfMessageBody"]
                && messages[0]["MessageAttributes"]["kind"]["StringValue"] == json!("test")
        }),
        || format!("{received:?} for {result}"),
    )
}

/// No MessageBody: SQS's MissingParameter, caught by its name.
fn a_missing_message_body_fails_with_amazon_sqs_exception_caught(s: &mut Sqs) -> Verdict {
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
        json!({"queue": s.queue_url, "body": null}),
        &["--sqs-endpoint", &s.moto.endpoint],
    );
    let error = &result["output"]["aws_error"];
    verdict(
        result["status"] == json!("SUCCEEDED")
            && error["Error"] == json!("SQS.AmazonSQSException")
            && error["Cause"].as_str().is_some_and(|c| {
                c.starts_with(
                    "The request must contain the parameter MessageBody. (Service: AmazonSQS; \
                     Status Code: 400; Error Code: MissingParameter; Request ID: ",
                )
            }),
        || result.to_string(),
    )
}

/// Reached through the QueueUrl's own host (no endpoint).
fn a_queue_that_does_not_exist_fails_with_queue_does_not_exist_exception(s: &mut Sqs) -> Verdict {
    let missing = format!("{}/123456789012/no-such-queue", s.moto.endpoint);
    let result = exec(
        send_task(json!({"QueueUrl": missing, "MessageBody": "x"}), json!({})),
        json!({}),
        &[],
    );
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("SQS.QueueDoesNotExistException")
            && result["cause"].as_str().is_some_and(|c| {
                c.contains("(Service: AmazonSQS; Status Code: 400; Error Code: AWS.SimpleQueueService.NonExistentQueue; Request ID: ")
            }),
        || result.to_string(),
    )
}

fn daemon_every_message_of_3000_produces_a_result_and_is_deleted(s: &mut Sqs) -> Verdict {
    let d = s.daemon()?;
    let batch = d.batch()?;
    let depth = d.depth();
    verdict(
        batch.all_deleted && batch.missing == 0 && depth == Some(0),
        || {
            format!(
                "deleted {}, {} without a result, depth {depth:?}",
                d.deleted(),
                batch.missing
            )
        },
    )
}

/// Results carry the execution's name in a message attribute.
fn daemon_execution_source_has_message_id_receive_count_and_attributes(s: &mut Sqs) -> Verdict {
    let d = s.daemon()?;
    d.batch()?;
    let sample = d
        .seen
        .get(&7)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default();
    verdict(
        sample["body"]["source"]["ReceiveCount"] == json!(1)
            && sample["body"]["source"]["MessageId"]
                .as_str()
                .is_some_and(|id| id.len() == 36)
            && sample["body"]["source"]["MessageAttributes"]["kind"]["StringValue"]
                == json!("test")
            && sample["body"]["source"]["Attributes"]["SentTimestamp"].is_string()
            && sample["attributes"]["expressway-execution"].is_string(),
        || sample.to_string(),
    )
}

fn daemon_a_body_not_json_and_a_failing_execution_reach_the_dlq_with_error_and_cause(
    s: &mut Sqs,
) -> Verdict {
    let d = s.daemon()?;
    d.batch()?;
    let letters = drain(&d.python, &d.endpoint, &d.dlq);
    let reason = |r: &str| {
        letters
            .iter()
            .find(|l| l["body"]["reason"] == json!(r))
            .cloned()
            .unwrap_or_default()
    };
    let (bad, failed) = (reason("invalid_json"), reason("failed"));
    verdict(
        letters.len() == 2
            && bad["body"]["error"] == json!("Expressway.InvalidJson")
            && bad["body"]["payload"] == json!("{not json")
            && bad["body"]["source"]["QueueUrl"] == json!(d.input)
            && failed["body"]["error"] == json!("Rejected")
            && failed["body"]["cause"] == json!("asked to fail"),
        || format!("{letters:?}"),
    )
}

/// An execution three times longer than the visibility timeout runs once: heartbeats keep its
/// message invisible.
fn daemon_an_execution_outliving_the_visibility_timeout_is_not_delivered_twice(
    s: &mut Sqs,
) -> Verdict {
    let d = s.daemon()?;
    d.running();
    let before = d.deleted();
    let _ = send_body(
        &d.python,
        &d.endpoint,
        &d.input,
        r#"{"id": 1000000, "wait": 10}"#,
    );
    let slow_done = wait_for(Duration::from_secs(40), || d.deleted() > before);
    d.collect();
    let slow = d.seen.get(&1_000_000).cloned().unwrap_or_default();
    let text = metrics_text(d.metrics_port);
    verdict(
        slow_done
            && slow.len() == 1
            && slow[0]["body"]["source"]["ReceiveCount"] == json!(1)
            && metric(
                &text,
                "expressway_sqs_visibility_extensions_total{source=\"in\",result=\"ok\"}",
            ) >= 3.0,
        || {
            format!(
                "{slow:?}; {}",
                text.lines()
                    .filter(|l| l.contains("sqs_"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        },
    )
}

/// `on_failure = "release"`: the queue's redrive policy moves a failing message to its DLQ.
fn daemon_on_failure_release_lets_the_redrive_policy_move_a_failing_message(
    s: &mut Sqs,
) -> Verdict {
    let d = s.daemon()?;
    d.running();
    let _ = send_body(
        &d.python,
        &d.endpoint,
        &d.redrive_in,
        r#"{"id": "r", "fail": true}"#,
    );
    let mut redriven = Vec::new();
    let moved = wait_for(Duration::from_secs(30), || {
        redriven.extend(drain(&d.python, &d.endpoint, &d.redrive_dlq));
        !redriven.is_empty()
    });
    verdict(
        moved && redriven[0]["body"] == json!({"id": "r", "fail": true}),
        || format!("{redriven:?}"),
    )
}

/// Killed (`kill -9`) a third of the way through 3,000 more messages and restarted: the
/// messages it held reappear and complete.
fn daemon_kill_9_mid_stream_and_restart_loses_nothing(s: &mut Sqs) -> Verdict {
    let d = s.daemon()?;
    d.running();
    let before = d.deleted();
    let _ = send_ids(&d.python, &d.endpoint, &d.input, BATCH, 2 * BATCH);
    wait_for(Duration::from_secs(60), || {
        d.deleted() >= before + (BATCH / 3) as f64
    });
    if let Some(daemon) = d.running.take() {
        daemon.kill_9();
    }
    d.running();
    let drained = wait_for(Duration::from_secs(120), || {
        d.collect();
        (BATCH..2 * BATCH).all(|i| d.seen.contains_key(&i)) && d.depth() == Some(0)
    });
    let missing: Vec<u64> = (BATCH..2 * BATCH)
        .filter(|i| !d.seen.contains_key(i))
        .take(10)
        .collect();
    verdict(drained, || {
        format!("missing ids (first 10) {missing:?}, depth {:?}", d.depth())
    })
}

fn daemon_sigterm_drains_and_exits_0(s: &mut Sqs) -> Verdict {
    let d = s.daemon()?;
    d.running();
    let mut daemon = d.running.take().expect("just started");
    let _ = daemon.sigterm();
    let status = daemon.exit_within(Duration::from_secs(30));
    verdict(status.is_some_and(|s| s.success()), || {
        format!("{status:?} 30 s after SIGTERM: {}", daemon.log())
    })
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

/// Makes a queue (with `attributes`, a Python dict literal); its URL.
fn create_queue(
    python: &Path,
    endpoint: &str,
    name: &str,
    attributes: &str,
) -> Result<String, String> {
    boto3(
        python,
        endpoint,
        &format!(
            "print(sqs.create_queue(QueueName='{name}', Attributes={attributes})['QueueUrl'])"
        ),
        &[],
    )
    .map_err(|e| format!("creating queue {name}: {e}"))
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
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
