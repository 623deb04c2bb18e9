"""ndsr: a service registry and dynamic configuration on Apache ZooKeeper.

A Pythonic API on ndsr's Rust core::

    import ndsr

    with ndsr.Registry("127.0.0.1:2181") as registry:
        registry.set_node("/services/web/10.0.0.1:80", {"zone": "a"})
        print(registry.get("/services/web").children)
        for snapshot in registry.subscribe("/services/web"):
            print("now", snapshot.children)

The drop-in for Nextdoor's ``nd_service_registry`` is the package of that
name (also importable as ``ndsr.compat``).
"""

# Imported under private names: ``dir(ndsr)`` shows the API, not its tools.
import atexit as _atexit
import logging as _pylogging
import os as _os
import threading as _threading
import weakref as _weakref

from ndsr import _core, _dispatch, _logging
from ndsr._config import Config, ConfigStatus
from ndsr._election import Election
from ndsr._core import (
    ChrootMissing,
    Closed,
    ConfigUnavailable,
    Conflict,
    Contention,
    DataTooLarge,
    Invalid,
    InvalidArgument,
    InvalidPath,
    LayoutMismatch,
    LockMismatch,
    LockTimeout,
    NdsrError,
    NoConnection,
    NotInHistory,
    OutcomeUnknown,
    NoInstance,
    NotALock,
    NotAuthorized,
    NotEmpty,
    ReadOnly,
    SchemaInvalid,
    VersionConflict,
)
from ndsr._stat import ZnodeStat

__version__ = _core.__version__

__all__ = [
    "Registry",
    "Snapshot",
    "Subscription",
    "Lock",
    "Election",
    "Releases",
    "Config",
    "ConfigStatus",
    "ZnodeStat",
    "NdsrError",
    "NoConnection",
    "OutcomeUnknown",
    "ReadOnly",
    "InvalidPath",
    "InvalidArgument",
    "DataTooLarge",
    "NotAuthorized",
    "Conflict",
    "Contention",
    "LockTimeout",
    "LockMismatch",
    "LayoutMismatch",
    "NotALock",
    "NoInstance",
    "NotEmpty",
    "ChrootMissing",
    "Closed",
    "VersionConflict",
    "Invalid",
    "SchemaInvalid",
    "NotInHistory",
    "ConfigUnavailable",
]

_log = _pylogging.getLogger("ndsr")

_FORKED = (
    "this registry was made before os.fork(): the child has no session, and ZooKeeper's client "
    "cannot connect again in a forked process (its I/O reactor does not survive fork). "
    "Make registries after forking, e.g. in a pre-fork server's worker start hook"
)

# Every live registry, to close at exit and to rebuild in a forked child.
_live = _weakref.WeakSet()


class Snapshot(object):
    """A node at one moment. Immutable; ``data`` is a new dict each time it
    is read, so changing it changes nothing else."""

    __slots__ = ("_core",)

    def __init__(self, core_snapshot):
        self._core = core_snapshot

    @property
    def path(self):
        """The node's path."""
        return self._core.path

    @property
    def data(self):
        """The decoded data (a new dict), or None."""
        return self._core.data

    @property
    def stat(self):
        """The node's :class:`ZnodeStat`, or None when it does not exist."""
        stat = self._core.stat
        return None if stat is None else ZnodeStat(*stat)

    @property
    def children(self):
        """The children's names, sorted (a new list)."""
        return self._core.children

    @property
    def exists(self):
        """Does the node exist?"""
        return self._core.exists

    @property
    def stale(self):
        """True when this is the last known value, the connection being lost."""
        return self._core.stale

    def __eq__(self, other):
        return isinstance(other, Snapshot) and self._core.same_as(other._core)

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return "Snapshot(path=%r, exists=%r, children=%r, data=%r)" % (
            self.path,
            self.exists,
            self.children,
            self.data,
        )


class Subscription(object):
    """The snapshots of one path: the current one first, then one per
    change. Iterate it (``for s in sub``) or, in asyncio, ``async for s in
    sub``; it ends when the path is unwatched or the registry closed."""

    def __init__(self, core_subscription):
        self._core = core_subscription

    def next(self, timeout=None):
        """The next snapshot, or None after ``timeout`` seconds or at the end."""
        snapshot = self._core.next(timeout)
        return None if snapshot is None else Snapshot(snapshot)

    @property
    def ended(self):
        """Has the subscription ended?"""
        return self._core.ended

    def __iter__(self):
        return self

    def __next__(self):
        # Waits with the GIL released; Ctrl-C interrupts it.
        snapshot = self._core.next(None)
        if snapshot is None:
            raise StopIteration
        return Snapshot(snapshot)

    def __aiter__(self):
        return self

    async def __anext__(self):
        # Awaits the Rust subscription on the module's asyncio runtime
        # (pyo3-async-runtimes): no thread is held while waiting, and
        # cancelling the task loses no change.
        snapshot = await self._core.anext()
        if snapshot is None:
            raise StopAsyncIteration
        return Snapshot(snapshot)


class Releases(object):
    """The releases of a configuration path after a version, then each new
    one as it is written (see :meth:`Registry.releases`): history items as
    dicts, as :meth:`Registry.history` gives them. Iterate it; it ends when
    the registry is closed."""

    def __init__(self, core_stream):
        self._core = core_stream

    def next(self, timeout=None):
        """The next item, or None after ``timeout`` seconds or at the end."""
        return self._core.next(timeout)

    @property
    def ended(self):
        """Has it ended (the registry closed)?"""
        return self._core.ended

    def __iter__(self):
        return self

    def __next__(self):
        # Waits with the GIL released; Ctrl-C interrupts it.
        item = self._core.next(None)
        if item is None:
            raise StopIteration
        return item


class Lock(object):
    """A lock held with ``with registry.lock(path):``; by default
    compatible with kazoo's Semaphore (and the original's locks), else in
    the ``layout`` and ``mode`` of :meth:`Registry.lock`."""

    def __init__(self, registry, path, holders, timeout, name, layout="semaphore", mode="exclusive"):
        self._registry = registry
        self._path = path
        self._holders = holders
        self._timeout = timeout
        self._name = name
        self._layout = layout
        self._mode = mode
        self._guard = None

    def acquire(self):
        """Takes the lock, waiting up to the timeout.

        Raises :class:`LockTimeout` when it is not obtained in time. Ctrl-C
        interrupts the wait (``KeyboardInterrupt``) and withdraws the
        request: nothing of it stays in ZooKeeper."""
        self._guard = self._registry._core_registry().lock(
            self._path, self._name, self._holders, self._timeout, self._layout, self._mode
        )
        return self

    def release(self):
        """Releases the lock (again: nothing)."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release()

    @property
    def held(self):
        """Is it held (not released, not lost with the session)?"""
        return self._guard is not None and self._guard.held

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


class Registry(object):
    """One ZooKeeper session: registrations, watches, a cache, locks.

    ``servers`` is ``host:port[,host:port...][/chroot]``. Keyword options:
    ``session_timeout`` and ``connect_timeout`` (seconds), ``readonly``,
    ``lazy`` (connect in the background), ``username``/``password``
    (digest auth), ``cache_file``, ``create_chroot``, ``rate_limit``
    (calls per second of background work), ``callback_threads`` (the
    most threads that run callbacks at once, default 16), ``identity``
    (who this client is to configuration canaries, default the host name)
    and ``labels`` (a dict, matched by a canary by labels).

    Use it as a context manager, or call :meth:`close`. Every call that can
    wait releases the GIL, and Ctrl-C interrupts it (``KeyboardInterrupt``
    within about 0.1 s; an interrupted lock request is withdrawn, an
    interrupted connect closes what it opened). Make registries after ``os.fork()``, not before:
    in a forked child a registry of the parent raises :class:`NdsrError`
    saying so (ZooKeeper's client cannot connect again in a forked
    process), and the parent's session and registrations are untouched.
    """

    def __init__(self, servers, callback_threads=_dispatch.DEFAULT_THREADS, **options):
        self._servers = servers
        self._options = options
        self._lock = _threading.RLock()
        self._nodes = {}  # path -> ("node" | "data", data)
        self._dispatchers = {}
        self._configs = _weakref.WeakSet()
        self._state_callbacks = []
        self._state_stop = _threading.Event()
        self._state_thread = None
        self._callback_threads = _dispatch.CallbackThreads()
        self._pool = _dispatch.CallbackPool(self._callback_threads, callback_threads, _log)
        self._closed = False
        self._forked = False
        _logging.start()
        self._core = _core.Registry(servers, **options)
        _live.add(self)

    def _core_registry(self):
        if getattr(self, "_forked", False):
            raise NdsrError(_FORKED)
        if self._closed:
            raise Closed("the registry is closed")
        return self._core

    # -- writes ---------------------------------------------------------

    def set_node(self, path, data=None):
        """Registers an ephemeral node at ``path`` holding ``data`` (None, a
        str or a dict) and keeps it so while the registry lives: re-created
        if deleted, written back if changed, restored after an expiry."""
        self._core_registry().set_node(path, data)
        with self._lock:
            self._nodes[path] = ("node", data)

    def set_data(self, path, data=None):
        """Writes a persistent node at ``path``, unless it holds ``data``."""
        self._core_registry().set_data(path, data)
        with self._lock:
            self._nodes[path] = ("data", data)

    def unset(self, path):
        """Removes the node at ``path`` (a registration: withdraws it)."""
        self._core_registry().unset(path)
        with self._lock:
            self._nodes.pop(path, None)

    def unset_recursive(self, path):
        """Removes ``path`` and its subtree; returns how many nodes went."""
        return self._core_registry().unset_recursive(path)

    # -- discovery (Curator, ServerSet, nerve, nd formats) ---------------

    def instances(self, path, format=None):
        """The instances of the service directory ``path``, decoded from any
        format (``format``: "curator", "serverset", "nerve" or "nd"; default:
        detected from the children). A dict: ``path``, ``format``,
        ``stale``, ``instances`` (dicts with ``key``, ``id``, ``host``,
        ``port``, ``address``, ``ssl_port``, ``serving``, ``weight``,
        ``shard``, ``labels``, ``endpoints``, ``data``) and ``bad``
        (``(key, reason)`` for children that are not instances). The
        directory and its children stay watched: later calls read memory."""
        return self._core_registry().instances(path, format)

    def pick(self, path, strategy="random", format=None, labels=None, prefer=None, include_draining=False):
        """One instance (a dict, as in :meth:`instances`) of ``path``:
        serving ones only (unless ``include_draining``), whose labels equal
        ``labels`` (a dict), preferring those whose label ``prefer[0]`` is
        ``prefer[1]``; chosen by ``strategy`` ("random", "round-robin",
        "weighted", "sticky", "power-of-two"), whose state (round robin's
        turn, sticky's choice) is kept per path and options. Raises
        :class:`NoInstance` saying why when none is eligible."""
        return self._core_registry().pick(path, strategy, format, labels, prefer, include_draining)

    def announce(self, path, format, host, port, **fields):
        """Registers an instance in another system's format and keeps it
        registered, as :meth:`set_node` does; returns its node's path.
        ``format`` "curator" (``path`` is the base path; ``name`` the
        service, ``id`` the instance, default a UUID; ``ssl_port``;
        ``labels`` as the payload), "serverset" (``path`` is the group;
        ``shard``, ``labels`` as metadata, ``endpoints`` as
        ``{name: (host, port)}``) or "nerve" (``name`` the instance id;
        ``weight``, ``labels``, ``path_encoding``). Registering into a
        directory that holds another format raises :class:`Conflict`."""
        return self._core_registry().announce(path, format, host, port, **fields)

    # -- reads ----------------------------------------------------------

    def get(self, path):
        """The :class:`Snapshot` of ``path``. The first call reads and
        watches; later calls are memory reads."""
        return Snapshot(self._core_registry().get(path))

    def read(self, path):
        """Reads ``path`` once without watching it."""
        return Snapshot(self._core_registry().read(path))

    def subscribe(self, path):
        """A :class:`Subscription` to the snapshots of ``path``."""
        return Subscription(self._core_registry().subscribe(path))

    def add_callback(self, path, callback):
        """Calls ``callback(snapshot)`` now and on every change of ``path``
        (the latest, if its callbacks fall behind; never twice with the same
        snapshot), on one of the registry's callback threads: a path's
        callbacks run one at a time, in order. An exception is logged; the
        other callbacks still run."""
        with self._lock:
            dispatcher = self._dispatcher(path)
        return dispatcher.add(callback, self._core_registry().get(path))

    def remove_callback(self, path, callback):
        """Removes a callback; returns whether it was there."""
        with self._lock:
            dispatcher = self._dispatchers.get(path)
        return dispatcher is not None and dispatcher.remove(callback)

    def unwatch(self, path):
        """Stops watching ``path``: its callbacks and subscriptions end."""
        with self._lock:
            dispatcher = self._dispatchers.pop(path, None)
        if dispatcher is not None:
            self._pool.unwatch(dispatcher)
        self._core_registry().unwatch(path)

    def _dispatcher(self, path):
        dispatcher = self._dispatchers.get(path)
        if dispatcher is None:
            dispatcher = self._pool.watch(self._core_registry(), path, Snapshot)
            self._dispatchers[path] = dispatcher
        return dispatcher

    # -- configuration releases (docs/CONFIG.md) -------------------------

    def publish(self, path, value, message="", if_version=None):
        """Publishes ``value`` as the new release of the configuration node
        ``path``, recorded in its history in the same transaction. ``bytes``
        and ``str`` are JSON text, written exactly; anything else (a dict,
        list, number...) is written as compact JSON. Checked against the
        path's schema first (:class:`Invalid`, nothing written).
        ``if_version`` makes it conditional on the live version (-1: only if
        the node does not exist): :class:`VersionConflict` (``.current``)
        otherwise. Returns a dict: ``path``, ``version``,
        ``previous_version``, ``entry``, ``sha256``."""
        return self._core_registry().publish(path, value, message, if_version)

    def start_canary(self, path, value, hosts=None, labels=None, percent=None, message="", if_version=None):
        """Starts (or replaces) a canary of ``path``: ``value`` (as
        :meth:`publish` takes it) is applied by the ndsr clients that the
        rule picks (:meth:`config` in Rust or Python, by the ``identity``
        and ``labels`` given to :class:`Registry`; the identity defaults to
        the host name), while the live node keeps the stable value for every
        other reader. Give exactly one of ``hosts`` (identities),
        ``labels`` (a dict every one of which must match) and ``percent``
        (0-100, sticky per identity). Checked against the schema first.
        Raises :class:`NdsrError` when ``path`` has no ndsr release yet.
        Returns the canary as a dict (``rule``, ``base_version``,
        ``revision``, ``sha256``, ``value``, ...)."""
        return self._core_registry().start_canary(
            path, value, hosts=hosts, labels=labels, percent=percent, message=message, if_version=if_version
        )

    def canary(self, path):
        """The canary of ``path`` as a dict, or None."""
        return self._core_registry().canary(path)

    def promote_canary(self, path, message=""):
        """Makes the canary of ``path`` its next release in one transaction
        (recorded as ``promote``); every client then runs it. Raises
        :class:`VersionConflict` when the live value changed since the
        canary began (nothing written). Returns the release."""
        return self._core_registry().promote_canary(path, message)

    def abort_canary(self, path):
        """Removes the canary of ``path``; its clients go back to the live
        value. Returns whether there was one."""
        return self._core_registry().abort_canary(path)

    def canary_status(self, path):
        """The canary of ``path`` (or None), the live version, and what each
        ndsr client following it reports: ``on_stable``, ``on_canary``,
        ``refused_canary`` (counts) and ``clients`` (a dict each:
        ``identity``, ``labels``, ``host``, ``pid``, ``applied``,
        ``refused``, ``since``)."""
        return self._core_registry().canary_status(path)

    def rollback(self, path, to_version, message="", if_version=None):
        """Publishes the exact bytes of release ``to_version`` again, as a
        new release saying so; returns it as :meth:`publish` does. Raises
        :class:`NotInHistory` (``.available``) for a version not held."""
        return self._core_registry().rollback(path, to_version, message, if_version)

    def history(self, path):
        """The history of ``path``, oldest first: a dict per item, ``kind``
        "release" (``version``, ``previous_version``, ``op``, ``author``,
        ``host``, ``time``, ``message``, ``sha256``, ``live``,
        ``rollback_of``, ``schema_version``, ``name``, ``bytes``: the exact
        bytes, ``value``: decoded, or None when not JSON), "gap"
        (``from``, ``to``, ``reason``: versions written outside ndsr),
        "recreated" or "tampered"; each with ``text``, its line said
        plainly."""
        return self._core_registry().history(path)

    def diff(self, path, a=None, b=None):
        """The changes from release ``a`` to release ``b`` of ``path`` (None:
        the live value), key by key: dicts with ``pointer``, ``kind``
        (added, removed, changed), ``old``, ``new`` and ``text``."""
        return self._core_registry().diff(path, a, b)

    def schema(self, path):
        """The JSON Schema of ``path`` (a dict: ``schema``, ``version``), or None."""
        return self._core_registry().schema(path)

    def set_schema(self, path, schema, force=False):
        """Sets the JSON Schema (draft 2020-12) of ``path``: a dict, or JSON
        text. Raises :class:`SchemaInvalid` for an unusable schema and
        :class:`Invalid` when the live value does not fit (unless ``force``;
        then its violations are returned in ``forced_over``). Returns a
        dict: ``version`` (the schema's), ``forced_over``."""
        return self._core_registry().set_schema(path, schema, force)

    def remove_schema(self, path):
        """Removes the JSON Schema of ``path``; returns as :meth:`set_schema`."""
        return self._core_registry().remove_schema(path)

    def validate_config(self, path, value):
        """Checks ``value`` (as :meth:`publish` takes it) against the schema
        of ``path`` without writing: raises :class:`Invalid` or
        :class:`InvalidArgument` (not JSON) as a publish would."""
        self._core_registry().validate_config(path, value)

    def releases(self, path, since=None):
        """The :class:`Releases` of ``path`` after version ``since`` (all for
        None), then live: none skipped, in order, with versions written
        outside ndsr as gaps."""
        return Releases(self._core_registry().releases(path, since))

    def config(self, path, validate=None, default=None, model=None):
        """The configuration node ``path`` as a :class:`Config`: its last
        good value. A value is good when it is JSON, fits the path's schema,
        passes ``model`` (a class with ``model_validate``, e.g. a pydantic
        model: :meth:`Config.get` is then its instance) and ``validate`` (a
        callable given the value or the instance; raising or returning
        False refuses it). A refused value never replaces the last good one
        and no callback sees it. ``default`` (JSON-like, itself checked)
        serves while there is no good value; without one,
        :class:`ConfigUnavailable` is raised when there is none."""
        # With Python-side checks, the core saves nothing to the cache file
        # itself: Config saves only what those checks accept.
        checked = validate is not None or model is not None
        core = self._core_registry().config(path, default, saves=not checked)
        config = Config(
            core,
            validate=validate,
            model=model,
            default=default,
            has_default=default is not None,
            logger=_log,
            pool=self._pool,
        )
        self._configs.add(config)
        return config

    # -- state ----------------------------------------------------------

    @property
    def state(self):
        """``connecting``, ``connected``, ``disconnected``, ``expired`` or ``closed``."""
        return "closed" if self._closed or self._core is None else self._core.state()

    def on_state(self, callback):
        """Calls ``callback(state)`` now and on every state change."""
        callback(self.state)
        with self._lock:
            self._state_callbacks.append(callback)
            if self._state_thread is None:
                self._state_thread = _dispatch.state_thread(self._core, self._deliver_state, self._state_stop, _log)
                self._callback_threads.add(self._state_thread)

    def _deliver_state(self, state):
        with self._lock:
            callbacks = list(self._state_callbacks)
        for callback in callbacks:
            try:
                callback(state)
            except Exception:
                _log.exception("state callback %r raised", callback)

    # -- locks ----------------------------------------------------------

    def lock(self, path, holders=1, timeout=300.0, name="", layout="semaphore", mode="exclusive"):
        """A :class:`Lock` at ``path``, waiting up to ``timeout`` seconds:
        ``with registry.lock(p): ...``.

        ``layout`` is whose locks it shares the path with: ``"semaphore"``
        (kazoo's Semaphore and the original's locks; ``holders`` at once),
        ``"kazoo"`` (kazoo's Lock, ReadLock, WriteLock) or ``"curator"``
        (Curator's InterProcessMutex and InterProcessReadWriteLock).
        ``mode`` is ``"exclusive"``, or with kazoo and curator ``"read"``
        (shared with other readers) or ``"write"``. A path holding another
        layout's nodes raises :class:`LayoutMismatch`."""
        return Lock(self, path, holders, timeout, name, layout, mode)

    # -- elections ------------------------------------------------------

    def election(self, path, identifier=None, layout="kazoo", grace=0.0, lost_after=None):
        """An :class:`Election` at ``path`` as ``identifier`` (default
        ``host:pid``) in ``layout`` (``"kazoo"``, ``"curator-latch"``,
        ``"curator-selector"``): ``election.run(func)`` as kazoo's, or
        ``with registry.election(path) as e:`` and :attr:`Election.state`.
        ``grace`` seconds of a lost connection are ridden out (never past
        the silence deadline); ``lost_after`` is the part of the session
        timeout of silence after which a leader steps down (default 2/3)."""
        if identifier is None:
            import socket as _socket

            identifier = "%s:%d" % (_socket.gethostname(), _os.getpid())
        return Election(self, path, identifier, layout, grace, lost_after)

    def election_status(self, path):
        """The contenders of ``path`` in any layout: a dict with ``layouts``,
        ``leader`` (None when there is none or the layouts are mixed) and
        ``contenders`` (dicts: ``node``, ``id``, ``sequence``, ``layout``)."""
        return self._core_registry().election_status(path)

    # -- lifecycle ------------------------------------------------------

    def zk_requests(self):
        """ZooKeeper requests made so far."""
        return self._core.zk_requests()

    def close(self, timeout=None):
        """Ends the session, then waits for the callbacks still running.

        At once: registrations vanish, subscriptions end, and no callback
        of :meth:`add_callback` starts any more (an :meth:`on_state`
        callback may still be told ``"closed"``, once). Then
        it waits up to ``timeout`` seconds (None: as long as it takes) for
        the callbacks already running on the registry's threads to return.
        Returns True when none is running any more, False when some still
        were after ``timeout`` (they finish on their own; none starts
        again).

        Called from inside a callback, it does not wait for that callback
        (it is the caller), nor for another callback that is itself in
        ``close()``. Safe to call twice: the second call waits as the
        first. Ctrl-C interrupts the wait; the session still closes."""
        with self._lock:
            first = not self._closed
            self._closed = True
            dispatchers = list(self._dispatchers.values())
            self._dispatchers.clear()
        self._state_stop.set()
        self._pool.close()
        for dispatcher in dispatchers:
            dispatcher.stop()
        for config in list(self._configs):
            config.stop()
        if first and self._core is not None:
            self._core.close()
        return self._callback_threads.wait(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _after_fork(self):
        """In a forked child: the parent's session is not the child's, and
        ZooKeeper's client cannot connect again in this process (its I/O
        reactor does not survive fork), so the registry is set aside without
        touching it and every later call says so."""
        core, self._core = self._core, None
        if core is not None and not self._closed:
            core._abandon()
        self._closed = True
        self._forked = True
        self._lock = _threading.RLock()
        self._dispatchers = {}
        self._callback_threads = _dispatch.CallbackThreads()
        self._pool = _dispatch.CallbackPool(self._callback_threads, 1, _log)


def _close_all_at_exit():
    for registry in list(_live):
        try:
            # A callback stuck for ever must not hang the interpreter's exit.
            registry.close(timeout=5.0)
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _set_aside_after_fork():
    _logging._after_fork()
    for registry in list(_live):
        registry._after_fork()


_atexit.register(_close_all_at_exit)
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_set_aside_after_fork)
