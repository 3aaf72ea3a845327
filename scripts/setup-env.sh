#!/usr/bin/env bash
# Create (or refresh) .venv with cronman, every extra and the test plugin.
# Idempotent: reinstalls only when pyproject.toml files changed. Quiet: one
# line on stdout; pip's output goes to .venv/setup.log, shown only on failure.
# VENV=path uses another virtualenv (the example test shares the repo's); PIN="Django==4.2.*" adds a
# requirement (tests/test_django_versions.py builds .venv-django42 so).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PIN=${PIN:-}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.cronman-installed
log=$VENV/setup.log
want=$({ cat pyproject.toml tests/plugin_pkg/pyproject.toml; echo "$PIN"; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Setting up $VENV: cronman with every extra (pip log: $log)"
  # mysqlclient (the mysql extra) builds against MariaDB's client library: Debian's headers first.
  if ! pkg-config --exists libmariadb 2>/dev/null && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config; } \
      >"$VENV/apt.log" 2>&1 || { tail -n 20 "$VENV/apt.log" >&2; echo "setup failed: see $VENV/apt.log" >&2; exit 1; }
  fi
  if ! { "$VENV/bin/python" -m pip install --upgrade pip \
         && "$VENV/bin/python" -m pip install -e ".[dev,cronitor,healthchecks,redis,sentry,celery,postgres,mysql,prometheus]" \
              -e tests/plugin_pkg ${PIN:+"$PIN"} \
         && "$VENV/bin/python" -c "import cronman_core, cronman_testplugin, django, pluggy"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "setup failed: see $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
