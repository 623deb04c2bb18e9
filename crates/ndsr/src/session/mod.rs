//! The session side: shared state, the supervisor and the hub.
//!
//! One supervisor task per registry owns the ZooKeeper session: it connects,
//! notices disconnects and expiry, and after expiry builds a new client (a
//! new *epoch*). Each epoch has one hub task (`hub.rs`) that does the work of
//! every path the program cares about (a registration or a watch): the
//! path's watch, reads, writes and registration enforcement, one operation
//! (`actor.rs`) per path at a time, so that a write and the reads that
//! follow it can never overtake each other, while different paths proceed
//! concurrently (requests are pipelined on the one connection).

pub(crate) mod actor;
pub(crate) mod hub;
pub(crate) mod reconcile;
pub(crate) mod supervisor;
pub(crate) mod watch_table;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use zookeeper_client::Client;

use crate::cache::Cache;
use crate::config::RegistryBuilder;
use crate::{Error, Result};

/// The registry's connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Not connected yet (a lazy registry before its first connection).
    Connecting,
    /// Connected; watches are live.
    Connected,
    /// Lost the connection; the session may still be alive, and the
    /// registry is reconnecting. Reads return stale snapshots.
    Disconnected,
    /// The session expired; the registry is building a new one and will
    /// restore every registration and watch.
    Expired,
    /// Closed by `close()` or by dropping every handle.
    Closed,
}

/// The session as the rest of the crate sees it.
#[derive(Clone)]
pub(crate) struct SessionView {
    pub(crate) state: State,
    /// The live client of this epoch, while connected or disconnected.
    pub(crate) client: Option<Client>,
    pub(crate) epoch: u64,
    /// When the connection was last lost (for staleness).
    pub(crate) since: SystemTime,
    /// Why the last connection attempt failed, when retrying cannot help
    /// (a missing chroot): callers waiting for a connection get it at once.
    pub(crate) error: Option<Error>,
}

/// What the program asked for on one path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Desire {
    /// Keep the path in the cache, watched, until `unwatch` (asked for by
    /// `get`, `set_data`).
    pub(crate) watch: bool,
    /// A token that every live subscription (and callback) of this desire
    /// holds a clone of: the path stays watched while there is one. A token
    /// rather than a count, so that a subscription from before an
    /// `unwatch` never counts against a later desire of the same path.
    pub(crate) subscription: Option<std::sync::Arc<()>>,
    /// A registration's goal for the node.
    pub(crate) goal: Option<Goal>,
    /// Writes of this path in a row whose connection dropped while they
    /// were in flight (see `Shared::write_call`); reset by any success.
    pub(crate) drops: u32,
    /// Deletions of other clients' nodes kept absent (see `Goal::Absent`):
    /// how many in a row, and when the last was.
    pub(crate) foreign_deletes: u32,
    pub(crate) last_foreign_delete: Option<tokio::time::Instant>,
}

/// The state a registration keeps a node in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Goal {
    /// An ephemeral node with exactly these bytes, owned by our session.
    Ephemeral(Vec<u8>),
    /// `unset` of a registration: no node at the path. Our own node (of
    /// this or an earlier session) is deleted, and so is a persistent node
    /// that reappears (rate-limited, logged at WARN); an ephemeral node of
    /// another live session is never deleted: it is someone else's
    /// registration. Ends with `set_node` or `unwatch`.
    Absent,
}

/// A request to a path actor.
pub(crate) enum ActorCmd {
    /// Bring the node to its goal now and report.
    Enforce(Reply),
    /// Write persistent data unless the node already holds this value
    /// (`keep_defaults`: the caller gave `pid`/`created` itself).
    SetData { bytes: Vec<u8>, keep_defaults: bool, reply: Reply },
    /// Answered once the actor's first read (and enforcement) is done.
    Ready(oneshot::Sender<()>),
}

/// The answer channel of a caller's command, and the ticket that decides
/// whether the command runs: the actor starts it only if the caller has not
/// withdrawn it (timed out, or its future was dropped), and a caller that
/// gives up learns whether it had started. So a write whose caller gave up
/// before it started is never performed, and one that had started is
/// reported as of unknown outcome.
pub(crate) struct Reply {
    tx: oneshot::Sender<Result<()>>,
    ticket: Ticket,
}

impl Reply {
    pub(crate) fn new() -> (Reply, oneshot::Receiver<Result<()>>, Ticket) {
        let (tx, rx) = oneshot::channel();
        let ticket = Ticket::default();
        (Reply { tx, ticket: ticket.clone() }, rx, ticket)
    }

    /// Claims the command for running; `false`: the caller withdrew it.
    pub(crate) fn start(&self) -> bool {
        !self.tx.is_closed() && self.ticket.move_from_queued(Ticket::STARTED)
    }

    pub(crate) fn send(self, result: Result<()>) {
        let _ = self.tx.send(result);
    }
}

/// Whether a command is queued, started or withdrawn.
#[derive(Clone, Default)]
pub(crate) struct Ticket(std::sync::Arc<std::sync::atomic::AtomicU8>);

impl Ticket {
    const STARTED: u8 = 1;
    const WITHDRAWN: u8 = 2;

    fn move_from_queued(&self, to: u8) -> bool {
        use std::sync::atomic::Ordering::AcqRel;
        self.0.compare_exchange(0, to, AcqRel, std::sync::atomic::Ordering::Acquire).is_ok()
    }

    /// Withdraws the command unless it has started; `true`: it never will.
    pub(crate) fn withdraw(&self) -> bool {
        self.move_from_queued(Self::WITHDRAWN)
            || self.0.load(std::sync::atomic::Ordering::Acquire) == Self::WITHDRAWN
    }
}

/// Withdraws a command when its caller's future is dropped (cancelled)
/// before the answer came.
pub(crate) struct WithdrawOnDrop(pub(crate) Ticket);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        self.0.withdraw();
    }
}

/// The hub of one epoch (see `hub.rs`).
pub(crate) struct HubHandle {
    pub(crate) epoch: u64,
    /// A `futures` channel: it allocates per message, not per block.
    pub(crate) tx: futures::channel::mpsc::UnboundedSender<hub::HubCmd>,
    pub(crate) task: JoinHandle<()>,
}

/// Sends a path's commands to the hub of the epoch it was made in.
pub(crate) struct PathSender {
    tx: futures::channel::mpsc::UnboundedSender<hub::HubCmd>,
    path: String,
}

impl PathSender {
    /// Sends `cmd`; an error means that epoch's hub is gone.
    pub(crate) fn send(&self, cmd: ActorCmd) -> std::result::Result<(), ()> {
        self.tx.unbounded_send(hub::HubCmd::Path(self.path.clone(), cmd)).map_err(drop)
    }
}

/// State shared by the handles, the supervisor and the actors.
pub(crate) struct Shared {
    pub(crate) config: RegistryBuilder,
    pub(crate) hosts: String,
    pub(crate) chroot: Option<String>,
    pub(crate) desired: Mutex<HashMap<String, Desire>>,
    pub(crate) cache: Cache,
    pub(crate) session: watch::Sender<SessionView>,
    pub(crate) state: watch::Sender<State>,
    /// Sessions this registry held before: their ephemeral nodes are ours
    /// to replace (pitfall 3: the client may declare expiry before the
    /// server does).
    pub(crate) past_sessions: Mutex<HashSet<i64>>,
    /// The hub of the current epoch, which does every path's work.
    pub(crate) hub: Mutex<Option<HubHandle>>,
    /// The ACL of every node created.
    pub(crate) acl: Vec<zookeeper_client::Acl>,
    /// The background-work rate limit, if any.
    pub(crate) limiter: Option<governor::DefaultDirectRateLimiter>,
    /// The cache file, if any.
    pub(crate) cache_file: Option<crate::cachefile::CacheFile>,
    /// ZooKeeper requests made so far (see `Registry::zk_requests`).
    pub(crate) requests: std::sync::atomic::AtomicU64,
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
    pub(crate) fn desired(&self) -> MutexGuard<'_, HashMap<String, Desire>> {
        lock(&self.desired)
    }

    pub(crate) fn hub(&self) -> MutexGuard<'_, Option<HubHandle>> {
        lock(&self.hub)
    }

    pub(crate) fn is_past_session(&self, id: i64) -> bool {
        lock(&self.past_sessions).contains(&id)
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

    /// Waits until connected (or `deadline`) and returns the live client.
    pub(crate) async fn client_by(&self, deadline: tokio::time::Instant) -> Result<(Client, u64)> {
        let mut session = self.session.subscribe();
        let waited = tokio::time::timeout_at(deadline, async {
            loop {
                {
                    let view = session.borrow_and_update();
                    match (&view.state, &view.client) {
                        (State::Connected, Some(client)) => return Ok((client.clone(), view.epoch)),
                        (State::Closed, _) => return Err(Error::Closed),
                        _ => {}
                    }
                    if let Some(error) = &view.error {
                        return Err(error.clone());
                    }
                }
                if session.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(Error::NoConnection(format!("not connected to {} within the connect timeout", self.hosts)))
        })
    }

    /// Runs one write under the operation timeout, and counts, per path, the
    /// writes in a row whose connection dropped while they were in flight
    /// on a connected client. A server drops the connection of a request it
    /// refuses to read (over its `jute.maxbuffer`): resending the same
    /// write on every reconnect would be a reconnect loop, so registrations
    /// back off on this count and give up (see `actor::MAX_WRITE_DROPS`).
    pub(crate) async fn write_call<T>(
        &self,
        op: &'static str,
        path: &str,
        client: &Client,
        fut: impl std::future::Future<Output = std::result::Result<T, zookeeper_client::Error>>,
    ) -> Result<T> {
        let connected = client.state() == zookeeper_client::SessionState::SyncConnected;
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let raw = tokio::time::timeout(self.op_timeout(), fut).await;
        let dropped = match &raw {
            Ok(Ok(_)) => Some(false),
            Ok(Err(zookeeper_client::Error::ConnectionLoss)) if connected => Some(true),
            _ => None,
        };
        if let Some(dropped) = dropped {
            if let Some(desire) = self.desired().get_mut(path) {
                desire.drops = if dropped { desire.drops.saturating_add(1) } else { 0 };
            }
        }
        Self::answer(op, path, raw)
    }

    /// Runs one ZooKeeper call under the operation timeout.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        path: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, zookeeper_client::Error>>,
    ) -> Result<T> {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::answer(op, path, tokio::time::timeout(self.op_timeout(), fut).await)
    }

    fn answer<T>(
        op: &'static str,
        path: &str,
        raw: std::result::Result<
            std::result::Result<T, zookeeper_client::Error>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<T> {
        match raw {
            Ok(result) => result.map_err(|e| Error::from_zk(op, path, e)),
            Err(_) => {
                Err(Error::NoConnection(format!("{op} {path}: no answer within the operation timeout")))
            }
        }
    }
}

/// A node as read: its bytes and stat (`None` when missing) and its children.
pub(crate) struct NodeRead {
    pub(crate) node: Option<(Vec<u8>, crate::snapshot::Stat)>,
    pub(crate) children: Vec<String>,
}

/// Reads a node's data and children, pipelined on the connection (both
/// requests are sent before either answer is awaited).
pub(crate) async fn read_node(shared: &Shared, client: &Client, path: &str) -> Result<NodeRead> {
    let (data, children) = tokio::join!(
        shared.call("get_data", path, client.get_data(path)),
        shared.call("get_children", path, client.list_children(path)),
    );
    let node = match data {
        Ok((bytes, stat)) => Some((bytes, crate::snapshot::Stat::from(&stat))),
        Err(e) if e.is_no_node() => None,
        Err(e) => return Err(e),
    };
    let mut children = match children {
        Ok(children) if node.is_some() => children,
        Ok(_) => Vec::new(),
        Err(e) if e.is_no_node() => Vec::new(),
        Err(e) => return Err(e),
    };
    children.sort();
    Ok(NodeRead { node, children })
}

/// A sender of `path`'s commands in the current epoch, starting the work on
/// the path (and the epoch's hub) if needed. `None` while there is no live
/// session.
pub(crate) fn ensure_actor(shared: &std::sync::Arc<Shared>, path: &str) -> Option<PathSender> {
    let view = shared.session.borrow().clone();
    let client = view.client.filter(|_| view.state != State::Closed)?;
    let mut hub = shared.hub();
    let current = hub.as_ref().is_some_and(|h| h.epoch == view.epoch && !h.tx.is_closed());
    if !current {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let task = shared.tasks.spawn(hub::run(shared.clone(), client, rx));
        // An older epoch's hub (the supervisor normally stops it first) is
        // aborted; the task tracker still waits for it on close.
        if let Some(old) = hub.replace(HubHandle { epoch: view.epoch, tx, task }) {
            old.task.abort();
        }
    }
    let tx = hub.as_ref()?.tx.clone();
    tx.unbounded_send(hub::HubCmd::Watch(path.to_string())).ok()?;
    Some(PathSender { tx, path: path.to_string() })
}

impl Desire {
    /// Does anything still want this path?
    pub(crate) fn is_empty(&self) -> bool {
        let subscribed = matches!(&self.subscription, Some(token) if std::sync::Arc::strong_count(token) > 1);
        !self.watch && !subscribed && self.goal.is_none()
    }
}

/// Forgets `path` if nothing wants it any more: its desire, actor and cache
/// entry. Called under the desired-state lock, so that a `get` or
/// `subscribe` racing with it either keeps the path or starts afresh.
pub(crate) fn forget_if_unwanted(shared: &Shared, desired: &mut HashMap<String, Desire>, path: &str) {
    if desired.get(path).is_some_and(Desire::is_empty) {
        desired.remove(path);
        stop_actor(shared, path);
        shared.cache.remove(path);
    }
}

/// A subscription of `path` holding `token` ended: unwatch the path if
/// nothing else wants it, else free its channel if it has no receiver left.
pub(crate) fn release_subscriber(shared: &Shared, path: &str, token: std::sync::Arc<()>) {
    let mut desired = shared.desired();
    let ours = desired
        .get(path)
        .and_then(|desire| desire.subscription.as_ref())
        .is_some_and(|current| std::sync::Arc::ptr_eq(current, &token));
    // Dropped under the lock, so that of two subscriptions ending at once,
    // the second sees the first's token gone.
    drop(token);
    if ours {
        forget_if_unwanted(shared, &mut desired, path);
    }
    drop(desired);
    shared.cache.release(path);
}

/// Stops the work on `path` (after `unwatch`/`unset` leave nothing to do).
pub(crate) fn stop_actor(shared: &Shared, path: &str) {
    if let Some(hub) = shared.hub().as_ref() {
        let _ = hub.tx.unbounded_send(hub::HubCmd::Stop(path.to_string()));
    }
}
