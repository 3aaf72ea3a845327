#!/usr/bin/env bash
# Set everything up and run the example project (example/, SQLite): each step
# prints a caption saying what it shows, then the command and its output
# (stdout and stderr both on stdout). EXAMPLE_SECONDS=0 skips the daemon part
# (short mode); VENV=path uses an existing virtualenv (see setup-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
PY="$(cd "${VENV:-.venv}" && pwd)/bin/python"
cd example
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
caption() { printf '\n%s# %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; }
manage() { show "python manage.py $*"; "$PY" manage.py "$@" 2>&1; }
shell() { "$PY" manage.py shell --verbosity 0 -c "$1" 2>&1; }

caption "1. Create the tables of the Cron Tasks and run history apps (SQLite, example/db.sqlite3)"
manage migrate --verbosity 0
echo "(migrated)"

caption "2. Django's system checks, cronman's included: every schedule entry, job and plugin is usable"
manage check

caption "3. The active plugins: where each one comes from and the hooks it implements"
manage cron_plugins

caption "4. The registered jobs (cron_jobs modules of the installed apps)"
manage cron_worker info

caption "5. The next two fire times of each schedule entry (example/demo/schedule.py), in the project's time zone"
manage cron_scheduler next 2

caption "6. Run a job directly in this process: its lock, the hooks, a history row, exit code 0"
manage cron_worker run 'HelloWorld:"big world"'

caption "7. A job that fails: exit code 1, its traceback in the output (a log file for spawned workers) and in its history row"
code=0; manage cron_worker run Flaky || code=$?
echo "(exit code $code)"

caption "8. A lock skip, on purpose: Export holds a class lock, so a second Export while the first runs is skipped (exit code 0)"
"$PY" manage.py cron_worker run Export:sleep=4 >/dev/null 2>&1 &
first=$!
for _ in $(seq 50); do  # until the first Export holds its lock
  "$PY" manage.py cron_worker status Export 2>/dev/null | grep -q ALIVE && break; sleep 0.2
done
manage cron_worker run Export
wait "$first"

caption "9. A catch-up: as if the scheduler's host had been down for 5 minutes, one tick starts each missed job once"
echo "(the scheduler's watermark, its last tick, is set 5 minutes back)"
shell "import time; from cronman_core.scheduler.tick import Scheduler
Scheduler().state.write_watermark(time.time() - 300, None, reset=True)"
manage cron_scheduler run
for _ in $(seq 100); do  # until those runs ended: RunCronTasks among them would start step 10's request itself
  "$PY" manage.py cron_worker status 2>/dev/null | grep -q ALIVE || break; sleep 0.2
done
echo "(HelloWorld:world is due every minute: one run covers the missed fires, within CRONMAN_MISFIRE_GRACE; each"
echo " 'started' line names the fire it runs for and how late it started)"

caption "10. A requested run, as the admin's Cron Tasks 'run now' makes one: the next tick starts it"
shell "from cronman_plugins.tasks.models import CronTask
task = CronTask.objects.run_now('HelloWorld', \"'admin visitor',sleep=5\")
print(f'Cron Task {task.pk}: {task.job_spec}, {task.status}')"
manage cron_scheduler run
sleep 1.5

caption "11. The workers running now, from their run records (kill, resume and clean act on these)"
manage cron_worker status

seconds=${EXAMPLE_SECONDS:-65}
if [ "$seconds" -gt 0 ]; then
  caption "12. The scheduler daemon for $seconds s: it sleeps until each fire time and starts the job on time"
  show "timeout -s TERM $seconds python manage.py cron_scheduler daemon"
  timeout --preserve-status -s TERM "$seconds" "$PY" manage.py cron_scheduler daemon 2>&1
  sleep 3
else
  caption "12. (the scheduler daemon is skipped: EXAMPLE_SECONDS=0)"
fi

caption "13. The run history (Admin > Cron history > Cron runs), newest first"
sleep 4  # the requested run's nap
shell "from cronman_plugins.history.models import CronRun
for run in CronRun.objects.order_by('-started_at')[:12]:
    error = run.error.strip().splitlines()[-1] if run.error else ''
    print(f'{run.started_at:%H:%M:%S}  {run.status:<9} {run.job_spec:<32} {error}')"

caption "14. The last lines of the newest workers' run logs (example/.cronman/logs/)"
for log in $(ls -t .cronman/logs/* 2>/dev/null | head -3); do
  echo "== $log"; tail -n 3 "$log"
done

caption "Done. The admin: cd example; python manage.py createsuperuser; python manage.py runserver"
