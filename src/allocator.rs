//! The binaries' allocator: mimalloc, entered the way the C allocator is.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose
//! fast path only serves a block that happens to sit at the asked alignment and otherwise
//! takes the generic path (over-allocating): on pass-chain that was ~6% of all instructions,
//! for `serde_json` nodes that ask for 8. Every mimalloc block is a multiple of 8 bytes from
//! an aligned page, so a request aligned to at most 8 goes to plain `mi_malloc`, as `std`'s
//! `System` sends small alignments to `malloc`; larger alignments keep the aligned calls.

use libmimalloc_sys as ffi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment of every block mimalloc hands out (its smallest size class is one word, and
/// every class is a multiple of it).
const EVERY_BLOCK_ALIGN: usize = std::mem::size_of::<usize>();

pub struct Mimalloc;

unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= EVERY_BLOCK_ALIGN {
            ffi::mi_malloc(layout.size()) as *mut u8
        } else {
            ffi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= EVERY_BLOCK_ALIGN {
            ffi::mi_zalloc(layout.size()) as *mut u8
        } else {
            ffi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        ffi::mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= EVERY_BLOCK_ALIGN {
            ffi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            ffi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for_at_every_size() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=600).chain([4095, 4096, 70_000, 1 << 20]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = Mimalloc.alloc(layout);
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    let z = Mimalloc.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zalloc {size} aligned {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let r = Mimalloc.realloc(p, layout, size * 3);
                    assert_eq!(r as usize % align, 0, "realloc {size} aligned {align}");
                    Mimalloc.dealloc(r, Layout::from_size_align(size * 3, align).unwrap());
                    Mimalloc.dealloc(z, layout);
                }
            }
        }
    }
}
