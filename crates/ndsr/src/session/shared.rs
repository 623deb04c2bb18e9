//! The state shared by the handles, the supervisor and the hub.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client::Client;

use crate::cache::Cache;
use crate::config::RegistryBuilder;
use crate::session::{SessionView, State};
use crate::{Error, Result};

/// State shared by the handles, the supervisor and the actors.
pub(crate) struct Shared {
    pub(crate) config: RegistryBuilder,
    pub(crate) hosts: String,
    pub(crate) chroot: Option<String>,
    /// Shared with subscriptions, which tell it when they end.
    pub(crate) cache: std::sync::Arc<Cache>,
    pub(crate) session: watch::Sender<SessionView>,
    pub(crate) state: watch::Sender<State>,
    /// The ACL of every node created.
    pub(crate) acl: Vec<zookeeper_client::Acl>,
    /// The background-work rate limit, if any.
    pub(crate) limiter: Option<governor::DefaultDirectRateLimiter>,
    /// The cache file, if any.
    pub(crate) cache_file: Option<crate::cachefile::CacheFile>,
    /// ZooKeeper requests made so far (see `Registry::zk_requests`).
    pub(crate) requests: std::sync::atomic::AtomicU64,
    /// Reconnects, expiries and callback errors (see `Registry::stats`).
    pub(crate) counters: crate::stats::Counters,
    /// Parents this registry made (or is making), so that many
    /// registrations racing into one new parent make it once.
    pub(crate) parents: Mutex<HashMap<String, std::sync::Arc<tokio::sync::OnceCell<()>>>>,
    /// Every task the registry spawns (supervisor, actors, callbacks, the
    /// cache file's saver, lock monitors and background releases):
    /// `close()` waits for them all, bounded.
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent, so a panic
    // elsewhere while holding the lock does not poison it for us.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Notes a zxid seen in a node's stat.
    pub(crate) fn saw_zxid(&self, zxid: i64) {
        self.counters.max_zxid.fetch_max(zxid, std::sync::atomic::Ordering::Relaxed);
    }

    /// The highest zxid seen so far: taken before a write is sent.
    pub(crate) fn zxid_floor(&self) -> i64 {
        self.counters.max_zxid.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Notes that our write to `path`, sent when `floor` was the highest
    /// zxid seen, was given `zxid`: ZooKeeper's present. A write is always
    /// later than what was committed before it was sent, so an older zxid
    /// means the server's history went back (it was restored from an older
    /// or wiped data directory): said once per session, counted, and the
    /// history starts again from here.
    pub(crate) fn wrote_at(&self, path: &str, floor: i64, zxid: i64) {
        use std::sync::atomic::Ordering;
        let before = floor;
        if zxid >= floor {
            return;
        }
        self.counters.max_zxid.store(zxid, Ordering::Relaxed);
        if !self.counters.history_warned.swap(true, Ordering::Relaxed) {
            crate::stats::Counters::bump(&self.counters.history_rewinds);
            tracing::warn!(
                path,
                seen = format_args!("{before:#x}"),
                now = format_args!("{zxid:#x}"),
                "ZooKeeper's history went back: a write got an older zxid than one seen before, so the \
                 server was restored from an older or wiped data directory. Registrations are restored; \
                 other data written since that point is gone from ZooKeeper"
            );
        }
    }

    /// Waits for a token of the background-work rate limit (if any).
    pub(crate) async fn throttle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
    }

    /// Makes `parent` and its ancestors (persistent) unless this registry
    /// already did; concurrent callers share one `mkdir`.
    ///
    /// As the original does, only `parent` itself gets the registry's ACL;
    /// higher ancestors are created open (`world:anyone` ALL), so that one
    /// user's registration under `/services/web` does not lock every other
    /// user out of `/services`.
    pub(crate) async fn ensure_parent(&self, client: &Client, parent: &str) -> Result<()> {
        let cell = lock(&self.parents).entry(parent.to_string()).or_default().clone();
        cell.get_or_try_init(|| self.make_parent(client, parent)).await.map(|_| ())
    }

    async fn make_parent(&self, client: &Client, parent: &str) -> Result<()> {
        use zookeeper_client::{Acls, CreateMode, Error as Zk};
        if let Some(grandparent) = crate::path::parent(parent).filter(|g| *g != "/") {
            let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
            self.call("create ancestors of", parent, client.mkdir(grandparent, &open)).await?;
        }
        let dir = self.create_options(CreateMode::Persistent);
        match self.call("create", parent, client.create(parent, b"", &dir)).await {
            Ok(_) | Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Has this registry made (or found) `parent`?
    pub(crate) fn parent_known(&self, parent: &str) -> bool {
        lock(&self.parents).get(parent).is_some_and(|cell| cell.initialized())
    }

    /// Forgets that `parent` was made (it was deleted since).
    pub(crate) fn forget_parent(&self, parent: &str) {
        lock(&self.parents).remove(parent);
    }

    /// Options to create a node of `mode` with the registry's ACL.
    pub(crate) fn create_options(
        &self,
        mode: zookeeper_client::CreateMode,
    ) -> zookeeper_client::CreateOptions<'_> {
        mode.with_acls(zookeeper_client::Acls::new(&self.acl))
    }

    pub(crate) fn op_timeout(&self) -> Duration {
        self.config.operation_timeout_or_default()
    }
}
