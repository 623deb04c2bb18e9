"""The original's own tests (sr_, watcher_, registration_, lock_integration
and funcs_tests), ported to the public API with a kazoo client as "the
other process". The same file runs against the Python original (in .venv)
and against the drop-in (in .venv-ndsr), with the same results, except
where the original's behaviour is a listed defect (python-api.md section
e): there the drop-in's fixed behaviour is asserted and the original's is
documented beside it.
"""

import importlib.util
import json
import re
import threading
import time
import uuid

import pytest

import nd_service_registry
from nd_service_registry import KazooServiceRegistry, exceptions, funcs

from conftest import wait_for

# The drop-in ships the `ndsr` package beside `nd_service_registry`.
IS_NDSR = importlib.util.find_spec("ndsr") is not None


@pytest.fixture
def nd(zk):
    registry = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0)
    try:
        yield registry
    finally:
        registry.stop()
        registry._initialized = False


@pytest.fixture
def path():
    return "/original_suite/%s" % uuid.uuid4().hex[:12]


# -- funcs_tests.py ---------------------------------------------------------


def test_encode_adds_extra_properties():
    encoded = funcs.encode({"foo": "bar"})
    assert isinstance(encoded, bytes)
    assert b'"pid":' in encoded and b'"created":"' in encoded


def test_encode_creates_dict_from_single_string():
    assert b'"string_value":"String"' in funcs.encode("String")


def test_decode_converts_json_to_dict():
    decoded = funcs.decode('{"pid": 1, "string_value": "s", "created": "now"}')
    assert decoded == {"pid": 1, "string_value": "s", "created": "now"}


def test_decode_returns_none_on_empty_input():
    assert funcs.decode("") is None


def test_decode_returns_dict_when_on_non_json_string_input():
    assert funcs.decode("foo") == {"string_value": "foo"}


def test_decode_returns_string_value_dict_on_malformed_json_string_input():
    assert funcs.decode('{"foo":"bar}') == {"string_value": '{"foo":"bar}'}


def test_default_data_produces_expected_dict():
    import os

    data = funcs.default_data()
    assert data["pid"] == os.getpid()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", data["created"])


# -- sr_integration.py ------------------------------------------------------


def test_get_state(nd):
    nd.start()
    assert wait_for(lambda: nd.get_state() is True, what="connected")
    nd.stop()
    assert nd.get_state() is False


def test_get_state_with_callback(nd):
    seen = []
    nd.get_state(seen.append)
    wait_for(lambda: True in seen, what="True delivered")
    nd.stop()
    wait_for(lambda: seen[-1] is False, what="False delivered")


def test_unset_node(nd, path, other):
    nd.set_node(path)
    assert other.exists(path)
    nd.unset(path)
    assert other.exists(path) is None


def test_unset_data(nd, path, other):
    nd.set_data(path)
    assert other.exists(path)
    nd.unset(path)
    assert other.exists(path) is None


def test_unset_data_with_missing_reg_object(nd, path, other):
    other.create(path, makepath=True)
    nd.unset(path)
    assert other.exists(path) is None


def test_unset_data_on_absent_path(nd, path, other):
    nd.unset(path)
    assert other.exists(path) is None


def test_set_node_with_acl(zk, path, other):
    nd = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0, username="user", password="pass")
    try:
        nd.set_node(path, {})
        acls, _ = other.get_acls(path)
        schemes = sorted((acl.id.scheme, acl.perms) for acl in acls)
        assert schemes == [("digest", 31), ("world", 1)], "the user may do all, anyone may read"
    finally:
        nd.stop()
        nd._initialized = False


# -- watcher_integration.py -------------------------------------------------


def test_watch_on_existing_path(nd, path, other):
    other.create(path, makepath=True)
    snapshot = nd.get(path)
    assert snapshot["data"] is None and snapshot["stat"] is not None and snapshot["children"] == []
    other.create(path + "/child")
    wait_for(lambda: nd.get(path)["children"] == ["child"], what="the child")


def test_watch_on_nonexistent_path_with_data_change(nd, path, other):
    snapshot = nd.get(path)
    assert (snapshot["data"], snapshot["stat"], snapshot["children"]) == (None, None, [])
    other.create(path, b"{'foo': 'bar'}", makepath=True)
    wait_for(lambda: nd.get(path)["data"] == {"string_value": "{'foo': 'bar'}"}, what="the data")


def test_watch_on_nonexistent_path_with_children_change(nd, path, other):
    nd.get(path)
    other.create(path + "/child", makepath=True)
    wait_for(lambda: nd.get(path)["children"] == ["child"], what="the child")


def test_watch_on_nonexistent_path_with_multiple_data_changes(nd, path, other):
    calls = []
    nd.get(path, callback=calls.append)
    assert len(calls) == 1
    other.create(path + "/child", makepath=True)
    wait_for(lambda: nd.get(path)["children"] == ["child"], what="the child")
    for i in range(4):
        other.set(path, ("v%d" % i).encode())
        wait_for(lambda: nd.get(path)["data"] == {"string_value": "v%d" % i}, what="change %d" % i)
    wait_for(lambda: len(calls) >= 6, what="six calls")
    time.sleep(0.3)
    # Creating the parent with the child may show as one change or two.
    assert len(calls) in (6, 7)
    assert calls[-1]["data"] == {"string_value": "v3"}


def test_deleting_node_watcher_is_watching(nd, path, other):
    other.create(path, makepath=True)
    nd.get(path)
    other.delete(path)
    wait_for(lambda: nd.get(path) == {"path": path, "stat": None, "data": None, "children": []}, what="deleted")


# -- registration_integration.py ------------------------------------------


def test_ephemeral_greedy_ownership_of_data_and_state(nd, path, other):
    nd.set_node(path, {"unittest": "data"})
    data, stat = other.get(path)
    assert b'"unittest":"data"' in data and stat.ephemeralOwner
    other.set(path, b"bogus")
    wait_for(lambda: other.get(path)[0] == data, what="the data written back")
    other.delete(path)
    wait_for(lambda: other.exists(path), what="the node re-created")
    # After unset, a node someone creates again is deleted.
    nd.set_node(path, state=False)
    wait_for(lambda: other.exists(path) is None, what="withdrawn")
    other.create(path, b"rogue")
    wait_for(lambda: other.exists(path) is None, what="the rogue node deleted")


def test_data_node_deleted_by_another_then_set_again(nd, path, other):
    nd.set_data(path, {"foo": "bar"})
    assert other.exists(path).ephemeralOwner == 0
    other.delete(path)
    wait_for(lambda: nd.get(path)["stat"] is None, what="the deletion seen")
    nd.set_data(path, {"foo": "bar"}, state=True)
    if IS_NDSR:
        assert other.exists(path), "created again before set_data returns"
    else:
        # The original re-creates it through its watch, a moment later; or,
        # in about one run in three here, never: its registration's own
        # watcher has not yet marked the node deleted when set_data runs,
        # so set_data thinks there is nothing to do (a race between its two
        # watchers, kin to defect e.11).
        try:
            wait_for(lambda: other.exists(path), timeout=5, what="created again")
        except AssertionError:
            pytest.xfail("the original lost the race between its watchers and never re-created the node")


def test_data_node_adopts_remote_data_and_writes_only_on_change(nd, path, other):
    for _ in range(10):
        nd.set_data(path, "foo")
    if IS_NDSR:
        assert other.exists(path).version == 0, "the same value ten times writes once"
    else:
        # The original's DataNode creates, then always sets once (version 1).
        assert other.exists(path).version == 1
    other.set(path, b"foobar")
    wait_for(lambda: nd.get(path)["data"] == {"string_value": "foobar"}, what="adopted")
    version = other.exists(path).version
    nd.set_data(path, "foo")
    assert other.exists(path).version == version + 1, "a remote change, then the old value: written again"


# -- lock_integration.py ----------------------------------------------------


def test_lock_with_returns_the_acquired_bool(nd, path):
    with nd.get_lock(path, name="one", wait=1) as held:
        assert held is True


def test_a_second_holder_is_refused(nd, path, other):
    semaphore = other.Semaphore(path, "other", max_leases=1)
    assert semaphore.acquire(blocking=False)
    try:
        started = time.monotonic()
        with nd.get_lock(path, wait=1) as held:
            assert held is False
        assert time.monotonic() - started >= 0.9, "it waited"
        assert nd.acquire_lock(path, wait=0) is False
    finally:
        semaphore.release()


def test_a_lock_freed_during_the_wait(nd, path, other):
    semaphore = other.Semaphore(path, "other", max_leases=1)
    assert semaphore.acquire(blocking=False)
    threading.Timer(0.5, semaphore.release).start()
    got = nd.acquire_lock(path, wait=5)
    if IS_NDSR:
        assert got is True, "the drop-in takes a lock freed during the wait"
        assert nd.release_lock(path) is True
    else:
        assert got is False, "defect e.12: the original never takes a lock freed during the wait"


def test_exceptions_keep_value(nd):
    e = exceptions.NoConnection("down")
    assert e.value == "down" and isinstance(e, exceptions.ServiceRegistryException)
    if IS_NDSR:
        assert str(exceptions.ServiceRegistryException(42)) == "42", "str() never raises"
    else:
        with pytest.raises(TypeError):
            str(exceptions.ServiceRegistryException(42))


def test_module_names_the_original_exports():
    for name in ("KazooServiceRegistry", "exceptions", "funcs", "LOCK_WAIT", "SERVER", "TIMEOUT"):
        assert hasattr(nd_service_registry, name), name
    from nd_service_registry.exceptions import NoConnection, ReadOnly, ServiceRegistryException  # noqa: F401
    assert json.loads(funcs.encode(None).decode())["pid"]
