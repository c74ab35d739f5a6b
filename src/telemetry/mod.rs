//! What the daemon tells operators: Prometheus metrics (`metrics.rs`, the only module allowed
//! the `metrics` macros; `docs/metrics.md` is its spec) and execution logs in Step Functions'
//! CloudWatch shape (`exec_log.rs`), the bounded execution history that `GetExecutionHistory`
//! and the console read (`history.rs`), and the daemon's own operational log (`oplog.rs`:
//! `tracing` on stderr, repeated errors rate-limited). At crate level because every component reports through it
//! — the execution driver, the sources, the integrations — and it imports none of them.

pub mod config;
pub mod exec_log;
pub mod history;
pub mod metrics;
pub mod observers;
pub mod oplog;

pub use self::metrics::*;
pub use self::observers::Observers;
