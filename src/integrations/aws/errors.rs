//! How Step Functions names an AWS service's errors. Two generations, as AWS has them:
//! `aws-sdk:*` Tasks report what the AWS SDK for Java 2 raises
//! (`DynamoDb.ResourceNotFoundException`, cause `… (Service: DynamoDb, Status Code: 400,
//! Request ID: …)`), the older optimized integrations what the SDK 1 raises
//! (`DynamoDB.ResourceNotFoundException`, cause `… (Service: AmazonDynamoDBv2; Status Code:
//! 400; Error Code: …; Request ID: …; Proxy: null)`).

use super::client::CallError;
use super::model::Model;
use super::protocol::ServiceError;
use crate::asl::error::Failure;

/// The SDK 2 client's name of a service: its service id in PascalCase words, acronyms as
/// words (`DynamoDB` → `DynamoDb`, `SFN` → `Sfn`, `Secrets Manager` → `SecretsManager`).
pub fn sdk_service_name(service_id: &str) -> String {
    let mut out = String::new();
    for word in service_id.split([' ', '-', '_']).filter(|w| !w.is_empty()) {
        let chars: Vec<char> = word.chars().collect();
        let mut start = 0;
        for i in 1..=chars.len() {
            let boundary = i == chars.len()
                || (chars[i].is_uppercase()
                    && (chars[i - 1].is_lowercase()
                        || (chars[i - 1].is_uppercase()
                            && chars.get(i + 1).is_some_and(|c| c.is_lowercase()))));
            if boundary {
                let part = &chars[start..i];
                out.extend(part[0].to_uppercase());
                out.extend(part[1..].iter().flat_map(|c| c.to_lowercase()));
                start = i;
            }
        }
    }
    out
}

/// A modelled error's exception class: its shape's name, ending in `Exception`.
fn exception_class(shape: &str) -> String {
    if shape.ends_with("Exception") {
        shape.to_owned()
    } else {
        format!("{shape}Exception")
    }
}

/// An `aws-sdk:*` Task's failure for the service's error.
pub fn sdk_failure(model: &Model, error: &ServiceError, attempts: u32) -> Failure {
    let service = sdk_service_name(&model.metadata.service_id);
    let exception = match model.error_shape(&error.code) {
        Some(shape) => exception_class(shape),
        None => format!("{service}Exception"),
    };
    let extended = match &error.extended_request_id {
        Some(id) => format!(", Extended Request ID: {id}"),
        None => String::new(),
    };
    Failure::new(
        format!("{service}.{exception}"),
        format!(
            "{} (Service: {service}, Status Code: {}, Request ID: {}{extended}) (SDK Attempt Count: {attempts})",
            error.message, error.status, error.request_id
        ),
    )
}

/// An `aws-sdk:*` Task's failure when no answer came or the parameters do not fit.
pub fn sdk_client_failure(model: &Model, error: CallError) -> Failure {
    let service = sdk_service_name(&model.metadata.service_id);
    let cause = match error {
        CallError::Parameters(why) => format!("Unable to marshall request: {why}"),
        CallError::Client { message, attempts } => {
            format!("{message} (SDK Attempt Count: {attempts})")
        }
    };
    Failure::new(format!("{service}.SdkClientException"), cause)
}

/// How the SDK 1 names a service for an optimized integration.
pub struct V1Names {
    /// The error names' prefix (`DynamoDB`).
    pub prefix: &'static str,
    /// `Service:` in causes (`AmazonDynamoDBv2`).
    pub service: &'static str,
    /// The exception of an error the SDK does not model (`AmazonDynamoDBException`).
    pub unmodelled: &'static str,
}

pub const DYNAMODB: V1Names = V1Names {
    prefix: "DynamoDB",
    service: "AmazonDynamoDBv2",
    unmodelled: "AmazonDynamoDBException",
};
pub const SNS: V1Names = V1Names {
    prefix: "SNS",
    service: "AmazonSNS",
    unmodelled: "AmazonSNSException",
};
pub const EVENTBRIDGE: V1Names = V1Names {
    prefix: "EventBridge",
    service: "AmazonEventBridge",
    unmodelled: "AmazonEventBridgeException",
};

/// An optimized integration's failure for the service's error.
pub fn v1_failure(names: &V1Names, model: &Model, error: &ServiceError) -> Failure {
    let exception = match model.error_shape(&error.code) {
        Some(shape) => exception_class(shape),
        None => names.unmodelled.to_owned(),
    };
    Failure::new(
        format!("{}.{exception}", names.prefix),
        format!(
            "{} (Service: {}; Status Code: {}; Error Code: {}; Request ID: {}; Proxy: null)",
            error.message, names.service, error.status, error.code, error.request_id
        ),
    )
}

pub fn v1_client_failure(names: &V1Names, error: CallError) -> Failure {
    let cause = match error {
        CallError::Parameters(why) => format!("Unable to marshall request to JSON: {why}"),
        CallError::Client { message, .. } => message,
    };
    Failure::new(format!("{}.SdkClientException", names.prefix), cause)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::aws::model::model;

    #[test]
    fn service_names_are_the_sdk_clients() {
        let cases = [
            ("DynamoDB", "DynamoDb"),
            ("SFN", "Sfn"),
            ("S3", "S3"),
            ("Secrets Manager", "SecretsManager"),
            ("EventBridge", "EventBridge"),
            ("SSM", "Ssm"),
            ("Firehose", "Firehose"),
            ("Lambda", "Lambda"),
        ];
        for (id, name) in cases {
            assert_eq!(sdk_service_name(id), name, "{id}");
        }
    }

    fn error(code: &str, status: u16) -> ServiceError {
        ServiceError {
            status,
            code: code.into(),
            message: "Requested resource not found".into(),
            request_id: "R".into(),
            extended_request_id: None,
        }
    }

    #[test]
    fn errors_are_named_as_each_sdk_generation_names_them() {
        let dynamodb = model("dynamodb").unwrap();
        let f = sdk_failure(dynamodb, &error("ResourceNotFoundException", 400), 1);
        assert_eq!(
            f.error.as_deref(),
            Some("DynamoDb.ResourceNotFoundException")
        );
        assert_eq!(
            f.cause.as_deref(),
            Some("Requested resource not found (Service: DynamoDb, Status Code: 400, Request ID: R) (SDK Attempt Count: 1)")
        );
        let f = sdk_failure(dynamodb, &error("ValidationException", 400), 1);
        assert_eq!(f.error.as_deref(), Some("DynamoDb.DynamoDbException"));
        let f = v1_failure(&DYNAMODB, dynamodb, &error("ValidationException", 400));
        assert_eq!(f.error.as_deref(), Some("DynamoDB.AmazonDynamoDBException"));
        assert_eq!(
            f.cause.as_deref(),
            Some("Requested resource not found (Service: AmazonDynamoDBv2; Status Code: 400; Error Code: ValidationException; Request ID: R; Proxy: null)")
        );
        let s3 = model("s3").unwrap();
        let mut e = error("NoSuchBucket", 404);
        e.extended_request_id = Some("X".into());
        let f = sdk_failure(s3, &e, 1);
        assert_eq!(f.error.as_deref(), Some("S3.NoSuchBucketException"));
        assert!(f
            .cause
            .unwrap()
            .contains("Request ID: R, Extended Request ID: X)"));
        let sfn = model("sfn").unwrap();
        assert_eq!(
            sdk_failure(sfn, &error("InvalidToken", 400), 1)
                .error
                .as_deref(),
            Some("Sfn.InvalidTokenException")
        );
        let sns = model("sns").unwrap();
        assert_eq!(
            v1_failure(&SNS, sns, &error("NotFound", 404))
                .error
                .as_deref(),
            Some("SNS.NotFoundException")
        );
    }
}
