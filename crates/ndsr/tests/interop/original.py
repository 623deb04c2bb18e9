"""Drives the Python original (nd_service_registry 1.1.0) for ndsr's interop tests.

Usage: original.py SERVER COMMAND ARGS...
  register PATH JSON   set_node(PATH, data) where JSON is an object, a string or null;
                       prints "ready", then holds the session until stdin closes
  get PATH             prints the JSON of get(PATH)'s data and children
  lock PATH NAME       acquire_lock(PATH, NAME, wait=0); prints "acquired" or "refused",
                       then holds it until stdin closes
Every line of output is one JSON value or word; logs go to stderr.
"""
import json
import logging
import sys

# The original logs a warning for its own stop(); only errors matter here.
logging.basicConfig(stream=sys.stderr, level=logging.ERROR)

from nd_service_registry import KazooServiceRegistry  # noqa: E402


def main():
    server, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    nd = KazooServiceRegistry(server=server, timeout=10, rate_limit_calls=0)
    try:
        if command == "register":
            path, data = args[0], json.loads(args[1])
            nd.set_node(path, data)
            print("ready", flush=True)
            sys.stdin.read()
        elif command == "get":
            snapshot = nd.get(args[0])
            print(json.dumps({"data": snapshot["data"], "children": sorted(snapshot["children"])}), flush=True)
        elif command == "lock":
            got = nd.acquire_lock(args[0], name=args[1], wait=0)
            print("acquired" if got else "refused", flush=True)
            sys.stdin.read()
            if got:
                nd.release_lock(args[0])
        else:
            sys.exit("unknown command %s" % command)
    finally:
        nd.stop()


if __name__ == "__main__":
    main()
