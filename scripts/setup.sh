#!/usr/bin/env bash
# Installs what ndsr's tests need on a fresh machine: Java, ZooKeeper, the
# Python original (nd-service-registry 1.1.0) in a venv at .venv for the
# interop tests (and zk-shell 1.3.4 there, a peer in the bench), .venv-ndsr
# with maturin, pytest, kazoo and pydantic for the Python module (and
# ziglang and auditwheel for its portable wheel: scripts/wheel.sh), the real
# Apache Curator 5.4.0 (with a JDK) as the discovery tests' oracle, and
# Chromium with its WebDriver for the agent dashboard's browser test, dig
# for the agent's DNS tests, and dnsmasq, the bench's DNS peer.
# Debian/Ubuntu as root: installs with apt-get. Anywhere else: says what to
# install and exits non-zero. Safe to run again: it installs only what is missing.
set -euo pipefail

have_zookeeper() {
  [ -n "${NDSR_ZOOKEEPER_JARS:-}" ] || [ -n "${ZOOKEEPER_HOME:-}" ] || [ -f /usr/share/java/zookeeper.jar ]
}

install_python_original() {
  # The interop tests run the Python original against the same servers.
  # NDSR_SETUP_NO_PYTHON=1 skips it (the demo needs only ZooKeeper).
  if [ -n "${NDSR_SETUP_NO_PYTHON:-}" ]; then
    return 0
  fi
  local venv=.venv
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import nd_service_registry, pytest, pytest_rerunfailures' 2>/dev/null; then
    echo "setup: the Python original is installed in $venv"
    install_zk_shell "$venv"
    return 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
    else
      echo "setup: python3 with venv is needed for the interop tests (apt-get install -y python3-venv)" >&2
      exit 1
    fi
  fi
  echo "setup: installing nd-service-registry==1.1.0 into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check nd-service-registry==1.1.0 \
    pytest==9.2.0 pytest-rerunfailures==16.1
  "$venv/bin/python" -c 'import nd_service_registry, pytest' || {
    echo "setup: the Python original did not install" >&2
    exit 1
  }
  install_zk_shell "$venv"
}

install_zk_shell() {
  # zk-shell's `cp` (on kazoo, beside the original) is the bench's peer for
  # export and apply of a tree (crates/ndsr-bench, case 12).
  local venv=$1
  if [ -x "$venv/bin/zk-shell" ]; then
    return 0
  fi
  echo "setup: installing zk-shell==1.3.4 into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check zk-shell==1.3.4
}

install_curator() {
  # The Curator oracle (crates/ndsr/tests/curator.rs) compiles a small Java
  # program against Debian's Curator 5.4.0. Its discovery package does not
  # pull in the recipes it needs, so both are named. NDSR_CURATOR_JARS
  # points the tests at jars installed elsewhere.
  if [ -n "${NDSR_SETUP_NO_PYTHON:-}" ] || [ -n "${NDSR_CURATOR_JARS:-}" ]; then
    return 0
  fi
  if [ -f /usr/share/java/curator-recipes.jar ] && [ -f /usr/share/java/curator-x-discovery.jar ] \
    && command -v javac >/dev/null 2>&1; then
    echo "setup: Curator 5 and a JDK are installed"
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Curator 5 (libcurator-discovery-java, libcurator-recipes-java) and a JDK"
    local packages="libcurator-discovery-java libcurator-recipes-java"
    command -v javac >/dev/null 2>&1 || packages="$packages default-jdk-headless"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  else
    echo "setup: the Curator tests need a JDK and Curator 5 (apt-get install -y libcurator-discovery-java libcurator-recipes-java default-jdk-headless), or NDSR_CURATOR_JARS" >&2
    exit 1
  fi
}

install_browser() {
  # The dashboard test (crates/ndsr-cli/tests/dashboard.rs) drives Debian's
  # Chromium through chromedriver. NDSR_CHROMEDRIVER and NDSR_CHROMIUM point
  # it at a driver and browser installed elsewhere.
  if [ -n "${NDSR_SETUP_NO_PYTHON:-}" ] || [ -n "${NDSR_CHROMEDRIVER:-}" ]; then
    return 0
  fi
  if [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/chromium ]; then
    echo "setup: Chromium and chromedriver are installed"
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Chromium and chromedriver (chromium, chromium-driver)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: the dashboard test needs Chromium and chromedriver (apt-get install -y chromium chromium-driver), or NDSR_CHROMEDRIVER and NDSR_CHROMIUM" >&2
    exit 1
  fi
}

install_python_build() {
  # The drop-in's own venv (it installs a package named nd_service_registry
  # too, so it cannot share .venv with the original): maturin builds the
  # wheel into it; pytest and kazoo (the tests' "other process") run there.
  if [ -n "${NDSR_SETUP_NO_PYTHON:-}" ]; then
    return 0
  fi
  # pydantic: the typed configuration's model test (ndsr.Registry.config).
  # ziglang: the linker of the portable (manylinux2014) wheel, with glibc
  # 2.17's symbols; auditwheel: checks its tag (scripts/wheel.sh).
  local venv=.venv-ndsr
  local wheel_tools="ziglang==0.15.2 auditwheel==6.8.2"
  if [ -x "$venv/bin/maturin" ] && "$venv/bin/python" -c 'import pytest, kazoo' 2>/dev/null; then
    echo "setup: maturin and pytest are installed in $venv"
    if ! "$venv/bin/python" -c 'import pydantic' 2>/dev/null; then
      echo "setup: installing pydantic into $venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check pydantic==2.14.3
    fi
    if ! "$venv/bin/python" -c 'import ziglang, auditwheel' 2>/dev/null; then
      echo "setup: installing ziglang and auditwheel into $venv"
      # shellcheck disable=SC2086
      "$venv/bin/pip" install --quiet --disable-pip-version-check $wheel_tools
    fi
    return 0
  fi
  echo "setup: installing maturin, ziglang, auditwheel, pytest, kazoo and pydantic into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check maturin==1.16.0 $wheel_tools pytest==9.2.0 \
    kazoo==2.11.0 pydantic==2.14.3
}

install_dig() {
  # The agent's DNS tests (crates/ndsr-cli/tests/agent_dns.rs) ask it with
  # dig (Debian's bind9-dnsutils).
  if command -v dig >/dev/null 2>&1; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing dig (bind9-dnsutils)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bind9-dnsutils >/dev/null
  else
    echo "setup: the agent's DNS tests need dig (apt-get install -y bind9-dnsutils)" >&2
    exit 1
  fi
}

install_packaging_tools() {
  # The Debian package's test (scripts/package-tests.sh): dpkg-shlibdeps
  # (dpkg-dev), strip (binutils), systemd-analyze (systemd, which need not
  # run), man (man-db), adduser (the package's postinst) and bash-completion
  # (its loader finds the completion). A new machine has all but the last.
  local packages=""
  command -v dpkg-shlibdeps >/dev/null 2>&1 || packages="$packages dpkg-dev"
  command -v strip >/dev/null 2>&1 || packages="$packages binutils"
  command -v systemd-analyze >/dev/null 2>&1 || packages="$packages systemd"
  command -v man >/dev/null 2>&1 || packages="$packages man-db"
  command -v adduser >/dev/null 2>&1 || packages="$packages adduser"
  [ -f /usr/share/bash-completion/bash_completion ] || packages="$packages bash-completion"
  if [ -z "$packages" ]; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing what the package test needs:$packages"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  else
    echo "setup: the Debian package's test needs:$packages (apt-get install -y$packages); it is skipped without dpkg or root" >&2
  fi
}

install_dnsmasq() {
  # The bench's DNS case (crates/ndsr-bench, case 14) runs dnsmasq beside
  # the agent. Debian's dnsmasq-base: the binary /usr/sbin/dnsmasq without
  # the dnsmasq package's system service (which would start a resolver on
  # port 53 and point the host's resolver at it). Not needed by the tests.
  if [ -x /usr/sbin/dnsmasq ]; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing dnsmasq (dnsmasq-base, a peer in the bench)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsmasq-base >/dev/null
  else
    echo "setup: the bench's DNS case needs dnsmasq (apt-get install -y dnsmasq-base); skipping it" >&2
  fi
}

cd "$(dirname "$0")/.."

if have_zookeeper && command -v java >/dev/null 2>&1; then
  echo "setup: ZooKeeper and Java are installed"
  install_python_original
  install_python_build
  install_curator
  install_browser
  install_dig
  install_dnsmasq
  install_packaging_tools
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
  install_python_original
  install_python_build
  install_curator
  install_browser
  install_dig
  install_dnsmasq
  install_packaging_tools
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
