//! `expressway run`: wires a config into a running daemon and takes it down cleanly.
//!
//! Start-up, in [`run`]'s order: compile the state machines, serve metrics, start the
//! integrations runtime, connect Kafka (the embedded cluster and its topics, the producer),
//! start the API, build each source's sinks and bindings, start the shards, then the
//! sources (the Kafka consumer, the SQS receivers) and the demo.
//!
//! Order of shutdown (SIGTERM/SIGINT), in [`Running::shutdown`]: stop the SQS receivers,
//! the demo producer and the record printer, and stop routing new events; let the shards
//! finish what they hold (up to the grace period) and have their records acknowledged,
//! commit the final offsets, flush the producer, hand unfinished SQS messages back, close
//! the consumer, the embedded cluster and the API, print the final "stopped after …" line
//! (last), exit 0.

use super::config::{Config, Delivery, SourceConfig, SourceKind};
use super::demo::{self, PrintRecords, PrintedTopic};
use super::health::Health;
use super::kafka::config::Brokers;
use super::kafka::transactions::{ConsumerSlot, KafkaTransactions};
use super::kafka::{self, KafkaConsumer, KafkaProduce, KafkaProducer, KafkaSink};
use super::shard::{
    Binding, Bindings, CommitPoint, Control, MessageAck, Msg, OutputTopics, Shard, ShardConfig,
    ShardStats, Sink, Sinks, Transactions,
};
use super::sqs::{SourceSettings, SqsSink, SqsSource};
use crate::asl::{compile, Program};
use crate::engine::wall_millis;
use crate::integrations::sqs::{Sqs, SqsConfig};
use crate::integrations::{unserved_resources, Integrations, Limits, Served};
use crate::resource::TaskResource;
use crate::telemetry::config::LogDestination;
use crate::telemetry::exec_log::{ExecutionLogger, LogLevel};
use crate::telemetry::{self, Observers, SourceMetrics, SqsMetrics};
use anyhow::{anyhow, bail, Context as _, Result};
use crossbeam_channel::{Receiver, Sender};
use rdkafka::consumer::Consumer;
use rdkafka::mocking::MockCluster;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Partitions of each topic the embedded cluster creates.
const EMBEDDED_PARTITIONS: i32 = 4;

/// What the daemon serves beyond its integrations, as `config` asks.
pub fn served(config: &Config) -> Served {
    Served {
        callbacks: config.integrations.allow_callbacks,
        nested_executions: config.api.is_some(),
        kafka_produce: config.uses_kafka(),
    }
}

/// Compiles every state machine of a config; all diagnostics, or the programs by name.
pub fn compile_state_machines(config: &Config) -> Result<HashMap<String, Arc<Program>>> {
    let mut programs = HashMap::new();
    let mut problems = Vec::new();
    for sm in &config.state_machines {
        let text = std::fs::read_to_string(&sm.definition)
            .with_context(|| format!("cannot read {}", sm.definition.display()))?;
        let definition: serde_json::Value = match crate::asl::json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: not JSON: {e}", sm.definition.display()));
                continue;
            }
        };
        let compiled = compile(&definition).and_then(|p| {
            let mut unserved = crate::asl::validate::duplicate_keys(&text);
            unserved.extend(unserved_resources(&definition, served(config)));
            if unserved.is_empty() {
                Ok(p)
            } else {
                Err(unserved)
            }
        });
        match compiled {
            Ok(p) => {
                programs.insert(sm.name.clone(), Arc::new(p));
            }
            Err(diags) => problems.extend(diags.iter().map(|d| {
                format!(
                    "{}:{}: {} {}",
                    sm.definition.display(),
                    d.pointer,
                    d.code,
                    d.message
                )
            })),
        }
    }
    if problems.is_empty() {
        Ok(programs)
    } else {
        bail!("{}", problems.join("\n"))
    }
}

/// What `delivery = "exactly_once"` does not cover in this config, one line each: every Task
/// of an exactly-once source's state machine, with its JSON pointer. A Task's effect on
/// another service (Lambda, HTTP, SQS, or a `kafka:produce` record, which is not part of the
/// shard's transaction) happens again when its event is run again after a crash.
pub fn exactly_once_notices(config: &Config) -> Vec<String> {
    let mut notices = Vec::new();
    for source in &config.sources {
        if source.delivery != Delivery::ExactlyOnce {
            continue;
        }
        let Some(sm) = config.state_machine(&source.state_machine) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&sm.definition) else {
            continue;
        };
        let Ok(definition) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        crate::asl::walk::each_machine(&definition, &mut |machine, pointer| {
            for (state, state_pointer) in crate::asl::walk::states(machine, pointer) {
                if state["Type"] != "Task" {
                    continue;
                }
                let resource = state["Resource"].as_str().unwrap_or("(no resource)");
                notices.push(format!(
                    "{}:{state_pointer}: notice: source {} is exactly_once, but this Task's call to {resource} is outside its Kafka transaction: after a crash or a rebalance it may run again",
                    sm.definition.display(),
                    source.name
                ));
            }
        });
    }
    notices
}

fn logger(config: &Config) -> Result<Option<ExecutionLogger>> {
    let logs = &config.logs;
    if logs.level == LogLevel::Off {
        return Ok(None);
    }
    let out: Box<dyn std::io::Write + Send> = match &logs.destination {
        LogDestination::Stdout => Box::new(std::io::stdout()),
        LogDestination::Stderr => Box::new(std::io::stderr()),
        LogDestination::File(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?,
        ),
    };
    Ok(Some(ExecutionLogger::new(
        logs.level,
        logs.include_execution_data,
        out,
    )))
}

// ---- observing: per-state metrics, the execution history, the console --------------------

/// Starts the console if `[console]` is configured.
fn start_console(config: &Config, observers: &Observers) -> Result<()> {
    let Some(console) = &config.console else {
        return Ok(());
    };
    let mut machines = Vec::new();
    for sm in &config.state_machines {
        let text = std::fs::read_to_string(&sm.definition)
            .with_context(|| format!("cannot read {}", sm.definition.display()))?;
        let definition: serde_json::Value = serde_json::from_str(&text)?;
        let svg = crate::graph::svg(&definition).unwrap_or_else(|e| {
            tracing::warn!(state_machine = %sm.name, "cannot draw the graph: {e}");
            String::new()
        });
        let Some(figures) = observers
            .metrics(&sm.name)
            .states()
            .map(|s| s.figures().clone())
        else {
            continue;
        };
        machines.push(crate::console::MachineView {
            name: sm.name.clone(),
            svg,
            figures,
            history: observers.history(&sm.name),
            sources: config
                .sources
                .iter()
                .filter(|s| s.state_machine == sm.name)
                .map(|s| s.name.clone())
                .collect(),
            rates: crate::console::Rates::default(),
        });
    }
    let addr = crate::console::start(
        console.listen,
        crate::console::Console {
            machines,
            history: observers.history.clone(),
            bearer_token: console.bearer_token.clone(),
        },
    )
    .with_context(|| format!("cannot serve the console on {}", console.listen))?;
    tracing::info!("console at http://{addr}/");
    Ok(())
}

// ---- [api] -------------------------------------------------------------------------------

/// Starts the AWS-compatible API if the config has an `[api]` section, serving every
/// configured state machine. Task calls go to `resources` (nested executions aside).
/// Starts the API if configured; returns its server and the resource stack its executions
/// use (callbacks, nested executions, then `resources`), for the shards to use as well.
fn start_api(
    config: &Config,
    resources: Arc<dyn TaskResource>,
    observers: &Observers,
    health: &Health,
) -> Result<Option<(crate::api::ApiServer, Arc<dyn TaskResource>)>> {
    let Some(settings) = config.api.clone() else {
        return Ok(None);
    };
    let listening = health.pending("api", "not listening yet");
    let mut seeds = Vec::new();
    for sm in &config.state_machines {
        seeds.push(crate::api::Seed {
            name: sm.name.clone(),
            definition: std::fs::read_to_string(&sm.definition)
                .with_context(|| format!("cannot read {}", sm.definition.display()))?,
            workflow_type: sm.workflow_type,
        });
    }
    let callbacks = crate::callbacks::Callbacks::new(&settings.region, &settings.account);
    let logger = logger(config)?;
    let state = crate::api::build(
        settings,
        seeds,
        resources,
        callbacks,
        served(config),
        logger,
        observers.clone(),
    )?;
    let resources = state.resources.clone();
    let server = crate::api::spawn(state)?;
    listening.up();
    tracing::info!("AWS Step Functions API at http://{}/", server.addr);
    Ok(Some((server, resources)))
}

/// An API-only daemon (`[api]` and no `[[sources]]`): serves until SIGTERM or SIGINT.
fn run_api_only(server: crate::api::ApiServer, health: &Health, stop: &AtomicBool) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        telemetry::oplog::flush_suppressed();
    }
    health.stopping();
    tracing::info!("shutting down");
    server.shutdown();
    tracing::info!("stopped");
    Ok(())
}

// ---- end of [api] ------------------------------------------------------------------------

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<()> {
    telemetry::oplog::init(&config.daemon_log);
    // First: a SIGTERM that arrives while the daemon starts (an orchestrator giving up on a
    // slow start) is then a clean shutdown once started, not a kill by the default action.
    let stop = stop_on_signal()?;
    let programs = compile_state_machines(&config)?;
    for notice in exactly_once_notices(&config) {
        tracing::info!("{notice}");
    }
    // What /healthz and /readyz answer: every part below registers its checks here.
    let health = Health::new();
    // Not ready until every part has registered its checks: the probes answer from here on.
    let startup = health.pending("startup", "starting");
    if let Some(listen) = config.metrics.listen {
        telemetry::install_prometheus(listen, health.clone())?;
        tracing::info!("metrics at http://{listen}/metrics (probes: /healthz, /readyz)");
    }
    // After the recorder is installed: metric handles bind to the recorder current then.
    let observers = Observers::new(
        programs.iter().map(|(name, p)| (name.as_str(), &**p)),
        config.metrics.per_state,
        &config.history,
    );
    start_console(&config, &observers)?;
    // Task integrations do their I/O here, off the shard threads; the runtime lives until
    // `run` returns, after the shards have stopped.
    let integration_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.integrations.threads)
        .thread_name("integrations")
        .enable_all()
        .build()
        .context("starting the integrations runtime")?;
    let integrations =
        Integrations::new(&config.integrations, integration_runtime.handle().clone())
            .map_err(|e| anyhow!(e))?;
    if config.sources.is_empty() {
        // The config reader allows no sources only with [api].
        let (server, _) = start_api(&config, Arc::new(integrations), &observers, &health)?
            .ok_or_else(|| anyhow!("nothing to run: no [[sources]] and no [api]"))?;
        startup.up();
        return run_api_only(server, &health, &stop);
    }

    let cluster = KafkaCluster::connect(&config, &health)?;
    let integrations: Arc<dyn TaskResource> = match &cluster.producer {
        Some(producer) => Arc::new(integrations.with_kafka_producer(Arc::new(KafkaProduce {
            producer: producer.clone(),
        }))),
        None => Arc::new(integrations),
    };
    // With the API, Tasks also reach nested executions and callbacks (its stack).
    let (api, resources) = match start_api(&config, integrations.clone(), &observers, &health)? {
        Some((server, resources)) => (Some(server), resources),
        None => (None, integrations),
    };
    let runtime = integration_runtime.handle();
    // Shards over their byte budget; the SQS sources receive nothing while there are any.
    let shards_over_budget = Arc::new(AtomicUsize::new(0));
    let (bindings, sqs_sources) = build_bindings(
        &config,
        &programs,
        &observers,
        &cluster,
        runtime,
        &shards_over_budget,
        &health,
    )?;
    let shards = start_shards(
        &config,
        &cluster,
        bindings,
        resources,
        &shards_over_budget,
        &health,
    )?;
    let consumer = start_consumer(&config, &cluster.brokers, &shards.senders, &health)?;
    if let Some(consumer) = &consumer {
        let _ = cluster.consumer.set(Arc::downgrade(consumer));
    }
    for source in &sqs_sources {
        source.receive_into(shards.senders.clone());
    }
    let demo = Demo::start(&config, &cluster.brokers)?;
    let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(
        "running {} shard(s) on {}",
        shards.senders.len(),
        names.join(", ")
    );

    let running = Running {
        health: &health,
        config: &config,
        cluster,
        api,
        shards,
        consumer,
        sqs_sources,
        demo,
    };
    startup.up();
    running.serve(&stop);
    running.shutdown()
}

/// SIGTERM and SIGINT set the returned flag.
fn stop_on_signal() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

/// The Kafka side every source shares: where the brokers are (the embedded cluster, started
/// here, or the configured servers) and the producer of results, dead letters and
/// `kafka:produce` Tasks. Without Kafka in use (SQS in and out): no cluster, no client.
struct KafkaCluster {
    /// Lives as long as the daemon: everything else talks to it over its real protocol on a
    /// local port.
    _embedded: Option<MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
    /// Bootstrap servers; empty when Kafka is not used.
    brokers: String,
    producer: Option<Arc<KafkaProducer>>,
    /// What the shards' transactional producers are made from (exactly-once sources).
    producer_config: rdkafka::ClientConfig,
    /// The consumer, once it exists, for the transactions' group metadata.
    consumer: ConsumerSlot,
}

impl KafkaCluster {
    fn connect(config: &Config, health: &Health) -> Result<KafkaCluster> {
        let uses_kafka = config.uses_kafka();
        let embedded = match &config.kafka.brokers {
            Brokers::Embedded if uses_kafka => {
                Some(MockCluster::new(1).map_err(|e| anyhow!("embedded Kafka: {e}"))?)
            }
            _ => None,
        };
        let brokers = match (&embedded, &config.kafka.brokers) {
            (Some(cluster), _) => cluster.bootstrap_servers(),
            (None, Brokers::Servers(servers)) => servers.join(","),
            (None, Brokers::Embedded) => String::new(), // Kafka is not used
        };
        if let Some(cluster) = &embedded {
            for source in &config.sources {
                let topics = source
                    .topics
                    .iter()
                    .chain(&source.results_topic)
                    .chain(&source.dead_letter_topic);
                for topic in topics {
                    cluster
                        .create_topic(topic, EMBEDDED_PARTITIONS, 1)
                        .map_err(|e| anyhow!("embedded Kafka: creating {topic}: {e}"))?;
                }
            }
            tracing::info!("embedded Kafka at {brokers}");
        }
        let properties = config.kafka.property_list();
        let producer_config = kafka::producer_config(
            &brokers,
            &properties,
            config.producer.linger_ms,
            u64::from(config.producer.batch_num_messages),
        );
        let producer = match uses_kafka {
            true => Some(Arc::new(
                kafka::producer(&producer_config, health).context("creating the Kafka producer")?,
            )),
            false => None,
        };
        Ok(KafkaCluster {
            _embedded: embedded,
            brokers,
            producer,
            producer_config,
            consumer: ConsumerSlot::default(),
        })
    }
}

/// Every source's bindings (what runs its events, where its records go), by binding key:
/// each Kafka topic, and `sqs+<name>` for an SQS source; with the SQS sources, which
/// receive nothing yet.
fn build_bindings(
    config: &Config,
    programs: &HashMap<String, Arc<Program>>,
    observers: &Observers,
    cluster: &KafkaCluster,
    runtime: &tokio::runtime::Handle,
    shards_over_budget: &Arc<AtomicUsize>,
    health: &Arc<Health>,
) -> Result<(Bindings, Vec<Arc<SqsSource>>)> {
    let mut bindings = HashMap::new();
    let mut sqs_sources = Vec::new();
    for source in &config.sources {
        let sm = config
            .state_machine(&source.state_machine)
            .ok_or_else(|| anyhow!("source {} names no state machine", source.name))?;
        // The SQS source and sinks share one client (its own connection pool), configured
        // like `[integrations.sqs]` (endpoint, region, credentials).
        let sqs_client = Arc::new(
            Sqs::new(&SqsConfig {
                limits: Limits {
                    max_concurrency: 256,
                    timeout: Duration::from_secs(60),
                },
                ..config.integrations.sqs.clone()
            })
            .map_err(|e| anyhow!(e))?,
        );
        let sink = build_sinks(
            source,
            cluster.producer.as_ref(),
            &sqs_client,
            runtime,
            health,
        );
        let exactly_once = (source.delivery == Delivery::ExactlyOnce).then(|| OutputTopics {
            results: source.results_topic.as_deref().map(Arc::from),
            dead_letters: source.dead_letter_topic.as_deref().map(Arc::from),
        });
        let binding = |label: &str, acks| Binding {
            program: programs[&sm.name].clone(),
            state_machine: Arc::from(sm.name.as_str()),
            workflow_type: sm.workflow_type,
            sink: sink.clone(),
            state_machine_metrics: observers.metrics(&sm.name),
            source_metrics: SourceMetrics::new(&source.name, label),
            history: observers.history(&sm.name),
            acks,
            exactly_once: exactly_once.clone(),
        };
        if let Some(sqs) = &source.sqs {
            // `+` is in no Kafka topic name (no binding key is shared) and allowed in
            // execution names, which the shard makes as `<key>-0-<sequence>`.
            let key: Arc<str> = Arc::from(format!("sqs+{}", source.name));
            let queue_name = sqs.queue_url.rsplit('/').next().unwrap_or_default();
            let sqs_source = SqsSource::new(
                SourceSettings {
                    name: source.name.clone(),
                    key: key.clone(),
                    queue_url: sqs.queue_url.clone(),
                    visibility_timeout_secs: sqs.visibility_timeout_secs,
                    wait_time_secs: sqs.wait_time_secs,
                    receivers: sqs.receivers,
                    release_failures: sqs.release_failures,
                    capacity: config.workers.shard_count() * config.workers.max_in_flight_per_shard,
                    shards_over_budget: shards_over_budget.clone(),
                    receiving: health.pending(
                        format!("sqs_source:{}", source.name),
                        "no ReceiveMessage has answered yet",
                    ),
                },
                sqs_client,
                runtime.clone(),
            );
            let acks: Arc<dyn MessageAck> = sqs_source.clone();
            bindings.insert(key, Arc::new(binding(queue_name, Some(acks))));
            sqs_sources.push(sqs_source);
        }
        for topic in &source.topics {
            bindings.insert(Arc::from(topic.as_str()), Arc::new(binding(topic, None)));
        }
    }
    Ok((Arc::new(bindings), sqs_sources))
}

/// Where one source's results and dead letters go: its topics (through the one producer)
/// and its queues, each record to the first sink that takes its kind.
fn build_sinks(
    source: &SourceConfig,
    producer: Option<&Arc<KafkaProducer>>,
    sqs_client: &Arc<Sqs>,
    runtime: &tokio::runtime::Handle,
    health: &Arc<Health>,
) -> Arc<dyn Sink> {
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    if let Some(producer) = producer {
        sinks.push(Arc::new(KafkaSink {
            producer: producer.clone(),
            results_topic: source.results_topic.clone(),
            dead_letter_topic: source.dead_letter_topic.clone(),
            health: health.clone(),
        }));
    }
    if source.results_queue_url.is_some() || source.dead_letter_queue_url.is_some() {
        sinks.push(Arc::new(SqsSink::new(
            sqs_client.clone(),
            runtime,
            source.results_queue_url.clone(),
            source.dead_letter_queue_url.clone(),
            SqsMetrics::new(&source.name),
            health.up(format!("sqs_sink:{}", source.name)),
        )));
    }
    Arc::new(Sinks(sinks))
}

/// The execution shards, one thread each.
struct Shards {
    /// Each shard's inbox, in shard order.
    senders: Vec<Sender<Msg>>,
    threads: Vec<JoinHandle<(ShardStats, Vec<CommitPoint>)>>,
    /// The shards' pause/resume requests, for the Kafka consumer.
    control: Receiver<Control>,
}

fn start_shards(
    config: &Config,
    cluster: &KafkaCluster,
    bindings: Bindings,
    resources: Arc<dyn TaskResource>,
    shards_over_budget: &Arc<AtomicUsize>,
    health: &Arc<Health>,
) -> Result<Shards> {
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    let exactly_once = config
        .sources
        .iter()
        .any(|s| s.delivery == Delivery::ExactlyOnce);
    // Stable across restarts with static membership, so that a restarted instance fences
    // its predecessor's producers and aborts their open transactions at once.
    let producer_prefix = match &config.kafka.instance_id {
        Some(id) => format!("{}-{id}", config.kafka.group_id),
        None => format!(
            "{}-{}-{}",
            config.kafka.group_id,
            std::process::id(),
            wall_millis()
        ),
    };
    for index in 0..config.workers.shard_count() {
        let transactions: Option<Box<dyn Transactions>> = match exactly_once {
            true => Some(Box::new(
                KafkaTransactions::start(
                    &cluster.producer_config,
                    &format!("{producer_prefix}-shard-{index}"),
                    cluster.consumer.clone(),
                    config.kafka.transaction_interval(),
                )
                .map_err(|e| anyhow!(e))?,
            )),
            false => None,
        };
        let (shard, tx) = Shard::new(
            ShardConfig {
                index,
                max_in_flight: config.workers.max_in_flight_per_shard,
                max_held_bytes: config.workers.max_held_bytes_per_shard,
                shards_over_budget: shards_over_budget.clone(),
                logger: logger(config)?,
                transactions,
            },
            bindings.clone(),
            resources.clone(),
            control_tx.clone(),
        );
        senders.push(tx);
        // A shard whose event loop panics fails /healthz.
        let alive = health.thread_guard(format!("shard-{index}"));
        threads.push(
            std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    let _alive = alive;
                    shard.run()
                })?,
        );
    }
    Ok(Shards {
        senders,
        threads,
        control: control_rx,
    })
}

/// The consumer of every Kafka source's topics, subscribed; `None` without Kafka sources.
fn start_consumer(
    config: &Config,
    brokers: &str,
    shards: &[Sender<Msg>],
    health: &Health,
) -> Result<Option<Arc<KafkaConsumer>>> {
    if !config.sources.iter().any(|s| s.kind == SourceKind::Kafka) {
        return Ok(None);
    }
    let properties = config.kafka.property_list();
    let sources = config
        .sources
        .iter()
        .flat_map(|s| s.topics.iter().map(|t| (t.clone(), s.name.clone())))
        .collect();
    let topics: Vec<&str> = config
        .sources
        .iter()
        .flat_map(|s| s.topics.iter().map(String::as_str))
        .collect();
    let consumer = kafka::consumer(
        brokers,
        &config.kafka.group_id,
        config.kafka.instance_id.as_deref(),
        &properties,
        shards.to_vec(),
        sources,
        config.workers.commit_interval(),
        health,
    )
    .context("creating the Kafka consumer")?;
    consumer.subscribe(&topics).context("subscribing")?;
    Ok(Some(consumer))
}

/// The demo's threads: the event producer (`[demo_producer]`) and the record printer
/// (`[demo] print_records`), each optional, stopped together.
struct Demo {
    stop: Arc<AtomicBool>,
    producer: Option<JoinHandle<u64>>,
    printer: Option<JoinHandle<()>>,
}

impl Demo {
    fn start(config: &Config, brokers: &str) -> Result<Demo> {
        let stop = Arc::new(AtomicBool::new(false));
        let producer = match &config.demo_producer {
            Some(d) => Some(demo::spawn(
                brokers,
                d.topic.clone(),
                u64::from(d.events_per_sec),
                stop.clone(),
            )?),
            None => None,
        };
        let printed: Vec<PrintedTopic> = config
            .sources
            .iter()
            .flat_map(|s| {
                let results = s.results_topic.iter().map(|topic| PrintedTopic {
                    topic: topic.clone(),
                    kind: "result",
                });
                let dead_letters = s.dead_letter_topic.iter().map(|topic| PrintedTopic {
                    topic: topic.clone(),
                    kind: "dead letter",
                });
                results.chain(dead_letters)
            })
            .collect();
        let printer = match config.demo.print_records {
            PrintRecords::Off => None,
            mode => {
                let properties = config.kafka.property_list();
                let topics: Vec<&str> = printed.iter().map(|t| t.topic.as_str()).collect();
                tracing::info!(
                    "printing {} records of {} ([demo] print_records)",
                    if mode == PrintRecords::All {
                        "all"
                    } else {
                        "a sample of the"
                    },
                    topics.join(", ")
                );
                let printer =
                    demo::spawn_printer(brokers, &properties, printed, mode, stop.clone())
                        .context("starting the record printer")?;
                Some(printer)
            }
        };
        Ok(Demo {
            stop,
            producer,
            printer,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(producer) = self.producer {
            let _ = producer.join();
        }
        if let Some(printer) = self.printer {
            let _ = printer.join();
        }
    }
}

/// A started daemon: what [`Running::shutdown`] takes down, in order.
struct Running<'c> {
    health: &'c Health,
    config: &'c Config,
    cluster: KafkaCluster,
    api: Option<crate::api::ApiServer>,
    shards: Shards,
    consumer: Option<Arc<KafkaConsumer>>,
    sqs_sources: Vec<Arc<SqsSource>>,
    demo: Demo,
}

impl Running<'_> {
    /// Feeds the shards until `stop` is set.
    fn serve(&self, stop: &AtomicBool) {
        match &self.consumer {
            Some(consumer) => kafka::consume(
                consumer,
                &self.shards.senders,
                &self.shards.control,
                stop,
                self.config.workers.commit_interval(),
            ),
            // SQS sources only: they pace themselves (backpressure by messages held).
            None => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    self.shards.control.try_iter().for_each(drop);
                    telemetry::oplog::flush_suppressed();
                }
            }
        }
    }

    /// Takes the daemon down in the order documented at the top of this file.
    fn shutdown(self) -> Result<()> {
        let Running {
            health,
            config,
            cluster,
            api,
            shards,
            consumer,
            sqs_sources,
            demo,
        } = self;
        health.stopping();
        tracing::info!("shutting down");
        for source in &sqs_sources {
            source.stop_receiving();
        }
        demo.stop();
        let deadline = wall_millis() + config.workers.shutdown_grace().as_millis() as i64;
        for tx in &shards.senders {
            let _ = tx.send(Msg::Shutdown { deadline });
        }
        // Keep the group membership alive (poll) while the shards drain; new messages are not
        // routed any more, so they stay uncommitted and are redelivered after a restart.
        while shards.threads.iter().any(|t| !t.is_finished()) {
            match &consumer {
                Some(consumer) => drop(consumer.poll(Duration::from_millis(50))),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let mut points: Vec<CommitPoint> = Vec::new();
        let mut total = ShardStats::default();
        for t in shards.threads {
            let (stats, p) = t.join().map_err(|_| anyhow!("a shard panicked"))?;
            points.extend(p);
            total.events += stats.events;
            total.succeeded += stats.succeeded;
            total.failed += stats.failed;
            total.timed_out += stats.timed_out;
            total.dead_letters += stats.dead_letters;
            total.transitions += stats.transitions;
        }
        if let Some(consumer) = &consumer {
            kafka::commit_final(consumer, &points).context("final commit")?;
        }
        if let Some(producer) = &cluster.producer {
            kafka::flush(producer, Duration::from_secs(10)).context("flushing the producer")?;
        }
        // Deletes still under way complete; messages never finished go back to their queues.
        for source in &sqs_sources {
            source.finish(Duration::from_secs(10));
        }
        // Closing the consumer leaves the group, which reports its partitions revoked: before
        // the final line, so that it stays the last.
        drop(consumer);
        drop(cluster);
        if let Some(server) = api {
            server.shutdown();
        }
        telemetry::oplog::flush_suppressed();
        tracing::info!(
            "stopped after {} events ({} succeeded, {} failed, {} timed out, {} dead letters, {} transitions)",
            total.events, total.succeeded, total.failed, total.timed_out, total.dead_letters, total.transitions
        );
        Ok(())
    }
}
