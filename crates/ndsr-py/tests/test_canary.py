"""Canary releases (issue 25) from Python against a real ZooKeeper: a
canary by labels reaches the matching typed readers only, each reports
what it runs, promote converges everyone, and plain readers (kazoo) see
the stable value throughout."""

import pytest

import ndsr
from conftest import wait_for


def test_a_canary_by_labels_reaches_the_matching_reader_and_promote_converges(zk, base, other):
    path = base + "/web"
    with ndsr.Registry(zk) as admin, ndsr.Registry(zk, identity="py-a", labels={"zone": "a"}) as a, ndsr.Registry(
        zk, identity="py-b", labels={"zone": "b"}
    ) as b:
        admin.publish(path, {"pool": 1}, message="stable")
        in_a, in_b = a.config(path), b.config(path)
        assert in_a.applied == {"kind": "stable", "version": 0}

        canary = admin.start_canary(path, {"pool": 2}, labels={"zone": "a"}, message="try two")
        assert (canary["base_version"], canary["rule"], canary["value"]) == (0, {"labels": {"zone": "a"}}, {"pool": 2})
        wait_for(lambda: in_a.get() == {"pool": 2}, what="zone a applies the canary")
        assert in_a.applied["kind"] == "canary" and in_a.applied["base_version"] == 0
        assert in_b.get() == {"pool": 1}
        assert other.get(path)[0] == b'{"pool":1}', "the live node keeps the stable value"
        wait_for(lambda: admin.canary_status(path)["on_canary"] == 1, what="the canary reader reports")
        status = admin.canary_status(path)
        assert (status["on_stable"], status["stable_version"]) == (1, 0)
        assert sorted(c["identity"] for c in status["clients"]) == ["py-a", "py-b"]

        release = admin.promote_canary(path)
        assert release["version"] == 1
        wait_for(lambda: in_b.get() == {"pool": 2}, what="zone b runs the promoted value")
        assert admin.history(path)[-1]["op"] == "promote"
        assert admin.canary(path) is None


def test_bad_canaries_raise_and_write_nothing(zk, base, other):
    path = base + "/web"
    with ndsr.Registry(zk) as r:
        with pytest.raises(ndsr.NdsrError, match="no ndsr release yet"):
            r.start_canary(path, {"pool": 2}, hosts=["h"])
        r.publish(path, {"pool": 1})
        with pytest.raises(ValueError, match="exactly one"):
            r.start_canary(path, {"pool": 2}, hosts=["h"], percent=5)
        with pytest.raises(ndsr.InvalidArgument, match="between 0 and 100"):
            r.start_canary(path, {"pool": 2}, percent=150)
        assert r.canary(path) is None
        r.start_canary(path, {"pool": 2}, percent=10)
        r.publish(path, {"pool": 3}, message="meanwhile")
        with pytest.raises(ndsr.VersionConflict) as e:
            r.promote_canary(path)
        assert (e.value.expected, e.value.current) == (0, 1)
        assert other.get(path)[0] == b'{"pool":3}'
        assert r.abort_canary(path) is True
        assert r.abort_canary(path) is False
    with pytest.raises(ndsr.InvalidArgument):
        ndsr.Registry(zk, identity="a/b")


def test_a_canary_that_validate_refuses_is_reported_and_not_applied(zk, base):
    path = base + "/web"
    with ndsr.Registry(zk) as admin, ndsr.Registry(zk, identity="py-strict") as strict:
        admin.publish(path, {"pool": 4})
        config = strict.config(path, validate=lambda v: v["pool"] < 10)
        admin.start_canary(path, {"pool": 50}, hosts=["py-strict"])

        def refused():
            config.get()  # judging happens as the program reads
            return admin.canary_status(path)["refused_canary"] == 1

        wait_for(refused, what="the refusal is reported")
        wait_for(lambda: config.applied == {"kind": "stable", "version": 0}, what="back on the live value")
        assert config.get() == {"pool": 4}
        client = admin.canary_status(path)["clients"][0]
        assert client["refused"]["canary"] is True
        assert client["refused"]["reasons"] == ["validate returned False"]
