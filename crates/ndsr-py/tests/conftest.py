"""Fixtures: a real ZooKeeper (``ndsr sandbox``, started for the session and
stopped by its pid, even when tests fail) and a plain kazoo client to play
"the other process"."""

import os
import signal
import subprocess
import time
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _ndsr_binary():
    binary = os.environ.get("NDSR_BIN") or os.path.join(ROOT, "target", "debug", "ndsr")
    if not os.path.exists(binary):
        pytest.exit("the ndsr binary is missing: cargo build -p ndsr-cli (or set NDSR_BIN)", returncode=2)
    return binary


@pytest.fixture(scope="session")
def zk():
    """HOST:PORT of a ZooKeeper sandbox for this test session."""
    proc = subprocess.Popen(
        [_ndsr_binary(), "sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )
    try:
        line = proc.stdout.readline().strip()
        if not line:
            pytest.exit("ndsr sandbox did not start: %s" % proc.stderr.read(), returncode=2)
        yield line
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def base():
    """A fresh path prefix for one test."""
    return "/pytest/%s" % uuid.uuid4().hex[:12]


@pytest.fixture
def other(zk):
    """A plain kazoo client: another process's view and writes."""
    kazoo_client = pytest.importorskip("kazoo.client")
    client = kazoo_client.KazooClient(hosts=zk, timeout=10)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def wait_for(condition, timeout=20.0, what="the condition"):
    """Polls `condition` until it holds, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.02)


@pytest.fixture
def original_python():
    """The interpreter of the venv holding the Python original (.venv)."""
    python = os.path.join(ROOT, ".venv", "bin", "python")
    if not os.path.exists(python):
        pytest.skip("the Python original is not installed (scripts/setup.sh makes .venv)")
    return python


