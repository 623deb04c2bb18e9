//! [`Registry`]: the cheap, cloneable handle programs hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::codec::{encode, Data};
use crate::config::RegistryBuilder;
use crate::path::validate_path;
use crate::session::supervisor::{self, Command};
use crate::session::{ensure_actor, read_node, stop_actor, ActorCmd, Goal, SessionView, Shared, State};
use crate::snapshot::{Freshness, Snapshot};
use crate::subscription::{drive, CallbackId, CallbackResult, Subscription};
use crate::{Error, Result};

/// A service registry on ZooKeeper: registrations, watched paths and their
/// cache, kept in their desired state across disconnects and session expiry.
///
/// `Registry` is a cheap `Clone` handle; every clone talks to the same
/// session. The session ends when [`close`](Self::close) is called or the
/// last handle is dropped.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> ndsr::Result<()> {
/// let registry = ndsr::Registry::builder("127.0.0.1:2181").build().await?;
/// registry.set_node("/services/web/10.0.0.1:80", serde_json::json!({"weight": 2})).await?;
/// let web = registry.get("/services/web").await?;
/// println!("{:?}", web.children); // ["10.0.0.1:80"]
/// registry.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Registry {
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedSender<Command>,
    callbacks: Arc<Mutex<HashMap<u64, JoinHandle<()>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("servers", &self.shared.hosts).field("state", &self.state()).finish()
    }
}

impl Registry {
    /// A builder for a registry on `servers`: `host:port[,host:port...]`,
    /// optionally followed by a chroot (`zk1:2181,zk2:2181/myapp`), which is
    /// created if missing.
    pub fn builder(servers: &str) -> RegistryBuilder {
        RegistryBuilder::new(servers)
    }

    pub(crate) async fn start(config: RegistryBuilder) -> Result<Registry> {
        let (hosts, chroot) = match config.servers.find('/') {
            Some(i) => (config.servers[..i].to_string(), Some(config.servers[i..].to_string())),
            None => (config.servers.clone(), None),
        };
        if let Some(chroot) = &chroot {
            validate_path(chroot)?;
        }
        let chroot = chroot.filter(|c| c != "/");
        let lazy = config.lazy;
        let connect_timeout = config.connect_timeout_or_default();
        let acl = config.acl.clone().unwrap_or_else(|| crate::acl::default_acl(config.credentials.as_ref()));
        let limiter =
            config.rate_limit.map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n)));
        let cache_file = config
            .cache_file
            .as_ref()
            .map(|p| crate::cachefile::CacheFile::open(p, config.cache_file_max_age));
        let view = SessionView { state: State::Connecting, client: None, epoch: 0, since: SystemTime::now() };
        let shared = Arc::new(Shared {
            config,
            hosts,
            chroot,
            desired: Default::default(),
            cache: Default::default(),
            session: watch::channel(view).0,
            state: watch::channel(State::Connecting).0,
            past_sessions: Default::default(),
            actors: Default::default(),
            acl,
            limiter,
            cache_file,
            requests: Default::default(),
            parents: Default::default(),
        });
        let (cmds, rx) = mpsc::unbounded_channel();
        tokio::spawn(supervisor::run(shared.clone(), rx));
        if shared.cache_file.is_some() {
            tokio::spawn(save_cache_file(Arc::downgrade(&shared), shared.state.subscribe()));
        }
        let registry = Registry { shared, cmds, callbacks: Default::default() };
        if !lazy {
            if let Err(e) = registry.shared.client_by(Instant::now() + connect_timeout).await {
                registry.close().await;
                return Err(e);
            }
        }
        Ok(registry)
    }

    /// Registers an ephemeral node at `path` holding `data` (see
    /// [`Data`]; encoded like the original, with `pid` and `created`), and
    /// keeps it so for the life of the registry: missing parents are created;
    /// if someone deletes it, it is created again; if someone changes its
    /// data, it is written back; after session expiry it is created again
    /// under the new session.
    ///
    /// # Errors
    /// - [`Error::ReadOnly`], [`Error::InvalidPath`], [`Error::DataTooLarge`]
    ///   before any network call.
    /// - [`Error::NoConnection`] when not connected within the connect
    ///   timeout: the registration is **kept** and made once connected
    ///   (call [`unset`](Self::unset) to drop it).
    /// - [`Error::Conflict`] when another live session holds the node: kept,
    ///   and made once that node goes away.
    /// - [`Error::NotAuthorized`] or another ZooKeeper error: the
    ///   registration is dropped.
    pub async fn set_node(&self, path: &str, data: impl Into<Data>) -> Result<()> {
        let bytes = self.prepare_write("set_node", path, data.into())?;
        let previous =
            self.shared.desired().entry(path.to_string()).or_default().goal.replace(Goal::Ephemeral(bytes));
        let result = self.send(path, ActorCmd::Enforce).await;
        if let Err(e) = &result {
            if !e.is_retryable() {
                if let Some(desire) = self.shared.desired().get_mut(path) {
                    desire.goal = previous;
                }
            }
        }
        result
    }

    /// Writes a persistent data node at `path` (missing parents created),
    /// unless it already holds the same value. The path stays watched, so
    /// changes made by others are adopted, not reverted.
    ///
    /// # Errors
    /// As [`set_node`](Self::set_node), except that nothing is retried in the
    /// background: a failed `set_data` wrote nothing.
    pub async fn set_data(&self, path: &str, data: impl Into<Data>) -> Result<()> {
        let bytes = self.prepare_write("set_data", path, data.into())?;
        self.shared.desired().entry(path.to_string()).or_default().watch = true;
        self.send(path, |reply| ActorCmd::SetData { bytes: bytes.clone(), reply }).await
    }

    /// Removes the node at `path`, whoever made it; an absent node is fine.
    /// For a registration, the registry also keeps it absent from now on:
    /// if it reappears, it is deleted.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::InvalidPath`], [`Error::NoConnection`],
    /// [`Error::NotAuthorized`], or a ZooKeeper error (e.g. the node has
    /// children).
    pub async fn unset(&self, path: &str) -> Result<()> {
        self.check_writable("unset")?;
        validate_path(path)?;
        let registered = {
            let mut desired = self.shared.desired();
            match desired.get_mut(path) {
                Some(desire) if desire.goal.is_some() => {
                    desire.goal = Some(Goal::Absent);
                    true
                }
                _ => false,
            }
        };
        if registered {
            return self.send(path, ActorCmd::Enforce).await;
        }
        let (client, _) = self.shared.client_by(self.deadline()).await?;
        match self.shared.call("delete", path, client.delete(path, None)).await {
            Err(Error::ZooKeeper { source: zookeeper_client::Error::NoNode, .. }) => Ok(()),
            other => other,
        }
    }

    /// The snapshot of `path`: the first call reads ZooKeeper and starts a
    /// watch; later calls return the cached snapshot without touching the
    /// network. While disconnected, a cached snapshot is returned marked
    /// [`Freshness::Stale`].
    ///
    /// # Errors
    /// [`Error::InvalidPath`]; [`Error::NoConnection`] when the path was
    /// never read and no connection came within the connect timeout (the
    /// watch is kept and goes live once connected).
    pub async fn get(&self, path: &str) -> Result<Arc<Snapshot>> {
        validate_path(path)?;
        // The hot path: a cached path is kept current by its actor, so a
        // hit needs no lock but the cache's read lock, and no allocation.
        if let Some(snapshot) = self.shared.cache.get(path) {
            return Ok(self.with_freshness(snapshot));
        }
        self.shared.desired().entry(path.to_string()).or_default().watch = true;
        // Cold start with ZooKeeper unreachable: the saved snapshot, stale.
        // The watch is kept and goes live once connected.
        if self.state() != State::Connected {
            if let Some(saved) = self.shared.cache_file.as_ref().and_then(|f| f.lookup(path)) {
                ensure_actor(&self.shared, path);
                return Ok(Arc::new(saved));
            }
        }
        let mut rx = self.shared.cache.subscribe(path);
        let deadline = self.deadline();
        loop {
            self.shared.client_by(deadline).await?;
            ensure_actor(&self.shared, path);
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

    /// Reads `path` once from ZooKeeper without starting a watch.
    ///
    /// # Errors
    /// [`Error::InvalidPath`], [`Error::NoConnection`], [`Error::NotAuthorized`].
    pub async fn read(&self, path: &str) -> Result<Snapshot> {
        validate_path(path)?;
        let (client, _) = self.shared.client_by(self.deadline()).await?;
        let read = read_node(&self.shared, &client, path).await?;
        Ok(Snapshot::of_node(path, read.node.as_ref().map(|(b, s)| (b.as_slice(), *s)), read.children))
    }

    /// Watches `path` and returns its snapshots: the current one first, then
    /// one per change. Does not wait for a connection.
    ///
    /// # Errors
    /// [`Error::InvalidPath`].
    pub fn subscribe(&self, path: &str) -> Result<Subscription> {
        validate_path(path)?;
        self.shared.desired().entry(path.to_string()).or_default().watch = true;
        let rx = self.shared.cache.subscribe(path);
        ensure_actor(&self.shared, path);
        Ok(Subscription::new(rx))
    }

    /// Calls `callback` with the snapshot of `path` now and on every change
    /// (identical snapshots are not repeated), like the original's
    /// `add_callback`. A callback that panics or returns an error is logged
    /// and does not affect other callbacks or the registry. Callbacks run
    /// on the Tokio runtime: they must not block.
    ///
    /// # Errors
    /// [`Error::InvalidPath`].
    pub fn add_callback<F, R>(&self, path: &str, callback: F) -> Result<CallbackId>
    where
        F: Fn(&Snapshot) -> R + Send + Sync + 'static,
        R: CallbackResult + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let subscription = self.subscribe(path)?;
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(drive(path.to_string(), subscription, callback));
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
    /// subscriptions end. A registration on the path is kept.
    ///
    /// # Errors
    /// [`Error::InvalidPath`].
    pub fn unwatch(&self, path: &str) -> Result<()> {
        validate_path(path)?;
        let keep = {
            let mut desired = self.shared.desired();
            match desired.get_mut(path) {
                Some(desire) if desire.goal.is_some() => {
                    desire.watch = false;
                    true
                }
                _ => {
                    desired.remove(path);
                    false
                }
            }
        };
        if !keep {
            stop_actor(&self.shared, path);
            self.shared.cache.remove(path);
        }
        Ok(())
    }

    /// The connection state now.
    pub fn state(&self) -> State {
        *self.shared.state.borrow()
    }

    /// A receiver of connection state changes.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(registry: ndsr::Registry) {
    /// let mut states = registry.state_changes();
    /// while states.changed().await.is_ok() {
    ///     println!("now {:?}", *states.borrow());
    /// }
    /// # }
    /// ```
    pub fn state_changes(&self) -> watch::Receiver<State> {
        self.shared.state.subscribe()
    }

    /// How many ZooKeeper requests this registry has made (every read,
    /// write, watch and session-management call), for monitoring and for
    /// measuring what a change costs.
    pub fn zk_requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The current ZooKeeper session (id and password), while there is one.
    /// Tests use it to force an expiry (`ndsr_testkit::expire_session`).
    pub fn session(&self) -> Option<zookeeper_client::SessionInfo> {
        self.shared.session.borrow().client.as_ref().map(|c| c.session().clone())
    }

    /// Ends the session now: ephemeral registrations vanish at once (not
    /// after the session timeout), watches stop, subscriptions end. Returns
    /// once the session is closed (bounded by the operation timeout).
    pub async fn close(&self) {
        for (_, task) in self.callbacks.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            task.abort();
        }
        let (reply, done) = oneshot::channel();
        if self.cmds.send(Command::Close(reply)).is_ok() {
            let _ = done.await;
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.shared.config.readonly {
            return Err(Error::ReadOnly(op));
        }
        Ok(())
    }

    fn prepare_write(&self, op: &'static str, path: &str, data: Data) -> Result<Vec<u8>> {
        self.check_writable(op)?;
        validate_path(path)?;
        let bytes = encode(&data);
        let limit = self.shared.config.max_data_size;
        if bytes.len() > limit {
            return Err(Error::DataTooLarge { path: path.to_string(), size: bytes.len(), limit });
        }
        Ok(bytes)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.shared.config.connect_timeout_or_default()
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

    /// Sends a command to `path`'s actor and waits for its answer, following
    /// the path to a new actor if the session is rebuilt meanwhile.
    ///
    /// Commands are idempotent, so one whose actor was stopped before it
    /// answered is sent again to the next actor, until the deadline.
    async fn send(&self, path: &str, make: impl Fn(oneshot::Sender<Result<()>>) -> ActorCmd) -> Result<()> {
        let deadline = self.deadline();
        loop {
            self.shared.client_by(deadline).await?;
            let Some(tx) = ensure_actor(&self.shared, path) else {
                // The session changed between the two calls: wait for the next.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let (reply, answer) = oneshot::channel();
            if tx.unbounded_send(make(reply)).is_err() {
                continue;
            }
            // The actor makes a few calls, each bounded by the operation timeout.
            match tokio::time::timeout(self.shared.op_timeout() * 4, answer).await {
                Ok(Ok(result)) => return result,
                Ok(Err(_)) if Instant::now() < deadline => continue,
                Ok(Err(_)) => {
                    return Err(Error::NoConnection(format!("the session was lost while writing {path}")))
                }
                Err(_) => return Err(Error::NoConnection(format!("no answer writing {path}"))),
            }
        }
    }
}

/// Writes the cache file after changes, debounced, until the registry closes.
async fn save_cache_file(shared: std::sync::Weak<Shared>, mut state: watch::Receiver<State>) {
    let Some(changed) = shared.upgrade().map(|s| s.cache.changed.clone()) else { return };
    loop {
        let closing = tokio::select! {
            () = changed.notified() => false,
            closed = state.wait_for(|s| *s == State::Closed) => { let _ = closed; true }
        };
        if !closing {
            tokio::time::sleep(crate::cachefile::DEBOUNCE).await;
        }
        let Some(shared) = shared.upgrade() else { return };
        let snapshots = shared.cache.all();
        let saving = tokio::task::spawn_blocking(move || {
            if let Some(file) = &shared.cache_file {
                file.save(&snapshots);
            }
        });
        let _ = saving.await;
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn handles_are_send_and_sync_and_futures_are_send() {
        assert_send_sync::<Registry>();
        assert_send_sync::<Snapshot>();
        assert_send_sync::<Error>();
        assert_send::<Subscription>(&Subscription::new(watch::channel(None).1));
        // Compile-time only: the futures of the public async methods are Send.
        #[allow(unreachable_code, clippy::diverging_sub_expression)]
        fn _futures_are_send(r: Registry) {
            assert_send(&r.set_node("/a", "x"));
            assert_send(&r.set_data("/a", "x"));
            assert_send(&r.unset("/a"));
            assert_send(&r.get("/a"));
            assert_send(&r.read("/a"));
            assert_send(&r.close());
            assert_send(&RegistryBuilder::new("x").build());
        }
    }
}
