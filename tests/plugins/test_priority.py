"""nice / ionice for spawned workers only: argv wrapping and a real resumed NiceSleep."""

import pytest

from cronman_core.errors import UsageError
from cronman_core.spawn import build_worker_command
from cronman_core.taxonomies import CPUPriority, IOPriority
from cronman_plugins.priority import priority_args
from tests.conftest import wait_for


class Plain:
    pass


class Both:
    worker_cpu_priority = CPUPriority.LOW
    worker_io_priority = IOPriority.IDLE


class Pair:
    worker_io_priority = (IOPriority.BEST_EFFORT, 7)


def test_priority_args(settings):
    assert priority_args(Plain) == []
    assert priority_args(Both) == ["nice", "-n", "10", "ionice", "-c", "3"]
    assert priority_args(Pair) == ["ionice", "-c", "2", "-n", "7"]
    settings.CRONMAN_NICE_CMD = "/usr/bin/nice"
    settings.CRONMAN_IONICE_CMD = ""
    assert priority_args(Both) == ["/usr/bin/nice", "-n", "10"]


def test_spawned_command_is_wrapped():
    argv = build_worker_command("NiceSleep:1").argv
    assert argv[:3] == ["nice", "-n", "19"]
    assert build_worker_command("Sleep:1").argv[0] != "nice"


def test_resumed_nice_job_runs_at_niceness_19_but_a_direct_run_does_not(project):
    direct = project.popen("cron_worker", "run", "NiceSleep:60")
    start = wait_for(lambda: [m for m in project.read_marks() if m.get("event") == "start"], timeout=60)
    assert start[0]["nice"] == 0 and start[0]["resumed"] is False
    direct.kill()
    direct.wait()
    resumed = project.run("cron_worker", "resume", "NiceSleep")
    assert resumed.returncode == 0, resumed.stderr
    new_pid = int(resumed.stdout.split("\t")[1])
    marks = wait_for(lambda: [m for m in project.read_marks() if m["pid"] == new_pid], timeout=60)
    assert marks[0]["nice"] == 19 and marks[0]["resumed"] is True
    killed = project.run("cron_worker", "kill", str(new_pid))
    assert killed.returncode == 0, killed.stderr


@pytest.mark.parametrize("value", [(1, 2, 3), "x", (2, "low")])
def test_bad_io_priority_is_a_usage_error(value):
    class Bad:
        worker_io_priority = value

    with pytest.raises(UsageError, match="Bad.worker_io_priority is not a number"):
        priority_args(Bad)
