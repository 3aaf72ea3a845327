"""``cron_scheduler`` as real processes: racing ticks, the daemon, enable/disable, next."""

from __future__ import annotations

import json
import signal
import time

import pytest

from cronman_core.testing import CronmanProject
from tests.conftest import wait_for

#: Keep the DB-backed plugins out: these tests are about the schedule alone.
QUIET = {"CRONMAN_DISABLED_PLUGINS": ("cronman_plugins.tasks", "cronman_plugins.history")}


@pytest.fixture
def spawner(request: pytest.FixtureRequest) -> str:
    """The spawner the project is configured with: local unless a test is parametrised with others."""
    return str(getattr(request, "param", "local"))


BOTH_SPAWNERS = pytest.mark.parametrize("spawner", ["local", "prefork"], indirect=True)


@pytest.fixture
def project(project: CronmanProject, spawner: str) -> CronmanProject:
    project.extra_env["TEST_SPAWNER"] = spawner
    return project


def use_schedule(project: CronmanProject, *cron_jobs: tuple[str, str], **settings: object) -> None:
    """Give the project its own CRON_JOBS module (tests never touch the shared one), and its spawner."""
    module = f"sched_{project.settings_module}"
    (project.path / f"{module}.py").write_text(f"CRON_JOBS = {cron_jobs!r}\n")
    spawner = {"CRONMAN_SPAWNER": project.extra_env["TEST_SPAWNER"]} if "TEST_SPAWNER" in project.extra_env else {}
    project.configure(**{"CRONMAN_JOBS_MODULE": module, **spawner, **QUIET, **settings})


def set_watermark(project: CronmanProject, watermark: float) -> None:
    state = project.data_dir / "scheduler"
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "watermark.json").write_text(json.dumps({"version": 1, "watermark": watermark}))


def read_watermark(project: CronmanProject) -> float:
    return json.loads((project.data_dir / "scheduler" / "watermark.json").read_text())["watermark"]


def away_from_minute_edge() -> float:
    """Wait until a minute has at least 40 s left, so every process ticks in the same minute."""
    if time.time() % 60 > 20:
        time.sleep(60 - time.time() % 60 + 1)
    return time.time()


def started(output: str, spec: str) -> int:
    return sum(1 for line in output.splitlines() if f"started {spec} for" in line)


def test_racing_ticks_fire_each_slot_once(project: CronmanProject) -> None:
    use_schedule(project, ("* * * * *", "Echo:race"))
    now = away_from_minute_edge()
    set_watermark(project, now - 300)  # five slots behind: all coalesce into one run
    ticks = [project.popen("cron_scheduler", "run") for _ in range(5)]
    outputs = [tick.communicate(timeout=120) for tick in ticks]
    assert [tick.returncode for tick in ticks] == [0] * 5, outputs
    assert sum(started(err, "Echo:race") for _, err in outputs) == 1, outputs
    marks = wait_for(project.read_marks)
    time.sleep(1.0)  # a second worker, had one been started, would have written by now
    assert [m["args"] for m in project.read_marks()] == [["race"]], marks
    assert read_watermark(project) >= now
    assert len(list((project.data_dir / "claims").glob("*.claim"))) == 5


@BOTH_SPAWNERS
def test_daemon_fires_due_job_and_exits_0_on_sigterm(project: CronmanProject) -> None:
    use_schedule(project, ("* * * * *", "Echo:daemon"))
    set_watermark(project, time.time() - 120)  # due at start-up: catch-up fires at once
    daemon = project.popen("cron_scheduler", "daemon")
    try:
        marks = wait_for(project.read_marks, timeout=60)
        assert marks[0]["args"] == ["daemon"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert "finishing the tick and exiting" in err
    spawner = project.extra_env["TEST_SPAWNER"]
    assert (f"scheduler daemon starting (PID {daemon.pid}): 1 schedule entries, time zone UTC, "
            f"data dir {project.data_dir}, lock backend pidfile records in {project.data_dir}/records, "
            f"spawner {spawner.capitalize()}Spawner") in err
    assert ("forked Echo:daemon as PID" in err) == (spawner == "prefork"), err


def test_disabled_ticks_spawn_nothing_and_advance_the_watermark(project: CronmanProject) -> None:
    now = away_from_minute_edge()
    minute = time.gmtime(now - 60).tm_min  # fell just before now: due at the next tick only
    use_schedule(project, (f"{minute} * * * *", "Echo:off"), CRONMAN_TIME_ZONE="UTC")
    set_watermark(project, now - 120)
    assert project.run("cron_scheduler", "disable").stdout.strip() == "Scheduler disabled."
    off = project.run("cron_scheduler", "run")
    assert off.returncode == 0 and "Scheduler is disabled" in off.stdout
    assert read_watermark(project) >= now
    assert project.run("cron_scheduler", "disable").stdout.strip() == "Scheduler was already disabled."
    assert project.run("cron_scheduler", "enable").stdout.strip() == "Scheduler enabled."
    on = project.run("cron_scheduler", "run")
    assert on.returncode == 0 and "started" not in on.stderr  # not caught up after enable
    assert project.read_marks() == []


def test_disable_and_enable_workers_suspend_and_resume(project: CronmanProject) -> None:
    use_schedule(project)
    worker = project.popen("cron_worker", "run", "Sleep:60,tag=w")
    try:
        wait_for(lambda: [m for m in project.read_marks() if m.get("event") == "start"])
        disable = project.run("cron_scheduler", "disable", "--workers")
        assert disable.returncode == 0, disable.stderr
        worker.wait(timeout=30)
        assert project.run("cron_scheduler", "enable", "--workers").returncode == 0
        tick = project.run("cron_scheduler", "run")
        assert tick.returncode == 0, tick.stderr
        resumed = wait_for(lambda: [m for m in project.read_marks() if m.get("resumed")])
        assert resumed[0]["tag"] == "w"
    finally:
        project.run("cron_worker", "kill")
        worker.kill()
        worker.wait()


def test_next_lists_fire_times_in_the_scheduler_time_zone(project: CronmanProject) -> None:
    use_schedule(project, ("  30   2  *  *  *", "Hello:x"), ("0 0 30 2 *", "Noop"),
                 CRONMAN_TIME_ZONE="America/New_York")
    result = project.run("cron_scheduler", "next", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Time zone: America/New_York"
    assert lines[1].startswith("Hello:x  [30 2 * * *]") and lines[1].endswith(")  At 02:30")  # in words
    assert all(" 02:30:00 E" in line for line in lines[2:5])
    assert lines[5:] == ["Noop  [0 0 30 2 *]  (" + lines[5].split("(")[1], "  never"]
    assert lines[5].endswith("  At 00:00, on day 30 of the month, only in February")


def test_next_marks_entries_that_cannot_run(project: CronmanProject) -> None:
    use_schedule(project, ("@hourly", "Slep:1"), ("@hourly", "Hello:a,b,c"), ("@hourly", "Noop"))
    result = project.run("cron_scheduler", "next", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1:3] == ["Slep:1  [@hourly]  (" + lines[1].split("(")[1],
                          "  cannot run: unknown cron job 'Slep' (did you mean 'Sleep'?)"]
    assert lines[4].startswith("  cannot run: params of 'Hello:a,b,c' do not fit Hello.run()")
    assert lines[5].startswith("Noop  [@hourly]") and lines[6].startswith("  20")


@pytest.mark.parametrize(
    "args, settings, message",
    [
        (("next", "0"), {}, "must be from 1 to 1000: 0"),
        (("next", "100000000"), {}, "must be from 1 to 1000: 100000000"),
        (("run",), {"CRONMAN_TIME_ZONE": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        (("bogus",), {}, "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    project: CronmanProject, args: tuple[str, ...], settings: dict[str, str], message: str
) -> None:
    use_schedule(project, ("@hourly", "Noop"), **settings)
    result = project.run("cron_scheduler", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# -- faults between claim and run --------------------------------------------------------------


@BOTH_SPAWNERS
def test_a_failed_spawn_is_retried_by_the_next_tick(project: CronmanProject) -> None:
    use_schedule(project, ("* * * * *", "Echo:retried"), CRONMAN_RAVEN_CMD="/nonexistent/raven-cmd")
    now = away_from_minute_edge()
    set_watermark(project, now - 30)  # this minute's fire is due
    failed = project.run("cron_scheduler", "run")
    assert failed.returncode == 0, failed.stderr
    assert "cannot start Echo:retried" in failed.stderr
    assert "released the fire claims of Echo:retried" in failed.stderr
    assert not list((project.data_dir / "claims").glob("*.claim"))
    use_schedule(project, ("* * * * *", "Echo:retried"))  # the wrapper is fixed
    retried = project.run("cron_scheduler", "run")
    assert started(retried.stderr, "Echo:retried") == 1, retried.stderr
    assert "spawned Echo:retried as PID" in retried.stderr  # crontab mode: the local spawner, with prefork too
    assert [m["args"] for m in wait_for(project.read_marks)] == [["retried"]]
    set_watermark(project, now - 30)
    again = project.run("cron_scheduler", "run")
    assert started(again.stderr, "Echo:retried") == 0, again.stderr


KILLER = '''
import os
import signal

from cronman_core import hookimpl


@hookimpl
def cronman_worker_command(command):
    if os.path.exists(os.environ["KILL_MARKER"]):
        os.kill(os.getpid(), signal.SIGKILL)  # after the claim, before the spawn
'''


@BOTH_SPAWNERS
def test_a_scheduler_sigkilled_between_claim_and_spawn_loses_no_fire(project: CronmanProject) -> None:
    (project.path / "claim_killer.py").write_text(KILLER)
    marker = project.path / "kill-now"
    marker.touch()
    project.extra_env["KILL_MARKER"] = str(marker)
    use_schedule(project, ("* * * * *", "Echo:survived"), CRONMAN_PLUGINS=["claim_killer"],
                 CRONMAN_CLAIM_PENDING=1.0)
    now = away_from_minute_edge()
    set_watermark(project, now - 30)
    killed = project.run("cron_scheduler", "run")
    assert killed.returncode == -signal.SIGKILL
    assert len(list((project.data_dir / "claims").glob("*.claim"))) == 1  # claimed, never run
    marker.unlink()
    time.sleep(1.2)  # the unconfirmed claim lapses
    restarted = project.run("cron_scheduler", "run")
    assert started(restarted.stderr, "Echo:survived") == 1, restarted.stderr
    assert [m["args"] for m in wait_for(project.read_marks)] == [["survived"]]
    time.sleep(1.2)  # confirmed by the spawn and the worker: it no longer lapses
    set_watermark(project, now - 30)  # a tick that decides this fire again finds it claimed
    again = project.run("cron_scheduler", "run")
    assert started(again.stderr, "Echo:survived") == 0, again.stderr
    time.sleep(1.0)
    assert len(project.read_marks()) == 1
