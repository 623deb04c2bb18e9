//! The `Snapshot` pyclass: a node at one moment.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::convert::value_to_py;

/// A node at one moment: path, data (a fresh dict on each access), stat,
/// children, and whether it is stale.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct Snapshot(pub(crate) Arc<ndsr::Snapshot>, pub(crate) Option<Py<PyTuple>>);

#[pymethods]
impl Snapshot {
    /// The node's path.
    #[getter]
    fn path(&self) -> &str {
        &self.0.path
    }

    /// The decoded data: a new dict, or None.
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.0.data.as_ref().map(|o| value_to_py(py, &serde_json::Value::Object(o.clone()))).transpose()
    }

    /// The stat as a tuple in kazoo's ZnodeStat order, or None.
    #[getter]
    fn stat<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.0
            .stat
            .map(|s| {
                PyTuple::new(
                    py,
                    [
                        s.czxid,
                        s.mzxid,
                        s.ctime,
                        s.mtime,
                        i64::from(s.version),
                        i64::from(s.cversion),
                        i64::from(s.aversion),
                        s.ephemeral_owner,
                        i64::from(s.data_length),
                        i64::from(s.num_children),
                        s.pzxid,
                    ],
                )
            })
            .transpose()
    }

    /// Names of the children, sorted (a new list).
    #[getter]
    fn children<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match &self.1 {
            // A C-level copy of a list of existing strings.
            Some(children) => Ok(children.bind(py).to_list()),
            None => PyList::new(py, &self.0.children),
        }
    }

    /// Does the node exist?
    #[getter]
    fn exists(&self) -> bool {
        self.0.exists()
    }

    /// Is this the last known value (connection lost) rather than live?
    #[getter]
    fn stale(&self) -> bool {
        self.0.is_stale()
    }

    /// Equal content (data, stat, children, path).
    fn same_as(&self, other: &Snapshot) -> bool {
        *self.0 == *other.0
    }

    fn __repr__(&self) -> String {
        format!(
            "Snapshot(path={:?}, exists={}, children={:?})",
            self.0.path,
            self.0.exists(),
            self.0.children
        )
    }
}
