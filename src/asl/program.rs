//! The compiled form of a state machine: a flat instruction table.
//!
//! Every state of the definition, nested branches and Map iterators included, is one entry of
//! [`Program::states`]; transitions are indexes into it. Parallel branches and Map item
//! processors are [`SubMachine`]s: a start index into the same table. Everything the VM needs
//! at run time (paths, templates, intrinsic calls, Choice rules, retry policies) is parsed
//! here, once.

use super::choice::ChoiceRule;
use super::intrinsics::Intrinsic;
use super::jsonata::JTemplate;
use super::path::JsonPath;
use super::size::Extent;
use super::template::Template;
use super::vars::Assign;
use serde_json::Value;
use std::sync::Arc;

pub type StateId = u32;
pub type MachineId = u32;

#[derive(Debug)]
pub struct Program {
    pub states: Vec<State>,
    /// `machines[0]` is the top level; the others are Parallel branches and Map processors.
    pub machines: Vec<SubMachine>,
    /// The definition's `TimeoutSeconds`.
    pub timeout_secs: Option<u64>,
    /// Whether any expression may read `$$.Execution.Input`; if not, executions keep no copy
    /// of their input.
    pub reads_execution_input: bool,
}

#[derive(Debug)]
pub struct SubMachine {
    pub start: StateId,
}

#[derive(Debug)]
pub struct State {
    pub name: Arc<str>,
    pub kind: Kind,
    /// Its input/output processing, in the state's query language.
    pub io: StateIo,
    /// `None` for terminal states (`End: true`, Succeed, Fail).
    pub next: Option<StateId>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub size_bound: SizeBound,
    /// `Assign`: rare, so boxed to keep the table small.
    pub assign: Option<Box<Assign>>,
}

/// A state's I/O: the JSONPath fields, or JSONata's `Arguments`/`Output` in their place.
#[derive(Debug)]
// Inline, as `Io` was before: the JSONPath hot path reads it without an indirection.
#[allow(clippy::large_enum_variant)]
pub enum StateIo {
    JsonPath(Io),
    /// Boxed: rarer, and the table stays as small as with JSONPath alone.
    Jsonata(Box<JsonataIo>),
}

/// A JSONata state's I/O: `Arguments` (Task, Parallel) and `Output`.
#[derive(Debug, Default)]
pub struct JsonataIo {
    pub arguments: Option<JTemplate>,
    pub output: Option<JTemplate>,
}

/// What the compiler knows of a state's output extent (size and depth), so that the VM can
/// enforce the payload and nesting limits without measuring every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeBound {
    /// At most `constant.with_input(per_input, input)` (see [`Extent::with_input`]).
    Linear { constant: Extent, per_input: usize },
    /// Unknown until measured (task results, intrinsic calls, Map and Parallel results).
    Measure,
}

/// A state's input/output processing, in the order AWS applies it:
/// `InputPath` → `Parameters` → (the state's work) → `ResultSelector` → `ResultPath` → `OutputPath`.
/// One struct so the JSONata form (`Arguments`/`Output`) can replace it as a whole.
#[derive(Debug, Default)]
pub struct Io {
    pub input_path: Selection,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub output_path: Selection,
    /// `Parameters` may move values out of the raw input instead of copying them: the input
    /// is not needed afterwards (`InputPath` and `ResultPath` are `$`, no retry re-reads it).
    pub parameters_consume_input: bool,
    /// `ResultSelector` may move values out of the result, which is discarded after it.
    pub result_selector_consumes: bool,
}

/// `InputPath` / `OutputPath`.
#[derive(Debug, Default)]
pub enum Selection {
    /// Absent or `"$"`: the whole document.
    #[default]
    All,
    /// `null`: an empty object.
    Nothing,
    Path(JsonPath),
}

#[derive(Debug, Default)]
pub enum ResultPath {
    /// Absent or `"$"`: the result replaces the input.
    #[default]
    Replace,
    /// `null`: the result is discarded, the input passes through.
    Discard,
    /// A reference path: the result is written into the input there.
    At(JsonPath),
}

#[derive(Debug)]
pub enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(Box<TaskSpec>),
    Choice {
        choices: Vec<Choice>,
        default: Option<StateId>,
    },
    Wait(WaitSpec),
    Succeed,
    Fail {
        error: Option<Dynamic>,
        cause: Option<Dynamic>,
    },
    Parallel {
        branches: Vec<MachineId>,
    },
    Map(Box<MapSpec>),
}

/// One rule of a Choice state, with what it assigns and outputs when it matches.
#[derive(Debug)]
pub struct Choice {
    pub rule: Rule,
    pub next: StateId,
    pub assign: Option<Box<Assign>>,
    /// JSONata `Output` of the rule.
    pub output: Option<JTemplate>,
}

#[derive(Debug)]
pub enum Rule {
    Path(ChoiceRule),
    /// JSONata `Condition`: a boolean or an expression that must give one.
    Condition(JTemplate),
}

/// A field given literally, by path (`…Path`), by intrinsic call or by JSONata.
#[derive(Debug)]
pub enum Dynamic {
    Literal(Value),
    Path { field: &'static str, path: JsonPath },
    Call(Box<Intrinsic>),
    Jsonata(JTemplate),
}

/// An integer field given literally, by path (`TimeoutSeconds` / `TimeoutSecondsPath`) or
/// by JSONata.
#[derive(Debug)]
pub enum Count {
    Literal(u64),
    Path {
        field: &'static str,
        path: JsonPath,
    },
    Jsonata {
        field: &'static str,
        expr: JTemplate,
    },
}

#[derive(Debug)]
pub struct TaskSpec {
    pub resource: Arc<str>,
    pub timeout: Option<Count>,
    pub heartbeat: Option<Count>,
}

#[derive(Debug)]
pub enum WaitSpec {
    Seconds(u64),
    SecondsPath(JsonPath),
    Timestamp(i64),
    TimestampPath(JsonPath),
    /// JSONata `Seconds` or `Timestamp`.
    Jsonata {
        seconds: bool,
        expr: JTemplate,
    },
}

#[derive(Debug)]
pub struct MapSpec {
    pub processor: MachineId,
    /// `ItemsPath`; `None` means the whole effective input.
    pub items_path: Option<JsonPath>,
    /// `ItemSelector` (or the legacy `Parameters`).
    pub item_selector: Option<Template>,
    pub batcher: Option<Batcher>,
    pub max_concurrency: Option<Count>,
    pub tolerated_count: Option<Count>,
    pub tolerated_percentage: Option<Percentage>,
    /// JSONata `Items` and `ItemSelector`.
    pub jsonata_items: Option<JTemplate>,
    pub jsonata_selector: Option<JTemplate>,
    /// Distributed Map iterations are child executions: they see no outer variables.
    pub distributed: bool,
    /// `ItemReader`: the items come from this call instead of the input.
    pub reader: Option<MapIo>,
    /// `ResultWriter`: the results go to this call, whose answer is the state's result.
    pub writer: Option<MapIo>,
    /// `Label`, which names the Map Run (else the state's name).
    pub label: Option<Arc<str>>,
}

/// A Distributed Map's `ItemReader` or `ResultWriter`: a call the VM hands out as it does a
/// Task's (see [`crate::asl::effect::Purpose`]).
#[derive(Debug)]
pub struct MapIo {
    pub resource: Arc<str>,
    /// `Parameters` (JSONPath).
    pub parameters: Option<Template>,
    /// `Arguments` (JSONata).
    pub arguments: Option<JTemplate>,
    /// `ReaderConfig` or `WriterConfig`, as written.
    pub config: Option<Value>,
}

#[derive(Debug)]
pub enum Percentage {
    Literal(f64),
    Path(JsonPath),
    Jsonata(JTemplate),
}

#[derive(Debug)]
pub struct Batcher {
    pub max_items: Option<Count>,
    pub max_bytes: Option<Count>,
    pub batch_input: Option<Template>,
}

/// `ErrorEquals` resolved once: `States.ALL` becomes a flag.
#[derive(Debug)]
pub struct ErrorMatcher {
    pub names: Vec<Arc<str>>,
    pub all: bool,
}

#[derive(Debug)]
pub struct Retrier {
    pub errors: ErrorMatcher,
    pub interval_secs: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_secs: Option<f64>,
    pub full_jitter: bool,
}

#[derive(Debug)]
pub struct Catcher {
    pub errors: ErrorMatcher,
    pub next: StateId,
    pub result_path: ResultPath,
    pub assign: Option<Box<Assign>>,
    /// JSONata `Output`; a JSONata catcher without it outputs the error output.
    pub output: Option<JTemplate>,
    pub jsonata: bool,
}

impl ErrorMatcher {
    /// Whether this matcher handles `error`. `States.ALL` covers every error but
    /// `States.Runtime`, which nothing catches. (AWS's guide says `States.ALL` does not catch
    /// `States.DataLimitExceeded` either, but AWS-recorded executions show it does.)
    /// `States.TaskFailed` is a wildcard as well, for every error but timeouts (AWS-recorded
    /// executions catch a Lambda function's own error names with it).
    pub fn matches(&self, error: Option<&str>) -> bool {
        use super::error::names::{HEARTBEAT_TIMEOUT, RUNTIME, TASK_FAILED, TIMEOUT};
        let Some(error) = error else {
            return false;
        };
        if error == RUNTIME {
            return self.names.iter().any(|n| &**n == error);
        }
        if self.all {
            return true;
        }
        self.names.iter().any(|n| {
            &**n == error || (&**n == TASK_FAILED && error != TIMEOUT && error != HEARTBEAT_TIMEOUT)
        })
    }
}

impl Program {
    pub fn state(&self, id: StateId) -> &State {
        &self.states[id as usize]
    }

    pub fn start_of(&self, machine: MachineId) -> StateId {
        self.machines[machine as usize].start
    }
}
