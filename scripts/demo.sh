#!/usr/bin/env bash
# The README's main-job command. Placeholder: the `ndsr` command line
# (issue 5) will make this start a sandbox ZooKeeper, register services,
# and show `ndsr get` and a live `ndsr watch`. Until then it says so.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: not built yet — the ndsr command line lands with issue 5." >&2
echo "demo: meanwhile, scripts/test.sh runs the registry's tests against real ZooKeeper servers." >&2
exit 0
