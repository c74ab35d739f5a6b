//! A Distributed Map's S3 side. `ItemReader`: the items of a JSON, JSON Lines or CSV object
//! (`s3:getObject`), or the objects under a prefix (`s3:listObjectsV2`, every page).
//! `ResultWriter` (`s3:putObject`): the results written under `<Prefix>/<map run id>/` as
//! AWS lays them out (`SUCCEEDED_0.json` and a `manifest.json` naming it), the state's result
//! then being the Map Run's ARN and where the manifest is.

use super::client::{Answer, CallError, Client};
use super::errors;
use super::model;
use crate::asl::effect::{Purpose, TaskCall};
use crate::asl::error::{names, Failure};
use chrono::DateTime;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub async fn serve(client: &Client, call: TaskCall, timeout: Duration) -> Result<Value, Failure> {
    let payload = call.payload;
    match (call.purpose, &*call.resource) {
        (Purpose::ItemReader, "arn:aws:states:::s3:getObject") => {
            read_object(client, &payload, timeout).await
        }
        (Purpose::ItemReader, "arn:aws:states:::s3:listObjectsV2") => {
            list_objects(client, &payload, timeout).await
        }
        (Purpose::ResultWriter, "arn:aws:states:::s3:putObject") => {
            write_results(client, &payload, timeout).await
        }
        (purpose, resource) => Err(Failure::new(
            error_of(purpose),
            format!("'{resource}' cannot serve a Map's {purpose:?}"),
        )),
    }
}

fn error_of(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::ResultWriter => names::RESULT_WRITER_FAILED,
        _ => names::ITEM_READER_FAILED,
    }
}

/// One S3 call; a failure is the reader's or writer's, with the S3 error as its cause.
async fn s3(
    client: &Client,
    action: &str,
    parameters: &Value,
    timeout: Duration,
    purpose: Purpose,
) -> Result<Value, Failure> {
    let model = model::model("s3").expect("shipped");
    let failure = |f: Failure| {
        let what = f.error.unwrap_or_default();
        let cause = f.cause.unwrap_or_default();
        Failure::new(error_of(purpose), format!("{what}: {cause}"))
    };
    match client.call("s3", action, parameters, timeout).await {
        Ok(Answer { result: Ok(v), .. }) => Ok(v),
        Ok(Answer {
            result: Err(e),
            attempts,
            ..
        }) => Err(failure(errors::sdk_failure(model, &e, attempts))),
        Err(e @ (CallError::Parameters(_) | CallError::Client { .. })) => {
            Err(failure(errors::sdk_client_failure(model, e)))
        }
    }
}

fn reader_config(payload: &Value) -> &Value {
    payload.get("ReaderConfig").unwrap_or(&Value::Null)
}

/// `MaxItems` (0 or absent: all).
fn truncate(mut items: Vec<Value>, payload: &Value) -> Vec<Value> {
    if let Some(max) = reader_config(payload)
        .get("MaxItems")
        .and_then(Value::as_u64)
    {
        if max > 0 {
            items.truncate(max as usize);
        }
    }
    items
}

fn reader_failed(cause: String) -> Failure {
    Failure::new(names::ITEM_READER_FAILED, cause)
}

async fn read_object(
    client: &Client,
    payload: &Value,
    timeout: Duration,
) -> Result<Value, Failure> {
    let parameters = payload.get("Parameters").cloned().unwrap_or(json!({}));
    let object = s3(
        client,
        "GetObject",
        &parameters,
        timeout,
        Purpose::ItemReader,
    )
    .await?;
    let body = object
        .get("Body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let config = reader_config(payload);
    let input_type = config
        .get("InputType")
        .and_then(Value::as_str)
        .unwrap_or("JSON");
    let items = match input_type {
        "JSON" => {
            let parsed: Value = crate::asl::json::from_str(body)
                .map_err(|e| reader_failed(format!("The object is not JSON: {e}")))?;
            let pointed = match config.get("ItemsPointer").and_then(Value::as_str) {
                Some(pointer) => parsed.pointer(pointer).cloned().ok_or_else(|| {
                    reader_failed(format!("ItemsPointer '{pointer}' points at nothing"))
                })?,
                None => parsed,
            };
            match pointed {
                Value::Array(items) => items,
                _ => {
                    return Err(reader_failed(
                        "The JSON object is not an array of items".into(),
                    ))
                }
            }
        }
        "JSONL" => body
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                crate::asl::json::from_str(line)
                    .map_err(|e| reader_failed(format!("Line {} is not JSON: {e}", i + 1)))
            })
            .collect::<Result<_, _>>()?,
        "CSV" => csv_items(body, config)?,
        other => {
            return Err(reader_failed(format!(
                "InputType '{other}' is not supported"
            )))
        }
    };
    Ok(Value::Array(truncate(items, payload)))
}

/// Each row an object keyed by the header (the first row, or `CSVHeaders`), values as text.
fn csv_items(body: &str, config: &Value) -> Result<Vec<Value>, Failure> {
    let delimiter = match config.get("CSVDelimiter").and_then(Value::as_str) {
        None | Some("COMMA") => b',',
        Some("PIPE") => b'|',
        Some("SEMICOLON") => b';',
        Some("SPACE") => b' ',
        Some("TAB") => b'\t',
        Some(other) => {
            return Err(reader_failed(format!(
                "CSVDelimiter '{other}' is not supported"
            )))
        }
    };
    let given = config.get("CSVHeaderLocation").and_then(Value::as_str) == Some("GIVEN");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes());
    let mut rows = reader.records();
    let headers: Vec<String> = if given {
        config
            .get("CSVHeaders")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .ok_or_else(|| reader_failed("CSVHeaderLocation GIVEN needs CSVHeaders".into()))?
    } else {
        match rows.next() {
            Some(row) => row
                .map_err(|e| reader_failed(format!("The CSV header is unreadable: {e}")))?
                .iter()
                .map(str::to_owned)
                .collect(),
            None => return Ok(Vec::new()),
        }
    };
    let mut items = Vec::new();
    for (i, row) in rows.enumerate() {
        let row =
            row.map_err(|e| reader_failed(format!("CSV row {} is unreadable: {e}", i + 1)))?;
        let mut item = Map::new();
        for (k, v) in headers.iter().zip(row.iter()) {
            item.insert(k.clone(), Value::String(v.to_owned()));
        }
        items.push(Value::Object(item));
    }
    Ok(items)
}

/// Every object under the prefix, page after page, as AWS hands them to iterations:
/// `{Etag, Key, LastModified (epoch seconds), Size, StorageClass}`.
async fn list_objects(
    client: &Client,
    payload: &Value,
    timeout: Duration,
) -> Result<Value, Failure> {
    let mut parameters = payload.get("Parameters").cloned().unwrap_or(json!({}));
    let max = reader_config(payload)
        .get("MaxItems")
        .and_then(Value::as_u64)
        .filter(|m| *m > 0);
    let mut items = Vec::new();
    loop {
        let page = s3(
            client,
            "ListObjectsV2",
            &parameters,
            timeout,
            Purpose::ItemReader,
        )
        .await?;
        for object in page
            .get("Contents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let modified = object
                .get("LastModified")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| Value::from(t.timestamp()));
            items.push(json!({
                "Etag": object.get("ETag"),
                "Key": object.get("Key"),
                "LastModified": modified,
                "Size": object.get("Size"),
                "StorageClass": object.get("StorageClass"),
            }));
        }
        if max.is_some_and(|m| items.len() as u64 >= m) {
            break;
        }
        match page.get("NextContinuationToken").and_then(Value::as_str) {
            Some(token) if page.get("IsTruncated") == Some(&Value::Bool(true)) => {
                parameters["ContinuationToken"] = Value::String(token.to_owned());
            }
            _ => break,
        }
    }
    Ok(Value::Array(truncate(items, payload)))
}

async fn write_results(
    client: &Client,
    payload: &Value,
    timeout: Duration,
) -> Result<Value, Failure> {
    let failed = |cause: String| Failure::new(names::RESULT_WRITER_FAILED, cause);
    let parameters = payload.get("Parameters").unwrap_or(&Value::Null);
    let bucket = parameters
        .get("Bucket")
        .and_then(Value::as_str)
        .ok_or_else(|| failed("The ResultWriter's Parameters need a 'Bucket'".into()))?;
    let prefix = parameters
        .get("Prefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let run_arn = payload
        .get("MapRunArn")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let run_id = run_arn.rsplit(':').next().unwrap_or_default();
    let base = match prefix.trim_end_matches('/') {
        "" => format!("{run_id}/"),
        p => format!("{p}/{run_id}/"),
    };
    let config = payload.get("WriterConfig").unwrap_or(&Value::Null);
    let results = match payload.get("Results") {
        Some(Value::Array(r)) => r.clone(),
        _ => Vec::new(),
    };
    let entries: Vec<Value> = match config.get("Transformation").and_then(Value::as_str) {
        None | Some("NONE") => results
            .iter()
            .enumerate()
            .map(|(i, output)| {
                json!({
                    "ExecutionArn": format!("{run_arn}:{i}"),
                    "Name": i.to_string(),
                    "Output": output.to_string(),
                    "OutputDetails": {"Included": true},
                    "Status": "SUCCEEDED",
                })
            })
            .collect(),
        Some("COMPACT") => results,
        Some("FLATTEN") => results
            .into_iter()
            .flat_map(|r| match r {
                Value::Array(items) => items,
                other => vec![other],
            })
            .collect(),
        Some(other) => return Err(failed(format!("Transformation '{other}' is not supported"))),
    };
    let (file, body) = match config.get("OutputType").and_then(Value::as_str) {
        None | Some("JSON") => ("SUCCEEDED_0.json", Value::Array(entries).to_string()),
        Some("JSONL") => (
            "SUCCEEDED_0.jsonl",
            entries.iter().map(|e| format!("{e}\n")).collect::<String>(),
        ),
        Some(other) => return Err(failed(format!("OutputType '{other}' is not supported"))),
    };
    let results_key = format!("{base}{file}");
    let put = |key: &str, body: String| json!({"Bucket": bucket, "Key": key, "Body": body, "ContentType": "application/json"});
    let size = body.len();
    s3(
        client,
        "PutObject",
        &put(&results_key, body),
        timeout,
        Purpose::ResultWriter,
    )
    .await?;
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": run_arn,
        "ResultFiles": {
            "FAILED": [],
            "PENDING": [],
            "SUCCEEDED": [{"Key": results_key, "Size": size}],
        },
    });
    let manifest_key = format!("{base}manifest.json");
    s3(
        client,
        "PutObject",
        &put(&manifest_key, manifest.to_string()),
        timeout,
        Purpose::ResultWriter,
    )
    .await?;
    Ok(json!({
        "MapRunArn": run_arn,
        "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_objects_become_items_by_their_header() {
        let items = csv_items("id,name\n1,\"a, b\"\n2,c\n", &Value::Null).unwrap();
        assert_eq!(
            items,
            vec![
                json!({"id": "1", "name": "a, b"}),
                json!({"id": "2", "name": "c"})
            ]
        );
        let config =
            json!({"CSVHeaderLocation": "GIVEN", "CSVHeaders": ["x", "y"], "CSVDelimiter": "PIPE"});
        let items = csv_items("1|2\n3|4\n", &config).unwrap();
        assert_eq!(
            items,
            vec![json!({"x": "1", "y": "2"}), json!({"x": "3", "y": "4"})]
        );
        assert!(csv_items("a", &json!({"CSVHeaderLocation": "GIVEN"})).is_err());
        let limited = truncate(items, &json!({"ReaderConfig": {"MaxItems": 1}}));
        assert_eq!(limited.len(), 1);
    }
}
