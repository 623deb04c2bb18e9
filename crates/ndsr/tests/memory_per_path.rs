//! What a watched path costs the registry in live heap, counted by a global
//! allocator against a real ZooKeeper: 10,000 watched (missing) paths under
//! one parent, as benchmark case 6 watches them. A bound, so that a change
//! that makes every path dearer fails here, not only in the benchmark.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

/// Bytes allocated and not yet freed, by every thread.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_path_costs_at_most_600_bytes_of_heap() {
    let server = ndsr_testkit::ZkServer::shared();
    let r = common::registry(&server.connect_string()).await;
    let base = ndsr_testkit::unique_path("heap");
    let n = 10_000;
    let paths: Vec<String> = (0..n).map(|i| format!("{base}/p{i:06}")).collect();
    let before = LIVE.load(Ordering::Relaxed);
    for chunk in paths.chunks(1000) {
        for got in futures::future::join_all(chunk.iter().map(|p| r.get(p))).await {
            got.unwrap();
        }
    }
    // What the gets left in flight (their futures, the reads' buffers) is
    // freed once they return; what stays is the paths' cost.
    let after = LIVE.load(Ordering::Relaxed);
    let per_path = (after - before) / n as isize;
    assert_eq!(r.stats().watched_paths, n);
    println!("a watched path costs {per_path} bytes of heap");
    assert!(per_path <= 600, "a watched path costs {per_path} bytes of heap");
    r.close().await;
}
