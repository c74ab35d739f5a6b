//! Expressway: AWS Step Functions state machines with Express semantics over event streams.

pub mod allocator;
pub mod api;
pub mod asl;
pub mod callbacks;
pub mod config_reader;
pub mod console;
pub mod daemon;
pub mod engine;
pub mod graph;
pub mod integrations;
#[cfg(test)]
mod layout;
pub mod listener;
pub mod memory_budget;
pub mod mock;
pub mod resource;
pub mod runner;
pub mod telemetry;
