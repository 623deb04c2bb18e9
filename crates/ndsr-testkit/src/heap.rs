//! [`LiveHeap`]: a global allocator that counts the bytes allocated and not
//! yet freed, process-wide, for tests that bound what something costs in
//! memory (an exact and steady figure, where resident memory also depends
//! on how the allocator lays the blocks out).
//!
//! ```no_run
//! #[global_allocator]
//! static HEAP: ndsr_testkit::LiveHeap = ndsr_testkit::LiveHeap::new();
//!
//! let before = HEAP.live();
//! let kept = vec![0u8; 1024];
//! assert!(HEAP.live() - before >= 1024);
//! # drop(kept);
//! ```
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting the live bytes (see the module docs).
#[derive(Debug, Default)]
pub struct LiveHeap {
    live: AtomicIsize,
}

impl LiveHeap {
    /// A counter at zero (for a `static`).
    pub const fn new() -> LiveHeap {
        LiveHeap { live: AtomicIsize::new(0) }
    }

    /// Bytes allocated and not freed since the process started, by every
    /// thread.
    pub fn live(&self) -> isize {
        self.live.load(Ordering::SeqCst)
    }
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for LiveHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.live.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.live.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}
