#!/usr/bin/env bash
# The compiled core under AddressSanitizer and UBSan: a build with both (at -O1;
# every layout, as in the release build: problem.hpp), then the tests
# of the kernels (the multinomial ones too), influence, sparse input, top-k and solvers against it.
# Usage: bash scripts/sanitize.sh [extra pytest arguments]
# Its last result is recorded in docs/guide/architecture.md ("Build and configuration").
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
python -m pip install --quiet --upgrade pip

start=$SECONDS
FASTINFLUENCE_SANITIZE=ON FASTINFLUENCE_WERROR=ON pip install --quiet ".[test]"
echo "sanitizer build and install: $((SECONDS - start)) s"

# The instrumented module is loaded into an uninstrumented Python: the ASan
# runtime must come first. Python itself "leaks" at exit, so leak checks are off;
# any other report (or any UB) stops the run with an error.
# libstdc++ too: Python does not link it, and ASan's __cxa_throw interceptor must find it at start
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
python -c "import fastinfluence._core as c; i = c.build_info(); assert i['sanitizers'], i; print('core:', i)"
start=$SECONDS
python -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_influence.py tests/test_sparse.py \
  tests/test_fitting.py tests/test_validation.py \
  tests/test_top_k.py tests/test_solvers.py tests/test_interrupts.py tests/test_multinomial_kernels.py "$@"
echo "tests under the sanitizers: $((SECONDS - start)) s"
