//! Canary releases (issue 25) for Python: `Registry.start_canary`,
//! `canary`, `promote_canary`, `abort_canary` and `canary_status`, and
//! `ConfigCore.applied`.

use std::collections::BTreeMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::{json, Value};

use crate::convert::value_to_py;
use crate::errors::to_py;
use crate::registry::Registry;
use crate::release::{publish_bytes, release_to_py, ConfigCore};
use ndsr::release::{Applied, Canary, CanaryRule, PublishOptions};

fn to_dict<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    value_to_py(py, value)
}

fn applied_json(applied: &Applied) -> Value {
    serde_json::to_value(applied).unwrap_or(Value::Null)
}

#[pymethods]
impl Registry {
    /// Starts (or replaces) a canary of `path` (see the Python
    /// `Registry.start_canary`); exactly one of `hosts`, `labels` and
    /// `percent` gives the rule. Returns the canary as a dict.
    #[pyo3(signature = (path, value, *, hosts=None, labels=None, percent=None, message="", if_version=None))]
    #[allow(clippy::too_many_arguments)]
    fn start_canary<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        value: &Bound<'_, PyAny>,
        hosts: Option<Vec<String>>,
        labels: Option<BTreeMap<String, String>>,
        percent: Option<f64>,
        message: &str,
        if_version: Option<i32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rule = match (hosts, labels, percent) {
            (Some(hosts), None, None) => CanaryRule::Hosts(hosts),
            (None, Some(labels), None) => CanaryRule::Labels(labels),
            (None, None, Some(share)) => CanaryRule::Percent(share),
            _ => return Err(PyValueError::new_err("give exactly one of hosts, labels and percent")),
        };
        let bytes = publish_bytes(value)?;
        let options = PublishOptions { message: message.to_string(), if_version };
        let core = self.core()?;
        let canary =
            core.wait(py, core.registry.start_canary(path, &bytes, rule, options))?.map_err(to_py)?;
        to_dict(py, &canary.view())
    }

    /// The canary of `path` as a dict, or None.
    fn canary<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let core = self.core()?;
        let canary = core.wait(py, core.registry.canary(path))?.map_err(to_py)?;
        canary.map(|c| to_dict(py, &c.view())).transpose()
    }

    /// Makes the canary of `path` its next release; returns the release.
    #[pyo3(signature = (path, message=""))]
    fn promote_canary<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        message: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let core = self.core()?;
        let options = PublishOptions::message(message);
        let release = core.wait(py, core.registry.promote_canary(path, options))?.map_err(to_py)?;
        release_to_py(py, &release)
    }

    /// Removes the canary of `path`; whether there was one.
    fn abort_canary(&self, py: Python<'_>, path: &str) -> PyResult<bool> {
        let core = self.core()?;
        core.wait(py, core.registry.abort_canary(path))?.map_err(to_py)
    }

    /// The canary of `path` and what its clients run, as a dict.
    fn canary_status<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core()?;
        let status = core.wait(py, core.registry.canary_status(path))?.map_err(to_py)?;
        let view = json!({
            "path": status.path,
            "stable_version": status.stable_version,
            "canary": status.canary.as_ref().map(Canary::view),
            "on_stable": status.on_stable(),
            "on_canary": status.on_canary(),
            "refused_canary": status.refused_canary().len(),
            "clients": status.clients,
        });
        to_dict(py, &view)
    }
}

#[pymethods]
impl ConfigCore {
    /// What the value held is: `{"kind": "stable", "version": N}`,
    /// `{"kind": "canary", "base_version": N, "sha256": ...}` or
    /// `{"kind": "other"}` (a default or saved value).
    fn applied<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_dict(py, &applied_json(&self.config.applied()))
    }

    /// Python refused the value of generation `gen` (`validate` or
    /// `model`): a canary goes back to the live value and is reported as
    /// refused; a live value is reported as refused. Whether it was still
    /// the core's value.
    fn refuse(&self, gen: u64, reasons: Vec<String>) -> bool {
        let judged = {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            (last.0 == gen).then(|| last.1.clone())
        };
        judged.is_some_and(|judged| self.config.refuse_if(&judged, reasons))
    }
}
