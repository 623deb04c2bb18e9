#!/usr/bin/env bash
# The README's test command: installs what the tests need, then checks
# formatting and lints, runs every test against real ZooKeeper servers
# (Rust, then the Python wheel's pytest suites), proves the packages, and
# fails if any ZooKeeper process the tests started survived them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

zk_count() { pgrep -f QuorumPeerMain | wc -l || true; }
before=$(zk_count)

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
scripts/python-tests.sh
scripts/package-tests.sh   # the .deb (from the debug binary) installed, checked, removed; the crates packaged

# Servers are killed on drop, or by their watchdog when a test binary exits:
# give the watchdogs a moment, then insist.
for _ in $(seq 1 50); do
  [ "$(zk_count)" -le "$before" ] && break
  sleep 0.2
done
after=$(zk_count)
if [ "$after" -gt "$before" ]; then
  echo "test.sh: $((after - before)) ZooKeeper process(es) survived the tests:" >&2
  pgrep -af QuorumPeerMain >&2 || true
  exit 1
fi
echo "test.sh: all checks passed; no ZooKeeper process left behind"
