#!/usr/bin/env bash
# Build the documentation site into $1 (default: docs/_build/html) with every warning an error.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/_build/html}"
unset FASTINFLUENCE_DOCS_SKIP_EXAMPLES  # the gallery runs every example
python -m sphinx -b html -n -W --keep-going -j 1 -d "${out}.doctrees" docs "$out"
