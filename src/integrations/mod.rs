//! Task resources that call real services: Lambda, HTTP endpoints, SQS, AWS services through
//! their APIs (`aws-sdk:*` and the optimized DynamoDB, SNS and EventBridge integrations) and,
//! handed in by the daemon, Kafka produce.
//!
//! Every integration is one [`TaskResource`]: the VM's invoke effect becomes a request on a
//! shared tokio runtime, and its answer (or the error AWS would name) goes back through the
//! [`TaskReply`]. Each integration pools its connections, bounds its concurrency with a
//! semaphore (calls beyond it queue, they never fail for it) and times its requests out.
//! Which resource goes where is decided once per definition ([`check_resource`]) and once
//! per call ([`Route::of`]).

pub mod aws;
pub mod config;
pub mod http;
pub mod lambda;
pub mod sqs;

pub use config::{IntegrationsConfig, Limits};

use crate::asl::arn::is_activity_arn;
use crate::asl::arn::Arn;
use crate::asl::diagnostic::{codes, pointer_push, Diagnostic};
use crate::asl::effect::{Purpose, TaskCall};
use crate::asl::error::Failure;
use crate::asl::walk::{each_machine, states};
use crate::resource::{TaskReply, TaskResource};
use crate::telemetry::{self, Integration};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Where a Task's `Resource` is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `arn:aws:states:::lambda:invoke`: the result is the whole Invoke response.
    LambdaInvoke,
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`: the result is the function's payload.
    LambdaFunction,
    /// `arn:aws:states:::http:invoke`.
    Http,
    /// `arn:expressway:states:::kafka:produce`: Expressway's own, served by the daemon's
    /// producer (`daemon::kafka::KafkaProduce`).
    KafkaProduce,
    /// `arn:aws:states:::sqs:sendMessage`.
    SqsSendMessage,
    /// An AWS service's API ([`aws::AwsTask`]).
    Aws,
}

/// The resource of [`Route::KafkaProduce`].
pub const KAFKA_PRODUCE: &str = "arn:expressway:states:::kafka:produce";

impl Route {
    pub fn of(resource: &str) -> Option<Route> {
        if resource == KAFKA_PRODUCE {
            return Some(Route::KafkaProduce);
        }
        if let Ok(Some(_)) = aws::AwsTask::of(resource) {
            return Some(Route::Aws);
        }
        let arn = Arn::parse(resource)?;
        // The resource keeps its colons: `function:NAME[:QUALIFIER]`.
        let (kind, name) = arn.resource.split_once(':')?;
        match (arn.service, kind, name) {
            ("states", "lambda", "invoke") => Some(Route::LambdaInvoke),
            ("states", "http", "invoke") => Some(Route::Http),
            ("states", "sqs", "sendMessage") => Some(Route::SqsSendMessage),
            ("lambda", "function", name) if !name.is_empty() => Some(Route::LambdaFunction),
            _ => None,
        }
    }
}

/// What a deployment serves beyond the integrations themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// `.waitForTaskToken` and activities: not allowed in Express workflows on AWS, so an
    /// extension that the config must switch on.
    pub callbacks: bool,
    /// `arn:aws:states:::states:startExecution[.sync|.sync:2]`, when the API host runs.
    pub nested_executions: bool,
    /// [`KAFKA_PRODUCE`], when a Kafka producer is at hand (the daemon with sources).
    pub kafka_produce: bool,
}

/// Why a definition's Task cannot run here; `None` if it can.
pub fn check_resource(resource: &str, served: Served) -> Option<String> {
    let (base, callback) = match resource.strip_suffix(".waitForTaskToken") {
        Some(base) => (base, true),
        None => (resource, is_activity_arn(resource)),
    };
    if callback && !served.callbacks {
        return Some(format!(
            "'{resource}' waits for a task token (a callback or an activity), which AWS does not \
             allow in Express workflows; set [integrations] allow_callbacks = true to use it"
        ));
    }
    match Route::of(base) {
        // AWS's DynamoDB integration has no callback pattern.
        Some(Route::Aws)
            if callback
                && matches!(aws::AwsTask::of(base), Ok(Some(aws::AwsTask::DynamoDb(_)))) =>
        {
            return Some(format!(
                "'{resource}': the DynamoDB integration does not support .waitForTaskToken"
            ))
        }
        Some(Route::KafkaProduce) if !served.kafka_produce => {
            return Some(format!(
                "'{resource}' produces to the daemon's Kafka cluster: it runs only in a daemon \
                 with [[sources]]"
            ))
        }
        Some(_) => return None,
        None if is_activity_arn(base) => return None,
        None => {}
    }
    if let Err(why) = aws::AwsTask::of(base) {
        return Some(format!(
            "no integration serves resource '{resource}': {why}"
        ));
    }
    if served.nested_executions
        && matches!(
            base,
            "arn:aws:states:::states:startExecution"
                | "arn:aws:states:::states:startExecution.sync"
                | "arn:aws:states:::states:startExecution.sync:2"
        )
    {
        return None;
    }
    Some(format!(
        "no integration serves resource '{resource}' (supported: arn:aws:states:::lambda:invoke, \
         Lambda function ARNs, arn:aws:states:::http:invoke, arn:aws:states:::sqs:sendMessage, \
         arn:aws:states:::dynamodb:getItem|putItem|updateItem|deleteItem, \
         arn:aws:states:::sns:publish, arn:aws:states:::events:putEvents, \
         arn:aws:states:::aws-sdk:<service>:<action> for {}, {KAFKA_PRODUCE}; with the API: \
         arn:aws:states:::states:startExecution[.sync:2])",
        aws::model::services().collect::<Vec<_>>().join(", ")
    ))
}

/// The parameters an AWS Task names that its operation does not take (as AWS refuses them
/// when the state machine is created), as `UNKNOWN_FIELD` at each one's pointer. Names match
/// in any case (`TaskToken` is SFN's `taskToken`), and `Key.$` names `Key`.
fn unknown_parameters(task: &aws::AwsTask, state: &Value, ptr: &str, out: &mut Vec<Diagnostic>) {
    for field in ["Parameters", "Arguments"] {
        let Some(Value::Object(parameters)) = state.get(field) else {
            continue;
        };
        let (operation, members) = task.parameters();
        for key in parameters.keys() {
            let name = key.strip_suffix(".$").unwrap_or(key);
            if !members.iter().any(|m| m.eq_ignore_ascii_case(name)) {
                out.push(Diagnostic::new(
                    codes::UNKNOWN_FIELD,
                    pointer_push(&pointer_push(ptr, field), key),
                    format!(
                        "'{name}' is not a parameter of {operation} (its parameters: {})",
                        members.join(", ")
                    ),
                ));
            }
        }
    }
}

/// What a Distributed Map's `ItemReader` and `ResultWriter` may call (`aws::map_io`).
const MAP_IO: [(&str, &[&str]); 2] = [
    (
        "ItemReader",
        &[
            "arn:aws:states:::s3:getObject",
            "arn:aws:states:::s3:listObjectsV2",
        ],
    ),
    ("ResultWriter", &["arn:aws:states:::s3:putObject"]),
];

/// Every Task (and Distributed Map reader or writer) of a definition, nested machines
/// included, whose resource no integration serves, as `UNKNOWN_RESOURCE` diagnostics
/// pointing at its `Resource`.
pub fn unserved_resources(definition: &Value, served: Served) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    each_machine(definition, &mut |machine, ptr| {
        for (state, sptr) in states(machine, ptr) {
            for (field, served) in MAP_IO {
                let at = pointer_push(&pointer_push(&sptr, field), "Resource");
                match state
                    .pointer(&format!("/{field}/Resource"))
                    .and_then(Value::as_str)
                {
                    Some(resource) if !served.contains(&resource) => out.push(Diagnostic::new(
                        codes::UNKNOWN_RESOURCE,
                        at,
                        format!(
                            "a Map's {field} cannot be '{resource}' (supported: {})",
                            served.join(", ")
                        ),
                    )),
                    _ => {}
                }
            }
            if state.get("Type").and_then(Value::as_str) != Some("Task") {
                continue;
            }
            let Some(resource) = state.get("Resource").and_then(Value::as_str) else {
                continue;
            };
            if let Some(message) = check_resource(resource, served) {
                let at = pointer_push(&sptr, "Resource");
                out.push(Diagnostic::new(codes::UNKNOWN_RESOURCE, at, message));
            } else if let Ok(Some(task)) =
                aws::AwsTask::of(resource.trim_end_matches(".waitForTaskToken"))
            {
                unknown_parameters(&task, state, &sptr, &mut out);
            }
        }
    });
    out
}

/// The integrations of one process, sharing one runtime.
pub struct Integrations {
    runtime: tokio::runtime::Handle,
    lambda: lambda::Lambda,
    http: http::Http,
    kafka: Option<Arc<dyn TaskResource>>,
    sqs: sqs::Sqs,
    aws: aws::Aws,
}

impl Integrations {
    /// Builds the clients; requests run on `runtime`.
    pub fn new(
        config: &IntegrationsConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Integrations, String> {
        let aws = aws::Aws::new(&config.aws)?;
        Ok(Integrations {
            runtime,
            lambda: lambda::Lambda::new(&config.lambda, aws.client())?,
            http: http::Http::new(&config.http)?,
            kafka: None,
            sqs: sqs::Sqs::new(&config.sqs)?,
            aws,
        })
    }

    /// Serves [`KAFKA_PRODUCE`] with `producer` (the daemon's).
    pub fn with_kafka_producer(mut self, producer: Arc<dyn TaskResource>) -> Integrations {
        self.kafka = Some(producer);
        self
    }
}

impl TaskResource for Integrations {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        if call.purpose != Purpose::Task {
            let integration = Integration::of(&call.resource);
            return spawn(&self.runtime, integration, self.aws.map_io(call), reply);
        }
        match Route::of(&call.resource) {
            Some(Route::LambdaInvoke) => spawn(
                &self.runtime,
                Integration::Lambda,
                self.lambda.invoke(call, true),
                reply,
            ),
            Some(Route::LambdaFunction) => spawn(
                &self.runtime,
                Integration::Lambda,
                self.lambda.invoke(call, false),
                reply,
            ),
            Some(Route::Http) => spawn(
                &self.runtime,
                Integration::Http,
                self.http.invoke(call),
                reply,
            ),
            Some(Route::KafkaProduce) if self.kafka.is_some() => {
                self.kafka.as_ref().expect("checked").invoke(call, reply)
            }
            Some(Route::SqsSendMessage) => spawn(
                &self.runtime,
                Integration::Sqs,
                self.sqs.send_message(call),
                reply,
            ),
            Some(Route::Aws) => match aws::AwsTask::of(&call.resource) {
                Ok(Some(task)) => {
                    let integration = Integration::of(&call.resource);
                    spawn(
                        &self.runtime,
                        integration,
                        self.aws.invoke(call, task),
                        reply,
                    )
                }
                _ => reply.complete(Err(Failure::new(
                    crate::asl::error::names::TASK_FAILED,
                    check_resource(&call.resource, Served::default()).unwrap_or_default(),
                ))),
            },
            Some(Route::KafkaProduce) | None => reply.complete(Err(Failure::new(
                crate::asl::error::names::TASK_FAILED,
                check_resource(&call.resource, Served::default()).unwrap_or_default(),
            ))),
        }
    }
}

fn spawn(
    runtime: &tokio::runtime::Handle,
    integration: Integration,
    call: impl Future<Output = Result<Value, Failure>> + Send + 'static,
    reply: TaskReply,
) {
    runtime.spawn(async move {
        let started = Instant::now();
        let result = call.await;
        telemetry::task_call(integration, result.is_ok(), started.elapsed());
        reply.complete(result)
    });
}

/// What every HTTP integration calls through: one pooled client (keep-alive connections),
/// its concurrency slots and its limits. Cheap to clone into a call's future.
#[derive(Clone)]
pub(crate) struct Pool {
    pub client: reqwest::Client,
    slots: Arc<Semaphore>,
    limits: Limits,
}

impl Pool {
    pub fn new(limits: &Limits) -> Result<Pool, String> {
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Pool {
            client,
            slots: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
            limits: limits.clone(),
        })
    }

    /// The timeout of one call: the integration's, or the Task's `TimeoutSeconds` if shorter
    /// (the VM fails the state then anyway; this frees the connection).
    pub fn timeout(&self, call: &TaskCall) -> Duration {
        match call.timeout_secs {
            Some(s) => self
                .limits
                .timeout
                .min(Duration::from_secs(s.saturating_add(1))),
            None => self.limits.timeout,
        }
    }

    /// Runs `request` in a free slot (waiting for one), within `timeout`; `None` when time
    /// ran out.
    pub async fn run<T>(&self, timeout: Duration, request: impl Future<Output = T>) -> Option<T> {
        let _slot = self.slots.acquire().await.ok()?;
        tokio::time::timeout(timeout, request).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_the_resource_arn() {
        let cases = [
            ("arn:aws:states:::lambda:invoke", Some(Route::LambdaInvoke)),
            ("arn:aws:states:::http:invoke", Some(Route::Http)),
            (
                "arn:aws:states:::sqs:sendMessage",
                Some(Route::SqsSendMessage),
            ),
            ("arn:aws:states:::sqs:sendMessage.waitForTaskToken", None),
            (
                "arn:aws:lambda:us-east-1:111111111111:function:f",
                Some(Route::LambdaFunction),
            ),
            (
                "arn:aws:lambda:us-east-1:111111111111:function:f:$LATEST",
                Some(Route::LambdaFunction),
            ),
            ("arn:aws:states:::lambda:invoke.waitForTaskToken", None),
            ("arn:aws:states:::dynamodb:putItem", Some(Route::Aws)),
            ("arn:aws:states:::aws-sdk:s3:getObject", Some(Route::Aws)),
            ("arn:aws:states:::aws-sdk:s3:getObjectt", None),
            ("arn:aws:states:::aws-sdk:nope:getObject", None),
            ("arn:aws:states:::dynamodb:scan", None),
            ("arn:aws:lambda:us-east-1:111111111111:function:", None),
            ("not an arn", None),
        ];
        for (resource, route) in cases {
            assert_eq!(Route::of(resource), route, "{resource}");
        }
        let definition = serde_json::json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "T", "States": {
                "T": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask", "End": true}}}]},
            "L": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true}}});
        let unserved = unserved_resources(&definition, Served::default());
        assert_eq!(unserved.len(), 1);
        assert_eq!(
            unserved[0].pointer,
            "/States/P/Branches/0/States/T/Resource"
        );
        let map = serde_json::json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemReader": {"Resource": "arn:aws:states:::s3:getObjectt"},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"},
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}});
        let unserved = unserved_resources(&map, Served::default());
        assert_eq!(unserved.len(), 1);
        assert_eq!(unserved[0].pointer, "/States/M/ItemReader/Resource");
        let task = serde_json::json!({"StartAt": "T", "States": {"T": {"Type": "Task", "End": true,
            "Resource": "arn:aws:states:::aws-sdk:sfn:sendTaskSuccess",
            "Parameters": {"TaskToken.$": "$.t", "Output": "{}", "Outptu": 1}}}});
        let unserved = unserved_resources(&task, Served::default());
        assert_eq!(unserved.len(), 1);
        assert_eq!(unserved[0].pointer, "/States/T/Parameters/Outptu");
        assert!(unserved[0]
            .message
            .contains("not a parameter of sfn:SendTaskSuccess"));
        let callback = "arn:aws:states:::lambda:invoke.waitForTaskToken";
        assert!(check_resource(callback, Served::default())
            .unwrap()
            .contains("allow_callbacks = true"));
        let all = Served {
            callbacks: true,
            nested_executions: true,
            kafka_produce: true,
        };
        assert_eq!(check_resource(KAFKA_PRODUCE, all), None);
        assert!(check_resource(KAFKA_PRODUCE, Served::default()).is_some());
        assert_eq!(check_resource(callback, all), None);
        let sqs_callback = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
        assert_eq!(check_resource(sqs_callback, all), None);
        assert_eq!(
            check_resource("arn:aws:states:us-east-1:1:activity:a", all),
            None
        );
        assert_eq!(
            check_resource("arn:aws:states:::states:startExecution.sync:2", all),
            None
        );
        assert!(check_resource("arn:aws:states:::ecs:runTask", all).is_some());
        assert_eq!(
            check_resource("arn:aws:states:::sns:publish.waitForTaskToken", all),
            None
        );
        assert!(
            check_resource("arn:aws:states:::dynamodb:putItem.waitForTaskToken", all)
                .unwrap()
                .contains("does not support .waitForTaskToken")
        );
        assert!(
            check_resource("arn:aws:states:::ecs:runTask", Served::default())
                .unwrap()
                .contains("no integration serves resource 'arn:aws:states:::ecs:runTask'")
        );
    }
}
