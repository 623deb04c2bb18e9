//! Configuration releases (issue 24) for Python: the conversions of
//! releases, histories, diffs and schemas to Python dicts, the
//! `ReleaseStream` pyclass (every release after a version, then live) and
//! the `ConfigCore` pyclass (the Rust typed configuration of JSON values
//! behind `ndsr.Config`, whose Python-side checks live in `ndsr._config`).

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use serde_json::Value;

use crate::convert::{value_from_py, value_to_py};
use crate::errors::to_py;
use crate::seconds;
use crate::wait::Runtime;

/// A value to publish as bytes: bytes and str are JSON text, written
/// exactly; anything else JSON-like is encoded compact.
pub(crate) fn publish_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_cow()?.as_bytes().to_vec());
    }
    let json = value_from_py(value)?;
    serde_json::to_vec(&json).map_err(|e| PyTypeError::new_err(format!("the value cannot be encoded: {e}")))
}

/// A schema given as a JSON-like value, or as JSON text (str or bytes).
pub(crate) fn schema_from_py(path: &str, schema: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text = if let Ok(bytes) = schema.cast::<PyBytes>() {
        Some(bytes.as_bytes().to_vec())
    } else if let Ok(text) = schema.cast::<PyString>() {
        Some(text.to_cow()?.as_bytes().to_vec())
    } else {
        None
    };
    match text {
        Some(text) => serde_json::from_slice(&text).map_err(|e| {
            to_py(ndsr::Error::SchemaInvalid {
                path: path.to_string(),
                reason: format!("the schema given as text is not JSON ({e})"),
            })
        }),
        None => value_from_py(schema),
    }
}

/// A written release as a dict.
pub(crate) fn release_to_py<'py>(
    py: Python<'py>,
    r: &ndsr::release::Release,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &r.path)?;
    d.set_item("version", r.version)?;
    d.set_item("previous_version", r.previous_version)?;
    d.set_item("entry", &r.entry)?;
    d.set_item("sha256", &r.sha256)?;
    Ok(d)
}

/// A history item as a dict: its fields (`kind` "release", "gap",
/// "recreated" or "tampered"), `text` (the history's line for it) and, for
/// a release, `bytes` (the value's exact bytes) and `value` (decoded, or
/// None when it is not JSON).
pub(crate) fn item_to_py<'py>(
    py: Python<'py>,
    path: &str,
    item: &ndsr::release::HistoryItem,
) -> PyResult<Bound<'py, PyDict>> {
    let fields = serde_json::to_value(item).unwrap_or(Value::Null);
    let d = value_to_py(py, &fields)?.cast_into::<PyDict>()?;
    let history = ndsr::release::History {
        path: path.to_string(),
        live_version: None,
        items: Vec::new(),
        live_czxid: None,
    };
    d.set_item("text", history.describe(item))?;
    if let ndsr::release::HistoryItem::Release(entry) = item {
        d.set_item("bytes", PyBytes::new(py, &entry.value))?;
        let value = match entry.json() {
            Some(json) => value_to_py(py, &json)?,
            None => py.None().into_bound(py),
        };
        d.set_item("value", value)?;
    }
    Ok(d)
}

/// A diff's change as a dict: `pointer`, `kind` (added, removed, changed),
/// `old`, `new` (None where absent) and `text` (`~ /pool: 4 -> 8`).
pub(crate) fn change_to_py<'py>(py: Python<'py>, c: &ndsr::release::Change) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("pointer", &c.pointer)?;
    d.set_item("kind", serde_json::to_value(c.kind).ok().and_then(|k| k.as_str().map(String::from)))?;
    let side = |v: &Option<Value>| -> PyResult<Bound<'py, PyAny>> {
        match v {
            Some(v) => value_to_py(py, v),
            None => Ok(py.None().into_bound(py)),
        }
    };
    d.set_item("old", side(&c.old)?)?;
    d.set_item("new", side(&c.new)?)?;
    d.set_item("text", c.to_string())?;
    Ok(d)
}

/// What setting or removing a schema did, as a dict.
pub(crate) fn schema_change_to_py<'py>(
    py: Python<'py>,
    c: &ndsr::release::SchemaChange,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", c.version)?;
    let forced: Vec<(&str, &str)> =
        c.forced_over.iter().map(|v| (v.pointer.as_str(), v.message.as_str())).collect();
    d.set_item("forced_over", forced)?;
    Ok(d)
}

/// A stored schema as a dict (`schema`, `version`).
pub(crate) fn schema_info_to_py<'py>(
    py: Python<'py>,
    s: &ndsr::release::SchemaInfo,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("schema", value_to_py(py, &s.schema)?)?;
    d.set_item("version", s.version)?;
    Ok(d)
}

/// The releases of a configuration path after a version, then live:
/// `next(timeout)` waits with the GIL released (interruptible).
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct ReleaseStream {
    pub(crate) path: String,
    // A Tokio mutex: `next` holds it across its await.
    pub(crate) inner: Arc<tokio::sync::Mutex<ndsr::release::Releases>>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) ended: Arc<std::sync::atomic::AtomicBool>,
}

#[pymethods]
impl ReleaseStream {
    /// The next history item (a dict, as `Registry.history` gives), or
    /// None after `timeout` seconds (None waits as long as it takes) or
    /// once the registry is closed.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Option<Bound<'py, PyDict>>> {
        use std::sync::atomic::Ordering;
        let timeout = timeout.map(|t| seconds(t, "timeout")).transpose()?;
        let (inner, ended) = (self.inner.clone(), self.ended.clone());
        // Cancel-safe (Ctrl-C): the position moves only when an item is returned.
        let next = self.runtime.wait(py, async move {
            let mut releases = inner.lock().await;
            let next = match timeout {
                Some(t) => match tokio::time::timeout(t, releases.next()).await {
                    Ok(next) => next,
                    Err(_) => return None,
                },
                None => releases.next().await,
            };
            if next.is_none() {
                ended.store(true, Ordering::Relaxed);
            }
            next
        })?;
        match next {
            None => Ok(None),
            Some(Ok(item)) => item_to_py(py, &self.path, &item).map(Some),
            Some(Err(e)) => Err(to_py(e)),
        }
    }

    /// Has it ended (the registry closed)?
    #[getter]
    fn ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A JSON value held by the core: `get()` makes a new Python object of it
/// each time, so no caller can change what another sees.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct JsonValue(pub(crate) Arc<Value>);

#[pymethods]
impl JsonValue {
    /// Holds `value`, a JSON-like Python value.
    #[new]
    fn new(value: &Bound<'_, PyAny>) -> PyResult<JsonValue> {
        Ok(JsonValue(Arc::new(value_from_py(value)?)))
    }

    /// The value as a new Python object.
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value_to_py(py, &self.0)
    }
}

/// The Rust typed configuration of JSON values behind `ndsr.Config`: the
/// last value that is JSON and fits the path's schema.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct ConfigCore {
    pub(crate) config: ndsr::release::Config<Value>,
    pub(crate) runtime: Arc<Runtime>,
    /// The last value handed out by `current` and its generation.
    pub(crate) last: Mutex<(u64, Arc<Value>)>,
}

impl ConfigCore {
    pub(crate) fn new(config: ndsr::release::Config<Value>, runtime: Arc<Runtime>) -> ConfigCore {
        let value = config.get();
        ConfigCore { config, runtime, last: Mutex::new((0, value)) }
    }
}

#[pymethods]
impl ConfigCore {
    /// `(generation, version, value)`: the last good value, the version it
    /// came from (None: the default) and a generation that grows by one
    /// each time the value is another.
    fn current(&self) -> (u64, Option<i32>, JsonValue) {
        // The value and its version are read apart: a version read between
        // two reads of the same value (an Arc replaced on every change, and
        // held here, so its address is not reused) is that value's.
        let (value, version) = loop {
            let value = self.config.get();
            let version = self.config.version();
            if Arc::ptr_eq(&value, &self.config.get()) {
                break (value, version);
            }
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&last.1, &value) {
            last.0 += 1;
            last.1 = value.clone();
        }
        (last.0, version, JsonValue(value))
    }

    /// `(kind, version, reasons)`: kind "valid", "rejected", "missing" or
    /// "stale"; the version concerned (None: none); why it was refused.
    fn status(&self) -> (&'static str, Option<i32>, Vec<String>) {
        use ndsr::release::ConfigStatus as S;
        match self.config.status() {
            S::Valid { version } => ("valid", Some(version), Vec::new()),
            S::Rejected { version, reasons } => ("rejected", Some(version), reasons),
            S::Missing => ("missing", None, Vec::new()),
            S::Stale { version } => ("stale", version, Vec::new()),
        }
    }

    /// Python accepted the value of generation `gen`: saved to the cache
    /// file as the last good value, if it is still the core's value.
    fn save_good(&self, gen: u64) {
        let judged = {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            (last.0 == gen).then(|| last.1.clone())
        };
        // Saved only if the core still holds the very value judged.
        if let Some(judged) = judged {
            self.config.save_if(&judged);
        }
    }

    /// How many values the core refused (not JSON, outside the schema).
    fn rejected(&self) -> u64 {
        self.config.rejected()
    }

    /// The configuration path.
    #[getter]
    fn path(&self) -> &str {
        self.config.path()
    }
}
