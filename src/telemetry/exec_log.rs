//! Execution logs in the shape Step Functions writes to CloudWatch Logs.
//!
//! Express workflows have no `GetExecutionHistory`: their history is what the state machine's
//! logging configuration sends to CloudWatch Logs, one JSON object per history event. Tools
//! built for those logs (Logs Insights queries, the console's Express execution view, log
//! shippers' parsers) should work on ours, so each line has AWS's shape:
//!
//! ```json
//! {"id":"2","type":"PassStateEntered","details":{"input":"{}","inputDetails":{"truncated":false},"name":"P"},
//!  "previous_event_id":"0","event_timestamp":"1700000000000","execution_arn":"arn:…","redrive_count":"0"}
//! ```
//!
//! - `id`, `previous_event_id`, `event_timestamp` (epoch milliseconds) and `redrive_count`
//!   are strings; `input`, `output` and `parameters` are JSON *text*, as in the API.
//! - `details` is the body of the event's `…EventDetails` structure from the
//!   `GetExecutionHistory` API, without that wrapper (`stateEnteredEventDetails.name` is
//!   logged as `details.name`), and is `{}` when the event has none.
//! - `includeExecutionData: false` drops `input`, `inputDetails`, `output`, `outputDetails`
//!   and, here, also a Task's `parameters` (they are the task's input); error names, causes,
//!   state names and resources stay.
//! - Levels filter by event type exactly as AWS's table does ([`LogLevel`]).
//!
//! Sources: the Step Functions developer guide's "Log levels" table
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/cloudwatch-log-level.html>) and
//! "CloudWatch Logs payloads" (<https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html>),
//! the `HistoryEvent` API reference, and log events recorded from AWS in LocalStack's
//! snapshot tests (`tests/aws/services/stepfunctions/v2/logs/test_logs.snapshot.json`).
//!
//! Where the VM's history differs from AWS's:
//! - `previous_event_id` is the VM's link (`HistoryEvent::previous`), made as AWS makes it:
//!   the event before in the same thread (top level, Parallel branch, Map iteration), 0 for
//!   `ExecutionStarted` and the event after it. Where AWS runs branches and iterations
//!   concurrently their events interleave by timing; ours interleave in the VM's order,
//!   each thread's links as AWS's.
//! - The VM records Task events as `TaskScheduled`/`TaskStarted`/… for every resource, also
//!   where AWS would log `LambdaFunction*` events for a bare Lambda ARN.
//! - Details the VM does not record are absent (e.g. `roleArn`, a Task's timeouts, a Map's
//!   `length`); whatever it does record under AWS's field names is mapped.

use std::io::{self, BufWriter, Write};
use std::str::FromStr;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::asl::arn::Arn;
use crate::asl::vm::HistoryEvent;

/// Which history events a logger writes: Step Functions' `LoggingConfiguration.level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Every event.
    All,
    /// Events that report an error: [`ERROR_EVENTS`].
    Error,
    /// Execution-level failures only: [`FATAL_EVENTS`].
    Fatal,
    /// Nothing (AWS's default).
    #[default]
    Off,
}

/// The event types logged at `ERROR`, from AWS's log level table (which also lists
/// `MapRun*` events, for distributed Map).
pub const ERROR_EVENTS: &[&str] = &[
    "ExecutionAborted",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "FailStateEntered",
    "LambdaFunctionFailed",
    "LambdaFunctionScheduleFailed",
    "LambdaFunctionStartFailed",
    "LambdaFunctionTimedOut",
    "MapIterationAborted",
    "MapIterationFailed",
    "MapRunAborted",
    "MapRunFailed",
    "MapStateAborted",
    "MapStateFailed",
    "ParallelStateAborted",
    "ParallelStateFailed",
    "TaskFailed",
    "TaskStartFailed",
    "TaskStateAborted",
    "TaskSubmitFailed",
    "TaskTimedOut",
    "WaitStateAborted",
];

/// The event types logged at `FATAL`.
pub const FATAL_EVENTS: &[&str] = &["ExecutionAborted", "ExecutionFailed", "ExecutionTimedOut"];

impl LogLevel {
    /// Whether an event of type `kind` is logged at this level.
    pub fn includes(self, kind: &str) -> bool {
        match self {
            LogLevel::All => true,
            LogLevel::Error => ERROR_EVENTS.contains(&kind),
            LogLevel::Fatal => FATAL_EVENTS.contains(&kind),
            LogLevel::Off => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::All => "ALL",
            LogLevel::Error => "ERROR",
            LogLevel::Fatal => "FATAL",
            LogLevel::Off => "OFF",
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}: expected ALL, ERROR, FATAL or OFF")]
pub struct UnknownLogLevel(pub String);

impl FromStr for LogLevel {
    type Err = UnknownLogLevel;

    /// Exactly AWS's spelling: `ALL`, `ERROR`, `FATAL`, `OFF`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ALL" => Ok(LogLevel::All),
            "ERROR" => Ok(LogLevel::Error),
            "FATAL" => Ok(LogLevel::Fatal),
            "OFF" => Ok(LogLevel::Off),
            _ => Err(UnknownLogLevel(s.to_owned())),
        }
    }
}

/// CloudWatch Logs truncates escaped input and output beyond 248 KB and says so in
/// `inputDetails`/`outputDetails`; we do the same, so that a line stays under CloudWatch's
/// 256 KB event limit if it is shipped there.
const MAX_DATA_BYTES: usize = 248 * 1024;

/// Writes execution history events as JSON lines.
///
/// Every shard and the API's executions host has a logger of its own, all appending to the
/// same destination: a line goes into the buffer whole, so that the buffer is only ever
/// written out at a line's end and the writers' lines never interleave mid-line.
pub struct ExecutionLogger {
    level: LogLevel,
    include_execution_data: bool,
    out: BufWriter<Box<dyn Write + Send>>,
    /// The line being made (kept for its allocation).
    line: Vec<u8>,
}

impl ExecutionLogger {
    pub fn new(level: LogLevel, include_execution_data: bool, out: Box<dyn Write + Send>) -> Self {
        ExecutionLogger {
            level,
            include_execution_data,
            out: BufWriter::new(out),
            line: Vec::new(),
        }
    }

    /// Whether the lines carry inputs and outputs (`include_execution_data`).
    pub fn includes_data(&self) -> bool {
        self.include_execution_data
    }

    pub fn level(&self) -> LogLevel {
        self.level
    }

    /// Whether events of type `kind` would be written. With `Off` nothing is, and the caller
    /// can run executions without recording history at all.
    pub fn wants(&self, kind: &str) -> bool {
        self.level.includes(kind)
    }

    /// Writes one line per event of `events` that the level includes. `events` is an
    /// execution's history, whole or a later part of it (ids are the VM's).
    pub fn log(&mut self, execution_arn: &str, events: &[HistoryEvent]) -> io::Result<()> {
        if self.level == LogLevel::Off {
            return Ok(());
        }
        // AWS's TaskScheduled carries the execution's region.
        let region = Arn::parse(execution_arn)
            .map(|arn| arn.region)
            .filter(|r| !r.is_empty());
        // Only TaskScheduled names the resource; later Task events of the same state reuse it.
        let mut resources: Vec<(&str, &str)> = Vec::new();
        for ev in events {
            let state = ev.state.as_deref();
            if ev.kind == "TaskScheduled" {
                if let (Some(state), Some(resource)) = (state, text(&ev.details, "resource")) {
                    match resources.iter_mut().find(|(s, _)| *s == state) {
                        Some(entry) => entry.1 = resource,
                        None => resources.push((state, resource)),
                    }
                }
            }
            if !self.wants(ev.kind) {
                continue;
            }
            let resource = state.and_then(|s| resources.iter().find(|(n, _)| *n == s));
            let record = Record {
                id: ev.id,
                kind: ev.kind,
                details: details(
                    ev,
                    self.include_execution_data,
                    resource.map(|r| r.1),
                    region,
                ),
                previous_event_id: ev.previous,
                event_timestamp: ev.timestamp,
                execution_arn,
                // Express executions are never redriven.
                redrive_count: "0",
            };
            self.line.clear();
            serde_json::to_writer(&mut self.line, &record)?;
            self.line.push(b'\n');
            self.out.write_all(&self.line)?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// An execution's history as `GetExecutionHistory` answers it: one object per event, with
/// `timestamp` (epoch seconds), `type`, `id`, `previousEventId` and the event's
/// `…EventDetails` structure (the same details the logs carry; inputs and outputs only with
/// `include_data`).
pub fn api_history(execution_arn: &str, events: &[HistoryEvent], include_data: bool) -> Vec<Value> {
    let region = Arn::parse(execution_arn)
        .map(|arn| arn.region)
        .filter(|r| !r.is_empty());
    let mut resources: Vec<(&str, &str)> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        let state = ev.state.as_deref();
        if ev.kind == "TaskScheduled" {
            if let (Some(state), Some(resource)) = (state, text(&ev.details, "resource")) {
                resources.push((state, resource));
            }
        }
        let resource = state.and_then(|s| resources.iter().rev().find(|(n, _)| *n == s));
        let mut event = serde_json::Map::new();
        event.insert(
            "timestamp".into(),
            Value::from(ev.timestamp as f64 / 1000.0),
        );
        event.insert("type".into(), Value::from(ev.kind));
        event.insert("id".into(), Value::from(ev.id));
        event.insert("previousEventId".into(), Value::from(ev.previous));
        if let Some(key) = details_member(ev.kind) {
            let d = details(ev, include_data, resource.map(|r| r.1), region);
            let d = serde_json::to_value(d).expect("details serialise");
            event.insert(key, d);
        }
        out.push(Value::Object(event));
    }
    out
}

/// The `HistoryEvent` member holding an event type's details (botocore's model): the state
/// events share `stateEnteredEventDetails`/`stateExitedEventDetails`; Parallel's and Map's
/// own start/end events other than `MapStateStarted` have none.
fn details_member(kind: &str) -> Option<String> {
    if kind.ends_with("StateEntered") {
        return Some("stateEnteredEventDetails".into());
    }
    if kind.ends_with("StateExited") {
        return Some("stateExitedEventDetails".into());
    }
    let has_details = [
        "Execution",
        "Task",
        "Activity",
        "LambdaFunction",
        "MapIteration",
        "MapRun",
    ]
    .iter()
    .any(|prefix| kind.starts_with(prefix))
        || kind == "MapStateStarted";
    if !has_details {
        return None;
    }
    let mut member = kind[..1].to_ascii_lowercase();
    member.push_str(&kind[1..]);
    member.push_str("EventDetails");
    Some(member)
}

/// Maps the VM's details of `ev` onto AWS's details structure for its type.
fn details<'a>(
    ev: &'a HistoryEvent,
    include_execution_data: bool,
    resource: Option<&'a str>,
    region: Option<&'a str>,
) -> Details<'a> {
    {
        let d = &ev.details;
        // Input or output text and its `…Details`, when execution data is logged.
        let data = |key| match text(d, key) {
            Some(t) if include_execution_data => {
                let (t, truncated) = cut(t);
                (Some(t), Some(Truncated { truncated }))
            }
            _ => (None, None),
        };
        let kind = ev.kind;
        let name = ev.state.as_deref().or_else(|| text(d, "name"));
        let (resource_type, resource) = resource.map(split_resource).unzip();
        let resource_type = resource_type.flatten();
        let mut out = Details {
            error: text(d, "error"),
            cause: text(d, "cause"),
            ..Details::default()
        };
        match kind {
            "ExecutionStarted" => {
                (out.input, out.input_details) = data("input");
                out.role_arn = text(d, "roleArn");
            }
            "ExecutionSucceeded" => (out.output, out.output_details) = data("output"),
            "TaskScheduled" => {
                out.resource_type = resource_type;
                out.resource = resource;
                out.region = region;
                out.parameters = data("parameters").0;
            }
            "TaskStarted" | "TaskSubmitted" | "TaskFailed" | "TaskStartFailed"
            | "TaskSubmitFailed" | "TaskTimedOut" => {
                out.resource_type = resource_type;
                out.resource = resource;
            }
            "TaskSucceeded" => {
                out.resource_type = resource_type;
                out.resource = resource;
                (out.output, out.output_details) = data("output");
            }
            "MapIterationStarted"
            | "MapIterationSucceeded"
            | "MapIterationFailed"
            | "MapIterationAborted" => {
                out.name = name;
                out.index = d.get("index").and_then(Value::as_u64);
            }
            "MapStateStarted" => out.length = d.get("length").and_then(Value::as_u64),
            _ if kind.ends_with("StateEntered") => {
                (out.input, out.input_details) = data("input");
                out.name = name;
            }
            _ if kind.ends_with("StateExited") => {
                out.name = name;
                (out.output, out.output_details) = data("output");
            }
            _ => {}
        }
        out
    }
}

/// A string field of the VM's details.
fn text<'a>(details: &'a Value, key: &str) -> Option<&'a str> {
    details.get(key).and_then(Value::as_str)
}

/// A Task resource as AWS's `resourceType` and `resource`:
/// `arn:aws:states:::sqs:sendMessage.waitForTaskToken` is `sqs` and
/// `sendMessage.waitForTaskToken`, `arn:aws:states:::aws-sdk:s3:getObject` is `aws-sdk:s3`
/// and `getObject`. Any other ARN is its service and the whole ARN; anything else, no type.
fn split_resource(resource: &str) -> (Option<&str>, &str) {
    let Some(arn) = Arn::parse(resource) else {
        return (None, resource);
    };
    if !arn.is_optimised_integration() {
        return (Some(arn.service), resource);
    }
    let rest = arn.resource;
    // The service's own name holds one colon for SDK integrations.
    let split_at = if rest.starts_with("aws-sdk:") {
        rest.match_indices(':').nth(1).map(|(i, _)| i)
    } else {
        rest.find(':')
    };
    match split_at {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (Some(rest), ""),
    }
}

/// One log line. Field order is AWS's.
#[derive(Serialize)]
struct Record<'a> {
    #[serde(serialize_with = "as_text")]
    id: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    details: Details<'a>,
    #[serde(serialize_with = "as_text")]
    previous_event_id: u64,
    #[serde(serialize_with = "as_text")]
    event_timestamp: i64,
    execution_arn: &'a str,
    redrive_count: &'static str,
}

fn as_text<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The union of the `…EventDetails` fields we emit, in the order AWS's logs show them;
/// absent fields are left out.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Details<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_details: Option<Truncated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_details: Option<Truncated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// Input or output text cut to what CloudWatch Logs keeps, and whether it was cut.
fn cut(text: &str) -> (&str, bool) {
    if text.len() <= MAX_DATA_BYTES {
        return (text, false);
    }
    let mut end = MAX_DATA_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// AWS's `inputDetails` / `outputDetails`.
#[derive(Serialize)]
struct Truncated {
    truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::compile::compile;
    use crate::asl::effect::ExecutionOptions;
    use crate::engine::Clock;
    use crate::runner::{run_to_completion, NoResources};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    const ARN: &str = "arn:aws:states:eu-west-1:123456789012:express:orders:e1:0f3c";
    const T0: i64 = 1_700_000_000_000;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("sink").clone()).expect("utf-8")
        }
    }

    /// The history of `definition` run on `input`, as the VM records it.
    fn history(definition: Value, input: Value) -> Vec<HistoryEvent> {
        let program = compile(&definition).expect("valid definition");
        let opts = ExecutionOptions {
            record_history: true,
            ..ExecutionOptions::default()
        };
        let mut clock = Clock::Virtual { now: T0 };
        let exec = run_to_completion(Arc::new(program), input, opts, &NoResources, &mut clock);
        exec.history().to_vec()
    }

    /// The lines logged for `events`.
    fn lines(level: LogLevel, data: bool, events: &[HistoryEvent]) -> Vec<String> {
        let sink = Sink::default();
        let mut logger = ExecutionLogger::new(level, data, Box::new(sink.clone()));
        logger.log(ARN, events).expect("log");
        logger.flush().expect("flush");
        sink.text().lines().map(str::to_owned).collect()
    }

    fn event(id: u64, kind: &'static str, state: Option<&str>, details: Value) -> HistoryEvent {
        HistoryEvent {
            id,
            previous: id - 1,
            kind,
            timestamp: T0 + id as i64,
            state: state.map(Arc::from),
            details,
        }
    }

    fn pass_machine() -> Value {
        json!({
            "StartAt": "State_1",
            "States": {"State_1": {"Type": "Pass", "Result": {"Arg1": "argument1"}, "End": true}}
        })
    }

    fn fail_machine() -> Value {
        json!({
            "StartAt": "FailState",
            "States": {"FailState": {"Type": "Fail", "Error": "SomeFailure", "Cause": "It broke."}}
        })
    }

    #[test]
    fn a_pass_execution_logged_at_all_with_execution_data() {
        let got = lines(
            LogLevel::All,
            true,
            &history(pass_machine(), json!({"k": 1})),
        );
        let tail =
            format!(r#""event_timestamp":"{T0}","execution_arn":"{ARN}","redrive_count":"0"}}"#);
        assert_eq!(
            got,
            [
                format!(
                    r#"{{"id":"1","type":"ExecutionStarted","details":{{"input":"{{\"k\":1}}","inputDetails":{{"truncated":false}}}},"previous_event_id":"0",{tail}"#
                ),
                format!(
                    r#"{{"id":"2","type":"PassStateEntered","details":{{"input":"{{\"k\":1}}","inputDetails":{{"truncated":false}},"name":"State_1"}},"previous_event_id":"0",{tail}"#
                ),
                format!(
                    r#"{{"id":"3","type":"PassStateExited","details":{{"name":"State_1","output":"{{\"Arg1\":\"argument1\"}}","outputDetails":{{"truncated":false}}}},"previous_event_id":"2",{tail}"#
                ),
                format!(
                    r#"{{"id":"4","type":"ExecutionSucceeded","details":{{"output":"{{\"Arg1\":\"argument1\"}}","outputDetails":{{"truncated":false}}}},"previous_event_id":"3",{tail}"#
                ),
            ]
        );
    }

    #[test]
    fn without_execution_data_inputs_and_outputs_are_left_out() {
        let got = lines(
            LogLevel::All,
            false,
            &history(pass_machine(), json!({"k": 1})),
        );
        let details: Vec<Value> = got
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).expect("json")["details"].clone())
            .collect();
        // As AWS logs them (LocalStack's recordings of AWS, includeExecutionData false).
        assert_eq!(
            details,
            [
                json!({}),
                json!({"name": "State_1"}),
                json!({"name": "State_1"}),
                json!({})
            ]
        );
    }

    #[test]
    fn failures_keep_error_and_cause_at_every_level_that_logs_them() {
        let events = history(fail_machine(), json!({}));
        let all = lines(LogLevel::All, false, &events);
        assert_eq!(all.len(), 3);
        let failed: Value = serde_json::from_str(&all[2]).expect("json");
        assert_eq!(failed["type"], "ExecutionFailed");
        assert_eq!(
            failed["details"],
            json!({"cause": "It broke.", "error": "SomeFailure"})
        );
        assert_eq!(failed["previous_event_id"], "2");

        let types = |level| -> Vec<String> {
            lines(level, true, &events)
                .iter()
                .map(|l| serde_json::from_str::<Value>(l).expect("json")["type"].to_string())
                .collect()
        };
        assert_eq!(
            types(LogLevel::Error),
            [r#""FailStateEntered""#, r#""ExecutionFailed""#]
        );
        assert_eq!(types(LogLevel::Fatal), [r#""ExecutionFailed""#]);
        assert!(types(LogLevel::Off).is_empty());
    }

    #[test]
    fn a_successful_execution_logs_nothing_at_error_or_fatal() {
        let events = history(pass_machine(), json!({}));
        assert!(lines(LogLevel::Error, true, &events).is_empty());
        assert!(lines(LogLevel::Fatal, true, &events).is_empty());
    }

    #[test]
    fn levels_follow_aws_table() {
        let logger = |level| ExecutionLogger::new(level, true, Box::new(io::sink()));
        let (all, error, fatal, off) = (
            logger(LogLevel::All),
            logger(LogLevel::Error),
            logger(LogLevel::Fatal),
            logger(LogLevel::Off),
        );
        for kind in [
            "PassStateEntered",
            "TaskScheduled",
            "ExecutionSucceeded",
            "MapIterationStarted",
        ] {
            assert!(
                all.wants(kind) && !error.wants(kind) && !fatal.wants(kind) && !off.wants(kind)
            );
        }
        for kind in [
            "TaskFailed",
            "TaskTimedOut",
            "FailStateEntered",
            "MapIterationFailed",
            "ParallelStateFailed",
        ] {
            assert!(all.wants(kind) && error.wants(kind) && !fatal.wants(kind) && !off.wants(kind));
        }
        for kind in ["ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"] {
            assert!(all.wants(kind) && error.wants(kind) && fatal.wants(kind) && !off.wants(kind));
        }
        // FATAL is a subset of ERROR.
        assert!(FATAL_EVENTS.iter().all(|k| ERROR_EVENTS.contains(k)));
    }

    #[test]
    fn log_levels_parse_as_aws_spells_them() {
        for level in [
            LogLevel::All,
            LogLevel::Error,
            LogLevel::Fatal,
            LogLevel::Off,
        ] {
            assert_eq!(level.as_str().parse::<LogLevel>(), Ok(level));
            let from_json: LogLevel =
                serde_json::from_value(json!(level.as_str())).expect("deserialize");
            assert_eq!(from_json, level);
        }
        let err = "all".parse::<LogLevel>().expect_err("lower case");
        assert_eq!(err, UnknownLogLevel("all".into()));
        assert!(err.to_string().contains("ALL, ERROR, FATAL or OFF"));
        assert_eq!(LogLevel::default(), LogLevel::Off);
    }

    #[test]
    fn task_events_carry_resource_type_resource_and_region() {
        let events = [
            event(
                1,
                "ExecutionStarted",
                None,
                json!({"input": "{}", "roleArn": "arn:aws:iam::123456789012:role/r"}),
            ),
            event(
                2,
                "TaskStateEntered",
                Some("Send"),
                json!({"name": "Send", "input": "{}"}),
            ),
            event(
                3,
                "TaskScheduled",
                Some("Send"),
                json!({"resource": "arn:aws:states:::sqs:sendMessage", "parameters": "{\"QueueUrl\":\"q\"}"}),
            ),
            event(4, "TaskStarted", Some("Send"), Value::Null),
            event(
                5,
                "TaskFailed",
                Some("Send"),
                json!({"error": "SQS.Boom", "cause": "down"}),
            ),
            event(
                6,
                "TaskSucceeded",
                Some("Send"),
                json!({"output": "{\"MessageId\":\"m\"}"}),
            ),
        ];
        let parse = |l: &String| serde_json::from_str::<Value>(l).expect("json");
        let with_data: Vec<Value> = lines(LogLevel::All, true, &events)
            .iter()
            .map(parse)
            .collect();
        assert_eq!(
            with_data[0]["details"],
            json!({"input": "{}", "inputDetails": {"truncated": false}, "roleArn": "arn:aws:iam::123456789012:role/r"})
        );
        assert_eq!(
            with_data[2]["details"],
            json!({"resourceType": "sqs", "resource": "sendMessage", "region": "eu-west-1", "parameters": "{\"QueueUrl\":\"q\"}"})
        );
        assert_eq!(
            with_data[3]["details"],
            json!({"resourceType": "sqs", "resource": "sendMessage"})
        );
        assert_eq!(
            with_data[4]["details"],
            json!({"resourceType": "sqs", "resource": "sendMessage", "cause": "down", "error": "SQS.Boom"})
        );
        assert_eq!(
            with_data[5]["details"],
            json!({"resourceType": "sqs", "resource": "sendMessage", "output": "{\"MessageId\":\"m\"}", "outputDetails": {"truncated": false}})
        );
        assert_eq!(with_data[4]["previous_event_id"], "4");

        let without: Vec<Value> = lines(LogLevel::All, false, &events)
            .iter()
            .map(parse)
            .collect();
        assert_eq!(
            without[0]["details"],
            json!({"roleArn": "arn:aws:iam::123456789012:role/r"})
        );
        assert_eq!(
            without[2]["details"],
            json!({"resourceType": "sqs", "resource": "sendMessage", "region": "eu-west-1"})
        );
        assert_eq!(
            without[5]["details"],
            json!({"resourceType": "sqs", "resource": "sendMessage"})
        );

        // At ERROR only the failure is written, still knowing its resource.
        let errors: Vec<Value> = lines(LogLevel::Error, false, &events)
            .iter()
            .map(parse)
            .collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["type"], "TaskFailed");
        assert_eq!(errors[0]["details"]["resourceType"], "sqs");
    }

    #[test]
    fn resources_split_as_aws_names_them() {
        let cases = [
            ("arn:aws:states:::lambda:invoke", (Some("lambda"), "invoke")),
            (
                "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                (Some("sqs"), "sendMessage.waitForTaskToken"),
            ),
            (
                "arn:aws:states:::states:startExecution.sync:2",
                (Some("states"), "startExecution.sync:2"),
            ),
            (
                "arn:aws:states:::aws-sdk:s3:getObject",
                (Some("aws-sdk:s3"), "getObject"),
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                (
                    Some("lambda"),
                    "arn:aws:lambda:us-east-1:123456789012:function:f",
                ),
            ),
            (
                "arn:aws:states:us-east-1:123456789012:activity:a",
                (
                    Some("states"),
                    "arn:aws:states:us-east-1:123456789012:activity:a",
                ),
            ),
            ("my-handler", (None, "my-handler")),
        ];
        for (resource, want) in cases {
            assert_eq!(split_resource(resource), want, "{resource}");
        }
    }

    #[test]
    fn map_iterations_name_their_map_state_and_index() {
        let events = history(
            json!({
                "StartAt": "M",
                "States": {"M": {
                    "Type": "Map",
                    "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
                    "End": true
                }}
            }),
            json!([10, 20]),
        );
        let got: Vec<Value> = lines(LogLevel::All, false, &events)
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let iterations: Vec<&Value> = got
            .iter()
            .filter(|e| e["type"] == "MapIterationStarted")
            .map(|e| &e["details"])
            .collect();
        assert_eq!(
            iterations,
            [
                &json!({"name": "M", "index": 0}),
                &json!({"name": "M", "index": 1})
            ]
        );
        for (i, e) in got.iter().enumerate() {
            assert_eq!(e["id"], (i + 1).to_string());
        }
        // Links follow each iteration's thread (the VM's, as the API gives them too).
        let links: Vec<&str> = got
            .iter()
            .map(|e| e["previous_event_id"].as_str().expect("text"))
            .collect();
        assert_eq!(
            links,
            ["0", "0", "2", "3", "3", "4", "6", "7", "5", "9", "10", "11", "11", "13"]
        );
        let api: Vec<String> = api_history(ARN, &events, false)
            .iter()
            .map(|e| e["previousEventId"].to_string())
            .collect();
        assert_eq!(api, links);
    }

    #[test]
    fn oversized_data_is_cut_and_marked_truncated() {
        // A multi-byte character straddles the limit: the cut falls before it.
        let big = format!("\"{}é{}\"", "a".repeat(MAX_DATA_BYTES - 2), "b".repeat(100));
        let events = [event(
            2,
            "PassStateEntered",
            Some("P"),
            json!({"name": "P", "input": big}),
        )];
        let got: Value =
            serde_json::from_str(&lines(LogLevel::All, true, &events)[0]).expect("json");
        let input = got["details"]["input"].as_str().expect("input");
        assert_eq!(input.len(), MAX_DATA_BYTES - 1);
        assert!(big.starts_with(input));
        assert_eq!(got["details"]["inputDetails"], json!({"truncated": true}));
    }

    #[test]
    fn lines_are_buffered_until_flushed() {
        let sink = Sink::default();
        let mut logger = ExecutionLogger::new(LogLevel::All, true, Box::new(sink.clone()));
        logger
            .log(ARN, &history(pass_machine(), json!({})))
            .expect("log");
        assert_eq!(sink.text(), "");
        logger.flush().expect("flush");
        assert_eq!(sink.text().lines().count(), 4);
        assert!(sink.text().ends_with('\n'));
    }

    /// A writer that keeps each write call apart.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::ErrorKind::Other)?
                .push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_buffer_is_written_out_at_line_ends_only() {
        // Loggers of several threads append to one file: a write ending mid-line would let
        // another's lines into the middle of this one's.
        let writes = Writes::default();
        let mut logger = ExecutionLogger::new(LogLevel::All, true, Box::new(writes.clone()));
        let events = history(pass_machine(), json!({"pad": "x".repeat(1000)}));
        for _ in 0..50 {
            logger.log(ARN, &events).expect("log");
        }
        logger.flush().expect("flush");
        let writes = writes.0.lock().expect("writes");
        assert!(writes.len() > 2, "{} writes", writes.len());
        assert!(writes.iter().all(|w| w.ends_with(b"\n")));
        let lines: usize = writes
            .iter()
            .map(|w| w.iter().filter(|b| **b == b'\n').count())
            .sum();
        assert_eq!(lines, 50 * 4);
    }

    #[test]
    fn off_writes_nothing() {
        let sink = Sink::default();
        let mut logger = ExecutionLogger::new(LogLevel::Off, true, Box::new(sink.clone()));
        logger
            .log(ARN, &history(fail_machine(), json!({})))
            .expect("log");
        logger.flush().expect("flush");
        assert_eq!(sink.text(), "");
    }
}
