"""Monitoring outages never fail nor hang a job: bounded pings (cronman_plugins._ping)."""

import importlib.util
import time

import pytest

from cronman_core.errors import UsageError
from cronman_plugins import _ping, sentry
from tests.support.httpserver import Dropper, refused_url

#: The documented worst case a job pays with the default settings.
BOUND = _ping._budget() + sentry.DEFAULT_SHUTDOWN_TIMEOUT
#: Generous slack for a loaded 2-core machine; still far below the 30 s sleep.
SLACK = 8.0


def _run(project, spec):
    started = time.monotonic()
    result = project.run("cron_worker", "run", spec)
    return result, time.monotonic() - started


@pytest.mark.parametrize("mode", ["refused", "error", "sleep"])
def test_an_outage_never_changes_the_outcome_and_costs_a_bounded_time(project, http_server, mode):
    baseline, baseline_wall = _run(project, "Monitored")
    assert baseline.returncode == 0, baseline.stderr
    url = refused_url() if mode == "refused" else http_server(mode).url
    project.configure(
        CRONMAN_CRONITOR_ENABLED=True,
        CRONMAN_CRONITOR_URL=url + "/{cronitor_id}/{end_point}",
        CRONMAN_HEALTHCHECKS_ENABLED=True,
        CRONMAN_HEALTHCHECKS_URL=url,
        CRONMAN_SENTRY_ENABLED=True,
        CRONMAN_SENTRY_CONFIG={"dsn": url.replace("http://", "http://public@") + "/1"},
    )
    result, wall = _run(project, "Monitored")
    assert result.returncode == 0, result.stderr
    print(f"{mode}: {wall:.1f}s against {baseline_wall:.1f}s without monitors")
    assert wall - baseline_wall < BOUND + SLACK
    assert len(project.read_marks()) == 2
    # Each ping that did not get through is one log line.
    problems = [line for line in result.stderr.splitlines() if " ping" in line]
    labels = [line.split(" failed:")[0].split(" skipped:")[0] for line in problems]
    assert sorted(labels) == sorted(
        [
            "cronitor run ping of abc12",
            "cronitor complete ping of abc12",
            "healthchecks start ping",
            "healthchecks success ping",
        ]
    ), result.stderr


def test_a_failing_job_still_exits_1_when_monitors_fail(project, http_server):
    url = http_server("error").url
    project.configure(
        CRONMAN_CRONITOR_ENABLED=True,
        CRONMAN_CRONITOR_URL=url + "/{cronitor_id}/{end_point}",
        CRONMAN_HEALTHCHECKS_ENABLED=True,
        CRONMAN_HEALTHCHECKS_URL=url,
    )
    result = project.run("cron_worker", "run", "Monitored:fail=boom")
    assert result.returncode == 1, result.stderr
    assert "cronitor fail ping of abc12 failed: HTTP 500" in result.stderr
    assert "healthchecks fail ping failed: HTTP 500" in result.stderr


def test_a_connection_error_is_retried_once(caplog):
    server = Dropper()
    try:
        assert not _ping.Pinger("test").ping("test ping", server.url, budget_key="retry-test")
    finally:
        server.stop()
    assert server.connections == 2
    assert [r.getMessage() for r in caplog.records if r.name == "cronman.plugins.test"] == [
        "test ping failed: connection error: ConnectionError"
    ]


def test_bad_ping_settings_are_one_line(project):
    project.configure(CRONMAN_HEALTHCHECKS_ENABLED=True, CRONMAN_PING_TIMEOUT="soon")
    result = project.run("cron_worker", "run", "Monitored")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: CRONMAN_PING_TIMEOUT must be a positive number of seconds or a (connect, read) pair, got 'soon'"
    ]


def test_a_ping_plugin_without_requests_stops_the_load_with_one_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match=r"the cronitor plugin needs requests: pip install requests$"):
        _ping.check_settings("cronitor")
