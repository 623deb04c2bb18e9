//! A pick allocates nothing (the `Selector`'s promise), counted by a global
//! allocator that counts only on the thread that asks it to.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ndsr::discovery::{decode, CuratorInstance, Format, Instance, Selector, Strategy};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn service(n: usize) -> Vec<Arc<Instance>> {
    (0..n)
        .map(|i| {
            let mut instance =
                CuratorInstance::new("web", &format!("i-{i:05}"), "10.0.0.1", 8000 + (i % 1000) as u16);
            instance.enabled = i % 10 != 0;
            let data = serde_json::from_slice(&instance.encode()).unwrap();
            Arc::new(decode(Format::Curator, &instance.id, &data).unwrap().unwrap())
        })
        .collect()
}

#[test]
fn picking_allocates_nothing() {
    let instances = service(10_000);
    for strategy in
        [Strategy::Random, Strategy::RoundRobin, Strategy::Weighted, Strategy::Sticky, Strategy::PowerOfTwo]
    {
        let selector = Selector::new(strategy).seed(1);
        // The first sticky pick remembers its choice (one allocation).
        selector.pick(&instances).unwrap();
        let count = allocations(|| {
            for _ in 0..1_000 {
                let picked = selector.pick(&instances).unwrap();
                assert!(picked.serving);
            }
        });
        assert_eq!(count, 0, "{strategy:?}: {count} allocations in 1,000 picks");
    }
}
