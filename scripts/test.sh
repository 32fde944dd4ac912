#!/usr/bin/env bash
# Quick start 2: install, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest -q -rs "$@"  # -rs: say why a test skipped
