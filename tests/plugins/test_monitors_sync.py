"""``cron_monitors sync`` against local stand-ins of the healthchecks.io, Cronitor and Sentry Crons APIs,
through the real ``requests`` client: dry run, create, nothing to change, update, a refused key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.monitor_apis import MonitorApis

HC_ID = "5bd5e4c6-4c36-4b5a-9f3c-6b5bb1a0c0de"  # Monitored.healthchecks_id


@pytest.fixture
def apis() -> Iterator[MonitorApis]:
    server = MonitorApis()
    try:
        yield server
    finally:
        server.stop()


def schedule(project, *entries) -> None:
    (project.path / "monitored_schedule.py").write_text(f"CRON_JOBS = {entries!r}\n")


def sync(project, *args: str):
    return project.run("cron_monitors", "sync", *args)


def test_sync_creates_then_changes_nothing_then_follows_the_schedule(project, apis: MonitorApis) -> None:
    apis.add_check(HC_ID, name="Monitored", schedule="* * * * *", tz="UTC", grace=3600)
    project.configure(CRONMAN_JOBS_MODULE="monitored_schedule", CRONMAN_TIME_ZONE="UTC", **apis.settings())
    schedule(project, ("*/10 * * * *", "MonitoredQuiet", {"max_runtime": 300, "time_zone": "Europe/Warsaw",
                                                           "misfire_grace": 120}),
             ("0 4 * * *", "Monitored"))

    dry = sync(project, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would cronitor: create 'abc12' (schedule '*/10 * * * *', timezone 'Europe/Warsaw', grace_seconds 120, "
        "assertions ['metric.duration < 300 seconds'])",
        "would healthchecks: create 'monitored-quiet' (schedule '*/10 * * * *', tz 'Europe/Warsaw', grace 120)",
        f"would healthchecks: update '{HC_ID}': schedule '* * * * *' -> '0 4 * * *'",
        "would sentry: create 'monitored-job' (schedule_type 'crontab', schedule '*/10 * * * *', timezone "
        "'Europe/Warsaw', checkin_margin 2, max_runtime 5)",
    ]
    assert apis.writes == []  # a dry run writes nothing
    assert "'abc12' left as the first entry of Monitored says" in dry.stderr  # one schedule per monitor

    applied = sync(project)
    assert applied.returncode == 0, applied.stderr
    assert [line.split(":")[0] for line in applied.stdout.splitlines()] == [
        "cronitor", "healthchecks", "healthchecks", "sentry"]
    assert sorted(apis.writes) == sorted(["hc create monitored-quiet", f"hc update {HC_ID}", "cronitor put abc12",
                                          "sentry create monitored-job"])
    created = next(c for c in apis.checks if c["slug"] == "monitored-quiet")
    assert (created["schedule"], created["tz"], created["grace"]) == ("*/10 * * * *", "Europe/Warsaw", 120)
    assert apis.monitors["abc12"]["assertions"] == ["metric.duration < 300 seconds"]
    assert apis.crons["monitored-job"]["project"] == "backend"

    writes = len(apis.writes)
    again = sync(project)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "the monitors match the schedule: nothing to change"
    assert len(apis.writes) == writes  # idempotent

    schedule(project, ("*/15 * * * *", "MonitoredQuiet", {"max_runtime": 300, "time_zone": "Europe/Warsaw",
                                                           "misfire_grace": 120}),
             ("0 4 * * *", "Monitored"))
    moved = sync(project)
    assert moved.stdout.splitlines() == [
        "cronitor: update 'abc12': schedule '*/10 * * * *' -> '*/15 * * * *'",
        "healthchecks: update 'monitored-quiet': schedule '*/10 * * * *' -> '*/15 * * * *'",
        "sentry: update 'monitored-job': schedule '*/10 * * * *' -> '*/15 * * * *'",
    ]
    assert apis.crons["monitored-job"]["config"]["schedule"] == "*/15 * * * *"


def test_a_refused_key_is_one_line_and_the_other_services_are_synced(project, apis: MonitorApis) -> None:
    project.configure(CRONMAN_JOBS_MODULE="monitored_schedule", **{**apis.settings(),
                                                                   "CRONMAN_CRONITOR_API_KEY": "wrong"})
    schedule(project, ("*/10 * * * *", "MonitoredQuiet"))
    result = sync(project)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("cronitor")] == [
        f"cronitor: cronitor API: GET {apis.url}/cronitor/monitors/abc12 answered 403: {{\"error\": "
        "\"invalid api key\"}"]
    assert "Traceback" not in result.stderr and "wrong" not in result.stderr + result.stdout  # no key shown
    assert "healthchecks: create 'monitored-quiet'" in result.stdout and "sentry: create" in result.stdout


def test_without_a_monitor_plugin_sync_is_one_line(project) -> None:
    result = sync(project, "--dry-run")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("no monitor plugin is enabled (healthchecks, cronitor or sentry, with "
                                          "their API settings: docs/monitoring.md)")
