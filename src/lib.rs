//! Expressway: AWS Step Functions state machines with Express semantics over event streams.

pub mod asl;
