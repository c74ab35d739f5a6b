//! The AWS service integrations against a real AWS API: the optimized ones
//! (`arn:aws:states:::dynamodb:*`, `sns:publish`, `events:putEvents`, `sqs:sendMessage`, whose
//! results are the AWS Java SDK v1's with `SdkHttpMetadata`) and `aws-sdk:<service>:<action>`
//! (results as the AWS SDK v2 returns them, errors `<Service>.<Exception>`), each run through
//! `expressway exec` against one moto server for the group ([`Moto`], the pinned venv of
//! `moto-requirements.txt`), reached as AWS SDKs reach an endpoint: `AWS_ENDPOINT_URL`, and
//! `AWS_ENDPOINT_URL_DYNAMODB` for the throttling server of the retry checks, which answers
//! from this process. The resources are made, and what a state machine sent is read back, with
//! boto3 (`aws_fixtures.py`). Every expectation is what AWS returns, not what moto adds.
//!
//! moto takes every request into its default account, 123456789012, whatever the access key
//! (only `MOTO_ACCOUNT_ID` on the server or an IAM-made key changes that): the account of the
//! demo's SNS topic (`config/state-machines/sensor-alert.asl.json`), so the demo runs as
//! shipped. The engine's environment is cleared of every `AWS_*` variable and `HOME` points at
//! an empty directory, so a developer's `~/.aws` or endpoints cannot leak in.
//!
//! Skipped, saying why, when the venv cannot be made, except under `EXPRESSWAY_REQUIRE_ALL=1`
//! (`.ci/run`), where that fails the group; `EXPRESSWAY_SKIP_AWS=1` skips it.

use crate::harness::{group, verdict, Group, Problem, Verdict};
use crate::integrations::{serve, Reply};
use crate::sqs::Moto;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// moto's default account, which every resource here belongs to.
const ACCOUNT: &str = "123456789012";
const TABLE: &str = "expressway-items";
const BUCKET: &str = "expressway-bucket";
const FIREHOSE_BUCKET: &str = "expressway-firehose-out";
const STREAM: &str = "expressway-stream";
const DELIVERY_STREAM: &str = "expressway-firehose";
/// The queues the setup makes: SNS subscribers, the EventBridge rule's target, and one
/// `sqs:sendMessage` sends to.
const QUEUES: [&str; 4] = [
    "topic-subscriber",
    "rule-target",
    "alerts-subscriber",
    "sent",
];
/// No `exec` here takes long; one that hangs fails its check instead of the run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

pub fn group() -> Group<Aws> {
    group!(
        "aws",
        Aws::start,
        [
            dynamodb_put_item_then_get_item_return_the_item_with_sdk_metadata,
            dynamodb_update_item_returns_updated_new_attributes_and_delete_item_removes_the_item,
            aws_sdk_dynamodb_put_item_then_query_return_sdk_v2_shapes_without_metadata,
            a_missing_table_is_caught_as_dynamodb_resource_not_found_exception_optimized,
            a_missing_table_is_caught_as_dynamodb_resource_not_found_exception_aws_sdk,
            a_throttling_exception_is_retried_by_aws_sdk_dynamodb_and_the_second_attempt_succeeds,
            a_throttling_exception_is_retried_by_the_optimized_dynamodb_put_item_too,
            sns_publish_delivers_the_message_to_the_topics_sqs_subscription,
            eventbridge_put_events_delivers_the_event_to_the_sqs_target_of_a_matching_rule,
            eventbridge_an_entry_without_source_fails_the_state_with_eventbridge_failed_entry,
            sqs_send_message_follows_aws_endpoint_url_not_the_queue_urls_host,
            aws_sdk_s3_put_object_then_get_object_returns_the_body_as_text_with_its_etag,
            aws_sdk_s3_list_objects_v2_lists_the_object_with_key_size_and_iso_timestamp,
            a_missing_bucket_is_caught_as_s3_no_such_bucket_exception,
            a_missing_key_fails_the_state_with_s3_no_such_key_exception,
            aws_sdk_secretsmanager_create_secret_then_get_secret_value_returns_the_string,
            aws_sdk_ssm_put_parameter_then_get_parameter_returns_its_value,
            aws_sdk_kinesis_put_record_lands_in_the_stream_as_the_strings_bytes,
            aws_sdk_firehose_put_record_is_delivered_to_the_streams_s3_bucket,
            aws_sdk_sts_get_caller_identity_names_the_account,
            sensor_alert_demo_publishes_its_alert_through_sns_to_the_subscribed_queue,
            distributed_map_reads_a_csv_object_with_its_header_up_to_max_items,
            distributed_map_reads_a_json_object_and_writes_results_under_the_prefix,
            distributed_map_over_an_s3_listing_gets_each_objects_key_and_size,
            a_missing_item_reader_object_fails_the_map_with_states_item_reader_failed,
            web_identity_credentials_come_from_sts_and_sign_as_the_assumed_role,
            container_credentials_are_fetched_with_their_token_and_sign_the_call,
            a_profile_in_the_shared_files_gives_the_keys_and_its_services_endpoint,
            a_profile_with_role_arn_and_source_profile_signs_as_the_assumed_role,
        ]
    )
    .skipped_by("EXPRESSWAY_SKIP_AWS")
}

/// moto with the group's resources, and a scratch directory (the engine's `HOME`, the
/// definitions and inputs).
pub struct Aws {
    dir: PathBuf,
    /// Queue URLs (moto's) by name.
    queues: HashMap<&'static str, String>,
    moto: Moto,
}

impl Aws {
    fn start() -> Result<Self, Problem> {
        let dir = std::env::temp_dir().join(format!("expressway-aws-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("home")).map_err(|e| format!("temp dir: {e}"))?;
        let moto = Moto::start(&dir).map_err(required)?;
        let mut aws = Aws {
            dir,
            queues: HashMap::new(),
            moto,
        };
        let mut calls = vec![json!(["dynamodb", "create_table", {
            "TableName": TABLE,
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST"
        }])];
        calls.extend(
            QUEUES
                .iter()
                .map(|q| json!(["sqs", "create_queue", {"QueueName": q}])),
        );
        calls.extend([
            json!(["sns", "create_topic", {"Name": "expressway-topic"}]),
            json!(["sns", "subscribe", {"TopicArn": topic_arn("expressway-topic"),
                "Protocol": "sqs", "Endpoint": queue_arn("topic-subscriber")}]),
            json!(["sns", "create_topic", {"Name": "sensor-alerts"}]),
            json!(["sns", "subscribe", {"TopicArn": topic_arn("sensor-alerts"),
                "Protocol": "sqs", "Endpoint": queue_arn("alerts-subscriber")}]),
            json!(["events", "put_rule", {"Name": "expressway-rule",
                "EventPattern": json!({"source": ["expressway.test"]}).to_string()}]),
            json!(["events", "put_targets", {"Rule": "expressway-rule",
                "Targets": [{"Id": "queue", "Arn": queue_arn("rule-target")}]}]),
            json!(["s3", "create_bucket", {"Bucket": BUCKET}]),
            json!(["s3", "create_bucket", {"Bucket": FIREHOSE_BUCKET}]),
            json!(["kinesis", "create_stream", {"StreamName": STREAM, "ShardCount": 1}]),
            json!(["firehose", "create_delivery_stream", {
                "DeliveryStreamName": DELIVERY_STREAM,
                "ExtendedS3DestinationConfiguration": {
                    "RoleARN": format!("arn:aws:iam::{ACCOUNT}:role/firehose"),
                    "BucketARN": format!("arn:aws:s3:::{FIREHOSE_BUCKET}"),
                    "Prefix": "delivered/"
                }
            }]),
        ]);
        let results = aws
            .boto3(&Value::Array(calls.clone()))
            .map_err(|e| format!("boto3 against moto: {e}"))?;
        for (call, result) in calls.iter().zip(&results) {
            if result.get("ok").is_none() {
                return Err(format!("setting up {call}: {result}").into());
            }
        }
        for (name, result) in QUEUES.iter().zip(&results[1..]) {
            let url = result["ok"]["QueueUrl"].as_str().unwrap_or_default();
            aws.queues.insert(name, url.to_owned());
        }
        Ok(aws)
    }

    /// Runs `aws_fixtures.py` on a list of `[service, operation, params]`; its results.
    fn boto3(&self, calls: &Value) -> Result<Vec<Value>, String> {
        let mut child = Command::new(&self.moto.python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/aws_fixtures.py"))
            .args([&self.moto.endpoint, "testing"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            stdin
                .write_all(calls.to_string().as_bytes())
                .map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }

    /// One boto3 call: its response, or `Err` with the error (or why it could not be made).
    fn call(&self, service: &str, operation: &str, params: Value) -> Result<Value, String> {
        let mut results = self.boto3(&json!([[service, operation, params]]))?;
        let result = results.pop().unwrap_or_default();
        match result.get("ok") {
            Some(ok) => Ok(ok.clone()),
            None => Err(result.to_string()),
        }
    }

    /// The messages now in queue `name` (waiting up to 2 s for the first), bodies parsed as
    /// JSON where they are JSON.
    fn receive(&self, name: &str) -> Result<Vec<Value>, String> {
        let response = self.call(
            "sqs",
            "receive_message",
            json!({"QueueUrl": self.queues[name], "MaxNumberOfMessages": 10,
                   "WaitTimeSeconds": 2, "VisibilityTimeout": 600}),
        )?;
        Ok(response["Messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let body = m["Body"].as_str().unwrap_or_default();
                serde_json::from_str(body).unwrap_or_else(|_| json!(body))
            })
            .collect())
    }

    /// `expressway exec` against moto; its JSON line.
    fn exec(&self, definition: Value, input: Value) -> Value {
        self.exec_with(definition, input, &[])
    }

    /// [`Aws::exec`] with more environment variables (they win over moto's).
    fn exec_with(&self, definition: Value, input: Value, extra: &[(&str, &str)]) -> Value {
        let name = fastrand::u64(..);
        let def = self.dir.join(format!("{name}.asl.json"));
        let inp = self.dir.join(format!("{name}.input.json"));
        std::fs::write(&def, definition.to_string()).expect("definition");
        std::fs::write(&inp, input.to_string()).expect("input");
        let result = exec_file(&def, &inp, &self.env(extra), &self.dir.join("home"));
        let _ = std::fs::remove_file(def);
        let _ = std::fs::remove_file(inp);
        result
    }

    /// The engine's AWS environment: moto for every service, static credentials, us-east-1.
    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", self.moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ];
        env.extend_from_slice(extra);
        env
    }
}

impl Drop for Aws {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A venv that cannot be made skips the group, unless everything is required.
fn required(problem: Problem) -> Problem {
    match problem {
        Problem::Skipped(why) if std::env::var("EXPRESSWAY_REQUIRE_ALL").as_deref() == Ok("1") => {
            Problem::Failed(format!("{why} (required: EXPRESSWAY_REQUIRE_ALL=1)"))
        }
        other => other,
    }
}

/// `expressway exec --definition DEF --input INPUT` with `env` as its only `AWS_*` variables
/// and `home` as `HOME`; its last stdout line as JSON (or what it said instead), killed after
/// [`EXEC_TIMEOUT`].
fn exec_file(definition: &Path, input: &Path, env: &[(&str, &str)], home: &Path) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_expressway"));
    command
        .arg("exec")
        .arg("--definition")
        .arg(definition)
        .arg("--input")
        .arg(input)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("the expressway binary runs");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let mut timed_out = false;
    while child.try_wait().ok().flatten().is_none() {
        if started.elapsed() > EXEC_TIMEOUT {
            let _ = child.kill();
            timed_out = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if timed_out {
        return json!({"timed_out_after_s": EXEC_TIMEOUT.as_secs(), "stderr": stderr});
    }
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({"no_json": stdout, "stderr": stderr}))
}

fn topic_arn(name: &str) -> String {
    format!("arn:aws:sns:us-east-1:{ACCOUNT}:{name}")
}

fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}")
}

/// Task states run in order, each `(name, resource after arn:aws:states:::, Parameters)`
/// with its result at `$.<name>`.
fn steps(steps: &[(&str, &str, Value)]) -> Value {
    let mut states = serde_json::Map::new();
    for (i, (name, resource, parameters)) in steps.iter().enumerate() {
        let mut state = json!({
            "Type": "Task",
            "Resource": format!("arn:aws:states:::{resource}"),
            "Parameters": parameters,
            "ResultPath": format!("$.{name}"),
        });
        match steps.get(i + 1) {
            Some((next, _, _)) => state["Next"] = json!(next),
            None => state["End"] = json!(true),
        }
        states.insert(name.to_string(), state);
    }
    json!({"StartAt": steps[0].0, "States": states})
}

/// One Task whose failure named `error` is caught, its error output at `$.error`.
fn caught(resource: &str, parameters: Value, error: &str) -> Value {
    json!({"StartAt": "Call", "States": {
        "Call": {
            "Type": "Task",
            "Resource": format!("arn:aws:states:::{resource}"),
            "Parameters": parameters,
            "Catch": [{"ErrorEquals": [error], "ResultPath": "$.error", "Next": "Caught"}],
            "End": true
        },
        "Caught": {"Type": "Pass", "End": true}
    }})
}

/// Runs a Task whose `error` a Catch takes, and checks it was that error with a cause that
/// starts with `cause` (the rest is a request id).
fn catches(a: &Aws, resource: &str, parameters: Value, error: &str, cause: &str) -> Verdict {
    let result = a.exec(caught(resource, parameters, error), json!({}));
    let caught = &result["output"]["error"];
    verdict(
        result["status"] == json!("SUCCEEDED")
            && caught["Error"] == json!(error)
            && starts_with(&caught["Cause"], cause),
        || result.to_string(),
    )
}

/// An object's keys, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

/// The Java SDK v1's metadata, as the optimized integrations add it to a 200 response.
fn has_sdk_metadata(value: &Value) -> bool {
    value["SdkHttpMetadata"]["HttpStatusCode"] == json!(200)
        && value["SdkHttpMetadata"]["HttpHeaders"].is_object()
        && value["SdkHttpMetadata"]["AllHttpHeaders"].is_object()
        && value["SdkResponseMetadata"]["RequestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
}

/// An ISO-8601 date-time text (`2024-05-01T12:00:00Z`, fractions and offsets allowed), the
/// way Step Functions shows an SDK timestamp.
fn is_iso8601(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (text.ends_with('Z') || text[19..].contains(['+', '-']))
}

fn starts_with(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|s| s.starts_with(prefix))
}

fn item(id: &str) -> Value {
    json!({"id": {"S": id}, "data": {"S": "HelloWorld"}, "count": {"N": "1"}})
}

fn dynamodb_put_item_then_get_item_return_the_item_with_sdk_metadata(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[
            (
                "put",
                "dynamodb:putItem",
                json!({"TableName": TABLE, "Item": item("put-get")}),
            ),
            (
                "got",
                "dynamodb:getItem",
                json!({"TableName": TABLE, "Key": {"id": {"S": "put-get"}}}),
            ),
        ]),
        json!({}),
    );
    let (put, got) = (&result["output"]["put"], &result["output"]["got"]);
    verdict(
        result["status"] == json!("SUCCEEDED")
            && keys(put) == ["SdkHttpMetadata", "SdkResponseMetadata"]
            && has_sdk_metadata(put)
            && keys(got) == ["Item", "SdkHttpMetadata", "SdkResponseMetadata"]
            && got["Item"] == item("put-get")
            && has_sdk_metadata(got),
        || result.to_string(),
    )
}

fn dynamodb_update_item_returns_updated_new_attributes_and_delete_item_removes_the_item(
    a: &mut Aws,
) -> Verdict {
    let key = json!({"id": {"S": "update-delete"}});
    let result = a.exec(
        steps(&[
            (
                "put",
                "dynamodb:putItem",
                json!({"TableName": TABLE, "Item": item("update-delete")}),
            ),
            (
                "updated",
                "dynamodb:updateItem",
                json!({"TableName": TABLE, "Key": key,
                       "UpdateExpression": "SET #c = #c + :one",
                       "ExpressionAttributeNames": {"#c": "count"},
                       "ExpressionAttributeValues": {":one": {"N": "1"}},
                       "ReturnValues": "UPDATED_NEW"}),
            ),
            (
                "deleted",
                "dynamodb:deleteItem",
                json!({"TableName": TABLE, "Key": key}),
            ),
            (
                "after",
                "dynamodb:getItem",
                json!({"TableName": TABLE, "Key": key}),
            ),
        ]),
        json!({}),
    );
    let out = &result["output"];
    verdict(
        result["status"] == json!("SUCCEEDED")
            && out["updated"]["Attributes"] == json!({"count": {"N": "2"}})
            && has_sdk_metadata(&out["updated"])
            && keys(&out["deleted"]) == ["SdkHttpMetadata", "SdkResponseMetadata"]
            && has_sdk_metadata(&out["deleted"])
            // A missing item: no `Item` at all.
            && keys(&out["after"]) == ["SdkHttpMetadata", "SdkResponseMetadata"],
        || result.to_string(),
    )
}

/// The SDK v2's shapes: `{}` for a PutItem without ReturnValues, Count/Items/ScannedCount for
/// a Query (as the corpus records AWS's), and no metadata.
fn aws_sdk_dynamodb_put_item_then_query_return_sdk_v2_shapes_without_metadata(
    a: &mut Aws,
) -> Verdict {
    let result = a.exec(
        steps(&[
            (
                "put",
                "aws-sdk:dynamodb:putItem",
                json!({"TableName": TABLE, "Item": item("queried")}),
            ),
            (
                "queried",
                "aws-sdk:dynamodb:query",
                json!({"TableName": TABLE, "KeyConditionExpression": "id = :id",
                       "ExpressionAttributeValues": {":id": {"S": "queried"}}}),
            ),
        ]),
        json!({}),
    );
    verdict(
        result["status"] == json!("SUCCEEDED")
            && result["output"]["put"] == json!({})
            && result["output"]["queried"]
                == json!({"Count": 1, "Items": [item("queried")], "ScannedCount": 1}),
        || result.to_string(),
    )
}

fn a_missing_table_is_caught_as_dynamodb_resource_not_found_exception_optimized(
    a: &mut Aws,
) -> Verdict {
    catches(
        a,
        "dynamodb:putItem",
        json!({"TableName": "no-such-table", "Item": item("x")}),
        "DynamoDB.ResourceNotFoundException",
        "Requested resource not found (Service: AmazonDynamoDBv2; Status Code: 400; \
         Error Code: ResourceNotFoundException; Request ID: ",
    )
}

fn a_missing_table_is_caught_as_dynamodb_resource_not_found_exception_aws_sdk(
    a: &mut Aws,
) -> Verdict {
    catches(
        a,
        "aws-sdk:dynamodb:getItem",
        json!({"TableName": "no-such-table", "Key": {"id": {"S": "x"}}}),
        "DynamoDb.ResourceNotFoundException",
        "Requested resource not found (Service: DynamoDb, Status Code: 400, Request ID: ",
    )
}

/// DynamoDB's throttle: HTTP 400 with the exception in `__type`.
fn throttled_then(ok: Value) -> Vec<Reply> {
    let json_1_0 = |status, body: Value, id: &str| Reply {
        status,
        headers: vec![
            ("Content-Type", "application/x-amz-json-1.0".into()),
            ("x-amzn-RequestId", id.into()),
        ],
        body: body.to_string(),
        delay: Duration::ZERO,
    };
    vec![
        json_1_0(
            400,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                   "message": "Rate exceeded"}),
            "THROTTLED",
        ),
        json_1_0(200, ok, "ANSWERED"),
    ]
}

/// The throttling server sees the call twice, both PutItem signed for DynamoDB; its
/// `AWS_ENDPOINT_URL_DYNAMODB` wins over moto's `AWS_ENDPOINT_URL`. Returns the `exec` line
/// and whether the server saw exactly that.
fn run_throttled(a: &Aws, resource: &str) -> (Value, String, bool) {
    let (url, seen) = serve(throttled_then(json!({})));
    let result = a.exec_with(
        steps(&[(
            "put",
            resource,
            json!({"TableName": TABLE, "Item": item("throttled")}),
        )]),
        json!({}),
        &[("AWS_ENDPOINT_URL_DYNAMODB", url.as_str())],
    );
    let requests = seen.lock().unwrap().clone();
    let header = |r: &crate::integrations::Seen, name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let as_expected = requests.len() == 2
        && requests.iter().all(|r| {
            r.method == "POST"
                && header(r, "x-amz-target") == "DynamoDB_20120810.PutItem"
                && header(r, "authorization").contains("/us-east-1/dynamodb/aws4_request")
        });
    (result, format!("{requests:?}"), as_expected)
}

fn a_throttling_exception_is_retried_by_aws_sdk_dynamodb_and_the_second_attempt_succeeds(
    a: &mut Aws,
) -> Verdict {
    let (result, requests, as_expected) = run_throttled(a, "aws-sdk:dynamodb:putItem");
    verdict(
        result == json!({"status": "SUCCEEDED", "output": {"put": {}}}) && as_expected,
        || format!("{result} after {requests}"),
    )
}

fn a_throttling_exception_is_retried_by_the_optimized_dynamodb_put_item_too(
    a: &mut Aws,
) -> Verdict {
    let (result, requests, as_expected) = run_throttled(a, "dynamodb:putItem");
    verdict(
        result["status"] == json!("SUCCEEDED")
            && has_sdk_metadata(&result["output"]["put"])
            && as_expected,
        || format!("{result} after {requests}"),
    )
}

/// The subscriber gets SNS's notification envelope around the message.
fn sns_publish_delivers_the_message_to_the_topics_sqs_subscription(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[(
            "published",
            "sns:publish",
            json!({"TopicArn": topic_arn("expressway-topic"),
                   "Message": "hello subscribers", "Subject": "greeting"}),
        )]),
        json!({}),
    );
    let published = &result["output"]["published"];
    let received = a.receive("topic-subscriber");
    verdict(
        result["status"] == json!("SUCCEEDED")
            && keys(published) == ["MessageId", "SdkHttpMetadata", "SdkResponseMetadata"]
            && has_sdk_metadata(published)
            && received.as_ref().is_ok_and(|m| {
                m.len() == 1
                    && m[0]["Type"] == json!("Notification")
                    && m[0]["MessageId"] == published["MessageId"]
                    && m[0]["TopicArn"] == json!(topic_arn("expressway-topic"))
                    && m[0]["Subject"] == json!("greeting")
                    && m[0]["Message"] == json!("hello subscribers")
            }),
        || format!("{result}; the queue: {received:?}"),
    )
}

/// A JSON `Detail` is sent as its text; the result is `{Entries, FailedEntryCount}` alone.
fn eventbridge_put_events_delivers_the_event_to_the_sqs_target_of_a_matching_rule(
    a: &mut Aws,
) -> Verdict {
    let result = a.exec(
        steps(&[(
            "sent",
            "events:putEvents",
            json!({"Entries": [{"Source": "expressway.test", "DetailType": "reading",
                                "Detail": {"sensor": "s1", "value": 21.5}}]}),
        )]),
        json!({}),
    );
    let sent = &result["output"]["sent"];
    let received = a.receive("rule-target");
    verdict(
        result["status"] == json!("SUCCEEDED")
            && keys(sent) == ["Entries", "FailedEntryCount"]
            && sent["FailedEntryCount"] == json!(0)
            && sent["Entries"].as_array().is_some_and(|e| e.len() == 1)
            && keys(&sent["Entries"][0]) == ["EventId"]
            && received.as_ref().is_ok_and(|m| {
                m.len() == 1
                    && m[0]["id"] == sent["Entries"][0]["EventId"]
                    && m[0]["source"] == json!("expressway.test")
                    && m[0]["detail-type"] == json!("reading")
                    && m[0]["detail"] == json!({"sensor": "s1", "value": 21.5})
            }),
        || format!("{result}; the queue: {received:?}"),
    )
}

/// As AWS records it (corpus `test_put_events_no_source`): the response is the cause.
fn eventbridge_an_entry_without_source_fails_the_state_with_eventbridge_failed_entry(
    a: &mut Aws,
) -> Verdict {
    let result = a.exec(
        steps(&[(
            "sent",
            "events:putEvents",
            json!({"Entries": [{"DetailType": "reading", "Detail": {"value": 1}}]}),
        )]),
        json!({}),
    );
    let cause: Option<Value> = result["cause"]
        .as_str()
        .and_then(|c| serde_json::from_str(c).ok());
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("EventBridge.FailedEntry")
            && cause
                == Some(json!({"Entries": [{"ErrorCode": "InvalidArgument",
                "ErrorMessage": "Parameter Source is not valid. Reason: Source is a required argument."}],
                "FailedEntryCount": 1})),
        || result.to_string(),
    )
}

/// The QueueUrl is AWS's own form; `AWS_ENDPOINT_URL` decides where the request goes.
fn sqs_send_message_follows_aws_endpoint_url_not_the_queue_urls_host(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[(
            "sent",
            "sqs:sendMessage",
            json!({"QueueUrl": format!("https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/sent"),
                   "MessageBody": {"hello": "queue"}}),
        )]),
        json!({}),
    );
    let received = a.receive("sent");
    verdict(
        result["status"] == json!("SUCCEEDED")
            && has_sdk_metadata(&result["output"]["sent"])
            && received
                .as_ref()
                .is_ok_and(|m| m.len() == 1 && m[0] == json!({"hello": "queue"})),
        || format!("{result}; the queue: {received:?}"),
    )
}

fn aws_sdk_s3_put_object_then_get_object_returns_the_body_as_text_with_its_etag(
    a: &mut Aws,
) -> Verdict {
    let result = a.exec(
        steps(&[
            (
                "put",
                "aws-sdk:s3:putObject",
                json!({"Bucket": BUCKET, "Key": "greeting.txt", "Body": "hello",
                       "ContentType": "text/plain"}),
            ),
            (
                "got",
                "aws-sdk:s3:getObject",
                json!({"Bucket": BUCKET, "Key": "greeting.txt"}),
            ),
        ]),
        json!({}),
    );
    let (put, got) = (&result["output"]["put"], &result["output"]["got"]);
    verdict(
        result["status"] == json!("SUCCEEDED")
            && put["ETag"].is_string()
            && got["Body"] == json!("hello")
            && got["ContentLength"] == json!(5)
            && got["ContentType"] == json!("text/plain")
            && got["ETag"] == put["ETag"]
            && is_iso8601(&got["LastModified"])
            && got.get("SdkHttpMetadata").is_none(),
        || result.to_string(),
    )
}

fn aws_sdk_s3_list_objects_v2_lists_the_object_with_key_size_and_iso_timestamp(
    a: &mut Aws,
) -> Verdict {
    a.call(
        "s3",
        "put_object",
        json!({"Bucket": BUCKET, "Key": "listed/one.txt", "Body": "12345678"}),
    )?;
    let result = a.exec(
        steps(&[(
            "listed",
            "aws-sdk:s3:listObjectsV2",
            json!({"Bucket": BUCKET, "Prefix": "listed/"}),
        )]),
        json!({}),
    );
    let listed = &result["output"]["listed"];
    let object = &listed["Contents"][0];
    verdict(
        result["status"] == json!("SUCCEEDED")
            && listed["Contents"].as_array().is_some_and(|c| c.len() == 1)
            && object["Key"] == json!("listed/one.txt")
            && object["Size"] == json!(8)
            && object["ETag"].is_string()
            && is_iso8601(&object["LastModified"])
            && listed["KeyCount"] == json!(1)
            && listed["Name"] == json!(BUCKET)
            && listed["Prefix"] == json!("listed/")
            && listed["IsTruncated"] == json!(false),
        || result.to_string(),
    )
}

fn a_missing_bucket_is_caught_as_s3_no_such_bucket_exception(a: &mut Aws) -> Verdict {
    catches(
        a,
        "aws-sdk:s3:listObjectsV2",
        json!({"Bucket": "expressway-no-such-bucket"}),
        "S3.NoSuchBucketException",
        "The specified bucket does not exist (Service: S3, Status Code: 404, Request ID: ",
    )
}

fn a_missing_key_fails_the_state_with_s3_no_such_key_exception(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[(
            "got",
            "aws-sdk:s3:getObject",
            json!({"Bucket": BUCKET, "Key": "no/such/key"}),
        )]),
        json!({}),
    );
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("S3.NoSuchKeyException")
            && starts_with(
                &result["cause"],
                "The specified key does not exist. (Service: S3, Status Code: 404, Request ID: ",
            ),
        || result.to_string(),
    )
}

fn aws_sdk_secretsmanager_create_secret_then_get_secret_value_returns_the_string(
    a: &mut Aws,
) -> Verdict {
    let secret = r#"{"password":"hunter2"}"#;
    let definition = json!({"StartAt": "Create", "States": {
        "Create": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:secretsmanager:createSecret",
                   "Parameters": {"Name": "expressway/db", "SecretString": secret},
                   "ResultPath": "$.created", "Next": "Get"},
        "Get": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:secretsmanager:getSecretValue",
                "Parameters": {"SecretId.$": "$.created.ARN"},
                "ResultPath": "$.secret", "End": true}}});
    let result = a.exec(definition, json!({}));
    let (created, got) = (&result["output"]["created"], &result["output"]["secret"]);
    verdict(
        result["status"] == json!("SUCCEEDED")
            && starts_with(
                &created["ARN"],
                &format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:expressway/db-"),
            )
            && created["Name"] == json!("expressway/db")
            && created["VersionId"].is_string()
            && got["ARN"] == created["ARN"]
            && got["Name"] == json!("expressway/db")
            && got["SecretString"] == json!(secret)
            && got["VersionId"] == created["VersionId"]
            && got["VersionStages"] == json!(["AWSCURRENT"])
            && is_iso8601(&got["CreatedDate"]),
        || result.to_string(),
    )
}

fn aws_sdk_ssm_put_parameter_then_get_parameter_returns_its_value(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[
            (
                "put",
                "aws-sdk:ssm:putParameter",
                json!({"Name": "/expressway/threshold", "Value": "42", "Type": "String"}),
            ),
            (
                "got",
                "aws-sdk:ssm:getParameter",
                json!({"Name": "/expressway/threshold"}),
            ),
        ]),
        json!({}),
    );
    let (put, parameter) = (
        &result["output"]["put"],
        &result["output"]["got"]["Parameter"],
    );
    verdict(
        result["status"] == json!("SUCCEEDED")
            && put["Version"] == json!(1)
            && put["Tier"] == json!("Standard")
            && parameter["Name"] == json!("/expressway/threshold")
            && parameter["Value"] == json!("42")
            && parameter["Type"] == json!("String")
            && parameter["Version"] == json!(1)
            && parameter["DataType"] == json!("text")
            && parameter["ARN"]
                == json!(format!(
                    "arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/expressway/threshold"
                ))
            && is_iso8601(&parameter["LastModifiedDate"]),
        || result.to_string(),
    )
}

/// A string for a blob member (Kinesis `Data`) is sent as its UTF-8 bytes.
fn aws_sdk_kinesis_put_record_lands_in_the_stream_as_the_strings_bytes(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[(
            "put",
            "aws-sdk:kinesis:putRecord",
            json!({"StreamName": STREAM, "Data": "hello kinesis", "PartitionKey": "sensor-1"}),
        )]),
        json!({}),
    );
    let put = &result["output"]["put"];
    let records = a
        .call(
            "kinesis",
            "get_shard_iterator",
            json!({"StreamName": STREAM, "ShardId": "shardId-000000000000",
                   "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .and_then(|it| {
            a.call(
                "kinesis",
                "get_records",
                json!({"ShardIterator": it["ShardIterator"]}),
            )
        })
        .map(|r| r["Records"].clone());
    let expected_data = json!({"base64": "aGVsbG8ga2luZXNpcw=="}); // "hello kinesis"
    verdict(
        result["status"] == json!("SUCCEEDED")
            && put["ShardId"] == json!("shardId-000000000000")
            && put["SequenceNumber"].is_string()
            && records.as_ref().is_ok_and(|r| {
                r.as_array().is_some_and(|r| r.len() == 1)
                    && r[0]["SequenceNumber"] == put["SequenceNumber"]
                    && r[0]["PartitionKey"] == json!("sensor-1")
                    && r[0]["Data"] == expected_data
            }),
        || format!("{result}; the stream: {records:?}"),
    )
}

/// moto's delivery stream writes each record to its S3 destination at once.
fn aws_sdk_firehose_put_record_is_delivered_to_the_streams_s3_bucket(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[(
            "put",
            "aws-sdk:firehose:putRecord",
            json!({"DeliveryStreamName": DELIVERY_STREAM, "Record": {"Data": "hello firehose"}}),
        )]),
        json!({}),
    );
    let put = &result["output"]["put"];
    let delivered = a
        .call(
            "s3",
            "list_objects_v2",
            json!({"Bucket": FIREHOSE_BUCKET, "Prefix": "delivered/"}),
        )
        .and_then(|listed| {
            let key = listed["Contents"][0]["Key"].clone();
            a.call(
                "s3",
                "get_object",
                json!({"Bucket": FIREHOSE_BUCKET, "Key": key}),
            )
        })
        .map(|object| object["Body"].clone());
    verdict(
        result["status"] == json!("SUCCEEDED")
            && put["RecordId"].as_str().is_some_and(|id| !id.is_empty())
            && put["Encrypted"] == json!(false)
            // "hello firehose"
            && delivered.as_ref().ok() == Some(&json!({"base64": "aGVsbG8gZmlyZWhvc2U="})),
        || format!("{result}; delivered: {delivered:?}"),
    )
}

fn aws_sdk_sts_get_caller_identity_names_the_account(a: &mut Aws) -> Verdict {
    let result = a.exec(
        steps(&[("me", "aws-sdk:sts:getCallerIdentity", json!({}))]),
        json!({}),
    );
    let me = &result["output"]["me"];
    verdict(
        result["status"] == json!("SUCCEEDED")
            && keys(me) == ["Account", "Arn", "UserId"]
            && me["Account"] == json!(ACCOUNT),
        || result.to_string(),
    )
}

/// The demo as shipped (definition and input from `config/state-machines/`), its Notify Task
/// publishing for real: the subscriber receives the alert the execution reports.
fn sensor_alert_demo_publishes_its_alert_through_sns_to_the_subscribed_queue(
    a: &mut Aws,
) -> Verdict {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/state-machines");
    let input_path = root.join("sensor-alert.input.json");
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(&input_path).map_err(|e| format!("the demo's input: {e}"))?,
    )
    .map_err(|e| format!("the demo's input: {e}"))?;
    let threshold = input["threshold"].as_f64().unwrap_or(f64::MAX);
    let high = input["readings"]
        .as_array()
        .map(|r| r.iter().filter(|v| v.as_f64() > Some(threshold)).count())
        .unwrap_or_default();
    // `States.Format('Device {} crossed {} on {} readings', …)` of the input.
    let alert = format!(
        "Device {} crossed {} on {high} readings",
        input["deviceId"].as_str().unwrap_or_default(),
        input["threshold"]
    );
    let result = exec_file(
        &root.join("sensor-alert.asl.json"),
        &input_path,
        &a.env(&[]),
        &a.dir.join("home"),
    );
    let received = a.receive("alerts-subscriber");
    let output = &result["output"];
    verdict(
        high > 0
            && result["status"] == json!("SUCCEEDED")
            && output.get("alertError").is_none()
            && output["summary"]["high"] == json!(high)
            && received.as_ref().is_ok_and(|m| {
                m.len() == 1
                    && m[0]["MessageId"] == output["alert"]["messageId"]
                    && m[0]["TopicArn"] == json!(topic_arn("sensor-alerts"))
                    && m[0]["Message"] == json!(alert)
            }),
        || format!("{result}; the queue: {received:?}; expected the alert {alert:?}"),
    )
}

/// A Distributed Map whose items come from `reader` (and results go to `writer`), each
/// iteration a Pass.
fn distributed_map(reader: Value, writer: Option<Value>) -> Value {
    let mut map = json!({
        "Type": "Map", "End": true, "ItemReader": reader,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}});
    if let Some(writer) = writer {
        map["ResultWriter"] = writer;
    }
    json!({"StartAt": "Map", "States": {"Map": map}})
}

fn distributed_map_reads_a_csv_object_with_its_header_up_to_max_items(a: &mut Aws) -> Verdict {
    a.call(
        "s3",
        "put_object",
        json!({"Bucket": BUCKET, "Key": "map/rows.csv",
               "Body": "id,name\n1,\"Ada, Countess\"\n2,Grace\n3,Edsger\n"}),
    )?;
    let result = a.exec(
        distributed_map(
            json!({"Resource": "arn:aws:states:::s3:getObject",
                   "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW",
                                    "MaxItems": 2},
                   "Parameters": {"Bucket": BUCKET, "Key": "map/rows.csv"}}),
            None,
        ),
        json!({}),
    );
    verdict(
        result["output"]
            == json!([{"id": "1", "name": "Ada, Countess"}, {"id": "2", "name": "Grace"}]),
        || result.to_string(),
    )
}

fn distributed_map_reads_a_json_object_and_writes_results_under_the_prefix(a: &mut Aws) -> Verdict {
    a.call(
        "s3",
        "put_object",
        json!({"Bucket": BUCKET, "Key": "map/items.json", "Body": "[{\"n\": 1}, {\"n\": 2}]"}),
    )?;
    let result = a.exec(
        distributed_map(
            json!({"Resource": "arn:aws:states:::s3:getObject",
                   "ReaderConfig": {"InputType": "JSON"},
                   "Parameters": {"Bucket": BUCKET, "Key": "map/items.json"}}),
            Some(json!({"Resource": "arn:aws:states:::s3:putObject",
                        "Parameters": {"Bucket": BUCKET, "Prefix": "runs"}})),
        ),
        json!({}),
    );
    let output = &result["output"];
    let arn = output["MapRunArn"].as_str().unwrap_or_default().to_owned();
    let run_id = arn.rsplit(':').next().unwrap_or_default().to_owned();
    let manifest_key = format!("runs/{run_id}/manifest.json");
    if !(arn.starts_with(&format!("arn:aws:states:us-east-1:{ACCOUNT}:mapRun:"))
        && arn.contains("/Map:")
        && output["ResultWriterDetails"] == json!({"Bucket": BUCKET, "Key": manifest_key}))
    {
        return Err(result.to_string().into());
    }
    let read = |key: &str| -> Result<Value, String> {
        use base64::Engine as _;
        let got = a.call("s3", "get_object", json!({"Bucket": BUCKET, "Key": key}))?;
        // aws_fixtures.py hands bytes over as base64.
        let body = base64::engine::general_purpose::STANDARD
            .decode(got["Body"]["base64"].as_str().unwrap_or_default())
            .map_err(|e| format!("{key}: {e}: {got}"))?;
        serde_json::from_slice(&body)
            .map_err(|e| format!("{key}: {e}: {}", String::from_utf8_lossy(&body)))
    };
    let manifest = read(&manifest_key)?;
    let results_key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let results = read(&results_key)?;
    let outputs: Vec<Value> = results
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            serde_json::from_str(r["Output"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
        })
        .collect();
    verdict(
        manifest["DestinationBucket"] == json!(BUCKET)
            && manifest["MapRunArn"] == json!(arn)
            && results_key == format!("runs/{run_id}/SUCCEEDED_0.json")
            && outputs == vec![json!({"n": 1}), json!({"n": 2})]
            && results[0]["Status"] == json!("SUCCEEDED"),
        || format!("{manifest} {results}"),
    )
}

fn distributed_map_over_an_s3_listing_gets_each_objects_key_and_size(a: &mut Aws) -> Verdict {
    for (key, body) in [("scan/a.txt", "1"), ("scan/b.txt", "22")] {
        a.call(
            "s3",
            "put_object",
            json!({"Bucket": BUCKET, "Key": key, "Body": body}),
        )?;
    }
    let result = a.exec(
        distributed_map(
            json!({"Resource": "arn:aws:states:::s3:listObjectsV2",
                   "Parameters": {"Bucket": BUCKET, "Prefix": "scan/"}}),
            None,
        ),
        json!({}),
    );
    let items = result["output"].as_array().cloned().unwrap_or_default();
    verdict(
        items.len() == 2
            && items[0]["Key"] == json!("scan/a.txt")
            && items[1]["Size"] == json!(2)
            && items[0]["Etag"].is_string()
            && items[0]["LastModified"].is_i64(),
        || result.to_string(),
    )
}

fn a_missing_item_reader_object_fails_the_map_with_states_item_reader_failed(
    a: &mut Aws,
) -> Verdict {
    let result = a.exec(
        distributed_map(
            json!({"Resource": "arn:aws:states:::s3:getObject",
                   "ReaderConfig": {"InputType": "JSONL"},
                   "Parameters": {"Bucket": BUCKET, "Key": "map/no-such-object.jsonl"}}),
            None,
        ),
        json!({}),
    );
    verdict(
        result["status"] == json!("FAILED")
            && result["error"] == json!("States.ItemReaderFailed")
            && starts_with(&result["cause"], "S3.NoSuchKeyException: "),
        || result.to_string(),
    )
}

/// The environment of a check that takes its credentials from elsewhere in the chain: no
/// keys in the environment, no instance metadata.
const NO_KEYS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", ""),
    ("AWS_SECRET_ACCESS_KEY", ""),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

fn web_identity_credentials_come_from_sts_and_sign_as_the_assumed_role(a: &mut Aws) -> Verdict {
    let token = a.dir.join("web-identity-token");
    std::fs::write(&token, "eyJhbGciOiJub25lIn0.e30.").map_err(|e| e.to_string())?;
    let token = token.to_string_lossy().into_owned();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/expressway-pod");
    let mut env = NO_KEYS.to_vec();
    env.extend([
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
        ("AWS_ROLE_ARN", role.as_str()),
        ("AWS_ROLE_SESSION_NAME", "pod-1"),
    ]);
    let result = a.exec_with(
        steps(&[("who", "aws-sdk:sts:getCallerIdentity", json!({}))]),
        json!({}),
        &env,
    );
    verdict(
        result["output"]["who"]["Arn"]
            == json!(format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/expressway-pod/pod-1"
            )),
        || result.to_string(),
    )
}

/// The header `name` of a request a local server saw.
fn seen_header(request: &crate::integrations::Seen, name: &str) -> String {
    request
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn container_credentials_are_fetched_with_their_token_and_sign_the_call(a: &mut Aws) -> Verdict {
    let keys = json!({"AccessKeyId": "AKIDCONTAINER", "SecretAccessKey": "secret",
                      "Token": "session-token", "Expiration": "2099-01-01T00:00:00Z"});
    let (credentials, asked) = serve(vec![crate::integrations::reply(200, keys)]);
    let (dynamodb, called) = serve(vec![crate::integrations::reply(200, json!({}))]);
    let uri = format!("{credentials}/v2/credentials/abc");
    let mut env = NO_KEYS.to_vec();
    env.extend([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri.as_str()),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-auth"),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.as_str()),
    ]);
    let result = a.exec_with(
        steps(&[(
            "put",
            "aws-sdk:dynamodb:putItem",
            json!({"TableName": TABLE, "Item": item("container")}),
        )]),
        json!({}),
        &env,
    );
    let asked = asked.lock().unwrap().clone();
    let called = called.lock().unwrap().clone();
    verdict(
        result["status"] == json!("SUCCEEDED")
            && asked.len() == 1
            && asked[0].target == "/v2/credentials/abc"
            && seen_header(&asked[0], "authorization") == "container-auth"
            && called.len() == 1
            && seen_header(&called[0], "authorization").contains("Credential=AKIDCONTAINER/")
            && seen_header(&called[0], "x-amz-security-token") == "session-token",
        || format!("{result} {asked:?} {called:?}"),
    )
}

fn a_profile_in_the_shared_files_gives_the_keys_and_its_services_endpoint(a: &mut Aws) -> Verdict {
    let (dynamodb, called) = serve(vec![crate::integrations::reply(200, json!({}))]);
    let credentials = a.dir.join("shared-credentials");
    let config = a.dir.join("shared-config");
    let write = |path: &Path, text: String| std::fs::write(path, text).map_err(|e| e.to_string());
    write(
        &credentials,
        "[edge]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = secret\n".into(),
    )?;
    write(
        &config,
        format!(
            "[profile edge]\nregion = eu-west-1\nservices = local\n\n[services local]\n\
             dynamodb =\n  endpoint_url = {dynamodb}\n"
        ),
    )?;
    let (credentials, config) = (
        credentials.to_string_lossy().into_owned(),
        config.to_string_lossy().into_owned(),
    );
    let mut env = NO_KEYS.to_vec();
    env.extend([
        ("AWS_PROFILE", "edge"),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()),
        ("AWS_CONFIG_FILE", config.as_str()),
        // Both the shared endpoint and the region variables would win over the profile's.
        ("AWS_ENDPOINT_URL", ""),
        ("AWS_REGION", ""),
    ]);
    let result = a.exec_with(
        steps(&[(
            "put",
            "aws-sdk:dynamodb:putItem",
            json!({"TableName": TABLE, "Item": item("profile")}),
        )]),
        json!({}),
        &env,
    );
    let called = called.lock().unwrap().clone();
    let authorization = called.first().map(|r| seen_header(r, "authorization"));
    verdict(
        result["status"] == json!("SUCCEEDED")
            && called.len() == 1
            && authorization.as_deref().is_some_and(|a| {
                a.contains("Credential=AKIDPROFILE/") && a.contains("/eu-west-1/dynamodb/")
            }),
        || format!("{result} {called:?}"),
    )
}

fn a_profile_with_role_arn_and_source_profile_signs_as_the_assumed_role(a: &mut Aws) -> Verdict {
    let credentials = a.dir.join("role-credentials");
    let config = a.dir.join("role-config");
    let write = |path: &Path, text: String| std::fs::write(path, text).map_err(|e| e.to_string());
    write(
        &credentials,
        "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = secret\n".into(),
    )?;
    write(
        &config,
        format!(
            "[profile deploy]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/expressway-deploy\n\
             source_profile = base\nrole_session_name = ci\n"
        ),
    )?;
    let (credentials, config) = (
        credentials.to_string_lossy().into_owned(),
        config.to_string_lossy().into_owned(),
    );
    let mut env = NO_KEYS.to_vec();
    env.extend([
        ("AWS_PROFILE", "deploy"),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()),
        ("AWS_CONFIG_FILE", config.as_str()),
    ]);
    let result = a.exec_with(
        steps(&[("who", "aws-sdk:sts:getCallerIdentity", json!({}))]),
        json!({}),
        &env,
    );
    verdict(
        result["output"]["who"]["Arn"]
            == json!(format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/expressway-deploy/ci"
            )),
        || result.to_string(),
    )
}
