"""The prefork spawner with real processes: the daemon's template, its replacement, its faults, fallbacks."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any

import psutil
import pytest

from cronman_core.testing import CronmanProject, SpawnerContract
from tests.conftest import wait_for
from tests.support.forked import ForkDriver, ForkedWorker

PROBE = SpawnerContract.probe_settings()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _templates(text: str) -> list[int]:
    """PIDs of the templates a daemon's (or driver's) log says were ready, in order."""
    return [int(pid) for pid in re.findall(r"prefork template ready as PID (\d+)", text)]


@pytest.fixture
def driver(project: CronmanProject):
    """A stand-in daemon for the project, started on first use (after the test configured it)."""
    drivers: list[ForkDriver] = []

    def start(**settings: Any) -> ForkDriver:
        project.configure(**{**PROBE, "CRONMAN_SPAWNER": "prefork", **settings})
        drivers.append(ForkDriver(project))
        return drivers[-1]

    yield start
    for each in drivers:
        each.close()


def _log(project: CronmanProject) -> str:
    return (project.path / "fork-driver.log").read_text()


def _probe_runs(project: CronmanProject) -> dict[str, dict[str, Any]]:
    return SpawnerContract.probes(project)


def test_the_daemon_forks_its_runs_from_one_template_reaps_them_and_leaves_nothing(
    project: CronmanProject,
) -> None:
    project.extra_env["CRONMAN_PROBE_FILE"] = str(project.path / "probe.jsonl")
    (project.path / "daemon_jobs.py").write_text(
        "CRON_JOBS = (('* * * * *', 'SpawnerProbe:tag=a'), ('* * * * *', 'SpawnerProbe:tag=b'))\n")
    project.configure(**PROBE, CRONMAN_SPAWNER="prefork", CRONMAN_JOBS_MODULE="daemon_jobs",
                      CRONMAN_DISABLED_PLUGINS=("cronman_plugins.tasks", "cronman_plugins.history"))
    state = project.data_dir / "scheduler"
    state.mkdir(mode=0o700)
    (state / "watermark.json").write_text(json.dumps({"version": 1, "watermark": time.time() - 90}))
    daemon = project.popen("cron_scheduler", "daemon")
    try:
        runs = wait_for(lambda: len(_probe_runs(project)) == 2 and _probe_runs(project), timeout=60)
        template = psutil.Process(runs["a"]["ppid"])
        assert runs["b"]["ppid"] == template.pid and template.ppid() == daemon.pid
        for run in runs.values():
            wait_for(lambda run=run: not psutil.pid_exists(run["pid"]), timeout=30)  # reaped, not a zombie
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: not template.is_running() or template.status() == psutil.STATUS_ZOMBIE, timeout=30)
        replacement = wait_for(lambda: [c for c in psutil.Process(daemon.pid).children() if c.pid != template.pid])
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert _templates(err) == [template.pid, replacement[0].pid], err
    assert "SIGHUP: the schedule is read anew and the spawner gets ready anew" in err
    wait_for(lambda: _gone(replacement[0].pid), timeout=30)  # retired with the daemon: it had no run left


def test_a_changed_job_module_brings_a_new_template_before_the_next_run(
    project: CronmanProject, driver,
) -> None:
    module = project.path / "versioned_jobs.py"
    source = ("from cronman_core import hookimpl\nfrom cronman_core.job import BaseCronJob\n"
              "from cronman_core.testing import _probe_write\n"
              "VERSION = {version}\n"
              "class Versioned(BaseCronJob):\n"
              "    def run(self, tag):\n"
              "        _probe_write({{'event': 'run', 'tag': tag, 'version': VERSION,\n"
              "                      'ppid': __import__('os').getppid()}})\n"
              "@hookimpl\n"
              "def cronman_register_jobs(registry):\n"
              "    registry.register(Versioned)\n")
    module.write_text(source.format(version=1))
    project.extra_env["CRONMAN_PROBE_FILE"] = str(project.path / "probe.jsonl")
    forks = driver(CRONMAN_PLUGINS=["versioned_jobs", "cronman_core.testing"])
    assert ForkedWorker(forks, "Versioned:one").wait() == 0
    module.write_text(source.format(version=2))
    later = time.time() + 5
    os.utime(module, (later, later))  # a new mtime even on a coarse clock
    time.sleep(1.1)  # a spawn looks at the files at most once a second
    assert ForkedWorker(forks, "Versioned:two").wait() == 0
    runs = _probe_runs(project)
    assert (runs["one"]["version"], runs["two"]["version"]) == (1, 2)
    first, second = _templates(_log(project))
    assert (runs["one"]["ppid"], runs["two"]["ppid"]) == (first, second)
    assert "versioned_jobs.py changed: starting a new template" in _log(project)
    wait_for(lambda: _gone(first), timeout=30)  # retired: it exits after its last run


def test_a_killed_or_stopped_template_is_replaced_and_no_run_is_lost(project: CronmanProject, driver) -> None:
    project.extra_env["CRONMAN_PROBE_FILE"] = str(project.path / "probe.jsonl")
    forks = driver()
    assert ForkedWorker(forks, "SpawnerProbe:tag=before").wait() == 0
    (first,) = _templates(_log(project))
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: _gone(first))
    assert ForkedWorker(forks, "SpawnerProbe:tag=after-kill").wait() == 0
    second = _templates(_log(project))[-1]
    os.kill(second, signal.SIGSTOP)  # it gets the request but never answers
    failed = forks.ask(op="spawn", spec="SpawnerProbe:tag=stopped")
    assert "TemplateLost" in failed["error"] and "did not answer" in failed["error"], failed
    wait_for(lambda: _gone(second))  # killed, not left stopped
    assert ForkedWorker(forks, "SpawnerProbe:tag=after-stop").wait() == 0
    runs = _probe_runs(project)
    assert set(runs) == {"before", "after-kill", "after-stop"}  # the failed spawn ran nothing
    assert len(set(_templates(_log(project)))) == 3


THREADED = ("import threading, time\n"
            "threading.Thread(target=time.sleep, args=(3600,), name='at-import', daemon=True).start()\n")


@pytest.mark.parametrize(
    ("setup", "warning"),
    [
        ("threads", "prefork template runs threads after start-up (at-import)"),
        ("timeout", "prefork template cannot start (it did not start within 0.001 s)"),
        ("raven", "/bin/sh wraps the worker command and only exec can apply it"),
    ],
)
def test_where_forking_cannot_be_used_the_local_spawner_runs_jobs_with_one_warning(
    project: CronmanProject, driver, setup: str, warning: str,
) -> None:
    project.extra_env["CRONMAN_PROBE_FILE"] = str(project.path / "probe.jsonl")
    settings: dict[str, Any] = {
        "threads": {"CRONMAN_PLUGINS": ["threaded_plugin", "cronman_core.testing"]},
        "timeout": {"CRONMAN_PREFORK_START_TIMEOUT": 0.001},
        "raven": {"CRONMAN_RAVEN_CMD": "/bin/sh"},
    }[setup]
    (project.path / "threaded_plugin.py").write_text(THREADED)
    forks = driver(**settings)
    for tag in ("one", "two"):
        assert ForkedWorker(forks, f"SpawnerProbe:tag={tag}").wait() == 0
    runs = _probe_runs(project)
    assert set(runs) == {"one", "two"}
    text = _log(project)
    assert {runs["one"]["ppid"], runs["two"]["ppid"]}.isdisjoint(_templates(text))
    assert text.count(warning) == 1, text
    assert len(re.findall(r"spawned SpawnerProbe:tag=\w+ as PID", text)) == 2, text  # the local spawner's line
    assert "forked SpawnerProbe" not in text


def test_a_job_that_says_warm_fork_false_gets_a_new_python_without_a_warning(
    project: CronmanProject, driver
) -> None:
    forks = driver()
    assert ForkedWorker(forks, "MarkTime:tag=warm").wait() == 0
    assert ForkedWorker(forks, "MarkTimeFresh:tag=fresh").wait() == 0
    marks = {m["tag"]: m for m in project.read_marks()}
    text = _log(project)
    assert marks["warm"]["pid"] in [int(pid) for pid in re.findall(r"forked MarkTime:tag=warm as PID (\d+)", text)]
    assert marks["fresh"]["pid"] in [int(pid) for pid in
                                     re.findall(r"spawned MarkTimeFresh:tag=fresh as PID (\d+)", text)]
    assert "WARNING" not in text, text


def test_a_template_whose_daemon_died_while_it_got_ready_exits_without_a_traceback(project: CronmanProject) -> None:
    """The daemon SIGKILLed while its new template sends its module list (found by the daemon soak)."""
    import socket
    import subprocess
    import sys

    project.configure(**PROBE, CRONMAN_SPAWNER="prefork")
    daemon_end, template_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    daemon_end.close()  # the daemon is gone before the template is ready
    result = subprocess.run([sys.executable, "-m", "cronman_plugins.prefork.template", str(template_end.fileno())],
                            pass_fds=(template_end.fileno(),), env=project.env(), cwd=project.path,
                            capture_output=True, text=True, timeout=60)
    template_end.close()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
