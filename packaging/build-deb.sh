#!/usr/bin/env bash
# Builds the ndsr Debian package from an ndsr binary already built, with
# dpkg-deb from a staged tree: the one description of the package, for the
# test command (the debug binary) and scripts/package.sh (the release one).
# Not cargo-deb: installing it takes minutes of compiling on 2 cores.
#
#   packaging/build-deb.sh [--fast] BINARY OUTDIR
#
# The package holds:
#   /usr/bin/ndsr                        the binary, stripped
#   /usr/share/man/man1/ndsr*.1.gz       from `ndsr man -o DIR`
#   /usr/share/bash-completion/completions/ndsr, /usr/share/zsh/vendor-completions/_ndsr,
#   /usr/share/fish/vendor_completions.d/ndsr.fish   from `ndsr completions SHELL`
#   /etc/ndsr/agent.toml                 a conffile: docs/agent.example.toml with
#                                        what acts (token, template, registration,
#                                        record_external) commented out
#   /usr/lib/systemd/system/ndsr-agent.service   packaging/ndsr-agent.service
#   /usr/lib/sysusers.d/ndsr.conf        the user ndsr, for systemd-sysusers
#   /usr/share/doc/ndsr/                 copyright (with the linked crates' licences),
#                                        changelog, README, AGENT.md, examples/
# and packaging/deb/{postinst,prerm,postrm}: the user ndsr is created, the
# unit is neither enabled nor started.
#
# --fast compresses with gzip -1 instead of xz (the test command packs the
# debug binary). The .deb's path is the last line printed.
set -euo pipefail

fast=
if [ "${1:-}" = --fast ]; then
  fast=1
  shift
fi
if [ $# -ne 2 ]; then
  echo "usage: packaging/build-deb.sh [--fast] BINARY OUTDIR" >&2
  exit 2
fi
binary=$1
outdir=$2
root=$(cd "$(dirname "$0")/.." && pwd)

for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "build-deb: $tool is needed (apt-get install -y dpkg-dev binutils)" >&2
    exit 1
  }
done
[ -x "$binary" ] || {
  echo "build-deb: $binary is not an executable (build it first: cargo build -p ndsr-cli)" >&2
  exit 1
}

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
repository=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' "$root/Cargo.toml")
[ -n "$version" ] || {
  echo "build-deb: no version in [workspace.package] of Cargo.toml" >&2
  exit 1
}
debversion="$version-1"
arch=$(dpkg --print-architecture)
maintainer=${NDSR_DEB_MAINTAINER:-"The ndsr authors <ndsr@example.invalid>"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps wants debian/control and the files under debian/PACKAGE.
mkdir -p "$work/debian"
printf 'Source: ndsr\n\nPackage: ndsr\nArchitecture: any\n' >"$work/debian/control"
stage=$work/debian/ndsr
mkdir -p "$stage/DEBIAN"

install -d "$stage/usr/bin"
strip --strip-unneeded -o "$stage/usr/bin/ndsr" "$binary"
chmod 0755 "$stage/usr/bin/ndsr"
ndsr=$stage/usr/bin/ndsr

# Completions and man pages come from the CLI's own definitions.
completion() { # SHELL DEST
  install -d "$(dirname "$2")"
  if ! "$ndsr" completions "$1" >"$2" || [ ! -s "$2" ]; then
    echo "build-deb: \`ndsr completions $1\` failed or printed nothing" >&2
    exit 1
  fi
  chmod 0644 "$2"
}
completion bash "$stage/usr/share/bash-completion/completions/ndsr"
completion zsh "$stage/usr/share/zsh/vendor-completions/_ndsr"
completion fish "$stage/usr/share/fish/vendor_completions.d/ndsr.fish"

mkdir -p "$work/man"
"$ndsr" man -o "$work/man" || {
  echo "build-deb: \`ndsr man -o DIR\` failed" >&2
  exit 1
}
[ -s "$work/man/ndsr.1" ] || {
  echo "build-deb: \`ndsr man -o DIR\` wrote no ndsr.1 (it wrote: $(ls "$work/man"))" >&2
  exit 1
}
for page in "$work"/man/*; do
  name=$(basename "$page")
  section=${name##*.}
  case "$section" in
    [1-9]) ;;
    *) echo "build-deb: $name from \`ndsr man\` has no man section" >&2; exit 1 ;;
  esac
  install -d "$stage/usr/share/man/man$section"
  gzip -9n <"$page" >"$stage/usr/share/man/man$section/$name.gz"
  chmod 0644 "$stage/usr/share/man/man$section/$name.gz"
done

# The agent: its unit, its user, its configuration.
install -D -m 0644 "$root/packaging/ndsr-agent.service" "$stage/usr/lib/systemd/system/ndsr-agent.service"
install -D -m 0644 "$root/packaging/sysusers.d/ndsr.conf" "$stage/usr/lib/sysusers.d/ndsr.conf"
install -d -m 0755 "$stage/etc/ndsr"
{
  cat <<'HEAD'
# /etc/ndsr/agent.toml: the configuration of ndsr-agent.service (`ndsr agent`,
# which reads this file when started without --config).
#
# Installed by the ndsr package from the sample below (docs/agent.example.toml
# in the repository; /usr/share/doc/ndsr/examples/agent.example.toml here,
# with its template in examples/agent/), with what would act commented out
# (the sample token, template, registration and record_external, each
# marked "(package)"): as installed, the agent only reads. Every key:
# /usr/share/doc/ndsr/AGENT.md.gz. Relative paths are relative to this file
# (/etc/ndsr). A template's destination must be a directory the agent may
# write: see /usr/lib/systemd/system/ndsr-agent.service. Check an edit as
# the agent reads it (this file is root:ndsr 0640), then reload:
#   sudo -u ndsr ndsr agent --check --config /etc/ndsr/agent.toml && sudo systemctl reload ndsr-agent
#
HEAD
  # Comment out: the token and record_external lines, and each [[template]]
  # and [[register]] table down to the next blank line.
  awk '
    /^\[\[(template|register)\]\]/ { block = 1 }
    /^[[:space:]]*$/ { block = 0 }
    block && !/^#/ { print "# (package) " $0; next }
    /^(token|record_external) *=/ { print "# (package) " $0; next }
    { print }
  ' "$root/docs/agent.example.toml"
} >"$stage/etc/ndsr/agent.toml"
chmod 0644 "$stage/etc/ndsr/agent.toml"
if grep -Eq '^(\[\[(template|register)\]\]|token *=|record_external *=)' "$stage/etc/ndsr/agent.toml"; then
  echo "build-deb: the packaged agent.toml still has an active token, template, registration or record_external" >&2
  exit 1
fi
"$ndsr" agent --check --config "$stage/etc/ndsr/agent.toml" >/dev/null || {
  echo "build-deb: ndsr agent --check refuses the packaged agent.toml" >&2
  exit 1
}

# Documentation.
doc=$stage/usr/share/doc/ndsr
install -d "$doc/examples/agent"
install -m 0644 "$root/docs/agent.example.toml" "$doc/examples/agent.example.toml"
install -m 0644 "$root/docs/agent/haproxy.cfg.j2" "$doc/examples/agent/haproxy.cfg.j2"
gzip -9n <"$root/CHANGELOG.md" >"$doc/changelog.gz"
gzip -9n <"$root/README.md" >"$doc/README.md.gz"
gzip -9n <"$root/docs/AGENT.md" >"$doc/AGENT.md.gz"
{
  cat <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ndsr
Source: $repository

Files: *
Copyright: the ndsr authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.
Comment:
 /usr/bin/ndsr links these Rust crates statically, each under the licence
 named (from Cargo.lock, by \`cargo tree -p ndsr-cli -e normal,build\`):
 .
COPYRIGHT
  (cd "$root" && cargo tree -p ndsr-cli -e normal,build --prefix none -f '{p}|{l}' --locked --offline -q) |
    awk -F'|' '{ split($1, p, " "); if (p[1] ~ /^ndsr/) next; sub(/ \(\*\)$/, "", $2)
                 print " " p[1] " " p[2] ": " ($2 == "" ? "see the crate" : $2) }' |
    sort -u
} >"$doc/copyright"
find "$doc" -type f -exec chmod 0644 {} +

# Maintainer scripts, control, conffiles, md5sums.
for script in postinst prerm postrm; do
  install -m 0755 "$root/packaging/deb/$script" "$stage/DEBIAN/$script"
done
echo /etc/ndsr/agent.toml >"$stage/DEBIAN/conffiles"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e debian/ndsr/usr/bin/ndsr 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || {
  echo "build-deb: dpkg-shlibdeps found no dependencies of the binary" >&2
  exit 1
}
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: ndsr
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, adduser
Suggests: zookeeper
Section: net
Priority: optional
Homepage: $repository
Description: service registry and dynamic configuration on Apache ZooKeeper
 ndsr registers services, reads and watches configuration, takes locks and
 elects leaders on ZooKeeper, compatible with nd_service_registry, Curator,
 Finagle serversets and nerve.
 .
 This package holds the ndsr command line and its agent, ndsr-agent.service
 (installed, not enabled): an HTTP API, a dashboard, DNS, templates and
 health-checked registrations for every process on the host. Man pages and
 bash, zsh and fish completions are included.
CONTROL
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f ! -path ./etc/\* -printf '%P\0' |
  sort -z | xargs -0 md5sum >DEBIAN/md5sums)

mkdir -p "$outdir"
deb="$outdir/ndsr_${debversion}_${arch}.deb"
if [ -n "$fast" ]; then
  compress=(-Zgzip -z1)
else
  compress=(-Zxz)
fi
dpkg-deb --root-owner-group "${compress[@]}" --build "$stage" "$deb" >/dev/null
echo "$deb"
