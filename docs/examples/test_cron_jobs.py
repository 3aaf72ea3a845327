"""Testing your cron jobs with cronman's pytest fixtures (installed with cronman; needs pytest-django).

Copy this file next to your tests; the jobs it runs are in docs/examples/cron_jobs.py.
"""

import datetime as dt


def test_greet_says_hello(cron_run):
    result = cron_run("Greet:who=Ada")
    assert result.exit_code == 0
    assert result.events == ["started", "succeeded"]  # what every notifier plugin got
    assert "Hello Ada" in result.output


def test_a_failing_job_exits_1_and_its_error_reaches_the_notifiers(cron_run):
    result = cron_run("Broken")
    assert (result.exit_code, result.status) == (1, "failed")
    assert isinstance(result.error, RuntimeError) and str(result.error) == "upstream API down"


def test_progress_is_passed_on(cron_run):
    result = cron_run("Count:upto=3")
    assert result.exit_code == 0
    assert "progress" in result.events
    assert (result.run.progress.done, result.run.progress.total) == (3, 3)


def test_the_nightly_report_fires_once_a_day_even_when_the_clocks_go_forward(cron_fires):
    # Warsaw skips 02:00-03:00 on 2026-03-29: the 02:30 fire of that day comes at 03:00.
    fires = cron_fires("30 2 * * *", dt.datetime(2026, 3, 28), dt.datetime(2026, 4, 1), tz="Europe/Warsaw")
    assert [f"{fire:%m-%d %H:%M}" for fire in fires] == ["03-28 02:30", "03-29 03:00", "03-30 02:30", "03-31 02:30"]
