//! A per-thread memory budget for work whose allocations cannot be bounded ahead of time:
//! JSONata evaluation, where `$reduce([1..32], function($a){$a & $a}, "x")` asks for 4 GiB
//! in a second, well inside any time limit.
//!
//! The binaries' global allocator is [`Metered`]: while [`limit`] runs a closure, it counts
//! the thread's net allocation of buffers of 4 KiB and more (allocations minus frees) and,
//! once past the budget, cancels the closure's [`CancelToken`]; the JSONata evaluator stops
//! at its next step. Memory is never refused (a refused allocation aborts the process): the
//! budget may be overshot by the one allocation that crosses it. Without `Metered` installed
//! (unit tests), budgets are inert.

use jsonata_core::evaluator::CancelToken;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// Wraps a global allocator to charge allocations against the running thread's budget.
pub struct Metered<A>(pub A);

#[derive(Clone, Copy)]
struct Meter {
    /// Bytes that may still be allocated net.
    left: isize,
    /// Whether `left` has gone below zero (frees afterwards do not undo it).
    spent: bool,
    /// The token to cancel when it is spent; null when no budget is set.
    token: *const CancelToken,
}

thread_local! {
    // Const-initialised and without a destructor, so the allocator can read it at any time,
    // even while the thread is starting or exiting.
    static METER: Cell<Meter> = const {
        Cell::new(Meter {
            left: 0,
            spent: false,
            token: std::ptr::null(),
        })
    };
}

/// Allocations smaller than this are not counted, so the allocator's fast path for the small
/// objects that dominate (values, map entries) stays as it was. What runs away is big
/// buffers (strings, sequences); floods of small objects are bounded by the evaluator's
/// sequence-length limit and timeout.
const METERED_FROM: usize = 4096;

fn metered(size: usize) -> isize {
    if size >= METERED_FROM {
        size as isize
    } else {
        0
    }
}

fn charge(bytes: isize) {
    if bytes == 0 {
        return;
    }
    METER.with(|m| {
        let mut meter = m.get();
        if meter.token.is_null() {
            return;
        }
        meter.left -= bytes;
        if meter.left < 0 && !meter.spent {
            meter.spent = true;
            // SAFETY: `limit` keeps the token alive while it is installed, and clears it
            // before returning. `cancel` is an atomic store: it does not allocate.
            unsafe { (*meter.token).cancel() };
        }
        m.set(meter);
    });
}

/// Runs `f` with a budget of `bytes` net allocation on this thread, cancelling `token` once
/// it is spent. Returns `f`'s result and whether the budget ran out.
pub fn limit<T>(bytes: usize, token: &CancelToken, f: impl FnOnce() -> T) -> (T, bool) {
    /// Puts the outer meter back even if `f` unwinds, so that no allocation after it can
    /// reach the token through a dangling pointer.
    struct Restore(Meter);
    impl Drop for Restore {
        fn drop(&mut self) {
            METER.with(|m| m.set(self.0));
        }
    }
    let outer = METER.with(|m| {
        m.replace(Meter {
            left: isize::try_from(bytes).unwrap_or(isize::MAX),
            spent: false,
            token,
        })
    });
    let restore = Restore(outer);
    let out = f();
    let spent = METER.with(|m| m.get()).spent;
    drop(restore);
    (out, spent)
}

// SAFETY: every call is forwarded to the wrapped allocator unchanged; the accounting
// around it neither allocates nor unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Metered<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(metered(layout.size()));
        self.0.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(metered(layout.size()));
        self.0.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        charge(-metered(layout.size()));
        self.0.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        charge(metered(new_size) - metered(layout.size()));
        self.0.realloc(ptr, layout, new_size)
    }
}
