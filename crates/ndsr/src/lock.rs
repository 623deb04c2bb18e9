//! Locks for N holders, compatible with kazoo's `Semaphore` (and so with
//! the Python original's `get_lock`): Rust and Python processes exclude
//! each other.
//!
//! # Layout in ZooKeeper (kazoo's)
//! - `<path>`: persistent; its data is the lease count (`b"1"`).
//! - `<path>/<uuid-hex>`: one ephemeral node per holder, holding its name.
//! - `<path>-__lock__/<uuid-hex>__lock__<seq>`: ephemeral sequential nodes
//!   of kazoo's `Lock`, which serializes contenders while they count the
//!   holders; the lowest sequence holds it.
//!
//! Unlike the original, a waiter is woken by ZooKeeper watches, so a lock
//! freed during the wait is acquired.
//!
//! # Mutual exclusion when the link goes quiet
//!
//! A holder cut off from ZooKeeper cannot know whether its session is still
//! alive: the server expires it one session timeout after it last heard
//! from the holder, and another process may take the lock at once, while
//! the client library notices only later (a dropped link, unlike a refused
//! one, is silent). So a guard does not wait to be told: it checks with the
//! server regularly, and reports the lock lost once the server has not
//! answered for a part of the session timeout
//! ([`LockBuilder::lost_after`], ⅔ by default, as Curator's standard policy
//! treats a suspended connection as lost).
//! [`LockGuard::session_deadline`] says by when what runs under the lock
//! must have stopped: the earliest moment the server may expire the session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client::{Client, CreateMode, Error as Zk, EventType, OneshotWatcher};

use crate::path::validate_path;
use crate::session::{reconcile, Shared, State};
use crate::{Error, Registry, Result};

/// Default time to wait for a lock, as the original's `LOCK_WAIT`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The part of the session timeout after which a guard whose server does
/// not answer reports its lock lost (⅔): see [`LockBuilder::lost_after`].
pub const DEFAULT_LOST_AFTER: f64 = 2.0 / 3.0;

/// Options for a lock; start from [`Registry::lock`].
///
/// # Example
///
/// ```no_run
/// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
/// use std::time::Duration;
/// let guard = registry
///     .lock("/locks/deploy")
///     .name("host1")
///     .simultaneous(1)
///     .wait(Duration::from_secs(30))
///     .acquire()
///     .await?;
/// // ... the critical section; check guard.is_lost() in long ones ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a lock builder does nothing until acquired"]
pub struct LockBuilder {
    registry: Registry,
    path: String,
    name: String,
    simultaneous: u32,
    wait: Duration,
    lost_after: f64,
}

impl LockBuilder {
    pub(crate) fn new(registry: Registry, path: &str) -> LockBuilder {
        LockBuilder {
            registry,
            path: path.to_string(),
            name: String::new(),
            simultaneous: 1,
            wait: DEFAULT_WAIT,
            lost_after: DEFAULT_LOST_AFTER,
        }
    }

    /// The holder's name, stored in its node (default: empty, as kazoo).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many holders at once (default 1). Every holder of a lock must
    /// use the same count.
    pub fn simultaneous(mut self, n: u32) -> Self {
        self.simultaneous = n;
        self
    }

    /// How long `acquire` waits (default 300 s; zero tries once).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// After how much silence from ZooKeeper, as a part of the negotiated
    /// session timeout, the guard reports the lock lost (default ⅔,
    /// [`DEFAULT_LOST_AFTER`]; from above 0 to 1).
    ///
    /// The server may expire the session, and give the lock to another
    /// process, one session timeout after it last heard from this one. The
    /// guard counts from the last request the server is known to have
    /// received, so with ⅔ what runs under the lock has the last third of
    /// the session timeout to stop ([`LockGuard::session_deadline`]).
    /// Smaller values leave more time to stop but give up the lock on
    /// shorter hiccups.
    pub fn lost_after(mut self, part_of_session_timeout: f64) -> Self {
        self.lost_after = part_of_session_timeout;
        self
    }

    /// Takes the lock, waiting up to the `wait` for it.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] for a read-only registry; [`Error::InvalidPath`];
    /// [`Error::InvalidArgument`] for `simultaneous(0)` or a `lost_after`
    /// outside (0, 1];
    /// [`Error::LockMismatch`] when the lock admits another number of
    /// holders; [`Error::NotALock`] when the node at the path is not a lock
    /// (an ephemeral node, data that is not a lease count, children that
    /// are not holders), before anything is written;
    /// [`Error::LockTimeout`] when not obtained in time;
    /// [`Error::NoConnection`].
    ///
    /// # Cancellation safety
    /// Cancel-safe: a cancelled call withdraws its request. Its contender
    /// node, and its holder node if that was being created, are deleted in
    /// the background (a task [`Registry::close`] waits for), not left until
    /// the session ends.
    pub async fn acquire(self) -> Result<LockGuard> {
        if self.registry.shared().config.readonly {
            return Err(Error::ReadOnly("lock"));
        }
        validate_path(&self.path)?;
        if self.path == "/" {
            return Err(Error::InvalidPath { path: self.path, reason: "a lock cannot be the root" });
        }
        if self.simultaneous == 0 {
            return Err(Error::InvalidArgument("simultaneous must be at least 1"));
        }
        if !(self.lost_after > 0.0 && self.lost_after <= 1.0) {
            return Err(Error::InvalidArgument("lost_after must be above 0 and at most 1"));
        }
        let shared = self.registry.shared().clone();
        let connect_by = Instant::now() + shared.config.connect_timeout_or_default();
        let (client, epoch) = shared.client_by(connect_by).await?;
        let deadline = Instant::now() + self.wait;
        ensure_lease_node(&shared, &client, &self.path, self.simultaneous).await?;
        // Until this call succeeds, returning or being dropped withdraws
        // what it made: a create that timed out may still have been
        // applied, and a contender left behind would block every later
        // one (kazoo's too) until our session ends.
        let withdraw = Withdraw::new(&shared, epoch, &self.path);
        let contender = enter_queue(&shared, &client, &self, &withdraw, deadline).await?;
        // Whatever happens next, leave the queue.
        let result = take_lease(&shared, &client, &self, &withdraw, deadline).await;
        let _ = shared.call("delete", &contender, client.delete(&contender, None)).await;
        let (node, heard) = result?;
        withdraw.defuse();
        let timeout = client.session_timeout();
        let limit = timeout.mul_f64(self.lost_after);
        Ok(LockGuard::new(shared, epoch, self.path, node, Silence { heard, timeout, limit }))
    }

    /// Takes the lock only if it is free now ([`wait`](Self::wait) zero).
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancellation safety
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire(self) -> Result<LockGuard> {
        self.wait(Duration::ZERO).acquire().await
    }
}

/// Creates the lock node with the lease count, or checks that the node
/// already there is a lock node with the same count.
///
/// A lock never changes a node it did not create: a node that is
/// ephemeral (a registration), holds data that is not a lease count (a
/// configuration), or has children that are not lock holders (a service
/// directory) is refused with [`Error::NotALock`] before anything is
/// written. An existing node with no data is used as it is, as kazoo does
/// (kazoo creates its node empty, then writes the count).
async fn ensure_lease_node(shared: &Shared, client: &Client, path: &str, n: u32) -> Result<()> {
    let not_a_lock = |reason| Error::NotALock { path: path.to_string(), reason };
    for _ in 0..3 {
        match shared.call("get_data", path, client.get_data(path)).await {
            Ok((data, stat)) => {
                if stat.ephemeral_owner != 0 {
                    return Err(not_a_lock("it is an ephemeral node (a registration?)"));
                }
                let stored = std::str::from_utf8(&data).ok().and_then(|t| t.trim().parse::<u32>().ok());
                if stored.is_none() && !data.is_empty() {
                    return Err(not_a_lock(
                        "it holds data that is not a lock's lease count (a configuration?); a lock never changes a node it did not create",
                    ));
                }
                if stat.num_children > 0 {
                    let children = shared.call("get_children", path, client.list_children(path)).await?;
                    if children.iter().any(|c| !is_holder_name(c)) {
                        return Err(not_a_lock(
                            "it has children that are not lock holders (a service directory?)",
                        ));
                    }
                }
                return match stored {
                    Some(stored) if stored != n => {
                        Err(Error::LockMismatch { path: path.into(), stored, requested: n })
                    }
                    _ => Ok(()),
                };
            }
            Err(e) if e.is_no_node() => {
                let lease_count = n.to_string();
                let created =
                    reconcile::create(shared, client, path, lease_count.as_bytes(), CreateMode::Persistent)
                        .await;
                match created {
                    Ok(_) => return Ok(()),
                    Err(Error::ZooKeeper { source: Zk::NodeExists, .. }) => continue,
                    Err(Error::ZooKeeper { source: Zk::NoChildrenForEphemerals, .. }) => {
                        return Err(not_a_lock("its parent is an ephemeral node (a registration?)"))
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Contention {
        path: path.to_string(),
        during: "while being checked as a lock node",
        attempts: 3,
    })
}

/// Is `name` a lock holder's node (kazoo's: 32 hex digits of a uuid4)?
fn is_holder_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The nodes an acquire may have made, deleted in the background if the
/// acquire is dropped before it returns (see [`LockBuilder::acquire`]'s
/// cancellation safety): every contender under the queue named with this
/// acquire's prefix (a sequential node's full name is unknown when its
/// create was cancelled), and the holder node. The deletes are sent after
/// any create the cancelled call had sent, on the same session, so they
/// find what it made.
/// How many times a withdrawal is tried before its nodes are left to the
/// session's end.
const WITHDRAW_ATTEMPTS: u32 = 8;

struct Withdraw {
    shared: Arc<Shared>,
    /// The session epoch the acquire runs in: a later session has none of
    /// its nodes.
    epoch: u64,
    runtime: Option<tokio::runtime::Handle>,
    /// The queue directory (`<path>-__lock__`).
    dir: String,
    /// The name prefix of our contender node (`<uuid-hex>__lock__`).
    prefix: String,
    /// Our holder node's path (`<path>/<uuid-hex>`).
    holder: String,
    armed: std::sync::atomic::AtomicBool,
}

impl Withdraw {
    fn new(shared: &Arc<Shared>, epoch: u64, path: &str) -> Withdraw {
        Withdraw {
            shared: shared.clone(),
            epoch,
            runtime: tokio::runtime::Handle::try_current().ok(),
            dir: format!("{path}-__lock__"),
            prefix: format!("{}__lock__", uuid::Uuid::new_v4().simple()),
            holder: format!("{path}/{}", uuid::Uuid::new_v4().simple()),
            armed: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The acquire succeeded: its holder node is handed to the guard (and
    /// its contender node was deleted).
    fn defuse(&self) {
        self.armed.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if !self.armed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Some(runtime) = self.runtime.take().or_else(|| tokio::runtime::Handle::try_current().ok()) else {
            return;
        };
        // The session gone (expired, closed), its nodes went with it.
        let Some(client) = holding_client(&self.shared, self.epoch) else { return };
        let shared = self.shared.clone();
        let dir = std::mem::take(&mut self.dir);
        let prefix = std::mem::take(&mut self.prefix);
        let holder = std::mem::take(&mut self.holder);
        let epoch = self.epoch;
        runtime.spawn(self.shared.tasks.track_future(async move {
            // Tried again while the session lives: the calls that failed
            // the acquire may fail these too (a slow link), and what is
            // left behind would block the lock until the session ends.
            let gone = |r: Result<()>| r.is_ok() || r.as_ref().is_err_and(Error::is_no_node);
            for attempt in 0..WITHDRAW_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                    if holding_client(&shared, epoch).is_none() {
                        return;
                    }
                }
                let Ok(children) = shared.call("get_children", &dir, client.list_children(&dir)).await else {
                    continue;
                };
                let mut done = true;
                for child in children.iter().filter(|c| c.starts_with(&prefix)) {
                    let node = format!("{dir}/{child}");
                    done &= gone(shared.call("delete", &node, client.delete(&node, None)).await);
                }
                done &= gone(shared.call("delete", &holder, client.delete(&holder, None)).await);
                if done {
                    return;
                }
            }
            tracing::warn!(dir, "could not withdraw a lock request; its nodes go with the session");
        }));
    }
}

/// Joins kazoo's internal `Lock` at `<path>-__lock__` and waits to lead it.
/// Returns the contender node's path.
async fn enter_queue(
    shared: &Shared,
    client: &Client,
    lock: &LockBuilder,
    withdraw: &Withdraw,
    deadline: Instant,
) -> Result<String> {
    let (dir, prefix) = (withdraw.dir.clone(), withdraw.prefix.clone());
    let contender = format!("{dir}/{prefix}");
    // A sequential node's name is only known once created: create it
    // under the queue directly (reconcile::create would retry with the
    // plain name), making the queue first, and again if someone removed it.
    let options = shared.create_options(CreateMode::EphemeralSequential);
    let mut attempt = 0;
    let (_, seq) = loop {
        shared.ensure_parent(client, &dir).await?;
        match shared.call("create", &dir, client.create(&contender, lock.name.as_bytes(), &options)).await {
            Err(e) if e.is_no_node() && attempt == 0 => {
                attempt += 1;
                shared.forget_parent(&dir);
            }
            other => break other?,
        }
    };
    let mine = format!("{dir}/{prefix}{seq}");
    let my_seq = seq.to_string();
    let result: Result<()> = async {
        loop {
            let children = shared.call("get_children", &dir, client.list_children(&dir)).await?;
            let predecessor = children
                .iter()
                .filter_map(|c| c.rsplit_once("__lock__").map(|(_, s)| (s.to_string(), c)))
                .filter(|(s, _)| {
                    s.len() == my_seq.len() && s.chars().all(|c| c.is_ascii_digit()) && *s < my_seq
                })
                .max();
            let Some((_, predecessor)) = predecessor else { return Ok(()) };
            let node = format!("{dir}/{predecessor}");
            let (stat, watcher) = shared.call("exists", &node, client.check_and_watch_stat(&node)).await?;
            if stat.is_some() {
                wait_for(watcher, deadline, &lock.path, lock.wait).await?;
            }
        }
    }
    .await;
    match result {
        Ok(()) => Ok(mine),
        Err(e) => {
            let _ = shared.call("delete", &mine, client.delete(&mine, None)).await;
            Err(e)
        }
    }
}

/// Counts the holders and joins them when there is room; returns our node,
/// and when its create was sent (the server heard from us after that).
async fn take_lease(
    shared: &Shared,
    client: &Client,
    lock: &LockBuilder,
    withdraw: &Withdraw,
    deadline: Instant,
) -> Result<(String, Instant)> {
    let node = withdraw.holder.clone();
    loop {
        let (holders, watcher) =
            shared.call("get_children", &lock.path, client.list_and_watch_children(&lock.path)).await?;
        if holders.len() < lock.simultaneous as usize {
            let options = shared.create_options(CreateMode::Ephemeral);
            let sent = Instant::now();
            shared.call("create", &node, client.create(&node, lock.name.as_bytes(), &options)).await?;
            return Ok((node, sent));
        }
        wait_for(watcher, deadline, &lock.path, lock.wait).await?;
    }
}

async fn wait_for(watcher: OneshotWatcher, deadline: Instant, path: &str, wait: Duration) -> Result<()> {
    match tokio::time::timeout_at(deadline, watcher.changed()).await {
        Ok(event) if event.event_type == EventType::Session && event.session_state.is_terminated() => {
            Err(Error::NoConnection(format!("session lost while waiting for lock {path}")))
        }
        Ok(_) => Ok(()),
        Err(_) => Err(Error::LockTimeout { path: path.to_string(), waited: wait }),
    }
}

/// Why a lock was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockLost {
    /// The session that held it ended (expired or closed).
    SessionEnded,
    /// Someone deleted the holder node.
    NodeDeleted,
    /// ZooKeeper did not answer for this long (the part of the session
    /// timeout that [`LockBuilder::lost_after`] sets): the server may
    /// expire the session, and give the lock to another process, at
    /// [`LockGuard::session_deadline`].
    Silent(Duration),
}

impl std::fmt::Display for LockLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockLost::SessionEnded => f.write_str("its session ended"),
            LockLost::NodeDeleted => f.write_str("its holder node was deleted"),
            LockLost::Silent(d) => write!(
                f,
                "ZooKeeper did not answer for {} ms, so the session may expire and another process take the lock",
                d.as_millis()
            ),
        }
    }
}

/// What the monitor needs to tell silence from life.
#[derive(Clone, Copy, Debug)]
struct Silence {
    /// When a request was sent that the server answered: it heard from
    /// us after this.
    heard: Instant,
    /// The negotiated session timeout.
    timeout: Duration,
    /// Silence longer than this loses the lock.
    limit: Duration,
}

/// A held lock. Released by [`release`](Self::release) or on drop.
///
/// The lock is held by the session that took it: if that session expires,
/// the lock is lost ([`is_lost`](Self::is_lost), [`lost`](Self::lost)), and
/// so it is if someone deletes the holder node, or if ZooKeeper does not
/// answer for the part of the session timeout set by
/// [`LockBuilder::lost_after`] (the session may then expire on the server
/// before this process is told: see the [module](self) documentation).
/// A lost lock stays lost, even if the connection comes back. The guard
/// does not keep the session open: `Registry::close` (or dropping the last
/// registry handle) ends it without waiting for the guard, and the lock is
/// then lost.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    shared: Arc<Shared>,
    /// The session epoch that holds the lock.
    epoch: u64,
    path: String,
    node: String,
    lost: watch::Receiver<Option<LockLost>>,
    /// The last time the server is known to have heard from us.
    heard: Arc<Mutex<Instant>>,
    timeout: Duration,
    monitor: JoinHandle<()>,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.path)
            .field("node", &self.node)
            .field("epoch", &self.epoch)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl LockGuard {
    fn new(shared: Arc<Shared>, epoch: u64, path: String, node: String, silence: Silence) -> LockGuard {
        let (tx, lost) = watch::channel(None);
        let heard = Arc::new(Mutex::new(silence.heard));
        let monitor =
            shared.tasks.spawn(monitor(shared.clone(), epoch, node.clone(), silence, heard.clone(), tx));
        LockGuard {
            shared,
            epoch,
            path,
            node,
            lost,
            heard,
            timeout: silence.timeout,
            monitor,
            released: false,
        }
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Our holder node under the lock path.
    pub fn holder_node(&self) -> &str {
        &self.node
    }

    /// Has the lock been lost (session expired or closed, holder node
    /// deleted, or ZooKeeper silent for too long)?
    pub fn is_lost(&self) -> bool {
        self.lost.borrow().is_some()
    }

    /// Why the lock was lost; `None` while it is held.
    pub fn lost_reason(&self) -> Option<LockLost> {
        self.lost.borrow().clone()
    }

    /// Resolves when the lock is lost (never, while it is held).
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// The earliest moment the server may expire this lock's session, as
    /// far as this process can tell: when the server last surely heard from
    /// it, plus the negotiated session timeout. It moves forward while
    /// ZooKeeper answers. Once the lock is [lost](Self::lost) for silence,
    /// whatever runs under the lock must have stopped by then: after it,
    /// another process may hold the lock.
    pub fn session_deadline(&self) -> std::time::Instant {
        let heard = *self.heard.lock().unwrap_or_else(|e| e.into_inner());
        (heard + self.timeout).into_std()
    }

    /// Releases the lock. A lock whose session has ended is already free.
    ///
    /// # Errors
    /// [`Error::NoConnection`] if the release could not reach ZooKeeper (the
    /// lock then ends with the session).
    ///
    /// # Cancellation safety
    /// Cancel-safe: a cancelled release still frees the lock (the guard,
    /// dropped with the cancelled call, deletes its node in the background).
    pub async fn release(mut self) -> Result<()> {
        self.monitor.abort();
        let Some(client) = holding_client(&self.shared, self.epoch) else {
            self.released = true;
            return Ok(());
        };
        let deleted = self.shared.call("delete", &self.node, client.delete(&self.node, None)).await;
        // Only now: a release cancelled before this point leaves the
        // deletion to the guard's drop.
        self.released = true;
        match deleted {
            Ok(()) => Ok(()),
            Err(e) if e.is_no_node() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The client of the session `epoch`, if that session is still the
/// registry's (not expired, not closed).
fn holding_client(shared: &Shared, epoch: u64) -> Option<Client> {
    let view = shared.session.borrow();
    if view.epoch != epoch || view.state == State::Closed {
        return None;
    }
    view.client.clone()
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.monitor.abort();
        if self.released {
            return;
        }
        // Drop cannot await: delete in the background (a task `close()`
        // waits for) if a runtime is there; otherwise the node goes with
        // the session.
        let (Ok(runtime), Some(client)) =
            (tokio::runtime::Handle::try_current(), holding_client(&self.shared, self.epoch))
        else {
            return;
        };
        let (shared, node) = (self.shared.clone(), std::mem::take(&mut self.node));
        runtime.spawn(self.shared.tasks.track_future(async move {
            let _ = shared.call("delete", &node, client.delete(&node, None)).await;
        }));
    }
}

/// Marks the guard lost when its session ends (expiry, close), its node
/// is deleted, or the server stays silent too long.
async fn monitor(
    shared: Arc<Shared>,
    epoch: u64,
    node: String,
    silence: Silence,
    heard: Arc<Mutex<Instant>>,
    lost: watch::Sender<Option<LockLost>>,
) {
    let why = tokio::select! {
        why = watch_node(&shared, epoch, &node) => why,
        why = watch_silence(&shared, epoch, &node, silence, &heard) => why,
    };
    tracing::warn!(node, "lock lost: {why}");
    let _ = lost.send(Some(why));
}

/// Returns when the session ends or the node is deleted. Holds a client
/// only while a call is in flight, so that it never keeps a closed
/// registry's session open.
async fn watch_node(shared: &Shared, epoch: u64, node: &str) -> LockLost {
    let mut session = shared.session.subscribe();
    loop {
        session.mark_unchanged();
        let Some(client) = holding_client(shared, epoch) else { return LockLost::SessionEnded };
        let watched = shared.call("exists", node, client.check_and_watch_stat(node)).await;
        drop(client);
        match watched {
            Ok((None, _)) => return LockLost::NodeDeleted,
            Ok((Some(_), watcher)) => {
                tokio::select! {
                    event = watcher.changed() => {
                        if event.event_type == EventType::NodeDeleted {
                            return LockLost::NodeDeleted;
                        }
                        // Otherwise (a session event): check again.
                    }
                    changed = session.changed() => if changed.is_err() { return LockLost::SessionEnded },
                }
            }
            Err(_) => {
                // Not answered (disconnected?): look again after the session
                // changes, or in a moment.
                tokio::select! {
                    changed = session.changed() => if changed.is_err() { return LockLost::SessionEnded },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

/// Asks the server about the holder node every eighth of `limit`, and
/// returns once it has not answered for `limit` since the last request it
/// answered was sent (or when the session ends, or the node is gone).
/// Calls are not awaited past that point: a dropped link never answers.
async fn watch_silence(
    shared: &Shared,
    epoch: u64,
    node: &str,
    silence: Silence,
    heard: &Mutex<Instant>,
) -> LockLost {
    let every = (silence.limit / 8).max(Duration::from_millis(10));
    let mut session = shared.session.subscribe();
    let mut next = Instant::now() + every;
    loop {
        let last = *heard.lock().unwrap_or_else(|e| e.into_inner());
        let probe = async {
            tokio::time::sleep_until(next).await;
            let client = holding_client(shared, epoch)?;
            let sent = Instant::now();
            Some((sent, shared.call("exists", node, client.check_stat(node)).await))
        };
        tokio::select! {
            () = tokio::time::sleep_until(last + silence.limit) => return LockLost::Silent(silence.limit),
            changed = session.changed() => {
                if changed.is_err() || holding_client(shared, epoch).is_none() {
                    return LockLost::SessionEnded;
                }
            }
            probed = probe => match probed {
                None => return LockLost::SessionEnded,
                Some((_, Ok(None))) => return LockLost::NodeDeleted,
                Some((sent, Ok(Some(_)))) => {
                    let mut heard = heard.lock().unwrap_or_else(|e| e.into_inner());
                    *heard = (*heard).max(sent);
                    next = sent + every;
                }
                Some((_, Err(_))) => next = Instant::now() + every,
            },
        }
    }
}

impl Registry {
    /// A lock at `path` for this registry's session; see [`LockBuilder`].
    pub fn lock(&self, path: &str) -> LockBuilder {
        LockBuilder::new(self.clone(), path)
    }
}
