//! The execution history: events named as in Step Functions' `GetExecutionHistory`,
//! recorded only when [`ExecutionOptions::record_history`](crate::asl::effect::ExecutionOptions)
//! asks for them (their ids are counted always: causes name them).
//!
//! Each event links to the one before it in its own thread of control, as AWS's
//! `previousEventId` does: a frame (top level, Parallel branch, Map iteration) keeps the id
//! of its last event in `Frame::last_event`. The top level starts at 0 (AWS
//! links the first event after `ExecutionStarted` to 0); a branch starts at its
//! `ParallelStateStarted`, an iteration at its `MapIterationStarted`. The events a parent
//! records about its children follow the child they are about without moving the parent's
//! thread on; the child that ends the join hands the parent its thread (see `child_ended`).

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
    /// AWS's `previousEventId`: the event before this one in its thread (0 for none).
    pub previous: u64,
    pub kind: &'static str,
    pub timestamp: Millis,
    pub state: Option<Arc<str>>,
    pub details: Value,
}

impl Execution {
    /// Records an event that follows `previous`, without moving any frame's chain on (a
    /// parent's events about its children, the execution's own). Past
    /// [`MAX_HISTORY_EVENTS`] or [`MAX_HISTORY_BYTES`] only the execution's own events
    /// (`Execution*`) are kept: a loop running until the Express cap would otherwise hold
    /// hundreds of millions of them.
    pub(super) fn event_after(
        &mut self,
        previous: u64,
        kind: &'static str,
        state: Option<&Arc<str>>,
        now: Millis,
        details: impl FnOnce() -> Value,
    ) -> u64 {
        self.events += 1;
        if self.keeps(kind) {
            let details = details();
            self.history_bytes += size::json_len(&details);
            self.history.push(HistoryEvent {
                id: self.events,
                previous,
                kind,
                timestamp: now,
                state: state.cloned(),
                details,
            });
        }
        self.events
    }

    /// Records an event in frame `fid`'s thread: it follows the frame's last event and
    /// becomes it.
    pub(super) fn event(
        &mut self,
        fid: u32,
        kind: &'static str,
        state: Option<&Arc<str>>,
        now: Millis,
        details: impl FnOnce() -> Value,
    ) -> u64 {
        let previous = self.frame(fid).last_event;
        let id = self.event_after(previous, kind, state, now, details);
        self.frame(fid).last_event = id;
        id
    }

    /// Whether the next event of this kind is recorded (see [`event_after`](Self::event_after)).
    pub(super) fn keeps(&self, kind: &str) -> bool {
        self.opts.record_history
            && ((self.history.len() < MAX_HISTORY_EVENTS && self.history_bytes < MAX_HISTORY_BYTES)
                || kind.starts_with("Execution"))
    }

    /// `…StateEntered`, with the state's input: the frame's `data`.
    pub(super) fn enter_event(&mut self, p: &Program, fid: u32, now: Millis) -> u64 {
        if !self.opts.record_history {
            return self.count_event(fid);
        }
        let kind = entered_event(&p.state(self.frame(fid).state).kind);
        self.state_event(p, fid, kind, "input", now)
    }

    /// `…StateExited`, with the state's output: the frame's `data`.
    pub(super) fn exit_event(&mut self, p: &Program, fid: u32, now: Millis) {
        if !self.opts.record_history {
            self.count_event(fid);
            return;
        }
        let kind = exited_event(&p.state(self.frame(fid).state).kind);
        self.state_event(p, fid, kind, "output", now);
    }

    /// What [`event`](Self::event) does when nothing is recorded, without looking up the
    /// state and its event kind: two of these per state transition were ~5% of a chain of
    /// Pass states.
    #[inline]
    fn count_event(&mut self, fid: u32) -> u64 {
        self.events += 1;
        let id = self.events;
        self.frame(fid).last_event = id;
        id
    }

    // Out of the hot path: the details quote the frame's data.
    #[cold]
    fn state_event(
        &mut self,
        p: &Program,
        fid: u32,
        kind: &'static str,
        data_field: &str,
        now: Millis,
    ) -> u64 {
        if !self.keeps(kind) {
            // Past the history's limits.
            return self.count_event(fid);
        }
        let f = self.frames[fid as usize].as_ref().expect("frame");
        let state = p.state(f.state);
        // Made before `event` borrows the execution.
        let data = self.opts.history_data.then(|| json_text(&f.data));
        let details = serde_json::json!({ "name": &*state.name, data_field: data });
        self.event(fid, kind, Some(&state.name), now, || details)
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
