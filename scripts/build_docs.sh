#!/usr/bin/env bash
# Build the documentation site into $1 (default: docs/_build/html): `pip install ".[docs]"` first.
# -n (nitpicky) with -W: every warning is an error, a cross-reference that resolves to nothing
# included; --keep-going reports all of them before failing. The gallery runs every example
# (docs/_ext/fi_gallery.py), so the build fails when one does.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/_build/html}"
unset FASTINFLUENCE_DOCS_SKIP_EXAMPLES
python -m sphinx -b html -n -W --keep-going -j 1 -d "${out}.doctrees" docs "$out"
