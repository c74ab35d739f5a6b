//! `[kafka]`, `[producer]` and the Kafka keys of `[[sources]]`: the cluster, the consumer
//! group, the producer's batching and topic names, with their readers.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::config_reader::{join_key, Errors, Section};

/// `[kafka]`: the cluster and the consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaConfig {
    pub brokers: Brokers,
    pub group_id: String,
    /// This instance's `group.instance.id` (static group membership, KIP-345), or `None`
    /// for dynamic membership.
    pub instance_id: Option<String>,
    /// How long an exactly-once source's shard gathers records into one transaction.
    pub transaction_interval_ms: u64,
    /// Extra librdkafka properties, passed verbatim to every client the daemon creates.
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// What stands in for a `[kafka]` section that may be, and is, left out (nothing uses
    /// Kafka then).
    pub fn unused() -> Self {
        KafkaConfig {
            brokers: Brokers::Embedded,
            group_id: String::new(),
            instance_id: None,
            transaction_interval_ms: DEFAULT_TRANSACTION_INTERVAL_MS,
            properties: BTreeMap::new(),
        }
    }

    /// `[kafka.properties]` as librdkafka takes them, for every client the daemon makes.
    pub fn property_list(&self) -> Vec<(String, String)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn transaction_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.transaction_interval_ms)
    }
}

/// Kafka Streams' default commit interval under exactly-once: results become visible to
/// `read_committed` readers within about this long.
const DEFAULT_TRANSACTION_INTERVAL_MS: u64 = 100;

/// `kafka.brokers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Brokers {
    /// librdkafka's in-process mock cluster: no broker needed (demos, tests).
    Embedded,
    /// `host:port` bootstrap servers, in the order given.
    Servers(Vec<String>),
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

/// Reads `[kafka]`.
pub fn read_kafka(mut section: Section<'_>) -> KafkaConfig {
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
    // Static membership by default against real brokers: a restarted instance rejoins as
    // itself and gets its partitions back at once, where a new member would wait out the
    // dead one's session and a rebalance. The embedded cluster lives and dies with the
    // process, so there is nothing to come back to.
    let static_membership =
        section.bool("static_membership", matches!(brokers, Brokers::Servers(_)));
    let named = section.string("instance_id");
    if let Some(id) = named {
        if let Some(problem) = instance_id_problem(id) {
            section.error("instance_id", problem);
        }
        if !static_membership {
            section.error(
                "instance_id",
                "is only used with static_membership = true (the default with real brokers)",
            );
        }
    }
    let instance_id = static_membership.then(|| match named {
        Some(id) => id.to_string(),
        None => host_instance_id(),
    });
    let transaction_interval_ms = section.uint(
        "transaction_interval_ms",
        DEFAULT_TRANSACTION_INTERVAL_MS,
        1,
        60_000,
    );
    let mut properties = BTreeMap::new();
    if let Some(table) = section.table("properties") {
        let path = section.path_of("properties");
        read_properties(table, &path, "", &mut properties, section.errors());
    }
    section.finish();
    KafkaConfig {
        brokers,
        group_id: group_id.to_string(),
        instance_id,
        transaction_interval_ms,
        properties,
    }
}

/// Kafka's rule for `group.instance.id`: like a topic name, at most 249 characters.
fn instance_id_problem(id: &str) -> Option<String> {
    let valid = (1..=249).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (!valid)
        .then(|| format!("{id:?} is not a valid instance id: use 1 to 249 of A-Z a-z 0-9 . _ -"))
}

/// The default `instance_id`: `expressway-<host name>`, stable across restarts on one host
/// (a Kubernetes StatefulSet pod, a VM). Two instances on one host need ids of their own.
fn host_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .take(200)
        .collect();
    if host.is_empty() {
        "expressway".to_owned()
    } else {
        format!("expressway-{host}")
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
    ("group.instance.id", "set it with kafka.instance_id"),
    (
        "transactional.id",
        "the daemon names its transactional producers itself (delivery = \"exactly_once\")",
    ),
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
            Value::Table(inner) => match secret_reference(inner) {
                Some(reference) => match reference.resolve() {
                    Ok(text) => {
                        out.insert(name, text);
                    }
                    Err(problem) => errors.add(key_path, problem),
                },
                None => read_properties(inner, path, &name, out, errors),
            },
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

/// A property's value kept out of the config file: `{ env = "VAR" }` or
/// `{ file = "/run/secrets/kafka-password" }` (no librdkafka property name ends in `.env` or
/// `.file`, so the form cannot shadow one).
enum SecretReference<'a> {
    Env(&'a str),
    File(&'a str),
}

fn secret_reference(table: &Table) -> Option<SecretReference<'_>> {
    if table.len() != 1 {
        return None;
    }
    match table.iter().next()? {
        (key, Value::String(var)) if key == "env" => Some(SecretReference::Env(var)),
        (key, Value::String(path)) if key == "file" => Some(SecretReference::File(path)),
        _ => None,
    }
}

impl SecretReference<'_> {
    /// The value, read now (at load, so `validate --config` reports a missing one); a file's
    /// trailing newline is not part of it.
    fn resolve(&self) -> Result<String, String> {
        match self {
            SecretReference::Env(var) => {
                std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
            }
            SecretReference::File(path) => std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("cannot read {path}: {e}")),
        }
    }
}

/// Reads `[producer]`.
pub fn read_producer(mut section: Section<'_>) -> ProducerConfig {
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

/// The `topics` of a `kafka` source: at least one, valid, none listed twice.
pub fn read_source_topics(section: &mut Section<'_>) -> Vec<String> {
    let topics = match section.required_string_list("topics") {
        Some(topics) if topics.is_empty() => {
            section.error("topics", "must name at least one topic");
            topics
        }
        topics => topics.unwrap_or_default(),
    };
    for (i, topic) in topics.iter().enumerate() {
        let path = section.item_path("topics", i);
        if let Some(problem) = topic_problem(topic) {
            section.errors().add(path.clone(), problem);
        }
        if topics[..i].contains(topic) {
            section
                .errors()
                .add(path, format!("{topic:?} is listed twice"));
        }
    }
    topics.into_iter().map(str::to_string).collect()
}

/// An optional key naming a topic to write to (`results_topic`), checked like any topic.
pub fn read_topic(section: &mut Section<'_>, key: &'static str) -> Option<String> {
    let topic = section.string(key)?;
    if let Some(problem) = topic_problem(topic) {
        section.error(key, problem);
    }
    Some(topic.to_string())
}

/// Kafka's own rule for topic names.
pub fn topic_problem(topic: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_reader::testing::{assert_section_errors, read_section};

    fn kafka(text: &str) -> Result<Option<KafkaConfig>, Vec<(String, String)>> {
        read_section(text, "kafka", read_kafka)
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
        assert_section_errors(
            kafka("[kafka]\nbrokers = \"Embedded\"\n"),
            &[("kafka.brokers", "is not host:port")],
        );
    }

    #[test]
    fn kafka_properties_are_strings_and_dotted_keys_flatten() {
        let text = r#"
[kafka]
brokers = "embedded"
[kafka.properties]
"security.protocol" = "SASL_SSL"
sasl.mechanism = "PLAIN"
"#;
        let config = kafka(text).unwrap_or_else(|e| panic!("{e:?}")).unwrap();
        let expected: BTreeMap<String, String> = [
            ("sasl.mechanism".to_string(), "PLAIN".to_string()),
            ("security.protocol".to_string(), "SASL_SSL".to_string()),
        ]
        .into();
        assert_eq!(config.properties, expected);

        let text = r#"
[kafka]
brokers = "embedded"
[kafka.properties]
"socket.timeout.ms" = 60000
"group.id" = "other"
"enable.auto.commit" = "true"
"#;
        assert_section_errors(
            kafka(text),
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
    fn secrets_come_from_the_environment_or_a_file() {
        let dir = std::env::temp_dir().join(format!("expressway-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "from-file\n").unwrap();
        std::env::set_var("EXPRESSWAY_TEST_SASL_USER", "from-env");
        let text = format!(
            r#"
[kafka]
brokers = "b:9092"
[kafka.properties]
sasl.username = {{ env = "EXPRESSWAY_TEST_SASL_USER" }}
"sasl.password" = {{ file = "{}" }}
"#,
            file.display()
        );
        let config = kafka(&text).unwrap_or_else(|e| panic!("{e:?}")).unwrap();
        assert_eq!(config.properties["sasl.username"], "from-env");
        assert_eq!(config.properties["sasl.password"], "from-file");
        let text = r#"
[kafka]
brokers = "b:9092"
[kafka.properties]
"sasl.password" = { env = "EXPRESSWAY_TEST_NOT_SET" }
"ssl.key.password" = { file = "/nonexistent/key-password" }
"#;
        assert_section_errors(
            kafka(text),
            &[
                (
                    r#"kafka.properties."sasl.password""#,
                    "the environment variable EXPRESSWAY_TEST_NOT_SET is not set",
                ),
                (
                    r#"kafka.properties."ssl.key.password""#,
                    "cannot read /nonexistent/key-password",
                ),
            ],
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn static_membership_is_the_default_with_real_brokers() {
        let config = kafka("[kafka]\nbrokers = \"b:9092\"\n").unwrap().unwrap();
        assert!(config.instance_id.unwrap().starts_with("expressway"));
        let config = kafka("[kafka]\nbrokers = \"embedded\"\n").unwrap().unwrap();
        assert_eq!(config.instance_id, None);
        let config = kafka("[kafka]\nbrokers = \"b:9092\"\ninstance_id = \"ingest-2\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(config.instance_id.as_deref(), Some("ingest-2"));
        assert_section_errors(
            kafka(
                "[kafka]\nbrokers = \"b:9092\"\nstatic_membership = false\ninstance_id = \"a b\"\n",
            ),
            &[
                ("kafka.instance_id", "is not a valid instance id"),
                (
                    "kafka.instance_id",
                    "is only used with static_membership = true",
                ),
            ],
        );
    }

    #[test]
    fn producer_ranges_are_librdkafkas() {
        let producer = |text: &str| read_section(text, "producer", read_producer);
        assert_eq!(
            producer("[producer]\n").unwrap(),
            Some(ProducerConfig::default())
        );
        assert_section_errors(
            producer("[producer]\nlinger_ms = 1.5\nbatch_num_messages = 2000000\n"),
            &[
                (
                    "producer.linger_ms",
                    "expected an integer, found a float (1.5)",
                ),
                (
                    "producer.batch_num_messages",
                    "must be at most 1000000, got 2000000",
                ),
            ],
        );
    }
}
