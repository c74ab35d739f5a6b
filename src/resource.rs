//! The one seam between the engine and the services a `Task` state calls.
//!
//! The VM never calls a resource itself: it yields an invoke effect, and whoever drives the
//! execution (the CLI runner, a daemon shard) hands the call to a [`TaskResource`] and feeds
//! the result back. A resource answers through a [`Completion`], possibly on another thread
//! and possibly before `invoke` returns, so one driver can keep thousands of calls in flight
//! without a thread or a future per call on its side.

use crate::asl::error::Failure;
use serde_json::Value;

pub use crate::asl::vm::TaskCall;

/// Delivers the result of one [`TaskCall`]. Called exactly once.
pub type Completion = Box<dyn FnOnce(Result<Value, Failure>) + Send>;

/// A service a Task state can call.
pub trait TaskResource: Send + Sync {
    /// Starts `call` and arranges for `done` to receive its result. Must not block.
    fn invoke(&self, call: TaskCall, done: Completion);
}

impl<T: TaskResource + ?Sized> TaskResource for Box<T> {
    fn invoke(&self, call: TaskCall, done: Completion) {
        (**self).invoke(call, done)
    }
}
