//! The daemon's configuration file, read by `expressway run --config FILE` and
//! `expressway validate --config FILE`. Every key is documented in `config/README.md`.
//!
//! Each section is owned by its component, which defines its settings and reads them with
//! the crate's error-collecting reader ([`crate::config_reader`]): `[api]` in
//! [`crate::api::config`], `[integrations.*]` in [`crate::integrations::config`], `[logs]`,
//! `[daemon_log]` and `[metrics]` in [`crate::telemetry::config`], `[kafka]`, `[producer]` and a Kafka
//! source's topics in [`super::kafka::config`], an SQS source's queue in
//! [`super::sqs::config`], `[demo_producer]` and `[demo]` in [`super::demo`]. This module
//! puts them together: the top-level [`Config`], `[[state_machines]]`, `[[sources]]`,
//! `[workers]`, and the checks across sections (unique names, references, topic wiring).
//!
//! Paths in the file are relative to the file's own directory. Definition files are checked
//! to exist and be readable, but not parsed: compiling ASL is the caller's business.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::demo::{read_demo, read_demo_producer, DemoConfig, DemoProducerConfig, PrintRecords};
use super::kafka::config::{
    read_kafka, read_producer, read_source_topics, read_topic, KafkaConfig, ProducerConfig,
};
use super::sqs::config::{read_sqs_source, SqsSourceConfig};
use crate::api::config::{read_api, ApiSettings};
use crate::asl::effect::WorkflowType;
use crate::config_reader::{check_url, read_document, ConfigError, ConfigErrors, Errors, Section};
use crate::console::{read_console, ConsoleConfig};
use crate::integrations::config::{read_integrations, IntegrationsConfig};
use crate::telemetry::config::{
    read_daemon_log, read_logs, read_metrics, LogsConfig, MetricsConfig,
};
use crate::telemetry::history::{read_history, HistoryConfig};
use crate::telemetry::oplog::DaemonLogConfig;

/// A whole, valid configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub kafka: KafkaConfig,
    /// At least one; names are unique.
    pub state_machines: Vec<StateMachineConfig>,
    /// At least one; names are unique and each names an entry of `state_machines`.
    pub sources: Vec<SourceConfig>,
    pub workers: WorkersConfig,
    pub producer: ProducerConfig,
    pub logs: LogsConfig,
    /// `[daemon_log]`: the daemon's own operational log (stderr).
    pub daemon_log: DaemonLogConfig,
    pub metrics: MetricsConfig,
    /// `[history]`: the executions kept in memory for `GetExecutionHistory` and the console.
    pub history: HistoryConfig,
    /// `[console]`: the web console; `None` unless configured.
    pub console: Option<ConsoleConfig>,
    /// `Some` only when `[demo_producer]` says `enabled = true`.
    pub demo_producer: Option<DemoProducerConfig>,
    /// `[demo]`: what the daemon shows of its own output.
    pub demo: DemoConfig,
    /// `[integrations]`: the services Task states call.
    pub integrations: IntegrationsConfig,
    /// `[api]`: the AWS Step Functions-compatible HTTP API; `None` when the section is absent.
    /// With it, `[kafka]`, `[[sources]]` and `[[state_machines]]` become optional.
    pub api: Option<ApiSettings>,
}

impl Config {
    /// The state machine called `name` (every source's `state_machine` is one).
    pub fn state_machine(&self, name: &str) -> Option<&StateMachineConfig> {
        self.state_machines.iter().find(|sm| sm.name == name)
    }

    /// Whether anything needs Kafka: a Kafka source, a topic sink or the demo producer.
    /// Without, `[kafka]` may be left out and no Kafka client is made.
    pub fn uses_kafka(&self) -> bool {
        uses_kafka(&self.sources, self.demo_producer.as_ref())
    }
}

fn uses_kafka<'s>(
    sources: impl IntoIterator<Item = &'s SourceConfig>,
    demo: Option<&DemoProducerConfig>,
) -> bool {
    demo.is_some()
        || sources.into_iter().any(|s| {
            s.kind == SourceKind::Kafka
                || s.results_topic.is_some()
                || s.dead_letter_topic.is_some()
        })
}

/// One `[[state_machines]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachineConfig {
    pub name: String,
    /// Resolved against the config file's directory; known to exist and be readable.
    pub definition: PathBuf,
    pub workflow_type: WorkflowType,
}

/// What a source reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Kafka,
    Sqs,
}

/// One `[[sources]]` entry: where events come from, what runs them, where results go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// Non-empty, no duplicates, and no topic is consumed by two sources.
    pub topics: Vec<String>,
    /// The name of a [`StateMachineConfig`].
    pub state_machine: String,
    /// `None`: results are not published.
    pub results_topic: Option<String>,
    /// `None`: failed executions are not published (they are still logged and counted).
    pub dead_letter_topic: Option<String>,
    /// SQS sinks (SendMessageBatch), in place of (never beside) the topics above.
    pub results_queue_url: Option<String>,
    pub dead_letter_queue_url: Option<String>,
    /// `Some` exactly when `kind` is [`SourceKind::Sqs`].
    pub sqs: Option<SqsSourceConfig>,
    /// Always [`Delivery::AtLeastOnce`] for an SQS source.
    pub delivery: Delivery,
}

/// `delivery` of a source: what a crash or a rebalance may do to its output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Every event's record is written at least once; after a crash or a rebalance, some
    /// twice (`docs/kafka-ack-contract.md`).
    #[default]
    AtLeastOnce,
    /// Each event's record and its offset are committed in one Kafka transaction: a
    /// `read_committed` reader of the output sees every record exactly once.
    ExactlyOnce,
}

/// `[workers]`: the execution shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkersConfig {
    /// 0 means one per CPU core; see [`WorkersConfig::shard_count`].
    pub shards: usize,
    /// At least 1. When a shard holds this many executions its partitions are paused.
    pub max_in_flight_per_shard: usize,
    /// At least 1 MiB. When a shard's executions hold this many bytes (inputs, states'
    /// data, Map and Parallel results) its sources pause, as for `max_in_flight_per_shard`.
    pub max_held_bytes_per_shard: usize,
    pub shutdown_grace_secs: u64,
    /// At least 1.
    pub commit_interval_ms: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            max_in_flight_per_shard: 10_000,
            max_held_bytes_per_shard: crate::engine::DEFAULT_BYTE_BUDGET,
            shutdown_grace_secs: 30,
            commit_interval_ms: 1_000,
        }
    }
}

impl WorkersConfig {
    /// The number of shards to start: `shards`, or one per CPU core when it is 0.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }
}

/// Reads the file at `path` and everything it refers to; relative paths in it are taken
/// from the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![ConfigError::Unreadable {
            file: path.to_path_buf(),
            reason: err.to_string(),
        }])
    })?;
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    parse(&text, base_dir)
}

/// Parses and validates a configuration whose relative paths are relative to `base_dir`.
/// Beyond the text it only looks at the file system: definition files must be readable
/// and a log file's directory must exist.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    read_document(text, |doc| read_config(doc, base_dir)).map_err(|ConfigErrors(mut errors)| {
        // Cross-checks run last; sorting (stably) puts each entry's errors together, in the
        // order of the schema.
        errors.sort_by_key(|err| err.key_path().map(schema_order));
        ConfigErrors(errors)
    })
}

/// The top-level keys in the order the README documents them.
const TOP_LEVEL_KEYS: [&str; 14] = [
    "kafka",
    "state_machines",
    "sources",
    "workers",
    "producer",
    "logs",
    "daemon_log",
    "metrics",
    "demo_producer",
    "demo",
    "integrations",
    "api",
    "history",
    "console",
];

/// Sort key of an error's path: its top-level key's place in the schema (unknown keys
/// last), then its entry index for `[[list]]` paths such as `sources[2].name`.
fn schema_order(path: &str) -> (usize, usize) {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    let rank = TOP_LEVEL_KEYS
        .iter()
        .position(|&key| key == &path[..end])
        .unwrap_or(TOP_LEVEL_KEYS.len());
    let index = path[end..]
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    (rank, index)
}

// Cross-checks skip empty names (a reader's placeholder for a missing one) so that a missing
// name is reported once, not again as a bad reference.

fn read_config(mut doc: Section<'_>, base_dir: &Path) -> Config {
    // `[api]` makes the Kafka side optional (an API-only daemon).
    let api = doc.section("api").map(read_api);
    let api_only = api.is_some() && !doc.has("sources");
    let state_machines: Vec<Entry<_>> = doc
        .required_sections_unless("state_machines", api.is_some())
        .into_iter()
        .map(|section| {
            (
                section.path().to_string(),
                read_state_machine(section, base_dir),
            )
        })
        .collect();
    let sources: Vec<Entry<_>> = doc
        .required_sections_unless("sources", api.is_some())
        .into_iter()
        .map(|section| (section.path().to_string(), read_source(section)))
        .collect();
    let workers = doc.section("workers").map(read_workers).unwrap_or_default();
    let producer = doc
        .section("producer")
        .map(read_producer)
        .unwrap_or_default();
    let logs = doc
        .section("logs")
        .map(|section| read_logs(section, base_dir))
        .unwrap_or_default();
    let daemon_log = doc
        .section("daemon_log")
        .map(read_daemon_log)
        .unwrap_or_default();
    let metrics = doc.section("metrics").map(read_metrics).unwrap_or_default();
    let history = doc.section("history").map(read_history).unwrap_or_default();
    let console = doc.section("console").map(read_console);
    if console.is_some() && !metrics.per_state {
        doc.error(
            "console",
            "needs the per-state figures: remove `per_state = false` from [metrics]",
        );
    }
    let demo_producer = doc.section("demo_producer").and_then(read_demo_producer);
    let demo = doc.section("demo").map(read_demo).unwrap_or_default();
    // Sources that need no Kafka (SQS in and out) make `[kafka]` optional too.
    let no_kafka =
        !sources.is_empty() && !uses_kafka(sources.iter().map(|(_, s)| s), demo_producer.as_ref());
    let kafka = match doc.required_section_unless("kafka", api_only || no_kafka) {
        Some(section) => read_kafka(section),
        None => KafkaConfig::unused(),
    };
    let integrations = doc
        .section("integrations")
        .map(read_integrations)
        .unwrap_or_default();

    let names = state_machines
        .iter()
        .map(|(path, sm)| (path.as_str(), sm.name.as_str()));
    check_unique_names(names, doc.errors());
    let names = sources
        .iter()
        .map(|(path, s)| (path.as_str(), s.name.as_str()));
    check_unique_names(names, doc.errors());
    check_references(&state_machines, &sources, doc.errors());
    check_topics(&sources, demo_producer.as_ref(), doc.errors());
    check_printed_records(&sources, &demo, doc.errors());
    if integrations.allow_callbacks && api.is_none() {
        doc.errors().add(
            "integrations.allow_callbacks",
            "task tokens and activities are answered through the API: add an [api] section",
        );
    }
    doc.finish();

    Config {
        kafka,
        state_machines: state_machines.into_iter().map(|(_, sm)| sm).collect(),
        sources: sources.into_iter().map(|(_, source)| source).collect(),
        workers,
        producer,
        logs,
        daemon_log,
        metrics,
        history,
        console,
        demo_producer,
        demo,
        integrations,
        api,
    }
}

fn read_state_machine(mut section: Section<'_>, base_dir: &Path) -> StateMachineConfig {
    let name = section.required_string("name");
    if let Some(name) = name {
        check_name(&section, "name", name);
    }
    let definition = match section.required_string("definition") {
        Some("") => {
            section.error("definition", "must not be empty");
            PathBuf::new()
        }
        Some(relative) => {
            let path = base_dir.join(relative);
            if let Err(problem) = check_readable(&path) {
                section.error("definition", problem);
            }
            path
        }
        None => PathBuf::new(),
    };
    let workflow_type = section.one_of(
        "workflow_type",
        WorkflowType::Express,
        &[
            ("EXPRESS", WorkflowType::Express),
            ("STANDARD", WorkflowType::Standard),
        ],
    );
    section.finish();
    StateMachineConfig {
        name: name.unwrap_or_default().to_string(),
        definition,
        workflow_type,
    }
}

fn check_readable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    match fs::metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(format!("{shown} does not exist")),
        Err(err) => Err(format!("cannot read {shown}: {err}")),
        Ok(meta) if meta.is_dir() => Err(format!("{shown} is a directory, not a file")),
        Ok(_) => fs::File::open(path)
            .map(drop)
            .map_err(|err| format!("cannot read {shown}: {err}")),
    }
}

fn read_source(mut section: Section<'_>) -> SourceConfig {
    let name = section.required_string("name");
    if let Some(name) = name {
        check_name(&section, "name", name);
    }
    let kind = match section.required_string("type") {
        Some("kafka") | None => SourceKind::Kafka,
        Some("sqs") => SourceKind::Sqs,
        Some(other) => {
            section.error(
                "type",
                format!("unknown source type {other:?}; expected \"kafka\" or \"sqs\""),
            );
            SourceKind::Kafka
        }
    };
    let topics = match kind {
        SourceKind::Sqs => Vec::new(),
        SourceKind::Kafka => read_source_topics(&mut section),
    };
    let state_machine = section.required_string("state_machine").unwrap_or_default();
    let results_topic = read_topic(&mut section, "results_topic");
    let dead_letter_topic = read_topic(&mut section, "dead_letter_topic");
    let mut optional_url = |key: &'static str| {
        let url = section.string(key)?;
        check_url(&section, key, url);
        Some(url.to_string())
    };
    let results_queue_url = optional_url("results_queue_url");
    let dead_letter_queue_url = optional_url("dead_letter_queue_url");
    for (topic, queue, key) in [
        (&results_topic, &results_queue_url, "results_queue_url"),
        (
            &dead_letter_topic,
            &dead_letter_queue_url,
            "dead_letter_queue_url",
        ),
    ] {
        if topic.is_some() && queue.is_some() {
            let topic_key = key.replace("_queue_url", "_topic");
            section.error(key, format!("set either {topic_key} or {key}, not both"));
        }
    }
    let dead_letter_sink = dead_letter_topic.is_some() || dead_letter_queue_url.is_some();
    let sqs = (kind == SourceKind::Sqs).then(|| read_sqs_source(&mut section, dead_letter_sink));
    let delivery = section.one_of(
        "delivery",
        Delivery::AtLeastOnce,
        &[
            ("at_least_once", Delivery::AtLeastOnce),
            ("exactly_once", Delivery::ExactlyOnce),
        ],
    );
    if delivery == Delivery::ExactlyOnce {
        // Only what a Kafka transaction covers: input offsets and output records.
        if kind == SourceKind::Sqs {
            section.error(
                "delivery",
                "\"exactly_once\" needs a Kafka source: an SQS message is deleted on its own, outside any transaction",
            );
        }
        for key in ["results_queue_url", "dead_letter_queue_url"] {
            if section.has(key) {
                section.error(
                    key,
                    "cannot be used with delivery = \"exactly_once\": an SQS send is outside the Kafka transaction; use a topic",
                );
            }
        }
    }
    section.finish();
    SourceConfig {
        name: name.unwrap_or_default().to_string(),
        kind,
        topics,
        state_machine: state_machine.to_string(),
        results_topic,
        dead_letter_topic,
        results_queue_url,
        dead_letter_queue_url,
        sqs,
        delivery,
    }
}

/// Names of state machines and sources: `[A-Za-z0-9-_]{1,80}`, as AWS allows for names in
/// ARNs, and safe as metric label values.
fn check_name(section: &Section<'_>, key: &str, name: &str) {
    let valid = (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        section.error(
            key,
            format!("{name:?} is not a valid name: use 1 to 80 of A-Z a-z 0-9 - _"),
        );
    }
}

fn read_workers(mut section: Section<'_>) -> WorkersConfig {
    let defaults = WorkersConfig::default();
    let workers = WorkersConfig {
        shards: section.uint("shards", defaults.shards, 0, 1024),
        max_in_flight_per_shard: section.uint(
            "max_in_flight_per_shard",
            defaults.max_in_flight_per_shard,
            1,
            usize::MAX,
        ),
        max_held_bytes_per_shard: section.uint(
            "max_held_bytes_per_shard",
            defaults.max_held_bytes_per_shard,
            1 << 20,
            usize::MAX,
        ),
        shutdown_grace_secs: section.uint(
            "shutdown_grace_secs",
            defaults.shutdown_grace_secs,
            0,
            u64::MAX,
        ),
        commit_interval_ms: section.uint(
            "commit_interval_ms",
            defaults.commit_interval_ms,
            1,
            u64::MAX,
        ),
    };
    section.finish();
    workers
}

/// A `[[list]]` entry with its key path (`sources[2]`), for cross-checks that point at it.
/// The path is kept rather than recomputed from the position because elements that are not
/// tables are left out.
type Entry<T> = (String, T);

/// Reports each name used twice; `names` yields `(entry path, name)`.
fn check_unique_names<'n>(names: impl Iterator<Item = (&'n str, &'n str)>, errors: &Errors) {
    let mut first_use: HashMap<&str, &str> = HashMap::new();
    for (path, name) in names.filter(|(_, name)| !name.is_empty()) {
        match first_use.get(name) {
            Some(first) => errors.add(
                format!("{path}.name"),
                format!("{name:?} is already the name of {first}"),
            ),
            None => {
                first_use.insert(name, path);
            }
        }
    }
}

fn check_references(
    state_machines: &[Entry<StateMachineConfig>],
    sources: &[Entry<SourceConfig>],
    errors: &Errors,
) {
    let mut known: Vec<&str> = state_machines
        .iter()
        .map(|(_, sm)| sm.name.as_str())
        .filter(|name| !name.is_empty())
        .collect();
    known.sort_unstable();
    known.dedup();
    let known_list = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    for (path, source) in sources {
        let name = source.state_machine.as_str();
        if !name.is_empty() && !known.contains(&name) {
            errors.add(
                format!("{path}.state_machine"),
                format!("no [[state_machines]] entry is named {name:?} (known: {known_list})"),
            );
        }
    }
}

/// Topic wiring: a topic has one consuming source (two would split its partitions between
/// them in the one consumer group), nothing publishes into a consumed topic (a loop), and
/// the demo producer feeds a consumed topic.
fn check_topics(
    sources: &[Entry<SourceConfig>],
    demo: Option<&DemoProducerConfig>,
    errors: &Errors,
) {
    let mut consumer: HashMap<&str, &str> = HashMap::new();
    for (path, source) in sources {
        for (j, topic) in source.topics.iter().enumerate() {
            match consumer.get(topic.as_str()) {
                Some(&other) if other != path => errors.add(
                    format!("{path}.topics[{j}]"),
                    format!("{topic:?} is already consumed by {other}"),
                ),
                _ => {
                    consumer.insert(topic, path);
                }
            }
        }
    }
    for (path, source) in sources {
        let outputs = [
            ("results_topic", &source.results_topic),
            ("dead_letter_topic", &source.dead_letter_topic),
        ];
        for (key, topic) in outputs {
            let Some(topic) = topic else { continue };
            if let Some(reader) = consumer.get(topic.as_str()) {
                errors.add(
                    format!("{path}.{key}"),
                    format!("{topic:?} is consumed by {reader}: its events would loop"),
                );
            }
        }
    }
    if let Some(demo) = demo {
        if !consumer.contains_key(demo.topic.as_str()) {
            let message = format!("no source consumes {:?}", demo.topic);
            errors.add("demo_producer.topic", message);
        }
    }
}

/// `[demo] print_records` reads the results and dead-letter topics: some source must
/// write to one.
fn check_printed_records(sources: &[Entry<SourceConfig>], demo: &DemoConfig, errors: &Errors) {
    let written = sources
        .iter()
        .any(|(_, s)| s.results_topic.is_some() || s.dead_letter_topic.is_some());
    if demo.print_records != PrintRecords::Off && !written {
        errors.add(
            "demo.print_records",
            "no source writes to a results_topic or dead_letter_topic: there is nothing to print",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::kafka::config::Brokers;
    use crate::telemetry::config::LogDestination;
    use crate::telemetry::exec_log::LogLevel;

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    /// The smallest valid configuration, with `extra` appended.
    fn minimal(extra: &str) -> String {
        format!(
            r#"
[kafka]
brokers = "embedded"

[[state_machines]]
name = "iot-enrich"
definition = "state-machines/iot-enrich.asl.json"

[[sources]]
name = "sensors"
type = "kafka"
topics = ["sensor-events"]
state_machine = "iot-enrich"
{extra}"#
        )
    }

    fn errors_of(text: &str) -> Vec<ConfigError> {
        match parse(text, &config_dir()) {
            Ok(config) => panic!("expected errors, got {config:#?}"),
            Err(ConfigErrors(errors)) => errors,
        }
    }

    /// `(key path, message)` of each error, for comparing with what a test expects.
    fn key_errors(text: &str) -> Vec<(String, String)> {
        errors_of(text)
            .into_iter()
            .map(|err| match err {
                ConfigError::Key { path, message } => (path, message),
                other => panic!("expected key errors only, got {other}"),
            })
            .collect()
    }

    /// Asserts the errors are exactly `expected`, each given as `(path, part of message)`.
    fn assert_errors(text: &str, expected: &[(&str, &str)]) {
        let found = key_errors(text);
        for (path, part) in expected {
            assert!(
                found.iter().any(|(p, m)| p == path && m.contains(part)),
                "no error at {path} containing {part:?}; found:\n{found:#?}"
            );
        }
        assert_eq!(
            found.len(),
            expected.len(),
            "unexpected extra errors:\n{found:#?}"
        );
    }

    #[test]
    fn demo_toml_loads() {
        let config = load(&config_dir().join("demo.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.kafka.brokers, Brokers::Embedded);
        assert_eq!(config.kafka.group_id, "expressway");
        let sm = config.state_machine("iot-enrich").expect("iot-enrich");
        assert_eq!(
            sm.definition,
            config_dir().join("state-machines/iot-enrich.asl.json")
        );
        assert_eq!(sm.workflow_type, WorkflowType::Express);
        assert_eq!(
            config.sources,
            vec![SourceConfig {
                name: "sensors".into(),
                kind: SourceKind::Kafka,
                topics: vec!["sensor-events".into()],
                state_machine: "iot-enrich".into(),
                results_topic: Some("sensor-results".into()),
                dead_letter_topic: Some("sensor-dlq".into()),
                results_queue_url: None,
                dead_letter_queue_url: None,
                sqs: None,
                delivery: Delivery::AtLeastOnce,
            }]
        );
        assert_eq!(
            config.demo_producer,
            Some(DemoProducerConfig {
                topic: "sensor-events".into(),
                events_per_sec: 200,
            })
        );
        assert_eq!(config.logs.level, LogLevel::Error);
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(config.demo.print_records, PrintRecords::Sample);
    }

    #[test]
    fn printing_records_needs_a_topic_written_to() {
        assert_errors(
            &minimal("[demo]\nprint_records = \"sample\"\n"),
            &[("demo.print_records", "there is nothing to print")],
        );
        assert_errors(
            &minimal("[demo]\nprint_records = \"some\"\n"),
            &[(
                "demo.print_records",
                r#""some" is not one of "off", "sample", "all""#,
            )],
        );
        let text = minimal("results_topic = \"out\"\n[demo]\nprint_records = \"all\"\n");
        let config = parse(&text, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.demo.print_records, PrintRecords::All);
        let config = parse(&minimal(""), &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.demo.print_records, PrintRecords::Off);
    }

    #[test]
    fn readme_example_is_valid_and_shows_every_documented_key() {
        let readme = fs::read_to_string(config_dir().join("README.md")).expect("README.md");
        let example = readme
            .rsplit("```toml")
            .next()
            .and_then(|rest| rest.split("```").next())
            .expect("a toml example");
        parse(example, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        // Table rows start with the key: "| `linger_ms` | integer | ...".
        let documented = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
            .filter(|key| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect::<Vec<_>>();
        // A floor, not a count: a key added to a component and its table needs no change here.
        assert!(documented.len() >= 55, "{documented:?}");
        for key in documented {
            assert!(
                example.contains(&format!("\n{key} = ")),
                "example lacks {key}"
            );
        }
    }

    #[test]
    fn sqs_sources_need_no_kafka_and_are_checked() {
        let config = load(&config_dir().join("sqs.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.uses_kafka());
        let sqs = config.sources[0].sqs.as_ref().expect("an sqs source");
        assert_eq!(
            (
                sqs.visibility_timeout_secs,
                sqs.wait_time_secs,
                sqs.receivers
            ),
            (30, 20, 4)
        );
        assert!(!sqs.release_failures);
        let source = |extra: &str| {
            format!(
                "[[state_machines]]\nname = \"sm\"\ndefinition = \"state-machines/iot-enrich.asl.json\"\n\
                 [[sources]]\nname = \"q\"\ntype = \"sqs\"\nstate_machine = \"sm\"\n{extra}"
            )
        };
        assert_errors(
            &source("on_failure = \"release\"\ndead_letter_queue_url = \"http://h/1/d\"\nresults_topic = \"r\"\nresults_queue_url = \"q\"\ntopics = [\"t\"]\n"),
            &[
                ("sources[0].queue_url", "missing"),
                ("sources[0].results_queue_url", "set either results_topic or results_queue_url"),
                ("sources[0].results_queue_url", "is not an http:// or https:// URL"),
                ("sources[0].on_failure", "a dead-letter sink would stay unused"),
                ("sources[0].topics", "unknown key"),
                // A topic sink needs Kafka.
                ("kafka", "missing"),
            ],
        );
    }

    #[test]
    fn local_kafka_toml_loads() {
        let config = load(&config_dir().join("local-kafka.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.kafka.brokers,
            Brokers::Servers(vec!["127.0.0.1:9092".into()])
        );
        assert_eq!(config.demo_producer, None);
        assert_eq!(config.sources[0].topics, ["sensor-events"]);
        assert!(config.state_machine("iot-enrich").is_some());
    }

    #[test]
    fn defaults_apply_when_sections_are_absent() {
        let config = parse(&minimal(""), &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.kafka.group_id, "expressway");
        assert!(config.kafka.properties.is_empty());
        assert_eq!(
            config.workers,
            WorkersConfig {
                shards: 0,
                max_in_flight_per_shard: 10_000,
                max_held_bytes_per_shard: 1 << 30,
                shutdown_grace_secs: 30,
                commit_interval_ms: 1_000,
            }
        );
        assert!(config.workers.shard_count() >= 1);
        assert_eq!(config.workers.shutdown_grace(), Duration::from_secs(30));
        assert_eq!(
            config.producer,
            ProducerConfig {
                linger_ms: 5,
                batch_num_messages: 10_000,
            }
        );
        assert_eq!(config.logs, LogsConfig::default());
        assert_eq!(config.logs.level, LogLevel::Error);
        assert_eq!(config.logs.destination, LogDestination::Stdout);
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(config.demo_producer, None);
        assert_eq!(config.sources[0].results_topic, None);
        assert_eq!(config.sources[0].dead_letter_topic, None);
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let text = r#"
color = "blue"

[kafka]
brokers = 9092
group_id = ""
linger_ms = 5

[[state_machines]]
name = "iot-enrich"
definition = "state-machines/iot-enrich.asl.json"
workflow_type = "express"

[[state_machines]]
name = "iot-enrich"
definition = "state-machines/missing.asl.json"

[[state_machines]]
name = "has spaces"

[[sources]]
name = "sensors"
type = "kafka"
topics = []
state_machine = "iot-enrich"
results_topc = "sensor-results"

[[sources]]
name = "sensors"
type = "rabbitmq"
topics = ["a", 7]
state_machine = "nope"

[[sources]]
type = "kafka"
topics = "sensor-events"

[workers]
shards = -1
max_in_flight_per_shard = 0
commit_interval_ms = "1s"

[producer]
linger_ms = 1.5
batch_num_messages = 2000000

[logs]
level = "DEBUG"
include_execution_data = "yes"
destination = "no-such-dir/expressway.log"

[metrics]
listen = "localhost:9464"
enabled = true

[demo_producer]
enabled = true
events_per_sec = 0
"#;
        assert_errors(
            text,
            &[
                (
                    "kafka.brokers",
                    "expected a string, found an integer (9092)",
                ),
                ("kafka.group_id", "must not be empty"),
                ("kafka.linger_ms", "unknown key"),
                (
                    "state_machines[0].workflow_type",
                    r#""express" is not one of "EXPRESS", "STANDARD""#,
                ),
                (
                    "state_machines[1].definition",
                    "missing.asl.json does not exist",
                ),
                (
                    "state_machines[1].name",
                    r#""iot-enrich" is already the name of state_machines[0]"#,
                ),
                ("state_machines[2].name", "not a valid name"),
                ("state_machines[2].definition", "missing (required"),
                ("sources[0].topics", "must name at least one topic"),
                (
                    "sources[0].results_topc",
                    "unknown key (did you mean \"results_topic\"?)",
                ),
                ("sources[1].type", "unknown source type \"rabbitmq\""),
                (
                    "sources[1].topics[1]",
                    "expected a string, found an integer (7)",
                ),
                (
                    "sources[1].state_machine",
                    r#"no [[state_machines]] entry is named "nope""#,
                ),
                (
                    "sources[1].name",
                    r#""sensors" is already the name of sources[0]"#,
                ),
                ("sources[2].name", "missing (required"),
                (
                    "sources[2].topics",
                    "expected an array of strings, found a string",
                ),
                ("sources[2].state_machine", "missing (required"),
                ("workers.shards", "must be at least 0, got -1"),
                (
                    "workers.max_in_flight_per_shard",
                    "must be at least 1, got 0",
                ),
                (
                    "workers.commit_interval_ms",
                    "expected an integer, found a string",
                ),
                (
                    "producer.linger_ms",
                    "expected an integer, found a float (1.5)",
                ),
                (
                    "producer.batch_num_messages",
                    "must be at most 1000000, got 2000000",
                ),
                (
                    "logs.level",
                    r#""DEBUG" is not one of "ALL", "ERROR", "FATAL", "OFF""#,
                ),
                ("logs.include_execution_data", "expected true or false"),
                ("logs.destination", "does not exist"),
                ("metrics.listen", "is not an IP:port"),
                ("metrics.enabled", "unknown key"),
                (
                    "demo_producer.topic",
                    "missing (required when enabled = true)",
                ),
                ("demo_producer.events_per_sec", "must be at least 1, got 0"),
                ("color", "unknown key"),
            ],
        );
        // Cross-check errors sit with their entry's other errors, in schema order.
        let paths: Vec<String> = key_errors(text).into_iter().map(|(path, _)| path).collect();
        let at = |path: &str| paths.iter().position(|p| p == path).unwrap();
        assert!(at("state_machines[1].name") < at("state_machines[2].name"));
        assert!(at("sources[1].name") < at("sources[2].name"));
        assert!(at("sources[2].state_machine") < at("workers.shards"));
        assert_eq!(paths.last().map(String::as_str), Some("color"));
    }

    #[test]
    fn cross_checks_point_at_the_right_entry() {
        // The first element is not a table and is left out; paths must not shift.
        let text = r#"
sources = [1, { name = "a", type = "kafka", topics = ["t"], state_machine = "x" }]
[kafka]
brokers = "embedded"
[[state_machines]]
name = "iot-enrich"
definition = "state-machines/iot-enrich.asl.json"
"#;
        assert_errors(
            text,
            &[
                ("sources[0]", "expected a table, found an integer (1)"),
                ("sources[1].state_machine", "(known: iot-enrich)"),
            ],
        );
    }

    #[test]
    fn errors_display_one_per_line_with_key_paths() {
        let errors = parse(
            "[kafka]\nbrokers = \"embedded\"\nextra = 1\n",
            &config_dir(),
        )
        .expect_err("missing sections");
        assert_eq!(
            errors.to_string(),
            "kafka.extra: unknown key (known here: brokers, group_id, static_membership, instance_id, transaction_interval_ms, properties)\n\
             state_machines: missing (required: at least one [[state_machines]] table)\n\
             sources: missing (required: at least one [[sources]] table)"
        );
    }

    #[test]
    fn missing_kafka_section_and_empty_lists_are_errors() {
        assert_errors(
            "state_machines = []\nsources = []\n",
            &[
                ("kafka", "missing (required: a [kafka] table)"),
                ("state_machines", "must not be empty"),
                ("sources", "must not be empty"),
            ],
        );
        assert_errors(
            "kafka = 1\nstate_machines = [1]\n[sources]\n",
            &[
                ("kafka", "expected a table, found an integer (1)"),
                (
                    "state_machines[0]",
                    "expected a table, found an integer (1)",
                ),
                (
                    "sources",
                    "expected at least one [[sources]] table, found a table",
                ),
            ],
        );
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let errors = errors_of("[kafka]\nbrokers = \"embedded\"\ngroup_id = oops\n");
        match errors.as_slice() {
            [ConfigError::Syntax {
                line: 3, column, ..
            }] => assert!(*column >= 1),
            other => panic!("expected one syntax error on line 3, got {other:?}"),
        }
    }

    #[test]
    fn unreadable_config_file_is_reported() {
        let missing = config_dir().join("no-such-config.toml");
        let errors = load(&missing).expect_err("file is missing");
        assert!(matches!(
            errors.0.as_slice(),
            [ConfigError::Unreadable { file, .. }] if *file == missing
        ));
    }

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let base = config_dir().join("state-machines");
        let text = minimal("").replace("state-machines/", "");
        let config = parse(&text, &base).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.state_machines[0].definition,
            base.join("iot-enrich.asl.json")
        );
        // The definition is a directory here, not a file.
        let errors = key_errors(&minimal("").replace("state-machines/iot-enrich.asl.json", "."));
        assert!(errors[0].1.contains("is a directory"), "{errors:?}");

        let logs = "[logs]\ndestination = \"expressway.log\"";
        let config = parse(&minimal(logs), &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.logs.destination,
            LogDestination::File(config_dir().join("expressway.log"))
        );
    }

    #[test]
    fn topic_wiring_is_checked() {
        let extra = r#"
[[sources]]
name = "echo"
type = "kafka"
topics = ["sensor-events", "bad topic!"]
state_machine = "iot-enrich"
results_topic = "sensor-events"
dead_letter_topic = "ok-dlq"

[demo_producer]
enabled = true
topic = "nobody-reads-this"
"#;
        assert_errors(
            &minimal(extra),
            &[
                ("sources[1].topics[0]", "already consumed by sources[0]"),
                ("sources[1].topics[1]", "not a valid Kafka topic name"),
                ("sources[1].results_topic", "its events would loop"),
                (
                    "demo_producer.topic",
                    "no source consumes \"nobody-reads-this\"",
                ),
            ],
        );
    }

    #[test]
    fn optional_settings_read_as_documented() {
        let extra = r#"
[logs]
level = "ALL"
include_execution_data = true
destination = "stderr"

[metrics]
listen = ""

[demo_producer]
enabled = false
events_per_sec = 0
"#;
        let text = minimal(extra).replace(
            "definition = \"state-machines/iot-enrich.asl.json\"",
            "definition = \"state-machines/iot-enrich.asl.json\"\nworkflow_type = \"STANDARD\"",
        );
        // A disabled demo producer is still checked.
        assert_errors(
            &text,
            &[("demo_producer.events_per_sec", "must be at least 1")],
        );
        let text = text.replace("events_per_sec = 0", "");
        let config = parse(&text, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.state_machines[0].workflow_type,
            WorkflowType::Standard
        );
        assert_eq!(config.logs.level, LogLevel::All);
        assert!(config.logs.include_execution_data);
        assert_eq!(config.logs.destination, LogDestination::Stderr);
        assert_eq!(config.metrics.listen, None);
        assert_eq!(config.demo_producer, None);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let demo = fs::read_to_string(config_dir().join("demo.toml")).expect("demo.toml");
        let mut inputs: Vec<String> = [
            "",
            "=",
            "[[kafka]]",
            "kafka = []",
            "[kafka]\nbrokers = \"\"",
            "[kafka]\nbrokers = \",\"",
            "[kafka.properties]\na.b = 1\n\"a.b\" = \"x\"\n[kafka.properties.a]\nc = [1]",
            "sources = [[], {}, \"x\", 1.0, 1979-05-27T07:32:00Z]",
            "[[state_machines]]\nname = \"\"\ndefinition = \"\"",
            "[[sources]]\ntopics = [\"\", \".\", \"..\"]\nresults_topic = \"\"",
            "[workers]\nshards = 9223372036854775807\ncommit_interval_ms = -9223372036854775808",
            "[metrics]\nlisten = \"[::1]:9464\"",
            "[logs]\ndestination = \"\"",
            "\u{feff}[kafka]\nbrokers = \"é:1\"",
            "a = \"\\u00e9\u{1F600}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every prefix of the demo config, cut at character boundaries.
        inputs.extend(demo.char_indices().map(|(i, _)| demo[..i].to_string()));
        for input in &inputs {
            let _ = parse(input, &config_dir());
            let _ = parse(input, Path::new(""));
        }
    }

    // ---- [api] ---------------------------------------------------------------------------

    #[test]
    fn api_section_makes_kafka_optional() {
        let text = r#"
[api]
listen = "127.0.0.1:9000"
"#;
        let config = parse(text, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        let api = config.api.expect("api");
        assert_eq!(api.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            (api.region.as_str(), api.account.as_str()),
            ("us-east-1", "123456789012")
        );
        assert_eq!(api.recent_executions, 1000);
        assert!(config.sources.is_empty() && config.state_machines.is_empty());
        let with_machine = r#"
[api]
[[state_machines]]
name = "iot-enrich"
definition = "state-machines/iot-enrich.asl.json"
"#;
        let config = parse(with_machine, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.state_machines.len(), 1);
        assert_eq!(config.api, Some(crate::api::ApiSettings::default()));
        // Sources still need Kafka.
        let text = format!(
            "[api]\n{}",
            minimal("").replace("[kafka]\nbrokers = \"embedded\"\n", "")
        );
        assert_errors(&text, &[("kafka", "missing (required: a [kafka] table)")]);
        // Without [api], everything stays required.
        assert_errors(
            "",
            &[
                ("kafka", "missing (required: a [kafka] table)"),
                (
                    "state_machines",
                    "missing (required: at least one [[state_machines]] table)",
                ),
                (
                    "sources",
                    "missing (required: at least one [[sources]] table)",
                ),
            ],
        );
    }
}
