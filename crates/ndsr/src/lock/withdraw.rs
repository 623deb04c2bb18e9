//! Withdrawing what an acquire made when it fails or is cancelled.

use std::sync::Arc;
use std::time::Duration;

use crate::session::Shared;
use crate::{Error, Result};

/// How many times a withdrawal is tried before its nodes are left to the
/// session's end.
const WITHDRAW_ATTEMPTS: u32 = 8;

/// The nodes an acquire may have made, deleted in the background if the
/// acquire is dropped before it returns (see [`LockBuilder::acquire`](super::LockBuilder::acquire)'s
/// cancellation safety): every contender under the queue named with this
/// acquire's prefix (a sequential node's full name is unknown when its
/// create was cancelled), and the holder node. The deletes are sent after
/// any create the cancelled call had sent, on the same session, so they
/// find what it made.
pub(super) struct Withdraw {
    shared: Arc<Shared>,
    /// The session epoch the acquire runs in: a later session has none of
    /// its nodes.
    epoch: u64,
    runtime: Option<tokio::runtime::Handle>,
    /// The queue directory (`<path>-__lock__`), or the lock path of a
    /// kazoo or Curator lock.
    pub(super) dir: String,
    /// The name prefix of our contender node (`<uuid-hex>__lock__`, or
    /// the layout's).
    pub(super) prefix: String,
    /// Our holder node's path (`<path>/<uuid-hex>`; a semaphore's only).
    pub(super) holder: Option<String>,
    armed: std::sync::atomic::AtomicBool,
}

impl Withdraw {
    pub(super) fn new(shared: &Arc<Shared>, epoch: u64, path: &str) -> Withdraw {
        Withdraw {
            shared: shared.clone(),
            epoch,
            runtime: tokio::runtime::Handle::try_current().ok(),
            dir: format!("{path}-__lock__"),
            prefix: format!("{}__lock__", uuid::Uuid::new_v4().simple()),
            holder: Some(format!("{path}/{}", uuid::Uuid::new_v4().simple())),
            armed: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// For a kazoo or Curator lock: our nodes are the children of `path`
    /// named with `prefix`.
    pub(super) fn sequential(shared: &Arc<Shared>, epoch: u64, path: &str, prefix: &str) -> Withdraw {
        Withdraw {
            shared: shared.clone(),
            epoch,
            runtime: tokio::runtime::Handle::try_current().ok(),
            dir: path.to_string(),
            prefix: prefix.to_string(),
            holder: None,
            armed: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Withdraws now (once), for an acquire that failed; what is left
    /// (the calls failed too) is withdrawn in the background on drop.
    pub(super) async fn now(&self) {
        if withdraw_once(&self.shared, self.epoch, &self.dir, &self.prefix, self.holder.as_deref()).await
            != Some(false)
        {
            self.defuse();
        }
    }

    /// The acquire succeeded: its holder node is handed to the guard (and
    /// its contender node was deleted).
    pub(super) fn defuse(&self) {
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
        if !self.shared.holds(self.epoch) {
            return;
        }
        let shared = self.shared.clone();
        let dir = std::mem::take(&mut self.dir);
        let prefix = std::mem::take(&mut self.prefix);
        let holder = std::mem::take(&mut self.holder);
        let epoch = self.epoch;
        runtime.spawn(self.shared.tasks.track_future(async move {
            // Tried again while the session lives: the calls that failed
            // the acquire may fail these too (a slow link), and what is
            // left behind would block the lock until the session ends.
            for attempt in 0..WITHDRAW_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
                match withdraw_once(&shared, epoch, &dir, &prefix, holder.as_deref()).await {
                    Some(false) => {}
                    _ => return,
                }
            }
            tracing::warn!(dir, "could not withdraw a lock request; its nodes go with the session");
        }));
    }
}

/// One pass: deletes the children of `dir` named with `prefix`, and the
/// holder node. `Some(true)` when all are gone, `None` when the session
/// is (its nodes went with it).
async fn withdraw_once(
    shared: &Shared,
    epoch: u64,
    dir: &str,
    prefix: &str,
    holder: Option<&str>,
) -> Option<bool> {
    let gone = |r: Result<()>| r.is_ok() || r.as_ref().is_err_and(Error::is_no_node);
    // Borrowed for each pass, so that a closed registry's session is not
    // kept open by it.
    let client = shared.lease_of(epoch).await?.client;
    let children = match shared.call("get_children", dir, client.list_children(dir)).await {
        Ok(children) => children,
        Err(e) if e.is_no_node() => Vec::new(),
        Err(_) => return Some(false),
    };
    let mut done = true;
    for child in children.iter().filter(|c| c.starts_with(prefix)) {
        let node = format!("{dir}/{child}");
        done &= gone(shared.call("delete", &node, client.delete(&node, None)).await);
    }
    if let Some(holder) = holder {
        done &= gone(shared.call("delete", holder, client.delete(holder, None)).await);
    }
    Some(done)
}
