"""Run policies (``cronman_core.policies``) with real workers: max_runtime, overlap, retries, options, zones."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronman_core.errors import UsageError
from cronman_core.job import BaseCronJob
from cronman_core.policies import (
    NEXT_FIRE_ENV,
    OPTION_NAMES,
    RUN_OPTIONS_ENV,
    RunPolicy,
    check_options,
    policy_for,
)
from cronman_core.schedule import ScheduleEntry
from cronman_core.scheduler import tick
from cronman_core.scheduler.daemon import run_daemon
from cronman_core.scheduler.decide import decide, jitter_offset
from cronman_core.scheduler.tick import Scheduler
from cronman_core.testing import CronmanProject
from tests.conftest import wait_for
from tests.support.forked import ForkDriver, ForkedWorker
from tests.test_scheduler_processes import set_watermark, use_schedule
from tests.testapp.cron_jobs import Fail, Sleep


def _options(**options: object) -> dict[str, str]:
    return {RUN_OPTIONS_ENV: json.dumps(options)}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _history(project: CronmanProject) -> list[tuple[str, str, int, int, str]]:
    with sqlite3.connect(project.extra_env["CRONMAN_TEST_DB"]) as db:
        return db.execute("SELECT job_spec, status, attempt, attempts, exit_reason FROM cron_history_cronrun "
                          "ORDER BY started_at").fetchall()


# -- options ---------------------------------------------------------------------------


def test_options_override_class_attributes_and_bad_ones_are_one_line() -> None:
    class Patient(Sleep):
        overlap = "wait"
        overlap_wait = 5

    assert policy_for(Patient) == RunPolicy(overlap="wait", overlap_wait=5.0)
    assert policy_for(Patient, {"overlap": "replace", "max_runtime": 2}).overlap == "replace"
    for options, message in [
        ({"max_runtime": 0}, "option 'max_runtime' must be a number of seconds above 0 or None, got 0"),
        ({"overlap": "queue"}, "option 'overlap' must be 'skip' or 'replace' or 'wait', got 'queue'"),
        ({"retries": 1.5}, "option 'retries' must be a whole number, at least 0, got 1.5"),
        ({"time_zone": "Mars/Olympus"}, "option 'time_zone' must be an IANA time zone name"),
        ({"max_runtim": 3}, "unknown option 'max_runtim' (did you mean 'max_runtime'?)"),
        ({"jitter": -1}, "option 'jitter' must be a number of seconds at least 0, got -1"),
        ({"pause_after_failures": 0},
         "option 'pause_after_failures' must be a whole number, at least 1 or None, got 0"),
    ]:
        with pytest.raises(UsageError) as info:
            check_options(options, "entry")
        assert message in str(info.value) and "\n" not in str(info.value)


def test_check_reports_bad_options_as_e016(project: CronmanProject) -> None:
    use_schedule(project, ("* * * * *", "Noop", {"overlap": "queue"}), ("@hourly", "Noop", {"retries": 2}))
    result = project.run("check")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "cronman.E016" in line]
    assert len(lines) == 1 and "CRON_JOBS[0]: ('* * * * *', 'Noop') options: option 'overlap'" in lines[0], lines


def test_a_run_with_bad_options_is_one_line_and_exit_2(project: CronmanProject) -> None:
    result = project.run("cron_worker", "run", "Noop", env=_options(retries=-1))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: CRONMAN_RUN_OPTIONS: option 'retries' must be a whole number, at least 0, got -1"]


# -- max_runtime -----------------------------------------------------------------------


def test_max_runtime_stops_the_run_and_its_children_with_exit_124(project: CronmanProject) -> None:
    project.configure(CRONMAN_KILL_GRACE=1.0)
    start = time.monotonic()
    result = project.run("cron_worker", "run", "SpawnChild:30", env=_options(max_runtime=2))
    took = time.monotonic() - start
    assert result.returncode == 124, result.stderr
    assert 2.0 <= took < 2.0 + 1.0 + 3.0, took  # max_runtime, the grace, and a Python start-up
    (mark,) = project.read_marks()
    assert _gone(mark["child"])
    assert "SpawnChild:30 ran longer than its max_runtime of 2 s; stopped" in result.stderr
    assert _history(project) == [("SpawnChild:30", "timeout", 1, 1, "ran longer than its max_runtime of 2 s; stopped")]


def test_max_runtime_and_retries_hold_in_a_forked_worker_too(project: CronmanProject) -> None:
    project.configure(CRONMAN_KILL_GRACE=1.0, CRONMAN_SPAWNER="prefork")
    driver = ForkDriver(project)
    try:
        start = time.monotonic()
        assert ForkedWorker(driver, "SpawnChild:30", _options(max_runtime=1)).wait() == 124
        assert time.monotonic() - start < 1.0 + 1.0 + 2.0
        assert ForkedWorker(driver, "Fail", _options(retries=1, retry_delay=0.2)).wait() == 1
    finally:
        driver.close()
    (mark,) = project.read_marks()
    assert _gone(mark["child"])
    assert [(row[1], row[2], row[3]) for row in _history(project)] == [
        ("timeout", 1, 1), ("failed", 1, 2), ("failed", 2, 2)]


def test_a_run_ignoring_sigterm_at_its_max_runtime_is_sigkilled_after_the_grace(project: CronmanProject) -> None:
    project.configure(CRONMAN_KILL_GRACE=1.0)
    start = time.monotonic()
    result = project.run("cron_worker", "run", "IgnoreTerm:30", env=_options(max_runtime=1))
    assert result.returncode == -9
    assert time.monotonic() - start < 1.0 + 1.0 + 3.0


def test_a_scheduled_run_gets_its_entrys_max_runtime(project: CronmanProject) -> None:
    use_schedule(project, ("* * * * *", "SpawnChild:30", {"max_runtime": 1}), CRONMAN_KILL_GRACE=1.0)
    set_watermark(project, time.time() // 60 * 60 - 1)  # this minute's fire is due
    tick = project.run("cron_scheduler", "run")
    assert "started SpawnChild:30" in tick.stderr, tick.stderr
    (mark,) = wait_for(project.read_marks)
    wait_for(lambda: _gone(mark["pid"]) and _gone(mark["child"]), timeout=15)
    (log,) = (project.data_dir / "logs").glob("*SpawnChild*.log")
    assert "SpawnChild:30 ran longer than its max_runtime of 1 s; stopped" in log.read_text()


# -- overlap ---------------------------------------------------------------------------


def _sleep_marks(project: CronmanProject, tag: str, event: str = "start") -> list[dict[str, object]]:
    return [m for m in project.read_marks() if m["job"] == "Sleep" and m["tag"] == tag and m["event"] == event]


def test_overlap_replace_stops_the_holder_then_runs(project: CronmanProject) -> None:
    project.configure(CRONMAN_KILL_GRACE=1.0)
    holder = project.popen("cron_worker", "run", "Sleep:60,tag=old", start_new_session=True)
    wait_for(lambda: _sleep_marks(project, "old"), timeout=60)
    result = project.run("cron_worker", "run", "Sleep:1,tag=new", env=_options(overlap="replace"))
    assert result.returncode == 0, result.stderr
    assert holder.wait(timeout=10) == 128 + 15  # SIGTERM, as kill sends it
    assert _sleep_marks(project, "new", "end")
    assert "lock 'Sleep' is held: stopping the run that holds it (overlap = replace)" in result.stderr
    statuses = {spec: status for spec, status, *_rest in _history(project)}
    assert statuses == {"Sleep:60,tag=old": "killed", "Sleep:1,tag=new": "succeeded"}


def test_overlap_wait_runs_after_the_holder_or_skips_after_overlap_wait(project: CronmanProject) -> None:
    holder = project.popen("cron_worker", "run", "Sleep:2,tag=first")
    wait_for(lambda: _sleep_marks(project, "first"), timeout=60)
    waited = project.run("cron_worker", "run", "Sleep:0,tag=second", env=_options(overlap="wait", overlap_wait=20))
    assert waited.returncode == 0 and holder.wait(timeout=10) == 0
    (first_end,) = _sleep_marks(project, "first", "end")
    (second_start,) = _sleep_marks(project, "second")
    assert project.read_marks().index(first_end) < project.read_marks().index(second_start)
    holder = project.popen("cron_worker", "run", "Sleep:30,tag=long")
    wait_for(lambda: _sleep_marks(project, "long"), timeout=60)
    start = time.monotonic()
    gave_up = project.run("cron_worker", "run", "Sleep:0,tag=late", env=_options(overlap="wait", overlap_wait=1))
    assert gave_up.returncode == 0 and not _sleep_marks(project, "late")
    assert "lock 'Sleep' is held by another worker for 1 s, skipping" in gave_up.stderr
    assert time.monotonic() - start < 1 + 3.0
    holder.kill()
    holder.wait()


# -- retries ---------------------------------------------------------------------------


def test_a_failed_run_is_retried_with_backoff_each_attempt_its_own_run(project: CronmanProject) -> None:
    start = time.monotonic()
    result = project.run("cron_worker", "run", "Fail:again", env=_options(retries=2, retry_delay=0.5))
    took = time.monotonic() - start
    assert result.returncode == 1
    assert 0.5 + 1.0 <= took < 0.5 + 1.0 + 3.0, took  # 0.5 s, then 1 s
    assert result.stderr.count("RuntimeError: again") >= 3
    assert [(status, attempt, attempts) for _spec, status, attempt, attempts, _why in _history(project)] == [
        ("failed", 1, 3), ("failed", 2, 3), ("failed", 3, 3)]


def test_a_retry_never_starts_at_or_after_the_next_fire(project: CronmanProject) -> None:
    env = {**_options(retries=5, retry_delay=1), NEXT_FIRE_ENV: str(time.time() + 2.5)}
    result = project.run("cron_worker", "run", "Fail", env=env)
    assert result.returncode == 1
    assert [row[2] for row in _history(project)] == [1, 2]  # the third would start 3 s in
    assert "failed (attempt 2 of 6): no retry, it would start at or after the next fire" in result.stderr


def test_a_successful_retry_ends_the_attempts(project: CronmanProject) -> None:
    (project.path / "flaky_jobs.py").write_text(
        "import os\nfrom cronman_core import hookimpl\nfrom cronman_core.job import BaseCronJob\n"
        "class Flaky(BaseCronJob):\n"
        "    retries = 3\n    retry_delay = 0.1\n"
        "    def run(self):\n"
        "        if self.context.attempt < 2:\n            raise RuntimeError('first time')\n"
        "@hookimpl\ndef cronman_register_jobs(registry):\n    registry.register(Flaky)\n")
    project.configure(CRONMAN_PLUGINS=["flaky_jobs"])
    result = project.run("cron_worker", "run", "Flaky")
    assert result.returncode == 0, result.stderr
    assert [(row[1], row[2], row[3]) for row in _history(project)] == [("failed", 1, 4), ("succeeded", 2, 4)]
    assert Fail.retries == 0  # class attributes of other jobs untouched


# -- jitter ----------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=40), st.integers(0, 2**33), st.floats(0.001, 86400.0))
def test_jitter_is_in_its_range_and_the_same_for_the_same_spec_and_fire(spec: str, slot: int, jitter: float) -> None:
    offset = jitter_offset(spec, slot * 60, jitter)
    assert 0.0 <= offset < jitter
    assert offset == jitter_offset(spec, slot * 60, jitter)


def test_jitter_spreads_fires_and_never_starts_one_early() -> None:
    offsets = [jitter_offset("Report:daily", slot * 60, 600.0) for slot in range(1000)]
    assert max(offsets) > 540 and min(offsets) < 60  # spread over the range, not bunched at :00


def test_the_daemon_starts_a_jittered_fire_at_its_instant_once(data_dir, settings, monkeypatch) -> None:
    from tests.test_scheduler import _pidfile_manager, _SteppingClock, at

    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop", {"jitter": 45}), ("* * * * *", "Echo:plain")])
    clock = _SteppingClock(at(10, 0, 30), {}, end=at(10, 10, 50))
    spawned: list[tuple[str, float]] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append((spec, clock.now)))
    run_daemon(Scheduler(pm=pm, clock=clock), threading.Event())
    plain = [when for spec, when in spawned if spec == "Echo:plain"]
    jittered = [when for spec, when in spawned if spec == "Noop"]
    assert plain == [at(10, 0, 30), *[at(10, m) for m in range(1, 11)]]
    slots = [at(10, m) for m in range(0, 11)]
    expected = [slot + jitter_offset("Noop", int(slot), 45) for slot in slots]
    expected = [max(when, at(10, 0, 30)) for when in expected if when <= at(10, 10, 50)]
    assert jittered == pytest.approx(expected, abs=0.01)  # at its instant: never early, not a minute late


# -- pause -----------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["database", "data dir"])
def test_a_paused_job_misses_its_fires_with_the_reason_until_unpaused(project: CronmanProject, store: str) -> None:
    use_schedule(project, ("* * * * *", "Echo:paused"), ("* * * * *", "Echo:other"))
    if store == "database":
        project.update(CRONMAN_DISABLED_PLUGINS=("cronman_plugins.tasks",))  # the history app keeps pauses
    paused = project.run("cron_scheduler", "pause", "Echo", "--reason", "upstream API down, ticket 42")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.startswith("Paused Echo: upstream API down, ticket 42.")
    shown = project.run("cron_scheduler", "next", "1").stdout
    assert "paused by" in shown and ": upstream API down, ticket 42 (its fires are missed until unpause)" in shown
    set_watermark(project, time.time() // 60 * 60 - 1)
    tick = project.run("cron_scheduler", "run")
    assert "not starting Echo:paused: paused by" in tick.stderr, tick.stderr
    time.sleep(1.0)
    assert project.read_marks() == []  # neither entry of the paused job ran
    if store == "database":
        missed = [row for row in _history(project) if row[1] == "missed"]
        assert sorted(row[0] for row in missed) == ["Echo:other", "Echo:paused"]
        assert all(row[4] == "missed 1 fire(s): paused: upstream API down, ticket 42" for row in missed)
    else:
        assert "upstream API down" in (project.data_dir / "pauses" / "paused.json").read_text()
    unpaused = project.run("cron_scheduler", "unpause", "Echo")
    assert unpaused.stdout.startswith("Unpaused Echo (paused by "), unpaused.stdout
    assert project.run("cron_scheduler", "unpause", "Echo").stdout.strip() == "Echo was not paused."
    set_watermark(project, time.time() // 60 * 60 - 1)
    assert "started Echo:paused" in project.run("cron_scheduler", "run").stderr


@pytest.mark.parametrize(("args", "message"), [
    (("pause", "Ech", "--reason", "x"), "Error: unknown cron job 'Ech' (did you mean 'Echo'?)"),
    (("pause", "Echo:1", "--reason", "x"), "Error: a job is paused by its name, not a job spec: 'Echo', not 'Echo:1'"),
    (("pause", "Echo", "--reason", " "), "Error: --reason must say why"),
])
def test_pause_refuses_bad_input_in_one_line(project: CronmanProject, args: tuple[str, ...], message: str) -> None:
    result = project.run("cron_scheduler", *args)
    assert result.returncode == 2 and result.stderr.strip() == message, result.stderr


def test_pause_after_failures_pauses_the_job_with_its_reason(project: CronmanProject) -> None:
    env = _options(pause_after_failures=2)
    assert project.run("cron_worker", "run", "Fail:one", env=env).returncode == 1
    assert project.run("cron_worker", "run", "Noop").returncode == 0  # another job's success counts not
    second = project.run("cron_worker", "run", "Fail:two", env=env)
    assert "Fail paused: 2 failed runs in a row (pause_after_failures = 2); the last: RuntimeError: two" \
        in second.stderr, second.stderr
    shown = project.run("cron_scheduler", "next", "1", env=env)
    assert "Paused: Fail, paused by auto at " in shown.stdout
    assert project.run("cron_scheduler", "unpause", "Fail").returncode == 0
    assert project.run("cron_worker", "run", "Fail:three", env=env).returncode == 1
    assert "paused" not in project.run("cron_scheduler", "next", "1").stdout  # the streak restarted


def test_a_success_ends_a_failure_streak(tmp_path) -> None:
    from cronman_core.pauses import FilePauseStore

    store = FilePauseStore(tmp_path)
    assert [store.count_outcome("Job", failed) for failed in (True, True, False, True)] == [1, 2, 0, 1]
    assert store.paused() == {} and store.unpause("Job") is None


# -- per-entry time zones --------------------------------------------------------------


def _fires(entry: ScheduleEntry, start: dt.datetime, hours: int) -> list[str]:
    """Fire instants (UTC) of ``entry`` ticking each minute from ``start`` for ``hours``, scheduler zone UTC."""
    utc = dt.UTC
    now = start.timestamp()
    watermark, cache, as_of, fired = now - 60, None, None, []
    for _ in range(hours * 60):
        now += 60
        decision = decide([entry], now, utc, lambda e: 3600.0, watermark=watermark, cache=cache, cache_as_of=as_of)
        fired += [dt.datetime.fromtimestamp(slot, utc).strftime("%m-%d %H:%M") for due in decision.due
                  for slot in due.slots]
        watermark = decision.watermark
        if decision.next_fires is not None:
            cache, as_of = decision.next_fires, watermark
    return fired


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward (2026-03-08): 09:00 New York is 14:00 UTC before, 13:00 UTC after.
        (dt.datetime(2026, 3, 7, 0, 0, tzinfo=dt.UTC), ["03-07 14:00", "03-08 13:00", "03-09 13:00"]),
        # Fall back (2026-11-01): 13:00 UTC before, 14:00 UTC after.
        (dt.datetime(2026, 10, 31, 0, 0, tzinfo=dt.UTC), ["10-31 13:00", "11-01 14:00", "11-02 14:00"]),
    ],
)
def test_an_entry_in_its_own_time_zone_fires_at_its_local_time_across_dst(start, expected) -> None:
    entry = ScheduleEntry("0 9 * * *", "Noop", options=(("time_zone", "America/New_York"),))
    assert _fires(entry, start, 72) == expected
    assert _fires(ScheduleEntry("0 9 * * *", "Noop"), start, 72) == [
        f"{(start + dt.timedelta(days=d)):%m-%d} 09:00" for d in range(3)]  # the scheduler's zone: UTC


def test_next_shows_an_entry_in_its_own_zone(project: CronmanProject) -> None:
    use_schedule(project, ("0 9 * * *", "Noop", {"time_zone": "Asia/Tokyo"}), ("0 9 * * *", "Noop"))
    result = project.run("cron_scheduler", "next", "1")
    assert result.returncode == 0, result.stderr
    assert "00:00:00 UTC" in result.stdout and "09:00:00 UTC" in result.stdout, result.stdout


# -- hostile options --------------------------------------------------------------------


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


@given(st.dictionaries(st.sampled_from([*OPTION_NAMES, "retry", "Overlap", ""]), JSON_VALUES, max_size=4))
def test_any_options_are_valid_or_one_usage_error(options: dict[str, object]) -> None:
    """Options come from CRON_JOBS and from admin forms (JSON): anything there is taken or refused in one line."""
    try:
        checked = check_options(options, "CRON_JOBS[0] options")
    except UsageError as exc:
        assert str(exc).startswith("CRON_JOBS[0] options: ") and "\n" not in str(exc)
        return
    assert set(checked) == set(options)
    policy_for(BaseCronJob, checked)  # what a run gets from them
