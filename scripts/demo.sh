#!/usr/bin/env bash
# The README's main-job command: a live tour of ndsr against a real, local
# ZooKeeper. Installs ZooKeeper if missing and builds the CLI, starts a
# sandbox server, registers three web servers with `ndsr register` (one
# behind a health check), shows `ndsr get`, and lets a live `ndsr watch` see
# the checked one withdraw and return. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."

NDSR_SETUP_NO_PYTHON=1 scripts/setup.sh >/dev/null
echo "== building the ndsr command line"
cargo build --quiet --locked -p ndsr-cli
ndsr=target/debug/ndsr

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
# wait_for DESCRIPTION COMMAND...: polls for up to 20 s.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 200); do "$@" && return 0; sleep 0.1; done
  echo "demo: timed out waiting for $what" >&2
  exit 1
}

step "starting a sandbox ZooKeeper (ndsr sandbox)"
"$ndsr" sandbox >"$work/sandbox.out" 2>"$work/sandbox.err" &
pids+=($!)
wait_for "the sandbox" test -s "$work/sandbox.out"
export NDSR_SERVER=$(head -n 1 "$work/sandbox.out")
echo "sandbox serving on $NDSR_SERVER"

step "registering three web servers (ndsr register, each a sidecar process)"
touch "$work/healthy"
for port in 8001 8002; do
  "$ndsr" register "/services/web/127.0.0.1:$port" --data "{\"zone\":\"a\",\"port\":$port}" >"$work/reg-$port.out" &
  pids+=($!)
done
"$ndsr" register /services/web/127.0.0.1:8003 --data '{"zone":"b","port":8003}' \
  --check-cmd "test -e $work/healthy" --interval 300ms --rise 1 --fall 1 >"$work/reg-8003.out" &
pids+=($!)
three() { [ "$("$ndsr" get /services/web --format dir 2>/dev/null | wc -l)" -eq 4 ]; }
wait_for "three registrations" three

step "ndsr get /services/web --format dir"
"$ndsr" get /services/web --format dir
step "ndsr get /services/web/127.0.0.1:8003 -d (the original's data format: pid, created, then ours)"
"$ndsr" get /services/web/127.0.0.1:8003 -d

step "ndsr watch /services/web (live), while 127.0.0.1:8003 fails its health check and recovers"
"$ndsr" watch /services/web > >(sed -u 's/^/  [watch] /') 2>/dev/null &
watch_pid=$!
pids+=($watch_pid)
sleep 0.5
echo "-- making 127.0.0.1:8003 unhealthy"
rm "$work/healthy"
two() { [ "$("$ndsr" get /services/web --format dir 2>/dev/null | wc -l)" -eq 3 ]; }
wait_for "the withdrawal" two
sleep 0.5
echo "-- making 127.0.0.1:8003 healthy again"
touch "$work/healthy"
wait_for "the return" three
sleep 0.5

step "stopping the sidecars: their nodes vanish at once"
for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
"$ndsr" get /services/web --format dir
pids=("${pids[0]}")
step "done: stopping the sandbox"
