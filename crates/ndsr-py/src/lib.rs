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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

mod callbacks;
mod convert;
mod logs;
mod wait;

use convert::{data_from_py, value_to_py};
use wait::Runtime;

create_exception!(_core, NdsrError, PyException, "Base class of every ndsr error.");
create_exception!(_core, NoConnection, NdsrError, "Not connected to ZooKeeper within the timeout.");
create_exception!(_core, ReadOnly, NdsrError, "A write on a read-only registry.");
create_exception!(_core, InvalidPath, NdsrError, "Not a valid ZooKeeper path.");
create_exception!(_core, InvalidArgument, NdsrError, "An argument is out of range or malformed.");
create_exception!(_core, DataTooLarge, NdsrError, "The data or the whole request is over the limit.");
create_exception!(_core, NotAuthorized, NdsrError, "ZooKeeper refused the operation on the node's ACL.");
create_exception!(_core, Conflict, NdsrError, "The node is held by another session.");
create_exception!(
    _core,
    Contention,
    NdsrError,
    "Another client kept changing the node between reads and writes; nothing was written."
);
create_exception!(
    _core,
    OutcomeUnknown,
    NoConnection,
    "A write was sent and no answer came: it may or may not have been applied."
);
create_exception!(_core, LockTimeout, NdsrError, "The lock was not obtained within its wait.");
create_exception!(_core, LockMismatch, NdsrError, "The lock's holders disagree on how many may hold it.");
create_exception!(_core, NotALock, NdsrError, "The lock path holds a node that is not a lock.");
create_exception!(_core, NoInstance, NdsrError, "No instance of the service is eligible to pick.");
create_exception!(_core, NotEmpty, NdsrError, "The node has children.");
create_exception!(_core, ChrootMissing, NdsrError, "The chroot of the connection string does not exist.");
create_exception!(_core, Closed, NdsrError, "The registry is closed.");

/// Maps a library error to its Python exception, with the library's message.
fn to_py(e: ndsr::Error) -> PyErr {
    use ndsr::Error as E;
    let message = e.to_string();
    match e {
        E::NoConnection(_) | E::WriteDropped { .. } => NoConnection::new_err(message),
        E::ReadOnly(_) => ReadOnly::new_err(message),
        E::InvalidPath { .. } => InvalidPath::new_err(message),
        E::InvalidArgument(_) | E::InvalidServers { .. } | E::Data { .. } => {
            InvalidArgument::new_err(message)
        }
        E::DataTooLarge { .. } => DataTooLarge::new_err(message),
        E::NotAuthorized { .. } => NotAuthorized::new_err(message),
        E::Conflict { .. } | E::FormatConflict { .. } => Conflict::new_err(message),
        E::Contention { .. } => Contention::new_err(message),
        E::OutcomeUnknown { .. } => OutcomeUnknown::new_err(message),
        E::LockTimeout { .. } => LockTimeout::new_err(message),
        E::LockMismatch { .. } => LockMismatch::new_err(message),
        E::NotALock { .. } => NotALock::new_err(message),
        E::NotEmpty { .. } => NotEmpty::new_err(message),
        E::ChrootMissing { .. } => ChrootMissing::new_err(message),
        E::Closed => Closed::new_err(message),
        _ => NdsrError::new_err(message),
    }
}

/// A format name (`None`: detect).
fn format_of(format: Option<&str>) -> PyResult<Option<ndsr::discovery::Format>> {
    format.map(|f| f.parse().map_err(PyValueError::new_err)).transpose()
}

/// An instance as a Python dict.
fn instance_to_py<'py>(py: Python<'py>, i: &ndsr::discovery::Instance) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("key", &i.key)?;
    d.set_item("format", i.format.name())?;
    d.set_item("id", &i.id)?;
    d.set_item("host", &i.host)?;
    d.set_item("port", i.port)?;
    d.set_item("address", i.address())?;
    d.set_item("ssl_port", i.ssl_port)?;
    d.set_item("serving", i.serving)?;
    d.set_item("weight", i.weight)?;
    d.set_item("shard", i.shard)?;
    d.set_item("labels", i.labels.clone())?;
    let endpoints: std::collections::BTreeMap<&String, (String, u16)> =
        i.endpoints.iter().map(|(k, e)| (k, (e.host.clone(), e.port))).collect();
    d.set_item("endpoints", endpoints)?;
    d.set_item("data", value_to_py(py, &serde_json::Value::Object(i.data.clone()))?)?;
    Ok(d)
}

/// A listing as a Python dict.
fn listing_to_py<'py>(py: Python<'py>, l: &ndsr::discovery::Instances) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &l.path)?;
    d.set_item("format", l.format.map(|f| f.name()))?;
    d.set_item("stale", l.stale)?;
    let instances = l.instances.iter().map(|i| instance_to_py(py, i)).collect::<PyResult<Vec<_>>>()?;
    d.set_item("instances", instances)?;
    let bad: Vec<(&str, &str)> = l.bad.iter().map(|b| (b.key.as_str(), b.reason.as_str())).collect();
    d.set_item("bad", bad)?;
    Ok(d)
}

/// ACL entries given as `(perms, scheme, id)`, perms as ZooKeeper's bits
/// (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16).
fn acl_of(entries: Vec<(u32, String, String)>) -> PyResult<Vec<ndsr::Acl>> {
    use ndsr::Permission as P;
    if entries.is_empty() {
        return Err(PyValueError::new_err("acl: an empty ACL would make nodes nobody can use"));
    }
    entries
        .into_iter()
        .map(|(bits, scheme, id)| {
            if bits == 0 || bits > 31 {
                return Err(PyValueError::new_err(format!(
                    "acl: permissions {bits} for {scheme}:{id} are not a combination of READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16"
                )));
            }
            let perms = [(1, P::READ), (2, P::WRITE), (4, P::CREATE), (8, P::DELETE), (16, P::ADMIN)]
                .into_iter()
                .filter(|(bit, _)| bits & bit != 0)
                .fold(P::NONE, |all, (_, p)| all | p);
            Ok(ndsr::Acl::new(perms, ndsr::AuthId::new(&scheme, &id)))
        })
        .collect()
}

fn seconds(s: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| PyValueError::new_err(format!("{what} must be a number of seconds >= 0")))
}

/// The process that first started a registry: the ZooKeeper client's I/O
/// reactor (async-io's, one per process: an epoll instance and a thread)
/// lives there, and a forked child inherits it half-dead: the thread is
/// gone, its lock is held for ever, and the epoll instance is shared with
/// the parent. No session can be made in such a child, so it is refused
/// with a clear error instead of timing out.
static REACTOR_OWNER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn refuse_after_fork() -> PyResult<()> {
    use std::sync::atomic::Ordering;
    let me = std::process::id();
    match REACTOR_OWNER.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(()),
        Err(owner) if owner == me => Ok(()),
        Err(owner) => Err(NdsrError::new_err(format!(
            "this process was forked from process {owner}, which had already used ZooKeeper: the client's \
             I/O reactor does not survive fork(), so no registry can connect here. Create registries after \
             forking (for example in a pre-fork server's worker start hook), not before"
        ))),
    }
}

/// Was this process forked from one that had already used ZooKeeper?
#[pyfunction]
fn forked_after_use() -> bool {
    let owner = REACTOR_OWNER.load(std::sync::atomic::Ordering::SeqCst);
    owner != 0 && owner != std::process::id()
}

/// The core of an open registry: the async registry and its runtime.
#[derive(Clone, Debug)]
struct Core {
    registry: ndsr::Registry,
    runtime: Arc<Runtime>,
}

impl Core {
    /// Runs `fut` on the registry's runtime, interruptible (see
    /// [`Runtime::wait`]).
    fn wait<F>(&self, py: Python<'_>, fut: F) -> PyResult<F::Output>
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        self.runtime.wait(py, fut)
    }
}

/// A registry: one ZooKeeper session, its registrations, watches and cache.
#[pyclass(module = "ndsr._core", frozen)]
struct Registry {
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
    fn core(&self) -> PyResult<Core> {
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
        username=None, password=None, cache_file=None, create_chroot=false, rate_limit=None, acl=None))]
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

    /// Takes a lock (kazoo Semaphore layout); waits up to `wait` seconds.
    /// Interrupted (Ctrl-C), the request is withdrawn: its nodes are
    /// deleted in the background.
    #[pyo3(signature = (path, name="", simultaneous=1, wait=0.0))]
    fn lock(
        &self,
        py: Python<'_>,
        path: &str,
        name: &str,
        simultaneous: u32,
        wait: f64,
    ) -> PyResult<LockGuard> {
        let wait = seconds(wait, "wait")?;
        let core = self.core()?;
        let builder = core.registry.lock(path).name(name).simultaneous(simultaneous).wait(wait);
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

/// A node at one moment: path, data (a fresh dict on each access), stat,
/// children, and whether it is stale.
#[pyclass(module = "ndsr._core", frozen)]
struct Snapshot(Arc<ndsr::Snapshot>, Option<Py<PyTuple>>);

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

/// Snapshots of one path; `next(timeout)` waits with the GIL released
/// (interruptible), `anext()` is awaitable in asyncio.
#[pyclass(module = "ndsr._core", frozen)]
struct Subscription {
    // A Tokio mutex: `next` and `anext` hold it across their awaits.
    inner: Arc<tokio::sync::Mutex<ndsr::Subscription>>,
    runtime: Arc<Runtime>,
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

/// A held lock.
#[pyclass(module = "ndsr._core", frozen)]
struct LockGuard {
    inner: Mutex<Option<ndsr::LockGuard>>,
    runtime: Arc<Runtime>,
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
    let py = m.py();
    // asyncio awaitables (`Subscription.anext`) run on one small runtime of
    // their own, built on first use; the registries keep theirs.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).thread_name("ndsr-asyncio").enable_all();
    pyo3_async_runtimes::tokio::init(builder);
    m.add_class::<Registry>()?;
    m.add_class::<Snapshot>()?;
    m.add_class::<Subscription>()?;
    m.add_class::<LockGuard>()?;
    m.add_class::<callbacks::CallbackHub>()?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(drain_logs, m)?)?;
    m.add_function(wrap_pyfunction!(forked_after_use, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    for (name, class) in [
        ("NdsrError", py.get_type::<NdsrError>()),
        ("NoConnection", py.get_type::<NoConnection>()),
        ("ReadOnly", py.get_type::<ReadOnly>()),
        ("InvalidPath", py.get_type::<InvalidPath>()),
        ("InvalidArgument", py.get_type::<InvalidArgument>()),
        ("DataTooLarge", py.get_type::<DataTooLarge>()),
        ("NotAuthorized", py.get_type::<NotAuthorized>()),
        ("Conflict", py.get_type::<Conflict>()),
        ("Contention", py.get_type::<Contention>()),
        ("OutcomeUnknown", py.get_type::<OutcomeUnknown>()),
        ("LockTimeout", py.get_type::<LockTimeout>()),
        ("LockMismatch", py.get_type::<LockMismatch>()),
        ("NotALock", py.get_type::<NotALock>()),
        ("NoInstance", py.get_type::<NoInstance>()),
        ("NotEmpty", py.get_type::<NotEmpty>()),
        ("ChrootMissing", py.get_type::<ChrootMissing>()),
        ("Closed", py.get_type::<Closed>()),
    ] {
        m.add(name, class)?;
    }
    Ok(())
}
