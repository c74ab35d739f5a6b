//! Execution history for Express workflows, kept in memory and bounded: AWS records none for
//! Express (only CloudWatch logs), and users ask for it. Per state machine it keeps the last
//! `executions` sampled executions with their history events, every failed or timed-out one
//! up to `failed` (with its events when it was sampled, else its error, cause and state),
//! and the sampled ones still running; the texts within `max_bytes`. `GetExecutionHistory`,
//! `DescribeExecution` and the console read it.
//!
//! Sampling is decided per driver by a countdown (every `1 / sample_rate`-th execution), so
//! drivers on different threads share no counter on the hot path; a store entry is written
//! only for sampled executions and failures.

use crate::asl::time::Millis;
use crate::asl::vm::HistoryEvent;
use crate::config_reader::Section;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

/// `[history]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryConfig {
    /// Whether anything is kept.
    pub enabled: bool,
    /// The fraction of executions whose history events are recorded (0 to 1).
    pub sample_rate: f64,
    /// Sampled executions kept per state machine, newest first.
    pub executions: usize,
    /// Failed and timed-out executions kept per state machine.
    pub failed: usize,
    /// Keep inputs and outputs (the execution's and each state's), as `[logs]
    /// include_execution_data` does for logs.
    pub include_data: bool,
    /// The most bytes of texts (inputs, outputs, causes, event details) kept per state machine.
    pub max_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            enabled: true,
            sample_rate: 0.001,
            executions: 100,
            failed: 100,
            include_data: false,
            max_bytes: 16 << 20,
        }
    }
}

/// Reads `[history]`.
pub fn read_history(mut section: Section<'_>) -> HistoryConfig {
    let d = HistoryConfig::default();
    let enabled = section.bool("enabled", d.enabled);
    let sample_rate = match section.optional("sample_rate", "a number from 0 to 1", |v| {
        v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
    }) {
        Some(r) if (0.0..=1.0).contains(&r) => r,
        Some(r) => {
            section.error("sample_rate", format!("must be from 0 to 1, got {r}"));
            d.sample_rate
        }
        None => d.sample_rate,
    };
    let config = HistoryConfig {
        enabled,
        sample_rate,
        executions: section.uint("executions", d.executions, 0, 100_000),
        failed: section.uint("failed", d.failed, 0, 100_000),
        include_data: section.bool("include_data", d.include_data),
        max_bytes: section.uint("max_bytes", d.max_bytes, 0, 1 << 34),
    };
    section.finish();
    config
}

/// An execution's status, as `DescribeExecution` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl TraceStatus {
    pub const ALL: [TraceStatus; 5] = [
        TraceStatus::Running,
        TraceStatus::Succeeded,
        TraceStatus::Failed,
        TraceStatus::TimedOut,
        TraceStatus::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TraceStatus::Running => "RUNNING",
            TraceStatus::Succeeded => "SUCCEEDED",
            TraceStatus::Failed => "FAILED",
            TraceStatus::TimedOut => "TIMED_OUT",
            TraceStatus::Aborted => "ABORTED",
        }
    }

    pub fn parse(text: &str) -> Option<TraceStatus> {
        TraceStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What is kept of one execution.
#[derive(Clone, Debug)]
pub struct ExecutionTrace {
    pub arn: String,
    pub name: String,
    pub state_machine: Arc<str>,
    pub status: TraceStatus,
    pub start_ms: Millis,
    pub stop_ms: Option<Millis>,
    /// JSON texts, with `include_data`.
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The top-level state a failed execution ended in.
    pub failed_state: Option<Arc<str>>,
    /// States entered (Map iterations and Parallel branches included).
    pub transitions: u64,
    /// The history events; `None` when the execution was not sampled.
    pub events: Option<Vec<HistoryEvent>>,
}

impl ExecutionTrace {
    /// The bytes of its texts: what keeping it costs beyond its fixed size.
    fn text_bytes(&self) -> usize {
        let len = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        let events = self.events.as_ref().map_or(0, |events| {
            events
                .iter()
                .map(|e| 64 + crate::asl::size::json_len(&e.details))
                .sum()
        });
        self.arn.len()
            + self.name.len()
            + len(&self.input)
            + len(&self.output)
            + len(&self.error)
            + len(&self.cause)
            + events
    }

    fn is_failure(&self) -> bool {
        matches!(
            self.status,
            TraceStatus::Failed | TraceStatus::TimedOut | TraceStatus::Aborted
        )
    }
}

/// Every state machine's kept executions.
#[derive(Debug)]
pub struct HistoryStore {
    config: HistoryConfig,
    machines: RwLock<HashMap<Arc<str>, Arc<MachineHistory>>>,
}

impl HistoryStore {
    pub fn new(config: HistoryConfig) -> Arc<Self> {
        Arc::new(HistoryStore {
            config,
            machines: RwLock::default(),
        })
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// The history of `state_machine`, made on first use.
    pub fn machine(&self, state_machine: &str) -> Arc<MachineHistory> {
        if let Some(m) = self
            .machines
            .read()
            .expect("history lock")
            .get(state_machine)
        {
            return m.clone();
        }
        let mut machines = self.machines.write().expect("history lock");
        machines
            .entry(Arc::from(state_machine))
            .or_insert_with_key(|name| {
                Arc::new(MachineHistory {
                    name: name.clone(),
                    config: self.config.clone(),
                    kept: Mutex::default(),
                })
            })
            .clone()
    }

    /// The execution `arn` names, if kept. An execution ARN names its state machine:
    /// `arn:aws:states:<region>:<account>:(express|execution):<state machine>:<name>`.
    pub fn find(&self, arn: &str) -> Option<Arc<ExecutionTrace>> {
        let state_machine = arn.split(':').nth(6)?;
        let machine = self
            .machines
            .read()
            .expect("history lock")
            .get(state_machine)?
            .clone();
        machine.get(arn)
    }
}

/// One state machine's kept executions.
#[derive(Debug)]
pub struct MachineHistory {
    name: Arc<str>,
    config: HistoryConfig,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    by_arn: HashMap<String, Arc<ExecutionTrace>>,
    /// Finished sampled executions, oldest first.
    recent: VecDeque<String>,
    /// Failed, timed-out and aborted executions, oldest first.
    failed: VecDeque<String>,
    bytes: usize,
}

impl Kept {
    /// Forgets `arn` unless the other list still holds it.
    fn forget(&mut self, arn: &str) {
        if self.recent.iter().any(|a| a == arn) || self.failed.iter().any(|a| a == arn) {
            return;
        }
        if let Some(t) = self.by_arn.remove(arn) {
            self.bytes -= t.text_bytes();
        }
    }

    fn put(&mut self, trace: ExecutionTrace) {
        let bytes = trace.text_bytes();
        if let Some(old) = self.by_arn.insert(trace.arn.clone(), Arc::new(trace)) {
            self.bytes -= old.text_bytes();
        }
        self.bytes += bytes;
    }
}

impl MachineHistory {
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// A sampled execution started (it shows as `RUNNING` until [`finished`](Self::finished)).
    pub fn started(&self, trace: ExecutionTrace) {
        self.kept.lock().expect("history lock").put(trace);
    }

    /// An execution ended: a sampled one (with its events) or an unsampled failure.
    pub fn finished(&self, mut trace: ExecutionTrace) {
        if !self.config.include_data {
            trace.input = None;
            trace.output = None;
            for event in trace.events.iter_mut().flatten() {
                if let serde_json::Value::Object(details) = &mut event.details {
                    for key in ["input", "output", "parameters"] {
                        details.shift_remove(key);
                    }
                }
            }
        }
        let mut kept = self.kept.lock().expect("history lock");
        let arn = trace.arn.clone();
        if let Some(old) = kept.by_arn.get(&arn) {
            // The input was taken when it started.
            trace.input = trace.input.or_else(|| old.input.clone());
        }
        // `ExecutionStarted` shows the input taken at start (the VM's event carries it only
        // when its execution keeps data).
        if let (Some(input), Some(first)) = (
            &trace.input,
            trace.events.as_mut().and_then(|e| e.first_mut()),
        ) {
            if first.kind == "ExecutionStarted" {
                first.details = serde_json::json!({ "input": input });
            }
        }
        let (sampled, failure) = (trace.events.is_some(), trace.is_failure());
        kept.put(trace);
        if sampled {
            kept.recent.push_back(arn.clone());
        }
        if failure {
            kept.failed.push_back(arn.clone());
        }
        if !sampled && !failure {
            kept.forget(&arn);
        }
        // Evict oldest first: past the counts, then past the bytes.
        while kept.recent.len() > self.config.executions {
            let a = kept.recent.pop_front().expect("non-empty");
            kept.forget(&a);
        }
        while kept.failed.len() > self.config.failed {
            let a = kept.failed.pop_front().expect("non-empty");
            kept.forget(&a);
        }
        while kept.bytes > self.config.max_bytes {
            let oldest = match (kept.recent.front(), kept.failed.front()) {
                (Some(r), Some(f)) => {
                    let start = |a: &String| kept.by_arn.get(a).map_or(0, |t| t.start_ms);
                    if start(r) <= start(f) {
                        kept.recent.pop_front()
                    } else {
                        kept.failed.pop_front()
                    }
                }
                (Some(_), None) => kept.recent.pop_front(),
                (None, Some(_)) => kept.failed.pop_front(),
                (None, None) => break,
            };
            if let Some(a) = oldest {
                kept.recent.retain(|x| *x != a);
                kept.failed.retain(|x| *x != a);
                kept.forget(&a);
            }
        }
    }

    pub fn get(&self, arn: &str) -> Option<Arc<ExecutionTrace>> {
        self.kept
            .lock()
            .expect("history lock")
            .by_arn
            .get(arn)
            .cloned()
    }

    /// Kept executions, newest first (by start), those with `status` only if given.
    pub fn list(&self, status: Option<TraceStatus>) -> Vec<Arc<ExecutionTrace>> {
        let kept = self.kept.lock().expect("history lock");
        let mut out: Vec<Arc<ExecutionTrace>> = kept
            .by_arn
            .values()
            .filter(|t| status.is_none_or(|s| t.status == s))
            .cloned()
            .collect();
        drop(kept);
        out.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then(b.arn.cmp(&a.arn)));
        out
    }

    /// Bytes of texts kept.
    pub fn bytes(&self) -> usize {
        self.kept.lock().expect("history lock").bytes
    }
}

/// One driver's sampling of one state machine: every `every`-th execution is sampled.
#[derive(Debug)]
pub struct Sampler {
    pub history: Arc<MachineHistory>,
    every: u64,
    countdown: u64,
}

impl Sampler {
    pub fn new(history: Arc<MachineHistory>) -> Self {
        let rate = history.config.sample_rate;
        let every = if rate <= 0.0 {
            0
        } else {
            (1.0 / rate).round().max(1.0) as u64
        };
        Sampler {
            history,
            every,
            // The first execution is sampled: a quiet deployment shows one at once.
            countdown: 1,
        }
    }

    /// Whether the execution about to start is sampled.
    pub fn sample(&mut self) -> bool {
        if self.every == 0 {
            return false;
        }
        self.countdown -= 1;
        if self.countdown == 0 {
            self.countdown = self.every;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(n: u64, status: TraceStatus, sampled: bool) -> ExecutionTrace {
        ExecutionTrace {
            arn: format!("arn:aws:states:us-east-1:123456789012:express:sm:e{n}"),
            name: format!("e{n}"),
            state_machine: Arc::from("sm"),
            status,
            start_ms: n as Millis,
            stop_ms: Some(n as Millis + 1),
            input: Some("{}".into()),
            output: None,
            error: None,
            cause: None,
            failed_state: None,
            transitions: 1,
            events: sampled.then(Vec::new),
        }
    }

    fn store(executions: usize, failed: usize, max_bytes: usize) -> Arc<HistoryStore> {
        HistoryStore::new(HistoryConfig {
            executions,
            failed,
            max_bytes,
            ..HistoryConfig::default()
        })
    }

    #[test]
    fn the_newest_sampled_executions_and_failures_are_kept_within_their_counts() {
        let store = store(3, 2, usize::MAX);
        let m = store.machine("sm");
        for n in 0..10 {
            m.finished(trace(n, TraceStatus::Succeeded, true));
            m.finished(trace(100 + n, TraceStatus::Failed, false));
            // Unsampled successes are not kept.
            m.finished(trace(200 + n, TraceStatus::Succeeded, false));
        }
        let names: Vec<String> = m.list(None).iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, ["e109", "e108", "e9", "e8", "e7"]);
        let failed = m.list(Some(TraceStatus::Failed));
        assert_eq!(failed.len(), 2);
        assert!(store
            .find("arn:aws:states:us-east-1:123456789012:express:sm:e9")
            .is_some());
        assert!(store
            .find("arn:aws:states:us-east-1:123456789012:express:sm:e1")
            .is_none());
    }

    #[test]
    fn a_running_execution_is_replaced_by_its_end() {
        let store = store(10, 10, usize::MAX);
        let m = store.machine("sm");
        m.started(trace(1, TraceStatus::Running, true));
        assert_eq!(m.list(Some(TraceStatus::Running)).len(), 1);
        m.finished(trace(1, TraceStatus::Succeeded, true));
        assert!(m.list(Some(TraceStatus::Running)).is_empty());
        assert_eq!(m.list(None).len(), 1);
    }

    #[test]
    fn past_max_bytes_the_oldest_are_forgotten() {
        let one = trace(0, TraceStatus::Succeeded, true).text_bytes();
        let store = store(1000, 1000, one * 5);
        let m = store.machine("sm");
        for n in 0..50 {
            m.finished(trace(n, TraceStatus::Succeeded, true));
        }
        assert!(m.bytes() <= one * 5, "{} > {}", m.bytes(), one * 5);
        assert_eq!(m.list(None)[0].name, "e49");
    }

    #[test]
    fn every_nth_execution_is_sampled_starting_with_the_first() {
        let store = HistoryStore::new(HistoryConfig {
            sample_rate: 0.25,
            ..HistoryConfig::default()
        });
        let mut s = Sampler::new(store.machine("sm"));
        let picks: Vec<bool> = (0..8).map(|_| s.sample()).collect();
        assert_eq!(
            picks,
            [true, false, false, false, true, false, false, false]
        );
        let none = HistoryStore::new(HistoryConfig {
            sample_rate: 0.0,
            ..HistoryConfig::default()
        });
        assert!(!Sampler::new(none.machine("sm")).sample());
    }
}
