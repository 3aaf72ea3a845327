"""The local spawner: detached workers leading their session, private logs, no zombies."""

import os
import sys
from pathlib import Path

import psutil

from cronman_core.spawners import WorkerCommand
from cronman_plugins.local import TRUNCATED, LocalSpawner, prune_logs, reaper
from tests.conftest import wait_for
from tests.testapp.cron_jobs import Echo

CHILD = (
    "import os, sys; "
    "print(os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid(), os.environ['MARK'], sys.argv[1]); "
    "sys.stdout.flush(); "
    "import time; time.sleep(float(os.environ.get('NAP', '0')))"
)


def _command(*args: str, **env: str) -> WorkerCommand:
    return WorkerCommand(
        argv=[sys.executable, "-c", CHILD, *args],
        env={**os.environ, **env},
        job_spec="Echo:x",
        job_class=Echo,
    )


def test_spawned_worker_leads_its_session_with_the_commands_env_and_a_private_log(data_dir):
    handle = LocalSpawner(data_dir).spawn(_command("$(touch /tmp/x);", MARK="from-env"))
    assert handle.pid and handle.log_path
    log = Path(handle.log_path)
    assert log.parent == data_dir / "logs"
    assert log.stat().st_mode & 0o777 == 0o600
    assert (data_dir / "logs").stat().st_mode & 0o777 == 0o700
    text = wait_for(lambda: log.read_text(), timeout=30)
    assert text.strip() == "True True from-env $(touch /tmp/x);"


def test_finished_workers_are_reaped_without_a_new_spawn(data_dir):
    handle = LocalSpawner(data_dir).spawn(_command("x", MARK="m", NAP="0.2"))

    def reaped():
        try:
            psutil.Process(handle.pid)
        except psutil.NoSuchProcess:
            return True
        return False

    wait_for(reaped, timeout=30)
    assert reaper.reap() == 0


def test_logs_are_pruned_to_the_newest_and_capped(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for index in range(5):
        path = logs / f"{index}.log"
        path.write_bytes(b"x" * 100 + f"end{index}".encode())
        os.utime(path, (1000 + index, 1000 + index))
    prune_logs(logs, keep=2, max_bytes=40)
    assert sorted(p.name for p in logs.iterdir()) == ["3.log", "4.log"]
    data = (logs / "4.log").read_bytes()
    assert data.startswith(TRUNCATED) and data.endswith(b"end4") and len(data) < 100


def test_a_burst_of_spawns_lists_the_logs_once_a_second(data_dir, monkeypatch, settings):
    import cronman_plugins.local as local

    pruned = []
    monkeypatch.setattr(local, "prune_logs", lambda *args: pruned.append(args))
    clock = [1000.0]
    monkeypatch.setattr(local.time, "monotonic", lambda: clock[0])
    spawner = LocalSpawner(data_dir)
    for step in (0.0, 0.3, 0.6, 0.5, 0.1):  # at 1000.0, 1000.3, 1000.9, 1001.4, 1001.5
        clock[0] += step
        fd, _path = spawner.open_log("Echo")
        os.close(fd)
    assert len(pruned) == 2  # at 1000.0 and at 1001.4
