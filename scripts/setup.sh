#!/usr/bin/env bash
# Installs what ndsr's tests need on a fresh machine: Java and ZooKeeper.
# Debian/Ubuntu as root: installs with apt-get. Anywhere else: says what to
# install and exits non-zero. Safe to run again: it installs only what is missing.
set -euo pipefail

have_zookeeper() {
  [ -n "${NDSR_ZOOKEEPER_JARS:-}" ] || [ -n "${ZOOKEEPER_HOME:-}" ] || [ -f /usr/share/java/zookeeper.jar ]
}

if have_zookeeper && command -v java >/dev/null 2>&1; then
  echo "setup: ZooKeeper and Java are installed"
  exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing ZooKeeper (apt-get install -y zookeeper)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq zookeeper >/dev/null
  have_zookeeper && command -v java >/dev/null 2>&1 || {
    echo "setup: apt-get ran but ZooKeeper or Java is still missing" >&2
    exit 1
  }
  echo "setup: ZooKeeper installed"
else
  cat >&2 <<'MSG'
setup: ZooKeeper (3.8 or later) and Java are needed for the tests.
  Debian/Ubuntu (as root): apt-get update && apt-get install -y zookeeper
  Elsewhere: unpack an Apache ZooKeeper release and set ZOOKEEPER_HOME to it,
             or set NDSR_ZOOKEEPER_JARS to a directory holding its jars;
             and install a Java runtime (java on PATH or JAVA_HOME).
MSG
  exit 1
fi
