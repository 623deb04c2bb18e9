//! The `Subscription` pyclass: the snapshots of one path.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::seconds;
use crate::snapshot::Snapshot;
use crate::wait::Runtime;

/// Snapshots of one path; `next(timeout)` waits with the GIL released
/// (interruptible), `anext()` is awaitable in asyncio.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct Subscription {
    // A Tokio mutex: `next` and `anext` hold it across their awaits.
    pub(crate) inner: Arc<tokio::sync::Mutex<ndsr::Subscription>>,
    pub(crate) runtime: Arc<Runtime>,
}

#[pymethods]
impl Subscription {
    /// The next snapshot, or None after `timeout` seconds (None waits as
    /// long as it takes) or when the subscription has ended.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Snapshot>> {
        let timeout = timeout.map(|t| seconds(t, "timeout")).transpose()?;
        let inner = self.inner.clone();
        // Cancel-safe (Ctrl-C): a change not returned is returned next time.
        let next = self.runtime.wait(py, async move {
            let mut sub = inner.lock().await;
            match timeout {
                Some(t) => tokio::time::timeout(t, sub.next()).await.ok().flatten(),
                None => sub.next().await,
            }
        })?;
        Ok(next.map(|s| Snapshot(s, None)))
    }

    /// An asyncio awaitable of the next snapshot (None when the subscription
    /// has ended). Cancelling the awaiting task loses no change.
    fn anext<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut sub = inner.lock().await;
            Ok(sub.next().await.map(|s| Snapshot(s, None)))
        })
    }

    /// Has it ended (path unwatched, registry closed)?
    #[getter]
    fn ended(&self) -> bool {
        match self.inner.try_lock() {
            Ok(sub) => sub.is_ended(),
            // Someone is waiting in it: it had not ended when they started.
            Err(_) => false,
        }
    }
}
