//! [`Registry`]: the cheap, cloneable handle programs hold.

mod acls;
mod monitoring;
pub mod raw;
mod reads;
mod sequential;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::codec::{encode, Data};
use crate::config::RegistryBuilder;
use crate::path::validate_path;
use crate::session::supervisor::{self, Command};
use crate::session::{ActorCmd, Goal, HubCmd, Reply, SessionView, Shared, State, WithdrawOnDrop};
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
    pub(crate) shared: Arc<Shared>,
    /// Compiled configuration schemas (see `release`).
    pub(crate) schemas: Arc<crate::release::Schemas>,
    /// What the last release of each path left (see `release`).
    pub(crate) known: Arc<crate::release::Known>,
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
    /// optionally followed by a chroot (`zk1:2181,zk2:2181/myapp`), which
    /// must exist unless [`create_chroot`](RegistryBuilder::create_chroot)
    /// is set.
    pub fn builder(servers: &str) -> RegistryBuilder {
        RegistryBuilder::new(servers)
    }

    pub(crate) async fn start(config: RegistryBuilder) -> Result<Registry> {
        let crate::config::Servers { hosts, chroot } = crate::config::parse_servers(&config.servers)?;
        if config.session_timeout.is_zero() {
            return Err(Error::InvalidArgument("the session timeout must be more than zero"));
        }
        if config.readonly && config.create_chroot {
            return Err(Error::InvalidArgument("a read-only registry cannot create its chroot"));
        }
        crate::release::check_identity(&config.identity_or_default(), &config.labels)?;
        validate_path(&config.config_root)?;
        if config.config_root == "/" {
            return Err(Error::InvalidPath {
                path: "/".into(),
                reason: "the configuration root cannot be /",
            });
        }
        let lazy = config.lazy;
        let connect_timeout = config.connect_timeout_or_default();
        let acl = config.acl.clone().unwrap_or_else(|| crate::acl::default_acl(config.credentials.as_ref()));
        let limiter =
            config.rate_limit.map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n)));
        let cache_file = config
            .cache_file
            .as_ref()
            .map(|p| crate::cachefile::CacheFile::open(p, config.cache_file_max_age));
        let view = SessionView {
            state: State::Connecting,
            info: None,
            epoch: 0,
            since: SystemTime::now(),
            error: None,
        };
        let (hub, hub_rx) = mpsc::channel(crate::session::QUEUE);
        let shared = Arc::new(Shared {
            config,
            hosts,
            chroot,
            cache: Default::default(),
            session: watch::channel(view).0,
            state: watch::channel(State::Connecting).0,
            acl,
            limiter,
            cache_file,
            requests: Default::default(),
            counters: Default::default(),
            hub,
            tasks: Default::default(),
        });
        let (cmds, rx) = mpsc::unbounded_channel();
        shared.tasks.spawn(supervisor::run(shared.clone(), rx, hub_rx));
        if shared.cache_file.is_some() {
            shared.tasks.spawn(save_cache_file(Arc::downgrade(&shared), shared.state.subscribe()));
        }
        let registry = Registry {
            shared,
            cmds,
            callbacks: Default::default(),
            schemas: Default::default(),
            known: Default::default(),
        };
        if !lazy {
            if let Err(e) = registry.shared.connected_by(Instant::now() + connect_timeout).await {
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
    ///
    /// # Cancellation safety
    /// Dropping the future does not drop the registration: like a
    /// `NoConnection`, it stays in the desired state and is made (or kept)
    /// in the background; call [`unset`](Self::unset) to drop it.
    pub async fn set_node(&self, path: &str, data: impl Into<Data>) -> Result<()> {
        let bytes = self.prepare_write("set_node", path, &data.into())?;
        self.register("set_node", path, bytes).await
    }

    /// Registers an ephemeral node at `path` holding exactly `bytes` (no
    /// `pid` and `created`, no JSON encoding), kept as
    /// [`set_node`](Self::set_node) keeps its nodes. For other systems'
    /// formats (see [`discovery`](crate::discovery)) and binary data.
    ///
    /// # Errors
    /// As [`set_node`](Self::set_node).
    ///
    /// # Cancellation safety
    /// As [`set_node`](Self::set_node).
    pub async fn set_node_raw(&self, path: &str, bytes: impl Into<Vec<u8>>) -> Result<()> {
        let bytes = self.check_write("set_node_raw", path, bytes.into())?;
        self.register("set_node_raw", path, bytes).await
    }

    /// How long a call waits for a connection.
    pub(crate) fn connect_timeout(&self) -> std::time::Duration {
        self.shared.config.connect_timeout_or_default()
    }

    /// Makes `bytes` the registration of `path` and waits for it.
    async fn register(&self, op: &'static str, path: &str, bytes: Vec<u8>) -> Result<()> {
        let goal = Goal::Ephemeral(bytes);
        // The goal is set first, whatever comes of the connection (a
        // registration is kept through `NoConnection`); its answer (the
        // goal it replaced) is only needed if the registration fails, so it
        // is not waited for: the enforcement follows it on the same queue.
        let (replaced, previous) = oneshot::channel();
        let set = HubCmd::Goal { path: path.to_string(), goal: goal.clone(), reply: replaced };
        self.shared.enqueue(set, self.deadline(), Some((op, path))).await?;
        let result = self.send(op, path, ActorCmd::Enforce).await;
        if let Err(e) = &result {
            if !e.keeps_goal() {
                // Dropped: as before the call, and nothing left behind if
                // the path was new. A task of its own (that `close()`
                // waits for), so that it is done even if this call is
                // cancelled first.
                let restoring = restore(self.shared.clone(), path.into(), goal, previous);
                // The registration's own error is the answer, whatever
                // the restore met (a registry closed meanwhile).
                let _ = self.shared.tasks.spawn(restoring).await;
            }
        }
        result
    }

    /// Sends the hub a command and waits for its answer.
    /// A full queue is waited for within the connect timeout (the hub
    /// answers these at once, without a ZooKeeper call).
    async fn ask<T>(&self, make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> HubCmd) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.shared.enqueue(make(reply), self.deadline(), None).await?;
        answer.await.map_err(|_| Error::Closed)
    }

    /// The bytes of `path`'s registration, if this registry holds one there.
    pub(crate) async fn registration(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let path = path.to_string();
        self.ask(|reply| HubCmd::Registration { path, reply }).await
    }

    /// Writes a persistent data node at `path` (missing parents created),
    /// unless it already holds the same value: the same decoded object,
    /// where `pid` and `created` count only if `data` gives them. The write
    /// is conditional on the version just read. The path stays watched, so
    /// changes made by others are adopted, not reverted.
    ///
    /// # Errors
    /// As [`set_node`](Self::set_node), except that nothing is retried in the
    /// background: a failed `set_data` wrote nothing. Also
    /// [`Error::Conflict`] when the node is an ephemeral node of another
    /// session (its owner would revert the write, or it would vanish with
    /// that session), and [`Error::InvalidArgument`] when `path` is a
    /// registration of this registry (change it with `set_node`).
    ///
    /// # Cancellation safety
    /// A call dropped before its write started writes nothing (the write is
    /// withdrawn); one dropped after may complete. The path stays watched
    /// either way.
    pub async fn set_data(&self, path: &str, data: impl Into<Data>) -> Result<()> {
        let data = data.into();
        let bytes = self.prepare_write("set_data", path, &data)?;
        let keep_defaults = match &data {
            Data::Object(user) => user.contains_key("pid") || user.contains_key("created"),
            Data::None | Data::String(_) => false,
        };
        let path_ = path.to_string();
        if !self.ask(|reply| HubCmd::Watch { path: path_, reply }).await? {
            return Err(Error::InvalidArgument(
                "the path is a registration of this registry: change its data with set_node",
            ));
        }
        self.send("set_data", path, |reply| ActorCmd::SetData { bytes: bytes.clone(), keep_defaults, reply })
            .await
    }

    /// Removes the node at `path`; an absent node is fine.
    ///
    /// For a registration of this registry, `unset` withdraws it and keeps
    /// the path free of stray nodes, as the original does: our own node is
    /// deleted now (or once connected), and a persistent node that
    /// reappears there is deleted too, at most once a second and less
    /// often while it keeps coming back, with a WARN each time. An
    /// ephemeral node of another live session is never deleted: when
    /// another process registers the same path, it keeps its registration.
    /// [`set_node`](Self::set_node) or [`unwatch`](Self::unwatch) ends this.
    /// Any other path is deleted whoever made its node.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::InvalidPath`] (also for `/` and, without
    /// a chroot, ZooKeeper's own `/zookeeper` tree), [`Error::NoConnection`],
    /// [`Error::NotAuthorized`], [`Error::NotEmpty`] when the node has
    /// children (see [`unset_recursive`](Self::unset_recursive)), or another
    /// ZooKeeper error.
    ///
    /// # Cancellation safety
    /// For a registration, dropping the future keeps the unset in the
    /// desired state: the node is removed at the path's next event or
    /// reconnect at the latest. For any other path, a delete already sent
    /// may or may not be performed.
    pub async fn unset(&self, path: &str) -> Result<()> {
        self.check_removable("unset", path)?;
        let path_ = path.to_string();
        let registered = self.ask(|reply| HubCmd::Unset { path: path_, reply }).await?;
        if registered {
            return self.send("unset", path, ActorCmd::Enforce).await;
        }
        let client = self.shared.lease(self.deadline()).await?.client;
        match self.shared.call("delete", path, client.delete(path, None)).await {
            Err(e) if e.is_no_node() => Ok(()),
            other => other,
        }
    }

    /// Removes the node at `path` and everything under it, deepest first,
    /// and returns how many nodes were deleted. Nodes created meanwhile are
    /// removed too (up to a bound); an absent node is fine (0).
    ///
    /// # Errors
    /// As [`unset`](Self::unset); a failure part-way leaves the nodes not
    /// yet deleted in place.
    ///
    /// # Cancellation safety
    /// Not atomic: a call dropped part-way may have deleted part of the tree.
    pub async fn unset_recursive(&self, path: &str) -> Result<usize> {
        self.check_removable("unset", path)?;
        let client = self.shared.lease(self.deadline()).await?.client;
        let mut deleted = 0;
        for _ in 0..8 {
            // Breadth-first listing, then deletion from the deepest node up.
            let mut order = vec![path.to_string()];
            let mut i = 0;
            while i < order.len() {
                let node = order[i].clone();
                match self.shared.call("get_children", &node, client.list_children(&node)).await {
                    Ok(children) => order.extend(children.into_iter().map(|c| format!("{node}/{c}"))),
                    Err(e) if e.is_no_node() => {}
                    Err(e) => return Err(e),
                }
                i += 1;
            }
            let mut retry = false;
            for node in order.iter().rev() {
                match self.shared.call("delete", node, client.delete(node, None)).await {
                    Ok(()) => deleted += 1,
                    Err(e) if e.is_no_node() => {}
                    // A child was added meanwhile: list again.
                    Err(Error::NotEmpty { .. }) => retry = true,
                    Err(e) => return Err(e),
                }
            }
            if !retry {
                return Ok(deleted);
            }
        }
        Err(Error::NoConnection(format!("{path} kept gaining children while being removed")))
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

    /// How many tasks of this registry are running (its supervisor, the
    /// session's hub, callbacks, the cache file's saver, lock monitors):
    /// 0 once [`close`](Self::close) has returned. For monitoring.
    pub fn live_tasks(&self) -> usize {
        self.shared.tasks.len()
    }

    /// The current ZooKeeper session (id and password), while there is one.
    /// Tests use it to force an expiry (`ndsr_testkit::expire_session`).
    pub fn session(&self) -> Option<zookeeper_client::SessionInfo> {
        self.shared.session.borrow().info.clone()
    }

    /// Ends the session now: ephemeral registrations vanish at once (not
    /// after the session timeout), watches stop, subscriptions and
    /// callbacks end, held locks are lost, and the cache file gets its last
    /// save. Returns once the session is closed and every task of the
    /// registry has ended (bounded by twice the operation timeout). A live
    /// [`LockGuard`](crate::LockGuard) does not delay it.
    ///
    /// # Cancellation safety
    /// Cancel-safe: the session still closes (the supervisor carries on).
    pub async fn close(&self) {
        for (_, task) in self.callbacks.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            task.abort();
        }
        // The session ends when the last clone of its client is dropped:
        // the configuration calls' kept lease goes before the supervisor
        // ends it, and again after (a call may have kept it meanwhile).
        self.known.forget_lease();
        let (reply, done) = oneshot::channel();
        if self.cmds.send(Command::Close(reply)).is_ok() {
            let _ = done.await;
        }
        self.known.forget_lease();
        // Every clone shares the cache: end the subscriptions here, not
        // when the last clone is dropped.
        self.shared.cache.end_subscriptions();
        // Callbacks were aborted above; the supervisor has stopped the
        // hub (and waited for it); the saver ends on `Closed` after its last save; lock
        // monitors end with the session. Wait for all of them.
        self.shared.tasks.close();
        let _ = tokio::time::timeout(self.shared.op_timeout(), self.shared.tasks.wait()).await;
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.shared.config.readonly {
            return Err(Error::ReadOnly(op));
        }
        Ok(())
    }

    fn prepare_write(&self, op: &'static str, path: &str, data: &Data) -> Result<Vec<u8>> {
        self.check_write(op, path, encode(data))
    }

    /// Checks a write of `bytes` at `path` before anything is sent.
    fn check_write(&self, op: &'static str, path: &str, bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.check_writable(op)?;
        validate_path(path)?;
        if path == "/" {
            return Err(Error::InvalidPath { path: path.into(), reason: "the root cannot be written" });
        }
        let limit = self.shared.config.max_data_size;
        if bytes.len() > limit {
            return Err(Error::DataTooLarge { path: path.to_string(), size: bytes.len(), limit });
        }
        let size = self.request_size(path, bytes.len());
        let limit = self.shared.config.max_request_size;
        if size > limit {
            return Err(Error::DataTooLarge { path: path.to_string(), size, limit });
        }
        Ok(bytes)
    }

    /// An upper bound on the bytes of the largest request that writes
    /// `data_len` bytes at `path`: the atomic replace of a registration
    /// (a multi of a delete and a create, so the path twice), with the
    /// ACL, headers and length prefixes.
    fn request_size(&self, path: &str, data_len: usize) -> usize {
        let (chroot, path) = (self.shared.chroot.as_deref().map_or(0, str::len), path.len());
        let acl: usize = self.shared.acl.iter().map(|a| 16 + a.scheme().len() + a.id().len()).sum();
        64 + 2 * (chroot + path + 4) + 4 + data_len + 4 + acl
    }

    /// Checks a path that is about to be deleted.
    fn check_removable(&self, op: &'static str, path: &str) -> Result<()> {
        self.check_writable(op)?;
        validate_path(path)?;
        let bad = |reason| Err(Error::InvalidPath { path: path.to_string(), reason });
        if path == "/" {
            return bad("the root cannot be removed");
        }
        if self.shared.chroot.is_none() && (path == "/zookeeper" || path.starts_with("/zookeeper/")) {
            return bad("/zookeeper is ZooKeeper's own tree and cannot be removed");
        }
        Ok(())
    }

    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.shared.config.connect_timeout_or_default()
    }

    /// Sends a command to `path`'s record in the hub and waits for its
    /// answer, sending it again if the session is rebuilt meanwhile.
    ///
    /// Commands are idempotent, so one whose operation was stopped (with its
    /// session) before it answered is sent again, until the deadline. A
    /// command that has not started when this gives up (or is cancelled)
    /// is withdrawn and never runs; one that had started is reported as
    /// [`Error::OutcomeUnknown`].
    async fn send(&self, op: &'static str, path: &str, make: impl Fn(Reply) -> ActorCmd) -> Result<()> {
        let deadline = self.deadline();
        loop {
            self.shared.connected_by(deadline).await?;
            let (reply, answer, ticket) = Reply::new();
            let _withdraw = WithdrawOnDrop(ticket.clone());
            // The command starts the path if it is new. A full queue is
            // waited for (within the deadline).
            let cmd = HubCmd::Path(path.to_string(), make(reply));
            self.shared.enqueue(cmd, deadline, Some((op, path))).await?;
            // The operation makes a few calls, each bounded by the operation
            // timeout; the caller waits the write timeout for all of them.
            match tokio::time::timeout(self.shared.config.write_timeout_or_default(), answer).await {
                Ok(Ok(result)) => return result,
                Ok(Err(_)) if Instant::now() < deadline => continue,
                Ok(Err(_)) if ticket.withdraw() => {
                    return Err(Error::NoConnection(format!("the session was lost before writing {path}")))
                }
                Ok(Err(_)) => return Err(Error::OutcomeUnknown { op, path: path.to_string() }),
                Err(_) if ticket.withdraw() => {
                    let why = "not started within the operation timeout; withdrawn, nothing was written";
                    return Err(Error::NoConnection(format!("{op} {path}: {why}")));
                }
                Err(_) => return Err(Error::OutcomeUnknown { op, path: path.to_string() }),
            }
        }
    }
}

/// Puts back the goal a failed registration replaced (`previous`: the
/// hub's answer to its `Goal`), and lets the path go if nothing else wants
/// it.
async fn restore(
    shared: Arc<Shared>,
    path: String,
    failed: Goal,
    previous: oneshot::Receiver<Option<Goal>>,
) -> Result<()> {
    let previous = previous.await.map_err(|_| Error::Closed)?;
    let (reply, done) = oneshot::channel();
    shared.hub.send(HubCmd::Restore { path, failed, previous, reply }).await.map_err(|_| Error::Closed)?;
    done.await.map_err(|_| Error::Closed)
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
    use crate::{Snapshot, Subscription};

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn handles_are_send_and_sync_and_futures_are_send() {
        assert_send_sync::<Registry>();
        assert_send_sync::<Snapshot>();
        assert_send_sync::<Error>();
        assert_send::<Subscription>(&Subscription::new(watch::channel(None).1, None));
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
