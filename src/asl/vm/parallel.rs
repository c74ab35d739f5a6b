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
        self.event("ParallelStateStarted", Some(name), now, || Value::Null);
        let vars = self.frame(fid).vars.clone();
        for (slot, m) in branches.iter().enumerate() {
            let c = self.spawn(
                p.start_of(*m),
                param.clone(),
                Some((fid, slot as u32)),
                bound,
                vars.clone(),
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
        self.start_queued(p, fid, now);
    }

    /// Records the end of one child of a join; resumes the parent when the join is decided.
    pub(super) fn child_ended(
        &mut self,
        p: &Program,
        pid: u32,
        slot: u32,
        result: Result<Value, Failure>,
        size_bound: Extent,
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
        if is_map {
            let kind = if verdict.is_some() {
                "MapIterationFailed"
            } else {
                "MapIterationSucceeded"
            };
            self.event(
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
                self.finish(Outcome::Failed(f), now);
                return;
            }
            self.release_children(pid);
            let kind = if is_map {
                "MapStateFailed"
            } else {
                "ParallelStateFailed"
            };
            self.event(kind, Some(pstate), now, || Value::Null);
            self.frame(pid).phase = Phase::Resume(Resume::Error(f));
            self.runnable.push_back(pid);
            return;
        }
        if !done {
            self.start_queued(p, pid, now);
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
        self.event(kind, Some(pstate), now, || Value::Null);
        self.frame(pid).phase = Phase::Resume(Resume::ChildrenDone(Value::Array(results), bound));
        self.runnable.push_back(pid);
    }
}
