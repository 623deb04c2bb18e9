//! `ndsr._core`: the Python extension module behind the `ndsr` package and
//! the `nd_service_registry` drop-in.
//!
//! It wraps [`ndsr::Registry`] on a runtime of each registry's own: every
//! call that can wait releases the GIL and wakes every 100 ms to run
//! Python's signal handlers, so Ctrl-C interrupts it (the `wait` module),
//! and no Python code ever runs on a Tokio worker. Callbacks run on a small
//! pool of Python threads fed by a `CallbackHub` (the `callbacks` module),
//! which follows every path with callbacks without a thread each; log events
//! are queued here and emitted to Python's `logging` by a Python thread
//! (`drain_logs`).
//!
//! The pyclasses live in `registry`, `snapshot`, `subscription`, `lock`
//! and `release` (configuration releases),
//! the exception types in `errors`; this file holds the module itself and
//! its functions.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

mod callbacks;
mod canary;
mod convert;
mod election;
mod errors;
mod fork;
mod instances;
mod lock;
mod logs;
mod registry;
mod release;
mod snapshot;
mod subscription;
mod wait;

use convert::{data_from_py, value_to_py};
use errors::{Closed, NdsrError};
use lock::LockGuard;
use registry::Registry;
use snapshot::Snapshot;
use subscription::Subscription;

/// A number of seconds as a duration; `what` names it in the error.
fn seconds(s: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| PyValueError::new_err(format!("{what} must be a number of seconds >= 0")))
}

/// Encodes data the original's way (`pid`, `created`, then user keys).
#[pyfunction]
fn encode<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let data = data_from_py(data)?;
    Ok(pyo3::types::PyBytes::new(py, &ndsr::codec::encode(&data)))
}

/// Decodes node bytes the original's way (never fails).
#[pyfunction]
fn decode<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let bytes: Vec<u8> = if let Ok(text) = data.extract::<String>() {
        text.into_bytes()
    } else if data.is_none() {
        return Ok(None);
    } else {
        data.extract::<Vec<u8>>().map_err(|_| PyTypeError::new_err("decode() takes bytes, str or None"))?
    };
    ndsr::codec::decode(&bytes).map(|o| value_to_py(py, &serde_json::Value::Object(o))).transpose()
}

/// The next queued log records (level, target, message), waiting up to
/// `timeout` seconds for the first.
#[pyfunction]
fn drain_logs(py: Python<'_>, timeout: f64) -> PyResult<Vec<(u8, String, String)>> {
    let timeout = seconds(timeout, "timeout")?;
    Ok(py.detach(|| logs::drain(timeout)))
}

/// The extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // asyncio awaitables (`Subscription.anext`) run on one small runtime of
    // their own, built on first use; the registries keep theirs.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).thread_name("ndsr-asyncio").enable_all();
    pyo3_async_runtimes::tokio::init(builder);
    m.add_class::<Registry>()?;
    m.add_class::<Snapshot>()?;
    m.add_class::<Subscription>()?;
    m.add_class::<LockGuard>()?;
    m.add_class::<election::ElectionCore>()?;
    m.add_class::<callbacks::CallbackHub>()?;
    m.add_class::<release::ReleaseStream>()?;
    m.add_class::<release::ConfigCore>()?;
    m.add_class::<release::JsonValue>()?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(drain_logs, m)?)?;
    m.add_function(wrap_pyfunction!(fork::forked_after_use, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::add(m)?;
    Ok(())
}
