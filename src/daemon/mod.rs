//! The daemon: sources in, sharded execution, results and dead letters out.
//!
//! Only this module knows wire formats and brokers; it drives the `asl` engine through its
//! effect protocol.

pub mod offsets;
pub mod shard;
