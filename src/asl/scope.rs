//! What an expression can see while a state runs: its input (`$`), the context object (`$$`)
//! and the workflow variables (`$name`).

use super::path::{JsonPath, Root};
use serde_json::Value;
use std::borrow::Cow;

/// Resolves paths for templates, intrinsic functions and Choice rules. The VM implements it
/// over the state's effective input and a lazily built context object.
pub trait Scope {
    /// The value `path` selects, `None` when a definite path names nothing.
    fn select(&self, path: &JsonPath) -> Option<Cow<'_, Value>>;

    /// The state's effective input, quoted by error causes.
    fn input(&self) -> &Value;

    /// The payload limit, in bytes, that values built here are held to.
    fn payload_limit(&self) -> usize {
        super::size::PAYLOAD_LIMIT_BYTES
    }
}

/// A scope over plain documents, for tests and for callers that have the context at hand.
pub struct DocScope<'a> {
    pub input: &'a Value,
    pub context: &'a Value,
}

impl Scope for DocScope<'_> {
    fn select(&self, path: &JsonPath) -> Option<Cow<'_, Value>> {
        match path.root() {
            Root::Input => path.select(self.input),
            Root::Context => path.select(self.context),
            Root::Variable => None,
        }
    }

    fn input(&self) -> &Value {
        self.input
    }
}
