//! [`Observers`]: what the drivers running a state machine report into, made once per state
//! machine so that every driver running it — each shard, the API host — shares it.

use super::history::{HistoryConfig, HistoryStore, MachineHistory};
use super::StateMachineMetrics;
use crate::asl::Program;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Observers {
    /// Each configured state machine's metrics, per-state part included; each driver takes
    /// its own copy ([`Observers::metrics`]).
    configured: HashMap<String, StateMachineMetrics>,
    /// The kept executions (`[history]`), if any are kept.
    pub history: Option<Arc<HistoryStore>>,
}

impl Observers {
    /// Create after the metrics recorder is installed: handles bind to the recorder current
    /// when they are made.
    /// `per_state`: count each state too (`[metrics] per_state`).
    pub fn new<'a>(
        programs: impl IntoIterator<Item = (&'a str, &'a Program)>,
        per_state: bool,
        history: &HistoryConfig,
    ) -> Self {
        let configured = programs
            .into_iter()
            .map(|(name, program)| {
                let metrics = StateMachineMetrics::new(name);
                let metrics = match per_state {
                    true => metrics.with_states(name, program),
                    false => metrics,
                };
                (name.to_owned(), metrics)
            })
            .collect();
        Observers {
            configured,
            history: history.enabled.then(|| HistoryStore::new(history.clone())),
        }
    }

    /// A driver's copy of `state_machine`'s metrics; one made now (without per-state
    /// metrics) for a state machine that is not configured (created through the API).
    pub fn metrics(&self, state_machine: &str) -> StateMachineMetrics {
        self.configured
            .get(state_machine)
            .cloned()
            .unwrap_or_else(|| StateMachineMetrics::new(state_machine))
    }

    /// Where `state_machine`'s executions are kept, if they are.
    pub fn history(&self, state_machine: &str) -> Option<Arc<MachineHistory>> {
        Some(self.history.as_ref()?.machine(state_machine))
    }
}
