#!/usr/bin/env bash
# Set everything up and run the example project's scheduler on SQLite:
# one tick (jobs due this minute fire at once), then the daemon until the
# next minute boundaries have fired, then the worker status and run logs.
# EXAMPLE_SECONDS=0 skips the daemon part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
PY="$PWD/.venv/bin/python"
cd example
export PYTHONDONTWRITEBYTECODE=
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step python manage.py migrate
"$PY" manage.py migrate --verbosity 0
step python manage.py check
"$PY" manage.py check
step python manage.py cron_plugins
"$PY" manage.py cron_plugins
step python manage.py cron_worker info
"$PY" manage.py cron_worker info
step python manage.py cron_worker run 'HelloWorld:"big world"'
"$PY" manage.py cron_worker run 'HelloWorld:"big world"'
step python manage.py cron_scheduler next 2
"$PY" manage.py cron_scheduler next 2
step python manage.py cron_scheduler run
"$PY" manage.py cron_scheduler run
sleep 1.5
step python manage.py cron_worker status
"$PY" manage.py cron_worker status
seconds=${EXAMPLE_SECONDS:-65}
if [ "$seconds" -gt 0 ]; then
  step timeout -s TERM "$seconds" python manage.py cron_scheduler daemon
  timeout --preserve-status -s TERM "$seconds" "$PY" manage.py cron_scheduler daemon
  sleep 6
fi
step python manage.py cron_worker status
"$PY" manage.py cron_worker status
step "tail .cronman/logs/*  (the workers' run logs)"
for log in $(ls -t .cronman/logs/* 2>/dev/null | head -4); do
  echo "== $log"; tail -n 5 "$log"
done
