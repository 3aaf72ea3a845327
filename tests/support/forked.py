"""Workers forked by the prefork spawner, driven from a test as the scheduler daemon drives them.

A ``manage.py shell`` process of the project stands in for the daemon: it
keeps the spawner (and so its template) for the whole test, spawns on
request and waits for exit codes, line by line over its stdin and stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from cronman_core.testing import CronmanProject

DRIVER = """
import json, sys
from cronman_core.plugins import get_plugin_manager
from cronman_core.spawn import spawn_job
from cronman_core.spawners import SpawnHandle
spawner = get_plugin_manager().spawner(long_lived=True)
spawner.reload()
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "spawn":
        try:
            handle = spawn_job(request["spec"], env=request.get("env"), long_lived=True)
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        print(json.dumps({"pid": handle.pid, "spawner": type(spawner).__name__}), flush=True)
    else:
        try:
            code = spawner.wait(SpawnHandle(request["spec"], pid=request["pid"]), request["timeout"])
        except TimeoutError:
            code = "timeout"
        print(json.dumps({"code": code}), flush=True)
spawner.close()
"""


class ForkDriver:
    """The stand-in daemon of one project (``CRONMAN_SPAWNER = "prefork"`` is set by :meth:`start`)."""

    def __init__(self, project: CronmanProject) -> None:
        self.project = project
        self.log = open(project.path / "fork-driver.log", "a")  # noqa: SIM115 (closed by close())
        self.process = subprocess.Popen(
            project.argv("shell", "-c", DRIVER), cwd=project.path, env=project.env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        while line and not line.startswith("{"):  # the shell's own banner
            line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the fork driver exited: {(self.project.path / 'fork-driver.log').read_text()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)
        self.log.close()


class ForkedWorker:
    """A forked worker with the parts of ``Popen`` the tests use."""

    def __init__(self, driver: ForkDriver, spec: str, env: dict[str, str] | None = None) -> None:
        answer = driver.ask(op="spawn", spec=spec, env=env)
        assert answer.get("spawner") == "PreforkSpawner", answer
        self.driver, self.spec, self.pid = driver, spec, int(answer["pid"])

    def kill(self) -> None:
        if self.poll() is None:  # as Popen.kill: never a PID the template already reaped
            os.kill(self.pid, signal.SIGKILL)

    def poll(self) -> int | None:
        code = self.driver.ask(op="wait", spec=self.spec, pid=self.pid, timeout=0)["code"]
        return None if code == "timeout" else int(code)

    def wait(self, timeout: float | None = 60) -> int:
        code = self.driver.ask(op="wait", spec=self.spec, pid=self.pid, timeout=timeout)["code"]
        if code == "timeout":
            raise subprocess.TimeoutExpired(self.spec, timeout or 0)
        return int(code)
