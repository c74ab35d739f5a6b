//! The web console as a person sees it: a daemon fed by the embedded cluster's demo producer
//! (the demo workflow, about one event in fifty failing), its console loaded in headless
//! Chromium (Debian's `chromium`, which `.ci/run` installs), and assertions on the rendered
//! page. Screenshots go to `target/console/`.
//!
//! Skipped, saying why, when Chromium is not installed, except under
//! `EXPRESSWAY_REQUIRE_ALL=1`.

use crate::daemon::{free_port, Daemon};
use crate::harness::{Group, Problem, Verdict};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

pub fn group() -> Group<Console> {
    Group::new("console", Console::start)
        .check(
            "the_state_machine_page_draws_every_state_of_the_graph",
            the_state_machine_page_draws_every_state_of_the_graph,
        )
        .check(
            "the_state_machine_page_counts_move_between_loads",
            the_state_machine_page_counts_move_between_loads,
        )
        .check(
            "a_failed_execution_page_shows_the_failing_state_and_its_error",
            a_failed_execution_page_shows_the_failing_state_and_its_error,
        )
        .skipped_by("EXPRESSWAY_SKIP_CONSOLE")
}

pub struct Console {
    port: u16,
    dir: PathBuf,
    shots: PathBuf,
    _daemon: Daemon,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Console {
    fn start() -> Result<Self, Problem> {
        if !Path::new(CHROMIUM).exists() {
            let why = format!("{CHROMIUM} not found (apt-get install chromium)");
            return Err(
                if std::env::var("EXPRESSWAY_REQUIRE_ALL").as_deref() == Ok("1") {
                    Problem::Failed(format!("{why} (required: EXPRESSWAY_REQUIRE_ALL=1)"))
                } else {
                    Problem::Skipped(why)
                },
            );
        }
        let dir = std::env::temp_dir().join(format!("expressway-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let definition = root().join("config/state-machines/iot-enrich.asl.json");
        let (port, metrics) = (free_port(), free_port());
        let config = dir.join("console.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[kafka]
brokers = "embedded"
group_id = "console-test"

[[state_machines]]
name = "iot-enrich"
definition = "{}"

[[sources]]
name = "sensors"
type = "kafka"
topics = ["sensor-events"]
state_machine = "iot-enrich"
results_topic = "sensor-results"
dead_letter_topic = "sensor-dlq"

[metrics]
listen = "127.0.0.1:{metrics}"

[demo_producer]
enabled = true
topic = "sensor-events"
events_per_sec = 400

[demo]
print_records = "off"

[history]
sample_rate = 0.05
include_data = true

[console]
listen = "127.0.0.1:{port}"
"#,
                definition.display()
            ),
        )
        .map_err(|e| format!("config: {e}"))?;
        let shots = root().join("target/console");
        std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
        let console = Console {
            port,
            dir,
            shots,
            _daemon: Daemon::start(&config),
        };
        // Up, and a failed execution kept (about one event in fifty fails).
        let started = Instant::now();
        loop {
            let failed = console
                .api("/api/machines/iot-enrich/executions?status=FAILED")
                .ok()
                .and_then(|v| v["executions"].as_array().map(Vec::len))
                .unwrap_or(0);
            if failed > 0 {
                return Ok(console);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("no failed execution on the console after 30 s"
                    .to_string()
                    .into());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A JSON document of the console's, over plain HTTP/1.1.
    fn api(&self, path: &str) -> Result<Value, String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("connect: {e}"))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| e.to_string())?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let (start, end) = (body.find('{'), body.rfind('}'));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(format!("no JSON from {path}: {text}"));
        };
        serde_json::from_str(&body[start..=end]).map_err(|e| format!("{path}: {e}"))
    }

    /// The page at `path` as Chromium renders it after its script has run (its DOM), and a
    /// screenshot of it at `target/console/<shot>.png`.
    fn render(&self, path: &str, shot: &str) -> Result<String, String> {
        let chromium = |extra: &[&str]| {
            let profile = self.dir.join(format!("profile-{shot}-{}", extra.len()));
            Command::new(CHROMIUM)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--window-size=1500,1000",
                    "--virtual-time-budget=3000",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .args(extra)
                .arg(self.url(path))
                .output()
                .map_err(|e| format!("chromium does not run: {e}"))
        };
        let png = self.shots.join(format!("{shot}.png"));
        let shot_arg = format!("--screenshot={}", png.display());
        chromium(&[&shot_arg])?;
        let out = chromium(&["--dump-dom"])?;
        let dom = String::from_utf8_lossy(&out.stdout).into_owned();
        if dom.trim().is_empty() {
            return Err(format!(
                "chromium rendered nothing: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(dom)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn the_state_machine_page_draws_every_state_of_the_graph(c: &mut Console) -> Verdict {
    let dom = c.render("/machines/iot-enrich", "state-machine")?;
    let definition: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/state-machines/iot-enrich.asl.json"))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    collect_state_names(&definition, &mut names);
    for name in &names {
        if !dom.contains(&format!("data-state=\"{name}\"")) {
            return Err(format!("state {name} is not drawn").into());
        }
        if !dom.contains(&format!("<td>{name}</td>")) {
            return Err(format!("state {name} has no row in the states table").into());
        }
    }
    if !dom.contains("class=\"badge") {
        return Err("no figures on the graph's states".to_string().into());
    }
    Ok(())
}

fn collect_state_names(machine: &Value, out: &mut Vec<String>) {
    for (name, state) in machine["States"].as_object().into_iter().flatten() {
        out.push(name.clone());
        for branch in state["Branches"].as_array().into_iter().flatten() {
            collect_state_names(branch, out);
        }
        for key in ["ItemProcessor", "Iterator"] {
            if state.get(key).is_some() {
                collect_state_names(&state[key], out);
            }
        }
    }
}

/// The "Started" card's figure (`1234`, `12.3k`, `1.20M`).
fn started_card(dom: &str) -> Result<f64, String> {
    let at = dom
        .find("data-k=\"Started\">")
        .ok_or("no Started card on the page")?;
    let rest = &dom[at + "data-k=\"Started\">".len()..];
    let text = &rest[..rest.find('<').ok_or("unterminated card")?];
    let (number, scale) = match text.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match text.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (text, 1.0),
        },
    };
    number
        .parse::<f64>()
        .map(|n| n * scale)
        .map_err(|_| format!("the Started card says {text:?}"))
}

fn the_state_machine_page_counts_move_between_loads(c: &mut Console) -> Verdict {
    let first = started_card(&c.render("/machines/iot-enrich", "state-machine-first")?)?;
    std::thread::sleep(Duration::from_secs(2));
    let second = started_card(&c.render("/machines/iot-enrich", "state-machine")?)?;
    if second <= first {
        return Err(format!("executions started did not move: {first} then {second}").into());
    }
    Ok(())
}

fn a_failed_execution_page_shows_the_failing_state_and_its_error(c: &mut Console) -> Verdict {
    let list = c.api("/api/machines/iot-enrich/executions?status=FAILED")?;
    let executions = list["executions"].as_array().ok_or("no executions")?;
    // One with its history events if any was sampled: the page then lists them too.
    let failed = executions
        .iter()
        .find(|x| x["sampled"] == true)
        .or(executions.first())
        .ok_or("no failed execution")?;
    let sampled = failed["sampled"] == true;
    let arn = failed["executionArn"]
        .as_str()
        .ok_or("no failed execution")?;
    let path = format!(
        "/executions/{}",
        arn.replace(':', "%3A") // the page's own links encode the ARN the same way
    );
    let dom = c.render(&path, "failed-execution")?;
    let error = failed["error"].as_str().unwrap_or_default();
    let state = failed["failedState"].as_str().unwrap_or_default();
    if error.is_empty() || !dom.contains(error) {
        return Err(format!("the page does not show the error {error:?}").into());
    }
    if !dom.contains(&format!("<b>{state}</b>")) {
        return Err(format!("the page does not name the failing state {state:?}").into());
    }
    let failing_node = format!("data-state=\"{state}\"");
    let node = dom
        .find(&failing_node)
        .and_then(|at| dom[..at].rfind("<g "))
        .map(|start| &dom[start..])
        .ok_or("the failing state is not drawn")?;
    let tag = &node[..node.find('>').unwrap_or(node.len())];
    if !tag.contains(" failed") {
        return Err(format!("the failing state is not marked failed: {tag}").into());
    }
    if sampled && !(dom.contains("id=\"events\"") && dom.contains("FailStateEntered")) {
        return Err("a sampled execution's page lists no history events"
            .to_string()
            .into());
    }
    Ok(())
}
