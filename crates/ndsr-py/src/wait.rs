//! Waiting for the core with the GIL released, without deafening Ctrl-C.
//!
//! Each registry owns a small Tokio runtime (two worker threads) and the
//! async [`ndsr::Registry`] on it. A call that can wait runs its future
//! with [`Runtime::wait`]: the calling thread drives it with the GIL
//! released, and every [`TICK`] takes the GIL back to run Python's signal
//! handlers (`Python::check_signals`). A handler that raises (Ctrl-C's
//! `KeyboardInterrupt`) cancels the call: its future is dropped on the
//! runtime, which the core's calls are written to survive (a lock request
//! is withdrawn, a connect closes what it opened, a read leaves the path
//! watched), and the exception is raised at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::NdsrError;

/// How often a waiting call looks for signals: Ctrl-C is answered within
/// about this long.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// A registry's runtime. Shut down when the last handle goes, without
/// waiting: the last handle often goes in Python's garbage collector, with
/// the GIL held, and the runtime's tasks are the registry's own, already
/// ended by `close()` (or dropped with it). In a child after `fork()` the
/// runtime's threads do not exist: it is forgotten, never touched.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// The process that started it.
    pid: u32,
}

impl Runtime {
    /// Starts the runtime's threads.
    pub(crate) fn start() -> PyResult<Arc<Runtime>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ndsr")
            .enable_all()
            .build()
            .map_err(|e| NdsrError::new_err(format!("cannot start the registry's runtime threads: {e}")))?;
        Ok(Arc::new(Runtime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            pid: std::process::id(),
        }))
    }

    /// The runtime's handle.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `fut` to its end on this runtime with the GIL released, waking
    /// every [`TICK`] to run Python's signal handlers. When one raises
    /// (`KeyboardInterrupt`), `fut` is dropped on the runtime (so that its
    /// clean-up can spawn tasks) and the exception is returned.
    pub(crate) fn wait<F>(&self, py: Python<'_>, fut: F) -> PyResult<F::Output>
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Never so from Python threads; blocking here would stall it.
            return Err(NdsrError::new_err("an ndsr call was made from inside a Tokio runtime"));
        }
        let handle = self.handle();
        let mut fut = Box::pin(fut);
        loop {
            let done =
                py.detach(|| handle.block_on(async { tokio::time::timeout(TICK, fut.as_mut()).await.ok() }));
            if let Some(output) = done {
                return Ok(output);
            }
            if let Err(raised) = py.check_signals() {
                py.detach(move || {
                    let _entered = handle.enter();
                    drop(fut);
                });
                return Err(raised);
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if std::process::id() == self.pid {
                runtime.shutdown_background();
            } else {
                std::mem::forget(runtime);
            }
        }
    }
}
