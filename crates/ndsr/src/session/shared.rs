//! What the handles, the supervisor and the hub all read: settings,
//! counters, and handles to parts that keep their own state (the cache,
//! the hub's channel, the session view the supervisor publishes, the task
//! tracker). Nothing here is locked by two modules.

use std::time::Duration;

use tokio::sync::watch;

use crate::cache::Cache;
use crate::config::RegistryBuilder;
use crate::session::{SessionView, State};

/// Settings, counters and handles shared by the handles, the supervisor
/// and the hub.
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
    /// The hub's bounded command channel (see `hub/`): every caller's
    /// route to ZooKeeper.
    pub(crate) hub: tokio::sync::mpsc::Sender<crate::session::HubCmd>,
    /// Every task the registry spawns (supervisor, hub, callbacks, the
    /// cache file's saver, lock monitors and background releases):
    /// `close()` waits for them all, bounded.
    pub(crate) tasks: tokio_util::task::TaskTracker,
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
