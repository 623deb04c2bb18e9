//! Subscriptions (a stream of snapshots) and callbacks built on them.

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
/// A subscription keeps its path watched. Dropping the last subscription
/// of a path that nothing else wants (no [`get`](crate::Registry::get),
/// `set_data`, registration or callback) unwatches it, as
/// [`unwatch`](crate::Registry::unwatch) would.
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
    // Dropped before `interest`, so that the receiver is gone when the
    // interest asks whether the path's channel is still needed.
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    first: bool,
    /// Held for its `Drop` (unwatches when this was the last subscription).
    _interest: Option<Interest>,
}

impl Subscription {
    pub(crate) fn new(
        rx: watch::Receiver<Option<Arc<Snapshot>>>,
        interest: Option<Interest>,
    ) -> Subscription {
        Subscription { rx, first: true, _interest: interest }
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

    /// Has the stream ended (the path was unwatched or the registry closed)?
    /// Snapshots already delivered stay valid.
    pub fn is_ended(&self) -> bool {
        self.rx.has_changed().is_err()
    }

    /// The latest snapshot without waiting (`None` before the first read).
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.rx.borrow().clone()
    }
}

/// A subscription's claim on its path: on drop, it tells the cache it was
/// given (which forgets the path if nothing else wants it, and notes it for
/// whoever keeps the path current). It knows nothing of the session.
pub(crate) struct Interest {
    pub(crate) cache: std::sync::Weak<crate::cache::Cache>,
    pub(crate) path: Arc<str>,
}

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interest").field("path", &self.path).finish()
    }
}

impl Drop for Interest {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.upgrade() {
            cache.release_subscriber(&self.path);
        }
    }
}

/// Identifies a callback for [`Registry::remove_callback`](crate::Registry::remove_callback).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId(pub(crate) u64);

/// Runs `f` on every snapshot of `sub`, isolating panics and errors: a
/// callback that panics or returns an error is logged (with the panic's
/// message or the error) and called again on the next change.
/// Each failure is counted in `errors`.
pub(crate) async fn drive<F>(
    path: String,
    mut sub: Subscription,
    f: F,
    errors: Arc<std::sync::atomic::AtomicU64>,
) where
    F: Fn(&Snapshot) -> Result<(), String> + Send + Sync + 'static,
{
    while let Some(snapshot) = sub.next().await {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&snapshot))) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                crate::stats::Counters::bump(&errors);
                tracing::warn!(path, error, "callback failed")
            }
            Err(payload) => {
                crate::stats::Counters::bump(&errors);
                let message = panic_message(payload.as_ref());
                tracing::error!(path, panic = message, "callback panicked; other callbacks are unaffected");
            }
        }
    }
}

/// The message of a panic (`panic!("...")` with or without arguments).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let caught = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(super::panic_message(caught.as_ref()), "plain");
        let n = 7;
        let caught = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(super::panic_message(caught.as_ref()), "formatted 7");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(5_u8)).unwrap_err();
        assert_eq!(super::panic_message(caught.as_ref()), "a panic without a message");
    }
}
