//! The timers of every execution a driver holds, earliest first.
//!
//! Every execution has at least one (its 5-minute Express deadline), most end long before it
//! fires, so an execution's timers leave with it ([`Timers::remove`] with the ids it kept):
//! the structure only ever holds live executions' timers. A `BTreeMap` keyed by due time and
//! a sequence number gives both the earliest timer and removal by id in O(log n).

use super::slab::ExecKey;
use crate::asl::{Millis, Token};
use std::collections::BTreeMap;

/// A pending timer: when it is due, and a sequence number that orders timers due at the
/// same millisecond and tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId {
    at: Millis,
    seq: u64,
}

#[derive(Default)]
pub struct Timers {
    pending: BTreeMap<TimerId, (ExecKey, Token)>,
    seq: u64,
}

impl Timers {
    pub fn insert(&mut self, at: Millis, exec: ExecKey, token: Token) -> TimerId {
        self.seq += 1;
        let id = TimerId { at, seq: self.seq };
        self.pending.insert(id, (exec, token));
        id
    }

    pub fn remove(&mut self, id: &TimerId) {
        self.pending.remove(id);
    }

    /// When the earliest timer is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.pending.first_key_value().map(|(id, _)| id.at)
    }

    /// Takes the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<(TimerId, ExecKey, Token)> {
        let entry = self.pending.first_entry()?;
        if entry.key().at > now {
            return None;
        }
        let (id, (exec, token)) = entry.remove_entry();
        Some((id, exec, token))
    }

    /// Whose timers are pending (tests).
    pub fn owners(&self) -> impl Iterator<Item = ExecKey> + '_ {
        self.pending.values().map(|(exec, _)| *exec)
    }
}
