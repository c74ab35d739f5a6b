//! Engine mode: executions in-process on N worker threads, no broker, no daemon: the
//! ceiling of the engine itself. Each thread runs one execution after another with a
//! `Runner` on a virtual clock (so Wait states take no real time), the same loop
//! `expressway exec --repeat` and the benchmarks use.

use crate::proc_stats::cpu_secs;
use crate::report::{timeline, Percentiles, RunReport};
use crate::scenario::Scenario;
use crate::stats::Recorder;
use anyhow::{anyhow, bail, Result};
use expressway::asl::{compile, ExecutionOptions, Outcome, Program};
use expressway::engine::{wall_millis, Clock};
use expressway::runner::{run_to_completion, NoResources, Runner};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct ThreadResult {
    recorder: Recorder,
    succeeded: u64,
    failed: u64,
}

pub fn compile_scenario(scenario: &Scenario) -> Result<Arc<Program>> {
    compile(&scenario.definition)
        .map(Arc::new)
        .map_err(|diags| {
            let lines: Vec<String> = diags
                .iter()
                .map(|d| format!("{} {} {}", d.pointer, d.code, d.message))
                .collect();
            anyhow!(
                "{} does not compile:\n{}",
                scenario.definition_path.display(),
                lines.join("\n")
            )
        })
}

/// Checks up front that the workflow runs in-process: with no Task integrations here, a
/// workflow whose every execution fails is measuring its error path, not the engine.
fn check_runs(scenario: &Scenario, program: &Arc<Program>) -> Result<()> {
    let mut last_failure = None;
    for input in &scenario.inputs {
        let mut clock = Clock::Virtual { now: wall_millis() };
        let exec = run_to_completion(
            program.clone(),
            input.clone(),
            ExecutionOptions::default(),
            &NoResources,
            &mut clock,
        );
        match exec.into_outcome() {
            Some(Outcome::Succeeded(_)) => return Ok(()),
            Some(Outcome::Failed(f) | Outcome::TimedOut(f)) => last_failure = Some(f),
            None => {}
        }
    }
    let cause = last_failure.map_or_else(String::new, |f| {
        format!(
            ": {} ({})",
            f.error.unwrap_or_default(),
            f.cause.unwrap_or_default()
        )
    });
    bail!(
        "every input of {} fails in engine mode{cause}; engine mode has no Task integrations \
         (use kafka mode, which runs the daemon with the scenario's integrations)",
        scenario.name
    )
}

/// Runs the scenario's workflow on `threads` threads for `duration`.
pub fn run(
    scenario: &Scenario,
    program: &Arc<Program>,
    threads: usize,
    duration: Duration,
    interval: Duration,
) -> Result<RunReport> {
    check_runs(scenario, program)?;
    let cpu_before = cpu_secs(None);
    let started = Instant::now();
    let deadline = started + duration;
    let results: Vec<ThreadResult> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let program = program.clone();
                scope.spawn(move || {
                    let inputs = &scenario.inputs;
                    let opts = ExecutionOptions::default();
                    let mut recorder = Recorder::new(interval.as_nanos() as u64);
                    let (mut succeeded, mut failed) = (0, 0);
                    // Threads start at different inputs so that they do not run in lockstep.
                    let mut n = t;
                    let mut runner = Runner::new(&NoResources);
                    let mut now = Instant::now();
                    while now < deadline {
                        let input = inputs[n % inputs.len()].clone();
                        n += 1;
                        let mut clock = Clock::Virtual {
                            now: 1_700_000_000_000,
                        };
                        let exec = runner.run(program.clone(), input, opts.clone(), &mut clock);
                        let end = Instant::now();
                        match exec.outcome() {
                            Some(Outcome::Succeeded(_)) => succeeded += 1,
                            _ => failed += 1,
                        }
                        recorder.record(
                            (end - started).as_nanos() as u64,
                            (end - now).as_nanos() as u64,
                            exec.transitions(),
                        );
                        now = end;
                    }
                    ThreadResult {
                        recorder,
                        succeeded,
                        failed,
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("an engine worker panicked"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    // Whether the threads had their cores: on a shared machine they may not.
    let cpu_cores = cpu_before
        .zip(cpu_secs(None))
        .map(|(before, after)| (after - before) / elapsed);
    let mut total = Recorder::new(interval.as_nanos() as u64);
    let (mut succeeded, mut failed) = (0, 0);
    for r in &results {
        total.merge(&r.recorder);
        succeeded += r.succeeded;
        failed += r.failed;
    }
    // The last interval is cut short by the deadline; the plot would show it as a drop.
    let full_intervals = (elapsed / interval.as_secs_f64()).floor() as usize;
    total.intervals.truncate(full_intervals.max(1));
    Ok(RunReport {
        label: format!("{threads} thread{}", if threads == 1 { "" } else { "s" }),
        settings: json!({"threads": threads, "duration_secs": duration.as_secs_f64()}),
        elapsed_secs: elapsed,
        executions: total.completed,
        succeeded,
        failed,
        events_per_sec: total.completed as f64 / elapsed,
        transitions_per_sec: Some(total.transitions as f64 / elapsed),
        latency: Percentiles::of(&total.latency),
        completeness: None,
        peak_outstanding: None,
        daemon_peak_rss_mb: None,
        daemon_cpu_cores: None,
        harness_cpu_cores: cpu_cores,
        verdict: None,
        timeline: timeline(&total, true),
    })
}
