//! Counters and gauges of a registry, for monitoring (the agent's
//! `/metrics`, a program's own exporter).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::session::State;

/// What a registry has done and holds, at one moment: see
/// [`Registry::stats`](crate::Registry::stats).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The connection state now.
    pub state: State,
    /// When the connection was lost, while it is (what stale snapshots carry).
    pub disconnected_since: Option<SystemTime>,
    /// ZooKeeper requests made (as [`Registry::zk_requests`](crate::Registry::zk_requests)).
    pub requests: u64,
    /// Times the registry connected again after losing its connection
    /// (to the same session or, after an expiry, a new one).
    pub reconnects: u64,
    /// Sessions lost to expiry (each followed by a new session that
    /// restores every registration and watch).
    pub expiries: u64,
    /// Paths kept watched (in the cache), registrations included.
    pub watched_paths: usize,
    /// Registrations held: ephemeral nodes the registry keeps in place.
    pub registrations: usize,
    /// Registrations given up after too many dropped writes (see
    /// [`RegistryBuilder::max_write_drops`](crate::RegistryBuilder::max_write_drops)).
    pub registrations_given_up: usize,
    /// Callback calls that returned an error or panicked.
    pub callback_errors: u64,
    /// Sessions in which ZooKeeper's history was seen going back: a write
    /// of ours got an older zxid than one seen before (a server restored
    /// from an older or wiped data directory). Logged at WARN when seen.
    pub history_rewinds: u64,
    /// Configuration values refused by a typed configuration
    /// ([`Registry::config`](crate::Registry::config)): not JSON, outside
    /// the schema, not of the type, or failing a check; the last good value
    /// was kept. Each refused version counts once per handle.
    pub config_rejections: u64,
}

/// The counters behind [`Stats`], kept in the session's shared state.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) reconnects: AtomicU64,
    pub(crate) expiries: AtomicU64,
    /// Shared with every callback task (which must not keep the session alive).
    pub(crate) callback_errors: std::sync::Arc<AtomicU64>,
    pub(crate) history_rewinds: AtomicU64,
    pub(crate) config_rejections: AtomicU64,
    /// The highest zxid seen in a node's stat (see `Shared::wrote_at`).
    pub(crate) max_zxid: std::sync::atomic::AtomicI64,
    /// Whether this session's rewind was said (reset for each session).
    pub(crate) history_warned: std::sync::atomic::AtomicBool,
    /// Gauges the hub keeps: its records, registrations, and registrations
    /// given up.
    pub(crate) watched_paths: std::sync::atomic::AtomicUsize,
    pub(crate) registrations: std::sync::atomic::AtomicUsize,
    pub(crate) registrations_given_up: std::sync::atomic::AtomicUsize,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
