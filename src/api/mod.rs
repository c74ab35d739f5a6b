//! The AWS Step Functions-compatible HTTP API: the JSON 1.0 protocol that aws-cli, boto3
//! and the AWS SDKs speak (`POST /`, `X-Amz-Target: AWSStepFunctions.<Op>`), served with
//! axum on a tokio runtime of its own.
//!
//! - `config.rs` — the `[api]` section of the daemon's config.
//! - `auth.rs` — who may call: bearer tokens and verified SigV4 signatures.
//! - `protocol.rs` — wire format: bodies, AWS-shaped errors, timestamps, paging.
//! - `registry.rs` — the state machines (from the config, or created through the API).
//! - `host.rs` — the executions host: a worker thread running API-started executions.
//! - `nested.rs` — `states:startExecution(.sync:2)` as a `TaskResource`.
//! - `test_state.rs` — `TestState`: one state run alone.
//!
//! Start it with [`spawn`] (its own runtime and thread) or build the [`Router`] with
//! [`router`] and serve it yourself.

pub mod auth;
pub mod config;
pub mod host;
pub mod nested;
pub mod protocol;
pub mod registry;
pub mod test_state;

pub use config::ApiSettings;

use crate::asl::arn::Arn;
use crate::asl::diagnostic::codes;
use crate::asl::effect::{ExecutionOptions, WorkflowType};
use crate::asl::error::Failure;
use crate::asl::vm::HistoryEvent;
use crate::callbacks::{CallbackError, Callbacks, WaitForTaskToken};
use crate::engine::wall_millis;
use crate::integrations::Served;
use crate::listener::{serve, ListenerLimits};
use crate::resource::TaskResource;
use crate::telemetry::exec_log::{api_history, ExecutionLogger};
use crate::telemetry::history::{ExecutionTrace, HistoryStore, TraceStatus};
use crate::telemetry::Observers;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use host::{ExecutionRecord, Host, HostHandle, HostLimits, StartRequest, Status};
use protocol::{ok, timestamp, valid_name, ApiError, Body};
use registry::Registry;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// A state machine to serve from the start (the daemon's configured ones).
pub struct Seed {
    pub name: String,
    /// The definition's text.
    pub definition: String,
    pub workflow_type: WorkflowType,
}

/// Everything the handlers share.
pub struct ApiState {
    pub settings: ApiSettings,
    pub registry: Arc<Registry>,
    pub host: HostHandle,
    pub callbacks: Arc<Callbacks>,
    /// The resources Task states call (nested executions included); TestState uses them.
    pub resources: Arc<dyn TaskResource>,
    /// The kept executions (`[history]`): `GetExecutionHistory` reads them.
    pub history: Option<Arc<HistoryStore>>,
}

/// Builds the registry (every seed must compile) and starts the executions host, whose
/// Task calls go to callbacks, nested executions, then `resources`. The daemon's shards use
/// the same stack ([`ApiState::resources`]).
pub fn build(
    settings: ApiSettings,
    seeds: Vec<Seed>,
    resources: Arc<dyn TaskResource>,
    callbacks: Arc<Callbacks>,
    served: Served,
    logger: Option<ExecutionLogger>,
    observers: Observers,
) -> anyhow::Result<Arc<ApiState>> {
    let registry = Arc::new(
        Registry::new(&settings.region, &settings.account, served)
            .with_max_state_machines(settings.security.max_state_machines),
    );
    let now = wall_millis();
    for seed in seeds {
        registry
            .create(&seed.name, &seed.definition, seed.workflow_type, None, now)
            .map_err(|e| anyhow::anyhow!("state machine {}: {}", seed.name, e.message))?;
    }
    let host = Host::new(
        settings.recent_executions,
        HostLimits {
            max_running: settings.security.max_running_executions,
            max_held_bytes: settings.security.max_held_bytes,
        },
    );
    // Outermost the callbacks wrapper (it parks `.waitForTaskToken` Tasks and runs
    // activities), then nested executions, then the integrations.
    let resources: Arc<dyn TaskResource> = Arc::new(WaitForTaskToken::new(
        nested::NestedExecutions {
            host: host.handle(),
            registry: registry.clone(),
            inner: resources,
        },
        callbacks.clone(),
    ));
    let history = observers.history.clone();
    let handle = host.spawn(resources.clone(), logger, observers)?;
    Ok(Arc::new(ApiState {
        settings,
        registry,
        host: handle,
        callbacks,
        resources,
        history,
    }))
}

/// The API's routes: `POST /` for every operation.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(state)
}

/// A running API server; dropping it does not stop it, [`ApiServer::shutdown`] does.
pub struct ApiServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    host: HostHandle,
}

impl ApiServer {
    /// Stops accepting requests, lets those in progress finish, stops the host.
    pub fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.host.shutdown();
    }
}

/// Binds `state.settings.listen` (errors surface here) and serves the API on a tokio
/// runtime of its own, on a thread of its own: HTTP/1 connections, at most
/// `max_connections` at once (more wait in the listen backlog), each closed when it has not
/// sent a whole request head within `header_read_timeout_secs` (idle keep-alive ones too).
pub fn spawn(state: Arc<ApiState>) -> anyhow::Result<ApiServer> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("api")
        .enable_all()
        .build()?;
    let listen = state.settings.listen;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|e| anyhow::anyhow!("api: cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let host = state.host.clone();
    let limits = ListenerLimits {
        max_connections: state.settings.security.max_connections,
        header_read_timeout: state.settings.security.header_read_timeout,
    };
    let app = router(state);
    let thread = std::thread::Builder::new()
        .name("api-server".into())
        .spawn(move || {
            runtime.block_on(serve(listener, app, limits, async move {
                let _ = rx.await;
            }));
        })?;
    Ok(ApiServer {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
        host,
    })
}

async fn handle(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let security = &state.settings.security;
    let limit = security.max_request_bytes;
    // The body within the header-read timeout again: a slow body holds a slot like a slow head.
    let read = tokio::time::timeout(
        security.header_read_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await;
    let result = match read {
        Ok(Ok(body)) => {
            let request = auth::Request {
                method: &method,
                uri: &uri,
                headers: &headers,
                body: &body,
            };
            dispatch(&state, &request).await
        }
        Ok(Err(_)) => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..ApiError::new(
                "ValidationException",
                format!(
                    "Request body too large: the limit is {limit} bytes (api.max_request_bytes)"
                ),
            )
        }),
        Err(_) => Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            ..ApiError::new(
                "RequestTimeoutException",
                "The request body did not arrive in time (api.header_read_timeout_secs)",
            )
        }),
    };
    let mut response = match result {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    };
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn dispatch(state: &ApiState, request: &auth::Request<'_>) -> Result<Value, ApiError> {
    let security = &state.settings.security;
    if security.authenticates() {
        auth::check(
            security,
            &state.settings.region,
            request,
            std::time::SystemTime::now(),
        )?;
    }
    let (headers, body) = (request.headers, request.body);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(op) = target.strip_prefix(protocol::TARGET_PREFIX) else {
        return Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation: X-Amz-Target {target:?} (expected AWSStepFunctions.<Operation>)"),
        ));
    };
    let body = Body::parse(body)?;
    match op {
        "StartSyncExecution" => start_execution(state, &body, true).await,
        "StartExecution" => start_execution(state, &body, false).await,
        "DescribeExecution" => describe_execution(state, &body),
        "GetExecutionHistory" => get_execution_history(state, &body),
        "DescribeStateMachineForExecution" => describe_state_machine_for_execution(state, &body),
        "StopExecution" => stop_execution(state, &body).await,
        "ListExecutions" => list_executions(state, &body),
        "ListStateMachines" => list_state_machines(state, &body),
        "DescribeStateMachine" => describe_state_machine(state, &body),
        "CreateStateMachine" => create_state_machine(state, &body),
        "UpdateStateMachine" => update_state_machine(state, &body),
        "DeleteStateMachine" => {
            state.registry.delete(body.str("stateMachineArn")?)?;
            Ok(json!({}))
        }
        "ValidateStateMachineDefinition" => validate_definition(state, &body),
        "TestState" => test_state::test_state(state, &body).await,
        "SendTaskSuccess" => {
            let token = body.str("taskToken")?;
            let output: Value = crate::asl::json::from_str(body.str("output")?)
                .map_err(|e| ApiError::new("InvalidOutput", format!("Invalid output: {e}")))?;
            state.callbacks.send_success(token, output).map_err(cb)?;
            Ok(json!({}))
        }
        "SendTaskFailure" => {
            let token = body.str("taskToken")?;
            let error = body.opt_str("error")?.map(str::to_string);
            let cause = body.opt_str("cause")?.map(str::to_string);
            state
                .callbacks
                .send_failure(token, error, cause)
                .map_err(cb)?;
            Ok(json!({}))
        }
        "SendTaskHeartbeat" => {
            state
                .callbacks
                .send_heartbeat(body.str("taskToken")?)
                .map_err(cb)?;
            Ok(json!({}))
        }
        "CreateActivity" => {
            let name = body.str("name")?;
            if !valid_name(name) {
                return Err(ApiError::new(
                    "InvalidName",
                    format!("Invalid Name: '{name}'"),
                ));
            }
            let a = state.callbacks.create_activity(name);
            Ok(json!({"activityArn": a.arn, "creationDate": timestamp(a.created_ms)}))
        }
        "DescribeActivity" => {
            let a = state
                .callbacks
                .describe_activity(body.str("activityArn")?)
                .map_err(cb)?;
            Ok(
                json!({"activityArn": a.arn, "name": a.name, "creationDate": timestamp(a.created_ms)}),
            )
        }
        "ListActivities" => {
            let all: Vec<Value> = state
                .callbacks
                .list_activities()
                .into_iter()
                .map(|a| json!({"activityArn": a.arn, "name": a.name, "creationDate": timestamp(a.created_ms)}))
                .collect();
            let (items, next) =
                protocol::page(all, body.opt_u64("maxResults")?, body.opt_str("nextToken")?)?;
            Ok(with_next(json!({ "activities": items }), next))
        }
        "DeleteActivity" => {
            state
                .callbacks
                .delete_activity(body.str("activityArn")?)
                .map_err(cb)?;
            Ok(json!({}))
        }
        "GetActivityTask" => {
            let arn = body.str("activityArn")?;
            let worker = body.opt_str("workerName")?;
            // AWS holds the poll for up to 60 seconds, then answers with no task.
            let task = state
                .callbacks
                .get_activity_task(arn, worker, std::time::Duration::from_secs(60))
                .await
                .map_err(cb)?;
            Ok(match task {
                Some(t) => json!({"taskToken": t.task_token, "input": t.input}),
                None => json!({}),
            })
        }
        _ => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation: {op}"),
        )),
    }
}

fn cb(e: CallbackError) -> ApiError {
    ApiError::new(e.aws_code(), e.message().to_string())
}

fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    v
}

/// `StartExecution` (answers at once) and `StartSyncExecution` (answers at the end).
async fn start_execution(state: &ApiState, body: &Body, sync: bool) -> Result<Value, ApiError> {
    let sm = state.registry.resolve(body.str("stateMachineArn")?)?;
    let input_text = body.opt_str("input")?.unwrap_or("{}");
    let input: Value = crate::asl::json::from_str(input_text).map_err(|e| {
        ApiError::new(
            "InvalidExecutionInput",
            format!("Invalid execution input: {e}"),
        )
    })?;
    let name = match body.opt_str("name")? {
        Some(n) if !valid_name(n) => {
            return Err(ApiError::new("InvalidName", format!("Invalid Name: '{n}'")))
        }
        Some(n) => n.to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let reserved_bytes = input_text.len();
    state
        .host
        .admit(reserved_bytes)
        .map_err(|why| ApiError::new("ThrottlingException", why))?;
    let arn = nested::execution_arn(&state.registry, &sm.name, &name);
    let start_ms = wall_millis();
    let (tx, rx) = tokio::sync::oneshot::channel::<ExecutionRecord>();
    let on_finish: Option<host::OnFinish> = sync.then(|| {
        Box::new(move |r: &ExecutionRecord| {
            let _ = tx.send(r.clone());
        }) as host::OnFinish
    });
    state.host.start(StartRequest {
        program: sm.program.clone(),
        input,
        opts: ExecutionOptions {
            name: Arc::from(name.as_str()),
            state_machine_name: Arc::from(sm.name.as_str()),
            region: Arc::from(state.settings.region.as_str()),
            account: Arc::from(state.settings.account.as_str()),
            role_arn: Arc::from(sm.role_arn.as_str()),
            ..ExecutionOptions::default()
        },
        arn: arn.clone(),
        state_machine_arn: sm.arn.clone(),
        start_ms,
        on_finish,
        reserved_bytes,
    });
    if !sync {
        return Ok(json!({"executionArn": arn, "startDate": timestamp(start_ms)}));
    }
    let record = rx
        .await
        .map_err(|_| ApiError::new("ServiceUnavailable", "the executions host stopped"))?;
    let mut v = record_json(
        &record,
        body.opt_str("includedData")? != Some("METADATA_ONLY"),
    );
    let stop = record.stop_ms.unwrap_or(start_ms);
    v["billingDetails"] = json!({
        "billedMemoryUsedInMB": 64,
        // Express bills in 1 ms increments with a 100 ms minimum.
        "billedDurationInMilliseconds": (stop - start_ms).max(100),
    });
    Ok(v)
}

/// An execution as `DescribeExecution` / `StartSyncExecution` show it.
fn record_json(r: &ExecutionRecord, include_data: bool) -> Value {
    let mut m = Map::new();
    m.insert("executionArn".into(), json!(r.arn));
    m.insert("stateMachineArn".into(), json!(r.state_machine_arn));
    m.insert("name".into(), json!(r.name));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert("startDate".into(), timestamp(r.start_ms));
    if let Some(stop) = r.stop_ms {
        m.insert("stopDate".into(), timestamp(stop));
    }
    // An execution a source started and the history kept without its data has no input.
    let include_input = include_data && !r.input.is_empty();
    if include_input {
        m.insert("input".into(), json!(r.input));
    }
    m.insert("inputDetails".into(), json!({"included": include_input}));
    if let Some(out) = &r.output {
        if include_data {
            m.insert("output".into(), json!(out));
        }
        m.insert("outputDetails".into(), json!({"included": include_data}));
    }
    if let Some(e) = &r.error {
        m.insert("error".into(), json!(e));
    }
    if let Some(c) = &r.cause {
        m.insert("cause".into(), json!(c));
    }
    Value::Object(m)
}

/// An execution the history keeps (`[history]`): one a source started, or a sampled one of
/// the API's.
fn kept(state: &ApiState, arn: &str) -> Option<Arc<ExecutionTrace>> {
    state.history.as_ref()?.find(arn)
}

/// A kept execution as the host would describe it.
fn kept_record(state: &ApiState, t: &ExecutionTrace) -> ExecutionRecord {
    ExecutionRecord {
        arn: t.arn.clone(),
        state_machine_arn: state.registry.arn_of(&t.state_machine),
        name: t.name.clone(),
        status: match t.status {
            TraceStatus::Running => Status::Running,
            TraceStatus::Succeeded => Status::Succeeded,
            TraceStatus::Failed => Status::Failed,
            TraceStatus::TimedOut => Status::TimedOut,
            TraceStatus::Aborted => Status::Aborted,
        },
        start_ms: t.start_ms,
        stop_ms: t.stop_ms,
        input: t.input.clone().unwrap_or_default(),
        output: t.output.clone(),
        error: t.error.clone(),
        cause: t.cause.clone(),
    }
}

/// `GetExecutionHistory` of a kept execution (Express executions have none on AWS; here the
/// history keeps a sample of them and every failure, see `[history]`). An execution kept
/// without its events (a failure that was not sampled) shows its start and its end.
fn get_execution_history(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let arn = body.str("executionArn")?;
    check_execution_arn(arn)?;
    let include_data = body.opt_bool("includeExecutionData")?.unwrap_or(true);
    let reverse = body.opt_bool("reverseOrder")?.unwrap_or(false);
    let t = kept(state, arn).ok_or_else(|| not_found(arn))?;
    let outline;
    let events = match &t.events {
        Some(events) => events.as_slice(),
        None => {
            outline = start_and_end(&t);
            outline.as_slice()
        }
    };
    let mut events = api_history(&t.arn, events, include_data);
    if reverse {
        events.reverse();
    }
    let (events, next) = protocol::page(
        events,
        body.opt_u64("maxResults")?,
        body.opt_str("nextToken")?,
    )?;
    Ok(with_next(json!({ "events": events }), next))
}

/// The first and last events of an execution kept without its history.
fn start_and_end(t: &ExecutionTrace) -> Vec<HistoryEvent> {
    // The end follows the start: AWS links the event after `ExecutionStarted` to 0.
    let event = |id, kind, timestamp, details| HistoryEvent {
        id,
        previous: 0,
        kind,
        timestamp,
        state: None,
        details,
    };
    let mut started = json!({});
    if let Some(input) = &t.input {
        started["input"] = json!(input);
    }
    let mut events = vec![event(1, "ExecutionStarted", t.start_ms, started)];
    let end = t.stop_ms.unwrap_or(t.start_ms);
    let failure = json!({ "error": t.error, "cause": t.cause });
    match t.status {
        TraceStatus::Running => {}
        TraceStatus::Succeeded => {
            let output = t
                .output
                .as_ref()
                .map_or(json!({}), |o| json!({ "output": o }));
            events.push(event(2, "ExecutionSucceeded", end, output));
        }
        TraceStatus::Failed => events.push(event(2, "ExecutionFailed", end, failure)),
        TraceStatus::TimedOut => events.push(event(2, "ExecutionTimedOut", end, failure)),
        TraceStatus::Aborted => events.push(event(2, "ExecutionAborted", end, failure)),
    }
    events
}

/// `DescribeStateMachineForExecution`: the state machine an execution ran, as it is now
/// (definitions are not versioned here).
fn describe_state_machine_for_execution(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let arn = body.str("executionArn")?;
    check_execution_arn(arn)?;
    if state.host.describe(arn).is_none() && kept(state, arn).is_none() {
        return Err(not_found(arn));
    }
    let name = arn.split(':').nth(6).unwrap_or_default();
    let sm = state.registry.resolve(name).map_err(|_| not_found(arn))?;
    Ok(json!({
        "stateMachineArn": sm.arn,
        "name": sm.name,
        "definition": sm.definition,
        "roleArn": sm.role_arn,
        "updateDate": timestamp(sm.created_ms),
        "loggingConfiguration": {"level": "OFF", "includeExecutionData": false},
        "tracingConfiguration": {"enabled": false},
        "revisionId": sm.revision.to_string(),
    }))
}

fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        "ExecutionDoesNotExist",
        format!("Execution Does Not Exist: '{arn}'"),
    )
}

/// `arn:PARTITION:states:REGION:ACCOUNT:execution:STATE_MACHINE:NAME` (or `express:…`), or
/// `InvalidArn`.
fn check_execution_arn(arn: &str) -> Result<(), ApiError> {
    match Arn::parse(arn) {
        Some(a) if a.service == "states" && a.resource.split(':').count() >= 3 => Ok(()),
        _ => Err(ApiError::new("InvalidArn", format!("Invalid Arn: '{arn}'"))),
    }
}

fn describe_execution(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let arn = body.str("executionArn")?;
    check_execution_arn(arn)?;
    let mut r = state
        .host
        .describe(arn)
        .or_else(|| Some(kept_record(state, &*kept(state, arn)?)))
        .ok_or_else(|| not_found(arn))?;
    if r.status == Status::TimedOut {
        // AWS's DescribeExecution of a timed-out execution has no error or cause (its
        // `ExecutionTimedOut` history event carries them).
        r.error = None;
        r.cause = None;
    }
    Ok(record_json(
        &r,
        body.opt_str("includedData")? != Some("METADATA_ONLY"),
    ))
}

async fn stop_execution(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let arn = body.str("executionArn")?;
    check_execution_arn(arn)?;
    let failure = Failure {
        error: body.opt_str("error")?.map(str::to_string),
        cause: body.opt_str("cause")?.map(str::to_string),
    };
    match state.host.stop(arn, failure).await {
        Some(stop) => Ok(json!({ "stopDate": timestamp(stop) })),
        None => match state.host.describe(arn) {
            // Already ended: AWS answers with its stop date.
            Some(ExecutionRecord {
                stop_ms: Some(stop),
                ..
            }) => Ok(json!({ "stopDate": timestamp(stop) })),
            _ => Err(not_found(arn)),
        },
    }
}

/// botocore's `ExecutionStatus` enum.
const EXECUTION_STATUSES: &[&str] = &[
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "ABORTED",
    "PENDING_REDRIVE",
];

/// A definition within `max_definition_bytes`, or the `ValidationException` AWS answers for
/// its `Definition` shape's `max: 1048576`.
pub fn check_definition_size(state: &ApiState, definition: &str) -> Result<(), ApiError> {
    let max = state.settings.security.max_definition_bytes;
    if definition.len() > max {
        return Err(ApiError::new(
            "ValidationException",
            format!("1 validation error detected: Value at 'definition' failed to satisfy constraint: Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn list_executions(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let sm_arn = match body.opt_str("stateMachineArn")? {
        Some(arn) => Some(state.registry.resolve(arn)?.arn.clone()),
        None => None,
    };
    let status = body.opt_str("statusFilter")?;
    if let Some(s) = status {
        if !EXECUTION_STATUSES.contains(&s) {
            return Err(ApiError::new(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{s}' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    EXECUTION_STATUSES.join(", ")
                ),
            ));
        }
    }
    let records = state.host.list(|r| {
        sm_arn.as_ref().is_none_or(|a| *a == r.state_machine_arn)
            && status.is_none_or(|s| s == r.status.as_str())
    });
    let (items, next) = protocol::page(
        records,
        body.opt_u64("maxResults")?,
        body.opt_str("nextToken")?,
    )?;
    let items: Vec<Value> = items
        .iter()
        .map(|r| {
            let mut v = json!({
                "executionArn": r.arn,
                "stateMachineArn": r.state_machine_arn,
                "name": r.name,
                "status": r.status.as_str(),
                "startDate": timestamp(r.start_ms),
            });
            if let Some(stop) = r.stop_ms {
                v["stopDate"] = timestamp(stop);
            }
            v
        })
        .collect();
    Ok(with_next(json!({ "executions": items }), next))
}

fn type_name(t: WorkflowType) -> &'static str {
    match t {
        WorkflowType::Express => "EXPRESS",
        WorkflowType::Standard => "STANDARD",
    }
}

fn list_state_machines(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let all: Vec<Value> = state
        .registry
        .list()
        .iter()
        .map(|sm| {
            json!({
                "stateMachineArn": sm.arn,
                "name": sm.name,
                "type": type_name(sm.workflow_type),
                "creationDate": timestamp(sm.created_ms),
            })
        })
        .collect();
    let (items, next) =
        protocol::page(all, body.opt_u64("maxResults")?, body.opt_str("nextToken")?)?;
    Ok(with_next(json!({ "stateMachines": items }), next))
}

fn describe_state_machine(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let sm = state.registry.resolve(body.str("stateMachineArn")?)?;
    Ok(json!({
        "stateMachineArn": sm.arn,
        "name": sm.name,
        "status": "ACTIVE",
        "definition": sm.definition,
        "roleArn": sm.role_arn,
        "type": type_name(sm.workflow_type),
        "creationDate": timestamp(sm.created_ms),
        "loggingConfiguration": {"level": "OFF", "includeExecutionData": false},
        "tracingConfiguration": {"enabled": false},
        "revisionId": sm.revision.to_string(),
    }))
}

fn workflow_type(body: &Body) -> Result<WorkflowType, ApiError> {
    match body.opt_str("type")? {
        None | Some("EXPRESS") => Ok(WorkflowType::Express),
        Some("STANDARD") => Ok(WorkflowType::Standard),
        Some(other) => Err(ApiError::new(
            "ValidationException",
            format!("1 validation error detected: Value '{other}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"),
        )),
    }
}

fn create_state_machine(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let name = body.str("name")?;
    let definition = body.str("definition")?;
    // Required by botocore's model (CreateStateMachineInput: name, definition, roleArn).
    let role = Some(body.str("roleArn")?);
    check_definition_size(state, definition)?;
    let sm = state
        .registry
        .create(name, definition, workflow_type(body)?, role, wall_millis())?;
    Ok(json!({"stateMachineArn": sm.arn, "creationDate": timestamp(sm.created_ms)}))
}

fn update_state_machine(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let arn = body.str("stateMachineArn")?;
    let definition = body.opt_str("definition")?;
    let role = body.opt_str("roleArn")?;
    if let Some(d) = definition {
        check_definition_size(state, d)?;
    }
    if definition.is_none() && role.is_none() {
        return Err(ApiError::new(
            "MissingRequiredParameter",
            "Either the definition or the roleArn must be specified",
        ));
    }
    let sm = state.registry.update(arn, definition, role)?;
    Ok(json!({"updateDate": timestamp(wall_millis()), "revisionId": sm.revision.to_string()}))
}

/// `ValidateStateMachineDefinition`: every diagnostic, `UNSUPPORTED` ones as warnings
/// (valid ASL this engine does not run yet).
fn validate_definition(state: &ApiState, body: &Body) -> Result<Value, ApiError> {
    let definition = body.str("definition")?;
    check_definition_size(state, definition)?;
    let with_warnings = match body.opt_str("severity")? {
        None | Some("ERROR") => false,
        Some("WARNING") => true,
        Some(other) => {
            return Err(ApiError::new(
                "ValidationException",
                format!("Invalid severity: {other}"),
            ))
        }
    };
    let max = body
        .opt_u64("maxResults")?
        .filter(|&n| n > 0)
        .unwrap_or(100) as usize;
    let diags = registry::compile_text(definition).err().unwrap_or_default();
    let failed = diags.iter().any(|d| d.code != codes::UNSUPPORTED);
    let shown: Vec<Value> = diags
        .iter()
        .filter(|d| with_warnings || d.code != codes::UNSUPPORTED)
        .map(|d| {
            json!({
                "severity": if d.code == codes::UNSUPPORTED { "WARNING" } else { "ERROR" },
                "code": d.code,
                "message": d.message,
                "location": if d.pointer.is_empty() { "/".to_string() } else { d.pointer.clone() },
            })
        })
        .collect();
    let truncated = shown.len() > max;
    Ok(json!({
        "result": if failed { "FAIL" } else { "OK" },
        "diagnostics": shown.into_iter().take(max).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

#[cfg(test)]
mod tests;
