//! The AWS API models that `aws-sdk:*` Tasks are built from: botocore's, the data every AWS
//! SDK is generated from, trimmed by `scripts/aws_models.py` to what requests and responses
//! need and shipped in `models/`. A service's model is parsed the first time a definition or
//! a call names it.

use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// One service's API: its protocol, operations and shapes.
#[derive(Debug, Deserialize)]
pub struct Model {
    pub metadata: Metadata,
    pub operations: HashMap<String, Operation>,
    pub shapes: HashMap<String, Shape>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub endpoint_prefix: String,
    pub json_version: Option<String>,
    pub protocol: String,
    /// The service's stable id ("DynamoDB", "Secrets Manager"): the endpoint variables
    /// (`AWS_ENDPOINT_URL_SECRETS_MANAGER`) and the SDK's names derive from it.
    pub service_id: String,
    pub signing_name: Option<String>,
    pub target_prefix: Option<String>,
    pub xml_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub http: Http,
    pub input: Option<Member>,
    pub output: Option<Member>,
    #[serde(default)]
    pub errors: Vec<Member>,
    pub endpoint: Option<OperationEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    pub method: String,
    pub request_uri: String,
    pub response_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationEndpoint {
    pub host_prefix: Option<String>,
}

/// A reference to a shape, with how it is bound on the wire: a structure's member, a list's
/// element, a map's key or value, an operation's input or output.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub shape: String,
    /// `uri`, `querystring`, `header`, `headers` (a prefix), `statusCode`; none: the body.
    pub location: Option<String>,
    pub location_name: Option<String>,
    #[serde(default)]
    pub flattened: bool,
    #[serde(default)]
    pub xml_attribute: bool,
    pub xml_namespace: Option<XmlNamespace>,
    /// Query protocol: the output's wrapping element (`PublishResult`).
    pub result_wrapper: Option<String>,
    /// A string member holding JSON text (`jsonvalue`).
    #[serde(default)]
    pub jsonvalue: bool,
    pub timestamp_format: Option<String>,
    #[serde(default)]
    pub host_label: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum XmlNamespace {
    Uri(String),
    Full { uri: String, prefix: Option<String> },
}

impl XmlNamespace {
    pub fn uri(&self) -> &str {
        match self {
            XmlNamespace::Uri(uri) | XmlNamespace::Full { uri, .. } => uri,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub members: IndexMap<String, Member>,
    #[serde(default)]
    pub required: Vec<String>,
    /// A list's element.
    pub member: Option<Box<Member>>,
    pub key: Option<Box<Member>>,
    pub value: Option<Box<Member>>,
    #[serde(default)]
    pub flattened: bool,
    pub location_name: Option<String>,
    /// A structure's member that is the whole HTTP body (REST protocols).
    pub payload: Option<String>,
    pub timestamp_format: Option<String>,
    pub error: Option<ErrorTrait>,
    #[serde(default)]
    pub exception: bool,
    pub xml_namespace: Option<XmlNamespace>,
    #[serde(default)]
    pub eventstream: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrait {
    /// The wire code when it differs from the shape's name (SNS's `NotFound`).
    pub code: Option<String>,
}

impl Model {
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// The operation a Step Functions action names: `getItem` is `GetItem`.
    pub fn operation(&self, action: &str) -> Option<(&str, &Operation)> {
        let mut name = String::with_capacity(action.len());
        let mut chars = action.chars();
        if let Some(first) = chars.next() {
            name.extend(first.to_uppercase());
            name.push_str(chars.as_str());
        }
        self.operations
            .get_key_value(&name)
            .map(|(k, op)| (k.as_str(), op))
    }

    /// The error shape a wire code names, among every exception of the service (as an SDK
    /// client knows them all, not just the operation's).
    pub fn error_shape(&self, code: &str) -> Option<&str> {
        self.shapes
            .iter()
            .filter(|(_, shape)| shape.exception || shape.error.is_some())
            .find(|(name, shape)| {
                name.as_str() == code
                    || shape.error.as_ref().and_then(|e| e.code.as_deref()) == Some(code)
            })
            .map(|(name, _)| name.as_str())
    }

    pub fn protocol(&self) -> Protocol {
        match self.metadata.protocol.as_str() {
            "json" => Protocol::Json,
            "query" | "ec2" => Protocol::Query,
            "rest-json" => Protocol::RestJson,
            _ => Protocol::RestXml,
        }
    }

    pub fn signing_name(&self) -> &str {
        self.metadata
            .signing_name
            .as_deref()
            .unwrap_or(&self.metadata.endpoint_prefix)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /` with `X-Amz-Target` (JSON 1.0 and 1.1).
    Json,
    /// Form-encoded `Action=…` requests, XML responses.
    Query,
    RestJson,
    RestXml,
}

/// The services shipped, by their name in `arn:aws:states:::aws-sdk:<name>:<action>`.
const SHIPPED: &[(&str, &str)] = &[
    ("dynamodb", include_str!("models/dynamodb.json")),
    ("eventbridge", include_str!("models/eventbridge.json")),
    ("firehose", include_str!("models/firehose.json")),
    ("kinesis", include_str!("models/kinesis.json")),
    ("lambda", include_str!("models/lambda.json")),
    ("s3", include_str!("models/s3.json")),
    ("secretsmanager", include_str!("models/secretsmanager.json")),
    ("sfn", include_str!("models/sfn.json")),
    ("sns", include_str!("models/sns.json")),
    ("sqs", include_str!("models/sqs.json")),
    ("ssm", include_str!("models/ssm.json")),
    ("sts", include_str!("models/sts.json")),
];

/// The names of the services `aws-sdk:*` Tasks may call.
pub fn services() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(name, _)| *name)
}

/// The model of `service` (its Step Functions name), parsed once.
pub fn model(service: &str) -> Option<&'static Model> {
    static LOADED: [OnceLock<Model>; SHIPPED.len()] = [const { OnceLock::new() }; SHIPPED.len()];
    let i = SHIPPED.iter().position(|(name, _)| *name == service)?;
    Some(LOADED[i].get_or_init(|| {
        serde_json::from_str(SHIPPED[i].1).expect("the shipped AWS models parse (unit-tested)")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_model_parses_and_its_references_resolve() {
        for service in services() {
            let model = model(service).unwrap();
            let resolves = |m: &Member| {
                assert!(
                    model.shapes.contains_key(&m.shape),
                    "{service}: {}",
                    m.shape
                )
            };
            for op in model.operations.values() {
                op.input
                    .iter()
                    .chain(&op.output)
                    .chain(&op.errors)
                    .for_each(resolves);
            }
            for shape in model.shapes.values() {
                shape.members.values().for_each(resolves);
                for m in [&shape.member, &shape.key, &shape.value]
                    .into_iter()
                    .flatten()
                {
                    resolves(m);
                }
            }
        }
        let dynamodb = model("dynamodb").unwrap();
        assert_eq!(dynamodb.operation("getItem").unwrap().0, "GetItem");
        assert_eq!(dynamodb.protocol(), Protocol::Json);
        assert_eq!(model("s3").unwrap().protocol(), Protocol::RestXml);
        assert_eq!(model("sns").unwrap().protocol(), Protocol::Query);
        assert_eq!(
            model("sns").unwrap().error_shape("NotFound"),
            Some("NotFoundException")
        );
        assert!(model("nope").is_none());
    }
}
