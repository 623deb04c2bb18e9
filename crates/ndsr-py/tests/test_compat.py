"""The drop-in (``nd_service_registry`` on ndsr): the defects of the
original listed in python-api.md section e that it fixes, each with a test,
and interop with the original in a process of its own."""

import json
import logging
import subprocess
import textwrap
import threading
import time
from unittest import mock

import pytest

import nd_service_registry
from nd_service_registry import KazooServiceRegistry, exceptions
from conftest import wait_for


@pytest.fixture
def nd(zk):
    registry = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0)
    try:
        yield registry
    finally:
        registry.stop()
        registry._initialized = False


def test_it_is_the_drop_in_and_mock_patch_works():
    import ndsr.compat

    assert ndsr.compat.KazooServiceRegistry is KazooServiceRegistry
    assert nd_service_registry.__version__ == "1.1.0", "e.25: exported"
    with mock.patch("nd_service_registry.KazooServiceRegistry") as patched:
        assert nd_service_registry.KazooServiceRegistry is patched
    with pytest.raises(TypeError):
        KazooServiceRegistry("localhost:2181")  # keyword arguments only, as the original


def test_e1_same_arguments_share_a_registry_other_arguments_get_their_own(zk, caplog):
    a = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0)
    try:
        assert KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0) is a
        with caplog.at_level(logging.WARNING, logger="nd_service_registry"):
            ro = KazooServiceRegistry(server=zk, readonly=True, rate_limit_calls=0, rate_limit_time=0)
        assert ro is not a and "other arguments" in caplog.text
        with pytest.raises(exceptions.ReadOnly):
            ro.set_node("/x")
        ro.stop()
        a._initialized = False
        again = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0)
        assert again is a and a.get_state(), "re-initialised on the same object"
    finally:
        a.stop()
        a._initialized = False


def test_e2_e3_writes_report_failure_with_typed_exceptions(nd, other):
    base = "/compat-e2"
    other.create(base + "/eph", b"", ephemeral=True, makepath=True)
    with pytest.raises(exceptions.ServiceRegistryException):
        nd.set_node(base + "/eph/child")  # under an ephemeral parent
    other.create(base + "/tree/leaf", b"", makepath=True)
    with pytest.raises(exceptions.NotEmpty):
        nd.unset(base + "/tree")
    with pytest.raises(exceptions.Conflict):
        nd.set_data(base + "/eph", {"a": 1})
    with pytest.raises(exceptions.InvalidPath):
        nd.set_node("no-slash")
    with pytest.raises(TypeError):
        nd.set_node(base + "/x", [1, 2])
    assert issubclass(exceptions.NotEmpty, exceptions.ServiceRegistryException)


def test_e4_e5_a_raising_callback_neither_orphans_nor_skips_the_others(nd, other, caplog):
    path = "/compat-e5"
    other.create(path, b"", makepath=True)

    def raises_at_once(snapshot):
        raise RuntimeError("first call")

    with pytest.raises(RuntimeError):
        nd.add_callback(path, raises_at_once)
    calls = {"g1": 0, "b1": 0, "g2": 0}

    def g1(s):
        calls["g1"] += 1

    def b1(s):
        calls["b1"] += 1
        if s["children"]:
            raise RuntimeError("later call")

    def g2(s):
        calls["g2"] += 1

    for cb in (g1, b1, g2):
        nd.add_callback(path, cb)
    nd.add_callback(path, g1)  # the same callback again: neither added nor called
    assert calls == {"g1": 1, "b1": 1, "g2": 1}
    other.create(path + "/c")
    wait_for(lambda: calls["g2"] == 2, what="g2 runs after b1 raised")
    assert calls == {"g1": 2, "b1": 2, "g2": 2}
    time.sleep(0.2)
    assert calls["g1"] == 2, "the callback that raised at once was not kept"


def test_e6_a_slow_callback_does_not_delay_other_paths(nd, other):
    other.create("/compat-e6/slow", b"", makepath=True)
    other.create("/compat-e6/fast", b"", makepath=True)
    fast = []

    def slow(s):
        if s["children"]:
            time.sleep(3)

    nd.add_callback("/compat-e6/slow", slow)
    nd.add_callback("/compat-e6/fast", lambda s: fast.append(time.monotonic()))
    other.create("/compat-e6/slow/x")
    time.sleep(0.2)
    started = time.monotonic()
    other.create("/compat-e6/fast/y")
    wait_for(lambda: len(fast) == 2, what="the fast path")
    assert fast[1] - started < 2, "not held up by the slow path's callback"


def test_e7_state_callbacks_run_off_the_connection_and_one_raising_spares_the_rest(nd):
    seen = []
    threads = []

    def bad(state):
        raise RuntimeError("bad state callback")

    def good(state):
        threads.append(threading.current_thread().name)
        seen.append(state)

    nd.get_state(good)
    with pytest.raises(RuntimeError):
        nd.get_state(bad)  # its first call raises in the caller's thread
    nd.stop()
    wait_for(lambda: seen[-1] is False, what="False delivered")
    assert seen[0] is True


def test_e8_a_node_deleted_and_created_again_keeps_its_children_watch(nd, other):
    path = "/compat-e8"
    other.create(path, b"", makepath=True)
    nd.get(path)
    other.delete(path)
    wait_for(lambda: nd.get(path)["stat"] is None, what="deleted")
    other.create(path + "/child", b"", makepath=True)
    wait_for(lambda: nd.get(path)["children"] == ["child"], what="the children of the re-created node")


def test_e9_snapshots_are_fresh_copies(nd, other):
    path = "/compat-e9"
    other.create(path + "/a", b'{"k": 1}', makepath=True)
    first = nd.get(path)
    first["children"].append("intruder")
    assert nd.get(path)["children"] == ["a"]
    data = nd.get(path + "/a")["data"]
    data["k"] = 2
    assert nd.get(path + "/a")["data"] == {"k": 1}
    assert list(first) == ["stat", "path", "data", "children"], "the original's key order"
    assert type(first["stat"]).__name__ == "ZnodeStat" and first["stat"].children_count == 1


def test_e12_e13_e14_locks(zk, nd, other):
    path = "/compat-lock"
    semaphore = other.Semaphore(path, "other", max_leases=1)
    assert semaphore.acquire(blocking=False)
    threading.Timer(0.3, semaphore.release).start()
    assert nd.acquire_lock(path, wait=10) is True, "e.12: a lock freed during the wait is taken"
    assert nd.release_lock(path) is True
    lock = nd.get_lock(path, simultaneous=1, wait=0)
    assert nd.get_lock(path, simultaneous=2, wait=0)._simultaneous == 2, "e.13: new arguments are used"
    assert lock is not None
    ro = KazooServiceRegistry(server=zk, readonly=True, rate_limit_calls=0, rate_limit_time=1)
    try:
        with pytest.raises(exceptions.ReadOnly):
            ro.get_lock(path)  # e.14
    finally:
        ro.stop()


def test_e15_e16_type_is_honoured_and_empty_data_is_written(nd, other):
    path = "/compat-e15/h:1"
    nd.unset(path)
    nd.set_node(path, {"a": 1})
    assert other.exists(path).ephemeralOwner != 0, "e.15: set_node after unset is ephemeral"
    nd.set_node(path, {})
    assert set(json.loads(other.get(path)[0].decode())) == {"pid", "created"}, "e.16: {} replaces the data"


def test_e17_read_only_is_reported_as_read_only_even_while_disconnected(zk):
    ro = KazooServiceRegistry(server="127.0.0.1:1", readonly=True, lazy=True, timeout=1)
    try:
        with pytest.raises(exceptions.ReadOnly):
            ro.set_node("/x")
    finally:
        ro.stop()
        ro._initialized = False


def test_stop_and_start_restore_registrations_and_the_cache_file_never_clobbers_the_original(zk, other, tmp_path):
    cache = tmp_path / "serviceregistry.cache"
    cache.write_bytes(b"an original's pickle")
    nd = KazooServiceRegistry(server=zk, cachefile=str(cache), rate_limit_calls=0, rate_limit_time=0)
    try:
        nd.set_node("/compat-restart/h:1", {"a": 1})
        nd.get("/compat-restart")
        nd.stop()
        assert other.exists("/compat-restart/h:1") is None, "stop closes the session at once"
        nd.start()
        wait_for(lambda: other.exists("/compat-restart/h:1"), what="restored by start()")
        time.sleep(0.5)
        assert cache.read_bytes() == b"an original's pickle", "the original's cache file is left alone"
    finally:
        nd.stop()
        nd._initialized = False


def test_logging_goes_to_the_nd_service_registry_logger(nd, caplog):
    caplog.set_level(logging.INFO, logger="nd_service_registry")
    nd.stop()
    nd.start()
    wait_for(lambda: any(r.name.startswith("nd_service_registry") and "connected" in r.getMessage() for r in caplog.records), what="a log record")


ORIGINAL_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from nd_service_registry import KazooServiceRegistry
    nd = KazooServiceRegistry(server=sys.argv[1], rate_limit_calls=0, rate_limit_time=0)
    nd.set_node('/interop/py/original:1', {'who': 'original'})
    print(json.dumps(sorted(nd.get('/interop/py')['children'])), flush=True)
    lock = nd.get_lock('/interop/pylock', name='original', wait=0)
    print(json.dumps(lock.acquire()), flush=True)
    sys.stdin.readline()
    print(json.dumps(nd.get('/interop/py/dropin:1')['data']), flush=True)
    lock.release()
    nd.stop()
    """
)


def test_interop_with_the_original_in_another_process(zk, nd, original_python):
    nd.set_node("/interop/py/dropin:1", {"who": "drop-in"})
    proc = subprocess.Popen(
        [original_python, "-c", ORIGINAL_SCRIPT, zk],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        children = json.loads(proc.stdout.readline())
        assert "dropin:1" in children, "the original reads the drop-in's registration"
        assert json.loads(proc.stdout.readline()) is True, "the original took the lock"
        wait_for(lambda: nd.get("/interop/py/original:1")["data"] is not None, what="the original's node")
        theirs = nd.get("/interop/py/original:1")["data"]
        assert theirs["who"] == "original" and "pid" in theirs and "created" in theirs
        assert nd.acquire_lock("/interop/pylock", wait=0) is False, "their lock excludes us"
        proc.stdin.write("\n")
        proc.stdin.flush()
        ours = json.loads(proc.stdout.readline())
        assert ours == nd.get("/interop/py/dropin:1")["data"], "both read the same dict"
        assert proc.wait(30) == 0
        assert nd.acquire_lock("/interop/pylock", wait=5) is True, "free once they released it"
        nd.release_lock("/interop/pylock")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_acl_sets_the_acl_of_created_nodes(zk, other):
    from kazoo.security import make_acl

    acl = [make_acl("ip", "127.0.0.1", all=True), make_acl("world", "anyone", read=True)]
    nd = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0, acl=acl)
    path = "/compat-acl-%d/%s" % (time.time_ns(), "host:80")
    try:
        nd.set_node(path, {})
        nd.set_data(path + "-config", {"a": 1})
        for node in (path, path + "-config"):
            acls, _ = other.get_acls(node)
            assert sorted((a.id.scheme, a.id.id, a.perms) for a in acls) == [
                ("ip", "127.0.0.1", 31),
                ("world", "anyone", 1),
            ]
    finally:
        nd.stop()
        nd._initialized = False
    with pytest.raises(ValueError):
        KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0, acl=[make_acl("world", "anyone")])
