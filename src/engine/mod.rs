//! Running executions: the one driver of the VM's effect protocol, and what it needs (a
//! clock, a slab of executions, timers). Every owner of executions — a daemon shard, the API
//! host, the CLI runner — drives them through [`Driver`], so every execution is counted,
//! logged, timed out and answered the same way.

pub mod clock;
pub mod driver;
mod slab;
mod timers;

pub use clock::{wall_millis, Clock};
pub use driver::{
    Driver, Finished, Inbox, MetricsKey, Owned, Start, TaskEvent, Telemetry, BUDGET_SHARES,
    DEFAULT_BYTE_BUDGET,
};
pub use slab::ExecKey;
