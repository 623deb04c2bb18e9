"""Callbacks, run on a small pool of threads owned by Python.

A registry's :class:`CallbackPool` follows every path with callbacks
through one ``_core.CallbackHub``, which waits on the paths' Rust
subscriptions without a thread per path and hands each change to one of at
most ``size`` worker threads (``callback_threads``, default
:data:`DEFAULT_THREADS`). A path's callbacks run one at a time, in order;
a path that falls behind is given its latest snapshot. A callback that
blocks holds one worker; the others serve the other paths. Workers start
when needed and end after :data:`IDLE` seconds without work, except the
last while any path is followed. A worker waits with the GIL released.

Each callback remembers the last snapshot it was given and is never given
the same one twice; one that raises is logged and the others still run.

A registry's ``close()`` waits for the workers (:class:`CallbackThreads`):
once it returns, no callback of the registry is running.
"""

import threading
import time

from ndsr import _core

_POLL = 0.25

#: Worker threads per registry unless ``callback_threads`` says otherwise.
DEFAULT_THREADS = 16

#: Seconds a worker waits for work before it ends (the last one stays).
IDLE = 5.0


class _Entry(object):
    __slots__ = ("callback", "last")

    def __init__(self, callback, last):
        self.callback = callback
        self.last = last


def threads_option(value):
    """``callback_threads`` checked: an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("callback_threads must be an int >= 1, not %r" % (value,))
    return value


class PathDispatcher(object):
    """Delivers the snapshots of one path to its callbacks (on the pool's
    workers, one snapshot at a time)."""

    def __init__(self, path, convert, logger):
        self._path = path
        self._convert = convert
        self._log = logger
        self._entries = []
        self._lock = threading.Lock()
        self._stopped = False
        self.key = None

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
        self.keep(callback, snapshot)
        return True

    def keep(self, callback, snapshot):
        """Adds `callback` as given `snapshot` already, without calling it."""
        with self._lock:
            if not any(e.callback == callback for e in self._entries):
                self._entries.append(_Entry(callback, snapshot))

    def remove(self, callback):
        """Removes `callback`; returns whether it was there."""
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.callback != callback]
            return len(self._entries) != before

    def stop(self):
        """No callback of this path starts after this."""
        self._stopped = True

    def _deliver(self, snapshot):
        """Runs the callbacks on `snapshot` (called by a worker)."""
        with self._lock:
            entries = list(self._entries)
        for entry in entries:
            if self._stopped:
                return
            if entry.last is not None and entry.last.same_as(snapshot):
                continue
            entry.last = snapshot
            try:
                entry.callback(self._convert(snapshot))
            except Exception:
                self._log.exception("callback %r for %s raised; the other callbacks still run", entry.callback, self._path)


class CallbackPool(object):
    """The worker threads of one session's callbacks. Workers are counted
    in `threads` (a :class:`CallbackThreads`) for ``close()`` to wait for."""

    def __init__(self, threads, size, logger, idle=IDLE):
        self._hub = _core.CallbackHub(threads_option(size), idle)
        self._threads = threads
        self._log = logger

    def watch(self, core, path, convert):
        """A :class:`PathDispatcher` of `path` fed by the pool."""
        dispatcher = PathDispatcher(path, convert, self._log)
        self._follow(dispatcher, self._hub.watch(core.subscribe(path), dispatcher))
        return dispatcher

    def watch_config(self, config_core, config):
        """Feeds `config` (an ``ndsr.Config``, whose ``_deliver`` reads the
        latest value) from the good values of its `config_core`."""
        self._follow(config, self._hub.watch_config(config_core, config))

    def _follow(self, target, watched):
        target.key, start = watched
        if start:
            try:
                self._start_worker()
            except BaseException:
                self._hub.remove(target.key)
                raise

    def unwatch(self, dispatcher):
        """Stops `dispatcher`: none of its callbacks starts after this."""
        dispatcher.stop()
        self._hub.remove(dispatcher.key)

    def close(self):
        """No callback starts after this; idle workers end now, the others
        when their callback returns."""
        self._hub.close()

    def counts(self):
        """(For tests.) Workers alive, idle, and paths followed."""
        return self._hub._counts()

    def _start_worker(self):
        thread = threading.Thread(target=self._work, name="ndsr-callbacks", daemon=True)
        self._threads.add(thread)
        try:
            thread.start()
        except BaseException:
            self._threads.discard(thread)
            self._hub.started(False)
            raise

    def _work(self):
        hub = self._hub
        hub.started(True)
        key = None
        counted = True
        try:
            while True:
                done, key = key, None
                job = hub.take(done)
                if job is None:
                    counted = False  # the hub no longer counts this worker
                    return
                key, dispatcher, snapshot, start = job
                if start:
                    try:
                        self._start_worker()
                    except Exception:
                        self._log.exception("cannot start another callback thread; the running ones go on")
                try:
                    dispatcher._deliver(snapshot)
                except BaseException:
                    self._log.exception("callbacks for %s stopped", dispatcher._path)
        finally:
            if counted:
                hub.leave(key)


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
        """Counts `thread` as one of the registry's callback threads (before
        it is started, so that none runs uncounted)."""
        with self._lock:
            # Ended ones go; ones added but not started yet (ident None) stay.
            self._threads = [t for t in self._threads if t.ident is None or t.is_alive()]
            self._threads.append(thread)

    def discard(self, thread):
        """Forgets `thread` (it could not be started)."""
        with self._lock:
            self._threads = [t for t in self._threads if t is not thread]

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
            # A thread not started yet (ident None) cannot be joined; it
            # finds the registry closed when it asks for a job.
            others = [t for t in others if t.ident is not None]
            for thread in others:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            return not any(t.is_alive() for t in others)
        finally:
            with self._lock:
                self._waiting.discard(me)


__all__ = ["CallbackPool", "PathDispatcher", "CallbackThreads", "state_thread"]
