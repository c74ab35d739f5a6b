//! Per-partition contiguous-completion tracking: how far a consumer group offset may be
//! committed without skipping a message that has not finished.
//!
//! Messages of one partition finish out of order (executions take different times), but a
//! Kafka commit is a single number meaning "everything below this is done". Committing the
//! offset after the latest *finished* message is the classic data-loss bug: if an earlier
//! message is still running and the process dies, the restart resumes past it. The tracker
//! only ever offers the **commit point**:
//!
//! - the lowest offset received and not completed, if any message is pending;
//! - otherwise the highest offset received + 1.
//!
//! Offsets that were never received below the highest one (compaction, transaction
//! markers, aborted records) are gaps and count as complete: no message there can hold the
//! commit back. The commit point never moves backwards.
//!
//! See `docs/kafka-ack-contract.md` for when a message counts as completed and when the
//! daemon commits.
//!
//! One tracker per assigned partition, owned by the thread that consumes it: no locks. On
//! revoke, commit [`PartitionTracker::committable`] and drop the tracker; a reassignment
//! starts a fresh one.

use std::collections::VecDeque;

/// A received message the commit point has not yet passed.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    done: bool,
}

/// Tracks one partition's messages from receipt to completion and says how far the
/// consumer group offset may be committed.
///
/// Internally a queue of received offsets in increasing order, from the lowest pending one
/// to the highest received. Completed messages are popped from the front as soon as
/// nothing earlier is pending, so the front is always the commit point. Costs:
///
/// - `received` of a new highest offset: O(1) amortised (push at the back);
/// - `completed` of the oldest pending message (in-order completion): O(1) amortised;
///   completing any other message: O(log n) (binary search), n = queue length;
/// - `committable`, `in_flight`, `oldest_pending`, `mark_committed`: O(1).
///
/// Memory is 16 bytes per queued message, so 100k in flight is about 1.6 MB. Completed
/// messages behind a slow earlier one stay queued (as `done`) until it finishes.
#[derive(Debug, Clone, Default)]
pub struct PartitionTracker {
    /// Received messages from the commit point on; the front, if any, is pending.
    entries: VecDeque<Entry>,
    /// Number of entries not done, so `in_flight` need not scan.
    pending: usize,
    /// The highest offset ever received.
    highest: Option<i64>,
    /// The first offset received: where the consumer was positioned when this tracker
    /// started, so committing it would not move the group forward.
    first: Option<i64>,
    /// The highest offset recorded by `mark_committed`.
    committed: Option<i64>,
}

impl PartitionTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message was received. Returns whether it is newly tracked, i.e. whether the
    /// caller should process it.
    ///
    /// Offsets normally arrive in increasing order, possibly with gaps. Anything else is a
    /// redelivery (a seek or rebalance replaying the log) and returns `false` when the
    /// offset is already tracked (pending, or completed but not yet passed by the commit
    /// point), below the commit point (completed or a gap counted complete), or below the
    /// committed offset. An unseen offset between the commit point and the highest
    /// received (a former gap) is tracked, so the commit point cannot pass it.
    pub fn received(&mut self, offset: i64) -> bool {
        if self.is_behind(offset) {
            return false;
        }
        match self.highest {
            Some(highest) if offset <= highest => {
                match self.entries.binary_search_by_key(&offset, |e| e.offset) {
                    Ok(_) => return false,
                    // is_behind ruled out everything below the front, so this does not
                    // move the commit point.
                    Err(at) => self.entries.insert(
                        at,
                        Entry {
                            offset,
                            done: false,
                        },
                    ),
                }
            }
            _ => {
                self.entries.push_back(Entry {
                    offset,
                    done: false,
                });
                self.highest = Some(offset);
            }
        }
        self.first.get_or_insert(offset);
        self.pending += 1;
        true
    }

    /// The message at `offset` is done: its execution finished and its output was
    /// acknowledged by the sink. Returns `false`, changing nothing, when the offset is not
    /// pending (never received, a gap, or already completed).
    pub fn completed(&mut self, offset: i64) -> bool {
        // In-order completion, the common case, needs no search.
        let at = match self.entries.front() {
            Some(front) if front.offset == offset => 0,
            _ => match self.entries.binary_search_by_key(&offset, |e| e.offset) {
                Ok(at) => at,
                Err(_) => return false,
            },
        };
        let Some(entry) = self.entries.get_mut(at) else {
            return false;
        };
        if entry.done {
            return false;
        }
        entry.done = true;
        self.pending -= 1;
        // Keep the front pending: it is the commit point.
        while self.entries.front().is_some_and(|e| e.done) {
            self.entries.pop_front();
        }
        true
    }

    /// The offset to commit, in Kafka's convention (the next offset to read), or `None` if
    /// it has not advanced past the last `mark_committed` (or, before any commit, past the
    /// first offset received, where the consumer already stood).
    ///
    /// It is the commit point: the lowest pending offset, or the highest received + 1 when
    /// nothing is pending. Every received message below it is complete.
    pub fn committable(&self) -> Option<i64> {
        let point = self.commit_point()?;
        let floor = self.committed.or(self.first)?;
        (point > floor).then_some(point)
    }

    /// Records that `offset`, a value returned by [`committable`](Self::committable), was
    /// committed. A lower value than one already recorded is ignored (a late completion of
    /// an earlier asynchronous commit must not move it back).
    ///
    /// May also be called before any message with the group's committed offset on
    /// assignment: redeliveries below it are then ignored by `received`. A value beyond the
    /// commit point is recorded (the tracker cannot undo a commit) but never marks pending
    /// messages complete.
    pub fn mark_committed(&mut self, offset: i64) {
        if self.committed.is_none_or(|c| offset > c) {
            self.committed = Some(offset);
        }
    }

    /// Messages received and not completed.
    pub fn in_flight(&self) -> usize {
        self.pending
    }

    /// The lowest offset received and not completed, if any (for diagnostics and lag).
    pub fn oldest_pending(&self) -> Option<i64> {
        // The front is always pending (see `completed`).
        self.entries.front().map(|e| e.offset)
    }

    /// Lowest pending offset, else highest received + 1; `None` before any message.
    fn commit_point(&self) -> Option<i64> {
        match self.entries.front() {
            Some(front) => Some(front.offset),
            // Saturating: offsets never get near i64::MAX, and this must not panic.
            None => self.highest.map(|h| h.saturating_add(1)),
        }
    }

    /// Whether `offset` is already covered: below the commit point or the committed offset.
    fn is_behind(&self, offset: i64) -> bool {
        // Spelled out rather than via `commit_point`, whose saturation at i64::MAX would
        // let the highest offset back in.
        let passed = match self.entries.front() {
            Some(front) => offset < front.offset,
            None => self.highest.is_some_and(|h| offset <= h),
        };
        passed || self.committed.is_some_and(|c| offset < c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn tracker_with(offsets: &[i64]) -> PartitionTracker {
        let mut t = PartitionTracker::new();
        for &o in offsets {
            assert!(t.received(o), "offset {o} should be newly tracked");
        }
        t
    }

    #[test]
    fn new_tracker_has_nothing_to_commit() {
        let t = PartitionTracker::new();
        assert_eq!(t.committable(), None);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.oldest_pending(), None);
    }

    #[test]
    fn first_received_offset_alone_is_not_committable() {
        // The consumer already stands at 5: committing 5 would not move the group.
        let t = tracker_with(&[5]);
        assert_eq!(t.committable(), None);
        assert_eq!(t.oldest_pending(), Some(5));
    }

    #[test]
    fn in_order_completion_commits_the_next_offset_to_read() {
        let mut t = tracker_with(&[0, 1, 2]);
        assert!(t.completed(0));
        assert_eq!(t.committable(), Some(1));
        assert!(t.completed(1));
        assert!(t.completed(2));
        assert_eq!(t.committable(), Some(3));
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.oldest_pending(), None);
    }

    #[test]
    fn commit_never_passes_an_unfinished_earlier_message() {
        let mut t = tracker_with(&[10, 11, 12]);
        assert!(t.completed(10));
        assert_eq!(t.committable(), Some(11));
        t.mark_committed(11);
        // 12 finishes before 11: committing 13 now would lose 11 on a crash.
        assert!(t.completed(12));
        assert_eq!(t.committable(), None);
        assert_eq!(t.oldest_pending(), Some(11));
        assert!(t.completed(11));
        assert_eq!(t.committable(), Some(13));
    }

    #[test]
    fn gaps_count_as_complete() {
        // 8 is a gap (compaction or a transaction marker).
        let mut t = tracker_with(&[5, 6, 7, 9]);
        assert!(t.completed(6));
        assert!(t.completed(7));
        assert_eq!(
            t.committable(),
            None,
            "5 is pending and is the first offset"
        );
        assert!(t.completed(5));
        assert_eq!(
            t.committable(),
            Some(9),
            "the gap at 8 does not hold 9 back"
        );
        assert!(t.completed(9));
        assert_eq!(t.committable(), Some(10));
    }

    #[test]
    fn committable_only_reports_an_advance_past_the_last_commit() {
        let mut t = tracker_with(&[0, 1]);
        assert!(t.completed(0));
        assert_eq!(t.committable(), Some(1));
        t.mark_committed(1);
        assert_eq!(t.committable(), None);
        assert!(t.received(2));
        assert_eq!(
            t.committable(),
            None,
            "receiving does not advance the commit point"
        );
        assert!(t.completed(1));
        assert_eq!(t.committable(), Some(2));
    }

    #[test]
    fn a_stale_lower_mark_committed_is_ignored() {
        let mut t = tracker_with(&[0, 1, 2]);
        assert!(t.completed(0));
        assert!(t.completed(1));
        t.mark_committed(2);
        t.mark_committed(1);
        assert_eq!(t.committable(), None);
        assert!(!t.received(1), "below the commit is still committed-past");
    }

    #[test]
    fn mark_committed_before_any_message_seeds_the_floor() {
        let mut t = PartitionTracker::new();
        t.mark_committed(100);
        assert_eq!(t.committable(), None);
        assert!(!t.received(99), "below the group's committed offset");
        assert!(t.received(100));
        assert_eq!(t.committable(), None);
        assert!(t.completed(100));
        assert_eq!(t.committable(), Some(101));
    }

    #[test]
    fn redelivered_offsets_are_not_tracked_twice() {
        let mut t = tracker_with(&[0, 1, 2, 3]);
        assert!(t.completed(0)); // popped: below the commit point
        assert!(t.completed(2)); // done but still queued behind 1
        assert!(!t.received(0), "completed and passed");
        assert!(!t.received(1), "still pending");
        assert!(!t.received(2), "completed, waiting on 1");
        assert!(!t.received(3), "still pending");
        assert_eq!(t.in_flight(), 2);
        assert!(t.completed(1));
        assert!(t.completed(3));
        assert_eq!(t.committable(), Some(4));
        assert!(t.received(4), "the next new offset is tracked");
    }

    #[test]
    fn a_late_offset_in_a_gap_holds_the_commit_back() {
        // Kafka does not do this, but if it did, the message must not be skipped.
        let mut t = tracker_with(&[0, 2, 3]);
        assert!(t.received(1));
        assert!(t.completed(0));
        assert!(t.completed(2));
        assert!(t.completed(3));
        assert_eq!(t.committable(), Some(1));
        assert!(t.completed(1));
        assert_eq!(t.committable(), Some(4));
    }

    #[test]
    fn an_offset_below_the_commit_point_is_a_redelivery_even_if_never_seen() {
        // 1 was a gap that the commit point has passed; counted complete for good.
        let mut t = tracker_with(&[0, 2]);
        assert!(t.completed(0));
        assert_eq!(t.committable(), Some(2));
        assert!(!t.received(1));
        assert_eq!(t.committable(), Some(2));
    }

    #[test]
    fn completing_an_unknown_or_finished_offset_is_a_no_op() {
        let mut t = tracker_with(&[5, 7]);
        assert!(!t.completed(4), "never received");
        assert!(!t.completed(6), "a gap");
        assert!(!t.completed(8), "beyond the highest");
        assert!(t.completed(7));
        assert!(!t.completed(7), "already completed (queued behind 5)");
        assert!(t.completed(5));
        assert!(!t.completed(5), "already completed and passed");
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.committable(), Some(8));
        assert!(!PartitionTracker::new().completed(0));
    }

    #[test]
    fn in_flight_and_oldest_pending_follow_completions() {
        let mut t = tracker_with(&[3, 4, 8, 9]);
        assert_eq!((t.in_flight(), t.oldest_pending()), (4, Some(3)));
        assert!(t.completed(4));
        assert_eq!((t.in_flight(), t.oldest_pending()), (3, Some(3)));
        assert!(t.completed(3));
        assert_eq!((t.in_flight(), t.oldest_pending()), (2, Some(8)));
        assert!(t.completed(9));
        assert_eq!((t.in_flight(), t.oldest_pending()), (1, Some(8)));
        assert!(t.completed(8));
        assert_eq!((t.in_flight(), t.oldest_pending()), (0, None));
    }

    #[test]
    fn extreme_offsets_do_not_panic() {
        let mut t = tracker_with(&[-5, i64::MAX - 1, i64::MAX]);
        assert!(t.completed(-5));
        assert!(t.completed(i64::MAX));
        assert!(t.completed(i64::MAX - 1));
        assert_eq!(t.committable(), Some(i64::MAX));
        t.mark_committed(i64::MAX);
        assert!(!t.received(i64::MAX));
        assert_eq!(t.committable(), None);
    }

    #[test]
    fn a_hundred_thousand_in_flight_completed_in_reverse() {
        let n = 100_000;
        let mut t = PartitionTracker::new();
        for o in 0..n {
            assert!(t.received(o * 2)); // every other offset is a gap
        }
        assert_eq!(t.in_flight(), n as usize);
        for o in (1..n).rev() {
            assert!(t.completed(o * 2));
            assert_eq!(t.committable(), None);
        }
        assert!(t.completed(0));
        assert_eq!(t.committable(), Some(2 * (n - 1) + 1));
        assert_eq!(t.in_flight(), 0);
    }

    /// Reference model: the sets the tracker summarises, kept naively.
    #[derive(Default)]
    struct Model {
        received: BTreeSet<i64>,
        pending: BTreeSet<i64>,
        first: Option<i64>,
        committed: Option<i64>,
    }

    impl Model {
        fn commit_point(&self) -> Option<i64> {
            let highest = self.received.last()?;
            Some(self.pending.first().copied().unwrap_or(highest + 1))
        }
    }

    /// Receives thousands of offsets with random gaps and redeliveries, completes them in
    /// random order and commits at random moments, checking the invariants after each step.
    #[test]
    fn random_interleavings_keep_the_invariants() {
        for seed in 0..40 {
            run_random_interleaving(seed, 3_000);
        }
    }

    fn run_random_interleaving(seed: u64, messages: usize) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut t = PartitionTracker::new();
        let mut m = Model::default();
        // Pending offsets in a Vec too, to pick one at random cheaply.
        let mut pending: Vec<i64> = Vec::new();
        let mut next = rng.i64(0..1_000);
        let mut sent = 0;
        let mut last_point: Option<i64> = None;

        while sent < messages || !pending.is_empty() {
            let roll = rng.u8(0..100);
            if sent < messages && roll < 45 {
                // A new message, sometimes after a gap.
                if rng.u8(0..4) == 0 {
                    next += rng.i64(1..5);
                }
                assert!(t.received(next), "seed {seed}: new offset {next}");
                m.received.insert(next);
                m.pending.insert(next);
                m.first.get_or_insert(next);
                pending.push(next);
                next += 1;
                sent += 1;
            } else if roll < 52 {
                // A redelivery (seek/rebalance) of anything at or below the highest.
                let Some(&highest) = m.received.last() else {
                    continue;
                };
                let low = m.first.unwrap_or(highest) - 3;
                let offset = rng.i64(low..=highest);
                let point = m.commit_point().unwrap_or(i64::MIN);
                let expected = !m.received.contains(&offset)
                    && offset >= point
                    && m.committed.is_none_or(|c| offset >= c);
                assert_eq!(
                    t.received(offset),
                    expected,
                    "seed {seed}: redeliver {offset}"
                );
                if expected {
                    m.received.insert(offset);
                    m.pending.insert(offset);
                    pending.push(offset);
                }
            } else if roll < 85 && !pending.is_empty() {
                let offset = pending.swap_remove(rng.usize(..pending.len()));
                assert!(t.completed(offset), "seed {seed}: complete {offset}");
                m.pending.remove(&offset);
            } else if roll < 90 {
                // Completing something not pending changes nothing.
                let offset = rng.i64(next - 50..next + 5);
                if !m.pending.contains(&offset) {
                    assert!(!t.completed(offset), "seed {seed}: stray complete {offset}");
                }
            } else if let Some(offset) = t.committable() {
                t.mark_committed(offset);
                m.committed = Some(offset);
            }

            check(seed, &t, &m, &mut last_point);
        }

        // Everything is complete: the commit reaches highest + 1.
        let highest = m.received.last().copied();
        assert_eq!(t.in_flight(), 0);
        let end = highest.map(|h| h + 1);
        if m.committed != end {
            assert_eq!(t.committable(), end, "seed {seed}: final commit");
            t.mark_committed(end.unwrap_or_default());
        }
        assert_eq!(
            t.committable(),
            None,
            "seed {seed}: nothing left after the final commit"
        );
    }

    fn check(seed: u64, t: &PartitionTracker, m: &Model, last_point: &mut Option<i64>) {
        assert_eq!(t.in_flight(), m.pending.len(), "seed {seed}: in_flight");
        assert_eq!(
            t.oldest_pending(),
            m.pending.first().copied(),
            "seed {seed}: oldest_pending"
        );

        let point = m.commit_point();
        let floor = m.committed.or(m.first);
        let expected = point.filter(|&p| floor.is_some_and(|f| p > f));
        assert_eq!(t.committable(), expected, "seed {seed}: committable");

        if let Some(c) = t.committable() {
            // Never past a pending message, never backwards, never at or below the last commit.
            assert!(
                m.pending.iter().all(|&p| c <= p),
                "seed {seed}: {c} passes a pending"
            );
            assert!(
                m.committed.is_none_or(|k| c > k),
                "seed {seed}: {c} not an advance"
            );
        }
        if let (Some(prev), Some(now)) = (*last_point, point) {
            assert!(
                now >= prev,
                "seed {seed}: commit point went back {prev} -> {now}"
            );
        }
        *last_point = point.or(*last_point);
    }
}
