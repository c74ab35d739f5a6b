//! The daemon: sources in, sharded execution, results and dead letters out.
//!
//! Only this module knows wire formats and brokers; it drives the `asl` engine through its
//! effect protocol.

pub mod config;
pub mod dead_letter;
pub mod demo;
pub mod health;
pub mod kafka;
pub mod offsets;
pub mod run;
pub mod shard;
pub mod sqs;
