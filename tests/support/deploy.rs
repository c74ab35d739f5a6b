//! The deployment files of `config/`, checked offline: the Kubernetes manifest
//! (`kubernetes.yaml`: its YAML read by python3's `yaml`, the probes on the metrics port,
//! its ConfigMap's config valid for `expressway validate --config`) and the Grafana dashboard
//! (`grafana/`: it parses, its data source is the provisioned one, and every metric it
//! queries is in `docs/metrics.md`). `docker-compose.yml` is checked by `scripts/test`
//! (`docker-compose config`).

use crate::harness::{group, verdict, Group, Problem, Verdict};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn group() -> Group<()> {
    group!(
        "deploy",
        || Ok(()),
        [
            kubernetes_manifest_probes_the_metrics_port_and_holds_a_valid_config,
            grafana_dashboard_queries_only_documented_metrics,
        ]
    )
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of a YAML file, as JSON (python3 and its `yaml` module: PyYAML).
fn yaml_documents(path: &Path) -> Result<Vec<Value>, Problem> {
    let script = "import json, sys, yaml\n\
                  print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .map_err(|e| Problem::Skipped(format!("python3: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named 'yaml'") {
            return Err(Problem::Skipped(
                "python3 has no yaml module (PyYAML)".into(),
            ));
        }
        return Err(format!("{} is not YAML: {stderr}", path.display()).into());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("python3's output: {e}").into())
}

fn kubernetes_manifest_probes_the_metrics_port_and_holds_a_valid_config(_: &mut ()) -> Verdict {
    let docs = yaml_documents(&root().join("config/kubernetes.yaml"))?;
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).cloned();
    let (Some(config_map), Some(deployment)) = (kind("ConfigMap"), kind("Deployment")) else {
        return Err("a ConfigMap and a Deployment".into());
    };
    let mut problems = Vec::new();
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let metrics_port = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "metrics")
        .and_then(|p| p["containerPort"].as_u64());
    if metrics_port != Some(9464) {
        problems.push(format!("the metrics port is {metrics_port:?}, not 9464"));
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        if get["path"] != path || get["port"] != "metrics" {
            problems.push(format!(
                "{probe} is {get}, not GET {path} on the metrics port"
            ));
        }
    }
    let annotations = &pod["metadata"]["annotations"];
    if annotations["prometheus.io/scrape"] != "true"
        || annotations["prometheus.io/port"] != "9464"
        || annotations["prometheus.io/path"] != "/metrics"
    {
        problems.push(format!("scrape annotations: {annotations}"));
    }
    if deployment["spec"]["selector"]["matchLabels"] != pod["metadata"]["labels"] {
        problems.push("the selector does not match the pod's labels".into());
    }
    let env_names: Vec<&str> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    // The ConfigMap's files, laid out as the volume mounts them, validated by the binary.
    let dir = std::env::temp_dir().join(format!("expressway-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let items = pod["spec"]["volumes"][0]["configMap"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for item in &items {
        let (Some(key), Some(path)) = (item["key"].as_str(), item["path"].as_str()) else {
            continue;
        };
        let Some(text) = config_map["data"][key].as_str() else {
            problems.push(format!("the ConfigMap has no {key}"));
            continue;
        };
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().expect("a directory")).expect("temp dir");
        std::fs::write(&file, text).expect("temp file");
    }
    let config = dir.join("config.toml");
    let mut validate = Command::new(env!("CARGO_BIN_EXE_expressway"));
    validate.args(["validate", "--config"]).arg(&config);
    // What the downward API sets (the config reads it: `{ env = "POD_NAME" }`).
    for name in &env_names {
        validate.env(name, "expressway-7d9f8-abcde");
    }
    match validate.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => problems.push(format!(
            "expressway validate --config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => problems.push(format!("expressway validate: {e}")),
    }
    let text = std::fs::read_to_string(&config).unwrap_or_default();
    if !text.contains("listen = \"0.0.0.0:9464\"") {
        problems.push("the config does not serve metrics on 0.0.0.0:9464".into());
    }
    // The embedded definition is the repository's.
    let embedded = std::fs::read_to_string(dir.join("state-machines/iot-enrich.asl.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    let shipped = std::fs::read_to_string(root().join("config/state-machines/iot-enrich.asl.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok());
    if embedded.is_none() || embedded != shipped {
        problems
            .push("the ConfigMap's iot-enrich.asl.json differs from config/state-machines/".into());
    }
    let _ = std::fs::remove_dir_all(&dir);
    verdict(problems.is_empty(), || problems.join("\n    "))
}

/// The metric names a PromQL expression reads (`expressway_…`), histogram series
/// (`_bucket`, `_sum`, `_count`) as their histogram's name.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("expressway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every `expr` in a dashboard, panels in rows included.
fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                match (key.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

fn grafana_dashboard_queries_only_documented_metrics(_: &mut ()) -> Verdict {
    let grafana = root().join("config/grafana");
    let path: PathBuf = grafana.join("dashboards/expressway.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dashboard: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    let documented: BTreeSet<String> = spec
        .split('`')
        .filter(|s| s.starts_with("expressway_"))
        .map(str::to_owned)
        .collect();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    let queried: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    let undocumented: Vec<&String> = queried.difference(&documented).collect();
    let mut problems = Vec::new();
    if !undocumented.is_empty() {
        problems.push(format!("not in docs/metrics.md: {undocumented:?}"));
    }
    for want in [
        "expressway_executions_started_total",
        "expressway_execution_duration_seconds",
        "expressway_consumer_lag_messages",
        "expressway_partitions_assigned",
        "expressway_task_calls_total",
        "expressway_state_entered_total",
        "expressway_state_exited_total",
        "expressway_state_duration_seconds",
    ] {
        if !queried.contains(want) {
            problems.push(format!("no panel queries {want}"));
        }
    }
    // Every panel reads the provisioned data source.
    let datasources = yaml_documents(&grafana.join("provisioning/datasources/prometheus.yml"))?;
    let uid = datasources[0]["datasources"][0]["uid"].clone();
    let mut uids = BTreeSet::new();
    collect_datasource_uids(&dashboard, &mut uids);
    if uids.len() != 1 || uids.first() != uid.as_str().map(str::to_owned).as_ref() {
        problems.push(format!(
            "panels read {uids:?}, the provisioned uid is {uid}"
        ));
    }
    let provider = yaml_documents(&grafana.join("provisioning/dashboards/expressway.yml"))?;
    if provider[0]["providers"][0]["options"]["path"] != "/var/lib/grafana/dashboards" {
        problems.push("the dashboard provider does not read /var/lib/grafana/dashboards".into());
    }
    verdict(problems.is_empty(), || {
        format!("{} ({} queries)", problems.join("\n    "), all.len())
    })
}

fn collect_datasource_uids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(uid) = fields
                .get("datasource")
                .and_then(|d| d.get("uid"))
                .and_then(Value::as_str)
            {
                out.insert(uid.to_owned());
            }
            fields
                .values()
                .for_each(|v| collect_datasource_uids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_datasource_uids(v, out)),
        _ => {}
    }
}
