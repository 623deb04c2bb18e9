//! A held lock, and the monitor that tells when it is lost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client::EventType;

use crate::session::Shared;
use crate::Result;

/// Why a lock was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockLost {
    /// The session that held it ended (expired or closed).
    SessionEnded,
    /// Someone deleted the holder node.
    NodeDeleted,
    /// ZooKeeper did not answer for this long (the part of the session
    /// timeout that [`LockBuilder::lost_after`](super::LockBuilder::lost_after) sets): the server may
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
pub(super) struct Silence {
    /// When a request was sent that the server answered: it heard from
    /// us after this.
    pub(super) heard: Instant,
    /// The negotiated session timeout.
    pub(super) timeout: Duration,
    /// Silence longer than this loses the lock.
    pub(super) limit: Duration,
}

/// A held lock. Released by [`release`](Self::release) or on drop.
///
/// The lock is held by the session that took it: if that session expires,
/// the lock is lost ([`is_lost`](Self::is_lost), [`lost`](Self::lost)), and
/// so it is if someone deletes the holder node, or if ZooKeeper does not
/// answer for the part of the session timeout set by
/// [`LockBuilder::lost_after`](super::LockBuilder::lost_after) (the session may then expire on the server
/// before this process is told: see the [module](crate::lock) documentation).
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
    pub(super) fn new(
        shared: Arc<Shared>,
        epoch: u64,
        path: String,
        node: String,
        silence: Silence,
    ) -> LockGuard {
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

    /// Our node: the semaphore's holder node under the lock path, or the
    /// kazoo or Curator lock's ephemeral sequential node.
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
    /// [`Error::NoConnection`](crate::Error::NoConnection) if the release could not reach ZooKeeper (the
    /// lock then ends with the session).
    ///
    /// # Cancellation safety
    /// Cancel-safe: a cancelled release still frees the lock (the guard,
    /// dropped with the cancelled call, deletes its node in the background).
    pub async fn release(mut self) -> Result<()> {
        self.monitor.abort();
        // A connection lost while the delete was in flight (a link that has
        // just come back may drop again) is retried while the session
        // lives, within the connect timeout: the delete is idempotent.
        let deadline = tokio::time::Instant::now() + self.shared.config.connect_timeout_or_default();
        loop {
            if !self.shared.holds(self.epoch) {
                self.released = true;
                return Ok(());
            }
            let client = match self.shared.lease(deadline).await {
                Ok(lease) if lease.epoch == self.epoch => lease.client,
                // The session ended meanwhile: the lock ended with it.
                Ok(_) | Err(crate::Error::Closed) => {
                    self.released = true;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let deleted = self.shared.call("delete", &self.node, client.delete(&self.node, None)).await;
            match deleted {
                Err(crate::Error::NoConnection(_)) if tokio::time::Instant::now() < deadline => {
                    // Not a tight loop while the state catches up.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Only now: a release cancelled before this point leaves
                // the deletion to the guard's drop.
                Ok(()) => {
                    self.released = true;
                    return Ok(());
                }
                Err(e) if e.is_no_node() => {
                    self.released = true;
                    return Ok(());
                }
                Err(e) => {
                    self.released = true;
                    return Err(e);
                }
            }
        }
    }
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
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if !self.shared.holds(self.epoch) {
            return;
        }
        let (shared, node, epoch) = (self.shared.clone(), std::mem::take(&mut self.node), self.epoch);
        runtime.spawn(self.shared.tasks.track_future(async move {
            if let Some(lease) = shared.lease_of(epoch).await {
                let _ = shared.call("delete", &node, lease.client.delete(&node, None)).await;
            }
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
        let Some(client) = shared.lease_of(epoch).await.map(|l| l.client) else {
            return LockLost::SessionEnded;
        };
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
            let client = shared.lease_of(epoch).await?.client;
            let sent = Instant::now();
            Some((sent, shared.call("exists", node, client.check_stat(node)).await))
        };
        tokio::select! {
            () = tokio::time::sleep_until(last + silence.limit) => return LockLost::Silent(silence.limit),
            changed = session.changed() => {
                if changed.is_err() || !shared.holds(epoch) {
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
