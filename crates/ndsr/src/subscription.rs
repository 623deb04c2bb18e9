//! Subscriptions (a stream of snapshots) and callbacks built on them.

use std::fmt::Display;
use std::sync::Arc;

use tokio::sync::watch;

use crate::Snapshot;

/// Snapshots of one path: the current one at once, then one per change.
///
/// Identical consecutive snapshots are never delivered. A subscriber that
/// falls behind skips to the latest snapshot instead of queueing a backlog.
/// The stream ends (`None`) when the path is unwatched or the registry is
/// closed.
///
/// # Example
///
/// ```no_run
/// # async fn demo(registry: ndsr::Registry) -> ndsr::Result<()> {
/// let mut web = registry.subscribe("/services/web")?;
/// while let Some(snapshot) = web.next().await {
///     println!("web servers: {:?}", snapshot.children);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    first: bool,
}

impl Subscription {
    pub(crate) fn new(rx: watch::Receiver<Option<Arc<Snapshot>>>) -> Subscription {
        Subscription { rx, first: true }
    }

    /// The next snapshot: the current one on the first call (waiting for
    /// the first read if there is none yet), then the next change.
    ///
    /// # Cancellation safety
    /// Cancel-safe: a cancelled call loses no change; the next call returns it.
    pub async fn next(&mut self) -> Option<Arc<Snapshot>> {
        if std::mem::take(&mut self.first) {
            if let Some(snapshot) = self.rx.borrow_and_update().clone() {
                return Some(snapshot);
            }
        }
        loop {
            self.rx.changed().await.ok()?;
            if let Some(snapshot) = self.rx.borrow_and_update().clone() {
                return Some(snapshot);
            }
        }
    }

    /// The latest snapshot without waiting (`None` before the first read).
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.rx.borrow().clone()
    }
}

/// Identifies a callback for [`Registry::remove_callback`](crate::Registry::remove_callback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(pub(crate) u64);

/// What a callback may return: `()` or a `Result` whose error is logged.
pub trait CallbackResult {
    /// The error to log, if any.
    fn error(self) -> Option<String>;
}

impl CallbackResult for () {
    fn error(self) -> Option<String> {
        None
    }
}

impl<E: Display> CallbackResult for Result<(), E> {
    fn error(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// Runs `f` on every snapshot of `sub`, isolating panics and errors.
pub(crate) async fn drive<F, R>(path: String, mut sub: Subscription, f: F)
where
    F: Fn(&Snapshot) -> R + Send + Sync + 'static,
    R: CallbackResult,
{
    while let Some(snapshot) = sub.next().await {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&snapshot))) {
            Ok(result) => {
                if let Some(error) = result.error() {
                    tracing::warn!(path, error, "callback failed");
                }
            }
            Err(_) => tracing::error!(path, "callback panicked; other callbacks are unaffected"),
        }
    }
}
