#!/usr/bin/env bash
# Builds the release artifacts into dist/ and checks each one (not run by
# CI: it compiles in release mode, and verifies each crate by compiling it):
#
#   dist/ndsr-VERSION-cp39-abi3-manylinux*.whl  the portable Python wheel, } scripts/wheel.sh
#   dist/ndsr-VERSION.tar.gz                    its sdist (built once      } (auditwheel)
#                                               from source to prove it)
#   dist/ndsr_VERSION-1_ARCH.deb                the Debian package (packaging/build-deb.sh,
#                                               the release binary), installed and
#                                               removed by scripts/package-tests.sh when root
#   dist/crates/NAME-VERSION.crate              ndsr, ndsr-testkit, ndsr-agent, ndsr-cli:
#                                               `cargo package`, each built from its package
#   dist/SHA256SUMS
#
#   scripts/package.sh [--allow-dirty]
#
# --allow-dirty packages a work tree with uncommitted changes (for trying it;
# never for a release). How to install each: README.md, "Install".
set -euo pipefail
cd "$(dirname "$0")/.."

allow_dirty=
if [ "${1:-}" = --allow-dirty ]; then
  allow_dirty=--allow-dirty
elif [ $# -gt 0 ]; then
  echo "usage: scripts/package.sh [--allow-dirty]" >&2
  exit 2
fi
if [ -z "$allow_dirty" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "package: the work tree has uncommitted changes (git status); commit them, or --allow-dirty to try" >&2
  exit 1
fi

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
repository=$(sed -n '/^\[workspace.package\]/,/^\[/s/^repository = "\(.*\)"/\1/p' Cargo.toml)
echo "package: ndsr $version ($(git rev-parse --short HEAD))"
rm -rf dist
mkdir -p dist/crates

# 1. The Debian package, from the release binary.
echo "== the Debian package"
cargo build --release --locked -p ndsr-cli
deb=$(packaging/build-deb.sh target/release/ndsr dist | tail -n 1)
dpkg-deb --info "$deb" >/dev/null
contents=$(dpkg-deb --contents "$deb")
grep -q ' \./usr/bin/ndsr$' <<<"$contents" || {
  echo "package: $deb holds no /usr/bin/ndsr" >&2
  exit 1
}
if command -v lintian >/dev/null 2>&1; then
  # Advice only: the package is built without debian/ (no source package).
  lintian --no-tag-display-limit "$deb" || true
fi
if [ "$(id -u)" = 0 ]; then
  scripts/package-tests.sh --deb "$deb" --no-crates
else
  echo "package: not root: $deb was built but not installed to check it (run scripts/package-tests.sh --deb $deb as root)"
fi

# 2. The crates: packaged and verified (each compiled from its .crate).
echo "== the crates"
case "$repository" in
  *example.invalid*) echo "package: warning: [workspace.package] repository is still $repository: set it before publishing" >&2 ;;
esac
# shellcheck disable=SC2086
cargo package --locked $allow_dirty -p ndsr -p ndsr-testkit -p ndsr-agent -p ndsr-cli
for crate in ndsr ndsr-testkit ndsr-agent ndsr-cli; do
  cp "target/package/$crate-$version.crate" dist/crates/
done

# 3. The portable wheel and the sdist: scripts/wheel.sh builds both (the
# manylinux2014 wheel with maturin's zig linker), checks the wheel with
# auditwheel and builds the sdist from source in a clean venv.
echo "== the wheel and the sdist"
scripts/wheel.sh dist
wheel=$(find dist -maxdepth 1 -name "ndsr-$version-*.whl" | head -n 1)
sdist=$(find dist -maxdepth 1 -name "ndsr-$version.tar.gz" | head -n 1)
[ -n "$wheel" ] || { echo "package: no dist/ndsr-$version-*.whl" >&2; exit 1; }
[ -n "$sdist" ] || { echo "package: no dist/ndsr-$version.tar.gz" >&2; exit 1; }
# The wheel installs by itself into a fresh venv, and both modules import.
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
"$venv/bin/python" -c 'import ndsr, nd_service_registry' || {
  echo "package: ndsr or nd_service_registry does not import from $wheel" >&2
  exit 1
}
echo "package: $wheel installs into a fresh venv; ndsr and nd_service_registry import"

(cd dist && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs sha256sum >SHA256SUMS)
echo "package: dist/:"
(cd dist && ls -l -R .)
