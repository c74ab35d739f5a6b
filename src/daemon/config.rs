//! The daemon's configuration file, read by `expressway run --config FILE` and
//! `expressway validate --config FILE`. Every key is documented in `config/README.md`.
//!
//! Reading never stops at the first problem. The text is parsed into a [`toml::Table`] and
//! walked section by section with small typed readers ([`Section`]) that record each error
//! under its key path (`sources[0].topics`) and carry on, so one `validate` run shows
//! everything that is wrong, semantic mistakes included. Serde's derive would stop at the
//! first error, hence the hand-written walk. Each reader also remembers which keys it asked
//! for, so that unknown keys are reported at every level.
//!
//! Paths in the file are relative to the file's own directory. Definition files are checked
//! to exist and be readable, but not parsed: compiling ASL is the caller's business.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::asl::vm::WorkflowType;
use crate::integrations::http::{HttpConfig, HttpConnection};
use crate::integrations::lambda::LambdaConfig;
use crate::integrations::sqs::SqsConfig;
use crate::integrations::{IntegrationsConfig, Limits};

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
    pub metrics: MetricsConfig,
    /// `Some` only when `[demo_producer]` says `enabled = true`.
    pub demo_producer: Option<DemoProducerConfig>,
    /// `[integrations]`: the services Task states call.
    pub integrations: IntegrationsConfig,
    /// `[api]`: the AWS Step Functions-compatible HTTP API; `None` when the section is absent.
    /// With it, `[kafka]`, `[[sources]]` and `[[state_machines]]` become optional.
    pub api: Option<crate::api::ApiSettings>,
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

/// `[kafka]`: the cluster and the consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaConfig {
    pub brokers: Brokers,
    pub group_id: String,
    /// Extra librdkafka properties, passed verbatim to every client the daemon creates.
    pub properties: BTreeMap<String, String>,
}

/// `kafka.brokers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Brokers {
    /// librdkafka's in-process mock cluster: no broker needed (demos, tests).
    Embedded,
    /// `host:port` bootstrap servers, in the order given.
    Servers(Vec<String>),
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
}

/// What an `sqs` source reads and how it acknowledges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsSourceConfig {
    pub queue_url: String,
    /// Asked for on ReceiveMessage and renewed while the execution runs (1 to 43200).
    pub visibility_timeout_secs: u32,
    /// Long polling, 0 to 20.
    pub wait_time_secs: u32,
    /// ReceiveMessage calls in flight at once (each up to 10 messages).
    pub receivers: usize,
    /// `on_failure = "release"`: failed executions (and bodies that cannot start one) go
    /// back to the queue for its redrive policy, instead of to the dead-letter sink.
    pub release_failures: bool,
}

/// `[workers]`: the execution shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkersConfig {
    /// 0 means one per CPU core; see [`WorkersConfig::shard_count`].
    pub shards: usize,
    /// At least 1. When a shard holds this many executions its partitions are paused.
    pub max_in_flight_per_shard: usize,
    pub shutdown_grace_secs: u64,
    /// At least 1.
    pub commit_interval_ms: u64,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            shards: 0,
            max_in_flight_per_shard: 10_000,
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

/// `[producer]`: the Kafka producer that publishes results and dead letters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// librdkafka `linger.ms`, 0 to 900000.
    pub linger_ms: u64,
    /// librdkafka `batch.num.messages`, 1 to 1000000.
    pub batch_num_messages: u32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger_ms: 5,
            batch_num_messages: 10_000,
        }
    }
}

/// `[logs]`: execution logs, as Step Functions' logging configuration has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsConfig {
    pub level: LogLevel,
    pub include_execution_data: bool,
    pub destination: LogDestination,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Error,
            include_execution_data: false,
            destination: LogDestination::Stdout,
        }
    }
}

pub use crate::telemetry::exec_log::LogLevel;

/// `logs.destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogDestination {
    Stdout,
    Stderr,
    /// Appended to; resolved against the config file's directory, whose parent exists.
    File(PathBuf),
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics` is served; `None` (`listen = ""`) turns it off.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
        }
    }
}

/// `[demo_producer]` when enabled: synthetic sensor events for the demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoProducerConfig {
    /// A topic some source consumes.
    pub topic: String,
    /// At least 1.
    pub events_per_sec: u32,
}

/// Default for `demo_producer.events_per_sec`.
const DEMO_EVENTS_PER_SEC: u32 = 500;

/// One problem with a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{}: cannot read the config file: {reason}", file.display())]
    Unreadable { file: PathBuf, reason: String },
    /// The text is not TOML; nothing else can be checked until this is fixed.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key that is missing, unknown, of the wrong type or has a bad value.
    #[error("{path}: {message}")]
    Key { path: String, message: String },
}

impl ConfigError {
    /// The key path (`sources[0].topics`) of a [`ConfigError::Key`].
    pub fn key_path(&self) -> Option<&str> {
        match self {
            ConfigError::Key { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Every problem found in a configuration (never empty). Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn one_per_line(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
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
    let root: Table = text.parse().map_err(|err: toml::de::Error| {
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = line_column(text, offset);
        ConfigErrors(vec![ConfigError::Syntax {
            line,
            column,
            // One error, one line.
            message: err.message().trim().lines().collect::<Vec<_>>().join("; "),
        }])
    })?;
    let errors = Errors::default();
    let config = read_config(Section::new(String::new(), &root, &errors), base_dir);
    let mut errors = errors.0.into_inner();
    // Cross-checks run last; sorting (stably) puts each entry's errors together, in the
    // order of the schema.
    errors.sort_by_key(|err| err.key_path().map(schema_order));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The top-level keys in the order the README documents them.
const TOP_LEVEL_KEYS: [&str; 10] = [
    "kafka",
    "state_machines",
    "sources",
    "workers",
    "producer",
    "logs",
    "metrics",
    "demo_producer",
    "integrations",
    "api",
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

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

// The readers below return a value even for a broken section (defaults and empty strings
// stand in for what was wrong), so that later checks can still run. Those placeholders
// never escape: any recorded error turns the result into `Err`. Cross-checks skip empty
// names so that a missing name is reported once, not again as a bad reference.

fn read_config(mut doc: Section<'_>, base_dir: &Path) -> Config {
    // `[api]` makes the Kafka side optional (an API-only daemon): see `read_api`.
    let api = doc.section("api").map(read_api);
    let api_only = api.is_some() && !doc.has("sources");
    let state_machines: Vec<Entry<_>> = doc
        .required_sections_unless("state_machines", api.is_some())
        .into_iter()
        .map(|section| (section.path.clone(), read_state_machine(section, base_dir)))
        .collect();
    let sources: Vec<Entry<_>> = doc
        .required_sections_unless("sources", api.is_some())
        .into_iter()
        .map(|section| (section.path.clone(), read_source(section)))
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
    let metrics = doc.section("metrics").map(read_metrics).unwrap_or_default();
    let demo_producer = doc.section("demo_producer").and_then(read_demo_producer);
    // Sources that need no Kafka (SQS in and out) make `[kafka]` optional too.
    let no_kafka =
        !sources.is_empty() && !uses_kafka(sources.iter().map(|(_, s)| s), demo_producer.as_ref());
    let kafka = match doc.required_section_unless("kafka", api_only || no_kafka) {
        Some(section) => read_kafka(section),
        None => KafkaConfig {
            brokers: Brokers::Embedded,
            group_id: String::new(),
            properties: BTreeMap::new(),
        },
    };
    let integrations = doc
        .section("integrations")
        .map(read_integrations)
        .unwrap_or_default();

    let names = state_machines
        .iter()
        .map(|(path, sm)| (path.as_str(), sm.name.as_str()));
    check_unique_names(names, doc.errors);
    let names = sources
        .iter()
        .map(|(path, s)| (path.as_str(), s.name.as_str()));
    check_unique_names(names, doc.errors);
    check_references(&state_machines, &sources, doc.errors);
    check_topics(&sources, demo_producer.as_ref(), doc.errors);
    if integrations.allow_callbacks && api.is_none() {
        doc.errors.add(
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
        metrics,
        demo_producer,
        integrations,
        api,
    }
}

// ---- [api] -------------------------------------------------------------------------------

/// `[api]`: the AWS Step Functions-compatible HTTP API (`src/api/`).
fn read_api(mut section: Section<'_>) -> crate::api::ApiSettings {
    let defaults = crate::api::ApiSettings::default();
    let listen = match section.string("listen") {
        None => defaults.listen,
        Some(text) => text.parse().unwrap_or_else(|_| {
            section.error(
                "listen",
                format!("{text:?} is not an IP:port such as \"127.0.0.1:8083\""),
            );
            defaults.listen
        }),
    };
    let auth = section.string("auth").map(str::to_string);
    if auth
        .as_deref()
        .is_some_and(|a| a.trim().is_empty() || a.len() > 256)
    {
        section.error("auth", "must be 1 to 256 characters (or left out)");
    }
    if auth.is_none() && !listen.ip().is_loopback() {
        section.error(
            "listen",
            format!(
                "{listen} is not a loopback address: set api.auth to expose the API beyond this host"
            ),
        );
    }
    let region = section
        .string("region")
        .unwrap_or(&defaults.region)
        .to_string();
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        section.error(
            "region",
            format!("{region:?} is not a region name such as \"us-east-1\""),
        );
    }
    let account = section
        .string("account")
        .unwrap_or(&defaults.account)
        .to_string();
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        section.error(
            "account",
            format!("{account:?} is not a 12-digit account id"),
        );
    }
    let recent_executions = section.uint(
        "recent_executions",
        defaults.recent_executions,
        0,
        10_000_000,
    );
    section.finish();
    crate::api::ApiSettings {
        listen,
        auth,
        region,
        account,
        recent_executions,
    }
}

// ---- end of [api] ------------------------------------------------------------------------

fn read_kafka(mut section: Section<'_>) -> KafkaConfig {
    let brokers = match section.required_string("brokers") {
        Some(text) => parse_brokers(text).unwrap_or_else(|problems| {
            for problem in problems {
                section.error("brokers", problem);
            }
            Brokers::Embedded
        }),
        None => Brokers::Embedded,
    };
    let group_id = section.string("group_id").unwrap_or("expressway");
    if group_id.trim().is_empty() {
        section.error("group_id", "must not be empty");
    }
    let mut properties = BTreeMap::new();
    if let Some(table) = section.table("properties") {
        let path = section.path_of("properties");
        read_properties(table, &path, "", &mut properties, section.errors);
    }
    section.finish();
    KafkaConfig {
        brokers,
        group_id: group_id.to_string(),
        properties,
    }
}

/// `"embedded"`, or a comma-separated list of `host:port`; every bad entry is reported.
fn parse_brokers(text: &str) -> Result<Brokers, Vec<String>> {
    if text == "embedded" {
        return Ok(Brokers::Embedded);
    }
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let port = entry
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        match port {
            _ if entry.is_empty() => problems.push(format!(
                "empty entry in {text:?}; expected \"embedded\" or \"host:port,host:port\""
            )),
            Some((host, Ok(port))) if !host.is_empty() && port != 0 => {
                servers.push(entry.to_string())
            }
            Some((host, _)) if !host.is_empty() => {
                problems.push(format!("{entry:?} has no valid port (1 to 65535)"))
            }
            _ => problems.push(format!(
                "{entry:?} is not host:port (write \"embedded\" for the in-process mock cluster)"
            )),
        }
    }
    if problems.is_empty() {
        Ok(Brokers::Servers(servers))
    } else {
        Err(problems)
    }
}

/// librdkafka properties the daemon sets itself, and the key that sets each.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set it with kafka.brokers"),
    ("metadata.broker.list", "set it with kafka.brokers"),
    ("group.id", "set it with kafka.group_id"),
    ("linger.ms", "set it with producer.linger_ms"),
    ("queue.buffering.max.ms", "set it with producer.linger_ms"),
    (
        "batch.num.messages",
        "set it with producer.batch_num_messages",
    ),
    (
        "enable.auto.commit",
        "the daemon commits offsets itself, only once an event is fully handled",
    ),
    (
        "enable.auto.offset.store",
        "the daemon commits offsets itself, only once an event is fully handled",
    ),
];

/// Flattens `[kafka.properties]` into `name -> value`. An unquoted dotted key
/// (`security.protocol = "SSL"`) is a nested table in TOML; it means the dotted name.
fn read_properties(
    table: &Table,
    path: &str,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
    errors: &Errors,
) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let key_path = join_key(path, &name);
        match value {
            Value::String(text) => {
                if let Some((_, why)) = OWNED_PROPERTIES.iter().find(|(owned, _)| *owned == name) {
                    errors.add(key_path, format!("cannot be set here: {why}"));
                } else if out.insert(name, text.clone()).is_some() {
                    errors.add(key_path, "is set twice (once quoted, once as a dotted key)");
                }
            }
            Value::Table(inner) => read_properties(inner, path, &name, out, errors),
            other => errors.add(
                key_path,
                format!(
                    "librdkafka properties are strings: write \"{}\"",
                    other.to_string().trim_matches('"')
                ),
            ),
        }
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
        SourceKind::Kafka => match section.required_string_list("topics") {
            Some(topics) if topics.is_empty() => {
                section.error("topics", "must name at least one topic");
                topics
            }
            topics => topics.unwrap_or_default(),
        },
    };
    for (i, topic) in topics.iter().enumerate() {
        let path = section.item_path("topics", i);
        if let Some(problem) = topic_problem(topic) {
            section.errors.add(path.clone(), problem);
        }
        if topics[..i].contains(topic) {
            section
                .errors
                .add(path, format!("{topic:?} is listed twice"));
        }
    }
    let state_machine = section.required_string("state_machine").unwrap_or_default();
    let mut optional_topic = |key: &'static str| {
        let topic = section.string(key)?;
        if let Some(problem) = topic_problem(topic) {
            section.error(key, problem);
        }
        Some(topic.to_string())
    };
    let results_topic = optional_topic("results_topic");
    let dead_letter_topic = optional_topic("dead_letter_topic");
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
    let sqs = (kind == SourceKind::Sqs).then(|| {
        let queue_url = section.required_string("queue_url").unwrap_or_default();
        if !queue_url.is_empty() {
            check_url(&section, "queue_url", queue_url);
        }
        let sqs = SqsSourceConfig {
            queue_url: queue_url.to_string(),
            visibility_timeout_secs: section.uint("visibility_timeout_secs", 30, 1, 43_200),
            wait_time_secs: section.uint("wait_time_secs", 20, 0, 20),
            receivers: section.uint("receivers", 4, 1, 64),
            release_failures: section.one_of(
                "on_failure",
                false,
                &[("dead_letter", false), ("release", true)],
            ),
        };
        let dead_letter_sink = dead_letter_topic.is_some() || dead_letter_queue_url.is_some();
        if sqs.release_failures && dead_letter_sink {
            section.error(
                "on_failure",
                "\"release\" hands failures back to the queue: a dead-letter sink would stay unused",
            );
        }
        sqs
    });
    section.finish();
    SourceConfig {
        name: name.unwrap_or_default().to_string(),
        kind,
        topics: topics.into_iter().map(str::to_string).collect(),
        state_machine: state_machine.to_string(),
        results_topic,
        dead_letter_topic,
        results_queue_url,
        dead_letter_queue_url,
        sqs,
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

/// Kafka's own rule for topic names.
fn topic_problem(topic: &str) -> Option<String> {
    let valid = (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (!valid).then(|| {
        format!("{topic:?} is not a valid Kafka topic name: use 1 to 249 of A-Z a-z 0-9 . _ -")
    })
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

fn read_producer(mut section: Section<'_>) -> ProducerConfig {
    let defaults = ProducerConfig::default();
    // librdkafka's own ranges, so that a bad value fails here rather than at startup.
    let producer = ProducerConfig {
        linger_ms: section.uint("linger_ms", defaults.linger_ms, 0, 900_000),
        batch_num_messages: section.uint(
            "batch_num_messages",
            defaults.batch_num_messages,
            1,
            1_000_000,
        ),
    };
    section.finish();
    producer
}

fn read_logs(mut section: Section<'_>, base_dir: &Path) -> LogsConfig {
    let defaults = LogsConfig::default();
    let level = section.one_of(
        "level",
        defaults.level,
        &[
            ("ALL", LogLevel::All),
            ("ERROR", LogLevel::Error),
            ("FATAL", LogLevel::Fatal),
            ("OFF", LogLevel::Off),
        ],
    );
    let include_execution_data =
        section.bool("include_execution_data", defaults.include_execution_data);
    let destination = match section.string("destination") {
        None | Some("stdout") => LogDestination::Stdout,
        Some("stderr") => LogDestination::Stderr,
        Some("") => {
            section.error(
                "destination",
                "must be \"stdout\", \"stderr\" or a file path",
            );
            LogDestination::Stdout
        }
        Some(relative) => {
            let path = base_dir.join(relative);
            if path.is_dir() {
                section.error("destination", format!("{} is a directory", path.display()));
            } else if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    let message = format!("directory {} does not exist", dir.display());
                    section.error("destination", message);
                }
            }
            LogDestination::File(path)
        }
    };
    section.finish();
    LogsConfig {
        level,
        include_execution_data,
        destination,
    }
}

fn read_metrics(mut section: Section<'_>) -> MetricsConfig {
    let listen = match section.string("listen") {
        None => MetricsConfig::default().listen,
        Some("") => None,
        Some(text) => text.parse().map_or_else(
            |_| {
                let message = format!(
                    "{text:?} is not an IP:port such as \"127.0.0.1:9464\" (\"\" turns metrics off)"
                );
                section.error("listen", message);
                None
            },
            Some,
        ),
    };
    section.finish();
    MetricsConfig { listen }
}

fn read_integrations(mut section: Section<'_>) -> IntegrationsConfig {
    let defaults = IntegrationsConfig::default();
    let threads = section.uint("threads", defaults.threads, 1, 64);
    let allow_callbacks = section.bool("allow_callbacks", defaults.allow_callbacks);
    let lambda = section
        .section("lambda")
        .map(|mut lambda| {
            let endpoint = lambda.string("endpoint").map(str::to_owned);
            if let Some(url) = &endpoint {
                check_url(&lambda, "endpoint", url);
            }
            let mut functions = BTreeMap::new();
            if let Some(table) = lambda.table("functions") {
                for (name, url) in table {
                    let key = format!("functions.{name}");
                    match url.as_str() {
                        Some(url) => {
                            check_url(&lambda, &key, url);
                            functions.insert(name.clone(), url.to_owned());
                        }
                        None => lambda.error(&key, "expected a URL string"),
                    }
                }
            }
            let limits = read_limits(&mut lambda);
            lambda.finish();
            LambdaConfig {
                endpoint,
                functions,
                limits,
            }
        })
        .unwrap_or_default();
    let http = section
        .section("http")
        .map(|mut http| {
            let limits = read_limits(&mut http);
            let connections = http
                .sections("connections")
                .into_iter()
                .map(read_http_connection)
                .collect();
            http.finish();
            HttpConfig {
                limits,
                connections,
            }
        })
        .unwrap_or_default();
    let sqs = section
        .section("sqs")
        .map(|mut sqs| {
            let endpoint = sqs.string("endpoint").map(str::to_owned);
            if let Some(url) = &endpoint {
                check_url(&sqs, "endpoint", url);
            }
            let region = sqs.string("region").map(str::to_owned);
            let access_key_id = sqs.string("access_key_id").map(str::to_owned);
            let secret_access_key = sqs.string("secret_access_key").map(str::to_owned);
            if access_key_id.is_some() != secret_access_key.is_some() {
                let (key, other) = if access_key_id.is_some() {
                    ("secret_access_key", "access_key_id")
                } else {
                    ("access_key_id", "secret_access_key")
                };
                sqs.error(key, format!("missing (required with {other})"));
            }
            let limits = read_limits(&mut sqs);
            sqs.finish();
            SqsConfig {
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                limits,
            }
        })
        .unwrap_or_default();
    section.finish();
    IntegrationsConfig {
        threads,
        allow_callbacks,
        lambda,
        http,
        sqs,
    }
}

fn read_limits(section: &mut Section<'_>) -> Limits {
    let defaults = Limits::default();
    let max_concurrency = section.uint("max_concurrency", defaults.max_concurrency, 1, 65_536);
    let timeout_secs = section.uint("timeout_secs", defaults.timeout.as_secs(), 1, 300);
    Limits {
        max_concurrency,
        timeout: Duration::from_secs(timeout_secs),
    }
}

fn read_http_connection(mut section: Section<'_>) -> HttpConnection {
    let arn = section.string("arn").map(str::to_owned);
    let url_prefix = section.string("url_prefix").map(str::to_owned);
    if arn.is_none() && url_prefix.is_none() {
        section.error(
            "arn",
            "missing: a connection needs \"arn\" (the Task's Authentication.ConnectionArn) or \"url_prefix\"",
        );
    }
    let mut string_map = |key: &'static str| {
        let mut out = BTreeMap::new();
        if let Some(table) = section.table(key) {
            for (name, value) in table {
                match value.as_str() {
                    Some(v) => {
                        out.insert(name.clone(), v.to_owned());
                    }
                    None => section.error(&format!("{key}.{name}"), "expected a string"),
                }
            }
        }
        out
    };
    let headers = string_map("headers");
    let query = string_map("query");
    section.finish();
    HttpConnection {
        arn,
        url_prefix,
        headers,
        query,
    }
}

fn check_url(section: &Section<'_>, key: &str, url: &str) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        section.error(key, format!("{url:?} is not an http:// or https:// URL"));
    }
}

fn read_demo_producer(mut section: Section<'_>) -> Option<DemoProducerConfig> {
    // Every key is read even when disabled, so that mistakes in the section still show.
    let enabled = section.bool("enabled", false);
    let topic = section.string("topic");
    if let Some(problem) = topic.and_then(topic_problem) {
        section.error("topic", problem);
    }
    let events_per_sec = section.uint("events_per_sec", DEMO_EVENTS_PER_SEC, 1, 1_000_000);
    if enabled && !section.has("topic") {
        section.error("topic", "missing (required when enabled = true)");
    }
    section.finish();
    match (enabled, topic) {
        (true, Some(topic)) => Some(DemoProducerConfig {
            topic: topic.to_string(),
            events_per_sec,
        }),
        _ => None,
    }
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

/// Every problem found so far, shared by the readers of one document.
#[derive(Default)]
struct Errors(RefCell<Vec<ConfigError>>);

impl Errors {
    fn add(&self, path: impl Into<String>, message: impl Into<String>) {
        self.0.borrow_mut().push(ConfigError::Key {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Reads the keys of one TOML table as typed values, recording what is wrong with each
/// instead of stopping. It remembers every key asked for; [`Section::finish`] reports the
/// others as unknown.
struct Section<'a> {
    /// Key path of this table: `""` for the document, `kafka`, `sources[2]`.
    path: String,
    table: &'a Table,
    known: Vec<&'static str>,
    errors: &'a Errors,
}

impl<'a> Section<'a> {
    fn new(path: String, table: &'a Table, errors: &'a Errors) -> Self {
        Self {
            path,
            table,
            known: Vec::new(),
            errors,
        }
    }

    fn path_of(&self, key: &str) -> String {
        join_key(&self.path, key)
    }

    /// `key[i]`: element `i` of the array `key`.
    fn item_path(&self, key: &str, i: usize) -> String {
        format!("{}[{i}]", self.path_of(key))
    }

    fn error(&self, key: &str, message: impl Into<String>) {
        self.errors.add(self.path_of(key), message);
    }

    fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// `key`'s value as `T`: `None` when absent, or when of the wrong type (recorded).
    fn optional<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        extract: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Option<T> {
        self.known.push(key);
        let value = self.table.get(key)?;
        let found = extract(value);
        if found.is_none() {
            self.error(
                key,
                format!("expected {expected}, found {}", describe(value)),
            );
        }
        found
    }

    /// Like [`Section::optional`], and absence is an error too.
    fn required<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        extract: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Option<T> {
        if !self.has(key) {
            self.error(key, format!("missing (required: {expected})"));
        }
        self.optional(key, expected, extract)
    }

    fn string(&mut self, key: &'static str) -> Option<&'a str> {
        self.optional(key, "a string", Value::as_str)
    }

    fn required_string(&mut self, key: &'static str) -> Option<&'a str> {
        self.required(key, "a string", Value::as_str)
    }

    fn bool(&mut self, key: &'static str, default: bool) -> bool {
        self.optional(key, "true or false", Value::as_bool)
            .unwrap_or(default)
    }

    /// An integer in `min..=max`, or `default` when absent or wrong.
    fn uint<T>(&mut self, key: &'static str, default: T, min: T, max: T) -> T
    where
        T: TryFrom<i64> + PartialOrd + fmt::Display + Copy,
    {
        let Some(n) = self.optional(key, "an integer", Value::as_integer) else {
            return default;
        };
        // Values that do not fit `T` are beyond one of the bounds: below for negatives.
        match T::try_from(n) {
            Ok(v) if v < min => self.error(key, format!("must be at least {min}, got {v}")),
            Ok(v) if v > max => self.error(key, format!("must be at most {max}, got {v}")),
            Ok(v) => return v,
            Err(_) if n < 0 => self.error(key, format!("must be at least {min}, got {n}")),
            Err(_) => self.error(key, format!("must be at most {max}, got {n}")),
        }
        default
    }

    /// A string naming one of `choices`, or `default` when absent or wrong.
    fn one_of<T: Copy>(&mut self, key: &'static str, default: T, choices: &[(&str, T)]) -> T {
        let Some(text) = self.string(key) else {
            return default;
        };
        if let Some(&(_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return value;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.error(
            key,
            format!("{text:?} is not one of {} (case matters)", names.join(", ")),
        );
        default
    }

    /// A required array of strings; `None` if any element is not one (each reported as
    /// `key[i]`).
    fn required_string_list(&mut self, key: &'static str) -> Option<Vec<&'a str>> {
        let items = self.required(key, "an array of strings", Value::as_array)?;
        let mut strings = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(text) => strings.push(text),
                None => self.errors.add(
                    self.item_path(key, i),
                    format!("expected a string, found {}", describe(item)),
                ),
            }
        }
        (strings.len() == items.len()).then_some(strings)
    }

    /// A raw sub-table, for sections whose keys are free-form.
    fn table(&mut self, key: &'static str) -> Option<&'a Table> {
        self.optional(key, "a table", Value::as_table)
    }

    /// An optional sub-table (`[key]`), read with its own [`Section`].
    fn section(&mut self, key: &'static str) -> Option<Section<'a>> {
        let table = self.table(key)?;
        Some(Section::new(self.path_of(key), table, self.errors))
    }

    fn required_section(&mut self, key: &'static str) -> Option<Section<'a>> {
        if !self.has(key) {
            self.error(key, format!("missing (required: a [{key}] table)"));
        }
        self.section(key)
    }

    /// A required, non-empty array of tables (`[[key]]`); elements that are not tables
    /// are reported and left out.
    fn required_sections(&mut self, key: &'static str) -> Vec<Section<'a>> {
        let expected = format!("at least one [[{key}]] table");
        let Some(items) = self.required(key, &expected, Value::as_array) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.error(key, format!("must not be empty (required: {expected})"));
        }
        let mut sections = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = self.item_path(key, i);
            match item.as_table() {
                Some(table) => sections.push(Section::new(path, table, self.errors)),
                None => self
                    .errors
                    .add(path, format!("expected a table, found {}", describe(item))),
            }
        }
        sections
    }

    /// [`Section::required_section`], or an optional one when `optional`.
    fn required_section_unless(
        &mut self,
        key: &'static str,
        optional: bool,
    ) -> Option<Section<'a>> {
        if optional {
            self.section(key)
        } else {
            self.required_section(key)
        }
    }

    /// [`Section::required_sections`], or none at all when `optional` and absent.
    fn required_sections_unless(&mut self, key: &'static str, optional: bool) -> Vec<Section<'a>> {
        if optional && !self.has(key) {
            self.known.push(key);
            return Vec::new();
        }
        self.required_sections(key)
    }

    /// An optional array of tables (`[[key]]`); elements that are not tables are reported.
    fn sections(&mut self, key: &'static str) -> Vec<Section<'a>> {
        self.required_sections_unless(key, true)
    }

    /// Reports every key of this table that no reader asked for.
    fn finish(self) {
        for key in self.table.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let message = match closest(key, &self.known) {
                Some(known) => format!("unknown key (did you mean {known:?}?)"),
                None => format!("unknown key (known here: {})", self.known.join(", ")),
            };
            self.error(key, message);
        }
    }
}

/// The known key a mistyped `key` most likely meant: at most two edits away, ignoring case.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|&candidate| (edit_distance(&key, candidate), candidate))
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `parent.key`, quoting keys that TOML would not accept bare (`"security.protocol"`).
fn join_key(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// What a value is, for "expected X, found Y"; scalars show themselves.
fn describe(value: &Value) -> String {
    match value {
        Value::String(_) => format!("a string ({value})"),
        Value::Integer(_) => format!("an integer ({value})"),
        Value::Float(_) => format!("a float ({value})"),
        Value::Boolean(_) => format!("a boolean ({value})"),
        Value::Datetime(_) => format!("a date-time ({value})"),
        Value::Array(_) => "an array".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(documented.len(), 54, "{documented:?}");
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
    fn the_sqs_section_is_read_and_checked() {
        let text = minimal(
            "[integrations.sqs]\nendpoint = \"http://127.0.0.1:9324\"\nregion = \"eu-west-1\"\n\
             access_key_id = \"a\"\nsecret_access_key = \"s\"\ntimeout_secs = 5\n",
        );
        let config = parse(&text, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        let sqs = &config.integrations.sqs;
        assert_eq!(sqs.endpoint.as_deref(), Some("http://127.0.0.1:9324"));
        assert_eq!(sqs.region.as_deref(), Some("eu-west-1"));
        assert_eq!(sqs.access_key_id.as_deref(), Some("a"));
        assert_eq!(sqs.secret_access_key.as_deref(), Some("s"));
        assert_eq!(sqs.limits.timeout, Duration::from_secs(5));
        assert_errors(
            &minimal("[integrations.sqs]\nendpoint = \"127.0.0.1:9324\"\naccess_key_id = \"a\"\n"),
            &[
                (
                    "integrations.sqs.endpoint",
                    "is not an http:// or https:// URL",
                ),
                (
                    "integrations.sqs.secret_access_key",
                    "missing (required with access_key_id)",
                ),
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
            "kafka.extra: unknown key (known here: brokers, group_id, properties)\n\
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
    fn brokers_accept_embedded_or_host_port_lists() {
        assert_eq!(
            parse_brokers("a:9092, b.example:9093,[::1]:9094"),
            Ok(Brokers::Servers(vec![
                "a:9092".into(),
                "b.example:9093".into(),
                "[::1]:9094".into()
            ]))
        );
        let problems = parse_brokers("a,b:0,,:9092,c:x").expect_err("all bad");
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_errors(
            &minimal("").replace("\"embedded\"", "\"Embedded\""),
            &[("kafka.brokers", "is not host:port")],
        );
    }

    #[test]
    fn kafka_properties_are_strings_and_dotted_keys_flatten() {
        let text = minimal("").replace(
            "brokers = \"embedded\"",
            r#"brokers = "embedded"
[kafka.properties]
"security.protocol" = "SASL_SSL"
sasl.mechanism = "PLAIN"
"#,
        );
        let config = parse(&text, &config_dir()).unwrap_or_else(|e| panic!("{e}"));
        let expected: BTreeMap<String, String> = [
            ("sasl.mechanism".to_string(), "PLAIN".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
        ]
        .into();
        assert_eq!(config.kafka.properties, expected);

        let text = minimal("").replace(
            "brokers = \"embedded\"",
            r#"brokers = "embedded"
[kafka.properties]
"socket.timeout.ms" = 60000
"group.id" = "other"
"enable.auto.commit" = "true"
"#,
        );
        assert_errors(
            &text,
            &[
                (
                    r#"kafka.properties."socket.timeout.ms""#,
                    "librdkafka properties are strings: write \"60000\"",
                ),
                (
                    r#"kafka.properties."group.id""#,
                    "set it with kafka.group_id",
                ),
                (
                    r#"kafka.properties."enable.auto.commit""#,
                    "commits offsets itself",
                ),
            ],
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

    #[test]
    fn api_settings_are_checked() {
        assert_errors(
            r#"
[api]
listen = "0.0.0.0:8083"
region = "US East"
account = "12"
recent_executions = -1
colour = "blue"
"#,
            &[
                ("api.listen", "0.0.0.0:8083 is not a loopback address: set api.auth to expose the API beyond this host"),
                ("api.region", "\"US East\" is not a region name such as \"us-east-1\""),
                ("api.account", "\"12\" is not a 12-digit account id"),
                ("api.recent_executions", "must be at least 0, got -1"),
                ("api.colour", "unknown key (known here: listen, auth, region, account, recent_executions)"),
            ],
        );
        let text = "[api]\nlisten = \"0.0.0.0:8083\"\nauth = \"s3cret\"\n";
        let api = parse(text, &config_dir())
            .unwrap_or_else(|e| panic!("{e}"))
            .api
            .unwrap();
        assert_eq!(api.auth.as_deref(), Some("s3cret"));
        assert_errors(
            "[api]\nlisten = \"nope\"\n",
            &[(
                "api.listen",
                "\"nope\" is not an IP:port such as \"127.0.0.1:8083\"",
            )],
        );
    }
}
