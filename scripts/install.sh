#!/usr/bin/env bash
# Create .venv and install asr with its dev tools into it. Safe to re-run: it only
# reinstalls when pyproject.toml changed. Needs Python >= 3.10; on Debian it installs
# python3-venv (and g++, for kenlm) with apt-get when missing (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "install.sh: python3-venv is missing; installing it with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv
fi
if ! command -v g++ >/dev/null; then  # the kenlm test dependency compiles from source
  echo "install.sh: g++ is missing; installing it with apt-get" >&2
  apt-get update -qq && apt-get install -y -qq g++
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.asr-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,voices]'
  touch "$stamp"
fi
