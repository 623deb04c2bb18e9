"""The Pythonic API (``import ndsr``) against a real ZooKeeper."""

import asyncio
import logging
import os
import threading
import time

import pytest

import ndsr
from conftest import wait_for


def test_register_read_and_snapshots_are_immutable_copies(zk, base):
    with ndsr.Registry(zk) as r:
        r.set_node(base + "/web/h:1", {"zone": "a", "big": 12345678901234567890123})
        service = r.get(base + "/web")
        assert service.children == ["h:1"]
        assert service.exists and not service.stale
        assert isinstance(service.stat, ndsr.ZnodeStat) and service.stat.numChildren == 1
        member = r.get(base + "/web/h:1")
        assert member.data["zone"] == "a"
        assert member.data["big"] == 12345678901234567890123, "integers beyond 64 bits stay exact"
        assert member.data["pid"] == os.getpid()
        assert member.stat.owner_session_id is not None
        member.data["zone"] = "changed"
        service.children.append("intruder")
        assert r.get(base + "/web/h:1").data["zone"] == "a", "data is a new dict on every read"
        assert r.get(base + "/web").children == ["h:1"], "children are a new list on every read"
        missing = r.get(base + "/nothing")
        assert not missing.exists and missing.stat is None and missing.data is None and missing.children == []


def test_unwatch_lets_go_of_the_paths_cached_children(zk, base, other):
    other.create(base + "/svc/a", b"", makepath=True)
    with ndsr.Registry(zk) as r:
        assert r.get(base + "/svc").children == ["a"]
        assert r._core._children_cached(base + "/svc")
        r.unwatch(base + "/svc")
        assert not r._core._children_cached(base + "/svc"), "kept until close: a leak per path"


def test_discovery_announce_list_and_pick_other_registries_formats(zk, base, other):
    import json

    with ndsr.Registry(zk) as r:
        path = r.announce(base + "/discovery", "curator", "10.0.0.1", 8080, name="web", id="i-1", labels={"zone": "a"})
        assert path == base + "/discovery/web/i-1"
        written = json.loads(other.get(path)[0])
        assert written["serviceType"] == "DYNAMIC" and "pid" not in written, "Curator's bytes, not nd's"
        listing = r.instances(base + "/discovery/web")
        assert listing["format"] == "curator" and listing["bad"] == []
        assert [i["address"] for i in listing["instances"]] == ["10.0.0.1:8080"]
        assert listing["instances"][0]["labels"] == {"zone": "a"}

        member = r.announce(base + "/ss", "serverset", "10.0.0.2", 80, shard=1, endpoints={"admin": ("10.0.0.2", 9990)})
        assert member.startswith(base + "/ss/member_")
        picked = r.pick(base + "/ss", strategy="round-robin")
        assert (picked["shard"], picked["endpoints"]["admin"]) == (1, ("10.0.0.2", 9990))
        with pytest.raises(ndsr.Conflict):
            r.announce(base + "/ss", "nerve", "h", 1, name="x")
        other.create(base + "/empty", b"", makepath=True)
        with pytest.raises(ndsr.NoInstance):
            r.pick(base + "/empty")
        with pytest.raises(ValueError):
            r.pick(base + "/ss", strategy="fastest")


def test_context_manager_closes_and_the_node_vanishes_at_once(zk, base, other):
    with ndsr.Registry(zk) as r:
        r.set_node(base + "/h:1")
        assert other.exists(base + "/h:1")
    assert other.exists(base + "/h:1") is None, "closed on exit, not after the session timeout"
    with pytest.raises(ndsr.Closed):
        r.get(base)


def test_subscribe_iterates_changes_and_ends_on_close(zk, base, other):
    r = ndsr.Registry(zk)
    sub = r.subscribe(base)
    first = next(sub)
    assert not first.exists
    other.create(base + "/a", b"", makepath=True)
    snapshot = wait_for(lambda: (lambda s: s if s and "a" in s.children else None)(sub.next(1.0)), what="child a")
    assert snapshot.children == ["a"]
    r.close()
    assert list(sub) == [] or sub.ended
    assert sub.ended


def test_async_iteration_keeps_the_event_loop_free(zk, base, other):
    async def main():
        with ndsr.Registry(zk) as r:
            sub = r.subscribe(base)
            first = await sub.__anext__()
            assert not first.exists
            ticks = 0

            async def tick_then_change():
                # Runs only if the loop is free while `async for` waits.
                nonlocal ticks
                while ticks < 5:
                    ticks += 1
                    await asyncio.sleep(0.01)
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, lambda: other.create(base, b"{}", makepath=True))

            changer = asyncio.ensure_future(tick_then_change())

            async def until_created():
                async for snapshot in sub:
                    if snapshot.exists:
                        return snapshot

            snapshot = await asyncio.wait_for(until_created(), 20)
            await changer
            assert snapshot.data == {} and ticks == 5

    asyncio.run(main())


def test_async_cancel_releases_the_subscription_and_close_ends_it(zk, base, other):
    async def main():
        loop = asyncio.get_running_loop()
        r = ndsr.Registry(zk)
        sub = r.subscribe(base)
        assert not (await sub.__anext__()).exists
        # A cancelled wait must drop its Rust future; if it lived on, it
        # would keep the subscription and swallow the change below.
        waiter = asyncio.ensure_future(sub.__anext__())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await loop.run_in_executor(None, lambda: other.create(base, b'{"v": 1}', makepath=True))
        snapshot = await asyncio.wait_for(sub.__anext__(), 20)
        assert snapshot.data == {"v": 1}

        pending = asyncio.ensure_future(sub.__anext__())
        await loop.run_in_executor(None, r.close)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, 20)
        assert sub.ended

    asyncio.run(main())


def test_callbacks_run_on_their_own_threads_and_isolate_failures(zk, base, other, caplog):
    caplog.set_level(logging.ERROR, logger="ndsr")
    with ndsr.Registry(zk) as r:
        fast, slow, good = [], [], []
        main = threading.current_thread()
        threads = set()

        def slow_cb(s):
            slow.append(s.children)
            if s.children:
                time.sleep(3)

        def bad_cb(s):
            if s.children:
                raise RuntimeError("boom in a callback")

        def good_cb(s):
            threads.add(threading.current_thread())
            good.append(s.children)

        other.create(base + "/slow", b"", makepath=True)
        other.create(base + "/fast", b"", makepath=True)
        r.add_callback(base + "/slow", slow_cb)
        r.add_callback(base + "/fast", bad_cb)
        r.add_callback(base + "/fast", good_cb)
        r.add_callback(base + "/fast", lambda s: fast.append(s.children))
        assert fast == [[]] and good == [[]], "called at once with the current value"
        other.create(base + "/slow/x", b"")
        wait_for(lambda: len(slow) == 2, what="the slow callback to start sleeping")
        started = time.monotonic()
        other.create(base + "/fast/y", b"")
        wait_for(lambda: len(fast) == 2, what="the fast path's callback")
        assert time.monotonic() - started < 2.5, "a slow callback on another path did not delay this one"
        assert good[-1] == ["y"], "a raising callback did not stop the one after it"
        assert main not in threads - {main} and any(t is not main for t in threads)
        wait_for(lambda: "boom in a callback" in caplog.text, what="the error logged")


def test_a_callback_is_never_called_twice_with_the_same_value(zk, base, other):
    # The original's watcher_integration: 1 child + 4 data changes = 6 calls.
    other.create(base, b"", makepath=True)
    with ndsr.Registry(zk) as r:
        calls = []
        r.add_callback(base, lambda s: calls.append(s))
        other.create(base + "/child", b"")
        wait_for(lambda: len(calls) >= 2, what="the child")
        for i in range(4):
            other.set(base, ("{\"v\": %d}" % i).encode())
            wait_for(lambda: len(calls) >= 3 + i, what="change %d" % i)
        time.sleep(0.3)
        assert len(calls) == 6, [(c.children, c.data) for c in calls]


def test_locks_are_context_managers_and_exclude_each_other(zk, base):
    with ndsr.Registry(zk) as a, ndsr.Registry(zk) as b:
        with a.lock(base + "/lock", timeout=0) as held:
            assert held.held
            with pytest.raises(ndsr.LockTimeout):
                b.lock(base + "/lock", timeout=0).acquire()
        with b.lock(base + "/lock", timeout=0) as held:
            assert held.held
        with a.lock(base + "/two", holders=2, timeout=0), b.lock(base + "/two", holders=2, timeout=0):
            pass


def test_errors_are_typed(zk, base, other):
    with ndsr.Registry(zk) as r:
        with pytest.raises(ndsr.InvalidPath):
            r.set_node("no-slash")
        with pytest.raises(ndsr.InvalidPath):
            r.set_node(base + "/\U0001F600")
        with pytest.raises(TypeError):
            r.set_node(base + "/x", [1, 2])
        with pytest.raises(ValueError):
            r.set_data(base + "/x", {"nan": float("nan")})
        other.create(base + "/eph", b"", ephemeral=True, makepath=True)
        with pytest.raises(ndsr.Conflict):
            r.set_data(base + "/eph", {"a": 1})
        other.create(base + "/tree/leaf", b"", makepath=True)
        with pytest.raises(ndsr.NotEmpty):
            r.unset(base + "/tree")
        assert r.unset_recursive(base + "/tree") == 2
        assert issubclass(ndsr.Conflict, ndsr.NdsrError)
    with ndsr.Registry(zk, readonly=True) as ro:
        with pytest.raises(ndsr.ReadOnly):
            ro.set_node(base + "/x")
    with pytest.raises(ndsr.ChrootMissing):
        ndsr.Registry(zk + base + "/missing-chroot")
    with pytest.raises(ndsr.InvalidArgument):
        ndsr.Registry("h:abc")
    with pytest.raises(ndsr.NoConnection):
        ndsr.Registry("127.0.0.1:1", connect_timeout=0.5)


def test_logs_go_to_python_logging(zk, base, caplog):
    # Under "ndsr", or "nd_service_registry" once the drop-in is imported.
    caplog.set_level(logging.INFO, logger="ndsr")
    caplog.set_level(logging.INFO, logger="nd_service_registry")
    with ndsr.Registry(zk):
        wait_for(lambda: "connected to ZooKeeper" in caplog.text, what="the connection logged")
    assert any(rec.name.startswith(("ndsr.", "nd_service_registry.")) for rec in caplog.records)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_is_told_clearly_and_the_parent_is_untouched(zk, base, other):
    # zookeeper-client's I/O reactor (async-io) does not survive fork(), so a
    # child cannot connect; it must fail at once with a clear error, never
    # hang, and never disturb the parent's session.
    with ndsr.Registry(zk) as r:
        r.set_node(base + "/parent:1")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = b"?"
            try:
                os.close(read)
                try:
                    r.set_node(base + "/child:1")
                    code = b"w"
                except ndsr.NdsrError as e:
                    code = b"1" if "fork" in str(e) else b"m"
                try:
                    ndsr.Registry(zk, connect_timeout=30)
                    code += b"w"
                except ndsr.NdsrError as e:
                    code += b"1" if "fork" in str(e) else b"m"
            finally:
                os.write(write, code)
                os._exit(0)
        os.close(write)
        started = time.monotonic()
        os.waitpid(pid, 0)
        assert os.read(read, 2) == b"11", "both refused, saying why"
        assert time.monotonic() - started < 10, "at once, not after a connect timeout"
        assert other.exists(base + "/parent:1"), "the parent's registration is untouched"
        r.set_node(base + "/parent:2")
        assert other.exists(base + "/parent:2"), "the parent's session still works"
