"""Callbacks of one path, run on a thread owned by Python.

Each watched path with callbacks has one thread, so a callback that blocks
delays only its own path. The thread waits on the Rust subscription with
the GIL released, and takes the GIL only to run callbacks. Each callback
remembers the last snapshot it was given and is never given the same one
twice; one that raises is logged and the others still run.

A registry's ``close()`` waits for these threads (:class:`CallbackThreads`):
once it returns, no callback of the registry is running.
"""

import threading
import time

_POLL = 0.25


class _Entry(object):
    __slots__ = ("callback", "last")

    def __init__(self, callback, last):
        self.callback = callback
        self.last = last


class PathDispatcher(object):
    """Delivers the snapshots of one path to its callbacks."""

    def __init__(self, core, path, convert, logger):
        self._path = path
        self._convert = convert
        self._log = logger
        self._sub = core.subscribe(path)
        self._entries = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ndsr-callbacks %s" % path, daemon=True)
        self._thread.start()

    def callbacks(self):
        """The callbacks, in the order they were added."""
        with self._lock:
            return [e.callback for e in self._entries]

    def add(self, callback, snapshot):
        """Adds `callback` and calls it now with `snapshot` (in the
        caller's thread). A callback already there is neither added nor
        called again. If this first call raises, the callback is not added
        and the exception propagates."""
        with self._lock:
            if any(e.callback == callback for e in self._entries):
                return False
        callback(self._convert(snapshot))
        with self._lock:
            if not any(e.callback == callback for e in self._entries):
                self._entries.append(_Entry(callback, snapshot))
        return True

    def remove(self, callback):
        """Removes `callback`; returns whether it was there."""
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.callback != callback]
            return len(self._entries) != before

    @property
    def thread(self):
        """The thread the callbacks run on."""
        return self._thread

    def stop(self):
        """Stops the thread: no callback starts after this, and the thread
        ends once the one running (if any) returns."""
        self._stopped.set()

    def join(self, timeout=None):
        """Waits for the thread to end."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self):
        while not self._stopped.is_set():
            snapshot = self._sub.next(_POLL)
            if snapshot is None:
                if self._sub.ended:
                    return
                continue
            with self._lock:
                entries = list(self._entries)
            for entry in entries:
                if self._stopped.is_set():
                    return
                if entry.last is not None and entry.last.same_as(snapshot):
                    continue
                entry.last = snapshot
                try:
                    entry.callback(self._convert(snapshot))
                except Exception:
                    self._log.exception("callback %r for %s raised; the other callbacks still run", entry.callback, self._path)


def state_thread(core, deliver, stopped, logger):
    """Starts a thread that calls `deliver(state_name)` on every connection
    state change until `stopped` is set."""

    def run():
        seen = core.state()
        while not stopped.is_set():
            now = core.next_state(seen, _POLL)
            if now == seen:
                continue
            seen = now
            try:
                deliver(now)
            except Exception:
                logger.exception("state callback raised")
            if now == "closed":
                return

    thread = threading.Thread(target=run, name="ndsr-state", daemon=True)
    thread.start()
    return thread


class CallbackThreads(object):
    """The threads a registry runs callbacks on, for ``close()`` to wait for."""

    def __init__(self):
        self._lock = threading.Lock()
        self._threads = []
        self._waiting = set()

    def add(self, thread):
        """Counts `thread` as one of the registry's callback threads."""
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def wait(self, timeout=None):
        """Waits up to `timeout` seconds (None: as long as it takes) for the
        callback threads to end, and returns whether they all have.

        A callback thread calling it does not wait for itself, nor for
        another callback thread that was already waiting here: two
        callbacks closing the registry at once do not wait for each other.
        """
        me = threading.current_thread()
        with self._lock:
            inside = me in self._threads
            others = [t for t in self._threads if t is not me and not (inside and t in self._waiting)]
            self._waiting.add(me)
        try:
            deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
            for thread in others:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not any(t.is_alive() for t in others)
        finally:
            with self._lock:
                self._waiting.discard(me)


__all__ = ["PathDispatcher", "CallbackThreads", "state_thread"]
