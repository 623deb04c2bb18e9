//! Locks in the node layouts of the clients already running in a fleet,
//! so that Rust, Python and Java processes exclude each other
//! ([`LockBuilder::layout`]): kazoo's `Semaphore` (N holders, the default,
//! and the Python original's `get_lock`), kazoo's `Lock`, `ReadLock` and
//! `WriteLock`, Curator's `InterProcessMutex` and
//! `InterProcessReadWriteLock` ([`LockLayout`], [`LockMode`]). A path that
//! holds another layout's nodes is refused
//! ([`Error::LayoutMismatch`]): the layouts
//! sort each other's nodes differently, and two processes could hold it.
//!
//! # The semaphore's layout in ZooKeeper (kazoo's)
//! - `<path>`: persistent; its data is the lease count (`b"1"`).
//! - `<path>/<uuid-hex>`: one ephemeral node per holder, holding its name.
//! - `<path>-__lock__/<uuid-hex>__lock__<seq>`: ephemeral sequential nodes
//!   of kazoo's `Lock`, which serializes contenders while they count the
//!   holders; the lowest sequence holds it.
//!
//! Unlike the original, a waiter is woken by ZooKeeper watches, so a lock
//! freed during the wait is acquired.
//!
//! # kazoo's and Curator's layouts
//! - kazoo: `<path>/<uuid4 hex>__lock__<10-digit sequence>` (a reader's
//!   `__rlock__`), ephemeral sequential, holding the name; the path is made
//!   persistent. A writer waits for every earlier node, a reader and an
//!   exclusive lock (kazoo's `Lock`) for earlier `__lock__` nodes only.
//! - Curator: `<path>/_c_<uuid>-lock-<sequence>` (`InterProcessMutex`, as
//!   `LeaderSelector`), or `_c_<uuid>-__READ__<sequence>` and
//!   `_c_<uuid>-__WRIT__<sequence>`, sorted as Curator sorts them. A
//!   writer waits for every earlier node, a reader for earlier writers.
//!
//! No lock is reentrant and none downgrades: a reader waits for earlier
//! writers whoever holds them, its own registry too (a registry serves
//! many tasks and threads; Curator's reader holds at once on its writer's
//! thread only). To downgrade, start the read acquire in another task
//! while writing (its node queues behind the write lock's), then release
//! the write lock: the reader then holds, before any writer that came
//! after it.
//!
//! A contender watches only the node it waits for. A create whose answer
//! was lost is found again by the node's unique prefix, not made twice.
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

mod guard;
mod layout;
mod queue;
mod sequential;
mod withdraw;

use std::time::Duration;

use tokio::time::Instant;

pub use guard::{LockGuard, LockLost};
pub(crate) use layout::family as node_family;
pub use layout::{LockLayout, LockMode};

use crate::path::validate_path;
use crate::{Error, Registry, Result};
use guard::Silence;
use queue::{ensure_lease_node, enter_queue, take_lease};
use withdraw::Withdraw;

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
    layout: LockLayout,
    mode: LockMode,
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
            layout: LockLayout::Semaphore,
            mode: LockMode::Exclusive,
        }
    }

    /// The registry the lock is taken on.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whose node layout (default [`LockLayout::Semaphore`], kazoo's
    /// `Semaphore`). Every holder of a lock must use the same layout; a
    /// path holding another layout's nodes is refused.
    pub fn layout(mut self, layout: LockLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Exclusive (default), or a reader or writer of a read/write lock
    /// (kazoo and Curator layouts only).
    pub fn mode(mut self, mode: LockMode) -> Self {
        self.mode = mode;
        self
    }

    /// The holder's name, stored in its node (default: empty, as kazoo).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How many holders at once (default 1; the semaphore layout only).
    /// Every holder of a lock must use the same count.
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
    /// outside (0, 1], a read or write mode with the semaphore layout, or
    /// `simultaneous` above 1 with another;
    /// [`Error::LayoutMismatch`] when the path holds another layout's
    /// nodes (naming it), before anything is written;
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
    /// the session ends. A call that fails deletes them before it returns.
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
        match self.layout {
            LockLayout::Semaphore if self.mode != LockMode::Exclusive => {
                return Err(Error::InvalidArgument(
                    "read and write modes need the kazoo or curator layout (the semaphore has none)",
                ))
            }
            LockLayout::Semaphore => {}
            LockLayout::Kazoo | LockLayout::Curator if self.simultaneous != 1 => {
                return Err(Error::InvalidArgument(
                    "simultaneous needs the semaphore layout (kazoo and curator locks have one holder, or readers)",
                ))
            }
            LockLayout::Kazoo | LockLayout::Curator => return sequential::acquire(self).await,
        }
        let shared = self.registry.shared().clone();
        let connect_by = Instant::now() + shared.config.connect_timeout_or_default();
        let lease = shared.lease(connect_by).await?;
        let (client, epoch) = (lease.client.clone(), lease.epoch);
        let deadline = Instant::now() + self.wait;
        ensure_lease_node(&shared, &lease, &self.path, self.simultaneous).await?;
        // Until this call succeeds, returning or being dropped withdraws
        // what it made: a create that timed out may still have been
        // applied, and a contender left behind would block every later
        // one (kazoo's too) until our session ends.
        let withdraw = Withdraw::new(&shared, epoch, &self.path);
        let contender = enter_queue(&shared, &lease, &self, &withdraw, deadline).await?;
        drop(lease);
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

impl Registry {
    /// A lock at `path` for this registry's session; see [`LockBuilder`].
    pub fn lock(&self, path: &str) -> LockBuilder {
        LockBuilder::new(self.clone(), path)
    }
}
