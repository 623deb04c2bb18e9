//! Leader election (issue 26) for Python: `Registry.join_election` gives
//! an `ElectionCore`, which the Python `ndsr.Election` wraps in kazoo's
//! shape (`run`, `contenders`, `cancel`) with the state and token; and
//! `Registry.election_status`.

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::watch;

use ndsr::election::{Contender, ElectionLayout, Leadership};

use crate::errors::to_py;
use crate::registry::{Core, Registry};
use crate::seconds;

/// A state as Python sees it: (name, token, position).
type StateTuple = (&'static str, Option<i64>, Option<usize>);

fn state_tuple(state: &Leadership) -> StateTuple {
    match state {
        Leadership::Joining => ("joining", None, None),
        Leadership::Leader { token } => ("leader", Some(*token), None),
        Leadership::Follower { position } => ("follower", None, Some(*position)),
        Leadership::Lost => ("lost", None, None),
        Leadership::Ended => ("ended", None, None),
    }
}

fn layout_of(name: &str) -> PyResult<ElectionLayout> {
    name.parse()
        .map_err(|e: ndsr::Error| PyValueError::new_err(format!("unknown election layout {name:?}: {e}")))
}

fn contender_to_py<'py>(py: Python<'py>, c: &Contender) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("node", &c.node)?;
    d.set_item("id", &c.id)?;
    d.set_item("sequence", c.sequence)?;
    d.set_item("layout", c.layout.name())?;
    Ok(d)
}

/// A contender in an election; resigns on `resign()` or when collected.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct ElectionCore {
    inner: Mutex<Option<ndsr::election::Election>>,
    state: watch::Receiver<Leadership>,
    core: Core,
}

impl Drop for ElectionCore {
    /// Not resigned: the election's own drop resigns in the background, on
    /// the registry's runtime.
    fn drop(&mut self) {
        let taken = self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(election) = taken {
            let _entered = self.core.runtime.handle().enter();
            drop(election);
        }
    }
}

#[pymethods]
impl ElectionCore {
    /// The state now: (name, token, position); names `joining`, `leader`,
    /// `follower`, `lost`, `ended`.
    fn state(&self) -> StateTuple {
        state_tuple(&self.state.borrow())
    }

    /// Waits up to `timeout` seconds (None: as long as it takes) for the
    /// state to differ from `seen` (a tuple from `state()`); returns the
    /// state then. Ctrl-C interrupts it.
    #[pyo3(signature = (seen, timeout=None))]
    fn wait_change(
        &self,
        py: Python<'_>,
        seen: (String, Option<i64>, Option<usize>),
        timeout: Option<f64>,
    ) -> PyResult<StateTuple> {
        let timeout = timeout.map(|t| seconds(t, "timeout")).transpose()?;
        let mut state = self.state.clone();
        let differs = move |s: &Leadership| {
            let (name, token, position) = state_tuple(s);
            (name, token, position) != (seen.0.as_str(), seen.1, seen.2)
        };
        self.core.wait(py, async move {
            let changed = state.wait_for(differs);
            match timeout {
                Some(t) => {
                    let _ = tokio::time::timeout(t, changed).await;
                }
                None => {
                    let _ = changed.await;
                }
            }
        })?;
        Ok(self.state())
    }

    /// Waits up to `timeout` seconds (None: as long as it takes) to lead;
    /// the fencing token once leading, None after the timeout or once
    /// ended.
    #[pyo3(signature = (timeout=None))]
    fn wait_leader(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<i64>> {
        let timeout = timeout.map(|t| seconds(t, "timeout")).transpose()?;
        let mut state = self.state.clone();
        self.core.wait(py, async move {
            let led = state.wait_for(|s| matches!(s, Leadership::Leader { .. } | Leadership::Ended));
            let got = match timeout {
                Some(t) => tokio::time::timeout(t, led).await.ok().and_then(|r| r.ok()).map(|s| s.clone()),
                None => led.await.ok().map(|s| s.clone()),
            };
            match got {
                Some(Leadership::Leader { token }) => Some(token),
                _ => None,
            }
        })
    }

    /// The path's contenders in this layout, in order (dicts: node, id,
    /// sequence, layout); the first leads.
    fn contenders<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let path = {
            let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match inner.as_ref() {
                Some(e) => (e.path().to_string(), e.layout()),
                None => return Ok(Vec::new()),
            }
        };
        let registry = self.core.registry.clone();
        let found = self
            .core
            .wait(py, async move { ndsr::election::contenders(&registry, &path.0, path.1).await })?
            .map_err(to_py)?;
        found.iter().map(|c| contender_to_py(py, c)).collect()
    }

    /// Leaves the election, returning once its node is deleted (again:
    /// nothing).
    fn resign(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(election) = taken {
            // Interrupted (Ctrl-C), the dropped election still resigns.
            self.core.wait(py, election.resign())?;
        }
        Ok(())
    }
}

#[pymethods]
impl Registry {
    /// Joins the election at `path` as `identifier` in `layout` (`kazoo`,
    /// `curator-latch`, `curator-selector`); `grace` seconds of a lost
    /// connection ridden out; `lost_after` the part of the session timeout
    /// of silence after which a leader steps down.
    #[pyo3(signature = (path, identifier, layout="kazoo", grace=0.0, lost_after=None))]
    fn join_election(
        &self,
        py: Python<'_>,
        path: &str,
        identifier: &str,
        layout: &str,
        grace: f64,
        lost_after: Option<f64>,
    ) -> PyResult<ElectionCore> {
        let layout = layout_of(layout)?;
        let grace = seconds(grace, "grace")?;
        let core = self.core()?;
        let mut builder = core.registry.election(path, identifier).layout(layout).grace(grace);
        if let Some(part) = lost_after {
            builder = builder.lost_after(part);
        }
        let election = core.wait(py, builder.join())?.map_err(to_py)?;
        let state = election.watch();
        Ok(ElectionCore { inner: Mutex::new(Some(election)), state, core })
    }

    /// The contenders of `path` in any layout: a dict with `layouts`
    /// (names), `leader` (a contender dict, or None: none, or layouts
    /// mixed) and `contenders`.
    fn election_status<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
        let core = self.core()?;
        let registry = core.registry.clone();
        let path = path.to_string();
        let status =
            core.wait(py, async move { ndsr::election::status(&registry, &path).await })?.map_err(to_py)?;
        let d = PyDict::new(py);
        d.set_item("layouts", status.layouts.iter().map(|l| l.name()).collect::<Vec<_>>())?;
        d.set_item("leader", status.leader().map(|c| contender_to_py(py, c)).transpose()?)?;
        let all: PyResult<Vec<_>> = status.contenders.iter().map(|c| contender_to_py(py, c)).collect();
        d.set_item("contenders", all?)?;
        Ok(d)
    }
}
