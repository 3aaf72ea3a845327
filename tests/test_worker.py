"""``cron_worker run`` / ``info`` as real subprocesses: params, exit codes, signals."""

import contextlib
import json
import os
import pty
import re
import signal
import subprocess

import pytest

from cronman_core.jobspec import parse
from cronman_core.worker import lock_key
from tests.conftest import wait_for
from tests.testapp.cron_jobs import Echo, SleepParams


def test_params_reach_run_as_strings(project):
    result = project.run("cron_worker", "run", 'Hello:"big world",sleep=1')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "args": ["big world"],
        "kwargs": {"sleep": "1"},
    }


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("Echo:", "empty value at characters 5-5"),
        ('Echo:"open', "unbalanced quotes"),
        ("Hello:a,b,c", "do not fit Hello.run()"),
        ("Hello:a,nope=1", "unexpected keyword argument 'nope'"),
        ("Hello", "missing a required argument: 'what'"),
        ("NoSuchJob", "unknown cron job 'NoSuchJob'"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_run_nothing(project, spec, fragment):
    result = project.run("cron_worker", "run", spec)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert project.read_marks() == []


def test_a_job_that_raises_exits_1_with_its_traceback_in_the_log(project):
    """Piped (a spawned worker's log file): the traceback; on a terminal: one line."""
    project.configure(CRONMAN_DISABLED_PLUGINS=["testplugin"])
    result = project.run("cron_worker", "run", "Fail:kaput")
    assert result.returncode == 1
    assert "Fail:kaput failed: RuntimeError: kaput\nTraceback (most recent call last):" in result.stderr
    assert 'raise RuntimeError(message)' in result.stderr

    controller, terminal = pty.openpty()
    try:
        worker = subprocess.Popen(project.argv("cron_worker", "run", "Fail:kaput"), cwd=project.path,
                                  env=project.env(), stdout=subprocess.DEVNULL, stderr=terminal)
        os.close(terminal)
        assert worker.wait(timeout=60) == 1
        output = b""
        with contextlib.suppress(OSError):  # EIO once the worker closed its end
            while chunk := os.read(controller, 4096):
                output += chunk
    finally:
        os.close(controller)
    lines = [line for line in output.decode().splitlines() if line.strip()]
    assert [line for line in lines if "failed" in line] == [lines[-1]] and "Traceback" not in output.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_gives_killed_notification_and_clean_exit(project, signum):
    log = project.path / "plugin.log"
    proc = project.popen("cron_worker", "run", "SleepNoLock:30", env={"CRONMAN_TESTPLUGIN_LOG": str(log)})
    wait_for(lambda: any(m.get("event") == "start" for m in project.read_marks()))
    proc.send_signal(signum)
    proc.communicate(timeout=20)
    assert proc.returncode == 128 + signum
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events == ["started", "killed"]
    assert not any(m.get("event") == "end" for m in project.read_marks())


def test_without_logging_settings_messages_have_a_level_and_a_source(project):
    """A project whose LOGGING configures nothing still gets readable cronman lines (INFO and up)."""
    project.configure(LOGGING={}, CRONMAN_DISABLED_PLUGINS=["testplugin"])
    result = project.run("cron_worker", "run", "Fail:kaput")
    assert result.returncode == 1
    assert re.search(r"^\d{4}-\d\d-\d\d [\d:,]+ ERROR cronman.worker: Fail:kaput failed: RuntimeError: kaput$",
                     result.stderr, re.M), result.stderr
    project.configure(LOGGING={"version": 1, "handlers": {"h": {"class": "logging.NullHandler"}},
                               "loggers": {"cronman": {"handlers": ["h"]}}})
    assert project.run("cron_worker", "run", "Fail:kaput").stderr == ""  # what the project set, exactly


def test_info_lists_jobs_and_shows_one(project):
    listing = project.run("cron_worker", "info")
    assert listing.returncode == 0
    assert "Hello" in listing.stdout and "Say hello" in listing.stdout
    one = project.run("cron_worker", "info", "Hello")
    assert "Hello(what, sleep=None)" in one.stdout
    assert "required" in one.stdout
    data = json.loads(project.run("cron_worker", "info", "Hello", "--json").stdout)
    assert [p["name"] for p in data["params"]] == ["what", "sleep"]
    assert data["params"][0]["required"] is True
    missing = project.run("cron_worker", "info", "Nope")
    assert missing.returncode == 2 and "unknown cron job 'Nope'" in missing.stderr


@pytest.mark.parametrize(
    "spec",
    ["SleepParams:5,tag=x", "SleepParams:seconds=5,tag=x", "SleepParams:tag=x,seconds=5",
     "SleepParams:5,tag=x,cronitor_id=abc"],
)
def test_params_locks_are_keyed_by_the_bound_call(spec):
    assert lock_key(SleepParams, parse(spec), {"cronitor_id"}) == "SleepParams:seconds=5,tag=x"


def test_params_lock_of_star_args_and_kwargs():
    class Locked(Echo):
        lock_type = "params"

    first, second = lock_key(Locked, parse("Echo:a,b,z=1,y=2")), lock_key(Locked, parse("Echo:a,b,y=2,z=1"))
    assert first == second == "Echo:a,b,y=2,z=1"


def test_a_run_that_cannot_confirm_its_pending_fire_claims_does_not_start(data_dir, monkeypatch, caplog) -> None:
    """A full or read-only data dir at a scheduled run's start: were its claims left pending, they would lapse
    and a tick would run the fire again; the run starts only if its tick made them final."""
    import errno
    from types import SimpleNamespace

    from cronman_core import worker
    from cronman_core.locks import FireClaims
    from cronman_plugins.pidfile import PidfileBackend

    class FullDisk(PidfileBackend):
        def claim(self, key: str, ttl: float, token: str = "") -> bool:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(worker, "CONFIRM_WAIT", 0.6)
    monkeypatch.setattr(worker, "CONFIRM_POLL", 0.1)
    backend = PidfileBackend(data_dir)
    pm = SimpleNamespace(lock_backend=lambda: FullDisk(data_dir))
    run = SimpleNamespace(job_spec="Noop")
    assert backend.claim("fire-pending", 120, "t")  # its tick claimed, spawned, and could not confirm either
    assert worker._confirm_claims(pm, FireClaims("t", 3600, ("fire-pending",)), run) is False
    assert "Noop: cannot confirm its fire claims ([Errno 28] No space left on device): not running" in caplog.text
    assert backend.claim("fire-final", 3600, "t")  # its tick confirmed them
    assert worker._confirm_claims(pm, FireClaims("t", 3600, ("fire-final",)), run) is True
