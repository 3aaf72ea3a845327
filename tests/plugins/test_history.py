"""Run history: rows written by the notifier hooks, retention, the admin list and timeline."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess

import pytest
from django.db import OperationalError
from django.utils import timezone

from cronman_core.job import JobRun
from cronman_core.jobspec import parse
from cronman_core.process import create_time, hostname
from cronman_plugins.history import plugin
from cronman_plugins.history.models import CronRun
from cronman_plugins.tasks.jobs import CleanCronTasks
from cronman_plugins.tasks.models import CronTask
from tests.conftest import wait_for
from tests.support import tasks_support
from tests.testapp.cron_jobs import Fail

sqlite_project = tasks_support.sqlite_project
db_project = tasks_support.db_project
postgres_databases = tasks_support.postgres_databases

TIMELINE_URL = "/admin/cron_history/cronrun/timeline/"


def failed_run(message: str = "kaput") -> JobRun:
    run = JobRun(spec=parse(f"Fail:{message}"), job_class=Fail)
    plugin.cronman_job_started(run)
    run.finish("failed", f"RuntimeError: {message}")
    plugin.cronman_job_failed(run, RuntimeError(message))
    return run


@pytest.mark.django_db
def test_a_failing_run_is_recorded_with_its_error(admin_client):
    run = failed_run()
    row = CronRun.objects.get(run_id=run.run_id)
    assert (row.job_name, row.job_spec, row.status) == ("Fail", "Fail:kaput", "failed")
    assert row.error == "RuntimeError: kaput"
    assert (row.pid, row.host, row.exit_reason) == (run.pid, run.host, "run() raised RuntimeError")
    assert row.duration == pytest.approx(run.duration)
    page = admin_client.get(f"/admin/cron_history/cronrun/{row.pk}/change/").content.decode()
    assert "RuntimeError: kaput" in page
    listing = admin_client.get("/admin/cron_history/cronrun/?status=failed").content.decode()
    assert "Fail:kaput" in listing


@pytest.mark.django_db
def test_a_database_error_never_reaches_the_job(monkeypatch, caplog):
    def broken(**kwargs):
        raise OperationalError("database is down")

    monkeypatch.setattr(CronRun.objects, "update_or_create", broken)
    with caplog.at_level(logging.WARNING, logger="cronman.plugins.history"):
        failed_run("outage")  # does not raise
    assert "database is down" in caplog.text
    assert CronRun.objects.count() == 0


@pytest.mark.django_db
def test_runs_of_vanished_workers_are_closed_at_each_tick():
    dead = subprocess.Popen(["true"])
    dead.wait()
    common = {"job_name": "Sleep", "job_spec": "Sleep", "started_at": timezone.now(), "status": "started"}
    CronRun.objects.create(run_id="dead", host=hostname(), pid=dead.pid, process_started=1.0, **common)
    CronRun.objects.create(run_id="alive", host=hostname(), pid=os.getpid(),
                           process_started=create_time(os.getpid()), **common)
    CronRun.objects.create(run_id="elsewhere", host="other-host", pid=dead.pid, process_started=1.0, **common)
    plugin.cronman_scheduler_tick_done(now=timezone.now())
    status = dict(CronRun.objects.values_list("run_id", "status"))
    assert status == {"dead": "killed", "alive": "started", "elsewhere": "started"}
    assert CronRun.objects.get(run_id="dead").exit_reason.startswith("worker vanished")


@pytest.mark.django_db
def test_retention_deletes_older_rows_and_nothing_newer(settings):
    settings.CRONMAN_HISTORY_DAYS = 7
    settings.CRONMAN_TASKS_DAYS = 7
    now = timezone.now()
    ages = {"old": dt.timedelta(days=7, minutes=1), "young": dt.timedelta(days=6, hours=23)}
    for label, age in ages.items():
        CronRun.objects.create(
            run_id=label, job_name="Noop", job_spec="Noop", host="h", pid=1,
            started_at=now - age, status="succeeded",
        )
        task = CronTask.objects.create(cron_job="TaskEcho", params=label, status="finished")
        CronTask.objects.filter(pk=task.pk).update(created_at=now - age)
    CronTask.objects.create(cron_job="TaskEcho", params="open", status="waiting")
    CronTask.objects.filter(params="open").update(created_at=now - dt.timedelta(days=30))
    CleanCronTasks().run()
    assert list(CronRun.objects.values_list("run_id", flat=True)) == ["young"]
    assert sorted(CronTask.objects.values_list("params", flat=True)) == ["open", "young"]


@pytest.mark.django_db
def test_timeline_shows_runs_next_run_and_lock_holder(admin_client, settings, project):
    settings.CRONMAN_DATA_DIR = str(project.data_dir)
    failed_run()
    worker = project.popen("cron_worker", "run", "Sleep:30,tag=timeline")
    try:
        wait_for(lambda: any(m.get("tag") == "timeline" for m in project.read_marks()))
        before = timezone.now()
        page = admin_client.get(TIMELINE_URL).content.decode()
        after = timezone.now()
    finally:
        worker.terminate()
        worker.communicate(timeout=20)
    assert '<svg id="cron-timeline"' in page
    assert page.count('class="run"') == 1 and "RuntimeError: kaput" in page
    rows = {name: page.split(f'<tr data-job="{name}">')[1].split("</tr>")[0] for name in ("Fail", "Noop", "Sleep")}
    assert "Failed" in rows["Fail"]
    assert any(f"{next_five_minutes(t):%Y-%m-%d %H:%M} (Noop)" in rows["Noop"] for t in (before, after))
    assert f"PID {worker.pid} on " in rows["Sleep"] and "Sleep:30,tag=timeline" in rows["Sleep"]


def next_five_minutes(now: dt.datetime) -> dt.datetime:
    """When ``*/5 * * * *`` (Noop in tests.testapp.schedule) fires next after ``now``."""
    later = (now + dt.timedelta(minutes=5)).replace(second=0, microsecond=0)
    return later - dt.timedelta(minutes=later.minute % 5)


def test_runs_of_real_workers_are_recorded(db_project):
    assert db_project.run("cron_worker", "run", "Fail:kaput").returncode == 1
    assert db_project.run("cron_worker", "run", "Noop").returncode == 0
    rows = db_project.query(
        "SELECT job_spec, status, error, exit_reason, duration FROM cron_history_cronrun ORDER BY id"
    )
    assert [(row[0], row[1], row[3]) for row in rows] == [
        ("Fail:kaput", "failed", "run() raised RuntimeError"),
        ("Noop", "succeeded", "run() returned"),
    ]
    failed_error = rows[0][2]
    assert failed_error.startswith("Traceback (most recent call last):")  # kept by default, bounded
    assert failed_error.rstrip().endswith("RuntimeError: kaput") and rows[1][2] == ""
    assert all(row[4] is not None and row[4] >= 0 for row in rows)


def test_a_worker_without_history_tables_still_succeeds(project):
    project.configure(DATABASES=tasks_support.sqlite_databases(project.path / "empty.sqlite3"))
    result = project.run("cron_worker", "run", "Noop")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "failed: no such table" in line]
    assert len(warnings) == 1, result.stderr


@pytest.mark.django_db
def test_missed_fires_are_one_history_row_whichever_hosts_report_them(tmp_path, settings, monkeypatch) -> None:
    import cronman_plugins.pidfile
    from cronman_core.plugins import CronmanPluginManager
    from cronman_core.scheduler import tick
    from cronman_core.scheduler.tick import Scheduler
    from tests.support.schedule import ScheduleSource
    from tests.test_scheduler import _FakeClock, at

    settings.CRONMAN_TIME_ZONE = "UTC"
    settings.CRONMAN_MISFIRE_GRACE = 300
    pm = CronmanPluginManager()
    pm.register(ScheduleSource([("*/15 * * * *", "Noop")]))
    pm.register(cronman_plugins.pidfile)
    pm.register(plugin)
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: None)
    for host in ("host-a", "host-b"):  # both were down from 07:00 to 10:01
        data_dir = tmp_path / host
        data_dir.mkdir(mode=0o700)
        settings.CRONMAN_DATA_DIR = str(data_dir)
        scheduler = Scheduler(pm=pm, clock=_FakeClock(at(7, 0, 30)))
        scheduler.state.write_watermark(at(7, 0, 30), None)
        scheduler.clock.now = at(10, 1)
        scheduler.tick()
    (row,) = CronRun.objects.all()
    assert (row.status, row.job_spec, row.pid) == ("missed", "Noop", 0)
    assert row.started_at == dt.datetime.fromtimestamp(at(7, 15), dt.UTC)
    assert row.exit_reason == "missed 11 fire(s): older than its misfire grace"


CONCURRENT_RUNS = """
from cronman_core.worker import run_job
for _ in range(10):
    assert run_job("Noop") == 0
"""


def test_concurrent_runs_on_sqlite_lose_no_history_row(project):
    """20 worker processes at once, 10 runs each, on SQLite as Django configures it by default
    (no busy timeout option): "database is locked" must cost no row."""
    plain = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(project.path / "plain.sqlite3")}}
    sqlite_project = tasks_support.DbProject(project, plain)
    sqlite_project.migrate()
    writers = [sqlite_project.popen("shell", "-c", CONCURRENT_RUNS) for _ in range(20)]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    assert [writer.returncode for writer in writers] == [0] * 20, outputs
    assert not [err for _out, err in outputs if "failed" in err], outputs
    assert sqlite_project.query("SELECT COUNT(*), SUM(status = 'succeeded') FROM cron_history_cronrun") == [(200, 200)]


def _history_scheduler(tmp_path, settings, entries):
    import cronman_plugins.pidfile
    from cronman_core.plugins import CronmanPluginManager
    from cronman_core.scheduler.tick import Scheduler
    from tests.support.schedule import ScheduleSource
    from tests.test_scheduler import _FakeClock, at

    settings.CRONMAN_TIME_ZONE = "UTC"
    settings.CRONMAN_MISFIRE_GRACE = 0
    settings.CRONMAN_DATA_DIR = str(tmp_path)
    pm = CronmanPluginManager()
    pm.register(ScheduleSource(entries))
    pm.register(cronman_plugins.pidfile)
    pm.register(plugin)
    scheduler = Scheduler(pm=pm, clock=_FakeClock(at(9, 59, 30)))
    scheduler.state.write_watermark(at(9, 59, 30), None)
    return scheduler


@pytest.mark.django_db
def test_a_fire_whose_spawn_failed_until_its_grace_ran_out_is_missed_with_that_reason(
    tmp_path, settings, monkeypatch
) -> None:
    from cronman_core.errors import CronmanError
    from cronman_core.scheduler import tick
    from tests.test_scheduler import at

    scheduler = _history_scheduler(tmp_path, settings, [("* * * * *", "Noop")])

    def failing(spec, **run):
        raise CronmanError("fork failed: Cannot allocate memory")

    monkeypatch.setattr(tick, "spawn_job", failing)
    scheduler.clock.now = at(10, 0, 1)
    scheduler.tick()  # 10:00 fails; with no grace its retry is the next tick, past its minute
    started: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: started.append(spec))
    scheduler.clock.now = at(10, 1, 1)
    scheduler.tick()
    assert started == ["Noop"]  # 10:01 runs
    (row,) = CronRun.objects.all()
    assert (row.status, row.started_at) == ("missed", dt.datetime.fromtimestamp(at(10, 0), dt.UTC))
    assert row.exit_reason == "missed 1 fire(s): spawn failed: fork failed: Cannot allocate memory"
    scheduler.clock.now = at(10, 3, 1)  # the failure was accounted for: a later miss has the usual reason
    scheduler.state.write_watermark(at(10, 1, 30), None)
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: None)
    scheduler.tick()
    reasons = sorted(CronRun.objects.values_list("exit_reason", flat=True))
    assert reasons[-1] == "missed 1 fire(s): spawn failed: fork failed: Cannot allocate memory"
    assert "missed 1 fire(s): older than its misfire grace" in reasons


@pytest.mark.django_db
def test_fires_due_while_the_scheduler_is_disabled_are_missed_with_that_reason(tmp_path, settings, monkeypatch) -> None:
    from cronman_core.scheduler import tick
    from tests.test_scheduler import at

    scheduler = _history_scheduler(tmp_path, settings, [("* * * * *", "Noop")])
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: pytest.fail("nothing starts while disabled"))
    scheduler.switch.disable()
    scheduler.clock.now = at(10, 0, 1)
    scheduler.tick()
    (row,) = CronRun.objects.all()
    assert (row.status, row.exit_reason) == ("missed", "missed 1 fire(s): scheduler disabled")
