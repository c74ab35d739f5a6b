//! The execution history: events named as in Step Functions' `GetExecutionHistory`,
//! recorded only when [`ExecutionOptions::record_history`](crate::asl::effect::ExecutionOptions)
//! asks for them (their ids are counted always: causes name them).

use super::Execution;
use crate::asl::error::json_text;
use crate::asl::program::*;
use crate::asl::size;
use crate::asl::time::Millis;
use serde_json::Value;
use std::sync::Arc;

/// The most events an execution's history holds: AWS's limit for a Standard execution's
/// history (25,000 events).
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// The most bytes of event details an execution's history holds. Events quote state inputs
/// and outputs of up to 256 KiB each: 25,000 of them could hold gigabytes.
pub const MAX_HISTORY_BYTES: usize = 64 << 20;

/// An entry of the execution history, named as in Step Functions' `GetExecutionHistory`.
#[derive(Clone, Debug)]
pub struct HistoryEvent {
    pub id: u64,
    pub kind: &'static str,
    pub timestamp: Millis,
    pub state: Option<Arc<str>>,
    pub details: Value,
}

impl Execution {
    /// Records an event. Past [`MAX_HISTORY_EVENTS`] or [`MAX_HISTORY_BYTES`] only the
    /// execution's own events (`Execution*`) are kept: a loop running until the Express cap
    /// would otherwise hold hundreds of millions of them.
    pub(super) fn event(
        &mut self,
        kind: &'static str,
        state: Option<&Arc<str>>,
        now: Millis,
        details: impl FnOnce() -> Value,
    ) -> u64 {
        self.events += 1;
        if self.opts.record_history
            && ((self.history.len() < MAX_HISTORY_EVENTS && self.history_bytes < MAX_HISTORY_BYTES)
                || kind.starts_with("Execution"))
        {
            let details = details();
            self.history_bytes += size::json_len(&details);
            self.history.push(HistoryEvent {
                id: self.events,
                kind,
                timestamp: now,
                state: state.cloned(),
                details,
            });
        }
        self.events
    }

    pub(super) fn exit_event(&mut self, p: &Program, fid: u32, out: &Value, now: Millis) {
        let state = p.state(self.frame(fid).state);
        let (record, with_data) = (self.opts.record_history, self.opts.history_data);
        self.event(exited_event(&state.kind), Some(&state.name), now, || {
            if record {
                let output = with_data.then(|| json_text(out));
                serde_json::json!({ "name": &*state.name, "output": output })
            } else {
                Value::Null
            }
        });
    }
}

pub(super) fn entered_event(kind: &Kind) -> &'static str {
    match kind {
        Kind::Pass { .. } => "PassStateEntered",
        Kind::Task(_) => "TaskStateEntered",
        Kind::Choice { .. } => "ChoiceStateEntered",
        Kind::Wait(_) => "WaitStateEntered",
        Kind::Succeed => "SucceedStateEntered",
        Kind::Fail { .. } => "FailStateEntered",
        Kind::Parallel { .. } => "ParallelStateEntered",
        Kind::Map(_) => "MapStateEntered",
    }
}

pub(super) fn exited_event(kind: &Kind) -> &'static str {
    match kind {
        Kind::Pass { .. } => "PassStateExited",
        Kind::Task(_) => "TaskStateExited",
        Kind::Choice { .. } => "ChoiceStateExited",
        Kind::Wait(_) => "WaitStateExited",
        Kind::Succeed => "SucceedStateExited",
        Kind::Fail { .. } => "FailStateExited",
        Kind::Parallel { .. } => "ParallelStateExited",
        Kind::Map(_) => "MapStateExited",
    }
}
