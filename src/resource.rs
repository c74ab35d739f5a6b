//! The one seam between the engine and the services a `Task` state calls.
//!
//! The VM never calls a resource itself: it yields an invoke effect, and whoever drives the
//! execution (the CLI runner, a daemon shard) hands the call to a [`TaskResource`] and feeds
//! the result back. A resource answers through a [`TaskReply`], possibly on another thread
//! and possibly before `invoke` returns, so one driver can keep thousands of calls in flight
//! without a thread or a future per call on its side. A call that is still running (an
//! activity, a callback waiting for its task token) can also report heartbeats through it.

use crate::asl::error::Failure;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

use crate::asl::effect::TaskCall;

/// Delivers the result of one [`TaskCall`]. Called exactly once.
pub type Completion = Box<dyn FnOnce(Result<Value, Failure>) + Send>;

/// Reports a heartbeat of a running [`TaskCall`] to its driver. May be called any number of
/// times, from any thread, before or after the call completes (late ones are ignored).
pub type Heartbeat = Arc<dyn Fn() + Send + Sync>;

/// How a resource answers one [`TaskCall`]: its result, once, and heartbeats meanwhile.
pub struct TaskReply {
    done: Completion,
    heartbeat: Heartbeat,
}

impl TaskReply {
    pub fn new(done: Completion, heartbeat: Arc<dyn Fn() + Send + Sync>) -> Self {
        TaskReply { done, heartbeat }
    }

    /// A reply whose heartbeats go nowhere: for calls that cannot heartbeat (no task token)
    /// and for tests. Shares one no-op, so it costs no allocation.
    pub fn without_heartbeat(done: Completion) -> Self {
        static IGNORED: OnceLock<Heartbeat> = OnceLock::new();
        let heartbeat = IGNORED.get_or_init(|| Arc::new(|| {})).clone();
        TaskReply { done, heartbeat }
    }

    /// Delivers the call's result.
    pub fn complete(self, result: Result<Value, Failure>) {
        (self.done)(result)
    }

    /// The call's heartbeat reporter, to keep after the reply is handed on.
    pub fn heartbeat(&self) -> Arc<dyn Fn() + Send + Sync> {
        self.heartbeat.clone()
    }
}

/// A service a Task state can call.
pub trait TaskResource: Send + Sync {
    /// Starts `call` and arranges for `reply` to receive its result. Must not block.
    fn invoke(&self, call: TaskCall, reply: TaskReply);
}

impl<T: TaskResource + ?Sized> TaskResource for Box<T> {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        (**self).invoke(call, reply)
    }
}

impl<T: TaskResource + ?Sized> TaskResource for &T {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        (**self).invoke(call, reply)
    }
}

impl<T: TaskResource + ?Sized> TaskResource for Arc<T> {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        (**self).invoke(call, reply)
    }
}
