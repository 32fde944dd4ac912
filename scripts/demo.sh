#!/usr/bin/env bash
# Quick start 1: install, then run the connected-digits recipe to a WER table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PATH="$PWD/.venv/bin:$PATH" bash recipes/digits/run.sh "$@"
