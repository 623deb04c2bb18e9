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

mod guard;
mod queue;
mod withdraw;

use std::time::Duration;

use tokio::time::Instant;

pub use guard::{LockGuard, LockLost};

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
