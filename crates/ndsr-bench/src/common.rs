//! What every case shares: the server, the peers, clocks and report rows.

use std::path::PathBuf;
use std::time::Duration;

use ndsr_testkit::ZkServer;
use serde::Serialize;
use zookeeper_client::{Acls, Client, CreateMode};

/// The run's shared state.
pub struct Ctx {
    /// The ZooKeeper server every peer uses.
    pub server: ZkServer,
    /// The venv python with the original installed.
    pub python: PathBuf,
    /// The venv python with the drop-in installed, if given (case 7).
    pub dropin: Option<PathBuf>,
    /// Smaller sizes for a smoke run.
    pub quick: bool,
}

impl Ctx {
    /// `full` normally, `quick` with `--quick`.
    pub fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// The server's connection string.
    pub fn servers(&self) -> String {
        self.server.connect_string()
    }
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The case, e.g. "1 cached read".
    pub case: String,
    /// What is measured, with its unit.
    pub metric: String,
    /// ndsr's figure.
    pub ndsr: Option<f64>,
    /// The peer it is compared with.
    pub peer: String,
    /// The peer's figure.
    pub peer_value: Option<f64>,
    /// ndsr / peer.
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met (None: no target for this row).
    pub met: Option<bool>,
    /// Samples behind the figures, and anything lost.
    pub note: String,
}

impl Row {
    /// A row comparing `ndsr` with `peer_value`; `target` decides `met`
    /// from the ratio ndsr/peer.
    // One argument per report column reads best at the call sites, which
    // are tables of rows.
    #[allow(clippy::too_many_arguments)]
    pub fn compare(
        case: &str,
        metric: &str,
        ndsr: Option<f64>,
        peer: &str,
        peer_value: Option<f64>,
        target: &str,
        ok: Option<fn(f64) -> bool>,
        note: String,
    ) -> Row {
        let ratio = match (ndsr, peer_value) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        };
        let met = ok.and_then(|ok| ratio.map(ok));
        Row {
            case: case.into(),
            metric: metric.into(),
            ndsr,
            peer: peer.into(),
            peer_value,
            ratio,
            target: target.into(),
            met,
            note,
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock Python's
/// `time.clock_gettime_ns(CLOCK_MONOTONIC)` reads too, so times taken in
/// both processes compare.
pub fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// A plain client.
pub async fn raw(servers: &str) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(servers)
        .await
        .expect("connect the raw client")
}

/// Creates `path` with `n` persistent children `c000000`.., pipelined.
pub async fn populate(client: &Client, path: &str, n: usize) {
    let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client.mkdir(path, &opts).await.expect("mkdir");
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let names: Vec<String> = chunk.iter().map(|i| format!("{path}/c{i:06}")).collect();
        let creates: Vec<_> = names.iter().map(|p| client.create(p, b"", &opts)).collect();
        for created in futures::future::join_all(creates).await {
            created.expect("create child");
        }
    }
}

/// The number of children of `path` (0 if missing).
pub async fn count(client: &Client, path: &str) -> usize {
    client.list_children(path).await.map(|c| c.len()).unwrap_or(0)
}

/// Polls until `path` has exactly `n` children, or gives up after `limit`.
pub async fn until_count(client: &Client, path: &str, n: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if count(client, path).await == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// A fresh path for a case.
pub fn fresh(name: &str) -> String {
    ndsr_testkit::unique_path(&format!("bench-{name}"))
}
