"""A drop-in for Nextdoor's ``nd_service_registry`` 1.1.0 on ndsr's Rust core.

Change the install line, keep the code::

    from nd_service_registry import KazooServiceRegistry, exceptions

    nd = KazooServiceRegistry(server="zk1:2181", timeout=5)
    nd.set_node("/services/web/10.0.0.1:80", {"zone": "a"})
    nd.get("/services/web", callback=lambda s: print(s["children"]))

Every difference from the original, with its reason, is in ndsr's
``docs/PYTHON.md``. The main ones: writes raise instead of returning True
after a failure; callbacks run on a small pool of threads, one path at a
time each (one that blocks or raises does not hold up the other paths);
one registry is shared per distinct
set of constructor arguments; a registry made before ``os.fork()``
raises a clear error in the child instead of hanging (ZooKeeper's client
cannot reconnect in a forked process: make registries after forking).
"""

import atexit
import logging
import os
import threading
import weakref

from ndsr import _core, _dispatch, _logging
from ndsr._stat import ZnodeStat
from nd_service_registry import exceptions, funcs, registration
from nd_service_registry import lock
from nd_service_registry.lock import Lock
from nd_service_registry.registration import DataNode, EphemeralNode
from nd_service_registry.version import __version__

__all__ = [
    "KazooServiceRegistry",
    "exceptions",
    "funcs",
    "lock",
    "registration",
    "Lock",
    "ZnodeStat",
    "DataNode",
    "EphemeralNode",
    "LOCK_WAIT",
    "SERVER",
    "TIMEOUT",
    "__version__",
]

TIMEOUT = 5
SERVER = "localhost:2181"
LOCK_WAIT = 300

log = logging.getLogger(__name__)
_logging.set_base("nd_service_registry")

_live = weakref.WeakSet()

_FORKED = (
    "this registry was made before os.fork(): ZooKeeper's client cannot connect again in a forked "
    "process (its I/O reactor does not survive fork). Make the registry after forking"
)

_DEFAULTS = dict(
    server=SERVER,
    readonly=False,
    timeout=TIMEOUT,
    cachefile=None,
    username=None,
    password=None,
    acl=None,
    lazy=False,
    rate_limit_time=2,
    rate_limit_calls=50,
)


def _snapshot_dict(path, snapshot):
    """The original's shape, in its key order; every part a new object."""
    stat = snapshot.stat
    return {
        "stat": None if stat is None else ZnodeStat(*stat),
        "path": path,
        "data": snapshot.data,
        "children": snapshot.children,
    }


def _check_data(data):
    if data is not None and not isinstance(data, str) and not hasattr(data, "keys"):
        raise TypeError("data must be None, a str or a dict, not %s" % type(data).__name__)


class KazooServiceRegistry(object):
    """The original's registry, on ndsr's core. Keyword arguments only, as
    the original: ``server``, ``readonly``, ``timeout`` (seconds: the session
    timeout and the connect wait), ``cachefile``, ``username``,
    ``password``, ``acl``, ``lazy``, ``rate_limit_time``,
    ``rate_limit_calls``.

    Constructing it again with the same arguments returns the same object
    (one session per process, as the original); with different arguments
    it returns another registry with its own session, and logs a WARNING
    (the original silently ignored them). Setting ``_initialized = False``
    makes the next construction start a new session on the same object, and
    setting ``KazooServiceRegistry._instance = None`` forgets the shared
    instances, as the original's tests do.
    """

    _instance = None
    _instances = {}
    _class_lock = threading.Lock()

    def __new__(cls, **kwargs):
        unknown = set(kwargs) - set(_DEFAULTS)
        if unknown:
            raise TypeError("unexpected keyword argument(s): %s" % ", ".join(sorted(unknown)))
        key = repr(sorted(dict(_DEFAULTS, **kwargs).items()))
        with cls._class_lock:
            if cls._instance is None:
                cls._instances = {}
            instance = cls._instances.get(key)
            if instance is None:
                if cls._instances:
                    log.warning(
                        "KazooServiceRegistry built again with other arguments: this one has a session of its own"
                    )
                instance = super(KazooServiceRegistry, cls).__new__(cls)
                instance._initialized = False
                instance._core = None
                cls._instances[key] = instance
            cls._instance = instance
            return instance

    def __init__(
        self,
        server=SERVER,
        readonly=False,
        timeout=TIMEOUT,
        cachefile=None,
        username=None,
        password=None,
        acl=None,
        lazy=False,
        rate_limit_time=2,
        rate_limit_calls=50,
    ):
        if self._initialized:
            return
        if self._core is not None:
            # Re-initialised (tests reset _initialized): end the old session
            # rather than leak it.
            self._close_core()
        self._server = server
        self._readonly = readonly
        self._timeout = timeout
        self._cachefile = cachefile
        self._username = username
        self._password = password
        self._acl = acl
        self._lazy = lazy
        self._rate_limit = None
        if rate_limit_calls and rate_limit_time:
            self._rate_limit = max(1, int(round(float(rate_limit_calls) / float(rate_limit_time))))
        self._lock = threading.RLock()
        self._registrations = {}
        self._watchers = {}
        self._locks = {}
        self._conn_state_callbacks = []
        self._state_stop = threading.Event()
        self._state_thread = None
        self._callback_threads = _dispatch.CallbackThreads()
        self._pool = None
        self._pid = os.getpid()
        _logging.start()
        self._connect(lazy)
        self._initialized = True
        _live.add(self)

    # -- connection -----------------------------------------------------

    def _connect(self, lazy):
        options = dict(
            session_timeout=float(self._timeout),
            connect_timeout=float(self._timeout),
            readonly=bool(self._readonly),
            lazy=bool(lazy),
            username=self._username,
            password=self._password,
            rate_limit=self._rate_limit,
        )
        if self._acl:
            # kazoo ACLs (or anything with .perms and .id.scheme/.id.id):
            # the ACL of every node created, as the original's default_acl.
            options["acl"] = [(int(a.perms), str(a.id.scheme), str(a.id.id)) for a in self._acl]
        if self._cachefile:
            # Never the original's pickle path: an original process sharing
            # it would crash reading ndsr's JSON.
            options["cache_file"] = str(self._cachefile) + ".ndsr.json"
        if self._username is None or self._password is None:
            options["username"] = options["password"] = None
        try:
            self._core = _core.Registry(self._server, **options)
        except _core.NoConnection:
            self._core = None
            raise exceptions.NoConnection("Could not connect to Zookeeper")
        except _core.NdsrError as e:
            self._core = None
            raise self._translate(e)
        # One pool per session: stop() closes it, start() makes another.
        self._pool = _dispatch.CallbackPool(self._callback_threads, _dispatch.DEFAULT_THREADS, log)
        if self._conn_state_callbacks:
            self._start_state_thread()

    def _core_registry(self):
        if os.getpid() != self._pid:
            self._after_fork()
        if getattr(self, "_forked", False):
            raise exceptions.NoConnection(_FORKED)
        core = self._core
        if core is None:
            raise exceptions.NoConnection("Service is down. Try again later.")
        return core

    def _translate(self, e):
        message = str(e)
        if isinstance(e, _core.NotEmpty):
            # ndsr's hint names its own API (unset_recursive), not this one's.
            message = message.split(";")[0] + "; remove its children first"
        for core_class, ours in (
            (_core.NoConnection, exceptions.NoConnection),
            (_core.Closed, exceptions.NoConnection),
            (_core.ReadOnly, exceptions.ReadOnly),
            (_core.NotAuthorized, exceptions.NotAuthorized),
            (_core.Conflict, exceptions.Conflict),
            (_core.InvalidPath, exceptions.InvalidPath),
            (_core.DataTooLarge, exceptions.DataTooLarge),
            (_core.NotEmpty, exceptions.NotEmpty),
            (_core.NotALock, exceptions.NotALock),
            (_core.LockMismatch, exceptions.LockMismatch),
        ):
            if isinstance(e, core_class):
                return ours(message)
        return exceptions.ServiceRegistryException(message)

    def _close_core(self):
        self._state_stop.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        for watcher in list(self._watchers.values()):
            watcher.stop()
        core, self._core = self._core, None
        if core is not None:
            core.close()

    # -- writes ---------------------------------------------------------

    def set_node(self, node, data=None, state=True):
        """Registers an ephemeral node (``state=False``: withdraws it)."""
        return self.set(node=node, data=data, state=state, type=EphemeralNode)

    def set_data(self, node, data=None, state=True):
        """Writes a persistent data node (``state=False``: removes it)."""
        return self.set(node=node, data=data, state=state, type=DataNode)

    def unset(self, node, type=DataNode):
        """Removes the node (a registration of ours: withdraws it)."""
        return self.set(node=node, data=None, state=False, type=type)

    def set(self, node, data, state, type):
        """Brings ``node`` to the desired state; returns True, or raises."""
        if self._readonly:
            raise exceptions.ReadOnly("In read-only mode, no writes allowed")
        _check_data(data)
        core = self._core_registry()
        try:
            if not state:
                core.unset(node)
            elif type is DataNode:
                core.set_data(node, data)
            else:
                core.set_node(node, data)
        except _core.NdsrError as e:
            raise self._translate(e)
        with self._lock:
            if state:
                self._registrations[node] = (type, data)
            else:
                self._registrations.pop(node, None)
        return True

    # -- reads ----------------------------------------------------------

    def get(self, path, callback=None):
        """The snapshot dict of ``path`` (``stat``, ``path``, ``data``,
        ``children``), a new copy each call; watched from the first call,
        then a memory read. ``callback`` is added as by :meth:`add_callback`."""
        core = self._core_registry()
        try:
            snapshot = core.get(path)
        except _core.NdsrError as e:
            raise self._translate(e)
        if callback is not None:
            self.add_callback(path, callback)
        return _snapshot_dict(path, snapshot)

    def add_callback(self, path, callback):
        """Calls ``callback(snapshot_dict)`` now, in this thread, and on every
        later change (the latest, if its callbacks fall behind), on one of
        the registry's callback threads, one at a time per path; the same
        callback is not added twice. If the first call raises, the exception propagates and
        the callback is not kept."""
        core = self._core_registry()
        try:
            snapshot = core.get(path)
        except _core.NdsrError as e:
            raise self._translate(e)
        with self._lock:
            watcher = self._watcher(core, path)
        watcher.add(callback, snapshot)

    def _watcher(self, core, path):
        """The path's dispatcher, made if need be (with self._lock held)."""
        watcher = self._watchers.get(path)
        if watcher is None:
            pool = self._pool
            if pool is None:
                raise exceptions.NoConnection("Service is down. Try again later.")
            watcher = pool.watch(core, path, lambda s, p=path: _snapshot_dict(p, s))
            self._watchers[path] = watcher
        return watcher

    # -- connection state -------------------------------------------------

    def get_state(self, callback=None):
        """True while connected. A new ``callback`` is called now with the
        state and then on every change (never in the connection's thread)."""
        state = self._connected()
        if callback is not None:
            with self._lock:
                if callback in self._conn_state_callbacks:
                    return state
                self._conn_state_callbacks.append(callback)
                start = self._state_thread is None
            callback(state)
            if start:
                self._start_state_thread()
        return state

    def _connected(self):
        core = self._core
        return core is not None and core.state() == "connected"

    def _start_state_thread(self):
        self._state_stop = threading.Event()
        core = self._core
        if core is not None:
            self._state_thread = _dispatch.state_thread(core, self._deliver_state, self._state_stop, log)
            self._callback_threads.add(self._state_thread)

    def _deliver_state(self, state):
        with self._lock:
            callbacks = list(self._conn_state_callbacks)
        for callback in callbacks:
            try:
                callback(state == "connected")
            except Exception:
                log.exception("state callback %r raised; the others still run", callback)

    # -- locks ----------------------------------------------------------

    def get_lock(self, path, name=None, simultaneous=1, wait=LOCK_WAIT):
        """A :class:`Lock` at ``path`` with these settings (a lock held
        already is returned as it is)."""
        if self._readonly:
            raise exceptions.ReadOnly("In read-only mode, no locks allowed")
        self._core_registry()
        with self._lock:
            existing = self._locks.get(path)
            if existing is not None and existing.status():
                return existing
            new = Lock(self, path, name=name, simultaneous=simultaneous, wait=wait)
            self._locks[path] = new
            return new

    def acquire_lock(self, path, name=None, simultaneous=1, wait=LOCK_WAIT):
        """Takes the lock at ``path``; returns whether it is held."""
        return self.get_lock(path, name, simultaneous, wait).acquire()

    def release_lock(self, path):
        """Releases the lock at ``path``; True when it is not held afterwards."""
        with self._lock:
            held = self._locks.get(path)
        if held is None:
            return True
        held.release()
        return not held.status()

    # -- credentials ------------------------------------------------------

    def username(self):
        """The username (or None)."""
        return self._username

    def password(self):
        """The password (or None)."""
        return self._password

    def set_username(self, username):
        """Changes the username; with a password, a new session uses it."""
        if username != self._username:
            self._username = username
            if self._password is not None or username is None:
                self.rebuild()

    def set_password(self, password):
        """Changes the password; with a username, a new session uses it."""
        if password != self._password:
            self._password = password
            if self._username is not None or password is None:
                self.rebuild()

    # -- lifecycle ------------------------------------------------------

    def stop(self, timeout=None):
        """Closes the session: registrations vanish now; they and the
        watches are kept in memory for :meth:`start`. No callback starts
        after this; then it waits up to ``timeout`` seconds (None: as long
        as it takes) for the callbacks already running to return, and
        returns True when none is running any more, False when some still
        were after ``timeout``. Called from inside a callback, it does not
        wait for that callback, nor for another callback that is itself
        stopping the registry."""
        try:
            self._close_core()
        except Exception:
            log.exception("stopping")
        return self._callback_threads.wait(timeout)

    def start(self):
        """Starts a new session and restores every registration and watch."""
        if self._core is not None:
            return
        self._connect(self._lazy)
        self._restore(call_now=False)

    def rebuild(self):
        """A new session in place of the old one (which is closed), with
        every registration and watch restored and callbacks called again."""
        self.stop()
        self._connect(self._lazy)
        self._restore(call_now=True)

    def _restore(self, call_now):
        core = self._core
        with self._lock:
            registrations = list(self._registrations.items())
            watchers, self._watchers = self._watchers, {}
        for node, (kind, data) in registrations:
            try:
                (core.set_data if kind is DataNode else core.set_node)(node, data)
            except _core.NdsrError as e:
                log.warning("cannot restore %s yet: %s (it is kept and made once connected)", node, e)
        for path, old in watchers.items():
            for callback in old.callbacks():
                try:
                    if call_now:
                        self.add_callback(path, callback)
                    else:
                        snapshot = core.get(path)
                        with self._lock:
                            watcher = self._watcher(core, path)
                        watcher.keep(callback, snapshot)
                except Exception as e:
                    log.warning("cannot restore the watch on %s yet: %s", path, e)

    def _after_fork(self):
        """In a forked child: the parent's session is not the child's, and
        ZooKeeper's client cannot connect again in a forked process (its
        I/O reactor does not survive fork): set the registry aside without
        touching the parent's session; later calls say so."""
        self._pid = os.getpid()
        core, self._core = self._core, None
        if core is not None:
            core._abandon()
        self._lock = threading.RLock()
        self._state_thread = None
        self._callback_threads = _dispatch.CallbackThreads()
        self._pool = None
        self._watchers = {}
        self._forked = True


def _stop_all_at_exit():
    for registry in list(_live):
        # A callback stuck for ever must not hang the interpreter's exit.
        registry.stop(timeout=5.0)


def _after_fork_in_child():
    _logging._after_fork()
    KazooServiceRegistry._class_lock = threading.Lock()
    KazooServiceRegistry._instance = None
    KazooServiceRegistry._instances = {}
    for registry in list(_live):
        registry._after_fork()


atexit.register(_stop_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
