//! What a watched path costs the registry in live heap, counted by a global
//! allocator against a real ZooKeeper: 10,000 watched (missing) paths under
//! one parent, as benchmark case 6 watches them. A bound, so that a change
//! that makes every path dearer fails here, not only in the benchmark.

mod common;

#[global_allocator]
static HEAP: ndsr_testkit::LiveHeap = ndsr_testkit::LiveHeap::new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_path_costs_at_most_600_bytes_of_heap() {
    let server = ndsr_testkit::ZkServer::shared();
    let r = common::registry(&server.connect_string()).await;
    let base = ndsr_testkit::unique_path("heap");
    let n = 10_000;
    let paths: Vec<String> = (0..n).map(|i| format!("{base}/p{i:06}")).collect();
    let before = HEAP.live();
    for chunk in paths.chunks(1000) {
        for got in futures::future::join_all(chunk.iter().map(|p| r.get(p))).await {
            got.unwrap();
        }
    }
    // What the gets left in flight (their futures, the reads' buffers) is
    // freed once they return; what stays is the paths' cost.
    let after = HEAP.live();
    let per_path = (after - before) / n as isize;
    assert_eq!(r.stats().watched_paths, n);
    println!("a watched path costs {per_path} bytes of heap");
    assert!(per_path <= 600, "a watched path costs {per_path} bytes of heap");
    r.close().await;
}
