#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m pytest --durations=20 "$@"  # the slowest tests are listed, to keep CI short
