//! Counting completions and latencies, for the whole run and per interval of it (the
//! timeline that the plot draws).

use hdrhistogram::Histogram;

/// Latencies in nanoseconds, 1 ns to 1 hour, at 3 significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant bounds are valid")
}

/// One interval of a run.
pub struct Interval {
    pub completed: u64,
    pub transitions: u64,
    pub latency: Histogram<u64>,
}

/// Completions (with their latency and transitions), placed by when they completed.
pub struct Recorder {
    interval_ns: u64,
    pub completed: u64,
    pub transitions: u64,
    pub latency: Histogram<u64>,
    pub intervals: Vec<Interval>,
    /// When the first and the last completion happened, in ns since the run's start.
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Recorder {
    pub fn new(interval_ns: u64) -> Recorder {
        Recorder {
            interval_ns: interval_ns.max(1),
            completed: 0,
            transitions: 0,
            latency: latency_histogram(),
            intervals: Vec::new(),
            first_ns: u64::MAX,
            last_ns: 0,
        }
    }

    pub fn interval_secs(&self) -> f64 {
        self.interval_ns as f64 / 1e9
    }

    fn interval_mut(&mut self, index: usize) -> &mut Interval {
        while self.intervals.len() <= index {
            self.intervals.push(Interval {
                completed: 0,
                transitions: 0,
                latency: latency_histogram(),
            });
        }
        &mut self.intervals[index]
    }

    /// A completion `at_ns` after the run's start that took `latency_ns`.
    pub fn record(&mut self, at_ns: u64, latency_ns: u64, transitions: u64) {
        self.completed += 1;
        self.transitions += transitions;
        self.latency.saturating_record(latency_ns.max(1));
        self.first_ns = self.first_ns.min(at_ns);
        self.last_ns = self.last_ns.max(at_ns);
        let interval = self.interval_mut((at_ns / self.interval_ns) as usize);
        interval.completed += 1;
        interval.transitions += transitions;
        interval.latency.saturating_record(latency_ns.max(1));
    }

    /// Adds another recorder of the same run (another worker thread's).
    pub fn merge(&mut self, other: &Recorder) {
        self.completed += other.completed;
        self.transitions += other.transitions;
        self.latency
            .add(&other.latency)
            .expect("histograms of the same bounds add");
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        for (i, theirs) in other.intervals.iter().enumerate() {
            let ours = self.interval_mut(i);
            ours.completed += theirs.completed;
            ours.transitions += theirs.transitions;
            ours.latency
                .add(&theirs.latency)
                .expect("histograms of the same bounds add");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_interval_and_merges() {
        let mut a = Recorder::new(1_000_000_000);
        a.record(100, 5_000, 3);
        a.record(1_500_000_000, 7_000, 3);
        let mut b = Recorder::new(1_000_000_000);
        b.record(2_100_000_000, 9_000, 4);
        a.merge(&b);
        assert_eq!((a.completed, a.transitions), (3, 10));
        assert_eq!(a.intervals.len(), 3);
        assert_eq!(
            a.intervals.iter().map(|i| i.completed).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        assert_eq!((a.first_ns, a.last_ns), (100, 2_100_000_000));
        assert!(a.latency.max() >= 9_000);
    }
}
