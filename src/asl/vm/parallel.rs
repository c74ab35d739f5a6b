//! The Parallel state, and the join both Parallel and Map wait on: results by slot, the
//! tolerated failures, and what ends the join.

use super::{Execution, Join, Phase, Resume, EMPTY_ARRAY};
use crate::asl::effect::Outcome;
use crate::asl::error::{names, Failure};
use crate::asl::program::*;
use crate::asl::size::{self, Extent};
use crate::asl::time::Millis;
use serde_json::Value;
use std::collections::VecDeque;

impl Execution {
    /// Starts every branch of a Parallel state at once, each its own machine, on `param`.
    pub(super) fn start_parallel(
        &mut self,
        p: &Program,
        fid: u32,
        branches: &[MachineId],
        param: Value,
        bound: Extent,
        now: Millis,
    ) {
        let name = &p.state(self.frame(fid).state).name;
        let started = self.event(fid, "ParallelStateStarted", Some(name), now, || Value::Null);
        let vars = self.frame(fid).vars.clone();
        for (slot, m) in branches.iter().enumerate() {
            // Each branch's thread starts at the ParallelStateStarted.
            let c = self.spawn(
                p.start_of(*m),
                param.clone(),
                Some((fid, slot as u32)),
                bound,
                vars.clone(),
                started,
            );
            self.runnable.push_back(c);
        }
        let join = Join {
            is_map: false,
            results: vec![Value::Null; branches.len()],
            results_bound: EMPTY_ARRAY,
            pending: branches.len(),
            queue: VecDeque::new(),
            lazy: VecDeque::new(),
            queued_bytes: 0,
            machine: 0,
            running: branches.len(),
            limit: usize::MAX,
            failures: 0,
            tolerated: None,
            vars,
        };
        self.start_join(p, fid, join, now);
    }

    /// Puts the frame to wait on children: one per Parallel branch, or one per Map item
    /// (started up to `limit` at a time).
    pub(super) fn start_join(&mut self, p: &Program, fid: u32, join: Join, now: Millis) {
        let f = self.frame(fid);
        f.gen = f.gen.wrapping_add(1);
        if join.pending == 0 {
            f.phase = Phase::Resume(Resume::ChildrenDone(Value::Array(Vec::new()), EMPTY_ARRAY));
            self.runnable.push_back(fid);
            return;
        }
        f.phase = Phase::Children(Box::new(join));
        // A Map's first iterations follow its MapStateStarted.
        let after = f.last_event;
        self.start_queued(p, fid, after, now);
    }

    /// Records the end of one child of a join, whose thread's last event was `child_last`;
    /// resumes the parent when the join is decided.
    ///
    /// As in AWS's histories, the events about the child follow `child_last` without moving
    /// the parent's thread on, and the child that decides the join hands the parent its
    /// thread: on success the `…StateSucceeded` (and the `…StateExited` after it) follows
    /// the last branch's last event, or the last iteration's `MapIteration…` event; on
    /// failure the `…StateFailed`, or a retry's `…StateStarted`, follows `child_last`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn child_ended(
        &mut self,
        p: &Program,
        pid: u32,
        slot: u32,
        result: Result<Value, Failure>,
        size_bound: Extent,
        child_last: u64,
        now: Millis,
    ) {
        let pstate = &p.state(self.frame(pid).state).name;
        let Phase::Children(join) = &mut self.frame(pid).phase else {
            return;
        };
        join.running -= 1;
        join.pending -= 1;
        let is_map = join.is_map;
        let failure = match result {
            Ok(v) => {
                join.results[slot as usize] = v;
                join.results_bound = join.results_bound.beside(size_bound.nested(1, 1));
                None
            }
            Err(f) => {
                join.failures += 1;
                Some(f)
            }
        };
        // Decide on a failure: tolerated (Map only), or the end of the whole join.
        let verdict = failure.map(|f| {
            let exceeded = join.tolerated.map(|t| join.failures > t);
            match exceeded {
                Some(false) if f.error.as_deref() != Some(names::RUNTIME) => {
                    let v = serde_json::json!({ "Error": f.error, "Cause": f.cause });
                    join.results_bound = join.results_bound.beside(size::extent(&v).nested(1, 1));
                    join.results[slot as usize] = v;
                    None
                }
                Some(true) => Some(Failure::new(
                    names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    "The specified tolerated failure threshold was exceeded",
                )),
                _ => Some(f),
            }
        });
        let done = join.pending == 0;
        let mut handed_on = child_last;
        if is_map {
            let kind = if verdict.is_some() {
                "MapIterationFailed"
            } else {
                "MapIterationSucceeded"
            };
            handed_on = self.event_after(
                child_last,
                kind,
                Some(pstate),
                now,
                || serde_json::json!({ "index": slot }),
            );
        }
        if let Some(Some(f)) = verdict {
            if f.error.as_deref() == Some(names::RUNTIME) {
                // A States.Runtime error ends the execution, whatever catches it would.
                self.failed_state = Some(pstate.clone());
                self.finish(Outcome::Failed(f), child_last, now);
                return;
            }
            self.release_children(pid);
            // `handle_error` records the `…StateFailed` unless the state is retried.
            let parent = self.frame(pid);
            parent.last_event = child_last;
            parent.children_failed = true;
            parent.phase = Phase::Resume(Resume::Error(f));
            self.runnable.push_back(pid);
            return;
        }
        if !done {
            // An iteration started in the freed slot follows the one that freed it.
            self.start_queued(p, pid, child_last, now);
            return;
        }
        let Phase::Children(join) = &mut self.frame(pid).phase else {
            return;
        };
        let results = std::mem::take(&mut join.results);
        let bound = join.results_bound;
        let kind = if is_map {
            "MapStateSucceeded"
        } else {
            "ParallelStateSucceeded"
        };
        self.frame(pid).last_event = handed_on;
        self.event_after(handed_on, kind, Some(pstate), now, || Value::Null);
        self.frame(pid).phase = Phase::Resume(Resume::ChildrenDone(Value::Array(results), bound));
        self.runnable.push_back(pid);
    }
}
