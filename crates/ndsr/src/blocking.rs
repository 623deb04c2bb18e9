//! A blocking registry, for programs without an async runtime (and for the
//! Python module, which is built on it).
//!
//! [`Registry`] owns a small Tokio runtime of its own (two worker threads)
//! and the async [`crate::Registry`] on it; every method blocks the calling
//! thread until the async call completes. Call it from any thread except a
//! Tokio worker: blocking inside an async runtime is refused with
//! [`Error::InvalidArgument`] instead of deadlocking.
//!
//! ```no_run
//! # fn demo() -> ndsr::Result<()> {
//! let registry = ndsr::blocking::Registry::connect(ndsr::Registry::builder("127.0.0.1:2181"))?;
//! registry.set_node("/services/web/10.0.0.1:80", serde_json::json!({"zone": "a"}))?;
//! println!("{:?}", registry.get("/services/web")?.children);
//! let mut changes = registry.subscribe("/services/web")?;
//! while let Some(snapshot) = changes.next_timeout(std::time::Duration::from_secs(30)) {
//!     println!("now {:?}", snapshot.children);
//! }
//! registry.close();
//! # Ok(()) }
//! ```

mod config;
mod election;

use std::sync::Arc;
use std::time::Duration;

pub use config::{Config, ConfigBuilder, ConfigChanges, Releases};
pub use election::Election;

use crate::discovery::{CuratorInstance, Format, Instances, NerveInstance, ServerSetMember};
use crate::{Data, Error, RegistryBuilder, Result, Snapshot, State};

/// A blocking handle on a registry; see the [module docs](self).
///
/// Cheap to clone; every clone shares the session and the runtime. The
/// session closes on [`close`](Self::close) or when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub struct Registry {
    inner: crate::Registry,
    runtime: Arc<Runtime>,
}

/// The runtime, shut down without waiting when the last handle goes (its
/// tasks are the registry's own, already told to stop).
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Runtime {
    fn handle(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime lives as long as a handle")
    }
}

impl Registry {
    /// Starts a runtime and builds the registry on it (see
    /// [`RegistryBuilder::build`]).
    ///
    /// # Errors
    /// As [`RegistryBuilder::build`]; [`Error::InvalidArgument`] when called
    /// from inside a Tokio runtime.
    pub fn connect(builder: RegistryBuilder) -> Result<Registry> {
        refuse_inside_a_runtime()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ndsr")
            .enable_all()
            .build()
            .map_err(|_| Error::InvalidArgument("cannot start the registry's runtime threads"))?;
        let inner = runtime.block_on(builder.build())?;
        Ok(Registry { inner, runtime: Arc::new(Runtime(Some(runtime))) })
    }

    /// The async registry underneath, to spawn work on its runtime.
    pub fn as_async(&self) -> &crate::Registry {
        &self.inner
    }

    fn block<T>(&self, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        refuse_inside_a_runtime()?;
        self.runtime.handle().block_on(fut)
    }

    /// [`crate::Registry::set_node`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::set_node`].
    pub fn set_node(&self, path: &str, data: impl Into<Data>) -> Result<()> {
        self.block(self.inner.set_node(path, data))
    }

    /// [`crate::Registry::instances`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::instances`].
    pub fn instances(&self, dir: &str, format: Option<Format>) -> Result<Instances> {
        self.block(self.inner.instances(dir, format))
    }

    /// [`crate::Registry::announce_curator`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::announce_curator`].
    pub fn announce_curator(&self, base: &str, instance: &CuratorInstance) -> Result<String> {
        self.block(self.inner.announce_curator(base, instance))
    }

    /// [`crate::Registry::announce_serverset`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::announce_serverset`].
    pub fn announce_serverset(&self, dir: &str, member: &ServerSetMember) -> Result<String> {
        self.block(self.inner.announce_serverset(dir, member))
    }

    /// [`crate::Registry::announce_nerve`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::announce_nerve`].
    pub fn announce_nerve(&self, dir: &str, instance: &NerveInstance, path_encoding: bool) -> Result<String> {
        self.block(self.inner.announce_nerve(dir, instance, path_encoding))
    }

    /// [`crate::Registry::set_data`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::set_data`].
    pub fn set_data(&self, path: &str, data: impl Into<Data>) -> Result<()> {
        self.block(self.inner.set_data(path, data))
    }

    /// [`crate::Registry::unset`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::unset`].
    pub fn unset(&self, path: &str) -> Result<()> {
        self.block(self.inner.unset(path))
    }

    /// [`crate::Registry::unset_recursive`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::unset_recursive`].
    pub fn unset_recursive(&self, path: &str) -> Result<usize> {
        self.block(self.inner.unset_recursive(path))
    }

    /// [`crate::Registry::get`], blocking. A watched path is a memory read.
    ///
    /// # Errors
    /// As [`crate::Registry::get`].
    pub fn get(&self, path: &str) -> Result<Arc<Snapshot>> {
        if let Some(snapshot) = self.inner.get_cached(path)? {
            return Ok(snapshot);
        }
        self.block(self.inner.get(path))
    }

    /// [`crate::Registry::get_cached`]: the cached snapshot, never waiting.
    ///
    /// # Errors
    /// As [`crate::Registry::get_cached`].
    pub fn get_cached(&self, path: &str) -> Result<Option<Arc<Snapshot>>> {
        self.inner.get_cached(path)
    }

    /// [`crate::Registry::read`], blocking.
    ///
    /// # Errors
    /// As [`crate::Registry::read`].
    pub fn read(&self, path: &str) -> Result<Snapshot> {
        self.block(self.inner.read(path))
    }

    /// Watches `path`; see [`Subscription`].
    ///
    /// # Errors
    /// As [`crate::Registry::subscribe`].
    pub fn subscribe(&self, path: &str) -> Result<Subscription> {
        let _entered = self.runtime.handle().enter();
        let inner = self.inner.subscribe(path)?;
        Ok(Subscription { inner, runtime: self.runtime.clone() })
    }

    /// [`crate::Registry::unwatch`].
    ///
    /// # Errors
    /// As [`crate::Registry::unwatch`].
    pub fn unwatch(&self, path: &str) -> Result<()> {
        let _entered = self.runtime.handle().enter();
        self.inner.unwatch(path)
    }

    /// The connection state now.
    pub fn state(&self) -> State {
        self.inner.state()
    }

    /// Waits up to `timeout` for the connection state to differ from
    /// `seen`, and returns the state then (`seen` again on timeout).
    pub fn next_state(&self, seen: State, timeout: Duration) -> State {
        let mut states = self.inner.state_changes();
        let waited = self.runtime.handle().block_on(async {
            tokio::time::timeout(timeout, states.wait_for(|s| *s != seen))
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|s| *s)
        });
        waited.unwrap_or(seen)
    }

    /// [`crate::Registry::zk_requests`].
    pub fn zk_requests(&self) -> u64 {
        self.inner.zk_requests()
    }

    /// Takes a lock; see [`crate::LockBuilder`].
    ///
    /// # Errors
    /// As [`crate::LockBuilder::acquire`].
    pub fn lock(&self, path: &str, name: &str, simultaneous: u32, wait: Duration) -> Result<LockGuard> {
        let builder = self.inner.lock(path).name(name).simultaneous(simultaneous).wait(wait);
        let guard = self.block(builder.acquire())?;
        Ok(LockGuard { guard: Some(guard), runtime: self.runtime.clone() })
    }

    /// Takes a lock with every option of [`crate::LockBuilder`] (a layout,
    /// a mode), from a builder of this registry:
    /// `registry.lock_with(registry.as_async().lock(path).layout(..))`.
    ///
    /// # Errors
    /// As [`crate::LockBuilder::acquire`]; [`Error::InvalidArgument`] for a
    /// builder of another registry.
    pub fn lock_with(&self, builder: crate::LockBuilder) -> Result<LockGuard> {
        if !Arc::ptr_eq(&builder.registry().shared, &self.inner.shared) {
            return Err(Error::InvalidArgument("the lock builder is another registry's"));
        }
        let guard = self.block(builder.acquire())?;
        Ok(LockGuard { guard: Some(guard), runtime: self.runtime.clone() })
    }

    /// [`crate::Registry::close`], blocking.
    pub fn close(&self) {
        if refuse_inside_a_runtime().is_ok() {
            self.runtime.handle().block_on(self.inner.close());
        }
    }
}

/// Snapshots of one path, blocking: the current one first, then one per
/// change. An iterator that ends when the path is unwatched or the
/// registry closed.
#[derive(Debug)]
pub struct Subscription {
    inner: crate::Subscription,
    runtime: Arc<Runtime>,
}

impl Iterator for Subscription {
    type Item = Arc<Snapshot>;

    /// The next snapshot, waiting as long as it takes (`None`: ended).
    fn next(&mut self) -> Option<Arc<Snapshot>> {
        refuse_inside_a_runtime().ok()?;
        self.runtime.handle().block_on(self.inner.next())
    }
}

impl Subscription {
    /// The next snapshot, or `None` after `timeout` or when ended (tell
    /// them apart with [`is_ended`](Self::is_ended)).
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Arc<Snapshot>> {
        refuse_inside_a_runtime().ok()?;
        let inner = &mut self.inner;
        self.runtime
            .handle()
            .block_on(async { tokio::time::timeout(timeout, inner.next()).await.ok().flatten() })
    }

    /// Has the stream ended (path unwatched, registry closed)?
    pub fn is_ended(&self) -> bool {
        self.inner.is_ended()
    }

    /// The latest snapshot without waiting.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.inner.latest()
    }

    /// The async subscription underneath, to await from any Tokio runtime
    /// (its [`next`](crate::Subscription::next) waits on a channel, not on
    /// this registry's runtime).
    pub fn as_async_mut(&mut self) -> &mut crate::Subscription {
        &mut self.inner
    }
}

/// A held lock, blocking; released by [`release`](Self::release) or on drop.
#[derive(Debug)]
pub struct LockGuard {
    guard: Option<crate::LockGuard>,
    runtime: Arc<Runtime>,
}

impl LockGuard {
    /// Has the lock been lost (session expired, holder node deleted)?
    pub fn is_lost(&self) -> bool {
        self.guard.as_ref().is_none_or(crate::LockGuard::is_lost)
    }

    /// Releases the lock.
    ///
    /// # Errors
    /// As [`crate::LockGuard::release`].
    pub fn release(mut self) -> Result<()> {
        self.release_now()
    }

    fn release_now(&mut self) -> Result<()> {
        match self.guard.take() {
            Some(guard) => {
                refuse_inside_a_runtime()?;
                self.runtime.handle().block_on(guard.release())
            }
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.release_now();
    }
}

/// Blocking on a Tokio worker would stall (or deadlock) its runtime.
fn refuse_inside_a_runtime() -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InvalidArgument(
            "the blocking registry was called from inside a Tokio runtime; use ndsr::Registry there",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_subscriptions_and_locks_block_and_work() {
        let server = ndsr_testkit::ZkServer::shared();
        let registry = Registry::connect(crate::Registry::builder(&server.connect_string())).unwrap();
        let base = ndsr_testkit::unique_path("blocking");
        let mut changes = registry.subscribe(&base).unwrap();
        assert!(!changes.next_timeout(Duration::from_secs(30)).unwrap().exists());
        registry.set_node(&format!("{base}/h:1"), serde_json::json!({"a": 1})).unwrap();
        let seen = loop {
            let snapshot = changes.next_timeout(Duration::from_secs(30)).expect("a change");
            if !snapshot.children.is_empty() {
                break snapshot;
            }
        };
        assert_eq!(seen.children, ["h:1"]);
        assert_eq!(registry.get(&base).unwrap().children, ["h:1"]);
        assert!(changes.next_timeout(Duration::from_millis(50)).is_none() && !changes.is_ended());

        let guard = registry.lock(&format!("{base}-lock"), "me", 1, Duration::ZERO).unwrap();
        assert!(matches!(
            registry.lock(&format!("{base}-lock"), "me", 1, Duration::ZERO),
            Err(Error::LockTimeout { .. })
        ));
        guard.release().unwrap();
        drop(registry.lock(&format!("{base}-lock"), "again", 1, Duration::ZERO).unwrap());
        registry.lock(&format!("{base}-lock"), "after drop", 1, Duration::ZERO).unwrap().release().unwrap();

        registry.close();
        assert_eq!(registry.state(), State::Closed);
        assert!(changes.next_timeout(Duration::from_secs(30)).is_none());
        assert!(changes.is_ended(), "subscriptions end on close");
    }

    #[tokio::test]
    async fn blocking_inside_a_runtime_is_refused_not_a_deadlock() {
        let refused = Registry::connect(crate::Registry::builder("127.0.0.1:1"));
        assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    }
}
