//! Per-state metrics (label `state`, bounded by the definition): how often each state is
//! entered, how it is left, and how long it takes. One [`StateFigures`] per state machine is
//! shared by every driver that runs it; each driver counts into its own [`StateMetrics`]
//! batch and publishes with the rest of its metrics, to the Prometheus series and to the
//! atomics the console reads.

use super::names;
use crate::asl::effect::{StateEnd, StateMark};
use crate::asl::program::Program;
use metrics::{Counter, Histogram};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Upper bounds, in milliseconds, of the state duration buckets (`le`, in seconds, on
/// `/metrics`): most states take no measurable time, Waits and Tasks up to the Express cap.
pub const STATE_DURATION_BUCKETS_MS: [u64; 15] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

/// The buckets in seconds, as the exporter is configured with them.
pub fn state_duration_buckets_secs() -> Vec<f64> {
    STATE_DURATION_BUCKETS_MS
        .iter()
        .map(|ms| *ms as f64 / 1000.0)
        .collect()
}

/// Buckets plus the overflow (`+Inf`).
const BUCKETS: usize = STATE_DURATION_BUCKETS_MS.len() + 1;

fn bucket_of(millis: u64) -> usize {
    STATE_DURATION_BUCKETS_MS.partition_point(|&le| le < millis)
}

/// What every driver has published about one state.
#[derive(Debug, Default)]
pub struct StateCounts {
    pub entered: AtomicU64,
    pub succeeded: AtomicU64,
    pub caught: AtomicU64,
    pub failed: AtomicU64,
    /// Exits per duration bucket (see [`STATE_DURATION_BUCKETS_MS`]; the last is `+Inf`).
    pub buckets: [AtomicU64; BUCKETS],
}

impl StateCounts {
    /// The `q` quantile (0..=1) of the durations, in milliseconds, interpolated within its
    /// bucket as Prometheus' `histogram_quantile` does; `None` before any exit.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        quantile(&counts, q)
    }
}

fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let lo = if i == 0 {
                0
            } else {
                STATE_DURATION_BUCKETS_MS[i - 1]
            };
            let Some(&hi) = STATE_DURATION_BUCKETS_MS.get(i) else {
                return Some(lo as f64);
            };
            let within = (rank - seen as f64) / n as f64;
            return Some(lo as f64 + (hi - lo) as f64 * within);
        }
        seen += n;
    }
    Some(*STATE_DURATION_BUCKETS_MS.last().expect("buckets") as f64)
}

/// Executions counted by every driver: started, succeeded, failed, timed out.
#[derive(Debug, Default)]
pub struct ExecutionCounts(pub [AtomicU64; 4]);

impl ExecutionCounts {
    pub fn add(&self, counts: [u64; 4]) {
        for (atomic, n) in self.0.iter().zip(counts) {
            if n > 0 {
                atomic.fetch_add(n, Relaxed);
            }
        }
    }

    /// Started, succeeded, failed, timed out.
    pub fn get(&self) -> [u64; 4] {
        [0, 1, 2, 3].map(|i| self.0[i].load(Relaxed))
    }
}

/// One state machine's per-state figures, shared by every driver that runs it.
#[derive(Debug)]
pub struct StateFigures {
    pub executions: ExecutionCounts,
    /// State names, indexed by `StateId` (nested states included).
    pub names: Vec<Arc<str>>,
    pub counts: Vec<StateCounts>,
}

impl StateFigures {
    pub fn new(program: &Program) -> Self {
        StateFigures {
            executions: ExecutionCounts::default(),
            names: program.states.iter().map(|s| s.name.clone()).collect(),
            counts: program
                .states
                .iter()
                .map(|_| StateCounts::default())
                .collect(),
        }
    }
}

/// The Prometheus series of one state.
#[derive(Clone, Debug)]
struct StateSeries {
    entered: Counter,
    /// Indexed like [`StateEnd`]: succeeded, caught, failed.
    exited: [Counter; 3],
    duration: Histogram,
}

/// What one driver counted about one state since it last published.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    entered: u64,
    exited: [u64; 3],
    /// Per bucket: exits and the sum of their durations (ms).
    buckets: [(u64, u64); BUCKETS],
    dirty: bool,
}

fn end_index(end: StateEnd) -> usize {
    match end {
        StateEnd::Succeeded => 0,
        StateEnd::Caught => 1,
        StateEnd::Failed => 2,
    }
}

/// One driver's batch of a state machine's per-state metrics; clones share the figures and
/// series and start with nothing pending.
#[derive(Debug)]
pub struct StateMetrics {
    figures: Arc<StateFigures>,
    series: Arc<[StateSeries]>,
    pending: Vec<Pending>,
}

impl Clone for StateMetrics {
    fn clone(&self) -> Self {
        StateMetrics {
            figures: self.figures.clone(),
            series: self.series.clone(),
            pending: vec![Pending::default(); self.pending.len()],
        }
    }
}

impl StateMetrics {
    pub fn new(state_machine: &str, program: &Program) -> Self {
        let figures = Arc::new(StateFigures::new(program));
        let series: Arc<[StateSeries]> = figures
            .names
            .iter()
            .map(|state| {
                let labels = || {
                    [
                        ("state_machine", state_machine.to_owned()),
                        ("state", state.to_string()),
                    ]
                };
                let exited = |status: &'static str| {
                    let [a, b] = labels();
                    metrics::counter!(names::STATE_EXITED, a.0 => a.1, b.0 => b.1, "status" => status)
                };
                let [a, b] = labels();
                let entered = metrics::counter!(names::STATE_ENTERED, a.0 => a.1, b.0 => b.1);
                let [a, b] = labels();
                let duration = metrics::histogram!(names::STATE_DURATION, a.0 => a.1, b.0 => b.1);
                StateSeries {
                    entered,
                    exited: [exited("succeeded"), exited("caught"), exited("failed")],
                    duration,
                }
            })
            .collect();
        StateMetrics {
            pending: vec![Pending::default(); figures.names.len()],
            figures,
            series,
        }
    }

    /// The figures the console reads.
    pub fn figures(&self) -> &Arc<StateFigures> {
        &self.figures
    }

    pub fn mark(&mut self, mark: StateMark) {
        match mark {
            StateMark::Entered(state) => {
                let p = &mut self.pending[state as usize];
                p.entered += 1;
                p.dirty = true;
            }
            StateMark::Left { state, end, millis } => {
                let millis = millis.max(0) as u64;
                let p = &mut self.pending[state as usize];
                p.exited[end_index(end)] += 1;
                let b = &mut p.buckets[bucket_of(millis)];
                b.0 += 1;
                b.1 += millis;
                p.dirty = true;
            }
        }
    }

    pub fn flush(&mut self) {
        for (i, p) in self.pending.iter_mut().enumerate() {
            if !std::mem::take(&mut p.dirty) {
                continue;
            }
            let (series, counts) = (&self.series[i], &self.figures.counts[i]);
            if p.entered > 0 {
                series.entered.increment(p.entered);
                counts.entered.fetch_add(p.entered, Relaxed);
            }
            let shared = [&counts.succeeded, &counts.caught, &counts.failed];
            for ((n, counter), atomic) in p.exited.iter().zip(&series.exited).zip(shared) {
                if *n > 0 {
                    counter.increment(*n);
                    atomic.fetch_add(*n, Relaxed);
                }
            }
            for ((n, sum), atomic) in p.buckets.iter().zip(&counts.buckets) {
                if *n > 0 {
                    // The bucket's mean lies within the bucket: the exporter counts every
                    // sample in the right bucket, and `_sum` stays exact.
                    let mean_secs = *sum as f64 / *n as f64 / 1000.0;
                    series.duration.record_many(mean_secs, *n as usize);
                    atomic.fetch_add(*n, Relaxed);
                }
            }
            *p = Pending::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(300_000), 14);
        assert_eq!(bucket_of(300_001), 15);
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let mut counts = [0u64; BUCKETS];
        assert_eq!(quantile(&counts, 0.5), None);
        counts[0] = 100; // ≤ 1 ms
        assert_eq!(quantile(&counts, 0.5), Some(0.5));
        counts[8] = 100; // 500 ms < d ≤ 1 s
        assert_eq!(quantile(&counts, 0.99), Some(500.0 + 500.0 * 0.98));
        counts[BUCKETS - 1] = 1000; // past the last bound: the last bound
        assert_eq!(quantile(&counts, 0.99), Some(300_000.0));
    }
}
