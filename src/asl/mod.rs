//! The Amazon States Language engine: parse, validate, compile, execute.
//!
//! Invariant: nothing under `asl` does I/O, reads a clock or knows about Kafka or HTTP.
//! Time and task results are handed in by the caller.

pub mod arn;
pub mod choice;
pub mod compile;
pub mod context;
pub mod diagnostic;
pub mod effect;
pub mod error;
pub mod intrinsics;
pub mod json;
pub mod jsonata;
pub mod path;
pub mod program;
pub mod scope;
pub mod size;
pub mod template;
pub mod time;
pub mod timestamp;
pub mod unsupported;
pub mod validate;
pub mod vars;
pub mod vm;
pub mod walk;

pub use compile::compile;
pub use effect::{Effect, ExecutionOptions, Outcome, Token};
pub use program::Program;
pub use time::Millis;
pub use vm::Execution;
