//! AWS services for Task states: `arn:aws:states:::aws-sdk:<service>:<action>` for every
//! action of the services whose API models ship in `models/` ([`model::services`]), and the
//! optimized integrations built on the same client: `dynamodb:getItem|putItem|updateItem|
//! deleteItem`, `sns:publish`, `events:putEvents`.
//!
//! A call goes: resource → model operation; parameters → request by the service's protocol
//! (`protocol`); endpoint, credentials, SigV4 and retries (`client`); response → result or
//! failure named as Step Functions names it (`errors`).

mod client;
mod credentials;
mod errors;
mod map_io;
pub mod model;
mod profile;
mod protocol;

pub use client::{AwsConfig, Client};
pub use protocol::Request;

use crate::asl::arn::Arn;
use crate::asl::effect::TaskCall;
use crate::asl::error::Failure;
use crate::integrations::lambda::{sdk_http_metadata, train_case};
use client::Answer;
use errors::V1Names;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// What an AWS Task resource calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsTask {
    /// `aws-sdk:<service>:<action>`: the SDK's request and response.
    Sdk { service: String, action: String },
    /// `dynamodb:<action>`: the SDK 1 response with its HTTP metadata.
    DynamoDb(&'static str),
    /// `sns:publish`: the same, for SNS.
    SnsPublish,
    /// `events:putEvents`: the response; failed entries fail the state.
    PutEvents,
}

impl AwsTask {
    /// The task a resource names, or why it names none (an `aws-sdk:` service or action
    /// without a model); `Ok(None)` for resources that are not AWS service calls.
    pub fn of(resource: &str) -> Result<Option<AwsTask>, String> {
        let Some(arn) = Arn::parse(resource) else {
            return Ok(None);
        };
        if arn.service != "states" {
            return Ok(None);
        }
        let Some((kind, action)) = arn.resource.split_once(':') else {
            return Ok(None);
        };
        Ok(Some(match (kind, action) {
            ("aws-sdk", rest) => {
                let (service, action) = rest.split_once(':').unwrap_or((rest, ""));
                let Some(model) = model::model(service) else {
                    return Err(format!(
                        "the AWS SDK service '{service}' is not supported (supported: {})",
                        model::services().collect::<Vec<_>>().join(", ")
                    ));
                };
                if model.operation(action).is_none() {
                    return Err(format!(
                        "the AWS SDK service '{service}' has no action '{action}'"
                    ));
                }
                AwsTask::Sdk {
                    service: service.to_owned(),
                    action: action.to_owned(),
                }
            }
            ("dynamodb", "getItem") => AwsTask::DynamoDb("GetItem"),
            ("dynamodb", "putItem") => AwsTask::DynamoDb("PutItem"),
            ("dynamodb", "updateItem") => AwsTask::DynamoDb("UpdateItem"),
            ("dynamodb", "deleteItem") => AwsTask::DynamoDb("DeleteItem"),
            ("sns", "publish") => AwsTask::SnsPublish,
            ("events", "putEvents") => AwsTask::PutEvents,
            _ => return Ok(None),
        }))
    }
}

impl AwsTask {
    /// The parameters the task's operation takes (its input shape's members), and the
    /// operation's name.
    pub fn parameters(&self) -> (String, Vec<&'static str>) {
        let (service, action) = match self {
            AwsTask::Sdk { service, action } => (service.as_str(), action.as_str()),
            AwsTask::DynamoDb(action) => ("dynamodb", *action),
            AwsTask::SnsPublish => ("sns", "Publish"),
            AwsTask::PutEvents => ("eventbridge", "PutEvents"),
        };
        let model = model::model(service).expect("checked when the resource was read");
        let Some((name, op)) = model.operation(action) else {
            return (action.to_owned(), Vec::new());
        };
        let members = op
            .input
            .as_ref()
            .and_then(|input| model.shape(&input.shape))
            .map(|shape| shape.members.keys().map(String::as_str).collect())
            .unwrap_or_default();
        (format!("{service}:{name}"), members)
    }
}

/// The AWS integrations of one process: one client, its connections and credentials.
pub struct Aws {
    client: Arc<Client>,
}

impl Aws {
    pub fn new(config: &AwsConfig) -> Result<Aws, String> {
        Ok(Aws {
            client: Arc::new(Client::new(config)?),
        })
    }

    /// The client, for integrations that speak their own wire format but sign and find
    /// endpoints as every AWS call does (Lambda's Invoke).
    pub fn client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// A Distributed Map's `ItemReader` or `ResultWriter` call (see [`map_io`]).
    pub fn map_io(
        &self,
        call: TaskCall,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let client = self.client.clone();
        let timeout = client.timeout(&call);
        async move { map_io::serve(&client, call, timeout).await }
    }

    pub fn invoke(
        &self,
        call: TaskCall,
        task: AwsTask,
    ) -> impl std::future::Future<Output = Result<Value, Failure>> + Send + 'static {
        let client = self.client.clone();
        let timeout = client.timeout(&call);
        async move {
            match task {
                AwsTask::Sdk { service, action } => {
                    sdk_call(&client, &service, &action, &call.payload, timeout).await
                }
                AwsTask::DynamoDb(action) => {
                    let answer = v1_call(
                        &client,
                        "dynamodb",
                        action,
                        &call.payload,
                        timeout,
                        &errors::DYNAMODB,
                    )
                    .await?;
                    Ok(with_sdk_metadata(answer))
                }
                AwsTask::SnsPublish => {
                    let parameters = sns_message_as_text(call.payload);
                    let answer = v1_call(
                        &client,
                        "sns",
                        "Publish",
                        &parameters,
                        timeout,
                        &errors::SNS,
                    )
                    .await?;
                    Ok(with_sdk_metadata(answer))
                }
                AwsTask::PutEvents => put_events(&client, call.payload, timeout).await,
            }
        }
    }
}

async fn sdk_call(
    client: &Client,
    service: &str,
    action: &str,
    parameters: &Value,
    timeout: Duration,
) -> Result<Value, Failure> {
    let model = model::model(service).expect("checked when the resource was read");
    match client.call(service, action, parameters, timeout).await {
        Ok(Answer {
            result: Ok(value), ..
        }) => Ok(value),
        Ok(Answer {
            result: Err(error),
            attempts,
            ..
        }) => Err(errors::sdk_failure(model, &error, attempts)),
        Err(error) => Err(errors::sdk_client_failure(model, error)),
    }
}

/// An optimized integration's call: the answer, or the failure as the SDK 1 names it.
async fn v1_call(
    client: &Client,
    service: &str,
    action: &str,
    parameters: &Value,
    timeout: Duration,
    names: &V1Names,
) -> Result<Answer, Failure> {
    let model = model::model(service).expect("shipped");
    match client.call(service, action, parameters, timeout).await {
        Ok(Answer {
            result: Err(error), ..
        }) => Err(errors::v1_failure(names, model, &error)),
        Ok(answer) => Ok(answer),
        Err(error) => Err(errors::v1_client_failure(names, error)),
    }
}

/// The SDK 1 result: the response's fields with `SdkHttpMetadata` and
/// `SdkResponseMetadata`, in name order as Step Functions lists them.
fn with_sdk_metadata(answer: Answer) -> Value {
    let mut fields: Vec<(String, Value)> = match answer.result {
        Ok(Value::Object(m)) => m.into_iter().collect(),
        _ => Vec::new(),
    };
    fields.push((
        "SdkHttpMetadata".into(),
        sdk_http_metadata(
            answer.response.status,
            &answer.response.headers,
            header_spelling,
        ),
    ));
    fields.push((
        "SdkResponseMetadata".into(),
        json!({ "RequestId": answer.response.request_id() }),
    ));
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(fields.into_iter().collect())
}

/// AWS's own headers arrive as `x-amzn-RequestId` and `x-amz-crc32`; the rest Train-Case.
fn header_spelling(name: &str) -> String {
    match name {
        "x-amzn-requestid" => "x-amzn-RequestId".into(),
        n if n.starts_with("x-amz") => n.into(),
        n => train_case(n),
    }
}

/// `sns:publish` takes a `Message` of any JSON type and sends its text, as AWS does.
fn sns_message_as_text(mut parameters: Value) -> Value {
    if let Some(message) = parameters.get_mut("Message") {
        if !message.is_string() && !message.is_null() {
            *message = Value::String(message.to_string());
        }
    }
    parameters
}

/// `events:putEvents`: a `Detail` given as JSON is sent as its text; an entry the service
/// refuses fails the state with `EventBridge.FailedEntry` and the response as the cause.
async fn put_events(
    client: &Client,
    mut parameters: Value,
    timeout: Duration,
) -> Result<Value, Failure> {
    if let Some(Value::Array(entries)) = parameters.get_mut("Entries") {
        for entry in entries {
            if let Some(detail) = entry.get_mut("Detail") {
                if !detail.is_string() && !detail.is_null() {
                    *detail = Value::String(detail.to_string());
                }
            }
        }
    }
    let answer = v1_call(
        client,
        "eventbridge",
        "PutEvents",
        &parameters,
        timeout,
        &errors::EVENTBRIDGE,
    )
    .await?;
    let result = answer.result.unwrap_or_else(|_| Value::Object(Map::new()));
    let failed = result
        .get("FailedEntryCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if failed > 0 {
        return Err(Failure::new("EventBridge.FailedEntry", result.to_string()));
    }
    Ok(result)
}
