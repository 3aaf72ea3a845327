"""dbschedule: entries in the database, validated like CRON_JOBS, merged into the schedule, read through outages.

The admin in Chromium, with a running daemon, is in test_admin_browser.py.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronman_core.checks import entry_problems
from cronman_core.testing import CronmanProject
from cronman_plugins.dbschedule.models import ScheduledJob
from tests.conftest import wait_for
from tests.support.tasks_support import DbProject, postgres_database, sqlite_databases
from tests.test_scheduler_processes import away_from_minute_edge

ADD_URL = "/admin/cron_dbschedule/scheduledjob/add/"
#: The plugin is disabled in tests.settings (in-process tests have no database access): on here.
ENABLED = {"CRONMAN_DISABLED_PLUGINS": ["tasks", "history"]}


def _post(admin_client: Any, **fields: str) -> Any:
    data = {"time_spec": "*/5 * * * *", "job_spec": "Echo:x", "options": "{}", "enabled": "on", "note": ""}
    data.update(fields)
    return admin_client.post(ADD_URL, data)


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"time_spec": "61 * * * *"}, "time_spec", "61"),
    ({"time_spec": "0 0 31 2 *"}, "time_spec", "never fires"),
    ({"job_spec": "NoSuchJob"}, "job_spec", "NoSuchJob"),
    ({"job_spec": 'Echo:"open'}, "job_spec", "unbalanced quotes"),
    ({"job_spec": "Sleep:1,2,3,4"}, "job_spec", "Sleep"),
    ({"options": '{"overlap": "sometimes"}'}, "options", "overlap"),
    ({"options": '{"time_zone": "Mars/Olympus"}'}, "options", "Mars/Olympus"),
    ({"options": "[1, 2]"}, "options", "JSON object"),
    ({"options": "{not json"}, "options", "valid JSON"),
])
def test_the_add_form_names_the_problem_on_its_field(admin_client, fields, field, message) -> None:
    response = _post(admin_client, **fields)
    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field]), errors
    assert not ScheduledJob.objects.exists()


@pytest.mark.django_db
def test_a_saved_entry_says_who_changed_it_and_fires_only_after_its_schedule_changed(admin_client) -> None:
    before = timezone.now()
    response = _post(admin_client, time_spec="  */5  * * * * ", options='{"overlap": "skip"}', note="nightly")
    assert response.status_code == 302, response.content[:2000]
    row = ScheduledJob.objects.get()
    assert (row.time_spec, row.job_spec, row.options, row.changed_by) == ("*/5  * * * *", "Echo:x",
                                                                          {"overlap": "skip"}, "admin")
    assert row.active_since >= before
    entry = row.as_entry()
    assert entry.source == f"database schedule #{row.pk}" and entry.not_before == row.active_since.timestamp()
    since = row.active_since
    row.note = "a note changes nothing that fires"
    row.save()
    assert ScheduledJob.objects.get().active_since == since
    time.sleep(0.01)
    row = ScheduledJob.objects.get()
    row.time_spec = "*/7 * * * *"
    row.save()
    assert ScheduledJob.objects.get().active_since > since
    page = admin_client.get("/admin/cron_dbschedule/scheduledjob/")
    assert b"Every 7 minutes" in page.content and b"admin" in page.content


@pytest.mark.django_db
def test_the_disable_action_stops_an_entry_and_records_who(admin_client, django_user_model) -> None:
    row = ScheduledJob.objects.create(time_spec="* * * * *", job_spec="Echo:x")
    response = admin_client.post("/admin/cron_dbschedule/scheduledjob/",
                                 {"action": "disable", "_selected_action": [row.pk]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.enabled, row.changed_by) == (False, "admin")


def _project(project: CronmanProject, databases: dict[str, Any], **settings: Any) -> DbProject:
    (project.path / "file_jobs.py").write_text('CRON_JOBS = [("0 3 * * *", "Echo:file")]\n')
    db = DbProject(project, databases)
    db.configure(CRONMAN_JOBS_MODULE="file_jobs", CRONMAN_TIME_ZONE="UTC", **ENABLED, **settings)
    return db


def _add(db: DbProject, time_spec: str, job_spec: str, enabled: bool = True, since: float | None = None) -> int:
    since_code = f"dt.datetime.fromtimestamp({since}, dt.UTC)" if since is not None else "timezone.now()"
    return db.shell(
        "import datetime as dt; from django.utils import timezone; "
        "from cronman_plugins.dbschedule.models import ScheduledJob as S; "
        f"r = S.objects.create(time_spec={time_spec!r}, job_spec={job_spec!r}, enabled={enabled!r}); "
        f"S.objects.filter(pk=r.pk).update(active_since={since_code}); print(r.pk)")


def test_entries_join_the_schedule_and_check_validates_rows_written_around_the_form(
    project: CronmanProject,
) -> None:
    db = _project(project, sqlite_databases(project.path / "db.sqlite3"))
    db.migrate()
    pk = _add(db, "30 2 * * 1-5", "Echo:db")
    _add(db, "* * * * *", "Echo:off", enabled=False)
    shown = db.run("cron_scheduler", "next", "1")
    assert shown.returncode == 0, shown.stderr
    assert f"Echo:db  [30 2 * * 1-5]  (database schedule #{pk})  At 02:30, Monday through Friday" in shown.stdout
    assert "Echo:file" in shown.stdout and "Echo:off" not in shown.stdout
    assert db.run("check").returncode == 0
    bad = _add(db, "* * * * *", "NoSuchJob")  # written by SQL or a script, not the form
    check = db.run("check")
    assert check.returncode == 1
    assert (f"(cronman.E011) database schedule #{bad}: ('* * * * *', 'NoSuchJob'): unknown cron job 'NoSuchJob'"
            in check.stderr)


@pytest.mark.postgres
def test_a_database_outage_fires_the_entries_read_before_and_never_a_fire_before_an_entry_existed(
    project: CronmanProject,
) -> None:
    with postgres_database() as databases:
        db = _project(project, databases)
        db.migrate()
        minute = int(away_from_minute_edge() // 60 * 60)
        # an entry saved 3 minutes ago: the scheduler, down for 10, catches up its fires since then only
        _add(db, "* * * * *", "Echo:db", since=minute - 180 + 0.5)
        assert "Echo:db" in db.run("cron_scheduler", "next", "1").stdout  # read once: the copy is kept
        state = project.data_dir / "scheduler"
        state.mkdir(mode=0o700, exist_ok=True)
        (state / "watermark.json").write_text(f'{{"version": 1, "watermark": {minute - 600}}}')
        # the database goes away: a port nothing listens on
        db.databases = {"default": {**databases["default"], "PORT": "1"}}
        db.configure(CRONMAN_JOBS_MODULE="file_jobs", CRONMAN_TIME_ZONE="UTC", **ENABLED)
        tick = db.run("cron_scheduler", "run")
        assert tick.returncode == 0, tick.stderr
        assert "cannot read the database schedule (" in tick.stderr
        assert "using the 1 entries read before" in tick.stderr
        assert "Traceback" not in tick.stderr
        marks = wait_for(project.read_marks, timeout=30)
        assert [m["args"] for m in marks] == [["db"]]
    # the run covered the fires after the entry was saved only: 3 of the 10 minutes the scheduler was down
    first = dt.datetime.fromtimestamp(minute - 120, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"catching up 2 earlier fire(s) from {first} in this one run" in tick.stderr, tick.stderr


def test_sighup_reloads_cron_jobs_and_a_broken_edit_keeps_the_schedule_read_before(project: CronmanProject) -> None:
    db = _project(project, sqlite_databases(project.path / "db.sqlite3"), CRONMAN_SCHEDULE_POLL_INTERVAL=0.5)
    db.migrate()
    daemon = db.popen("cron_scheduler", "daemon")
    try:
        wait_for(lambda: (project.path / "data" / "scheduler" / "watermark.json").exists(), timeout=30)
        (project.path / "file_jobs.py").write_text("CRON_JOBS = [(\n")  # a syntax error
        daemon.send_signal(1)
        time.sleep(2)
        (project.path / "file_jobs.py").write_text('CRON_JOBS = [("0 3 * * *", "Echo:file"), '
                                                   '("0 4 * * *", "Echo:added")]\n')
        daemon.send_signal(1)
        time.sleep(2)
        _add(db, "0 5 * * *", "Echo:db")
        time.sleep(2)
    finally:
        daemon.terminate()
        _out, err = daemon.communicate(timeout=30)
    assert "file_jobs.CRON_JOBS not reloaded, the schedule read before stays: SyntaxError" in err, err
    assert err.count("SIGHUP: the schedule is read anew") == 2, err
    assert err.count("the schedule has 1 entries") == 1, err  # after the broken edit: the one read at start
    assert "the schedule has 2 entries" in err, err  # the edit
    assert "the schedule changed, 3 entries: ticking on it now" in err, err  # the row
    assert "Traceback" not in err, err


SPEC_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    time_spec=st.one_of(SPEC_TEXT, st.sampled_from(["*/5 * * * *", "@hourly", "0 0 30 2 *", "1-70 * * * *"])),
    job_spec=st.one_of(SPEC_TEXT, st.sampled_from(["Echo:x", "Echo:", "Sleep:1,tag=a", "Echo:a=b=c"])),
    options=st.one_of(SPEC_TEXT, st.sampled_from(['{"retries": 2}', '{"overlap": "wait", "overlap_wait": -1}',
                                                  '{"jitter": "NaN"}', '{"time_zone": null}', "[]", "1"])),
)
def test_any_form_input_is_saved_valid_or_refused_on_a_field(admin_client, time_spec, job_spec, options) -> None:
    from cronman_core.plugins import get_plugin_manager
    from cronman_core.scheduler.decide import decide

    ScheduledJob.objects.all().delete()
    response = _post(admin_client, time_spec=time_spec, job_spec=job_spec, options=options)
    assert response.status_code in (200, 302), response.status_code  # never a server error
    if response.status_code == 200:
        errors = response.context["adminform"].form.errors
        assert errors and set(errors) <= {"time_spec", "job_spec", "options"}, errors
        assert not ScheduledJob.objects.exists()
        return
    entry = ScheduledJob.objects.get().as_entry()
    assert entry_problems(get_plugin_manager(), entry, "saved") == []
    now = time.time()
    decide([entry], now, dt.UTC, lambda e: 3600.0, watermark=now - 7200)  # the scheduler takes it as it is
