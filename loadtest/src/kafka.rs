//! Kafka mode: events produced to the daemon's input topic, results and dead letters read
//! back, end to end.
//!
//! Each event's key is `<run>:<phase>:<id>:<sent_ns>`. The daemon keys its result and
//! dead-letter records by the source key, so the key alone tells which event an answer is
//! for and when it was sent (ns since the harness started): latency and completeness need no
//! change to the workflow's input and no shared table between producer and consumer. The
//! random run id lets a run on a shared, long-lived topic ignore earlier runs' records.
//!
//! Phase 0 is a warm-up in two steps: a few events prove the answer path (the daemon's
//! consumer-group join takes seconds), then `warmup` of load at the first phase's rate
//! brings both processes to their working size (allocator pools, librdkafka's buffers, the
//! broker's logs): without it the first half second of the first phase ran at half speed
//! with ~150 ms latencies and no core busy, and a later phase at the same rate did not.
//! The warm-up's latencies are printed, not reported. Each measured phase (one per rate of a
//! sweep) is sent, then drained until every event is answered or `drain_secs` pass, so
//! phases do not overlap and each one's transition count is exact.

use crate::proc_stats::{cpu_secs, rss_bytes};
use crate::report::{timeline, Completeness, Percentiles, RunReport};
use crate::scenario::Scenario;
use crate::stats::Recorder;
use anyhow::{anyhow, bail, Context as _, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WARMUP_EVENTS: u64 = 200;

/// Everything kafka mode needs beyond the scenario (command-line options).
pub struct Options {
    /// `None`: an embedded broker (librdkafka's mock cluster) in this process.
    pub brokers: Option<String>,
    /// Start the daemon (one process per `load.instances`); else one is already running.
    pub start_daemon: bool,
    pub expressway: PathBuf,
    /// An already-running daemon's metrics address (`host:port`), for transitions/s.
    pub metrics: Option<String>,
    pub input_topic: String,
    pub results_topic: String,
    pub dead_letter_topic: String,
    /// Offered rates, one measured phase each (0: as fast as the window allows).
    pub rates: Vec<u64>,
    pub phase_duration: Duration,
    /// Load sent at the first phase's rate before measuring (see the module doc).
    pub warmup: Duration,
    pub drain: Duration,
    pub interval: Duration,
    pub linger_ms: u64,
    /// The started daemon's source `delivery`.
    pub delivery: String,
    /// Both consumers' (daemon's and harness's) `fetch.wait.max.ms`; `None` keeps
    /// librdkafka's default. See [`consumer_properties`].
    pub fetch_wait_ms: Option<u64>,
    /// A phase "breaks" when its p99 exceeds this or it completes < 90% of the offered rate.
    pub max_p99: Duration,
    pub work_dir: PathBuf,
}

/// Answers of one phase, filled by the consumer thread.
struct Phase {
    start_ns: u64,
    /// How many times each id was answered.
    seen: Vec<u8>,
    results: u64,
    dead_letters: u64,
    duplicates: u64,
    recorder: Recorder,
    /// First answers, read by the producer to bound what is outstanding.
    answered: Arc<AtomicU64>,
}

/// Nanoseconds since the harness started: the clock of send times and answer times.
fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// Processes this run started (daemons, helpers), stopped when it ends, whatever happens.
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        // Daemons before the helpers they call (they were started after them).
        for (name, child) in self.0.iter_mut().rev() {
            // SIGTERM first so a daemon drains and exits cleanly; SIGKILL if it lingers.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        eprintln!("loadtest: {name} did not stop on SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The sum of a counter over its label sets, from a Prometheus text endpoint.
fn scrape_counter(addr: &str, name: &str) -> Result<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)
        .with_context(|| format!("metrics at {addr} do not answer"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// CPU seconds used so far by the daemons (summed) and by this process.
fn cpu_now(daemons: &[(u32, String)]) -> (Option<f64>, Option<f64>) {
    let daemon = (!daemons.is_empty()).then(|| {
        daemons
            .iter()
            .filter_map(|(pid, _)| cpu_secs(Some(*pid)))
            .sum()
    });
    (daemon, cpu_secs(None))
}

/// librdkafka's mock cluster (and tansu 0.6) holds a fetch that finds nothing new for the
/// consumer's `fetch.wait.max.ms` (500 ms by default), even if records arrive meanwhile,
/// where Apache Kafka answers as soon as it has data: measured at 2,000 events/s on the mock,
/// p50 end to end 282 ms with the default, 20 ms with 10 ms.
fn consumer_properties(fetch_wait_ms: Option<u64>) -> String {
    match fetch_wait_ms {
        Some(ms) => format!("[kafka.properties]\n\"fetch.wait.max.ms\" = \"{ms}\"\n"),
        None => String::new(),
    }
}

fn daemon_config(
    scenario: &Scenario,
    opts: &Options,
    brokers: &str,
    instance: usize,
    metrics_port: u16,
) -> String {
    let load = &scenario.load;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let written = format!(
        r#"# Written by expressway-loadtest for scenario {name}.
[kafka]
brokers = {brokers}
group_id = "expressway-loadtest"
# Static membership with a name per instance: several run on this one host.
instance_id = "loadtest-{instance}"
{kafka_properties}
[[state_machines]]
name = {name}
definition = {definition}

[[sources]]
name = "loadtest"
type = "kafka"
topics = [{input}]
state_machine = {name}
results_topic = {results}
dead_letter_topic = {dlq}
delivery = {delivery}

[workers]
shards = {shards}
max_in_flight_per_shard = {in_flight}
commit_interval_ms = 1000
shutdown_grace_secs = 30

[producer]
linger_ms = {linger}
batch_num_messages = 10000

[logs]
level = "OFF"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
        name = quote(&scenario.name),
        brokers = quote(brokers),
        definition = quote(&scenario.definition_path.to_string_lossy()),
        input = quote(&opts.input_topic),
        results = quote(&opts.results_topic),
        dlq = quote(&opts.dead_letter_topic),
        shards = load.shards,
        in_flight = load.max_in_flight_per_shard,
        linger = opts.linger_ms,
        delivery = quote(&opts.delivery),
        kafka_properties = consumer_properties(opts.fetch_wait_ms),
    );
    with_extra(&written, &scenario.daemon.extra_config)
}

/// `config` with the scenario's extra configuration merged in, table by table: a scenario
/// may add sections or keys to those written here (`[metrics] per_state = false`).
fn with_extra(config: &str, extra: &str) -> String {
    if extra.trim().is_empty() {
        return config.to_owned();
    }
    fn merge(into: &mut toml::Table, from: toml::Table) {
        for (key, value) in from {
            match (into.get_mut(&key), value) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                (_, value) => {
                    into.insert(key, value);
                }
            }
        }
    }
    let (Ok(mut table), Ok(extra)) = (config.parse::<toml::Table>(), extra.parse::<toml::Table>())
    else {
        // Left to the daemon to report, with its own error.
        return format!("{config}\n{extra}\n");
    };
    merge(&mut table, extra);
    table.to_string()
}

fn start_helpers(scenario: &Scenario, children: &mut Children) -> Result<()> {
    for helper in &scenario.helpers {
        let (program, args) = helper
            .command
            .split_first()
            .ok_or_else(|| anyhow!("a helper of {} has an empty command", scenario.name))?;
        let child = Command::new(program)
            .args(args)
            .current_dir(&scenario.dir)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting helper {:?}", helper.command))?;
        children.0.push((helper.command.join(" "), child));
        if let Some(port) = helper.wait_for_port {
            wait_for_port(port, Duration::from_secs(20))
                .with_context(|| format!("helper {:?}", helper.command))?;
        }
    }
    Ok(())
}

fn start_daemons(
    scenario: &Scenario,
    opts: &Options,
    brokers: &str,
    children: &mut Children,
) -> Result<Vec<(u32, String)>> {
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("creating {}", opts.work_dir.display()))?;
    if !opts.expressway.is_file() {
        bail!(
            "the daemon binary {} does not exist: build it (cargo build --release) or pass --expressway",
            opts.expressway.display()
        );
    }
    let mut daemons = Vec::new();
    for instance in 0..scenario.load.instances {
        let port = free_port()?;
        let config = opts.work_dir.join(format!("daemon-{instance}.toml"));
        std::fs::write(
            &config,
            daemon_config(scenario, opts, brokers, instance, port),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let log_path = config.with_extension("log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(&opts.expressway)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", opts.expressway.display()))?;
        let pid = child.id();
        children.0.push((format!("daemon {instance}"), child));
        wait_for_port(port, Duration::from_secs(30)).with_context(|| {
            format!(
                "daemon {instance} did not start; its log is {}",
                log_path.display()
            )
        })?;
        daemons.push((pid, format!("127.0.0.1:{port}")));
    }
    Ok(daemons)
}

/// A consumer of the results and dead-letter topics from their current ends (no group
/// join: partitions are assigned directly, so it reads from the first answer on).
/// `fetch_wait_ms`: see [`consumer_properties`]; `None` keeps librdkafka's default.
fn answer_consumer(
    brokers: &str,
    topics: [&str; 2],
    fetch_wait_ms: Option<u64>,
) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "expressway-loadtest-reader")
        .set("enable.auto.commit", "false");
    if let Some(ms) = fetch_wait_ms {
        config.set("fetch.wait.max.ms", ms.to_string());
    }
    let consumer: BaseConsumer = config.create().context("creating the answer consumer")?;
    let mut assignment = TopicPartitionList::new();
    let timeout = Duration::from_secs(10);
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("metadata of {topic}"))?;
        let partitions = metadata
            .topics()
            .first()
            .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            .unwrap_or_default();
        if partitions.is_empty() {
            bail!("topic {topic} does not exist (or has no partitions) on {brokers}");
        }
        for p in partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, timeout)
                .with_context(|| format!("end offset of {topic}/{p}"))?;
            assignment.add_partition_offset(topic, p, Offset::Offset(high))?;
        }
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    Ok(consumer)
}

/// Reads answers until `stop`, filing each under its phase.
fn consume(
    consumer: BaseConsumer,
    dead_letter_topic: String,
    run: String,
    epoch: Instant,
    phases: Arc<Mutex<Vec<Phase>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let message = match consumer.poll(Duration::from_millis(50)) {
            None => continue,
            Some(Err(e)) => {
                eprintln!("loadtest: reading answers: {e}");
                continue;
            }
            Some(Ok(m)) => m,
        };
        let at = now_ns(epoch);
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        let mut parts = key.split(':');
        if parts.next() != Some(run.as_str()) {
            continue; // another run's record
        }
        let parsed = (|| {
            let phase: usize = parts.next()?.parse().ok()?;
            let id: usize = parts.next()?.parse().ok()?;
            let sent: u64 = parts.next()?.parse().ok()?;
            Some((phase, id, sent))
        })();
        let Some((phase, id, sent)) = parsed else {
            eprintln!("loadtest: an answer with a malformed key: {key}");
            continue;
        };
        let mut phases = phases.lock().expect("phases lock");
        let Some(p) = phases.get_mut(phase) else {
            continue;
        };
        if p.seen.len() <= id {
            p.seen.resize(id + 1, 0);
        }
        p.seen[id] = p.seen[id].saturating_add(1);
        if p.seen[id] > 1 {
            p.duplicates += 1;
            continue;
        }
        if message.topic() == dead_letter_topic {
            p.dead_letters += 1;
        } else {
            p.results += 1;
        }
        p.recorder
            .record(at.saturating_sub(p.start_ns), at.saturating_sub(sent), 0);
        p.answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the sender saw of a phase.
struct Sending {
    peak_outstanding: u64,
    interval: Duration,
    /// Events sent in each interval since the phase started.
    per_interval: Vec<u64>,
}

impl Sending {
    fn new(interval: Duration) -> Sending {
        Sending {
            peak_outstanding: 0,
            interval,
            per_interval: Vec::new(),
        }
    }
}

/// Sends one phase: `rate` events/s (0: as fast as the window allows) for `duration` or
/// until `max_events` are sent, never more than `window` unanswered. Returns how many were
/// sent.
#[allow(clippy::too_many_arguments)]
fn send_phase(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    scenario: &Scenario,
    run: &str,
    phase: usize,
    epoch: Instant,
    rate: u64,
    duration: Duration,
    max_events: u64,
    window: u64,
    answered: &AtomicU64,
    sending: &mut Sending,
) -> u64 {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut key = String::new();
    loop {
        let elapsed = started.elapsed();
        if elapsed >= duration || sent >= max_events {
            break;
        }
        let due = match rate {
            0 => u64::MAX,
            r => (elapsed.as_secs_f64() * r as f64) as u64,
        };
        let outstanding = sent - answered.load(Ordering::Relaxed).min(sent);
        sending.peak_outstanding = sending.peak_outstanding.max(outstanding);
        let sent_before = sent;
        let budget = due
            .saturating_sub(sent)
            .min(window.saturating_sub(outstanding))
            .min(max_events - sent)
            .min(10_000);
        let mut queue_full = false;
        for _ in 0..budget {
            use std::fmt::Write as _;
            key.clear();
            let _ = write!(key, "{run}:{phase}:{sent}:{}", now_ns(epoch));
            let payload = &scenario.input_texts[sent as usize % scenario.input_texts.len()];
            match producer.send(BaseRecord::to(topic).key(&key).payload(payload)) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    queue_full = true;
                    break;
                }
                Err((e, _)) => {
                    eprintln!("loadtest: producing to {topic}: {e}");
                    queue_full = true;
                    break;
                }
            }
        }
        let index = (elapsed.as_nanos() / sending.interval.as_nanos().max(1)) as usize;
        if sending.per_interval.len() <= index {
            sending.per_interval.resize(index + 1, 0);
        }
        sending.per_interval[index] += sent - sent_before;
        if budget == 0 || queue_full {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    sent
}

/// Runs the scenario end to end through Kafka; one report run per rate.
pub fn run(scenario: &Scenario, opts: &Options) -> Result<Vec<RunReport>> {
    let epoch = Instant::now();
    let run_id = format!("{:016x}", fastrand::u64(..));

    // The embedded broker lives in this process until the run ends; the daemon reaches it
    // over the real protocol on a loopback port.
    let cluster = match &opts.brokers {
        Some(_) => None,
        None => Some(MockCluster::new(1).map_err(|e| anyhow!("embedded Kafka: {e}"))?),
    };
    let brokers = match (&cluster, &opts.brokers) {
        (Some(c), _) => c.bootstrap_servers(),
        (None, Some(b)) => b.clone(),
        (None, None) => unreachable!("one of the two is set"),
    };
    if let Some(c) = &cluster {
        for topic in [
            &opts.input_topic,
            &opts.results_topic,
            &opts.dead_letter_topic,
        ] {
            c.create_topic(topic, scenario.load.partitions, 1)
                .map_err(|e| anyhow!("embedded Kafka: creating {topic}: {e}"))?;
        }
    }

    // Declared after the broker, so dropped before it, on every path: a daemon stopping
    // drains and flushes, which needs its broker.
    let mut children = Children(Vec::new());
    start_helpers(scenario, &mut children)?;
    let daemons = match opts.start_daemon {
        true => start_daemons(scenario, opts, &brokers, &mut children)?,
        false => Vec::new(),
    };
    let metrics: Vec<String> = match &opts.metrics {
        Some(addr) => vec![addr.clone()],
        None => daemons.iter().map(|(_, addr)| addr.clone()).collect(),
    };
    let transitions_now = || -> Result<Option<f64>> {
        if metrics.is_empty() {
            return Ok(None);
        }
        let mut sum = 0.0;
        for addr in &metrics {
            sum += scrape_counter(addr, "expressway_state_transitions_total")?;
        }
        Ok(Some(sum))
    };

    // Daemon memory, sampled in the background; the peak is reset at each phase.
    let peak_rss = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let pids: Vec<u32> = daemons.iter().map(|(pid, _)| *pid).collect();
        let (peak, stop) = (peak_rss.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let total: u64 = pids.iter().filter_map(|p| rss_bytes(*p)).sum();
                peak.fetch_max(total, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let phases: Arc<Mutex<Vec<Phase>>> = Arc::new(Mutex::new(Vec::new()));
    let consumer = answer_consumer(
        &brokers,
        [&opts.results_topic, &opts.dead_letter_topic],
        opts.fetch_wait_ms,
    )?;
    let reader = {
        let (phases, stop, run, dlq) = (
            phases.clone(),
            stop.clone(),
            run_id.clone(),
            opts.dead_letter_topic.clone(),
        );
        std::thread::spawn(move || consume(consumer, dlq, run, epoch, phases, stop))
    };
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", opts.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("creating the producer")?;

    let interval_ns = opts.interval.as_nanos() as u64;
    let new_phase = |phases: &Mutex<Vec<Phase>>| {
        let answered = Arc::new(AtomicU64::new(0));
        let mut all = phases.lock().expect("phases lock");
        all.push(Phase {
            start_ns: now_ns(epoch),
            seen: Vec::new(),
            results: 0,
            dead_letters: 0,
            duplicates: 0,
            recorder: Recorder::new(interval_ns),
            answered: answered.clone(),
        });
        (all.len() - 1, answered)
    };
    // Waits until `sent` events of a phase are answered, or `timeout`; true if they were.
    let drain = |answered: &AtomicU64, sent: u64, timeout: Duration| -> Result<bool> {
        producer
            .flush(Duration::from_secs(30))
            .context("flushing the producer")?;
        let deadline = Instant::now() + timeout;
        while answered.load(Ordering::Relaxed) < sent {
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(true)
    };

    // Warm-up: the daemon joins its group and the answer path is proven before timing.
    let (warmup, answered) = new_phase(&phases);
    let mut ignored = Sending::new(opts.interval);
    let sent = send_phase(
        &producer,
        &opts.input_topic,
        scenario,
        &run_id,
        warmup,
        epoch,
        0,
        Duration::from_secs(60),
        WARMUP_EVENTS,
        WARMUP_EVENTS,
        &answered,
        &mut ignored,
    );
    if !drain(&answered, sent, Duration::from_secs(60))? {
        bail!(
            "warm-up: {} of {sent} events answered within 60 s; is the daemon running on {brokers} (input {}, results {}, dead letters {})?",
            answered.load(Ordering::Relaxed),
            opts.input_topic,
            opts.results_topic,
            opts.dead_letter_topic
        );
    }
    if !opts.warmup.is_zero() {
        let (index, answered) = new_phase(&phases);
        let rate = opts.rates.first().copied().unwrap_or(0);
        let sent = send_phase(
            &producer,
            &opts.input_topic,
            scenario,
            &run_id,
            index,
            epoch,
            rate,
            opts.warmup,
            u64::MAX,
            scenario.load.max_outstanding,
            &answered,
            &mut ignored,
        );
        let drained = drain(&answered, sent, opts.drain)?;
        let all = phases.lock().expect("phases lock");
        let latency = Percentiles::of(&all[index].recorder.latency);
        eprintln!(
            "loadtest: warm-up, {:.0} s at the first rate: {sent} events{}, p50 {:.2} ms, p99 {:.2} ms (not reported)",
            opts.warmup.as_secs_f64(),
            if drained { "" } else { " (not all answered)" },
            latency.p50_us / 1000.0,
            latency.p99_us / 1000.0
        );
    }

    let mut reports = Vec::new();
    for &rate in &opts.rates {
        let transitions_before = transitions_now()?;
        peak_rss.store(0, Ordering::Relaxed);
        let cpu_before = cpu_now(&daemons);
        let (index, answered) = new_phase(&phases);
        let started = Instant::now();
        let mut sending = Sending::new(opts.interval);
        let sent = send_phase(
            &producer,
            &opts.input_topic,
            scenario,
            &run_id,
            index,
            epoch,
            rate,
            opts.phase_duration,
            u64::MAX,
            scenario.load.max_outstanding,
            &answered,
            &mut sending,
        );
        let sent_secs = started.elapsed().as_secs_f64();
        let drained = drain(&answered, sent, opts.drain)?;
        let transitions_after = transitions_now()?;
        let rss = peak_rss.load(Ordering::Relaxed);
        let cpu_after = cpu_now(&daemons);
        let wall = started.elapsed().as_secs_f64();
        // Cores busy on average over the phase (sending and draining).
        let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall);
        let report = {
            let all = phases.lock().expect("phases lock");
            let p = &all[index];
            let missing_ids: Vec<u64> = (0..sent)
                .filter(|&id| p.seen.get(id as usize).copied().unwrap_or(0) == 0)
                .collect();
            // Throughput over the span from the first answer to the last: a workflow that
            // holds each execution (a Wait) is not charged for its own duration.
            let span = match p.recorder.completed {
                0 | 1 => sent_secs,
                _ => (p.recorder.last_ns - p.recorder.first_ns) as f64 / 1e9,
            }
            .max(opts.interval.as_secs_f64());
            let transitions_per_sec = match (transitions_before, transitions_after) {
                (Some(a), Some(b)) => Some((b - a) / span),
                _ => None,
            };
            let latency = Percentiles::of(&p.recorder.latency);
            let events_per_sec = p.recorder.completed as f64 / span;
            let mut problems = Vec::new();
            if !missing_ids.is_empty() {
                problems.push(format!(
                    "{} of {sent} events unanswered after draining {:?}",
                    missing_ids.len(),
                    opts.drain
                ));
            }
            if latency.p99_us > opts.max_p99.as_secs_f64() * 1e6 {
                problems.push(format!(
                    "p99 {} over the {:?} limit",
                    crate::report::duration_text(latency.p99_us),
                    opts.max_p99
                ));
            }
            if rate > 0 && events_per_sec < 0.9 * rate as f64 {
                problems.push(format!(
                    "completed {events_per_sec:.0} events/s of {rate} offered"
                ));
            }
            let mut timeline = timeline(&p.recorder, false);
            // Per-interval transitions are not known through Kafka; spread the measured
            // total by completed events (transitions per event are fixed per input).
            if let Some(total) = transitions_per_sec {
                let per_event = total * span / p.recorder.completed.max(1) as f64;
                for point in &mut timeline {
                    point.transitions_per_sec = Some(point.events_per_sec * per_event);
                }
            }
            // In flight at each interval's end: sent so far less answered so far.
            let (mut sent_so_far, mut answered_so_far) = (0u64, 0u64);
            for (i, point) in timeline.iter_mut().enumerate() {
                sent_so_far += sending.per_interval.get(i).copied().unwrap_or(0);
                answered_so_far += p.recorder.intervals[i].completed;
                point.in_flight = Some(sent_so_far.saturating_sub(answered_so_far));
            }
            RunReport {
                label: match rate {
                    0 => "as fast as possible".to_owned(),
                    r => format!("{r} events/s offered"),
                },
                settings: json!({
                    "brokers": if cluster.is_some() { "embedded".to_owned() } else { brokers.clone() },
                    "rate": rate,
                    "duration_secs": opts.phase_duration.as_secs_f64(),
                    "partitions": scenario.load.partitions,
                    "instances": scenario.load.instances,
                    "shards": scenario.load.shards,
                    "max_in_flight_per_shard": scenario.load.max_in_flight_per_shard,
                    "max_outstanding": scenario.load.max_outstanding,
                    "daemon_started_by_harness": opts.start_daemon,
                    "linger_ms": opts.linger_ms,
                    "delivery": opts.delivery,
                    "fetch_wait_ms": opts.fetch_wait_ms,
                    "drained": drained,
                }),
                elapsed_secs: span,
                executions: p.recorder.completed,
                succeeded: p.results,
                failed: p.dead_letters,
                events_per_sec,
                transitions_per_sec,
                latency,
                completeness: Some(Completeness {
                    sent,
                    results: p.results,
                    dead_letters: p.dead_letters,
                    missing: missing_ids.len() as u64,
                    duplicates: p.duplicates,
                    missing_ids_sample: missing_ids.iter().take(20).copied().collect(),
                }),
                peak_outstanding: Some(sending.peak_outstanding),
                daemon_peak_rss_mb: (!daemons.is_empty()).then(|| rss as f64 / 1048576.0),
                daemon_cpu_cores: cores(cpu_before.0, cpu_after.0),
                harness_cpu_cores: cores(cpu_before.1, cpu_after.1),
                verdict: (!problems.is_empty()).then(|| problems.join("; ")),
                timeline,
            }
        };
        eprintln!(
            "loadtest: {}: {} events, {:.0} events/s, p99 {}",
            report.label,
            report.executions,
            report.events_per_sec,
            crate::report::duration_text(report.latency.p99_us)
        );
        let broke = report.verdict.is_some();
        reports.push(report);
        if broke && opts.rates.len() > 1 {
            eprintln!("loadtest: stopping the sweep: this rate did not hold");
            break;
        }
    }

    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    reader
        .join()
        .map_err(|_| anyhow!("the answer reader panicked"))?;
    drop(producer);
    drop(children); // stops the daemons before the broker they talk to
    drop(cluster);
    Ok(reports)
}

/// The daemon binary next to this one (both are built into the same target directory).
pub fn default_expressway() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("expressway")))
        .unwrap_or_else(|| Path::new("target/release/expressway").to_path_buf())
}

#[cfg(test)]
mod extra_config_tests {
    use super::with_extra;

    #[test]
    fn a_scenario_adds_keys_to_written_sections_and_sections_of_its_own() {
        let written = "[metrics]\nlisten = \"127.0.0.1:1\"\n";
        let extra = "[metrics]\nper_state = false\n\n[history]\nenabled = false\n";
        let merged: toml::Table = with_extra(written, extra).parse().expect("TOML");
        assert_eq!(merged["metrics"]["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(merged["metrics"]["per_state"].as_bool(), Some(false));
        assert_eq!(merged["history"]["enabled"].as_bool(), Some(false));
        assert_eq!(with_extra(written, " "), written);
    }
}
