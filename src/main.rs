//! The `expressway` command line.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use expressway::asl::diagnostic::{codes, Diagnostic};
use expressway::asl::effect::WorkflowType;
use expressway::asl::error::json_text;
use expressway::asl::{compile, ExecutionOptions, Outcome, Program};
use expressway::engine::Clock;
use expressway::integrations::http::{HttpConfig, HttpConnection};
use expressway::integrations::lambda::LambdaConfig;
use expressway::integrations::sqs::SqsConfig;
use expressway::integrations::{Integrations, IntegrationsConfig, Served};
use expressway::resource::TaskResource;
use expressway::runner::Runner;
use serde_json::{json, Value};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: expressway::memory_budget::Metered<expressway::allocator::Mimalloc> =
    expressway::memory_budget::Metered(expressway::allocator::Mimalloc);

#[derive(Parser)]
#[command(
    name = "expressway",
    version,
    about = "Runs AWS Step Functions state machines (ASL) with Express-workflow semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check definitions; prints every diagnostic as FILE:/json/pointer: CODE message.
    /// With --config, checks a daemon config and every definition it names, starting nothing.
    Validate {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(required_unless_present = "config")]
        files: Vec<PathBuf>,
    },
    /// Run the daemon: consume the configured sources, run one execution per event.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one execution to its end and print its result as one JSON line.
    Exec(ExecArgs),
    /// Draw a definition as a graph: SVG (laid out here), Graphviz DOT or Mermaid.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, ignore_case = true, default_value = "svg")]
        format: expressway::graph::Format,
        /// Write the drawing here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ExecArgs {
    /// The state machine definition (ASL JSON).
    #[arg(long)]
    definition: PathBuf,
    /// The execution input (JSON), or `-` for standard input.
    #[arg(long)]
    input: String,
    /// A Step Functions Local MockConfigFile.json answering the Task states.
    #[arg(long, requires = "test_case")]
    mock_config: Option<PathBuf>,
    /// The test case of the mock configuration to use.
    #[arg(long, requires = "mock_config")]
    test_case: Option<String>,
    /// The state machine's name in the mock configuration (default: its only one).
    #[arg(long)]
    state_machine: Option<String>,
    /// Print the execution's history events (AWS names) on stderr.
    #[arg(long)]
    trace: bool,
    /// Run the same execution N times and print executions/s and transitions/s on stderr.
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Let Wait states and retry backoffs take real time (default: a virtual clock that
    /// jumps to the next timer).
    #[arg(long)]
    real_time: bool,
    /// EXPRESS (default) or STANDARD: a Standard execution has no 5-minute cap and its
    /// context object shows `RedriveCount` and a Standard execution ARN.
    #[arg(long, value_enum, ignore_case = true, default_value = "express")]
    workflow_type: WorkflowTypeArg,
    /// Lift the Express 5-minute execution cap (the definition's TimeoutSeconds still applies).
    #[arg(long)]
    no_duration_cap: bool,
    /// Base URL of a Lambda Invoke API serving every function the definition calls
    /// (default: `AWS_ENDPOINT_URL_LAMBDA`, the variable AWS SDKs read).
    #[arg(long, env = "AWS_ENDPOINT_URL_LAMBDA")]
    lambda_endpoint: Option<String>,
    /// Base URL of an SQS API serving every queue the definition sends to (default:
    /// `AWS_ENDPOINT_URL_SQS`; without either, each QueueUrl's own host). Requests are signed
    /// when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set.
    #[arg(long, env = "AWS_ENDPOINT_URL_SQS")]
    sqs_endpoint: Option<String>,
    /// A connection `http:invoke` Tasks may call through, as `ARN=URL_PREFIX` (repeatable):
    /// a Task names it in `Authentication.ConnectionArn` and may call only URLs under the
    /// prefix (`[[integrations.http.connections]]` in a daemon's config).
    #[arg(long = "http-connection", value_name = "ARN=URL_PREFIX")]
    http_connections: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WorkflowTypeArg {
    Express,
    Standard,
}

fn main() -> ExitCode {
    expressway::asl::jsonata::quiet_contained_panics();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { config, files } => match config {
            Some(config) => validate_config(&config),
            None => validate(&files),
        },
        Command::Run { config } => run(&config),
        Command::Exec(args) => exec(args),
        Command::Graph {
            file,
            format,
            output,
        } => expressway::graph::command(&file, format, output.as_deref()),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`expressway validate … | head -1`): nothing more to say to
        // it, and no one to say it to. Quietly, as ripgrep does.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// One line on standard output; an error (a closed pipe) instead of println!'s panic.
fn print_line(line: std::fmt::Arguments) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Reads and compiles a definition; diagnostics come back as `Err` with their text.
/// With `served`, every Task resource must also be one that deployment serves.
fn load_definition(
    path: &Path,
    served: Option<Served>,
) -> Result<std::result::Result<Program, Vec<Diagnostic>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let definition: Value = match expressway::asl::json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Err(vec![Diagnostic::new(
                codes::INVALID_JSON,
                "",
                format!("the definition is not JSON: {e}"),
            )]))
        }
    };
    // A parsed value keeps only the last of two equal keys: the text tells.
    let mut problems = expressway::asl::validate::duplicate_keys(&text);
    problems.extend(
        served
            .map(|served| expressway::integrations::unserved_resources(&definition, served))
            .unwrap_or_default(),
    );
    Ok(match compile(&definition) {
        Ok(program) if problems.is_empty() => Ok(program),
        Ok(_) => Err(problems),
        Err(mut diags) => {
            diags.extend(problems);
            Err(diags)
        }
    })
}

/// Validates definitions: prints every diagnostic, and `FILE: ok` for each file without
/// errors; returns whether all were valid. Alone, `UNSUPPORTED` marks valid ASL that this
/// engine cannot run yet: reported, not an error. With `served` (a deployment's view:
/// `validate --config`) it is one, since the daemon refuses such a definition.
///
/// A directory stands for the `.json` files under it (sorted, recursively). A file that
/// cannot be read, or a directory without any, is an error said on stderr; the others are
/// still checked, and the result is then `Unreadable`.
fn validate_files(files: &[PathBuf], served: Option<Served>) -> Result<Checked> {
    let mut all_valid = true;
    let mut unreadable = false;
    let mut out = std::io::stdout().lock();
    for file in expand_directories(files, &mut unreadable) {
        let diags = match load_definition(&file, served) {
            Ok(loaded) => loaded.err().unwrap_or_default(),
            Err(e) => {
                eprintln!("error: {e:#}");
                unreadable = true;
                continue;
            }
        };
        let mut valid = true;
        for d in diags {
            valid &= d.code == codes::UNSUPPORTED && served.is_none();
            writeln!(
                out,
                "{}:{}: {} {}",
                file.display(),
                d.pointer,
                d.code,
                d.message
            )?;
        }
        if valid {
            writeln!(out, "{}: ok", file.display())?;
        }
        all_valid &= valid;
    }
    Ok(match (unreadable, all_valid) {
        (true, _) => Checked::Unreadable,
        (false, true) => Checked::Valid,
        (false, false) => Checked::Invalid,
    })
}

/// What checking definitions found; its exit code: 0, 1 (diagnostics), 2 (a file unread).
#[derive(Clone, Copy, PartialEq)]
enum Checked {
    Valid,
    Invalid,
    Unreadable,
}

/// The files to check: each argument, or the `.json` files under a directory argument.
fn expand_directories(args: &[PathBuf], unreadable: &mut bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            files.push(arg.clone());
            continue;
        }
        let mut found = Vec::new();
        let mut stack = vec![arg.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", dir.display());
                    *unreadable = true;
                    continue;
                }
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    found.push(path);
                }
            }
        }
        if found.is_empty() {
            eprintln!("error: {}: a directory with no .json file", arg.display());
            *unreadable = true;
        }
        found.sort();
        files.extend(found);
    }
    files
}

fn validate(files: &[PathBuf]) -> Result<ExitCode> {
    Ok(exit_code(validate_files(files, None)?))
}

fn exit_code(checked: Checked) -> ExitCode {
    match checked {
        Checked::Valid => ExitCode::SUCCESS,
        Checked::Invalid => ExitCode::from(1),
        Checked::Unreadable => ExitCode::from(2),
    }
}

/// Every config problem and every diagnostic of the definitions it names, at once.
fn validate_config(path: &Path) -> Result<ExitCode> {
    let config = match expressway::daemon::config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            print_line(format_args!("{}: {errors}", path.display()))?;
            return Ok(ExitCode::from(1));
        }
    };
    let files: Vec<PathBuf> = config
        .state_machines
        .iter()
        .map(|sm| sm.definition.clone())
        .collect();
    let checked = validate_files(&files, Some(expressway::daemon::run::served(&config)))?;
    for notice in expressway::daemon::run::exactly_once_notices(&config) {
        print_line(format_args!("{notice}"))?;
    }
    if checked == Checked::Valid {
        print_line(format_args!("{}: ok", path.display()))?;
    }
    Ok(exit_code(checked))
}

fn run(path: &Path) -> Result<ExitCode> {
    let config = expressway::daemon::config::load(path)
        .map_err(|errors| anyhow::anyhow!("{}:\n{errors}", path.display()))?;
    expressway::daemon::run::run(config)?;
    Ok(ExitCode::SUCCESS)
}

fn exec(args: ExecArgs) -> Result<ExitCode> {
    // `exec` has no API to answer task tokens, no host for nested executions, no producer.
    let served = args.mock_config.is_none().then(Served::default);
    let program = match load_definition(&args.definition, served)? {
        Ok(p) => Arc::new(p),
        Err(diags) => {
            for d in diags {
                eprintln!(
                    "{}:{}: {} {}",
                    args.definition.display(),
                    d.pointer,
                    d.code,
                    d.message
                );
            }
            bail!("the definition is invalid");
        }
    };
    let input_text = if args.input == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input))?
    };
    let input: Value =
        expressway::asl::json::from_str(&input_text).context("the input is not JSON")?;
    // Integrations run their requests here; one thread is plenty for one execution.
    let integration_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let resources: Box<dyn TaskResource> = match (&args.mock_config, &args.test_case) {
        (Some(path), Some(case)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let config = expressway::mock::MockConfig::from_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            // Without --state-machine: the configuration's only state machine, else the one
            // named like the definition file (`sensor-alert.asl.json` → `sensor-alert`).
            let machine = args.state_machine.clone().or_else(|| {
                let names: std::collections::BTreeSet<&str> =
                    config.test_cases().map(|(machine, _)| machine).collect();
                (names.len() > 1).then(|| definition_stem(&args.definition))
            });
            Box::new(
                config
                    .test_case(machine.as_deref(), case)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
        _ => {
            let config = IntegrationsConfig {
                lambda: LambdaConfig {
                    endpoint: args.lambda_endpoint.clone(),
                    ..LambdaConfig::default()
                },
                sqs: SqsConfig {
                    endpoint: args.sqs_endpoint.clone(),
                    ..SqsConfig::default()
                },
                http: HttpConfig {
                    connections: args
                        .http_connections
                        .iter()
                        .map(|c| match c.split_once('=') {
                            Some((arn, url_prefix)) => Ok(HttpConnection {
                                arn: arn.to_owned(),
                                url_prefix: url_prefix.to_owned(),
                                ..HttpConnection::default()
                            }),
                            None => Err(anyhow::anyhow!(
                                "--http-connection {c:?}: expected ARN=URL_PREFIX"
                            )),
                        })
                        .collect::<Result<_>>()?,
                    ..HttpConfig::default()
                },
                ..IntegrationsConfig::default()
            };
            let integrations = Integrations::new(&config, integration_runtime.handle().clone())
                .map_err(|e| anyhow::anyhow!(e))?;
            Box::new(integrations)
        }
    };
    let state_machine_name = args
        .state_machine
        .clone()
        .or_else(|| {
            args.definition
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "StateMachine".into());
    let base_opts = ExecutionOptions {
        state_machine_name: Arc::from(state_machine_name),
        record_history: args.trace,
        workflow_type: match args.workflow_type {
            WorkflowTypeArg::Express => WorkflowType::Express,
            WorkflowTypeArg::Standard => WorkflowType::Standard,
        },
        max_duration_ms: if args.no_duration_cap
            || matches!(args.workflow_type, WorkflowTypeArg::Standard)
        {
            None
        } else {
            Some(expressway::asl::effect::EXPRESS_MAX_DURATION_MS)
        },
        ..ExecutionOptions::default()
    };
    let started = Instant::now();
    let mut transitions = 0u64;
    let mut last = None;
    let mut runner = Runner::new(&*resources);
    for i in 0..args.repeat.max(1) {
        let opts = ExecutionOptions {
            name: Arc::from(format!("exec-{i}")),
            ..base_opts.clone()
        };
        let mut clock = if args.real_time {
            Clock::Real
        } else {
            Clock::virtual_at_wall_time()
        };
        let exec = runner.run(program.clone(), input.clone(), opts, &mut clock);
        transitions += exec.transitions();
        last = Some(exec);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let exec = last.expect("at least one execution ran");
    if args.trace {
        // Each event as GetExecutionHistory answers it: `previousEventId`, and the details
        // AWS gives (a Task event's resource is its TaskScheduled's). The ARN only gives
        // the region.
        let o = &base_opts;
        let arn = format!(
            "arn:aws:states:{}:{}:execution:{}:exec",
            o.region, o.account, o.state_machine_name
        );
        let mut err = std::io::stderr().lock();
        for event in expressway::telemetry::exec_log::api_history(&arn, exec.history(), true) {
            writeln!(err, "{}", json_text(&event))?;
        }
    }
    if args.repeat > 1 {
        eprintln!(
            "{} executions in {:.3}s: {:.0} executions/s, {:.0} transitions/s",
            args.repeat,
            elapsed,
            args.repeat as f64 / elapsed,
            transitions as f64 / elapsed
        );
    }
    let outcome = exec
        .into_outcome()
        .expect("run_to_completion returns a finished execution");
    print_line(format_args!("{}", json_text(&outcome_json(&outcome))))?;
    Ok(ExitCode::SUCCESS)
}

/// `config/sensor-alert.asl.json` → `sensor-alert`: the state machine's default name.
fn definition_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let stem = name.split('.').next().unwrap_or_default();
    if stem.is_empty() {
        "StateMachine".to_string()
    } else {
        stem.to_string()
    }
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Succeeded(output) => json!({ "status": "SUCCEEDED", "output": output }),
        Outcome::Failed(f) | Outcome::TimedOut(f) => {
            let mut m = serde_json::Map::new();
            m.insert("status".into(), json!(outcome.status()));
            if let Some(e) = &f.error {
                m.insert("error".into(), json!(e));
            }
            if let Some(c) = &f.cause {
                m.insert("cause".into(), json!(c));
            }
            Value::Object(m)
        }
    }
}
