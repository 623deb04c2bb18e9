#!/usr/bin/env bash
# The Python part of the README's test command: builds the portable wheel
# (scripts/wheel.sh --dev: abi3, manylinux2014 by maturin's zig linker,
# checked by auditwheel), installs it into a fresh venv with the tests'
# dependencies only, and runs pytest there against a real ZooKeeper (an
# `ndsr sandbox` each pytest run starts and stops by pid):
#   - the Pythonic API and the drop-in's fixes, and the original's own
#     tests, ported, against the drop-in: in the fresh venv
#     (target/wheel-venv), from the wheel a user would install;
#   - the original's ported tests against the Python original (.venv),
#     with the same results.
# The wheel is also installed into .venv-ndsr, where the bench and the demo
# look for the drop-in. scripts/setup.sh makes both venvs.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv-ndsr/bin/maturin ] || { echo "python-tests: run scripts/setup.sh first (.venv-ndsr)" >&2; exit 1; }
[ -x .venv/bin/python ] || { echo "python-tests: .venv (the Python original) is missing; run scripts/setup.sh" >&2; exit 1; }

cargo build --quiet --locked -p ndsr-cli
wheel=$(scripts/wheel.sh --dev target/wheels | tail -n 1)

# A fresh venv each run: nothing but the wheel and the tests' own
# dependencies (the versions scripts/setup.sh puts in .venv-ndsr).
venv=target/wheel-venv
python3 -m venv --clear "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$wheel" pytest==9.2.0 kazoo==2.11.0 pydantic==2.14.3
py=$PWD/$venv/bin/python
# The modules under test come from the wheel, not from the source tree.
(cd / && "$py" -c '
import sys, ndsr, ndsr._core, nd_service_registry
for m in (ndsr, ndsr._core, nd_service_registry):
    assert m.__file__.startswith(sys.prefix + "/"), m.__file__
') || { echo "python-tests: $venv does not import ndsr from $wheel" >&2; exit 1; }
.venv-ndsr/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"

export NDSR_BIN="$PWD/target/debug/ndsr" NO_COLOR=1
echo "== pytest: the ndsr module and the drop-in ($(basename "$wheel"), in a fresh venv)"
"$py" -m pytest -p no:cacheprovider -q crates/ndsr-py/tests
# The original is flaky in places (its own tests race its background
# threads): a failure of its own is retried before it counts.
echo "== pytest: the original's ported tests against the Python original"
.venv/bin/python -m pytest -p no:cacheprovider -q -W ignore::DeprecationWarning --reruns 2 \
  crates/ndsr-py/tests/original_suite
