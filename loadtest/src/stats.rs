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
