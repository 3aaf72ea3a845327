#!/usr/bin/env bash
# Create (or refresh) .venv with cronman, every extra and the test plugin.
# Idempotent: reinstalls only when pyproject.toml files changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.cronman-installed
want=$(cat pyproject.toml tests/plugin_pkg/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e ".[dev,cronitor,healthchecks,redis,sentry,celery,postgres]" -e tests/plugin_pkg \
    2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import cronman_core, cronman_testplugin, django, pluggy"
  echo "$want" > "$stamp"
fi
