//! The web console (`[console]`): a page per state machine drawing its graph with live
//! per-state figures, its source lag and throughput, its recent executions, and a page per
//! kept execution drawing its path and listing its history events.
//!
//! Everything is served from the binary: one HTML page, one script and one stylesheet
//! (`assets/`), no CDN and no build step. The page polls small JSON documents under `/api/`
//! every second; they are read from what the daemon keeps anyway — the per-state figures the
//! drivers publish ([`StateFigures`]), the bounded execution history ([`HistoryStore`]) and
//! the sources' last reported lag — so an open console costs the shards nothing.

mod config;
#[cfg(test)]
mod tests;

pub use config::{read_console, ConsoleConfig, DEFAULT_LISTEN};

use crate::api::config::Secret;
use crate::listener::{serve, ListenerLimits};
use crate::telemetry::exec_log::api_history;
use crate::telemetry::history::{ExecutionTrace, HistoryStore, MachineHistory, TraceStatus};
use crate::telemetry::{source_lag, StateFigures};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("assets/console.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The cookie `/login` sets, holding the bearer token.
const COOKIE: &str = "expressway_console";

const LISTENER: ListenerLimits = ListenerLimits {
    max_connections: 64,
    header_read_timeout: Duration::from_secs(10),
};

/// A state machine as the console shows it.
pub struct MachineView {
    pub name: String,
    /// Its graph, drawn once at start ([`crate::graph::svg`]).
    pub svg: String,
    pub figures: Arc<StateFigures>,
    pub history: Option<Arc<MachineHistory>>,
    /// The sources feeding it, by name.
    pub sources: Vec<String>,
    /// Its rates over the last second, kept by the console's own ticker.
    pub rates: Rates,
}

/// Executions started and states entered per second, measured by the console once a second
/// (so that a page shows rates on its first load, whenever and however often it polls).
#[derive(Debug, Default)]
pub struct Rates(std::sync::Mutex<RateSample>);

#[derive(Debug, Default)]
pub struct RateSample {
    pub started_per_sec: Option<f64>,
    pub entered_per_sec: Vec<f64>,
    last: Option<(std::time::Instant, u64, Vec<u64>)>,
}

impl Rates {
    /// Takes a sample of `figures` now; rates are against the previous one.
    fn tick(&self, figures: &StateFigures) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = std::time::Instant::now();
        let started = figures.executions.get()[0];
        let entered: Vec<u64> = figures
            .counts
            .iter()
            .map(|c| c.entered.load(Relaxed))
            .collect();
        let mut guard = self.0.lock().expect("rates lock");
        let sample = &mut *guard;
        if let Some((at, was_started, was_entered)) = &sample.last {
            let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
            let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
            sample.started_per_sec = Some(rate(started, *was_started));
            sample.entered_per_sec = entered
                .iter()
                .zip(was_entered)
                .map(|(n, t)| rate(*n, *t))
                .collect();
        }
        sample.last = Some((now, started, entered));
    }

    /// Executions started per second, and each state's entries per second (by index).
    fn get(&self) -> (Option<f64>, Vec<f64>) {
        let sample = self.0.lock().expect("rates lock");
        (sample.started_per_sec, sample.entered_per_sec.clone())
    }
}

/// What the console reads.
pub struct Console {
    pub machines: Vec<MachineView>,
    pub history: Option<Arc<HistoryStore>>,
    pub bearer_token: Option<Secret>,
}

/// Serves the console on `listen` from a thread of its own (like `/metrics`); returns the
/// bound address.
pub fn start(listen: SocketAddr, console: Console) -> std::io::Result<SocketAddr> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(listen))?;
    let addr = listener.local_addr()?;
    let console = Arc::new(console);
    let app = router(console.clone());
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_secs(1));
                loop {
                    ticks.tick().await;
                    for m in &console.machines {
                        m.rates.tick(&m.figures);
                    }
                }
            });
            runtime.block_on(serve(listener, app, LISTENER, std::future::pending()))
        })?;
    Ok(addr)
}

pub fn router(console: Arc<Console>) -> Router {
    // Everything but the assets and the login asks for the token, when one is configured.
    let guarded = Router::new()
        .route("/", get(page))
        .route("/machines/{name}", get(page))
        .route("/executions/{arn}", get(page))
        .route("/api/machines", get(machines))
        .route("/api/machines/{name}", get(machine))
        .route("/api/machines/{name}/executions", get(executions))
        .route("/api/executions/{arn}", get(execution))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            require_token,
        ));
    Router::new()
        .route("/console.js", get(script))
        .route("/console.css", get(style))
        .route("/login", get(login))
        .merge(guarded)
        .with_state(console)
}

async fn require_token(
    State(c): State<Arc<Console>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if authorized(&c, request.headers()) {
        next.run(request).await
    } else {
        unauthorized()
    }
}

/// Whether the request carries the token (as a bearer or in the login cookie), when one is
/// configured.
fn authorized(console: &Console, headers: &HeaderMap) -> bool {
    let Some(want) = &console.bearer_token else {
        return true;
    };
    let want = want.expose().as_bytes();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='));
    bearer
        .into_iter()
        .chain(cookie)
        .any(|got| crate::api::auth::constant_time_eq(got.trim().as_bytes(), want))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "This console needs its token: open /login?token=<bearer_token from [console]>.\n",
    )
        .into_response()
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `/login?token=…`: checks the token and keeps it in a cookie for this host.
async fn login(State(c): State<Arc<Console>>, uri: Uri) -> Response {
    let token = query(&uri, "token").unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}")
            .parse()
            .unwrap_or(header::HeaderValue::from_static("")),
    );
    if !authorized(&c, &headers) {
        return unauthorized();
    }
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

fn query(uri: &Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn json_response(value: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} not found\n")).into_response()
}

/// Executions started, succeeded, failed, timed out, and those in flight.
fn execution_counts(figures: &StateFigures) -> Value {
    let [started, succeeded, failed, timed_out] = figures.executions.get();
    json!({
        "started": started,
        "succeeded": succeeded,
        "failed": failed,
        "timedOut": timed_out,
        "inFlight": started.saturating_sub(succeeded + failed + timed_out),
    })
}

fn sources_json(m: &MachineView) -> Value {
    m.sources
        .iter()
        .map(|s| json!({"name": s, "lag": source_lag(s)}))
        .collect()
}

async fn machines(State(c): State<Arc<Console>>) -> Response {
    let list: Vec<Value> = c
        .machines
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "states": m.figures.names.len(),
                "executions": execution_counts(&m.figures),
                "sources": sources_json(m),
            })
        })
        .collect();
    json_response(json!({ "machines": list, "historyKept": c.history.is_some() }))
}

async fn machine(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    let Some(m) = c.machines.iter().find(|m| m.name == name) else {
        return not_found("state machine");
    };
    let (started_per_sec, entered_per_sec) = m.rates.get();
    let states: Vec<Value> = m
        .figures
        .names
        .iter()
        .zip(&m.figures.counts)
        .enumerate()
        .map(|(i, (name, counts))| {
            use std::sync::atomic::Ordering::Relaxed;
            json!({
                "name": &**name,
                "enteredPerSec": entered_per_sec.get(i),
                "entered": counts.entered.load(Relaxed),
                "succeeded": counts.succeeded.load(Relaxed),
                "caught": counts.caught.load(Relaxed),
                "failed": counts.failed.load(Relaxed),
                "p50Ms": counts.quantile_ms(0.5),
                "p99Ms": counts.quantile_ms(0.99),
            })
        })
        .collect();
    json_response(json!({
        "name": m.name,
        "svg": m.svg,
        "states": states,
        "executions": execution_counts(&m.figures),
        "executionsPerSec": started_per_sec,
        "sources": sources_json(m),
        "historyKept": m.history.is_some(),
    }))
}

fn summary(t: &ExecutionTrace) -> Value {
    json!({
        "executionArn": t.arn,
        "name": t.name,
        "stateMachine": &*t.state_machine,
        "status": t.status.as_str(),
        "startDate": t.start_ms,
        "stopDate": t.stop_ms,
        "error": t.error,
        "cause": t.cause,
        "failedState": t.failed_state.as_deref(),
        "transitions": t.transitions,
        "sampled": t.events.is_some(),
    })
}

/// At most this many executions in one list.
const LIST_LIMIT: usize = 200;

async fn executions(State(c): State<Arc<Console>>, Path(name): Path<String>, uri: Uri) -> Response {
    let Some(m) = c.machines.iter().find(|m| m.name == name) else {
        return not_found("state machine");
    };
    let status = match query(&uri, "status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match TraceStatus::parse(&s) {
            Some(status) => Some(status),
            None => return (StatusCode::BAD_REQUEST, "unknown status\n").into_response(),
        },
    };
    let list: Vec<Value> = m
        .history
        .as_ref()
        .map(|h| h.list(status))
        .unwrap_or_default()
        .iter()
        .take(LIST_LIMIT)
        .map(|t| summary(t))
        .collect();
    json_response(json!({ "executions": list }))
}

async fn execution(State(c): State<Arc<Console>>, Path(arn): Path<String>) -> Response {
    let Some(t) = c.history.as_ref().and_then(|h| h.find(&arn)) else {
        return not_found("execution");
    };
    let include_data = c.history.as_ref().is_some_and(|h| h.config().include_data);
    let events = t
        .events
        .as_deref()
        .map(|events| api_history(&t.arn, events, include_data));
    // The states in the order they were entered, and those that failed.
    let mut path: Vec<&str> = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    for e in t.events.iter().flatten() {
        match (e.kind, e.state.as_deref()) {
            (k, Some(s)) if k.ends_with("StateEntered") => path.push(s),
            (k, Some(s)) if k.ends_with("Failed") && !k.starts_with("Execution") => failed.push(s),
            _ => {}
        }
    }
    if let Some(s) = t.failed_state.as_deref() {
        failed.push(s);
    }
    let mut body = summary(&t);
    body["input"] = t.input.clone().into();
    body["output"] = t.output.clone().into();
    body["events"] = events.into();
    body["path"] = json!(path);
    body["failedStates"] = json!(failed);
    json_response(body)
}
