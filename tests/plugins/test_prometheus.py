"""The Prometheus plugin with real workers and ticks: the textfile parses with prometheus_client's parser and
its values match the run history."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from croniter import croniter
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.support import tasks_support

sqlite_project = tasks_support.sqlite_project


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text: (name, sorted labels) → value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture
def metered(sqlite_project):
    sqlite_project.configure(CRONMAN_PROMETHEUS_ENABLED=True)
    return sqlite_project


def metrics(project, textfile: bool = False) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``cron_worker metrics`` parsed (``textfile``: the file node-exporter reads, parsed)."""
    if textfile:
        return samples((project.data_dir / "metrics" / "cronman.prom").read_text())
    result = project.run("cron_worker", "metrics")
    assert result.returncode == 0, result.stderr
    return samples(result.stdout)


def test_run_counters_durations_and_last_success_match_the_history(metered) -> None:
    for spec, code in (("Noop", 0), ("Noop", 0), ("Fail:kaput", 1), ("Hello:x", 0)):
        assert metered.run("cron_worker", "run", spec).returncode == code
    holder = metered.popen("cron_worker", "run", "Sleep:30,tag=holder")
    try:
        wait_for(lambda: any(m.get("tag") == "holder" for m in metered.read_marks()), timeout=30)
        assert metered.run("cron_worker", "run", "Sleep:1").returncode == 0  # skipped
    finally:
        holder.kill()
        holder.wait()
    found = metrics(metered)
    assert found == metrics(metered, textfile=True)
    history = metered.query("SELECT job_name, status, COUNT(*) FROM cron_history_cronrun "
                            "WHERE status != 'started' GROUP BY job_name, status")
    counted = {(job, status): value for (name, labels), value in found.items() if name == "cronman_job_runs_total"
               for job, status in [(dict(labels)["job"], dict(labels)["status"])]}
    assert counted == {(job, status): float(count) for job, status, count in history}
    assert counted[("Noop", "succeeded")] == 2 and counted[("Sleep", "skipped")] == 1
    assert found[("cronman_job_duration_seconds_count", (("job", "Noop"),))] == 2
    assert found[("cronman_job_duration_seconds_bucket", (("job", "Noop"), ("le", "+Inf")))] == 2
    ((last_noop,),) = metered.query("SELECT MAX(finished_at) FROM cron_history_cronrun "
                                    "WHERE job_name = 'Noop' AND status = 'succeeded'")
    expected = dt.datetime.fromisoformat(str(last_noop)).replace(tzinfo=dt.UTC).timestamp()
    assert found[("cronman_job_last_success_timestamp_seconds", (("job", "Noop"),))] == pytest.approx(expected,
                                                                                                       abs=0.01)
    assert ("cronman_job_last_success_timestamp_seconds", (("job", "Fail"),)) not in found


def test_a_tick_records_its_time_next_fires_missed_fires_and_lateness(metered) -> None:
    (metered.path / "prom_schedule.py").write_text(
        'CRON_JOBS = (("* * * * *", "Noop"), ("* * * * *", "Hello:x"), ("0 4 * * *", "Echo:a"),'
        ' ("*/5 * * * *", "Echo:b"))\n')
    metered.configure(CRONMAN_PROMETHEUS_ENABLED=True, CRONMAN_JOBS_MODULE="prom_schedule", CRONMAN_TIME_ZONE="UTC")
    assert metered.run("cron_scheduler", "pause", "Hello", "--reason", "deploy").returncode == 0
    state = metered.data_dir / "scheduler"
    state.mkdir(mode=0o700, exist_ok=True)
    minute = time.time() // 60 * 60
    (state / "watermark.json").write_text(json.dumps({"version": 1, "watermark": minute - 1}))
    before = time.time()
    tick = metered.run("cron_scheduler", "run")
    assert tick.returncode == 0, tick.stderr
    started = len(re.findall(r"^started \S+ for its", tick.stderr, re.M))
    assert started >= 1  # Noop, and whatever else is due this minute

    def settled() -> dict[Any, float]:
        found = metrics(metered)
        runs = sum(value for (name, _labels), value in found.items() if name == "cronman_job_runs_total")
        return found if runs == started else {}

    found = wait_for(settled, timeout=60)
    assert found == metrics(metered, textfile=True)  # node-exporter's textfile: the same text
    now = found[("cronman_scheduler_last_tick_timestamp_seconds", ())]
    assert before - 1 <= now <= time.time()
    assert found[("cronman_job_next_fire_timestamp_seconds", (("job", "Noop"),))] == (now // 60 + 1) * 60
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    assert found[("cronman_job_next_fire_timestamp_seconds", (("job", "Echo"),))] == min(
        croniter(spec, start).get_next(float) for spec in ("0 4 * * *", "*/5 * * * *"))
    missed = {dict(labels)["reason"]: value for (name, labels), value in found.items()
              if name == "cronman_job_missed_total" and dict(labels)["job"] == "Hello"}
    history = metered.query("SELECT COUNT(*) FROM cron_history_cronrun WHERE job_name = 'Hello' AND status = 'missed'")
    assert missed == {"paused": 1.0} and history[0][0] == 1
    assert found[("cronman_scheduler_fire_lateness_seconds_count", ())] == started  # each run the tick started
    # Each run started after its fire (this minute's, or the next one's if the minute turned meanwhile).
    assert 0 <= found[("cronman_scheduler_fire_lateness_seconds_sum", ())] <= started * (time.time() - minute)


def test_without_the_plugin_metrics_is_one_line(sqlite_project) -> None:
    result = sqlite_project.run("cron_worker", "metrics")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: no metrics: set CRONMAN_PROMETHEUS_ENABLED = True (the prometheus extra), or enable another "
        "plugin that implements cronman_metrics"]


def test_a_damaged_state_file_starts_the_counters_again_with_one_warning(metered) -> None:
    assert metered.run("cron_worker", "run", "Noop").returncode == 0
    (metered.data_dir / "metrics" / "state.json").write_text('{"version": 1, "jobs": [')
    result = metered.run("cron_worker", "run", "Noop")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("metrics state") == 1 and "the counters start again" in result.stderr
    assert "Traceback" not in result.stderr
    found: dict[Any, float] = metrics(metered)
    assert found[("cronman_job_runs_total", (("job", "Noop"), ("status", "succeeded")))] == 1
