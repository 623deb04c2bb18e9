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
    /// The queue directory (`<path>-__lock__`).
    pub(super) dir: String,
    /// The name prefix of our contender node (`<uuid-hex>__lock__`).
    pub(super) prefix: String,
    /// Our holder node's path (`<path>/<uuid-hex>`).
    pub(super) holder: String,
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
            holder: format!("{path}/{}", uuid::Uuid::new_v4().simple()),
            armed: std::sync::atomic::AtomicBool::new(true),
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
            let gone = |r: Result<()>| r.is_ok() || r.as_ref().is_err_and(Error::is_no_node);
            for attempt in 0..WITHDRAW_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
                // Borrowed for each attempt, so that a closed registry's
                // session is not kept open by it.
                let Some(client) = shared.lease_of(epoch).await.map(|l| l.client) else { return };
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
