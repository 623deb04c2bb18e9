"""The Python original's side of ndsr's benchmarks (nd_service_registry 1.1.0).

Usage: original_bench.py SERVER CASE ARGS...   (one JSON object per output line)
  cached-get PATH ITERS        -> {"ns_per_op": ...}           get() of a watched path, from memory
  subscribe PATH               -> {"t_ns": ..., "children": N}  per callback, CLOCK_MONOTONIC
  register PARENT N            -> {"seconds": ...}              N serial set_node() until all exist
  register-raw PARENT N        -> {"seconds": ...}              N serial kazoo ephemeral creates (the floor)
  recovery PARENT N            -> {"seconds": ...}              N registrations, forced expiry, until all back
  memory BASE N                -> {"rss_before_kb", "rss_after_kb", "setup_seconds"}  watching N paths
Rate limiting is off (rate_limit_calls=0), as in the original's own CLI.
"""
import json
import logging
import sys
import time

logging.basicConfig(stream=sys.stderr, level=logging.ERROR)

from kazoo.client import KazooClient  # noqa: E402
from nd_service_registry import KazooServiceRegistry  # noqa: E402


def out(obj):
    print(json.dumps(obj), flush=True)


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def count(zk, parent):
    try:
        return len(zk.get_children(parent))
    except Exception:
        return 0


def wait_count(zk, parent, pred, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred(count(zk, parent)):
            return True
        time.sleep(0.005)
    return False


def main():
    server, case, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if case == "memory":
        before = rss_kb()
    nd = KazooServiceRegistry(server=server, timeout=10, rate_limit_calls=0)
    try:
        if case == "cached-get":
            path, iters = args[0], int(args[1])
            nd.get(path)
            start = time.perf_counter_ns()
            for _ in range(iters):
                nd.get(path)
            out({"ns_per_op": (time.perf_counter_ns() - start) / iters})
        elif case == "subscribe":
            def callback(snapshot):
                out({"t_ns": time.clock_gettime_ns(time.CLOCK_MONOTONIC), "children": len(snapshot["children"] or [])})
            nd.add_callback(args[0], callback)
            sys.stdin.read()
        elif case == "register":
            parent, n = args[0], int(args[1])
            plain = KazooClient(hosts=server)
            plain.start()
            start = time.monotonic()
            for i in range(n):
                nd.set_node("%s/n%06d" % (parent, i))
            wait_count(plain, parent, lambda c: c == n)
            out({"seconds": time.monotonic() - start})
            plain.stop()
        elif case == "register-raw":
            parent, n = args[0], int(args[1])
            plain = KazooClient(hosts=server)
            plain.start()
            plain.ensure_path(parent)
            start = time.monotonic()
            for i in range(n):
                plain.create("%s/n%06d" % (parent, i), ephemeral=True)
            out({"seconds": time.monotonic() - start})
            plain.stop()
        elif case == "recovery":
            parent, n = args[0], int(args[1])
            plain = KazooClient(hosts=server)
            plain.start()
            for i in range(n):
                nd.set_node("%s/n%06d" % (parent, i))
            wait_count(plain, parent, lambda c: c == n)
            session_id, password = nd._zk.client_id
            thief = KazooClient(hosts=server, client_id=(session_id, password))
            thief.start()
            thief.stop()
            thief.close()
            start = time.monotonic()
            wait_count(plain, parent, lambda c: c < n, timeout=60)
            ok = wait_count(plain, parent, lambda c: c == n)
            out({"seconds": time.monotonic() - start, "complete": ok})
            plain.stop()
        elif case == "memory":
            base, n = args[0], int(args[1])
            start = time.monotonic()
            for i in range(n):
                nd.get("%s/p%06d" % (base, i))
            out({"rss_before_kb": before, "rss_after_kb": rss_kb(), "setup_seconds": time.monotonic() - start})
        else:
            sys.exit("unknown case %s" % case)
    finally:
        nd.stop()


if __name__ == "__main__":
    main()
