//! `expressway-loadtest`: the load-testing harness (loadtest/README.md).
//!
//! - `engine`: the engine alone, in-process on N threads: its ceiling.
//! - `kafka`: end to end through Kafka against the daemon (started here on an embedded
//!   broker, or any brokers and daemon), with completeness checked per event; several
//!   `--rates` make a sweep that stops at the first rate that does not hold.
//!
//! Every run prints a table and writes a JSON report and an SVG plot.

mod engine;
mod kafka;
mod proc_stats;
mod report;
mod scenario;
mod stats;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use report::Report;
use scenario::Scenario;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[global_allocator]
static GLOBAL: expressway::allocator::Mimalloc = expressway::allocator::Mimalloc;

#[derive(Parser)]
#[command(
    name = "expressway-loadtest",
    about = "Load-testing harness for Expressway"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Executions in-process on worker threads: no broker, no daemon.
    Engine(EngineArgs),
    /// End to end through Kafka against the daemon.
    Kafka(Box<KafkaArgs>),
}

#[derive(Args)]
struct Common {
    /// A scenario file (loadtest/scenarios/*.toml).
    #[arg(long)]
    scenario: PathBuf,
    /// Seconds of load per run (default: the scenario's `load.duration_secs`).
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Width of one timeline interval (the plot's resolution), in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// The JSON report (default: target/loadtest/<scenario>-<mode>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The SVG plot (default: the JSON report's path with .svg).
    #[arg(long)]
    plot: Option<PathBuf>,
}

#[derive(Args)]
struct EngineArgs {
    #[command(flatten)]
    common: Common,
    /// Worker threads; a list (`1,2`) runs once per count and reports the scaling.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    threads: Vec<usize>,
}

#[derive(Args)]
struct KafkaArgs {
    #[command(flatten)]
    common: Common,
    /// Brokers of a running Kafka (`host:port,…`); its topics must exist. Default: an
    /// embedded broker (librdkafka's mock cluster) in this process.
    #[arg(long)]
    brokers: Option<String>,
    /// Do not start the daemon: one is already consuming the topics.
    #[arg(long)]
    no_daemon: bool,
    /// With --no-daemon: its metrics address (`host:port`), for transitions/s.
    #[arg(long)]
    metrics: Option<String>,
    /// The daemon binary (default: `expressway` next to this binary).
    #[arg(long)]
    expressway: Option<PathBuf>,
    /// Offered events/s; 0 is as fast as `max_outstanding` allows (default: the scenario's).
    #[arg(long, conflicts_with = "rates")]
    rate: Option<u64>,
    /// A sweep: one run per rate, in order, stopping at the first that does not hold.
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u64>>,
    /// Override the scenario's partitions (embedded broker only); a list (`1,4,8`) runs
    /// once per count, on a fresh broker and daemon each time, and reports the scaling.
    #[arg(long, value_delimiter = ',')]
    partitions: Option<Vec<i32>>,
    /// Override the scenario's shards per daemon; a list (`1,2`) runs once per count.
    #[arg(long, value_delimiter = ',')]
    shards: Option<Vec<usize>>,
    /// Override the scenario's daemon instances.
    #[arg(long)]
    instances: Option<usize>,
    /// Override the scenario's window of unanswered events.
    #[arg(long)]
    max_outstanding: Option<u64>,
    /// How long to wait for the last answers after a run's sending ends.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
    /// Load at the first rate before measuring, to bring the daemon and the broker to their
    /// working size; its latencies are printed, not reported (0: none).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// A run breaks when its p99 latency exceeds this (default: the scenario's).
    #[arg(long)]
    max_p99_ms: Option<u64>,
    #[arg(long, default_value = "loadtest-in")]
    input_topic: String,
    #[arg(long, default_value = "loadtest-results")]
    results_topic: String,
    #[arg(long, default_value = "loadtest-dlq")]
    dead_letter_topic: String,
    /// The producers' (harness's and started daemon's) linger.ms: batching against latency.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// The started daemon's source `delivery`: `at_least_once` or `exactly_once`
    /// (transactions; the harness then reads results `read_committed`).
    #[arg(long, default_value = "at_least_once")]
    delivery: String,
    /// The consumers' (daemon's and harness's) `fetch.wait.max.ms` (default: 10 on the
    /// embedded broker, librdkafka's 500 with --brokers). librdkafka's mock cluster and tansu
    /// hold a fetch that finds nothing new this long, even if records arrive meanwhile, so it
    /// sets their latency floor; Apache Kafka answers as soon as data comes.
    #[arg(long)]
    fetch_wait_ms: Option<u64>,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("expressway-loadtest: {e:#}");
        std::process::exit(1);
    }
}

fn duration_of(common: &Common, scenario: &Scenario) -> Result<Duration> {
    let secs = common.duration_secs.unwrap_or(scenario.load.duration_secs);
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("not a positive duration: {secs} s"))
}

fn run(cli: Cli) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (mode, common, report) = match cli.mode {
        Mode::Engine(args) => {
            let scenario = Scenario::load(&args.common.scenario)?;
            let duration = duration_of(&args.common, &scenario)?;
            if args.threads.contains(&0) {
                bail!("--threads: counts must be at least 1");
            }
            let program = engine::compile_scenario(&scenario)?;
            let interval = Duration::from_millis(args.common.interval_ms.max(1));
            let mut runs = Vec::new();
            for &threads in &args.threads {
                eprintln!("loadtest: engine, {threads} thread(s), {duration:?}");
                runs.push(engine::run(
                    &scenario, &program, threads, duration, interval,
                )?);
            }
            let findings = thread_scaling(&runs, &args.threads);
            let report = Report {
                mode: "engine",
                scenario: scenario.name.clone(),
                description: scenario.description.clone(),
                command,
                runs,
                findings,
            };
            ("engine", args.common, report)
        }
        Mode::Kafka(args) => {
            let mut scenario = Scenario::load(&args.common.scenario)?;
            let load = &mut scenario.load;
            load.instances = args.instances.unwrap_or(load.instances);
            load.max_outstanding = args.max_outstanding.unwrap_or(load.max_outstanding);
            let partition_counts = args.partitions.clone().unwrap_or(vec![load.partitions]);
            let shard_counts = args.shards.clone().unwrap_or(vec![load.shards]);
            if partition_counts.iter().any(|&p| p < 1)
                || shard_counts.iter().any(|&s| s < 1)
                || load.instances < 1
            {
                bail!("--partitions, --shards and --instances must be at least 1");
            }
            let rates = match (&args.rates, args.rate) {
                (Some(rates), _) if !rates.is_empty() => rates.clone(),
                (_, Some(rate)) => vec![rate],
                _ => vec![scenario.load.rate],
            };
            if args.brokers.is_none() && args.no_daemon {
                bail!("--no-daemon needs --brokers: the embedded broker lives in this process");
            }
            let mut options = kafka::Options {
                start_daemon: !args.no_daemon,
                expressway: args
                    .expressway
                    .clone()
                    .unwrap_or_else(kafka::default_expressway),
                metrics: args.metrics.clone(),
                input_topic: args.input_topic.clone(),
                results_topic: args.results_topic.clone(),
                dead_letter_topic: args.dead_letter_topic.clone(),
                phase_duration: duration_of(&args.common, &scenario)?,
                rates,
                warmup: Duration::from_secs(args.warmup_secs),
                drain: Duration::from_secs(args.drain_secs),
                interval: Duration::from_millis(args.common.interval_ms.max(1)),
                linger_ms: args.linger_ms,
                delivery: args.delivery.clone(),
                fetch_wait_ms: args.fetch_wait_ms.or(args.brokers.is_none().then_some(10)),
                max_p99: Duration::from_millis(args.max_p99_ms.unwrap_or(scenario.load.max_p99_ms)),
                work_dir: PathBuf::new(),
                brokers: args.brokers.clone(),
            };
            // One daemon (and, embedded, one broker) per combination of counts.
            let combinations: Vec<(i32, usize)> = partition_counts
                .iter()
                .flat_map(|&p| shard_counts.iter().map(move |&s| (p, s)))
                .collect();
            let mut runs = Vec::new();
            let mut findings = Vec::new();
            // The daemons' configs and logs: kept when a run fails or breaks, for its post-mortem.
            let work_dir =
                std::env::temp_dir().join(format!("expressway-loadtest-{}", std::process::id()));
            for (i, &(partitions, shards)) in combinations.iter().enumerate() {
                scenario.load.partitions = partitions;
                scenario.load.shards = shards;
                options.work_dir = work_dir.join(format!("{partitions}p-{shards}s"));
                let mut these = kafka::run(&scenario, &options)?;
                let prefix = format!("{partitions} partitions, {shards} shards: ");
                if combinations.len() > 1 {
                    for r in &mut these {
                        r.label.insert_str(0, &prefix);
                    }
                }
                findings.extend(saturation(&these, options.rates.len()));
                if i > 0 {
                    if let (Some(first), Some(this)) = (runs.first(), these.first()) {
                        findings.push(scaling(this, first));
                    }
                }
                runs.extend(these);
            }
            if runs.iter().all(|r| r.verdict.is_none()) {
                let _ = std::fs::remove_dir_all(&work_dir);
            } else {
                eprintln!(
                    "loadtest: daemon configs and logs kept in {}",
                    work_dir.display()
                );
            }
            let report = Report {
                mode: "kafka",
                scenario: scenario.name.clone(),
                description: scenario.description.clone(),
                command,
                runs,
                findings,
            };
            ("kafka", args.common, report)
        }
    };
    print!("{}", report::text_table(&report));
    let out = common.out.clone().unwrap_or_else(|| {
        Path::new("target/loadtest").join(format!("{}-{mode}.json", report.scenario))
    });
    let plot = common
        .plot
        .clone()
        .unwrap_or_else(|| out.with_extension("svg"));
    for path in [&out, &plot] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&out, json + "\n").with_context(|| format!("writing {}", out.display()))?;
    std::fs::write(&plot, report::svg_plot(&report))
        .with_context(|| format!("writing {}", plot.display()))?;
    println!("report: {}  plot: {}", out.display(), plot.display());
    if report
        .runs
        .iter()
        .any(|r| r.completeness.as_ref().is_some_and(|c| c.missing > 0))
    {
        bail!("events were lost (see `missing` above)");
    }
    Ok(())
}

/// "2 threads ran ×1.83 the executions/s of 1 thread(s) …", for each count beyond the first.
fn thread_scaling(runs: &[report::RunReport], threads: &[usize]) -> Vec<String> {
    let Some(base) = runs.first() else {
        return Vec::new();
    };
    runs.iter()
        .zip(threads)
        .skip(1)
        .map(|(r, n)| {
            let ratio = r.events_per_sec / base.events_per_sec.max(f64::MIN_POSITIVE);
            match (r.harness_cpu_cores, base.harness_cpu_cores) {
                // Per busy core: whether the engine itself scales, whatever the machine gave.
                (Some(c), Some(c0)) if c > 0.0 && c0 > 0.0 => format!(
                    "scaling: {n} threads ran ×{ratio:.2} the executions/s of {} thread(s), \
                     keeping {c:.2} cores busy against {c0:.2} (×{:.2} per busy core)",
                    threads[0],
                    ratio * c0 / c
                ),
                _ => format!(
                    "scaling: {n} threads ran ×{ratio:.2} the executions/s of {} thread(s)",
                    threads[0]
                ),
            }
        })
        .collect()
}

/// "<this label> ran ×1.31 the events/s of <base label>".
fn scaling(this: &report::RunReport, base: &report::RunReport) -> String {
    format!(
        "scaling: {} ran ×{:.2} the events/s of {}",
        this.label,
        this.events_per_sec / base.events_per_sec.max(f64::MIN_POSITIVE),
        base.label
    )
}

/// For a sweep: the highest rate that held, and the one that broke.
fn saturation(runs: &[report::RunReport], rates: usize) -> Vec<String> {
    if rates < 2 {
        return Vec::new();
    }
    let held = runs.iter().rfind(|r| r.verdict.is_none());
    let broke = runs.iter().find(|r| r.verdict.is_some());
    let mut findings = Vec::new();
    match held {
        Some(r) => findings.push(format!(
            "saturation: highest rate that held: {} ({:.0} events/s completed, p99 {})",
            r.label,
            r.events_per_sec,
            report::duration_text(r.latency.p99_us)
        )),
        None => findings.push("saturation: no rate of the sweep held".to_owned()),
    }
    match broke {
        Some(r) => findings.push(format!(
            "saturation: broke at {}: {}",
            r.label,
            r.verdict.as_deref().unwrap_or_default()
        )),
        None => findings.push("saturation: every rate of the sweep held".to_owned()),
    }
    findings
}
