"""Callbacks on a small pool of threads (issue 23 item 4): many paths with
callbacks cost a few threads, a blocked callback delays no other path's
(while fewer block than the pool has threads), a path's callbacks run one
at a time and in order, and idle workers end.

Thread counts are the process's (``Threads:`` in /proc/self/status:
``threading.active_count()`` does not see the runtime's native threads)."""

import json
import threading
import time

import pytest

import ndsr
from ndsr import _dispatch

from conftest import wait_for

WAIT = 30.0
PATHS = 1000
# The default pool (16 threads) and a few more the runtime may start.
MOST_THREADS = 16 + 4


def os_threads():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line in /proc/self/status")


def create_all(other, paths, data=b'{"n": 0}'):
    for pending in [other.create_async(p, data) for p in paths]:
        pending.get(timeout=WAIT)


def set_all(other, paths, data):
    for pending in [other.set_async(p, data) for p in paths]:
        pending.get(timeout=WAIT)


def n_of(snapshot):
    return (snapshot.data or {}).get("n")


def test_a_thousand_paths_with_callbacks_take_a_few_threads_and_every_change_is_delivered(zk, base, other):
    paths = ["%s/p%04d" % (base, i) for i in range(PATHS)]
    other.ensure_path(base)
    create_all(other, paths)
    seen = {}
    lock = threading.Lock()

    def callback(snapshot):
        with lock:
            seen[snapshot.path] = n_of(snapshot)

    with ndsr.Registry(zk) as r:
        r.get(base)
        before = os_threads()
        peak = before
        for i, path in enumerate(paths):
            r.add_callback(path, callback)
            if i % 50 == 0:
                peak = max(peak, os_threads())
        assert len(seen) == PATHS and set(seen.values()) == {0}, "each was called at once with the value then"
        set_all(other, paths, b'{"n": 1}')

        def all_changed():
            nonlocal peak
            peak = max(peak, os_threads())
            with lock:
                return sum(1 for n in seen.values() if n == 1) == PATHS

        wait_for(all_changed, timeout=WAIT, what="every path's callback to see its change")
        added = peak - before
        assert added <= MOST_THREADS, "%d paths with callbacks took %d more threads (at most %d expected)" % (
            PATHS,
            added,
            MOST_THREADS,
        )
        assert _dispatch.DEFAULT_THREADS + 4 <= MOST_THREADS
        live, _idle, followed = r._pool.counts()
        assert followed == PATHS and 1 <= live <= _dispatch.DEFAULT_THREADS
        # Idle workers end; one stays for the paths it serves.
        wait_for(lambda: r._pool.counts()[0] == 1, timeout=_dispatch.IDLE * 4, what="idle workers to end")


def test_blocked_callbacks_delay_no_other_paths_callbacks(zk, base, other):
    slow = ["%s/slow%d" % (base, i) for i in range(3)]
    fast = base + "/fast"
    other.ensure_path(base)
    create_all(other, slow + [fast])
    started = {p: threading.Event() for p in slow}
    release = threading.Event()
    last_slow = {}
    fast_seen = []

    def blocking(snapshot):
        last_slow[snapshot.path] = n_of(snapshot)
        if n_of(snapshot) == 1:
            started[snapshot.path].set()
            release.wait(WAIT)

    # Three of the four threads block at once; the fourth serves the rest.
    r = ndsr.Registry(zk, callback_threads=4)
    try:
        for path in slow:
            r.add_callback(path, blocking)
        r.add_callback(fast, lambda s: fast_seen.append(n_of(s)))
        set_all(other, slow, b'{"n": 1}')
        for path in slow:
            assert started[path].wait(WAIT), "every blocking callback is running at once"
        for n in range(1, 11):
            other.set(fast, json.dumps({"n": n}).encode())
            # Shorter than the blocked callbacks' own wait (WAIT): they are still blocked.
            wait_for(lambda: fast_seen[-1] == n, timeout=WAIT / 3, what="the fast path's callback to see n=%d" % n)
        # Changes of a blocked path wait for its callback, then the latest comes.
        set_all(other, slow, b'{"n": 2}')
        set_all(other, slow, b'{"n": 3}')
        wait_for(lambda: all(n_of(r.get(p)) == 3 for p in slow), timeout=WAIT, what="the registry to see n=3")
        # The free thread serves a change that came after: the blocked paths'
        # changes were not handed to it.
        other.set(fast, b'{"n": 11}')
        wait_for(lambda: fast_seen[-1] == 11, timeout=WAIT / 3, what="the fast path's callback to see n=11")
        assert all(last_slow[p] == 1 for p in slow), "a path's callback ran again while it was still running"
        release.set()
        wait_for(lambda: all(last_slow.get(p) == 3 for p in slow), timeout=WAIT, what="the latest value after release")
    finally:
        release.set()
        assert r.close(WAIT) is True


def test_a_paths_callbacks_run_one_at_a_time_in_order(zk, base, other):
    # Fewer paths than threads: a path's next change always finds a free
    # thread, which must leave it until the path's running callback returns.
    paths = ["%s/o%d" % (base, i) for i in range(3)]
    other.ensure_path(base)
    create_all(other, paths)
    lock = threading.Lock()
    inside = {p: 0 for p in paths}
    overlap = []
    seen = {p: [] for p in paths}

    def make(tag):
        def callback(snapshot):
            path = snapshot.path
            with lock:
                inside[path] += 1
                if inside[path] > 1:
                    overlap.append(path)
            try:
                seen[path].append((tag, n_of(snapshot)))
                time.sleep(0.02)  # takes a moment (and lets go of the GIL), as real callbacks do
            finally:
                with lock:
                    inside[path] -= 1

        return callback

    with ndsr.Registry(zk, callback_threads=4) as r:
        for path in paths:
            r.add_callback(path, make("a"))
            r.add_callback(path, make("b"))
        for n in range(1, 41):
            set_all(other, paths, json.dumps({"n": n}).encode())
        wait_for(
            lambda: all(seen[p][-2:] == [("a", 40), ("b", 40)] for p in paths),
            timeout=WAIT,
            what="every path's callbacks to see the last value",
        )
    assert not overlap, "callbacks of one path ran at the same time: %s" % overlap[:5]
    for path in paths:
        a = [n for tag, n in seen[path] if tag == "a"]
        b = [n for tag, n in seen[path] if tag == "b"]
        assert a == sorted(set(a)) and a[0] == 0, "%s: values out of order or repeated: %s" % (path, a)
        assert b == a, "each callback of a path sees the same values"
        # "a" then "b" for each value: the path's callbacks in the order added.
        assert [tag for tag, _ in seen[path]] == ["a", "b"] * len(a)


def test_callback_threads_must_be_a_positive_int(zk):
    for bad in (0, -1, 1.5, "4", True):
        with pytest.raises(ValueError):
            ndsr.Registry(zk, callback_threads=bad, lazy=True)


def test_unwatched_and_closed_paths_are_let_go(zk, base, other):
    other.ensure_path(base)
    create_all(other, [base + "/x", base + "/y"])
    r = ndsr.Registry(zk)
    calls = []
    r.add_callback(base + "/x", calls.append)
    r.add_callback(base + "/y", calls.append)
    assert r._pool.counts()[2] == 2
    r.unwatch(base + "/x")
    assert r._pool.counts()[2] == 1
    assert r.close(WAIT) is True
    live, idle, followed = r._pool.counts()
    assert (live, followed) == (0, 0), "no worker and no path stays after close()"


def test_a_registry_dropped_without_close_lets_its_workers_go(zk, base, other):
    # Its runtime is shut down without running the tasks that follow its
    # paths to their end: each path's slot must still end, or the last
    # worker would stay for it for ever, holding the callbacks (review).
    import gc

    other.ensure_path(base)
    create_all(other, [base + "/x"])
    r = ndsr.Registry(zk)
    seen = threading.Event()
    r.add_callback(base + "/x", lambda snapshot: seen.set())
    other.set(base + "/x", b'{"n": 1}')
    assert seen.wait(WAIT)
    pool = r._pool
    assert pool.counts()[2] == 1
    del r
    gc.collect()
    wait_for(lambda: pool.counts()[2] == 0, timeout=WAIT, what="the dropped registry's path let go")
    wait_for(lambda: pool.counts()[0] == 0, timeout=_dispatch.IDLE * 4, what="its last worker to end")
