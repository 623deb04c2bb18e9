"""Leader election (see :meth:`ndsr.Registry.election`): kazoo's shape
(``run``, ``contenders``, ``cancel``) on the layouts kazoo and Curator
clients use, with leadership as a state and a fencing token."""

import threading

#: How often a waiting ``run`` looks whether it was cancelled.
_TICK = 0.2


class Election(object):
    """A contender in the election at ``path``, as ``identifier``.

    As kazoo's ``Election``: ``run(func)`` waits to lead, calls ``func``
    while leading, then leaves the election; ``contenders()`` lists the
    identifiers in order (the first leads); ``cancel()`` ends a waiting
    ``run``. Beyond kazoo: :attr:`state`, :attr:`token` (pass it to what the
    leader writes, so a deposed leader's late writes can be refused),
    :attr:`is_leader` (check it in a long ``func``: leadership is dropped
    the moment the connection is lost), :meth:`wait`, iteration over the
    states, and ``with registry.election(...) as e:`` to join without
    ``run``.

    ``layout`` is ``"kazoo"`` (kazoo's Election and Lock), ``"curator-latch"``
    (Curator's LeaderLatch) or ``"curator-selector"`` (Curator's
    LeaderSelector); a path holding another layout's contenders raises
    :class:`ndsr.LayoutMismatch`.
    """

    def __init__(self, registry, path, identifier, layout="kazoo", grace=0.0, lost_after=None):
        self._registry = registry
        self.path = path
        self.identifier = identifier
        self.layout = layout
        self._grace = grace
        self._lost_after = lost_after
        self._core = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        # One run() at a time: a second would call func beside the first.
        self._running = threading.Lock()

    def join(self):
        """Joins the election (``run`` and ``with`` do it); returns self."""
        with self._lock:
            if self._core is None:
                self._core = self._registry._core_registry().join_election(
                    self.path, self.identifier, self.layout, self._grace, self._lost_after
                )
        return self

    def run(self, func, *args, **kwargs):
        """Waits to lead, calls ``func(*args, **kwargs)`` while leading,
        then leaves the election and returns what ``func`` returned. Returns
        None without calling it when :meth:`cancel` was called (before or
        during the wait). As kazoo's, ``func`` is not interrupted when
        leadership is lost: check :attr:`is_leader` in a long one, or use
        :meth:`wait`. Raises RuntimeError when another thread is in
        ``run`` of this election."""
        if not self._running.acquire(False):
            raise RuntimeError("run() of this election is already running in another thread")
        try:
            if self._cancelled.is_set():
                return None
            self.join()
            while True:
                core = self._core
                if self._cancelled.is_set() or core is None:
                    return None
                if core.wait_leader(_TICK) is not None:
                    break
                if core.state()[0] == "ended":
                    return None
            return func(*args, **kwargs)
        finally:
            self.resign()
            self._running.release()

    def cancel(self):
        """Ends a waiting :meth:`run` (which then leaves the election), or
        makes the next ``run`` return at once. A ``func`` already running is
        not interrupted, and the election is left only when it returns: a
        leader never resigns while its work still runs (as kazoo's)."""
        self._cancelled.set()
        if not self._running.locked():
            self.resign()

    def resign(self):
        """Leaves the election: returns once its node is deleted."""
        with self._lock:
            core, self._core = self._core, None
        if core is not None:
            core.resign()

    def contenders(self):
        """The identifiers of the contenders, in order: the first leads."""
        return [c["id"] for c in self.contender_nodes()]

    def contender_nodes(self):
        """The contenders as dicts (``node``, ``id``, ``sequence``,
        ``layout``), in order."""
        core = self._core
        if core is None:
            status = self._registry.election_status(self.path)
            return [c for c in status["contenders"] if c["layout"] == self.layout]
        return core.contenders()

    @property
    def state(self):
        """``"joining"``, ``"leader"``, ``"follower"``, ``"lost"`` or
        ``"ended"`` (``"ended"`` too before joining)."""
        core = self._core
        return "ended" if core is None else core.state()[0]

    @property
    def token(self):
        """The fencing token while leading (the node's czxid: it grows from
        one leader to the next), else None."""
        core = self._core
        return None if core is None else core.state()[1]

    @property
    def position(self):
        """How many contenders are ahead while following, else None."""
        core = self._core
        return None if core is None else core.state()[2]

    @property
    def is_leader(self):
        """Does this contender lead now?"""
        return self.state == "leader"

    def wait(self, timeout=None):
        """Waits up to ``timeout`` seconds (None: as long as it takes) for
        the state to change; returns the state then."""
        core = self._core
        if core is None:
            return "ended"
        return core.wait_change(core.state(), timeout)[0]

    def __iter__(self):
        """The states as they change, the current one first, until
        ``"ended"``."""
        core = self._core
        if core is None:
            return
        seen = core.state()
        yield seen[0]
        while seen[0] != "ended":
            seen = core.wait_change(seen, None)
            yield seen[0]

    def __enter__(self):
        return self.join()

    def __exit__(self, *exc):
        self.resign()
        return False

    def __repr__(self):
        return "<ndsr.Election %s as %r (%s): %s>" % (self.path, self.identifier, self.layout, self.state)
