#!/usr/bin/env bash
# Proves the packages (issue 28); scripts/test.sh runs it after the tests.
#
#   scripts/package-tests.sh [--deb FILE] [--no-deb] [--no-crates]
#
# 1. The Debian package: packaging/build-deb.sh --fast packs the debug
#    binary the tests built (target/debug/ndsr; or --deb FILE, as
#    scripts/package.sh passes the release one), then, as root:
#    `dpkg -i` installs it; `ndsr --version`, `man -w ndsr` and the man page
#    work; bash finds the completion (bash-completion's loader), zsh and
#    fish files are in their places; `systemd-analyze verify` accepts the
#    unit, which is neither enabled nor started; the user ndsr exists and
#    reads /etc/ndsr/agent.toml (a conffile, 0640 root:ndsr) which
#    `ndsr agent --check` accepts; installing again keeps all that; `dpkg -r`
#    leaves only the conffile, `dpkg -P` nothing (the user ndsr stays, as
#    Debian's system users do). No systemd needs to run.
#    Not root, or no dpkg: this part is skipped, saying so. The package is purged on
#    any exit; an ndsr package installed before is never touched (the test
#    refuses to run over it).
# 2. The crates: `cargo publish --dry-run --no-verify` of ndsr, ndsr-testkit,
#    ndsr-agent and ndsr-cli together (packages them, checks the manifests
#    and versioned path dependencies, no compiling; any warning fails).
#    scripts/package.sh runs the full `cargo package`, which compiles each.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=
debs=1
crates=1
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb=$2; shift 2 ;;
    --no-deb) debs=; shift ;;
    --no-crates) crates=; shift ;;
    *) echo "usage: scripts/package-tests.sh [--deb FILE] [--no-deb] [--no-crates]" >&2; exit 2 ;;
  esac
done

fail() {
  echo "package-tests: FAIL: $*" >&2
  exit 1
}
pass() { echo "package-tests: ok: $*"; }

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
unit=/usr/lib/systemd/system/ndsr-agent.service
conffile=/etc/ndsr/agent.toml
installed_by_us=

purge() {
  if [ -n "$installed_by_us" ]; then
    dpkg -P ndsr >/dev/null 2>&1 || true
  fi
}

deb_tests() {
  if ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "package-tests: skipped the Debian package: no dpkg on this machine"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "package-tests: skipped the Debian package's install test: dpkg -i needs root"
    return 0
  fi
  if dpkg-query -W -f='${Status}' ndsr 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "a package named ndsr is installed on this machine (dpkg -s ndsr): the test would replace it; remove it first (dpkg -P ndsr)"
  fi
  if [ -z "$deb" ]; then
    cargo build --quiet --locked -p ndsr-cli   # nothing to do after the tests
    deb=$(packaging/build-deb.sh --fast target/debug/ndsr target/package-tests | tail -n 1)
  fi
  [ -f "$deb" ] || fail "no package at $deb"
  pass "built $deb"

  trap purge EXIT
  installed_by_us=1
  DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb"
  [ "$(dpkg-query -W -f='${Status}' ndsr)" = "install ok installed" ] || fail "dpkg -s ndsr: not installed"
  pass "dpkg -i installs it"
  check_installed
  agent_runs

  # Again, as an upgrade (postinst configure with the old version).
  DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb, a second time"
  check_installed
  pass "installing it again keeps the same state"

  local files
  files=$(dpkg-query -L ndsr | while read -r path; do [ -f "$path" ] && echo "$path"; done)
  dpkg -r ndsr >/dev/null || fail "dpkg -r ndsr"
  [ "$(dpkg-query -W -f='${Status}' ndsr)" = "deinstall ok config-files" ] || fail "dpkg -r: the package is not left as config-files"
  local left
  left=$(echo "$files" | while read -r path; do [ -e "$path" ] && [ "$path" != "$conffile" ] && echo "$path"; done || true)
  [ -z "$left" ] || fail "dpkg -r left: $left"
  [ -f "$conffile" ] || fail "dpkg -r removed the conffile $conffile (it keeps conffiles until a purge)"
  if [ -e /usr/bin/ndsr ] || man -w ndsr >/dev/null 2>&1; then
    fail "dpkg -r left ndsr or its man page"
  fi
  pass "dpkg -r removes everything but the conffile"
  dpkg -P ndsr >/dev/null || fail "dpkg -P ndsr"
  installed_by_us=
  dpkg-query -W ndsr >/dev/null 2>&1 && fail "dpkg -P: dpkg still knows ndsr"
  [ ! -e /etc/ndsr ] || fail "dpkg -P left /etc/ndsr: $(ls -A /etc/ndsr)"
  [ ! -e /var/lib/ndsr ] || fail "dpkg -P left /var/lib/ndsr"
  dpkg-statoverride --list "$conffile" >/dev/null 2>&1 && fail "dpkg -P left the stat override of $conffile"
  [ -z "$(dpkg --audit 2>&1)" ] || fail "dpkg --audit: $(dpkg --audit 2>&1)"
  pass "dpkg -P removes the conffile, the state and the stat override"
}

check_installed() {
  # The binary, by the PATH a login shell has.
  local out
  out=$(env PATH=/usr/sbin:/usr/bin:/sbin:/bin ndsr --version) || fail "ndsr --version"
  case "$out" in
    "ndsr $version"*) ;;
    *) fail "ndsr --version printed '$out', not ndsr $version" ;;
  esac
  pass "ndsr --version: $out"

  # The man pages.
  local page
  page=$(man -w ndsr) || fail "man -w ndsr found no page"
  [ "$page" = /usr/share/man/man1/ndsr.1.gz ] || fail "man -w ndsr: $page"
  local rendered
  rendered=$(MANWIDTH=80 man -P cat ndsr 2>/dev/null) || fail "man ndsr failed"
  grep -q '^NAME' <<<"$rendered" || fail "man ndsr renders no NAME section"
  pass "man -w ndsr: $page"

  # Completions where each shell looks for them.
  local bashdir=/usr/share/bash-completion/completions
  [ -s "$bashdir/ndsr" ] || fail "no bash completion in $bashdir"
  bash -n "$bashdir/ndsr" || fail "the bash completion is not valid bash"
  if [ -f /usr/share/bash-completion/bash_completion ]; then
    # bash-completion's loader, as an interactive shell's first TAB on ndsr.
    bash -c 'source /usr/share/bash-completion/bash_completion; __load_completion ndsr && complete -p ndsr' \
      >/dev/null 2>&1 || fail "bash-completion's loader did not load a completion for ndsr from $bashdir"
    pass "bash-completion loads the completion of ndsr from $bashdir"
  else
    pass "bash completion at $bashdir/ndsr (bash-completion is not installed: its loader was not tried)"
  fi
  [ -s /usr/share/zsh/vendor-completions/_ndsr ] || fail "no zsh completion in /usr/share/zsh/vendor-completions"
  head -n 1 /usr/share/zsh/vendor-completions/_ndsr | grep -q '^#compdef ndsr' || fail "the zsh completion does not start with #compdef ndsr"
  [ -s /usr/share/fish/vendor_completions.d/ndsr.fish ] || fail "no fish completion in /usr/share/fish/vendor_completions.d"
  pass "zsh and fish completions in their vendor directories"

  # The unit: accepted offline, installed, not enabled, not started.
  [ -f "$unit" ] || fail "no unit at $unit"
  local verify
  verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $verify"
  [ -z "$verify" ] || fail "systemd-analyze verify $unit warned: $verify"
  pass "systemd-analyze verify accepts $unit"
  local enabled
  enabled=$(systemctl is-enabled ndsr-agent.service 2>/dev/null || true)
  [ "$enabled" = disabled ] || fail "systemctl is-enabled ndsr-agent.service: '$enabled', not disabled"
  [ -z "$(find /etc/systemd/system -name ndsr-agent.service 2>/dev/null)" ] || fail "the installation enabled the unit"
  if [ -d /run/systemd/system ]; then
    systemctl is-active --quiet ndsr-agent.service && fail "the installation started ndsr-agent.service"
  fi
  pass "ndsr-agent.service is disabled and not started"

  # Its user and its configuration.
  local entry
  entry=$(getent passwd ndsr) || fail "no user ndsr"
  local uid shell
  uid=$(echo "$entry" | cut -d: -f3)
  shell=$(echo "$entry" | cut -d: -f7)
  [ "$uid" -lt 1000 ] || fail "ndsr is not a system user (uid $uid)"
  [ "$shell" = /usr/sbin/nologin ] || fail "ndsr's shell is $shell, not /usr/sbin/nologin"
  dpkg-query -W -f='${Conffiles}' ndsr | grep -q "^ $conffile " || fail "$conffile is not a conffile"
  [ "$(stat -c '%U:%G %a' "$conffile")" = "root:ndsr 640" ] || fail "$conffile is $(stat -c '%U:%G %a' "$conffile"), not root:ndsr 640"
  runuser -u ndsr -- /usr/bin/ndsr agent --check --config "$conffile" >/dev/null || fail "ndsr agent --check, as user ndsr, refuses $conffile"
  runuser -u nobody -- cat "$conffile" >/dev/null 2>&1 && fail "other users can read $conffile"
  pass "user ndsr (uid $uid) reads $conffile, which ndsr agent --check accepts; others cannot"
}

# The installed agent as its unit runs it: user ndsr, /etc/ndsr/agent.toml,
# in /var/lib/ndsr, with $NOTIFY_SOCKET; against an `ndsr sandbox` (the
# installed binary's). READY=1 once synced, SIGHUP (ExecReload) reloads the file
# and it serves on, SIGTERM: STOPPING=1 and exit 0. Skipped without ZooKeeper.
agent_runs() {
  if ! command -v java >/dev/null 2>&1 || ! { [ -f /usr/share/java/zookeeper.jar ] || [ -n "${ZOOKEEPER_HOME:-}" ] || [ -n "${NDSR_ZOOKEEPER_JARS:-}" ]; }; then
    pass "skipped running the installed agent: no ZooKeeper or Java (scripts/setup.sh installs them)"
    return 0
  fi
  local tmp
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  local sandbox_pid notify_pid agent_pid=
  stop_agent_run() { # each by its pid; the sandbox stops its ZooKeeper on SIGINT
    if [ -n "$agent_pid" ]; then
      kill "$agent_pid" 2>/dev/null || true
      wait "$agent_pid" 2>/dev/null || true
    fi
    kill -INT "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
    kill "$notify_pid" 2>/dev/null || true
    wait "$notify_pid" 2>/dev/null || true
    rm -rf "$tmp"
  }
  agent_fail() {
    echo "--- sandbox:" >&2; cat "$tmp/sandbox.err" >&2 || true
    echo "--- agent:" >&2; cat "$tmp/agent.out" "$tmp/agent.err" >&2 || true
    echo "--- notifications:" >&2; cat "$tmp/notify.log" >&2 || true
    stop_agent_run
    fail "$@"
  }
  poll() { # SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
      [ "$SECONDS" -lt "$deadline" ] || return 1
      sleep 0.1
    done
  }

  /usr/bin/ndsr sandbox >"$tmp/sandbox.out" 2>"$tmp/sandbox.err" &
  sandbox_pid=$!
  poll 60 test -s "$tmp/sandbox.out" || agent_fail "ndsr sandbox printed no address"
  local server
  server=$(head -n 1 "$tmp/sandbox.out")

  # A notification socket, as systemd's, that the agent's user may write.
  python3 -c '
import os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(sock.recv(4096).decode().replace("\n", " ") + "\n")
' "$tmp/notify" "$tmp/notify.log" &
  notify_pid=$!
  poll 10 test -S "$tmp/notify" || agent_fail "the notification socket did not appear"

  install -d -o ndsr -g ndsr -m 0750 /var/lib/ndsr
  (cd /var/lib/ndsr && exec setpriv --reuid=ndsr --regid=ndsr --init-groups --inh-caps=-all \
    env NOTIFY_SOCKET="$tmp/notify" /usr/bin/ndsr agent --config "$conffile" --server "$server" \
    --listen 127.0.0.1:0 >"$tmp/agent.out" 2>"$tmp/agent.err") &
  agent_pid=$!
  poll 60 grep -q 'READY=1' "$tmp/notify.log" || agent_fail "the installed agent sent no READY=1"
  local url
  url=$(sed -n 's|.*listening on \(http://[^ ]*/\).*|\1|p' "$tmp/agent.out" | head -n 1)
  [ -n "$url" ] || agent_fail "the agent printed no address"
  health() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "v1/health", timeout=5)' "$url" 2>/dev/null; }
  health || agent_fail "the agent does not answer ${url}v1/health"
  kill -HUP "$agent_pid"
  poll 30 grep -q "reloaded $conffile: nothing changed" "$tmp/agent.out" "$tmp/agent.err" \
    || agent_fail "no 'reloaded $conffile' line after SIGHUP (systemctl reload)"
  health || agent_fail "the agent stopped answering after SIGHUP"
  kill -TERM "$agent_pid"
  local status=0
  wait "$agent_pid" || status=$?
  agent_pid=
  [ "$status" = 0 ] || agent_fail "the agent exited $status on SIGTERM"
  poll 10 grep -q 'STOPPING=1' "$tmp/notify.log" || agent_fail "the agent sent no STOPPING=1"
  stop_agent_run
  rm -rf /var/lib/ndsr
  pass "the installed agent, as user ndsr with $conffile: READY=1, serves, reloads on SIGHUP, STOPPING=1 and exit 0 on SIGTERM"
}

crate_tests() {
  local log
  log=$(mktemp)
  # shellcheck disable=SC2064
  trap "rm -f '$log'; purge" EXIT
  cargo publish --dry-run --no-verify --allow-dirty --locked \
    -p ndsr -p ndsr-testkit -p ndsr-agent -p ndsr-cli >"$log" 2>&1 || {
    cat "$log" >&2
    fail "cargo publish --dry-run --no-verify"
  }
  if grep '^warning:' "$log" | grep -v 'aborting upload due to dry run' >&2; then
    fail "cargo publish --dry-run warned (above)"
  fi
  pass "cargo publish --dry-run --no-verify: $(grep -c '^ *Packaged' "$log") crates packaged (ndsr, ndsr-testkit, ndsr-agent, ndsr-cli)"
}

if [ -n "$debs" ]; then
  deb_tests
fi
if [ -n "$crates" ]; then
  crate_tests
fi
echo "package-tests: all package checks passed"
