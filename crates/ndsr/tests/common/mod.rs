//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ndsr::{Registry, Snapshot};
use zookeeper_client::{Acls, Client, CreateMode};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A registry on `servers` with short timeouts suited to tests.
pub async fn registry(servers: &str) -> Registry {
    init_logs();
    Registry::builder(servers)
        .session_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("registry connects to the test server")
}

/// A plain client: the "other" of the acceptance scenarios.
pub async fn other(servers: &str) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(servers)
        .await
        .expect("other connects")
}

/// Creates a node (and missing parents) as "other", retrying through
/// connection losses (an ensemble member may be failing over).
pub async fn create(client: &Client, path: &str, data: &[u8], mode: CreateMode) {
    let options = mode.with_acls(Acls::anyone_all());
    let dirs = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let start = std::time::Instant::now();
    loop {
        let error = match client.create(path, data, &options).await {
            Ok(_) => return,
            Err(zookeeper_client::Error::NoNode) => {
                let parent = &path[..path.rfind('/').unwrap()];
                match client.mkdir(parent, &dirs).await {
                    Ok(()) => continue,
                    Err(e) => e,
                }
            }
            // A retry after a lost answer may find our own node.
            Err(zookeeper_client::Error::NodeExists) if start.elapsed() > Duration::ZERO => return,
            Err(e) => e,
        };
        let retryable =
            matches!(error, zookeeper_client::Error::ConnectionLoss | zookeeper_client::Error::Timeout);
        assert!(retryable && start.elapsed() < WAIT, "create {path}: {error}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn exists(client: &Client, path: &str) -> Option<zookeeper_client::Stat> {
    client.check_stat(path).await.expect("check_stat")
}

/// Waits until `cond` holds for the cached snapshot of `path`.
pub async fn until_cached(registry: &Registry, path: &str, what: &str, cond: impl Fn(&Snapshot) -> bool) {
    ndsr_testkit::eventually(WAIT, what, || async {
        registry.get(path).await.map(|s| cond(&s)).unwrap_or(false)
    })
    .await
    .unwrap();
}

/// Every snapshot a callback was given.
pub type Seen = Arc<std::sync::Mutex<Vec<Arc<Snapshot>>>>;

/// A callback that records every snapshot it is given.
pub fn recorder(registry: &Registry, path: &str) -> (Seen, Arc<AtomicUsize>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), count.clone());
    registry
        .add_callback(path, move |snap: &Snapshot| {
            s.lock().unwrap().push(Arc::new(snap.clone()));
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    (seen, count)
}

pub async fn until_count(count: &AtomicUsize, n: usize) {
    ndsr_testkit::eventually(WAIT, &format!("{n} callback calls"), || async {
        count.load(Ordering::SeqCst) >= n
    })
    .await
    .unwrap();
}
