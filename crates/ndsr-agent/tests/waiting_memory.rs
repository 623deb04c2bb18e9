//! What a waiting blocking query costs the agent: its live heap (bytes
//! allocated less bytes freed, counted by a global allocator), an exact
//! and steady figure where the resident memory that bench case 10 reports
//! also depends on how the allocator lays the blocks out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ndsr_agent::{Launch, Options, ServersGiven};
use ndsr_testkit::{eventually, unique_path, ZkServer};

#[global_allocator]
static HEAP: ndsr_testkit::LiveHeap = ndsr_testkit::LiveHeap::new();

/// One GET with `Connection: close`: (status, body).
fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, body.to_string())
}

/// The requests the agent is answering (waiting blocking queries included).
fn in_flight(address: SocketAddr) -> usize {
    let (_, metrics) = get(address, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("ndsr_http_requests_in_flight "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}

/// `clients` blocking queries on `path`, sent; the agent's live heap they
/// hold once all of them wait, per query.
fn waiting(
    address: SocketAddr,
    rt: &tokio::runtime::Runtime,
    path: &str,
    index: u64,
    clients: usize,
) -> isize {
    let mut streams = Vec::with_capacity(clients);
    let before = HEAP.live();
    for _ in 0..clients {
        let mut stream = TcpStream::connect(address).expect("connect");
        write!(
            stream,
            "GET /v1/nodes{path}?index={index}&wait=60s HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        streams.push(stream);
    }
    // The /metrics request itself is in flight too.
    rt.block_on(eventually(Duration::from_secs(30), "every client waits", || async {
        in_flight(address) > clients
    }))
    .expect("waiting");
    let held = HEAP.live() - before;
    drop(streams);
    rt.block_on(eventually(Duration::from_secs(30), "every waiting query ended", || async {
        in_flight(address) == 1
    }))
    .expect("ended");
    held / clients as isize
}

/// A blocking query waits with hyper's two 8 KB connection buffers (write
/// and read; hyper has no smaller setting) and its own chain of futures
/// (the connection's task, hyper's request slot, the router's boxes, the
/// handler). Written when that made 21.0 KB in all in a debug build (20.2
/// KB optimized); with the router's layers as `from_fn` middlewares, one
/// `Router::layer` each, it was 24.4 KB.
#[test]
fn a_waiting_blocking_query_holds_little_heap() {
    let servers = ZkServer::shared().connect_string();
    let root = unique_path("agent-memory");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("roots = [\"{root}\"]\n[http]\nmax_connections = 4096\nmax_streams = 2048\n"),
    )
    .expect("config");
    let address = {
        let free = TcpListener::bind("127.0.0.1:0").expect("a free port");
        free.local_addr().expect("its address")
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let launch = Launch::load(Options {
        config,
        listen: Some(address),
        dns_listen: None,
        readonly: false,
        servers: Some(servers.clone()),
        servers_given: ServersGiven::Flag,
        default_servers: servers.clone(),
        session_timeout: None,
        default_session_timeout: Duration::from_secs(10),
    })
    .expect("the configuration");
    rt.spawn(launch.run(ndsr::Registry::builder(&servers)));
    let node = format!("{root}/config");
    rt.block_on(eventually(Duration::from_secs(30), "the agent reads the node", || async {
        TcpStream::connect(address).is_ok() && get(address, &format!("/v1/nodes{node}")).0 == 404
    }))
    .expect("the agent answers");
    let (_, body) = get(address, &format!("/v1/nodes{node}"));
    let index =
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["index"].as_u64().expect("index");
    // A first round grows what is made once (the runtime's slabs, the
    // metrics' keys); the next two count what a waiting query holds (the
    // smaller: a background task's buffers may be counted in one).
    waiting(address, &rt, &node, index, 50);
    let per_query = waiting(address, &rt, &node, index, 200).min(waiting(address, &rt, &node, index, 200));
    eprintln!("a waiting blocking query holds {per_query} bytes of the agent's heap");
    assert!(
        per_query <= 22 * 1024 + 512,
        "a waiting blocking query holds {per_query} bytes of the agent's heap"
    );
}
