"""Configuration releases (issue 24) from Python against a real ZooKeeper:
publish, history, rollback, schemas, the releases stream and typed
configuration with Python-side checks."""

import hashlib
import json
import subprocess
import textwrap
import threading

import pytest

import ndsr
from conftest import wait_for


def test_publish_history_rollback_round_trip_keeps_the_exact_bytes(zk, base, other):
    path = base + "/web"
    first = b'{ "pool": 4,  "host": "db1" }'  # spacing kept as written
    with ndsr.Registry(zk) as r:
        one = r.publish(path, first, message="first")
        assert (one["path"], one["version"], one["previous_version"]) == (path, 0, None)
        assert one["sha256"] == hashlib.sha256(first).hexdigest()
        assert one["entry"].startswith("r-")
        two = r.publish(path, {"pool": 8, "host": "db1"}, message="more")
        assert (two["version"], two["previous_version"]) == (1, 0)
        assert other.get(path)[0] == b'{"pool":8,"host":"db1"}', "a dict is written as compact JSON"
        r.publish(path, "[1, 2]", message="text is JSON text")
        assert other.get(path)[0] == b"[1, 2]"

        history = r.history(path)
        assert [(h["kind"], h["version"], h["message"]) for h in history] == [
            ("release", 0, "first"),
            ("release", 1, "more"),
            ("release", 2, "text is JSON text"),
        ]
        assert history[0]["bytes"] == first and history[0]["value"] == {"pool": 4, "host": "db1"}
        assert [h["live"] for h in history] == [False, False, True]
        assert history[2]["text"].startswith("version 2 (live): publish by ")

        back = r.rollback(path, 0, message="back to the first")
        assert (back["version"], back["previous_version"]) == (3, 2)
        assert other.get(path)[0] == first, "a rollback writes the exact bytes back"
        last = r.history(path)[-1]
        assert (last["op"], last["rollback_of"], last["bytes"]) == ("rollback", 0, first)

        changes = r.diff(path, 1, None)
        assert [(c["pointer"], c["kind"], c["old"], c["new"]) for c in changes] == [("/pool", "changed", 8, 4)]
        assert changes[0]["text"] == "~ /pool: 8 -> 4"

        with pytest.raises(ndsr.NotInHistory) as e:
            r.rollback(path, 7)
        assert e.value.available == [0, 1, 2, 3] and e.value.version == 7

        with pytest.raises(ndsr.InvalidArgument):
            r.publish(path, b"not json")
        assert other.get(path)[0] == first, "nothing written"


def test_an_outside_write_is_a_gap_said_plainly(zk, base, other):
    path = base + "/gap"
    with ndsr.Registry(zk) as r:
        r.publish(path, {"a": 1})
        other.set(path, b'{"a": 2}')
        r.publish(path, {"a": 3})
        kinds = [(h["kind"], h.get("from"), h.get("reason")) for h in r.history(path)]
        assert kinds == [("release", None, None), ("gap", 1, "external"), ("release", None, None)]
        gap = r.history(path)[1]
        assert gap["text"] == "version 1 of %s was written outside ndsr; its value was not recorded" % path


def test_a_conditional_publish_against_another_version_raises_version_conflict(zk, base, other):
    path = base + "/cas"
    with ndsr.Registry(zk) as r:
        assert r.publish(path, {"n": 1}, if_version=-1)["version"] == 0
        other.set(path, b'{"n": 2}')  # another writer: version 1
        with pytest.raises(ndsr.VersionConflict) as e:
            r.publish(path, {"n": 3}, if_version=0)
        assert (e.value.current, e.value.expected, e.value.path) == (1, 0, path)
        assert isinstance(e.value, ndsr.NdsrError)
        assert other.get(path)[0] == b'{"n": 2}', "nothing written"
        with pytest.raises(ndsr.VersionConflict) as e:
            r.publish(base + "/cas-missing", {"n": 1}, if_version=0)
        assert e.value.current is None
        assert r.publish(path, {"n": 3}, if_version=1)["version"] == 2


def test_a_value_outside_the_schema_raises_invalid_listing_pointers_and_writes_nothing(zk, base, other):
    path = base + "/schema"
    schema = {
        "type": "object",
        "properties": {"pool": {"type": "integer", "minimum": 1}, "host": {"type": "string"}},
        "required": ["pool", "host"],
    }
    with ndsr.Registry(zk) as r:
        r.publish(path, {"pool": 2, "host": "db1"})
        assert r.schema(path) is None
        first = r.set_schema(path, schema)
        assert first["forced_over"] == []
        assert r.schema(path) == {"schema": schema, "version": first["version"]}
        entries = r.history(path)
        with pytest.raises(ndsr.Invalid) as e:
            r.publish(path, {"pool": 0, "host": 7})
        assert isinstance(e.value, ndsr.InvalidArgument)
        assert sorted(p for p, _ in e.value.violations) == ["/host", "/pool"]
        assert all(message for _, message in e.value.violations)
        with pytest.raises(ndsr.Invalid):
            r.validate_config(path, {"pool": 0, "host": "x"})
        assert json.loads(other.get(path)[0]) == {"pool": 2, "host": "db1"}, "nothing written"
        assert r.history(path) == entries, "nothing recorded"
        with pytest.raises(ndsr.SchemaInvalid):
            r.set_schema(path, {"type": "no such type"})
        with pytest.raises(ndsr.Invalid):
            r.set_schema(path, {"type": "array"})
        forced = r.set_schema(path, {"type": "array"}, force=True)
        assert forced["version"] == first["version"] + 1 and forced["forced_over"][0][0] == ""
        assert r.remove_schema(path)["version"] == first["version"] + 2
        assert r.schema(path) is None
        r.publish(path, {"pool": 0, "host": 7})


def test_releases_since_yields_each_published_version_in_order(zk, base):
    path = base + "/stream"
    with ndsr.Registry(zk) as r:
        for n in range(3):
            r.publish(path, {"n": n}, message="m%d" % n)
        stream = r.releases(path, since=0)
        assert [(i["kind"], i["version"], i["value"]) for i in (next(stream), next(stream))] == [
            ("release", 1, {"n": 1}),
            ("release", 2, {"n": 2}),
        ]
        assert stream.next(timeout=0.2) is None, "nothing more yet"

        def publish_more():
            with ndsr.Registry(zk) as writer:
                for n in range(3, 6):
                    writer.publish(path, {"n": n})

        writer = threading.Thread(target=publish_more)
        writer.start()
        seen = [next(stream)["version"] for _ in range(3)]
        writer.join()
        assert seen == [3, 4, 5], "every release, in order, none skipped"
        ended = []
        reader = threading.Thread(target=lambda: ended.append(list(stream)))
        reader.start()
    reader.join(20)
    assert ended == [[]] and stream.ended, "the iteration ends when the registry closes"


def test_garbage_and_wrong_typed_values_never_reach_a_callback_and_get_keeps_the_last_good(zk, base, other):
    path = base + "/typed"
    with ndsr.Registry(zk) as r:
        r.set_schema(path, {"type": "object", "required": ["pool"]})
        r.publish(path, {"pool": 4})
        seen = []
        checked = []

        def positive(value):
            checked.append(value)
            return value["pool"] > 0

        config = r.config(path, validate=positive)
        assert config.get() == {"pool": 4} and config.version == 0
        assert config.status == ndsr.ConfigStatus("valid", 0, ())
        threads = []

        def record(value):
            threads.append(threading.current_thread().name)
            seen.append(value)

        assert config.add_callback(record) and not config.add_callback(record)
        assert seen == [{"pool": 4}]

        config.get()["pool"] = 99
        assert config.get() == {"pool": 4}, "get() is a new dict each time"

        # Around ndsr, as any other client can: garbage, outside the schema,
        # refused by validate, then a good one.
        bad = [
            (b"garbage", "not JSON"),
            (b"[1]", "schema"),
            (b'{"pool": 0}', "validate returned False"),
        ]
        for n, (data, why) in enumerate(bad, start=1):
            other.set(path, data)
            status = wait_for(lambda: config.status.version == n and config.status, what="version %d refused" % n)
            assert status.kind == "rejected", status
            assert any(why in reason for reason in status.reasons), status
            assert config.get() == {"pool": 4} and config.version == 0
            assert config.rejected == n
        other.set(path, b'{"pool": 5}')
        wait_for(lambda: seen[-1] == {"pool": 5}, what="the good value delivered")
        assert seen == [{"pool": 4}, {"pool": 5}], "callbacks only ever see good values"
        assert threads == [threading.current_thread().name, "ndsr-callbacks"], "then on the callback pool"
        assert config.get() == {"pool": 5} and config.status == ndsr.ConfigStatus("valid", 4, ())
        assert {"pool": 0} in checked, "validate saw the value the schema let through"

        other.delete(path)
        wait_for(lambda: config.status.kind == "missing", what="missing")
        assert config.get() == {"pool": 5}, "the last good value outlives the node"


def test_a_python_refusal_of_the_first_value_falls_back_to_the_default_or_raises(zk, base, other):
    path = base + "/first"
    other.create(path, b'{"pool": -1}', makepath=True)
    with ndsr.Registry(zk) as r:

        def check(value):
            if value["pool"] < 0:
                raise ValueError("pool is %d" % value["pool"])

        with pytest.raises(ndsr.ConfigUnavailable) as e:
            r.config(path, validate=check)
        assert "validate raised ValueError: pool is -1" in str(e.value)
        config = r.config(path, validate=check, default={"pool": 1})
        assert config.get() == {"pool": 1} and config.version is None
        assert config.status.kind == "rejected" and config.status.reasons == ("validate raised ValueError: pool is -1",)
        with pytest.raises(ValueError):
            r.config(path, validate=check, default={"pool": -2})
        with pytest.raises(ndsr.ConfigUnavailable):
            r.config(base + "/none")


def test_a_pydantic_model_refusing_a_value_keeps_the_last_instance(zk, base, other):
    pydantic = pytest.importorskip("pydantic")

    class Web(pydantic.BaseModel):
        pool: int
        host: str

    path = base + "/model"
    with ndsr.Registry(zk) as r:
        r.publish(path, {"pool": 4, "host": "db1"})
        config = r.config(path, model=Web, validate=lambda web: web.pool > 0)
        assert config.get() == Web(pool=4, host="db1")
        seen = []
        config.add_callback(seen.append)
        other.set(path, b'{"pool": "many", "host": "db1"}')
        wait_for(lambda: config.status.kind == "rejected", what="refused by the model")
        assert config.status.reasons[0].startswith("model Web, at '/pool': ")
        other.set(path, b'{"pool": 0, "host": "db1"}')
        wait_for(lambda: config.status.version == 2 and config.status.kind == "rejected", what="refused by validate")
        assert config.get() == Web(pool=4, host="db1") and config.rejected == 2
        r.publish(path, {"pool": 6, "host": "db2"})
        wait_for(lambda: len(seen) == 2, what="the good value delivered")
        assert seen == [Web(pool=4, host="db1"), Web(pool=6, host="db2")]
        assert isinstance(config.get(), Web) and config.version == 3


ORIGINAL_READER = textwrap.dedent(
    """
    import json, sys
    from nd_service_registry import KazooServiceRegistry
    nd = KazooServiceRegistry(server=sys.argv[1], rate_limit_calls=0, rate_limit_time=0)
    for line in sys.stdin:
        print(json.dumps(nd.get(sys.argv[2])['data'], sort_keys=True), flush=True)
    nd.stop()
    """
)


def test_the_python_original_reads_each_published_value(zk, base, original_python):
    path = base + "/original"
    with ndsr.Registry(zk) as r:
        r.publish(path, {"pool": 1})
        proc = subprocess.Popen(
            [original_python, "-c", ORIGINAL_READER, zk, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            for n in (1, 2, 3):
                if n > 1:
                    r.publish(path, {"pool": n})
                # The original's watch may lag a publish: ask until it sees it.
                wait_for(lambda: _ask(proc) == {"pool": n}, what="the original reading pool %d" % n)
            r.rollback(path, 0)
            wait_for(lambda: _ask(proc) == {"pool": 1}, what="the original reading the rollback")
        finally:
            proc.stdin.close()
            if proc.wait(30) != 0:
                pytest.fail("the original exited with %s" % proc.returncode)


def _ask(proc):
    proc.stdin.write("\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_a_value_refused_by_validate_never_reaches_the_cache_file(zk, base, other, tmp_path):
    """The cold start from the cache file gives the last value Python's
    checks accepted, not the latest the core found JSON."""
    path = base + "/web"
    cache = str(tmp_path / "cache.json")
    with ndsr.Registry(zk, cache_file=cache) as r:
        r.publish(path, {"pool": 1})
        config = r.config(path, validate=lambda v: v["pool"] > 0)
        wait_for(lambda: '"pool":1' in open(cache).read().replace(" ", ""), what="the good value saved")
        other.set(path, b'{"pool": -1}')
        wait_for(lambda: config.status.kind == "rejected", what="refused by validate")
        assert config.get() == {"pool": 1}
    # ZooKeeper unreachable: the saved value, the one validate accepted.
    with ndsr.Registry("127.0.0.1:1", cache_file=cache, lazy=True, connect_timeout=1) as cold:
        config = cold.config(path, validate=lambda v: v["pool"] > 0)
        assert config.get() == {"pool": 1}
        assert config.status.kind == "stale"
