//! The `Registry` pyclass and the `Core` (the async registry and its
//! runtime) behind it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::data_from_py;
use crate::errors::{to_py, Closed, NoInstance};
use crate::fork::refuse_after_fork;
use crate::instances::{acl_of, format_of, instance_to_py, listing_to_py};
use crate::lock::LockGuard;
use crate::release;
use crate::snapshot::Snapshot;
use crate::subscription::Subscription;
use crate::wait::Runtime;
use crate::{logs, seconds};

/// The core of an open registry: the async registry and its runtime.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub(crate) registry: ndsr::Registry,
    pub(crate) runtime: Arc<Runtime>,
}

impl Core {
    /// Runs `fut` on the registry's runtime, interruptible (see
    /// [`Runtime::wait`]).
    pub(crate) fn wait<F>(&self, py: Python<'_>, fut: F) -> PyResult<F::Output>
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        self.runtime.wait(py, fut)
    }
}

/// A registry: one ZooKeeper session, its registrations, watches and cache.
#[pyclass(module = "ndsr._core", frozen)]
pub(crate) struct Registry {
    inner: Mutex<Option<Core>>,
    /// The children of the latest snapshot of each path read, as Python
    /// strings: a cached read then copies a list of existing objects
    /// instead of making a string per child.
    children: Mutex<std::collections::HashMap<String, ChildrenOf>>,
    /// `pick`'s selectors, by path and options (their state persists).
    #[allow(clippy::type_complexity)]
    selectors: Mutex<
        std::collections::HashMap<
            (String, Option<ndsr::discovery::Format>, ndsr::discovery::SelectorSpec),
            Arc<ndsr::discovery::Selector>,
        >,
    >,
}

/// A snapshot and its children as a tuple of Python strings.
type ChildrenOf = (Arc<ndsr::Snapshot>, Py<PyTuple>);

impl Registry {
    pub(crate) fn core(&self) -> PyResult<Core> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clone().ok_or_else(|| Closed::new_err("the registry is closed"))
    }
}

impl Registry {
    /// The children of `snapshot` as a tuple of Python strings, made once
    /// per snapshot of each path.
    fn children_of(
        &self,
        py: Python<'_>,
        path: &str,
        snapshot: &Arc<ndsr::Snapshot>,
    ) -> PyResult<Py<PyTuple>> {
        let mut cache = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, children)) = cache.get(path) {
            // The cache hands out the same Arc until the path changes.
            if Arc::ptr_eq(cached, snapshot) {
                return Ok(children.clone_ref(py));
            }
        }
        let children: Py<PyTuple> = PyTuple::new(py, &snapshot.children)?.unbind();
        cache.insert(path.to_string(), (snapshot.clone(), children.clone_ref(py)));
        Ok(children)
    }
}

#[pymethods]
impl Registry {
    /// Connects (unless `lazy`) and returns the registry. Interrupted
    /// (Ctrl-C), it closes what it opened.
    #[new]
    #[pyo3(signature = (servers, *, session_timeout=10.0, connect_timeout=None, readonly=false, lazy=false,
        username=None, password=None, cache_file=None, create_chroot=false, rate_limit=None, acl=None,
        identity=None, labels=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        servers: &str,
        session_timeout: f64,
        connect_timeout: Option<f64>,
        readonly: bool,
        lazy: bool,
        username: Option<String>,
        password: Option<String>,
        cache_file: Option<std::path::PathBuf>,
        create_chroot: bool,
        rate_limit: Option<u32>,
        acl: Option<Vec<(u32, String, String)>>,
        identity: Option<String>,
        labels: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Registry> {
        let mut builder = ndsr::Registry::builder(servers)
            .session_timeout(seconds(session_timeout, "session_timeout")?)
            .readonly(readonly)
            .lazy(lazy)
            .create_chroot(create_chroot);
        if let Some(timeout) = connect_timeout {
            let timeout = seconds(timeout, "connect_timeout")?;
            builder = builder.connect_timeout(timeout).operation_timeout(timeout.max(Duration::from_secs(1)));
        }
        match (username, password) {
            (Some(user), Some(password)) => builder = builder.auth(user, password),
            (None, None) => {}
            _ => return Err(PyValueError::new_err("username and password go together")),
        }
        if let Some(file) = cache_file {
            builder = builder.cache_file(file);
        }
        if let Some(acl) = acl {
            builder = builder.acl(acl_of(acl)?);
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        for (name, value) in labels.unwrap_or_default() {
            builder = builder.label(name, value);
        }
        if let Some(n) = rate_limit.and_then(std::num::NonZeroU32::new) {
            builder = builder.rate_limit(n);
        }
        refuse_after_fork()?;
        logs::install();
        let runtime = Runtime::start()?;
        // A connect interrupted (Ctrl-C) or failed closes what it opened.
        let built = runtime.wait(py, builder.build());
        let registry = match built {
            Ok(Ok(registry)) => registry,
            Ok(Err(e)) => {
                py.detach(move || drop(runtime));
                return Err(to_py(e));
            }
            Err(interrupted) => {
                py.detach(move || drop(runtime));
                return Err(interrupted);
            }
        };
        Ok(Registry {
            inner: Mutex::new(Some(Core { registry, runtime })),
            children: Mutex::default(),
            selectors: Mutex::default(),
        })
    }

    /// Registers an ephemeral node holding `data` (None, a str or a dict).
    fn set_node(&self, py: Python<'_>, path: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data_from_py(data)?;
        let core = self.core()?;
        core.wait(py, core.registry.set_node(path, data))?.map_err(to_py)
    }

    /// Writes a persistent node holding `data`, unless it holds it already.
    fn set_data(&self, py: Python<'_>, path: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data_from_py(data)?;
        let core = self.core()?;
        core.wait(py, core.registry.set_data(path, data))?.map_err(to_py)
    }

    /// Removes a node (a registration of ours: withdraws it).
    fn unset(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        let core = self.core()?;
        core.wait(py, core.registry.unset(path))?.map_err(to_py)
    }

    /// Removes a node and its subtree; returns how many nodes were deleted.
    fn unset_recursive(&self, py: Python<'_>, path: &str) -> PyResult<usize> {
        let core = self.core()?;
        core.wait(py, core.registry.unset_recursive(path))?.map_err(to_py)
    }

    /// The snapshot of `path`, watched from now on (a memory read after the
    /// first call, which keeps the GIL: there is nothing to wait for).
    fn get(&self, py: Python<'_>, path: &str) -> PyResult<Snapshot> {
        let core = self.core()?;
        let snapshot = match core.registry.get_cached(path).map_err(to_py)? {
            Some(snapshot) => snapshot,
            None => core.wait(py, core.registry.get(path))?.map_err(to_py)?,
        };
        let children = self.children_of(py, path, &snapshot)?;
        Ok(Snapshot(snapshot, Some(children)))
    }

    /// Reads `path` once, without watching it.
    fn read(&self, py: Python<'_>, path: &str) -> PyResult<Snapshot> {
        let core = self.core()?;
        let snapshot = core.wait(py, core.registry.read(path))?.map_err(to_py)?;
        Ok(Snapshot(Arc::new(snapshot), None))
    }

    /// Snapshots of `path`: the current one first, then one per change.
    fn subscribe(&self, path: &str) -> PyResult<Subscription> {
        let core = self.core()?;
        let inner = {
            let _entered = core.runtime.handle().enter();
            core.registry.subscribe(path).map_err(to_py)?
        };
        Ok(Subscription { inner: Arc::new(tokio::sync::Mutex::new(inner)), runtime: core.runtime })
    }

    /// Stops watching `path` (its subscriptions end).
    fn unwatch(&self, path: &str) -> PyResult<()> {
        let core = self.core()?;
        {
            let _entered = core.runtime.handle().enter();
            core.registry.unwatch(path).map_err(to_py)?;
        }
        // The path's children tuple goes with its watch.
        self.children.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
        Ok(())
    }

    /// The connection state: connecting, connected, disconnected, expired
    /// or closed.
    fn state(&self) -> PyResult<&'static str> {
        Ok(self.core().map_or("closed", |core| core.registry.state().name()))
    }

    /// Waits up to `timeout` seconds for the state to differ from `seen`;
    /// returns the state then.
    fn next_state(&self, py: Python<'_>, seen: &str, timeout: f64) -> PyResult<&'static str> {
        let timeout = seconds(timeout, "timeout")?;
        let Ok(core) = self.core() else { return Ok("closed") };
        let seen: ndsr::State = seen.parse().map_err(PyValueError::new_err)?;
        let mut states = core.registry.state_changes();
        let changed = core.wait(py, async move {
            tokio::time::timeout(timeout, states.wait_for(|s| *s != seen))
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|s| *s)
        })?;
        Ok(changed.unwrap_or(seen).name())
    }

    /// Takes a lock in `layout` (`semaphore`: kazoo's Semaphore, the
    /// default; `kazoo`: kazoo's Lock/ReadLock/WriteLock; `curator`:
    /// Curator's InterProcessMutex/InterProcessReadWriteLock) and `mode`
    /// (`exclusive`, `read`, `write`); waits up to `wait` seconds.
    /// Interrupted (Ctrl-C), the request is withdrawn: its nodes are
    /// deleted in the background.
    #[pyo3(signature = (path, name="", simultaneous=1, wait=0.0, layout="semaphore", mode="exclusive"))]
    #[allow(clippy::too_many_arguments)]
    fn lock(
        &self,
        py: Python<'_>,
        path: &str,
        name: &str,
        simultaneous: u32,
        wait: f64,
        layout: &str,
        mode: &str,
    ) -> PyResult<LockGuard> {
        use ndsr::lock::{LockLayout, LockMode};
        let wait = seconds(wait, "wait")?;
        let layout: LockLayout = layout.parse().map_err(|e: ndsr::Error| {
            PyValueError::new_err(format!("unknown lock layout {layout:?}: {e}"))
        })?;
        let mode: LockMode = mode
            .parse()
            .map_err(|e: ndsr::Error| PyValueError::new_err(format!("unknown lock mode {mode:?}: {e}")))?;
        let core = self.core()?;
        let builder = core
            .registry
            .lock(path)
            .name(name)
            .simultaneous(simultaneous)
            .wait(wait)
            .layout(layout)
            .mode(mode);
        let guard = core.wait(py, builder.acquire())?.map_err(to_py)?;
        Ok(LockGuard { inner: Mutex::new(Some(guard)), runtime: core.runtime })
    }

    /// The instances of a service directory, decoded from any format
    /// (`format`: "curator", "serverset", "nerve", "nd"; default detected):
    /// a dict with `path`, `format`, `stale`, `instances` (dicts) and `bad`
    /// (`(key, reason)` pairs).
    #[pyo3(signature = (path, format=None))]
    fn instances<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        format: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let format = format_of(format)?;
        let core = self.core()?;
        let listing = core.wait(py, core.registry.instances(path, format))?.map_err(to_py)?;
        listing_to_py(py, &listing)
    }

    /// Picks one instance of a service directory (a dict), keeping the
    /// strategy's state (round robin's turn, sticky's choice, reported
    /// failures) per path and options. Raises `NoInstance` when none is
    /// eligible.
    #[pyo3(signature = (path, strategy="random", format=None, labels=None, prefer=None, include_draining=false))]
    #[allow(clippy::too_many_arguments)]
    fn pick<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        strategy: &str,
        format: Option<&str>,
        labels: Option<std::collections::BTreeMap<String, String>>,
        prefer: Option<(String, String)>,
        include_draining: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let format = format_of(format)?;
        let mut spec = ndsr::discovery::SelectorSpec::new(strategy.parse().map_err(PyValueError::new_err)?);
        spec.include_draining = include_draining;
        spec.prefer = prefer;
        for (label, value) in labels.into_iter().flatten() {
            spec.labels.push(ndsr::discovery::LabelFilter { label, value, equals: true });
        }
        let selector = {
            let mut selectors = self.selectors.lock().unwrap_or_else(|e| e.into_inner());
            let key = (path.to_string(), format, spec);
            if let Some(selector) = selectors.get(&key) {
                selector.clone()
            } else {
                let selector = Arc::new(key.2.build());
                selectors.insert(key, selector.clone());
                selector
            }
        };
        let core = self.core()?;
        let listing = core.wait(py, core.registry.instances(path, format))?.map_err(to_py)?;
        let picked = selector
            .pick(&listing.instances)
            .map_err(|none| NoInstance::new_err(format!("{path}: {none}")))?;
        instance_to_py(py, &picked)
    }

    /// Registers an instance in another system's format (`format`:
    /// "curator", "serverset", "nerve") and keeps it registered; returns
    /// its node's path. `path` is the service directory (for Curator, the
    /// base path; the service is `name`).
    #[pyo3(signature = (path, format, host, port, *, name=None, id=None, ssl_port=None, shard=None, weight=None,
        labels=None, endpoints=None, path_encoding=false))]
    #[allow(clippy::too_many_arguments)]
    fn announce(
        &self,
        py: Python<'_>,
        path: &str,
        format: &str,
        host: &str,
        port: u16,
        name: Option<String>,
        id: Option<String>,
        ssl_port: Option<u16>,
        shard: Option<i32>,
        weight: Option<u32>,
        labels: Option<std::collections::BTreeMap<String, String>>,
        endpoints: Option<std::collections::BTreeMap<String, (String, u16)>>,
        path_encoding: bool,
    ) -> PyResult<String> {
        use ndsr::discovery::{AnnounceError, Announcement, Format, InstanceSpec};
        let core = self.core()?;
        let format: Format = format.parse().map_err(PyValueError::new_err)?;
        let spec = InstanceSpec {
            name,
            id,
            ssl_port,
            shard,
            weight,
            labels: labels.unwrap_or_default(),
            endpoints: endpoints.unwrap_or_default(),
            path_encoding,
            ..InstanceSpec::new(host, port)
        };
        let announcement = Announcement::new(format, path, spec).map_err(|e| match e {
            AnnounceError::NameMissing { what, .. } => {
                PyValueError::new_err(format!("announce as {format}: name ({what}) is required"))
            }
            _ => PyValueError::new_err("announce writes curator, serverset or nerve; use set_node for nd"),
        })?;
        let announced = core.wait(py, announcement.register(&core.registry))?;
        announced.map_err(to_py)
    }

    /// Publishes `value` as the new release of the configuration node
    /// `path` (bytes and str are JSON text written exactly; anything else
    /// is encoded as compact JSON); `if_version` makes it conditional on
    /// the live version (-1: only if the node does not exist). Returns the
    /// release: `path`, `version`, `previous_version`, `entry`, `sha256`.
    #[pyo3(signature = (path, value, message="", if_version=None))]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        value: &Bound<'_, PyAny>,
        message: &str,
        if_version: Option<i32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let bytes = release::publish_bytes(value)?;
        let options = ndsr::release::PublishOptions { message: message.to_string(), if_version };
        let core = self.core()?;
        let written = core.wait(py, core.registry.publish(path, &bytes, options))?.map_err(to_py)?;
        release::release_to_py(py, &written)
    }

    /// Publishes the value of release `to_version` again (its exact
    /// bytes); returns the release as `publish` does.
    #[pyo3(signature = (path, to_version, message="", if_version=None))]
    fn rollback<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        to_version: i32,
        message: &str,
        if_version: Option<i32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let options = ndsr::release::PublishOptions { message: message.to_string(), if_version };
        let core = self.core()?;
        let written = core.wait(py, core.registry.rollback(path, to_version, options))?.map_err(to_py)?;
        release::release_to_py(py, &written)
    }

    /// The history of `path`, oldest first: a dict per item (see
    /// `release::item_to_py`).
    fn history<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let core = self.core()?;
        let history = core.wait(py, core.registry.history(path))?.map_err(to_py)?;
        history.items.iter().map(|item| release::item_to_py(py, path, item)).collect()
    }

    /// The changes from release `a` to release `b` of `path` (None: the
    /// live value), a dict each.
    #[pyo3(signature = (path, a=None, b=None))]
    fn diff<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        a: Option<i32>,
        b: Option<i32>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let core = self.core()?;
        let changes = core.wait(py, core.registry.config_diff(path, a, b))?.map_err(to_py)?;
        changes.iter().map(|c| release::change_to_py(py, c)).collect()
    }

    /// The JSON Schema of `path` (`schema`, `version`), or None.
    fn schema<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        let core = self.core()?;
        let schema = core.wait(py, core.registry.schema(path))?.map_err(to_py)?;
        schema.map(|s| release::schema_info_to_py(py, &s)).transpose()
    }

    /// Sets the JSON Schema of `path` (a JSON-like value, or JSON text).
    #[pyo3(signature = (path, schema, force=false))]
    fn set_schema<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        schema: &Bound<'_, PyAny>,
        force: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let schema = release::schema_from_py(path, schema)?;
        let core = self.core()?;
        let change = core.wait(py, core.registry.set_schema(path, &schema, force))?.map_err(to_py)?;
        release::schema_change_to_py(py, &change)
    }

    /// Removes the JSON Schema of `path`.
    fn remove_schema<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
        let core = self.core()?;
        let change = core.wait(py, core.registry.remove_schema(path))?.map_err(to_py)?;
        release::schema_change_to_py(py, &change)
    }

    /// Checks `value` (as `publish` takes it) against the schema of `path`
    /// without writing anything.
    fn validate_config(&self, py: Python<'_>, path: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = release::publish_bytes(value)?;
        let core = self.core()?;
        core.wait(py, core.registry.validate_config(path, &bytes))?.map_err(to_py)
    }

    /// The releases of `path` after version `since` (all for None), then
    /// each new one live.
    #[pyo3(signature = (path, since=None))]
    fn releases(&self, path: &str, since: Option<i32>) -> PyResult<release::ReleaseStream> {
        let core = self.core()?;
        let inner = {
            let _entered = core.runtime.handle().enter();
            core.registry.releases(path, since).map_err(to_py)?
        };
        Ok(release::ReleaseStream {
            path: path.to_string(),
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            runtime: core.runtime,
            ended: Arc::default(),
        })
    }

    /// The typed configuration of JSON values at `path`: the last value
    /// that is JSON and fits the path's schema (`default`, a JSON-like
    /// value, while there is none). `saves`: whether the core saves each
    /// such value to the cache file (off when Python judges values further
    /// and saves what it accepts with `ConfigCore.save_good`).
    #[pyo3(signature = (path, default=None, saves=true))]
    fn config(
        &self,
        py: Python<'_>,
        path: &str,
        default: Option<&Bound<'_, PyAny>>,
        saves: bool,
    ) -> PyResult<release::ConfigCore> {
        let mut builder = {
            let core = self.core()?;
            core.registry.config::<serde_json::Value>(path).saves_good_values(saves)
        };
        if let Some(default) = default {
            builder = builder.default_value(crate::convert::value_from_py(default)?);
        }
        let core = self.core()?;
        let config = core.wait(py, builder.build())?.map_err(to_py)?;
        Ok(release::ConfigCore::new(config, core.runtime))
    }

    /// (For tests.) Is a children tuple kept for `path`?
    #[pyo3(name = "_children_cached")]
    fn children_cached(&self, path: &str) -> bool {
        self.children.lock().unwrap_or_else(|e| e.into_inner()).contains_key(path)
    }

    /// ZooKeeper requests made so far.
    fn zk_requests(&self) -> PyResult<u64> {
        Ok(self.core()?.registry.zk_requests())
    }

    /// Closes the session: registrations vanish at once, subscriptions end.
    /// Interrupted (Ctrl-C), the session still closes, in the background.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.children.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(core) = taken else { return Ok(()) };
        match core.wait(py, core.registry.close()) {
            Ok(()) => {
                // The runtime's shutdown may wait a moment: not with the GIL.
                py.detach(move || drop(core));
                Ok(())
            }
            Err(interrupted) => {
                // The runtime must live until the session is closed.
                let closing = std::thread::Builder::new().name("ndsr-close".into()).spawn(move || {
                    core.runtime.handle().block_on(core.registry.close());
                    drop(core);
                });
                if let Err(e) = closing {
                    tracing::warn!("cannot close the session in the background: {e}");
                }
                Err(interrupted)
            }
        }
    }

    /// In a child after `fork()`: the runtime's threads do not exist here,
    /// so the registry is forgotten without being touched (the parent keeps
    /// the session).
    fn _abandon(&self) {
        if let Ok(mut inner) = self.inner.try_lock() {
            if let Some(core) = inner.take() {
                std::mem::forget(core);
            }
        }
    }
}
