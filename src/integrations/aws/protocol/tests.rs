use super::*;
use crate::integrations::aws::model::model;
use serde_json::json;

fn request(service: &str, action: &str, parameters: Value) -> Request {
    let m = model(service).unwrap();
    let (name, op) = m.operation(action).unwrap();
    build(m, name, op, &parameters).unwrap()
}

fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> Response {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, v.parse().unwrap());
    }
    Response {
        status,
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

fn read_of(service: &str, action: &str, r: &Response) -> Result<Value, ServiceError> {
    let m = model(service).unwrap();
    read(m, m.operation(action).unwrap().1, r)
}

#[test]
fn json_requests_carry_the_target_and_pascal_case_finds_camel_case_members() {
    let r = request(
        "sfn",
        "sendTaskSuccess",
        json!({"TaskToken": "t", "Output": "{}"}),
    );
    assert_eq!(r.path_and_query, "/");
    assert!(r.headers.contains(&(
        "x-amz-target".into(),
        "AWSStepFunctions.SendTaskSuccess".into()
    )));
    assert!(r
        .headers
        .contains(&("content-type".into(), "application/x-amz-json-1.0".into())));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!({"taskToken": "t", "output": "{}"}));
    let m = model("sfn").unwrap();
    let (name, op) = m.operation("sendTaskSuccess").unwrap();
    let refused = build(m, name, op, &json!({"Nope": 1})).unwrap_err();
    assert!(refused.contains("'Nope'"), "{refused}");
}

#[test]
fn json_results_are_pascal_case_with_iso_timestamps() {
    let r = response(
        200,
        &[],
        r#"{"executionArn": "arn:x", "startDate": 1700000000.5}"#,
    );
    let v = read_of("sfn", "startExecution", &r).unwrap();
    assert_eq!(
        v,
        json!({"ExecutionArn": "arn:x", "StartDate": "2023-11-14T22:13:20.500Z"})
    );
    let e = read_of(
        "dynamodb",
        "getItem",
        &response(
            400,
            &[("x-amzn-requestid", "R1")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        ),
    )
    .unwrap_err();
    assert_eq!(e.code, "ResourceNotFoundException");
    assert_eq!(e.message, "Requested resource not found");
    assert_eq!(e.request_id, "R1");
}

#[test]
fn query_requests_flatten_lists_and_maps() {
    let r = request(
        "sns",
        "publish",
        json!({"TopicArn": "arn:t", "Message": "hi", "MessageAttributes": {
            "a": {"DataType": "String", "StringValue": "x"}}}),
    );
    let body = String::from_utf8(r.body).unwrap();
    let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Action"), Some("Publish"));
    assert_eq!(get("Version"), Some("2010-03-31"));
    assert_eq!(get("TopicArn"), Some("arn:t"));
    assert_eq!(get("MessageAttributes.entry.1.Name"), Some("a"));
    assert_eq!(
        get("MessageAttributes.entry.1.Value.DataType"),
        Some("String")
    );
    let r = request(
        "sns",
        "subscribe",
        json!({"TopicArn": "arn:t", "Protocol": "sqs", "Endpoint": "arn:q"}),
    );
    assert!(String::from_utf8(r.body).unwrap().contains("Protocol=sqs"));
}

#[test]
fn query_results_are_read_from_their_wrapper() {
    let ok = response(
        200,
        &[],
        "<PublishResponse><PublishResult><MessageId>m1</MessageId></PublishResult>\
         <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>",
    );
    assert_eq!(
        read_of("sns", "publish", &ok).unwrap(),
        json!({"MessageId": "m1"})
    );
    let topics = response(
        200,
        &[],
        "<ListTopicsResponse><ListTopicsResult><Topics><member><TopicArn>a</TopicArn></member>\
         <member><TopicArn>b</TopicArn></member></Topics></ListTopicsResult></ListTopicsResponse>",
    );
    assert_eq!(
        read_of("sns", "listTopics", &topics).unwrap(),
        json!({"Topics": [{"TopicArn": "a"}, {"TopicArn": "b"}]})
    );
    let error = response(
        404,
        &[],
        "<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not \
         exist</Message></Error><RequestId>r2</RequestId></ErrorResponse>",
    );
    let e = read_of("sns", "publish", &error).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str(), e.request_id.as_str()),
        ("NotFound", "Topic does not exist", "r2")
    );
}

#[test]
fn rest_requests_bind_labels_queries_headers_and_payloads() {
    let r = request(
        "s3",
        "putObject",
        json!({"Bucket": "b", "Key": "a dir/x+y.json", "Body": "hello", "ContentType": "text/plain",
               "Metadata": {"k": "v"}}),
    );
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path_and_query, "/b/a%20dir/x%2By.json");
    assert_eq!(r.body, b"hello");
    assert!(r
        .headers
        .contains(&("content-type".into(), "text/plain".into())));
    assert!(r.headers.contains(&("x-amz-meta-k".into(), "v".into())));
    assert_eq!(r.bucket.as_deref(), Some("b"));
    let r = request(
        "s3",
        "listObjectsV2",
        json!({"Bucket": "b", "Prefix": "p/", "MaxKeys": 2}),
    );
    assert_eq!(r.path_and_query, "/b?list-type=2&prefix=p%2F&max-keys=2");
    let m = model("s3").unwrap();
    let (name, op) = m.operation("getObject").unwrap();
    assert!(build(m, name, op, &json!({"Bucket": "b"}))
        .unwrap_err()
        .contains("'Key'"));
    let r = request(
        "s3",
        "putBucketTagging",
        json!({"Bucket": "b", "Tagging": {"TagSet": [{"Key": "k", "Value": "v"}]}}),
    );
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        "<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet><Tag><Key>k</Key>\
         <Value>v</Value></Tag></TagSet></Tagging>"
    );
    assert!(r.headers.iter().any(|(k, _)| k == "content-md5"));
}

#[test]
fn rest_results_gather_headers_and_payload() {
    let r = response(
        200,
        &[
            ("content-length", "5"),
            ("etag", "\"e\""),
            ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ("x-amz-meta-k", "v"),
        ],
        "hello",
    );
    let v = read_of("s3", "getObject", &r).unwrap();
    assert_eq!(v["Body"], json!("hello"));
    assert_eq!(v["ContentLength"], json!(5));
    assert_eq!(v["ETag"], json!("\"e\""));
    assert_eq!(v["LastModified"], json!("2023-11-14T22:13:20Z"));
    assert_eq!(v["Metadata"], json!({"k": "v"}));
    let list = response(
        200,
        &[],
        "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated><Contents><Key>a</Key>\
         <Size>3</Size></Contents><Contents><Key>b</Key><Size>4</Size></Contents>\
         <KeyCount>2</KeyCount></ListBucketResult>",
    );
    let v = read_of("s3", "listObjectsV2", &list).unwrap();
    assert_eq!(
        v,
        json!({"Contents": [{"Key": "a", "Size": 3}, {"Key": "b", "Size": 4}],
               "IsTruncated": false, "KeyCount": 2, "Name": "b"})
        .as_object()
        .map(|o| {
            let mut expected = Map::new();
            for k in v.as_object().unwrap().keys() {
                expected.insert(k.clone(), o[k].clone());
            }
            Value::Object(expected)
        })
        .unwrap()
    );
    let missing = response(
        404,
        &[("x-amz-request-id", "R"), ("x-amz-id-2", "X")],
        "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>\
         <BucketName>b</BucketName></Error>",
    );
    let e = read_of("s3", "listObjects", &missing).unwrap_err();
    assert_eq!(e.code, "NoSuchBucket");
    assert_eq!(e.extended_request_id.as_deref(), Some("X"));
    let head = read_of("s3", "headObject", &response(404, &[], "")).unwrap_err();
    assert_eq!(head.code, "NotFound");
}
