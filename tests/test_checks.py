"""``manage.py check``: schedule problems are Errors with their own ids and a hint."""

from __future__ import annotations

import os
import stat

import pytest
from django.core.checks import WARNING

from cronman_core.checks import check_schedule
from cronman_core.testing import CronmanProject

BAD_SCHEDULE = (
    ("61 * * * *", "Noop"),
    ("* * * *", "Noop"),
    ("@hourly", "Nope"),
    ("@daily", "Hello:a,b,c"),
    ("@daily", "Hello:'x"),
    ("  */5  *  * * *", "Hello:world"),
    ("@weekly", "Hello:what=x,sleep=1"),
)


def ids(errors) -> list[str]:
    return sorted(error.id for error in errors)


def test_each_problem_has_its_id_source_and_hint(schedule_module) -> None:
    schedule_module(f"CRON_JOBS = {BAD_SCHEDULE!r}\n")
    errors = check_schedule()
    assert ids(errors) == ["cronman.E010", "cronman.E010", "cronman.E011", "cronman.E012", "cronman.E013"]
    by_id = {e.id: e for e in errors}
    assert "CRON_JOBS[0]" in errors[0].msg and "out of range 0-59" in errors[0].msg
    assert "unknown cron job 'Nope' (did you mean 'Noop'?)" in by_id["cronman.E011"].msg
    assert "unbalanced quotes" in by_id["cronman.E012"].msg
    assert "do not fit Hello.run()" in by_id["cronman.E013"].msg
    assert all(e.hint for e in errors)


def test_expression_no_date_matches_is_a_warning(schedule_module) -> None:
    schedule_module('CRON_JOBS = (("0 0 30 2 *", "Noop"), ("0 0 29 2 *", "Noop"))\n')
    (warning,) = check_schedule()
    assert (warning.id, warning.level) == ("cronman.W010", WARNING)
    assert "CRON_JOBS[0]" in warning.msg and "never fires" in warning.msg


def test_good_schedule_has_no_errors(schedule_module) -> None:
    schedule_module('CRON_JOBS = (("@hourly", "Noop"), ("15 5 * * 1-5", "Hello:world,sleep=1"))\n')
    assert check_schedule() == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("raise RuntimeError('broken module')\n", "cannot be imported: broken module"),
        ("JOBS = ()\n", "has no CRON_JOBS attribute"),
        ("CRON_JOBS = (('@hourly',),)\n",
         "not a (time spec, job spec) pair or a (time spec, job spec, options dict) triple"),
    ],
)
def test_schedule_that_cannot_load_is_e014(schedule_module, text: str, message: str) -> None:
    schedule_module(text)
    (error,) = check_schedule()
    assert error.id == "cronman.E014" and message in error.msg


def test_unknown_time_zone_is_e015(schedule_module, settings) -> None:
    schedule_module('CRON_JOBS = (("@hourly", "Noop"),)\n')
    settings.CRONMAN_TIME_ZONE = "Mars/Olympus"
    (error,) = check_schedule()
    assert error.id == "cronman.E015" and "Mars/Olympus" in error.msg


def test_manage_py_check_fails_with_the_ids_and_hints(project: CronmanProject) -> None:
    (project.path / "bad_sched.py").write_text(f"CRON_JOBS = {BAD_SCHEDULE!r}\n")
    project.configure(CRONMAN_JOBS_MODULE="bad_sched")
    result = project.run("check")
    assert result.returncode == 1
    for check_id in ("E010", "E011", "E012", "E013"):
        assert f"(cronman.{check_id})" in result.stderr
    assert "HINT: Use 5 fields" in result.stderr
    assert "Traceback" not in result.stderr


def test_manage_py_check_reports_an_unusable_data_dir(project: CronmanProject) -> None:
    os.chmod(project.data_dir, stat.S_IRWXU | stat.S_IWOTH | stat.S_IXOTH)
    result = project.run("check")
    assert result.returncode == 1
    assert "(cronman.E002)" in result.stderr and "writable by group or others" in result.stderr


def test_control_characters_in_a_job_spec_are_an_error(schedule_module) -> None:
    schedule_module(f"CRON_JOBS = {(('@hourly', 'Hello:a' + chr(0) + 'b'), ('@daily', 'Hello:' + chr(10)))!r}\n")
    errors = check_schedule()
    assert ids(errors) == ["cronman.E012", "cronman.E012"]
    assert "control character '\\x00' at characters 7-8" in errors[0].msg
    assert "control character '\\n' at characters 6-7" in errors[1].msg


def test_a_job_class_without_run_is_an_error(schedule_module) -> None:
    from cronman_core.job import BaseCronJob, cron_job_registry

    class Forgetful(BaseCronJob):
        """Its author forgot run()."""

    schedule_module('CRON_JOBS = (("@hourly", "Noop"),)\n')
    cron_job_registry.register(Forgetful)
    try:
        (error,) = [e for e in check_schedule() if e.id == "cronman.E017"]
    finally:
        cron_job_registry.unregister("Forgetful")
    assert error.msg.startswith("cron job 'Forgetful' (tests.test_checks.")
    assert "has no run() of its own" in error.msg
    assert error.hint == "Define run(self, ...) in test_a_job_class_without_run_is_an_error.<locals>.Forgetful."


def test_sentry_switched_on_without_sentry_sdk_is_a_plugin_error(settings, monkeypatch) -> None:
    import importlib.util

    from cronman_core.checks import check_plugins_and_data_dir
    from cronman_core.plugins import reset_plugin_manager

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sentry_sdk" else
                        real_find_spec(name, *a))
    settings.CRONMAN_SENTRY_ENABLED = True
    reset_plugin_manager()
    try:
        errors = [e for e in check_plugins_and_data_dir() if e.id == "cronman.E001"]
    finally:
        reset_plugin_manager()
    assert [e.msg for e in errors] == ["CRONMAN_SENTRY_ENABLED needs sentry-sdk: pip install sentry-sdk"]


def test_plugin_apps_without_cronman_core_are_e018(project: CronmanProject) -> None:
    from tests import settings as base

    apps = [app for app in base.INSTALLED_APPS if app != "cronman_core"]
    project.configure(INSTALLED_APPS=apps)
    result = project.run("check")
    assert result.returncode == 1, result.stderr
    assert ("(cronman.E018) cronman_plugins.dbschedule, cronman_plugins.history, cronman_plugins.tasks are installed "
            "without cronman_core"
            in result.stderr)
    assert 'HINT: Add "cronman_core" to INSTALLED_APPS.' in result.stderr
    project.configure()
    assert "cronman.E018" not in project.run("check").stderr


def test_unapplied_migrations_are_w030_and_migrate_itself_does_not_warn(project: CronmanProject) -> None:
    fresh = project.path / "fresh.sqlite3"
    env = {"CRONMAN_TEST_DB": str(fresh)}
    before = project.run("check", env=env)
    assert before.returncode == 0, before.stderr  # a warning: a pipeline's check before migrate passes
    assert "(cronman.W030)" in before.stderr and "of cron, cron_dbschedule, cron_history not applied" in before.stderr
    assert "HINT: Run: python manage.py migrate" in before.stderr
    migrate = project.run("migrate", env=env)
    assert migrate.returncode == 0 and "cronman.W030" not in migrate.stdout + migrate.stderr
    assert "cronman.W030" not in project.run("check", env=env).stderr


def test_a_history_write_to_a_missing_table_says_migrate(project: CronmanProject) -> None:
    result = project.run("cron_worker", "run", "Noop", env={"CRONMAN_TEST_DB": str(project.path / "none.sqlite3")})
    assert result.returncode == 0, result.stderr  # the job ran; its row could not be written
    assert "no such table: cron_history_cronrun (run: python manage.py migrate)" in result.stderr
