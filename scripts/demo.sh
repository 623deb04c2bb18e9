#!/usr/bin/env bash
# The README's main-job command: a live tour of ndsr against a real, local
# ZooKeeper. Installs ZooKeeper (and the Python venvs) if missing, builds the
# CLI and, once, the Python wheel; starts a sandbox server; runs `ndsr agent`
# with docs/agent.example.toml (HTTP API, DNS asked with dig, a blocking query answered by a
# registration made through the API, a template rendered, metrics, the
# dashboard's address; `--pause` waits for Enter so you can open it); registers three
# web servers with `ndsr register` (one behind a health check), shows
# `ndsr get`, reads them from an unchanged `nd_service_registry` program
# running on ndsr's core (the drop-in), lets a live `ndsr watch` see the
# checked one withdraw and return, then registers in Curator's and the
# ServerSet format and reads them back decoded (`get --instances`, `pick`).
# Configuration releases come first: `ndsr config publish` with a schema that
# refuses a bad value, a typed Python reader that keeps the last good value
# when kazoo writes garbage around ndsr, the history with its diffs and the
# gap, and a rollback; then configuration as code: export, a plan, apply;
# then a canary release to one zone, its status, and the promote. First of
# all, the newest: a leader election shared with a kazoo client (ndsr elect).
# Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
pause=false
[ "${1:-}" = "--pause" ] && pause=true

scripts/setup.sh >/dev/null
echo "== building the ndsr command line"
cargo build --quiet --locked -p ndsr-cli
ndsr=target/debug/ndsr
py=.venv-ndsr/bin/python
if ! "$py" -c "import ndsr, nd_service_registry; ndsr.Registry.election" 2>/dev/null; then
  echo "== building the Python wheel (once; scripts/python-tests.sh rebuilds it)"
  rm -rf target/wheels
  wheel=$(scripts/wheel.sh --dev target/wheels | tail -n 1)
  "$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work" docs/agent/out docs/agent.demo.toml
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

step "leader election shared with kazoo (docs/COORDINATION.md): ndsr elect runs a command only while it leads"
cat >"$work/kazoo_leader.py" <<'PY'
import os, sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=os.environ["NDSR_SERVER"]); zk.start()
election = zk.Election("/election/report", "kazoo-host")
def lead():
    print("kazoo-host (kazoo's Election) leads", flush=True)
    while not os.path.exists(sys.argv[1]):  # until the demo says stop
        time.sleep(0.05)
election.run(lead)
zk.stop()
PY
"$py" "$work/kazoo_leader.py" "$work/kazoo.stop" >"$work/kazoo.out" &
pids+=($!)
wait_for "kazoo to lead" grep -q leads "$work/kazoo.out"
cat "$work/kazoo.out"
echo '-- ndsr elect /election/report --id ndsr-host -- sh -c '"'"'echo "ndsr-host leads, token $NDSR_LEADER_TOKEN"; ...'"'"
"$ndsr" elect /election/report --id ndsr-host -- \
  sh -c 'echo "ndsr-host leads, token $NDSR_LEADER_TOKEN"; while :; do sleep 0.1; done' >"$work/elect.out" 2>&1 &
elect=$!
pids+=($elect)
wait_for "ndsr to join" sh -c "'$ndsr' elect /election/report --status | grep -q ndsr-host"
echo "-- ndsr elect /election/report --status"
"$ndsr" elect /election/report --status
echo "-- kazoo's leader resigns: ndsr leads and starts its command"
touch "$work/kazoo.stop"
wait_for "ndsr to lead" grep -q "ndsr-host leads" "$work/elect.out"
grep -v "^ndsr: " "$work/elect.out"
echo "-- SIGTERM: ndsr stops its command and resigns"
kill -TERM "$elect"; wait "$elect" && echo "(exit 0)"
"$ndsr" elect /election/report --status

step "configuration releases (docs/CONFIG.md): ndsr config publish, a schema, a refused value, history, rollback"
echo '-- ndsr config publish /config/web --data '"'"'{"pool": 10, "host": "db1"}'"'"' -m "first"'
"$ndsr" config publish /config/web --data '{"pool": 10, "host": "db1"}' -m "first" --author demo
cat >"$work/web.schema.json" <<'JSON'
{"type": "object", "required": ["pool", "host"],
 "properties": {"pool": {"type": "integer", "minimum": 1, "maximum": 50}, "host": {"type": "string"}}}
JSON
echo "-- ndsr config schema set /config/web web.schema.json"
"$ndsr" config schema set /config/web "$work/web.schema.json" --author demo
echo '-- ndsr config publish /config/web --data '"'"'{"pool": 99, "host": 7}'"'"'   (refused before anything is sent)'
"$ndsr" config publish /config/web --data '{"pool": 99, "host": 7}' --author demo || echo "(exit $?)"
echo '-- ndsr config publish /config/web --data '"'"'{"pool": 20, "host": "db1"}'"'"' -m "more connections"'
"$ndsr" config publish /config/web --data '{"pool": 20, "host": "db1"}' -m "more connections" --author demo
echo "-- a typed reader (Python, registry.config) keeps the last good value when kazoo writes garbage around ndsr"
cat >"$work/typed.py" <<'PY'
import os, time
import ndsr
from kazoo.client import KazooClient

with ndsr.Registry(os.environ["NDSR_SERVER"]) as registry:
    web = registry.config("/config/web", validate=lambda v: v["pool"] > 0)
    print("  get() ->", web.get(), web.status.kind, "version", web.status.version)
    zk = KazooClient(hosts=os.environ["NDSR_SERVER"]); zk.start()
    zk.set("/config/web", b"{not json")  # a client that bypasses ndsr
    zk.stop()
    deadline = time.time() + 10
    while web.status.kind != "rejected" and time.time() < deadline:
        time.sleep(0.05)
    print("  after kazoo wrote garbage: get() ->", web.get(), web.status.kind, "-", web.status.reasons[0][:40])
PY
"$py" "$work/typed.py"
echo "-- ndsr config history /config/web --diff   (the garbage is a gap: written outside ndsr)"
"$ndsr" config history /config/web --diff
echo "-- ndsr config rollback /config/web --to 1 -m \"back to the good value\""
"$ndsr" config rollback /config/web --to 1 -m "back to the good value" --author demo
echo "-- ndsr config diff /config/web 0   (version 0 against the live value)"
"$ndsr" config diff /config/web 0

step "configuration as code: ndsr export, then a reviewed plan (ndsr diff), then ndsr apply"
"$ndsr" config publish /config/db --data '{"replicas":2}' -m "first" --author demo >/dev/null
echo "-- ndsr export /config -o config.yaml"
"$ndsr" export /config -o "$work/config.yaml"
sed -n '1,20p' "$work/config.yaml" | sed 's/^/  /'
echo "-- (edited in git: db gets 3 replicas, a new feature flag)"
sed -i 's/replicas: 2/replicas: 3/' "$work/config.yaml"
printf '  flags:\n    json:\n      beta: true\n' >>"$work/config.yaml"
echo "-- ndsr diff config.yaml --plan-out plan.json   (exit 14: there are changes)"
"$ndsr" diff "$work/config.yaml" --plan-out "$work/plan.json" || echo "(exit $?)"
echo "-- ndsr apply --plan plan.json -m \"from git\"   (one transaction, each node checked against the plan)"
"$ndsr" apply --plan "$work/plan.json" -m "from git" --author demo
"$ndsr" diff "$work/config.yaml" && echo "(exit 0: the live tree matches the file)"

step "a canary release: the new value to zone a first (two Python readers, zones a and b), status, then promote"
printf '{"pool": 30, "host": "db1"}' >"$work/web.next.json"
cat >"$work/canary.py" <<'PY'
import os, subprocess, sys, time
import ndsr

ndsr_bin, next_file = sys.argv[1], sys.argv[2]
server = os.environ["NDSR_SERVER"]

def run(*args):
    print("-- ndsr " + " ".join(args).replace(next_file, "web.next.json"))
    out = subprocess.run([ndsr_bin, *args, "--author", "demo"], capture_output=True, text=True)
    print("".join("  " + line + "\n" for line in (out.stdout + out.stderr).splitlines()), end="")

def until(check):
    deadline = time.time() + 10
    while not check() and time.time() < deadline:
        time.sleep(0.05)

with ndsr.Registry(server, identity="web-a1", labels={"zone": "a"}) as a, ndsr.Registry(
    server, identity="web-b1", labels={"zone": "b"}
) as b:
    in_a, in_b = a.config("/config/web"), b.config("/config/web")
    run("config", "canary", "/config/web", "--file", next_file, "--labels", "zone=a", "-m", "pool 30, zone a first")
    until(lambda: in_a.get()["pool"] == 30)
    print("  zone a reads", in_a.get(), in_a.applied["kind"], "| zone b reads", in_b.get(), in_b.applied["kind"])
    until(lambda: a.canary_status("/config/web")["on_canary"] == 1 and len(a.canary_status("/config/web")["clients"]) == 2)
    run("config", "status", "/config/web")
    run("config", "promote", "/config/web")
    until(lambda: in_b.get()["pool"] == 30)
    print("  after promote, zone b reads", in_b.get(), in_b.applied)
PY
"$py" "$work/canary.py" "$ndsr" "$work/web.next.json"
echo "-- ndsr get /config/web   (plain readers saw only the stable value until the promote)"
"$ndsr" get /config/web -d

step "ndsr agent --config docs/agent.example.toml: the registry over HTTP, a dashboard, templates, metrics"
# The sample's template command reloads HAProxy where there is one: never
# from the demo (a copy with the command replaced, beside the sample).
agent_config=docs/agent.example.toml
if command -v haproxy >/dev/null 2>&1; then
  agent_config=docs/agent.demo.toml
  sed 's|^command = .*|command = "echo demo: haproxy.cfg changed >> agent/out/reloads.log"|' \
    docs/agent.example.toml >"$agent_config"
fi
"$ndsr" agent --config "$agent_config" --listen 127.0.0.1:0 --dns-listen 127.0.0.1:0 \
  >"$work/agent.out" 2>"$work/agent.err" &
agent_pid=$!
pids+=($agent_pid)
wait_for "the agent" grep -q "listening on" "$work/agent.out"
url=$(grep -o 'http://[^ ]*' "$work/agent.out" | head -n 1)
url=${url%/}
token=change-me-to-a-long-random-token
agent_holds() { curl -s "$url/v1/registrations" | grep -q '"registered"'; }
wait_for "the file's registration" agent_holds
echo "dashboard: $url/"
index_of() { sed -n 's/.*"index":\([0-9]*\).*/\1/p'; }
step "curl $url/v1/services/services/web (decoded instances; the file registered one)"
listing=$(curl -s "$url/v1/services/services/web")
echo "$listing"
step "a blocking query (?index=N&wait=30s), answered when a server registers through the API"
curl -s "$url/v1/services/services/web?index=$(index_of <<<"$listing")&wait=30s" >"$work/blocked.json" &
blocked=$!
sleep 0.3
echo "-- curl -X PUT $url/v1/registrations/services/web/10.0.0.2:80 -d '{\"data\":{\"zone\":\"b\"}}'"
curl -s -X PUT -H "Authorization: Bearer $token" -d '{"data":{"zone":"b"}}' "$url/v1/registrations/services/web/10.0.0.2:80"
echo
wait "$blocked"
echo "-- the blocking query answered:"
cat "$work/blocked.json"
echo
rendered() { grep -q 10.0.0.2 docs/agent/out/haproxy.cfg 2>/dev/null; }
wait_for "the template" rendered
step "the HAProxy config rendered from docs/agent/haproxy.cfg.j2 (written atomically; then its reload command ran)"
sed -n '/^backend web/,/^$/p' docs/agent/out/haproxy.cfg
if command -v dig >/dev/null 2>&1; then
  wait_for "the agent's DNS" grep -q "DNS on" "$work/agent.out"
  dns_port=$(sed -n 's/.*DNS on [0-9.]*:\([0-9]*\).*/\1/p' "$work/agent.out" | head -n 1)
  step "DNS (docs/AGENT.md, DNS): dig @127.0.0.1 -p $dns_port web.service.ndsr, A then SRV"
  dig @127.0.0.1 -p "$dns_port" web.service.ndsr +short
  dig @127.0.0.1 -p "$dns_port" web.service.ndsr SRV +short
  echo "-- an unknown service: $(dig @127.0.0.1 -p "$dns_port" nope.service.ndsr | grep -o 'status: [A-Z]*')"
fi
step "the write token runs no command: a PUT with check_cmd is refused (docs/AGENT.md, Security)"
echo "-- curl -X PUT $url/v1/registrations/services/web/10.0.0.3:80 -d '{\"check_cmd\":\"id > /tmp/x; true\"}'"
curl -s -X PUT -H "Authorization: Bearer $token" -d '{"check_cmd":"id > /tmp/x; true"}' "$url/v1/registrations/services/web/10.0.0.3:80"
echo
step "curl $url/metrics (Prometheus; a few lines)"
curl -s "$url/metrics" | grep -E '^ndsr_(session_state\{state="connected"\}|agent_registrations|template_commands_total)' || true
if $pause; then
  read -r -p "Open $url/ in a browser, then press Enter to go on: " _
fi
step "SIGTERM: the agent removes its registrations at once and exits 0"
kill -TERM "$agent_pid"
wait "$agent_pid" && echo "agent exited 0"
"$ndsr" get /services/web --format dir

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

step "the same servers from Python: the original's API, unchanged, on ndsr's core (pip install the wheel in place of nd-service-registry)"
cat >"$work/dropin.py" <<'PY'
import os
from nd_service_registry import KazooServiceRegistry  # the original's import, unchanged

nd = KazooServiceRegistry(server=os.environ["NDSR_SERVER"], rate_limit_calls=0, rate_limit_time=0)
web = nd.get("/services/web/127.0.0.1:8003")
print("  get(...8003)['data'] ->", {k: v for k, v in web["data"].items() if k in ("zone", "port")})
nd.add_callback("/services/web", lambda d: print("  callback: /services/web has", d["children"]))
nd.stop()
PY
"$py" "$work/dropin.py"

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

step "other registries' formats: a Curator instance and a ServerSet member (ndsr register --as)"
"$ndsr" register /discovery --as curator --name api --id api-1 --host 127.0.0.1 --port 9001 --label zone=a \
  >"$work/curator.out" &
pids+=($!)
"$ndsr" register /aurora/www/prod/api --as serverset --host 127.0.0.1 --port 9002 --shard 0 \
  --endpoint admin=127.0.0.1:9990 >"$work/serverset.out" &
pids+=($!)
curator_up() { "$ndsr" pick /discovery/api >/dev/null 2>&1; }
serverset_up() { "$ndsr" pick /aurora/www/prod/api >/dev/null 2>&1; }
wait_for "the Curator instance" curator_up
wait_for "the ServerSet member" serverset_up
step "ndsr get /discovery/api --instances (decoded; the node holds Curator's exact JSON)"
"$ndsr" get /discovery/api --instances
"$ndsr" get /discovery/api/api-1 -d --format json | sed -n '/"data"/,/}/p' | head -8
step "ndsr pick /aurora/www/prod/api --endpoint admin (one HOST:PORT for a script)"
"$ndsr" pick /aurora/www/prod/api --endpoint admin

step "stopping the sidecars: their nodes vanish at once"
for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
"$ndsr" get /services/web --format dir
pids=("${pids[0]}")
step "done: stopping the sandbox"
