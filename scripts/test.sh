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
if [ "$#" -gt 0 ]; then  # a chosen subset: pytest as asked
  exec python3 -m pytest "$@"
fi
# The quick tests share the 2 cores (pytest-xdist); so do the browser tests and the slow ones
# that time nothing but their own servers (each worker starts its own demo server). The load
# tests, which measure answer times under the load they make, run alone. The slowest are
# listed, to keep CI short.
python3 -m pytest -n 2 -m "not slow and not browser" --durations=10
python3 -m pytest -n 2 -m "(slow and not browser) or (browser and not slow)" --durations=20
python3 -m pytest -m "slow and browser" --durations=5
