#!/usr/bin/env bash
# Builds the portable Python wheel (and the sdist) of crates/ndsr-py and
# checks them:
#
#   scripts/wheel.sh OUTDIR               the release wheel, the sdist, and a
#                                         build of the sdist from source in a
#                                         clean venv (scripts/package.sh)
#   scripts/wheel.sh --no-sdist-build OUTDIR   the same, without the build
#                                         from source (it compiles everything
#                                         again in release mode: minutes)
#   scripts/wheel.sh --dev OUTDIR         the wheel only, dev profile without
#                                         debug info (scripts/python-tests.sh)
#   scripts/wheel.sh --check WHEEL        only the checks below, of a wheel
#
# The wheel: abi3 for CPython 3.9+, linked by maturin with zig (ziglang,
# pip-installed into .venv-ndsr by scripts/setup.sh) against glibc 2.17, so
# it is tagged manylinux2014 (manylinux_2_17) and installs on any Linux
# with glibc 2.17 or later. The check: `auditwheel show` must give the very
# tag the wheel's name carries, so manylinux_2_17 for the wheel built here
# (a symbol from a newer glibc makes it a newer tag, and the check fails),
# and never one newer than manylinux_2_28; and the extension may need no
# shared library beyond glibc's (the manylinux policy). The last line
# printed is the wheel's path.
#
# The zig build compiles for an explicit --target, so its objects live in
# target/<triple>/ apart from target/debug: the dev wheel reuses none of
# the workspace's test build but the build scripts and proc macros.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/wheel.sh [--dev | --no-sdist-build] OUTDIR | --check WHEEL" >&2
  exit 2
}
mode=release
sdist_build=1
while [ $# -gt 1 ]; do
  case "$1" in
    --dev) mode=dev ;;
    --check) mode=check ;;
    --no-sdist-build) sdist_build= ;;
    *) usage ;;
  esac
  shift
done
[ $# -eq 1 ] || usage
case "$1" in -*) usage ;; esac
out=$1

venv=.venv-ndsr
py=$venv/bin/python
if ! [ -x "$venv/bin/maturin" ] || ! "$py" -c 'import ziglang, auditwheel' 2>/dev/null; then
  echo "wheel: run scripts/setup.sh first ($venv with maturin, ziglang and auditwheel)" >&2
  exit 1
fi
# maturin finds zig as `python3 -m ziglang`, with the venv's python3 first.
export PATH="$PWD/$venv/bin:$PATH"

if [ "$mode" = check ]; then
  wheel=$out
  [ -f "$wheel" ] || { echo "wheel: no such wheel: $wheel" >&2; exit 1; }
else
  mkdir -p "$out"
  rm -f "$out"/ndsr-*.whl "$out"/ndsr-*.tar.gz
  build=(--locked --zig --compatibility manylinux2014 -m crates/ndsr-py/Cargo.toml -o "$out" -i "$py")
  if [ "$mode" = dev ]; then
    # Debug info makes a 50 MB wheel and much of the build's time; the
    # tests need neither (a panic still names its file and line).
    CARGO_PROFILE_DEV_DEBUG=0 maturin build --quiet "${build[@]}" >&2
  else
    maturin build --quiet --release "${build[@]}" >&2
  fi
  wheel=$(ls "$out"/ndsr-*.whl)
  [ "$(echo "$wheel" | wc -l)" = 1 ] || { echo "wheel: more than one wheel in $out" >&2; exit 1; }
fi

# The tag: abi3 (one wheel for every CPython from 3.9), and auditwheel's
# verdict from the symbols and libraries the extension really uses.
case "$(basename "$wheel")" in
  *-cp39-abi3-*) ;;
  *) echo "wheel: $wheel is not an abi3 wheel for CPython 3.9+ (cp39-abi3)" >&2; exit 1 ;;
esac
show=$(auditwheel show "$wheel")
tag=$(echo "$show" | tr -s ' \n' ' ' | sed -n 's/.*consistent with the following platform tag: "\([^"]*\)".*/\1/p')
glibc_minor=$(echo "$tag" | sed -n 's/^manylinux_2_\([0-9]*\)_.*/\1/p')
if [ -z "$glibc_minor" ] || [ "$glibc_minor" -gt 28 ]; then
  echo "$show" >&2
  echo "wheel: auditwheel show gives '$tag' for $wheel: not manylinux_2_28 or older" >&2
  exit 1
fi
case "$(basename "$wheel")" in
  *"${tag}"*) ;;
  *) echo "wheel: $wheel is not tagged $tag, the tag auditwheel show gives" >&2; exit 1 ;;
esac
# The libraries the extension loads: glibc's own only (no OpenSSL: TLS is
# rustls; no libgcc_s: zig links the unwinder in).
needed=$("$py" - "$wheel" <<'PY'
import io, sys, zipfile
from elftools.elf.elffile import ELFFile
from elftools.elf.dynamic import DynamicSection
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.endswith(".so"):
            elf = ELFFile(io.BytesIO(z.read(name)))
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            print(tag.needed)
PY
)
for lib in $needed; do
  case "$lib" in
    libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux-*.so.*) ;;
    *) echo "wheel: the extension in $wheel needs $lib, beyond glibc's libraries" >&2; exit 1 ;;
  esac
done
echo "wheel: $(basename "$wheel"): auditwheel: $tag; needs only $(echo "$needed" | tr '\n' ' ')" >&2

if [ "$mode" = release ]; then
  maturin sdist -m crates/ndsr-py/Cargo.toml -o "$out" >&2
  sdist=$(ls "$out"/ndsr-*.tar.gz)
  # The workspace's path dependencies (crates/ndsr, and what it names) are
  # inside the sdist, with the lock file.
  members=$(tar -tzf "$sdist")
  top=$(basename "$sdist" .tar.gz)
  for member in pyproject.toml Cargo.toml Cargo.lock crates/ndsr-py/Cargo.toml crates/ndsr/Cargo.toml \
    crates/ndsr/src/lib.rs python/ndsr/__init__.py python/nd_service_registry/__init__.py; do
    echo "$members" | grep -qx "$top/$member" || { echo "wheel: $sdist has no $member" >&2; exit 1; }
  done
  if [ -n "$sdist_build" ]; then
    # Built from source as a user would (pip wheel: maturin from the index,
    # cargo with the sdist's lock file) in a clean venv. The objects go to
    # target/sdist-build so that a second run is not a cold build.
    echo "wheel: building $sdist from source in a clean venv (release: minutes)" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m venv "$tmp/venv"
    CARGO_TARGET_DIR="$PWD/target/sdist-build" "$tmp/venv/bin/pip" wheel --quiet --disable-pip-version-check \
      --no-deps -w "$tmp/wheels" "$sdist" >&2
    built=$(ls "$tmp"/wheels/ndsr-*.whl)
    "$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$built"
    (cd "$tmp" && venv/bin/python -c 'import ndsr, nd_service_registry, ndsr._core') || {
      echo "wheel: the wheel built from $sdist does not import" >&2
      exit 1
    }
    echo "wheel: $(basename "$sdist") builds from source ($(basename "$built")) and imports" >&2
  fi
fi
echo "$wheel"
