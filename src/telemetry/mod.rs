//! What the daemon tells operators: Prometheus metrics (`metrics.rs`, the only module allowed
//! the `metrics` macros; `docs/metrics.md` is its spec) and execution logs in Step Functions'
//! CloudWatch shape (`exec_log.rs`). At crate level because every component reports through it
//! — the execution driver, the sources, the integrations — and it imports none of them.

pub mod config;
pub mod exec_log;
pub mod metrics;

pub use self::metrics::*;
