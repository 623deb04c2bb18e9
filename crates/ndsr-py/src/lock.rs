//! The `LockGuard` pyclass: a held lock.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::errors::to_py;
use crate::wait::Runtime;

/// A held lock.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct LockGuard {
    pub(crate) inner: Mutex<Option<ndsr::LockGuard>>,
    pub(crate) runtime: Arc<Runtime>,
}

impl Drop for LockGuard {
    /// Not released: the guard's own drop deletes its node in the
    /// background, on the registry's runtime.
    fn drop(&mut self) {
        let taken = self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(guard) = taken {
            let _entered = self.runtime.handle().enter();
            drop(guard);
        }
    }
}

#[pymethods]
impl LockGuard {
    /// Releases the lock (again: nothing).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            // Cancel-safe (Ctrl-C): the dropped guard still frees the lock.
            Some(guard) => self.runtime.wait(py, guard.release())?.map_err(to_py),
            None => Ok(()),
        }
    }

    /// Is it held (not released, not lost)?
    #[getter]
    fn held(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|g| !g.is_lost())
    }
}
