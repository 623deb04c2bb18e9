"""Leader election (issue 26) from Python against a real ZooKeeper: kazoo's
shape (run, contenders, cancel) with the state and a growing token; kazoo's
own Election takes turns with ndsr's on one path; another layout's path is
refused; election_status reads any layout."""

import threading

import pytest

import ndsr
from conftest import wait_for


def test_kazoo_and_ndsr_take_turns_and_see_each_other(zk, base, other):
    kazoo_election = pytest.importorskip("kazoo.recipe.election")
    path = base + "/cron"
    release_kazoo = threading.Event()
    kazoo_leads = threading.Event()

    def kazoo_leader():
        kazoo_leads.set()
        release_kazoo.wait(30)

    theirs = kazoo_election.Election(other, path, identifier="kazoo-1")
    thread = threading.Thread(target=theirs.run, args=(kazoo_leader,))
    thread.start()
    try:
        assert kazoo_leads.wait(30), "kazoo leads first"
        with ndsr.Registry(zk) as r:
            ours = r.election(path, "ndsr-1")
            ran = []

            def lead(word):
                ran.append((word, ours.token, ours.is_leader, ours.contenders()))
                return "done"

            result = []
            runner = threading.Thread(target=lambda: result.append(ours.run(lead, "hello")))
            runner.start()
            wait_for(lambda: theirs.contenders() == ["kazoo-1", "ndsr-1"], what="kazoo sees ndsr in line")
            wait_for(lambda: ours.state == "follower" and ours.position == 1, what="ndsr follows kazoo")
            assert ours.contenders() == ["kazoo-1", "ndsr-1"]
            assert ran == [], "not called while kazoo leads"
            release_kazoo.set()
            runner.join(30)
            assert result == ["done"]
            (word, token, leading, seen), = ran
            assert (word, leading, seen) == ("hello", True, ["ndsr-1"])
            assert isinstance(token, int) and token > 0
            assert other.get_children(path) == [], "run() left the election when func returned"
            assert ours.state == "ended" and ours.token is None
    finally:
        release_kazoo.set()
        thread.join(30)


def test_states_tokens_and_resign(zk, base):
    path = base + "/e"
    with ndsr.Registry(zk) as r:
        a = r.election(path, "a").join()
        wait_for(lambda: a.is_leader, what="a leads")
        first = a.token
        with r.election(path, "b") as b:
            wait_for(lambda: b.state == "follower", what="b follows")
            assert b.position == 1 and b.token is None
            states = iter(b)
            assert next(states) == "follower"
            a.resign()
            assert next(states) == "leader"
            assert b.token > first, "the token grows"
            status = r.election_status(path)
            assert status["layouts"] == ["kazoo"]
            assert status["leader"]["id"] == "b"
            assert [c["id"] for c in status["contenders"]] == ["b"]
        assert b.state == "ended"
        assert r.election_status(path)["contenders"] == []


def test_cancel_ends_a_waiting_run_without_calling_it(zk, base, other):
    path = base + "/e"
    with ndsr.Registry(zk) as r:
        holder = r.election(path, "holder").join()
        wait_for(lambda: holder.is_leader, what="holder leads")
        waiting = r.election(path, "waiting")
        called, result = [], []
        t = threading.Thread(target=lambda: result.append(waiting.run(called.append, 1)))
        t.start()
        wait_for(lambda: len(other.get_children(path)) == 2, what="the waiting contender joined")
        waiting.cancel()
        t.join(30)
        assert not t.is_alive() and result == [None] and called == []
        assert len(other.get_children(path)) == 1, "cancel left the election"
        holder.resign()


def test_another_layout_is_refused_naming_it(zk, base, other):
    path = base + "/latch"
    other.create(path + "/_c_8b8a2d6e-8a7e-4b7c-9c5e-3d2f1a0b9c8d-latch-", b"curator", ephemeral=True,
                 sequence=True, makepath=True)
    with ndsr.Registry(zk) as r:
        with pytest.raises(ndsr.LayoutMismatch) as e:
            r.election(path, "x").join()
        assert (e.value.found, e.value.asked) == ("curator-latch", "kazoo")
        with pytest.raises(ValueError, match="unknown election layout"):
            r.election(path, "x", layout="zab").join()
        latch = r.election(path, "x", layout="curator-latch").join()
        assert latch.contenders() == ["curator", "x"]
        latch.resign()
        status = r.election_status(path)
        assert status["layouts"] == ["curator-latch"] and status["leader"]["id"] == "curator"


def test_locks_in_kazoo_layouts_exclude_kazoo_both_ways(zk, base, other):
    path = base + "/lock"
    theirs = other.Lock(path, "kazoo")
    assert theirs.acquire(timeout=10)
    with ndsr.Registry(zk) as r:
        with pytest.raises(ndsr.LockTimeout):
            r.lock(path, timeout=0.5, layout="kazoo").acquire()
        assert len(other.get_children(path)) == 1, "the timed-out request left no node"
        theirs.release()
        with r.lock(path, name="ndsr", layout="kazoo") as mine:
            assert mine.held
            kazoo_exceptions = pytest.importorskip("kazoo.exceptions")
            with pytest.raises(kazoo_exceptions.LockTimeout):
                other.Lock(path, "kazoo-2").acquire(timeout=0.5)  # kazoo's Lock waits for ndsr's
            assert other.Lock(path).contenders() == ["ndsr"]
        # Readers share, a writer waits for them.
        reader = other.ReadLock(path, "kazoo-reader")
        assert reader.acquire(timeout=10)
        with r.lock(path, layout="kazoo", mode="read"):
            with pytest.raises(ndsr.LockTimeout):
                r.lock(path, timeout=0.5, layout="kazoo", mode="write").acquire()
        reader.release()
        with pytest.raises(ValueError, match="unknown lock layout"):
            r.lock(path, layout="etcd").acquire()
        blocker = other.Lock(path, "kazoo-3")
        assert blocker.acquire(timeout=10)
        with pytest.raises(ndsr.LayoutMismatch) as e:
            r.lock(path, timeout=1, layout="curator").acquire()
        assert e.value.found == "kazoo"
        blocker.release()


def test_cancel_while_leading_does_not_resign_under_the_running_func(zk, base, other):
    path = base + "/e"
    with ndsr.Registry(zk) as r:
        e = r.election(path, "worker")
        inside, release, seen = threading.Event(), threading.Event(), []

        def work():
            inside.set()
            release.wait(30)
            seen.append(len(other.get_children(path)))

        t = threading.Thread(target=e.run, args=(work,))
        t.start()
        assert inside.wait(30)
        e.cancel()
        with pytest.raises(RuntimeError, match="already running"):
            e.run(lambda: None)
        assert len(other.get_children(path)) == 1, "still leading while func runs"
        release.set()
        t.join(30)
        assert seen == [1] and other.get_children(path) == []
        assert e.run(lambda: "again") is None, "cancelled: run returns at once"
