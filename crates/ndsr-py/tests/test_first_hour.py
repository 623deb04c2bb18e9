"""What a Python developer meets in the first hour (issue 28): errors that
say how to fix them in Python, not in Rust or on the command line; a
module namespace that shows the API and nothing else; the stat's fields
under the agent's JSON names too. Against a real ZooKeeper."""

import re

import pytest

import ndsr

# Spellings of the Rust library and the command line, never right in Python.
RUST_SPELLINGS = re.compile(r"::|\(true\)|\(false\)|ndsr unset|--[a-z]|max_data_size|Registry::")


def test_a_missing_chroot_says_how_python_creates_it(zk, base):
    with pytest.raises(ndsr.ChrootMissing) as raised:
        ndsr.Registry(zk + base + "/missing-chroot")
    message = str(raised.value)
    assert "create_chroot=True" in message, message
    assert not RUST_SPELLINGS.search(message), message
    # And that is how it is done.
    with ndsr.Registry(zk + base + "/made", create_chroot=True) as r:
        r.set_node("/web/h:1")
        assert r.get("/web").children == ["h:1"]


def test_a_node_with_children_says_how_python_removes_them(zk, base, other):
    other.create(base + "/tree/leaf", b"", makepath=True)
    with ndsr.Registry(zk) as r:
        with pytest.raises(ndsr.NotEmpty) as raised:
            r.unset(base + "/tree")
        message = str(raised.value)
        assert "registry.unset_recursive(%r)" % (base + "/tree") in message, message
        assert not RUST_SPELLINGS.search(message), message
        assert r.unset_recursive(base + "/tree") == 2


def test_data_too_large_names_no_option_python_lacks(zk, base):
    with ndsr.Registry(zk) as r:
        with pytest.raises(ndsr.DataTooLarge) as raised:
            r.set_data(base + "/big", {"blob": "x" * (2 << 20)})
        message = str(raised.value)
        assert "jute.maxbuffer" in message, message
        assert not RUST_SPELLINGS.search(message), message


def test_dir_shows_the_api_and_no_stray_imports():
    public = {name for name in dir(ndsr) if not name.startswith("_")}
    # Submodules appear once imported (ndsr.compat, by the drop-in's tests).
    submodules = {"compat"}
    assert public - submodules == set(ndsr.__all__), sorted(public ^ set(ndsr.__all__))
    for stray in ("atexit", "logging", "os", "threading", "weakref", "socket", "log"):
        assert stray not in public, stray
    assert all(hasattr(ndsr, name) for name in ndsr.__all__)


def test_stat_fields_answer_to_the_agents_json_names_too(zk, base):
    with ndsr.Registry(zk) as r:
        r.set_node(base + "/web/h:1", {"zone": "a"})
        service = r.get(base + "/web").stat
        member = r.get(base + "/web/h:1").stat
    assert (service.num_children, service.ephemeral_owner) == (service.numChildren, 0) == (1, 0)
    assert member.ephemeral_owner == member.ephemeralOwner != 0
    assert member.data_length == member.dataLength > 0
    # The agent's "stat" object, field for field.
    agent_names = (
        "czxid mzxid ctime mtime version cversion aversion ephemeral_owner data_length num_children pzxid"
    )
    for name in agent_names.split():
        assert getattr(member, name) is not None, name


def test_the_drop_in_names_no_method_it_does_not_have(zk, base, other):
    from nd_service_registry import KazooServiceRegistry, exceptions

    other.create(base + "/tree/leaf", b"", makepath=True)
    nd = KazooServiceRegistry(server=zk, rate_limit_calls=0, rate_limit_time=0)
    try:
        with pytest.raises(exceptions.NotEmpty) as raised:
            nd.unset(base + "/tree")
        message = str(raised.value)
        assert message == "%s/tree has children; remove its children first" % base, message
    finally:
        nd.stop()
        nd._initialized = False
