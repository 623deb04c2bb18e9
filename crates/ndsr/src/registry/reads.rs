//! Reading: cached gets, direct reads, subscriptions and callbacks, and
//! letting a path go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

use super::Registry;
use crate::path::validate_path;
use crate::session::{read_node, State};
use crate::snapshot::{Freshness, Snapshot};
use crate::subscription::{drive, CallbackId, Interest, Subscription};
use crate::{Error, Result};

impl Registry {
    /// The snapshot of `path`: the first call reads ZooKeeper and starts a
    /// watch; later calls return the cached snapshot without touching the
    /// network. While disconnected, a cached snapshot is returned marked
    /// [`Freshness::Stale`].
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Closed`] after [`close`](Self::close);
    /// [`Error::NoConnection`] when the path was
    /// never read and no connection came within the connect timeout (the
    /// watch is kept and goes live once connected).
    ///
    /// # Cancellation safety
    /// Cancel-safe: a first `get` dropped before its answer leaves the path
    /// watched (as `get` does) and nothing else.
    pub async fn get(&self, path: &str) -> Result<Arc<Snapshot>> {
        validate_path(path)?;
        if self.state() == State::Closed {
            return Err(Error::Closed);
        }
        // The hot path: a cached path is kept current by the hub, so a
        // hit needs no lock but the cache's read lock, and no allocation.
        if let Some(snapshot) = self.shared.cache.get(path) {
            return Ok(self.with_freshness(snapshot));
        }
        // Pinned: the hub (told by the cache) starts watching the path.
        self.shared.cache.pin(path, crate::cache::WATCHED);
        // Cold start with ZooKeeper unreachable: the saved snapshot, stale.
        // The watch is kept and goes live once connected.
        if self.state() != State::Connected {
            if let Some(saved) = self.shared.cache_file.as_ref().and_then(|f| f.lookup(path)) {
                return Ok(Arc::new(saved));
            }
        }
        // Declared before `rx`, so dropped after it: the channel made for
        // this wait is freed on every return, unless a subscriber uses it.
        let _release = crate::cache::ReleaseOnDrop { cache: &self.shared.cache, path };
        let (mut rx, _) = self.shared.cache.subscribe(path);
        let deadline = self.deadline();
        loop {
            self.shared.connected_by(deadline).await?;
            let first = tokio::time::timeout(self.shared.op_timeout(), rx.wait_for(Option::is_some)).await;
            match first {
                Ok(Ok(snapshot)) => {
                    let snapshot = snapshot.clone().expect("waited for Some");
                    return Ok(self.with_freshness(snapshot));
                }
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) if Instant::now() < deadline => continue,
                Err(_) => return Err(Error::NoConnection(format!("no answer reading {path}"))),
            }
        }
    }

    /// The cached snapshot of `path` if it is watched and has been read,
    /// without waiting and without touching the network (the fast path of
    /// [`get`](Self::get), for callers that cannot await).
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Closed`] after [`close`](Self::close).
    pub fn get_cached(&self, path: &str) -> Result<Option<Arc<Snapshot>>> {
        validate_path(path)?;
        if self.state() == State::Closed {
            return Err(Error::Closed);
        }
        Ok(self.shared.cache.get(path).map(|snapshot| self.with_freshness(snapshot)))
    }

    /// Reads `path` once from ZooKeeper without starting a watch.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`], [`Error::NotAuthorized`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: it only reads.
    pub async fn read(&self, path: &str) -> Result<Snapshot> {
        validate_path(path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        let read = read_node(&self.shared, &client, path).await?;
        Ok(Snapshot::of_node(
            &Arc::from(path),
            read.node.as_ref().map(|(b, s)| (b.as_slice(), *s)),
            read.children,
        ))
    }

    /// Reads the exact bytes and the stat of `path` once from ZooKeeper,
    /// without a watch and without decoding (`None`: no node): for values
    /// that must round-trip byte for byte.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`], [`Error::NotAuthorized`].
    pub async fn read_raw(&self, path: &str) -> Result<Option<(Vec<u8>, crate::Stat)>> {
        validate_path(path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        match self.shared.call("get_data", path, client.get_data(path)).await {
            Ok((bytes, stat)) => Ok(Some((bytes, crate::Stat::from(&stat)))),
            Err(e) if e.is_no_node() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Watches `path` and returns its snapshots: the current one first, then
    /// one per change. Does not wait for a connection. The path stays
    /// watched while the subscription lives; dropping the last
    /// subscription of a path that nothing else wants (a [`get`](Self::get),
    /// [`set_data`](Self::set_data), a registration, a callback) unwatches it.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Closed`] after [`close`](Self::close).
    pub fn subscribe(&self, path: &str) -> Result<Subscription> {
        validate_path(path)?;
        if self.state() == State::Closed {
            return Err(Error::Closed);
        }
        let (rx, path) = self.shared.cache.subscribe(path);
        let interest = Interest { cache: Arc::downgrade(&self.shared.cache), path };
        Ok(Subscription::new(rx, Some(interest)))
    }

    /// Calls `callback` with the snapshot of `path` now and on every change
    /// (identical snapshots are not repeated), like the original's
    /// `add_callback`. A callback that panics is logged with its panic
    /// message and does not affect other callbacks or the registry.
    /// Callbacks run on the Tokio runtime: they must not block.
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::Closed`] after [`close`](Self::close).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// registry.add_callback("/services/web", |s| println!("web: {:?}", s.children))?;
    /// # Ok(()) }
    /// ```
    pub fn add_callback<F>(&self, path: &str, callback: F) -> Result<CallbackId>
    where
        F: Fn(&Snapshot) + Send + Sync + 'static,
    {
        self.spawn_callback(path, move |s: &Snapshot| {
            callback(s);
            Ok(())
        })
    }

    /// As [`add_callback`](Self::add_callback), for a callback that can
    /// fail: an error it returns is logged (WARN) with the path, and the
    /// callback is called again on the next change.
    ///
    /// # Errors
    /// As [`add_callback`](Self::add_callback).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
    /// registry.add_fallible_callback("/config/web", |s| {
    ///     let replicas: u64 = s.data.as_ref().and_then(|d| d["replicas"].as_u64()).ok_or("no replicas")?;
    ///     println!("scale to {replicas}");
    ///     Ok::<(), &str>(())
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn add_fallible_callback<F, E>(&self, path: &str, callback: F) -> Result<CallbackId>
    where
        F: Fn(&Snapshot) -> std::result::Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        self.spawn_callback(path, move |s: &Snapshot| callback(s).map_err(|e| e.to_string()))
    }

    fn spawn_callback<F>(&self, path: &str, callback: F) -> Result<CallbackId>
    where
        F: Fn(&Snapshot) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let subscription = self.subscribe(path)?;
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let task = self.shared.tasks.spawn(drive(
            path.to_string(),
            subscription,
            callback,
            self.shared.counters.callback_errors.clone(),
        ));
        self.callbacks.lock().unwrap_or_else(|e| e.into_inner()).insert(id, task);
        Ok(CallbackId(id))
    }

    /// Removes a callback; returns whether it existed.
    pub fn remove_callback(&self, id: CallbackId) -> bool {
        match self.callbacks.lock().unwrap_or_else(|e| e.into_inner()).remove(&id.0) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// Stops watching `path`: its cache entry is dropped and its
    /// subscriptions end. A registration on the path is kept; an unset
    /// registration's path is no longer kept absent.
    ///
    /// # Errors
    /// [`Error::InvalidPath`].
    pub fn unwatch(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        // A live registration is kept; an unset one is forgotten with the
        // watch (its path is no longer kept absent): the hub hears of it.
        self.shared.cache.unwatch(path);
        Ok(())
    }

    fn with_freshness(&self, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
        // The public state is published before the session view, so it is
        // the one that agrees with what callers have already observed.
        if self.state() == State::Connected {
            return snapshot;
        }
        let since = self.shared.session.borrow().since;
        let mut stale = (*snapshot).clone();
        stale.freshness = Freshness::Stale { since };
        Arc::new(stale)
    }
}
