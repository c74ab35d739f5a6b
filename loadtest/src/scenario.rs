//! Scenario files (`loadtest/scenarios/*.toml`): which workflow, what input, how much load,
//! and how the daemon under test is set up. Paths in a scenario are relative to its file.

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    description: Option<String>,
    definition: PathBuf,
    input: InputFile,
    #[serde(default)]
    load: Load,
    #[serde(default)]
    daemon: DaemonSettings,
    #[serde(default)]
    helpers: Vec<Helper>,
}

/// Exactly one of the two: the same input for every event, or a JSON array of inputs that
/// events cycle through (event `i` gets element `i % len`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFile {
    file: Option<PathBuf>,
    variants: Option<PathBuf>,
}

/// How much load, and over how many partitions and daemon processes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    /// Events per second offered; 0 means as fast as the outstanding window allows.
    pub rate: u64,
    pub duration_secs: f64,
    /// Partitions of each topic on the embedded broker.
    pub partitions: i32,
    /// Daemon processes started, all in one consumer group.
    pub instances: usize,
    /// Shard threads per daemon.
    pub shards: usize,
    pub max_in_flight_per_shard: usize,
    /// Events sent but not yet answered (result or dead letter) at most: closes the loop
    /// when `rate` is 0, and keeps the embedded broker's short per-partition log from
    /// evicting records the daemon has not read yet (about 5 MB or 100k records each).
    pub max_outstanding: u64,
    /// A run "breaks" (the end of a sweep) when its p99 end-to-end latency exceeds this.
    pub max_p99_ms: u64,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            rate: 0,
            duration_secs: 10.0,
            partitions: 4,
            instances: 1,
            shards: 2,
            max_in_flight_per_shard: 10_000,
            max_outstanding: 20_000,
            max_p99_ms: 1000,
        }
    }
}

/// Extra daemon configuration, appended to the config the harness writes (TOML sections
/// such as `[integrations.lambda]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    #[serde(default)]
    pub extra_config: String,
}

/// A process the scenario needs while it runs (a Lambda function server), started in the
/// scenario's directory before the daemon and stopped after it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Helper {
    pub command: Vec<String>,
    /// The harness waits until this loopback port accepts connections.
    pub wait_for_port: Option<u16>,
}

pub struct Scenario {
    pub name: String,
    pub description: String,
    pub dir: PathBuf,
    pub definition_path: PathBuf,
    pub definition: Value,
    /// The inputs events cycle through, and the same as JSON text (what Kafka carries).
    pub inputs: Vec<Value>,
    pub input_texts: Vec<String>,
    pub load: Load,
    pub daemon: DaemonSettings,
    pub helpers: Vec<Helper>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        let file: ScenarioFile =
            toml::from_str(&text).with_context(|| format!("scenario {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let dir = std::fs::canonicalize(&dir)
            .with_context(|| format!("scenario directory {}", dir.display()))?;
        let definition_path = dir.join(&file.definition);
        let definition = read_json(&definition_path)?;
        let inputs = match (&file.input.file, &file.input.variants) {
            (Some(one), None) => vec![read_json(&dir.join(one))?],
            (None, Some(many)) => match read_json(&dir.join(many))? {
                Value::Array(items) if !items.is_empty() => items,
                _ => bail!(
                    "{}: input.variants must name a non-empty JSON array",
                    path.display()
                ),
            },
            _ => bail!(
                "{}: [input] needs exactly one of `file` or `variants`",
                path.display()
            ),
        };
        let load = file.load;
        if load.duration_secs <= 0.0 || load.partitions < 1 || load.instances < 1 {
            bail!(
                "{}: load.duration_secs, partitions and instances must be positive",
                path.display()
            );
        }
        if load.shards < 1 || load.max_in_flight_per_shard < 1 || load.max_outstanding < 1 {
            bail!(
                "{}: load.shards, max_in_flight_per_shard and max_outstanding must be positive",
                path.display()
            );
        }
        let name = file.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".to_owned())
        });
        Ok(Scenario {
            name,
            description: file.description.unwrap_or_default(),
            dir,
            definition_path,
            definition,
            input_texts: inputs.iter().map(Value::to_string).collect(),
            inputs,
            load,
            daemon: file.daemon,
            helpers: file.helpers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scenario shipped loads: its workflow and inputs are found (the benchmark
    /// workflows in `benches/workflows` included) and its settings are valid.
    #[test]
    fn shipped_scenarios_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("loadtest/scenarios") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(!scenario.inputs.is_empty());
                names.push(scenario.name);
            }
        }
        names.sort();
        assert_eq!(
            names,
            [
                "choice-loop",
                "iot-enrich",
                "iot-enrich-console",
                "iot-enrich-unobserved",
                "iot-enrich-variants",
                "lambda-enrich",
                "parallel",
                "pass-chain",
                "wait-hold"
            ]
        );
    }

    #[test]
    fn input_needs_exactly_one_source() {
        let dir = std::env::temp_dir().join(format!("loadtest-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("w.asl.json"),
            r#"{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}"#,
        )
        .unwrap();
        let path = dir.join("s.toml");
        std::fs::write(&path, "definition = \"w.asl.json\"\n[input]\n").unwrap();
        let err = Scenario::load(&path).err().expect("refused");
        assert!(format!("{err:#}").contains("exactly one of"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
