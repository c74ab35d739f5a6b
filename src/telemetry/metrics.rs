//! The daemon's metrics, as specified in `docs/metrics.md`.
//!
//! This is the only module that calls the `metrics` macros (`clippy.toml` bans them
//! elsewhere), so every metric name, label and bucket is written down once, here. Events
//! whose labels come from the configuration are emitted through handle structs
//! ([`StateMachineMetrics`], [`ShardMetrics`], [`SourceMetrics`]) that register their
//! counters once, when the labels are known: on the hot path an event is an add to a
//! thread's own batch ([`BatchedCounter`]), with no label formatted and no name looked up.
//! Rare events are plain functions.
//!
//! Handles bind to the recorder that is current when they are created: create them after
//! [`install_prometheus`] (or inside `metrics::with_local_recorder` in tests).

#![allow(clippy::disallowed_macros)]

use std::net::SocketAddr;
use std::time::Duration;

use crate::asl::arn::Arn;
use crate::listener::{serve, ListenerLimits};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::asl::effect::Outcome;

mod states;
use states::render_state_durations;
pub use states::{StateCounts, StateFigures, StateMetrics, STATE_DURATION_BUCKETS_MS};

/// Every metric name. `docs/metrics.md` lists each of them (a test checks it).
pub mod names {
    pub const EXECUTIONS_STARTED: &str = "expressway_executions_started_total";
    pub const EXECUTIONS_SUCCEEDED: &str = "expressway_executions_succeeded_total";
    pub const EXECUTIONS_FAILED: &str = "expressway_executions_failed_total";
    pub const EXECUTIONS_TIMED_OUT: &str = "expressway_executions_timed_out_total";
    pub const EXECUTION_DURATION: &str = "expressway_execution_duration_seconds";
    pub const STATE_TRANSITIONS: &str = "expressway_state_transitions_total";
    pub const STATE_ENTERED: &str = "expressway_state_entered_total";
    pub const STATE_EXITED: &str = "expressway_state_exited_total";
    pub const STATE_DURATION: &str = "expressway_state_duration_seconds";
    pub const EXECUTIONS_IN_FLIGHT: &str = "expressway_executions_in_flight";
    pub const TASK_INVOCATIONS: &str = "expressway_task_invocations_total";
    pub const EVENTS_CONSUMED: &str = "expressway_events_consumed_total";
    pub const PAYLOAD_REJECTS: &str = "expressway_payload_rejects_total";
    pub const RESULTS_PRODUCED: &str = "expressway_results_produced_total";
    pub const DLQ_RECORDS: &str = "expressway_dlq_records_total";
    pub const COMMITS: &str = "expressway_commits_total";
    pub const COMMIT_LATENCY: &str = "expressway_commit_latency_seconds";
    pub const CONSUMER_LAG: &str = "expressway_consumer_lag_messages";
    pub const PARTITIONS_PAUSED: &str = "expressway_partitions_paused";
    pub const PARTITIONS_ASSIGNED: &str = "expressway_partitions_assigned";
    pub const TASK_CALLS: &str = "expressway_task_calls_total";
    pub const TASK_CALL_DURATION: &str = "expressway_task_call_duration_seconds";
    pub const SQS_RECEIVES: &str = "expressway_sqs_receives_total";
    pub const SQS_DELETES: &str = "expressway_sqs_deletes_total";
    pub const SQS_VISIBILITY_EXTENSIONS: &str = "expressway_sqs_visibility_extensions_total";
    pub const SQS_RELEASES: &str = "expressway_sqs_releases_total";
    pub const SQS_SENDS: &str = "expressway_sqs_sends_total";
    pub const SQS_MESSAGES_IN_FLIGHT: &str = "expressway_sqs_messages_in_flight";

    pub const ALL: &[&str] = &[
        EXECUTIONS_STARTED,
        EXECUTIONS_SUCCEEDED,
        EXECUTIONS_FAILED,
        EXECUTIONS_TIMED_OUT,
        EXECUTION_DURATION,
        STATE_TRANSITIONS,
        STATE_ENTERED,
        STATE_EXITED,
        STATE_DURATION,
        EXECUTIONS_IN_FLIGHT,
        TASK_INVOCATIONS,
        EVENTS_CONSUMED,
        PAYLOAD_REJECTS,
        RESULTS_PRODUCED,
        DLQ_RECORDS,
        COMMITS,
        COMMIT_LATENCY,
        CONSUMER_LAG,
        PARTITIONS_PAUSED,
        PARTITIONS_ASSIGNED,
        TASK_CALLS,
        TASK_CALL_DURATION,
        SQS_RECEIVES,
        SQS_DELETES,
        SQS_VISIBILITY_EXTENSIONS,
        SQS_RELEASES,
        SQS_SENDS,
        SQS_MESSAGES_IN_FLIGHT,
    ];
}

/// Execution durations: 1 ms up to the Express cap of 5 minutes.
const EXECUTION_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Offset commits: sub-millisecond on a healthy local broker, seconds when it struggles.
const COMMIT_LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the Prometheus exporter on {listen}: {source}")]
    Exporter {
        listen: SocketAddr,
        #[source]
        source: BuildError,
    },
    #[error("cannot serve metrics on {listen}: {source}")]
    Listener {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The metrics listener's bounds: a scraper needs one connection, and one that stalls is
/// closed (it used to be served by the exporter's own listener, with neither bound).
const METRICS_LISTENER: ListenerLimits = ListenerLimits {
    max_connections: 64,
    header_read_timeout: Duration::from_secs(10),
};

/// What `/healthz` and `/readyz` answer on the metrics listener, from state the daemon's
/// parts keep (`daemon::health`): whether the check passes, and a JSON body saying why.
pub trait Probes: Send + Sync {
    /// `/healthz`: the process's threads are alive.
    fn live(&self) -> (bool, String);
    /// `/readyz`: sources connected, sinks accepting, the API listening.
    fn ready(&self) -> (bool, String);
}

/// Installs the global recorder and serves the metrics at `http://<listen>/metrics` (the
/// listener answers on any path but two: `/healthz` and `/readyz` ask `probes`) from a
/// thread of its own, bounded like every listener we own ([`crate::listener`]). Fails if the
/// address cannot be bound or a recorder is already installed.
pub fn install_prometheus(
    listen: SocketAddr,
    probes: std::sync::Arc<dyn Probes>,
) -> Result<(), TelemetryError> {
    let io_err = |source| TelemetryError::Listener { listen, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(io_err)?;
    let handle = builder()
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|source| TelemetryError::Exporter { listen, source })?;
    describe();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || runtime.block_on(serve_metrics(listener, handle, probes)))
        .map_err(io_err)?;
    Ok(())
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    probes: std::sync::Arc<dyn Probes>,
) {
    use axum::http::{header::CONTENT_TYPE, StatusCode};
    // The exporter's own listener drained histograms every 5 s; without it, we do.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    // 200 or 503, with the probe's JSON body.
    let probe = |check: fn(&dyn Probes) -> (bool, String), probes: std::sync::Arc<dyn Probes>| {
        move || {
            let (ok, body) = check(&*probes);
            let status = match ok {
                true => StatusCode::OK,
                false => StatusCode::SERVICE_UNAVAILABLE,
            };
            async move { (status, [(CONTENT_TYPE, "application/json")], body) }
        }
    };
    let app = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(probe(|p| p.live(), probes.clone())),
        )
        .route("/readyz", axum::routing::get(probe(|p| p.ready(), probes)))
        .fallback(move || {
            let mut body = handle.render();
            render_state_durations(&mut body);
            async move { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
        });
    serve(listener, app, METRICS_LISTENER, std::future::pending()).await;
}

/// The exporter's configuration: histograms rendered as Prometheus histograms with the
/// buckets above (without buckets the exporter would render summaries).
fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::EXECUTION_DURATION.to_owned()),
            EXECUTION_DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::COMMIT_LATENCY.to_owned()),
            COMMIT_LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::TASK_CALL_DURATION.to_owned()),
            COMMIT_LATENCY_BUCKETS,
        )
}

/// HELP lines for the exposition.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::EXECUTIONS_STARTED,
        Unit::Count,
        "Executions started."
    );
    describe_counter!(
        names::EXECUTIONS_SUCCEEDED,
        Unit::Count,
        "Executions that ended with ExecutionSucceeded."
    );
    describe_counter!(
        names::EXECUTIONS_FAILED,
        Unit::Count,
        "Executions that ended with ExecutionFailed."
    );
    describe_counter!(
        names::EXECUTIONS_TIMED_OUT,
        Unit::Count,
        "Executions that ended with ExecutionTimedOut."
    );
    describe_histogram!(
        names::EXECUTION_DURATION,
        Unit::Seconds,
        "Time from an execution's start to its end."
    );
    describe_counter!(
        names::STATE_ENTERED,
        Unit::Count,
        "States entered (Map iterations' and Parallel branches' states included)."
    );
    describe_counter!(
        names::STATE_EXITED,
        Unit::Count,
        "States left: to their Next or end (succeeded), through a Catcher (caught), or failed."
    );

    describe_counter!(
        names::STATE_TRANSITIONS,
        Unit::Count,
        "States entered by ended executions."
    );
    describe_gauge!(
        names::EXECUTIONS_IN_FLIGHT,
        Unit::Count,
        "Executions a shard holds that have not ended."
    );
    describe_counter!(
        names::TASK_INVOCATIONS,
        Unit::Count,
        "Task calls handed to a resource."
    );
    describe_counter!(
        names::EVENTS_CONSUMED,
        Unit::Count,
        "Records taken from the consumer."
    );
    describe_counter!(
        names::PAYLOAD_REJECTS,
        Unit::Count,
        "Records whose value could not start an execution."
    );
    describe_counter!(
        names::RESULTS_PRODUCED,
        Unit::Count,
        "Result records acknowledged by the broker."
    );
    describe_counter!(
        names::DLQ_RECORDS,
        Unit::Count,
        "Dead-letter records acknowledged by the broker."
    );
    describe_counter!(names::COMMITS, Unit::Count, "Offset commits, by result.");
    describe_histogram!(
        names::COMMIT_LATENCY,
        Unit::Seconds,
        "Time an offset commit took."
    );
    describe_counter!(
        names::TASK_CALLS,
        Unit::Count,
        "Calls an integration finished, by outcome."
    );
    describe_histogram!(
        names::TASK_CALL_DURATION,
        Unit::Seconds,
        "Time from an integration's request to its answer."
    );
    describe_gauge!(
        names::CONSUMER_LAG,
        Unit::Count,
        "High watermark minus committed offset of an assigned partition."
    );
    describe_gauge!(
        names::PARTITIONS_PAUSED,
        Unit::Count,
        "Partitions a shard has paused for backpressure."
    );
    describe_gauge!(
        names::PARTITIONS_ASSIGNED,
        Unit::Count,
        "Source partitions the consumer group has assigned to this instance."
    );
    describe_counter!(
        names::SQS_RECEIVES,
        Unit::Count,
        "ReceiveMessage calls of an SQS source, by result."
    );
    describe_counter!(
        names::SQS_DELETES,
        Unit::Count,
        "Messages of an SQS source deleted (acknowledged), by result."
    );
    describe_counter!(
        names::SQS_VISIBILITY_EXTENSIONS,
        Unit::Count,
        "Visibility timeouts of in-flight SQS messages extended (heartbeats), by result."
    );
    describe_counter!(
        names::SQS_RELEASES,
        Unit::Count,
        "SQS messages handed back to their queue undone."
    );
    describe_counter!(
        names::SQS_SENDS,
        Unit::Count,
        "Records sent to an SQS results or dead-letter queue, by result."
    );
    describe_gauge!(
        names::SQS_MESSAGES_IN_FLIGHT,
        Unit::Count,
        "Messages an SQS source has received and not yet deleted or released."
    );
}

/// Defines a closed set of label values: the enum, its `as_str` and the list of them all.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value),+
                }
            }
        }
    };
}

label_enum! {
    /// How an execution ended (label `status`).
    Status {
        Succeeded => "succeeded",
        Failed => "failed",
        TimedOut => "timed_out",
    }
}

impl From<&Outcome> for Status {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Succeeded(_) => Status::Succeeded,
            Outcome::Failed(_) => Status::Failed,
            Outcome::TimedOut(_) => Status::TimedOut,
        }
    }
}

label_enum! {
    /// Why a record went to the dead-letter topic (label `reason`).
    DlqReason {
        Failed => "failed",
        TimedOut => "timed_out",
        InvalidJson => "invalid_json",
        OversizePayload => "oversize_payload",
    }
}

label_enum! {
    /// Why a record's value could not start an execution (label `reason`).
    RejectReason {
        InvalidJson => "invalid_json",
        OversizePayload => "oversize_payload",
        Empty => "empty",
    }
}

impl From<RejectReason> for Option<DlqReason> {
    /// The DLQ reason a rejected record is written with; an empty record has none.
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::InvalidJson => Some(DlqReason::InvalidJson),
            RejectReason::OversizePayload => Some(DlqReason::OversizePayload),
            RejectReason::Empty => None,
        }
    }
}

label_enum! {
    /// How an offset commit returned (label `result`).
    CommitResult {
        Ok => "ok",
        Error => "error",
    }
}

label_enum! {
    /// The kind of service a Task calls (label `integration`), read from its `Resource`.
    Integration {
        Lambda => "lambda",
        Sqs => "sqs",
        Sns => "sns",
        DynamoDb => "dynamodb",
        EventBridge => "eventbridge",
        StepFunctions => "stepfunctions",
        Http => "http",
        AwsSdk => "aws_sdk",
        Activity => "activity",
        Other => "other",
    }
}

impl Integration {
    /// Classifies a Task's `Resource` ARN. The ARN itself never becomes a label value.
    pub fn of(resource: &str) -> Integration {
        let Some(arn) = Arn::parse(resource) else {
            return Integration::Other;
        };
        match arn.service {
            "lambda" => Integration::Lambda,
            // `arn:aws:states:::<service>:<action>` is an optimised integration;
            // `arn:aws:states:<region>:<account>:activity:<name>` an activity.
            "states" => match arn.resource_type() {
                "lambda" => Integration::Lambda,
                "sqs" => Integration::Sqs,
                "sns" => Integration::Sns,
                "dynamodb" => Integration::DynamoDb,
                "events" => Integration::EventBridge,
                "states" => Integration::StepFunctions,
                "http" => Integration::Http,
                "aws-sdk" => Integration::AwsSdk,
                "activity" => Integration::Activity,
                _ => Integration::Other,
            },
            _ => Integration::Other,
        }
    }
}

/// A counter one thread adds to on every event: the counts gather here and reach the
/// shared counter in [`flush`](Self::flush). A shared counter is an atomic in one cache
/// line; with every shard adding to it per event, two cores traded that line (and the
/// handles' reference counts) often enough to cost ~6% of the daemon's throughput
/// (`docs/performance.md`). A clone starts with nothing pending.
#[derive(Debug)]
pub struct BatchedCounter {
    shared: Counter,
    pending: u64,
}

impl BatchedCounter {
    fn new(shared: Counter) -> Self {
        BatchedCounter { shared, pending: 0 }
    }

    pub fn increment(&mut self, n: u64) {
        self.pending += n;
    }

    pub fn flush(&mut self) {
        if self.pending > 0 {
            self.shared.increment(std::mem::take(&mut self.pending));
        }
    }
}

impl Clone for BatchedCounter {
    fn clone(&self) -> Self {
        BatchedCounter::new(self.shared.clone())
    }
}

/// A histogram's samples gathered by one thread and recorded in [`flush`](Self::flush), for
/// the reason [`BatchedCounter`] gives.
#[derive(Debug)]
pub struct BatchedHistogram {
    shared: Histogram,
    pending: Vec<f64>,
}

impl BatchedHistogram {
    fn new(shared: Histogram) -> Self {
        BatchedHistogram {
            shared,
            pending: Vec::new(),
        }
    }

    pub fn record(&mut self, value: f64) {
        self.pending.push(value);
    }

    pub fn flush(&mut self) {
        for value in self.pending.drain(..) {
            self.shared.record(value);
        }
    }
}

impl Clone for BatchedHistogram {
    fn clone(&self) -> Self {
        BatchedHistogram::new(self.shared.clone())
    }
}

/// The metrics of one configured state machine (label `state_machine`), as one execution
/// driver counts them: batched, published by [`flush`](Self::flush).
#[derive(Clone, Debug)]
pub struct StateMachineMetrics {
    started: BatchedCounter,
    succeeded: BatchedCounter,
    failed: BatchedCounter,
    timed_out: BatchedCounter,
    transitions: BatchedCounter,
    /// Indexed like [`Status::ALL`].
    duration: [BatchedHistogram; 3],
    /// Per-state metrics, when asked for ([`with_states`](Self::with_states)).
    states: Option<StateMetrics>,
}

impl StateMachineMetrics {
    pub fn new(state_machine: &str) -> Self {
        let sm = || state_machine.to_owned();
        let counter = |name: &'static str| {
            BatchedCounter::new(metrics::counter!(name, "state_machine" => sm()))
        };
        let duration = |status: Status| {
            BatchedHistogram::new(metrics::histogram!(
                names::EXECUTION_DURATION,
                "state_machine" => sm(),
                "status" => status.as_str()
            ))
        };
        StateMachineMetrics {
            started: counter(names::EXECUTIONS_STARTED),
            succeeded: counter(names::EXECUTIONS_SUCCEEDED),
            failed: counter(names::EXECUTIONS_FAILED),
            timed_out: counter(names::EXECUTIONS_TIMED_OUT),
            transitions: counter(names::STATE_TRANSITIONS),
            duration: [
                duration(Status::Succeeded),
                duration(Status::Failed),
                duration(Status::TimedOut),
            ],
            states: None,
        }
    }

    /// Counts each state of `program` too (label `state`; executions then record
    /// [`StateMark`](crate::asl::effect::StateMark)s).
    pub fn with_states(mut self, state_machine: &str, program: &crate::asl::Program) -> Self {
        self.states = Some(StateMetrics::new(state_machine, program));
        self
    }

    pub fn states(&self) -> Option<&StateMetrics> {
        self.states.as_ref()
    }

    pub fn states_mut(&mut self) -> Option<&mut StateMetrics> {
        self.states.as_mut()
    }

    pub fn execution_started(&mut self) {
        self.started.increment(1);
    }

    /// An execution ended with `status` after `duration`, having entered `transitions`
    /// states.
    pub fn execution_finished(&mut self, status: Status, duration: Duration, transitions: u64) {
        let (counter, histogram) = match status {
            Status::Succeeded => (&mut self.succeeded, &mut self.duration[0]),
            Status::Failed => (&mut self.failed, &mut self.duration[1]),
            Status::TimedOut => (&mut self.timed_out, &mut self.duration[2]),
        };
        counter.increment(1);
        histogram.record(duration.as_secs_f64());
        self.transitions.increment(transitions);
    }

    /// Publishes what was counted since the last flush.
    pub fn flush(&mut self) {
        if let Some(states) = &mut self.states {
            states.figures().executions.add([
                self.started.pending,
                self.succeeded.pending,
                self.failed.pending,
                self.timed_out.pending,
            ]);
            states.flush();
        }
        for counter in [
            &mut self.started,
            &mut self.succeeded,
            &mut self.failed,
            &mut self.timed_out,
            &mut self.transitions,
        ] {
            counter.flush();
        }
        for histogram in &mut self.duration {
            histogram.flush();
        }
    }
}

/// The metrics of one worker shard (label `shard`).
#[derive(Clone, Debug)]
pub struct ShardMetrics {
    in_flight: Gauge,
    partitions_paused: Gauge,
}

impl ShardMetrics {
    pub fn new(shard: usize) -> Self {
        let shard = shard.to_string();
        ShardMetrics {
            in_flight: metrics::gauge!(names::EXECUTIONS_IN_FLIGHT, "shard" => shard.clone()),
            partitions_paused: metrics::gauge!(names::PARTITIONS_PAUSED, "shard" => shard),
        }
    }

    /// Executions this shard holds that have not ended.
    pub fn in_flight(&self, n: usize) {
        self.in_flight.set(n as f64);
    }

    /// Partitions this shard has paused for backpressure.
    pub fn partitions_paused(&self, n: usize) {
        self.partitions_paused.set(n as f64);
    }
}

/// Task calls handed to their resources, by integration (not per driver: the series count
/// stays at one per integration).
#[derive(Clone, Debug)]
pub struct TaskMetrics {
    /// Indexed like [`Integration::ALL`].
    invocations: Vec<Counter>,
}

impl TaskMetrics {
    pub fn new() -> Self {
        TaskMetrics {
            invocations: Integration::ALL
                .iter()
                .map(|i| metrics::counter!(names::TASK_INVOCATIONS, "integration" => i.as_str()))
                .collect(),
        }
    }

    /// A Task call was handed to its resource.
    pub fn invoked(&self, integration: Integration) {
        if let Some(counter) = self.invocations.get(integration as usize) {
            counter.increment(1);
        }
    }
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The metrics of one topic of one configured source (labels `source`, `topic`). Sources
/// reading several topics make one per topic; the per-source counters are then shared (the
/// recorder keys them by name and labels). Each shard counts in its own clone, batched
/// ([`BatchedCounter`]), and publishes with [`flush`](Self::flush).
#[derive(Clone, Debug)]
pub struct SourceMetrics {
    consumed: BatchedCounter,
    results: BatchedCounter,
    /// Indexed like [`DlqReason::ALL`].
    dlq: Vec<BatchedCounter>,
    /// Indexed like [`RejectReason::ALL`].
    rejects: Vec<BatchedCounter>,
}

impl SourceMetrics {
    pub fn new(source: &str, topic: &str) -> Self {
        let src = || source.to_owned();
        let by_reason = |name: &'static str, reason: &'static str| {
            BatchedCounter::new(metrics::counter!(name, "source" => src(), "reason" => reason))
        };
        SourceMetrics {
            consumed: BatchedCounter::new(metrics::counter!(
                names::EVENTS_CONSUMED,
                "source" => src(),
                "topic" => topic.to_owned()
            )),
            results: BatchedCounter::new(metrics::counter!(
                names::RESULTS_PRODUCED,
                "source" => src()
            )),
            dlq: DlqReason::ALL
                .iter()
                .map(|r| by_reason(names::DLQ_RECORDS, r.as_str()))
                .collect(),
            rejects: RejectReason::ALL
                .iter()
                .map(|r| by_reason(names::PAYLOAD_REJECTS, r.as_str()))
                .collect(),
        }
    }

    /// A record was taken from the consumer.
    pub fn event_consumed(&mut self) {
        self.consumed.increment(1);
    }

    /// The broker acknowledged a result record.
    pub fn result_produced(&mut self) {
        self.results.increment(1);
    }

    /// The broker acknowledged a dead-letter record.
    pub fn dlq_record(&mut self, reason: DlqReason) {
        if let Some(counter) = self.dlq.get_mut(reason as usize) {
            counter.increment(1);
        }
    }

    /// A record's value could not start an execution.
    pub fn payload_rejected(&mut self, reason: RejectReason) {
        if let Some(counter) = self.rejects.get_mut(reason as usize) {
            counter.increment(1);
        }
    }

    /// Publishes what was counted since the last flush.
    pub fn flush(&mut self) {
        self.consumed.flush();
        self.results.flush();
        self.dlq.iter_mut().for_each(BatchedCounter::flush);
        self.rejects.iter_mut().for_each(BatchedCounter::flush);
    }
}

/// The metrics of one SQS source (label `source`) and of its SQS sinks; every handle
/// registered once, when the source starts. `ok`/`error` are indexed like [`CommitResult`].
#[derive(Clone, Debug)]
pub struct SqsMetrics {
    receives: [Counter; 2],
    deletes: [Counter; 2],
    extensions: [Counter; 2],
    sends: [Counter; 2],
    releases: Counter,
    in_flight: Gauge,
}

impl SqsMetrics {
    pub fn new(source: &str) -> Self {
        let src = || source.to_owned();
        let pair = |name: &'static str| {
            [CommitResult::Ok, CommitResult::Error]
                .map(|r| metrics::counter!(name, "source" => src(), "result" => r.as_str()))
        };
        SqsMetrics {
            receives: pair(names::SQS_RECEIVES),
            deletes: pair(names::SQS_DELETES),
            extensions: pair(names::SQS_VISIBILITY_EXTENSIONS),
            sends: pair(names::SQS_SENDS),
            releases: metrics::counter!(names::SQS_RELEASES, "source" => src()),
            in_flight: metrics::gauge!(names::SQS_MESSAGES_IN_FLIGHT, "source" => src()),
        }
    }

    /// A ReceiveMessage call returned.
    pub fn received(&self, ok: bool) {
        self.receives[usize::from(!ok)].increment(1);
    }

    /// `n` messages were deleted (`ok`) or refused deletion.
    pub fn deleted(&self, ok: bool, n: usize) {
        self.deletes[usize::from(!ok)].increment(n as u64);
    }

    /// `n` visibility timeouts were extended (`ok`) or not.
    pub fn extended(&self, ok: bool, n: usize) {
        self.extensions[usize::from(!ok)].increment(n as u64);
    }

    /// `n` records were accepted by an SQS sink queue (`ok`) or not.
    pub fn sent(&self, ok: bool, n: usize) {
        self.sends[usize::from(!ok)].increment(n as u64);
    }

    /// `n` messages went back to their queue undone.
    pub fn released(&self, n: usize) {
        self.releases.increment(n as u64);
    }

    /// Messages received and not yet deleted or released.
    pub fn in_flight(&self, n: usize) {
        self.in_flight.set(n as f64);
    }
}

/// An offset commit returned after `latency`. Once per commit interval: labels are static.
/// One finished call of an integration (Lambda, HTTP, …): counted by outcome, timed from
/// the request to its answer (waiting for a concurrency slot included).
pub fn task_call(integration: Integration, ok: bool, latency: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(names::TASK_CALLS, "integration" => integration.as_str(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(names::TASK_CALL_DURATION, "integration" => integration.as_str())
        .record(latency.as_secs_f64());
}

pub fn commit(result: CommitResult, latency: Duration) {
    metrics::counter!(names::COMMITS, "result" => result.as_str()).increment(1);
    metrics::histogram!(names::COMMIT_LATENCY).record(latency.as_secs_f64());
}

/// How many source partitions this instance owns now (after each assignment and revoke).
pub fn partitions_assigned(count: usize) {
    metrics::gauge!(names::PARTITIONS_ASSIGNED).set(count as f64);
}

/// The lag of an assigned partition, from a consumer statistics report (seconds apart, so
/// formatting the labels here is fine). Report 0 for a revoked partition.
pub fn consumer_lag(source: &str, topic: &str, partition: i32, lag: i64) {
    let mut lags = SOURCE_LAG.lock().expect("lag lock");
    lags.insert((source.to_owned(), topic.to_owned(), partition), lag.max(0));
    drop(lags);
    metrics::gauge!(
        names::CONSUMER_LAG,
        "source" => source.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag.max(0) as f64);
}

/// The last lag reported per source partition, for the console (the gauges cannot be read).
static SOURCE_LAG: std::sync::Mutex<std::collections::BTreeMap<(String, String, i32), i64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The lag of `source` summed over its partitions, as last reported; `None` before any report.
pub fn source_lag(source: &str) -> Option<i64> {
    let lags = SOURCE_LAG.lock().expect("lag lock");
    let mut reported = lags.iter().filter(|((s, _, _), _)| s == source).peekable();
    reported.peek()?;
    Some(reported.map(|(_, lag)| *lag).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::error::Failure;
    use metrics_exporter_prometheus::PrometheusRecorder;
    use serde_json::json;

    /// Runs `emit` against a fresh recorder configured like the real one; returns the
    /// exposition text.
    fn render(emit: impl FnOnce()) -> String {
        let recorder: PrometheusRecorder = builder().expect("buckets").build_recorder();
        metrics::with_local_recorder(&recorder, || {
            describe();
            emit();
        });
        recorder.handle().render()
    }

    /// The exposition line for `series` (name and labels exactly as rendered).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn executions_are_counted_per_state_machine_and_status() {
        let text = render(|| {
            let mut orders = StateMachineMetrics::new("orders");
            let mut refunds = StateMachineMetrics::new("refunds");
            for _ in 0..3 {
                orders.execution_started();
            }
            refunds.execution_started();
            orders.execution_finished(Status::Succeeded, Duration::from_millis(3), 4);
            orders.execution_finished(Status::Succeeded, Duration::from_millis(40), 4);
            orders.execution_finished(
                Status::from(&Outcome::TimedOut(Failure::new("States.Timeout", ""))),
                Duration::from_secs(300),
                2,
            );
            refunds.execution_finished(
                Status::from(&Outcome::Succeeded(json!({}))),
                Duration::from_millis(1),
                1,
            );
            orders.flush();
            refunds.flush();
        });
        let v = |s: &str| value(&text, s);
        assert_eq!(
            v("expressway_executions_started_total{state_machine=\"orders\"}"),
            Some(3.0)
        );
        assert_eq!(
            v("expressway_executions_started_total{state_machine=\"refunds\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("expressway_executions_succeeded_total{state_machine=\"orders\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("expressway_executions_timed_out_total{state_machine=\"orders\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("expressway_executions_failed_total{state_machine=\"orders\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("expressway_state_transitions_total{state_machine=\"orders\"}"),
            Some(10.0)
        );
        // Histograms with buckets, not summaries.
        assert!(text.contains("# TYPE expressway_execution_duration_seconds histogram"));
        let bucket = |status: &str, le: &str| {
            v(&format!(
                "expressway_execution_duration_seconds_bucket{{state_machine=\"orders\",status=\"{status}\",le=\"{le}\"}}"
            ))
        };
        assert_eq!(bucket("succeeded", "0.005"), Some(1.0));
        assert_eq!(bucket("succeeded", "0.05"), Some(2.0));
        assert_eq!(bucket("timed_out", "120"), Some(0.0));
        assert_eq!(bucket("timed_out", "300"), Some(1.0));
        assert_eq!(bucket("timed_out", "+Inf"), Some(1.0));
        assert_eq!(
            v("expressway_execution_duration_seconds_count{state_machine=\"orders\",status=\"succeeded\"}"),
            Some(2.0)
        );
        assert!(text.contains("# HELP expressway_executions_started_total Executions started."));
    }

    #[test]
    fn shard_gauges_and_task_invocations() {
        let text = render(|| {
            let s0 = ShardMetrics::new(0);
            let s1 = ShardMetrics::new(1);
            s0.in_flight(5);
            s0.in_flight(3);
            s1.in_flight(7);
            s1.partitions_paused(2);
            let (t0, t1) = (TaskMetrics::new(), TaskMetrics::new());
            t0.invoked(Integration::of("arn:aws:states:::lambda:invoke"));
            t1.invoked(Integration::of(
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ));
            t1.invoked(Integration::of(
                "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            ));
        });
        let v = |s: &str| value(&text, s);
        assert_eq!(v("expressway_executions_in_flight{shard=\"0\"}"), Some(3.0));
        assert_eq!(v("expressway_executions_in_flight{shard=\"1\"}"), Some(7.0));
        assert_eq!(v("expressway_partitions_paused{shard=\"1\"}"), Some(2.0));
        assert_eq!(v("expressway_partitions_paused{shard=\"0\"}"), Some(0.0));
        assert_eq!(
            v("expressway_task_invocations_total{integration=\"lambda\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("expressway_task_invocations_total{integration=\"sqs\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("expressway_task_invocations_total{integration=\"other\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn batched_counts_are_published_by_flush_and_clones_count_apart() {
        let text = render(|| {
            let mut shard_0 = SourceMetrics::new("in", "t");
            let mut shard_1 = shard_0.clone();
            shard_0.event_consumed();
            shard_1.event_consumed();
            shard_1.event_consumed();
            shard_1.flush();
            // shard_0's count is not published yet.
        });
        let consumed = "expressway_events_consumed_total{source=\"in\",topic=\"t\"}";
        assert_eq!(value(&text, consumed), Some(2.0));
    }

    #[test]
    fn kafka_side_metrics() {
        let text = render(|| {
            let mut a = SourceMetrics::new("orders-in", "orders");
            let mut b = SourceMetrics::new("orders-in", "orders-replay");
            a.event_consumed();
            a.event_consumed();
            b.event_consumed();
            a.result_produced();
            b.result_produced();
            a.dlq_record(DlqReason::Failed);
            b.dlq_record(DlqReason::OversizePayload);
            a.payload_rejected(RejectReason::InvalidJson);
            a.flush();
            b.flush();
            commit(CommitResult::Ok, Duration::from_micros(700));
            commit(CommitResult::Ok, Duration::from_millis(3));
            commit(CommitResult::Error, Duration::from_secs(2));
            consumer_lag("orders-in", "orders", 0, 42);
            consumer_lag("orders-in", "orders", 1, 0);
            consumer_lag("orders-in", "orders", 0, 40);
        });
        let v = |s: &str| value(&text, s);
        assert_eq!(
            v("expressway_events_consumed_total{source=\"orders-in\",topic=\"orders\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("expressway_events_consumed_total{source=\"orders-in\",topic=\"orders-replay\"}"),
            Some(1.0)
        );
        // Per-source counters are shared by the two topics' handles.
        assert_eq!(
            v("expressway_results_produced_total{source=\"orders-in\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("expressway_dlq_records_total{source=\"orders-in\",reason=\"failed\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("expressway_dlq_records_total{source=\"orders-in\",reason=\"oversize_payload\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("expressway_dlq_records_total{source=\"orders-in\",reason=\"timed_out\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("expressway_payload_rejects_total{source=\"orders-in\",reason=\"invalid_json\"}"),
            Some(1.0)
        );
        assert_eq!(v("expressway_commits_total{result=\"ok\"}"), Some(2.0));
        assert_eq!(v("expressway_commits_total{result=\"error\"}"), Some(1.0));
        assert_eq!(
            v("expressway_commit_latency_seconds_bucket{le=\"0.001\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("expressway_commit_latency_seconds_bucket{le=\"2.5\"}"),
            Some(3.0)
        );
        assert_eq!(v("expressway_commit_latency_seconds_count"), Some(3.0));
        assert_eq!(
            v("expressway_consumer_lag_messages{source=\"orders-in\",topic=\"orders\",partition=\"0\"}"),
            Some(40.0)
        );
        assert_eq!(
            v("expressway_consumer_lag_messages{source=\"orders-in\",topic=\"orders\",partition=\"1\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn integrations_are_classified_from_the_resource_arn() {
        let cases = [
            ("arn:aws:states:::lambda:invoke", Integration::Lambda),
            (
                "arn:aws:states:::lambda:invoke.waitForTaskToken",
                Integration::Lambda,
            ),
            (
                "arn:aws:lambda:eu-west-1:123456789012:function:f:$LATEST",
                Integration::Lambda,
            ),
            ("arn:aws:states:::sqs:sendMessage", Integration::Sqs),
            ("arn:aws:states:::sns:publish", Integration::Sns),
            ("arn:aws:states:::dynamodb:putItem", Integration::DynamoDb),
            (
                "arn:aws:states:::events:putEvents",
                Integration::EventBridge,
            ),
            (
                "arn:aws:states:::states:startExecution.sync:2",
                Integration::StepFunctions,
            ),
            ("arn:aws:states:::http:invoke", Integration::Http),
            ("arn:aws:states:::aws-sdk:s3:getObject", Integration::AwsSdk),
            (
                "arn:aws:states:us-east-1:123456789012:activity:a",
                Integration::Activity,
            ),
            ("arn:aws-cn:states:::sqs:sendMessage", Integration::Sqs),
            ("arn:aws:states:::glue:startJobRun", Integration::Other),
            ("arn:aws:ecs:::task", Integration::Other),
            ("not an arn", Integration::Other),
            ("", Integration::Other),
        ];
        for (resource, want) in cases {
            assert_eq!(Integration::of(resource), want, "{resource}");
        }
    }

    #[test]
    fn label_values_are_the_documented_closed_sets() {
        let values = |all: &[&str]| all.join("|");
        assert_eq!(
            values(&Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            "succeeded|failed|timed_out"
        );
        assert_eq!(
            values(
                &DlqReason::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
            ),
            "failed|timed_out|invalid_json|oversize_payload"
        );
        assert_eq!(
            values(
                &RejectReason::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
            ),
            "invalid_json|oversize_payload|empty"
        );
        assert_eq!(
            values(
                &CommitResult::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
            ),
            "ok|error"
        );
        // `as usize` indexes the handle vectors: the ALL lists must be in declaration order.
        for (i, r) in Integration::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, r) in DlqReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert_eq!(
            Option::<DlqReason>::from(RejectReason::InvalidJson),
            Some(DlqReason::InvalidJson)
        );
        assert_eq!(Option::<DlqReason>::from(RejectReason::Empty), None);
    }

    #[test]
    fn the_spec_lists_every_metric_and_label_value() {
        let spec = include_str!("../../docs/metrics.md");
        for name in names::ALL {
            assert!(
                spec.contains(&format!("`{name}`")),
                "{name} missing from docs/metrics.md"
            );
        }
        let labels = Status::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(DlqReason::ALL.iter().map(|s| s.as_str()))
            .chain(RejectReason::ALL.iter().map(|s| s.as_str()))
            .chain(CommitResult::ALL.iter().map(|s| s.as_str()))
            .chain(Integration::ALL.iter().map(|s| s.as_str()));
        for value in labels {
            assert!(
                spec.contains(&format!("`{value}`")),
                "{value} missing from docs/metrics.md"
            );
        }
    }

    #[test]
    fn install_prometheus_serves_metrics_over_http() {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};

        // A port that is taken cannot be listened on: the error names the address.
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        struct Probed;
        impl Probes for Probed {
            fn live(&self) -> (bool, String) {
                (true, r#"{"status":"ok"}"#.into())
            }
            fn ready(&self) -> (bool, String) {
                (false, r#"{"status":"not ready"}"#.into())
            }
        }
        let probes = || std::sync::Arc::new(Probed);
        let err = install_prometheus(addr, probes()).expect_err("port in use");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        drop(taken);

        // The only test that installs the global recorder; the others use local ones.
        let free = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = free.local_addr().expect("addr");
        drop(free);
        install_prometheus(addr, probes()).expect("install");
        let mut metrics = StateMachineMetrics::new("http-test");
        metrics.execution_started();
        metrics.flush();

        let mut body = String::new();
        for _ in 0..50 {
            body.clear();
            let got = TcpStream::connect(addr).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(
                    b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                )?;
                s.read_to_string(&mut body)
            });
            if got.is_ok() && body.contains("200 OK") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(body.contains("200 OK"), "{body}");
        assert!(
            body.contains("expressway_executions_started_total{state_machine=\"http-test\"} 1"),
            "{body}"
        );
        // The probes answer from `Probes`; any other path is still the metrics.
        let get = |path: &str| {
            let mut body = String::new();
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            TcpStream::connect(addr)
                .and_then(|mut s| {
                    s.write_all(request.as_bytes())?;
                    s.read_to_string(&mut body)
                })
                .expect("answered");
            body
        };
        let healthz = get("/healthz");
        assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
        assert!(healthz.ends_with(r#"{"status":"ok"}"#), "{healthz}");
        let readyz = get("/readyz");
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        assert!(readyz.contains("application/json"), "{readyz}");
        let other = get("/anything");
        assert!(
            other.contains("expressway_executions_started_total"),
            "{other}"
        );
    }
}
