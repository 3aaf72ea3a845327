"""Hook of the prefork spawner, and its daemon side: the template process and the runs it forks.

``CRONMAN_SPAWNER = "prefork"`` switches it on. Only a long-lived process
(the scheduler daemon) gets a :class:`PreforkSpawner`; one-shot commands
(``cron_scheduler run``, ``cron_worker resume``, ``RunCronTasks``) get the
local spawner, since starting a template costs what it would save there.

The daemon starts the template at its start (:meth:`PreforkSpawner.reload`)
and hands it each run: the command's environment and fork steps, and the
run's log, opened here exactly as the local spawner opens it and passed as a
descriptor. The template forks and answers with the child's PID (the
:class:`~cronman_core.spawners.SpawnHandle`), reaps it and reports its exit
code. Before a spawn, at most once a second, the modules the template
imported are looked at: when one changed on disk, a new template is started
and the old one retired (it exits when its last run has). SIGHUP to the
daemon does the same at once.

Where forking cannot be used the local spawner runs the job, with one
warning: not on this platform, a template that cannot start (an error at
import: the local worker then shows it in its log) or one that runs threads
after start-up, and commands wrapped by a tool that only exec can apply
(``CRONMAN_RAVEN_CMD``); and, without a warning, a job class that says
``warm_fork = False`` (a job that must start from a fresh interpreter).
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cronman_core import conf, hookimpl
from cronman_core.errors import CronmanError
from cronman_core.locks import FIRE_CLAIMS_ENV
from cronman_core.spawn import worker_env
from cronman_core.spawners import Spawner, SpawnHandle, WorkerCommand
from cronman_core.utils import RESUMED_ENV
from cronman_plugins.local import LocalSpawner, reaper
from cronman_plugins.prefork.template import MAX_MESSAGE, send

logger = logging.getLogger("cronman.plugins.prefork")

conf.declare(
    conf.Setting("CRONMAN_PREFORK_START_TIMEOUT", 60.0, conf.seconds(0.0, strict=True)),
)

#: How often, at most, a spawn looks at the template's module files.
LOOK_INTERVAL = 1.0
#: How long a spawn waits for the template's answer (it forks at once: only a stopped template is late).
REPLY_TIMEOUT = 10.0
#: After a template failed to start, how long spawns use the local spawner before trying again.
RETRY_AFTER = 60.0
#: Exit codes a template handle keeps for :meth:`PreforkSpawner.wait`.
KEEP_CODES = 10_000
#: cronman's own per-run variables: a template's environment leaves them out.
PER_RUN_ENV = (RESUMED_ENV, FIRE_CLAIMS_ENV)


def plugin_enabled() -> bool:
    return conf.get("CRONMAN_SPAWNER") == "prefork"


def fork_usable() -> str | None:
    """Why this platform cannot fork a warm template (None: it can)."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return "this platform has no fork() or descriptor passing"
    if sys.platform == "darwin":
        return "fork() without exec is unsafe on macOS"
    return None


class SpawnFailed(CronmanError):
    """The template could not fork a run (the scheduler releases its fires for the next tick)."""


class TemplateLost(SpawnFailed):
    """The template exited or did not answer: it is replaced before the next spawn."""


class TemplateUnusable(Exception):
    """A template that did not become ready, or must not fork (threads)."""


class _Template:
    """The daemon's handle on one template process: its socket, module files, children and their exits."""

    def __init__(self, env: Mapping[str, str], timeout: float) -> None:
        self.key = _key(env)
        self.files: list[tuple[str, int]] = []
        self.children: set[int] = set()
        self.codes: dict[int, int] = {}
        self.replies: dict[int, dict[str, Any]] = {}
        self.dead = False
        self.cond = threading.Condition()
        self._ids = itertools.count(1)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "cronman_plugins.prefork.template", str(theirs.fileno())],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # its log lines go to stderr, the daemon's
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                close_fds=True,
            )
        finally:
            theirs.close()
        try:
            self.threads = self._handshake(timeout)
        except BaseException:
            self.stop()
            raise
        self._reader = threading.Thread(target=self._read, name="cronman-prefork-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _handshake(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except TimeoutError:
                raise TemplateUnusable(f"it did not start within {timeout:g} s") from None
            if not data:
                raise TemplateUnusable(f"it exited with {self.popen.wait()} while starting")
            message = pickle.loads(data)
            if "failed" in message:
                raise TemplateUnusable(message["failed"])
            if "files" in message:
                self.files += message["files"]
            elif "ready" in message:
                self.sock.settimeout(None)
                return list(message["threads"])

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = pickle.loads(data)
            with self.cond:
                if "started" in message:
                    self.replies[message["started"]] = message
                elif "exited" in message:
                    self.children.discard(message["exited"])
                    self.codes[message["exited"]] = message["code"]
                    while len(self.codes) > KEEP_CODES:
                        del self.codes[next(iter(self.codes))]
                self.cond.notify_all()
        with self.cond:
            self.dead = True
            self.cond.notify_all()

    def changed_file(self) -> str | None:
        """The first module file that changed or went away since the template imported it."""
        for path, mtime in self.files:
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return path
            except OSError:
                return path
        return None

    def fork(self, command: WorkerCommand, log_fd: int) -> int:
        """Have the template fork a worker for ``command``, its output to ``log_fd``: its PID."""
        run_id = next(self._ids)
        request = {"run": run_id, "job_spec": command.job_spec, "argv": command.argv,
                   "env": command.env, "steps": command.fork_steps}
        send(self.sock, request, [log_fd])
        with self.cond:
            self.cond.wait_for(lambda: run_id in self.replies or self.dead, REPLY_TIMEOUT)
            reply = self.replies.pop(run_id, None)
            if reply is not None and "pid" in reply:
                self.children.add(reply["pid"])
        if reply is None:
            why = "exited" if self.dead else f"did not answer within {REPLY_TIMEOUT:g} s"
            raise TemplateLost(f"the prefork template (PID {self.pid}) {why}")
        if "error" in reply:
            raise SpawnFailed(f"the prefork template (PID {self.pid}) cannot fork: {reply['error']}")
        pid: int = reply["pid"]
        return pid

    def knows(self, pid: int) -> bool:
        with self.cond:
            return pid in self.children or pid in self.codes

    def wait(self, pid: int, timeout: float | None) -> int:
        with self.cond:
            if not self.cond.wait_for(lambda: pid in self.codes or self.dead, timeout):
                raise TimeoutError(f"PID {pid} still runs")
            if pid not in self.codes:
                raise LookupError(f"the prefork template of PID {pid} exited before it")
            return self.codes[pid]

    def retire(self) -> None:
        """No more runs: the template exits after its last child; the local reaper collects it."""
        try:
            send(self.sock, {"retire": True})
        except OSError:
            pass
        reaper.add(self.popen)

    def stop(self) -> None:
        """Kill a template that is of no use (never ready): it has no children."""
        self.popen.kill()
        self.popen.wait()
        self.sock.close()


def _key(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """What makes a template fit a command: the settings and import path it was set up with."""
    return env.get("DJANGO_SETTINGS_MODULE"), env.get("PYTHONPATH")


def _template_env(env: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in PER_RUN_ENV}


class PreforkSpawner(Spawner):
    """Forks each run from a warm template process; the local spawner where that cannot be done."""

    def __init__(self, data_dir: Path) -> None:
        self.local = LocalSpawner(data_dir)
        self._lock = threading.RLock()
        self._template: _Template | None = None
        self._retired: list[_Template] = []
        self._looked = 0.0
        self._retry_at = 0.0
        self._warned: set[str] = set()

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s", message)

    def spawn(self, command: WorkerCommand) -> SpawnHandle:
        if not getattr(command.job_class, "warm_fork", True):
            return self.local.spawn(command)  # the job asks for a new Python per run
        if command.fork_steps is None:
            self._warn_once(f"{command.argv[0]} wraps the worker command and only exec can apply it: "
                            "such runs use the local spawner")
            return self.local.spawn(command)
        with self._lock:
            template = self._ready(command.env)
            if template is None:
                return self.local.spawn(command)
            log_fd, log_path = self.local.open_log(command.job_spec)
            try:
                pid = template.fork(command, log_fd)
            except OSError as exc:  # the socket: the template is gone; nothing was forked
                self._replace(None)
                raise TemplateLost(f"the prefork template (PID {template.pid}) is gone: {exc}") from exc
            except TemplateLost:
                template.popen.kill()  # stopped or hung (a dead one is harmless to kill): never asked again
                self._replace(None)
                raise
            finally:
                os.close(log_fd)
        logger.info("forked %s as PID %d, log %s", command.job_spec, pid, log_path)
        return SpawnHandle(job_spec=command.job_spec, pid=pid, log_path=str(log_path))

    def _ready(self, env: Mapping[str, str]) -> _Template | None:
        """The template to fork from for a command with ``env``; None: use the local spawner."""
        why = fork_usable()
        if why:
            self._warn_once(f"prefork spawner: {why}; the local spawner runs the jobs")
            return None
        template = self._template
        if template is not None and (template.dead or template.key != _key(env)):
            template = self._replace(None)
        if template is not None and time.monotonic() - self._looked >= LOOK_INTERVAL:
            self._looked = time.monotonic()
            changed = template.changed_file()
            if changed:
                logger.info("prefork: %s changed: starting a new template", changed)
                template = self._replace(None)
        if template is None and time.monotonic() >= self._retry_at:
            template = self._start(_template_env(env))
        if template is not None and template.threads:
            return None
        return template

    def _start(self, env: Mapping[str, str]) -> _Template | None:
        started = time.monotonic()
        try:
            template = _Template(env, conf.get("CRONMAN_PREFORK_START_TIMEOUT"))
        except (TemplateUnusable, OSError) as exc:
            self._retry_at = time.monotonic() + RETRY_AFTER
            self._warn_once(f"prefork template cannot start ({exc}); the local spawner runs the jobs, "
                            f"and the template is tried again every {RETRY_AFTER:g} s")
            return None
        self._replace(template)
        self._looked = time.monotonic()
        if template.threads:
            # Its files are still watched: a fixed module brings a new template.
            self._warn_once(f"prefork template runs threads after start-up ({', '.join(template.threads)}): "
                            "forking it is unsafe, so the local spawner runs the jobs; start threads in "
                            "run(), not at import")
        else:
            logger.info("prefork template ready as PID %d in %.3f s (%d module files watched)",
                        template.pid, time.monotonic() - started, len(template.files))
        return template

    def _replace(self, template: _Template | None) -> _Template | None:
        """Make ``template`` the current one; the previous one retires (its runs finish)."""
        old, self._template = self._template, template
        if old is not None:
            old.retire()
            self._retired = [t for t in self._retired if not t.dead] + [old]
        return template

    def reload(self) -> None:
        with self._lock:
            self._retry_at = 0.0
            self._warned.clear()
            self._replace(None)
            self._ready(worker_env())

    def close(self) -> None:
        with self._lock:
            self._replace(None)

    def wait(self, handle: SpawnHandle, timeout: float | None = None) -> int:
        if handle.pid is None:
            raise LookupError(f"{handle.job_spec} has no local PID")
        with self._lock:
            templates = [t for t in (self._template, *self._retired) if t is not None]
        for template in templates:
            if template.knows(handle.pid):
                return template.wait(handle.pid, timeout)
        return self.local.wait(handle, timeout)


_spawners: dict[Path, PreforkSpawner] = {}
_spawners_lock = threading.Lock()


@hookimpl
def cronman_spawner(data_dir: Path, long_lived: bool) -> Spawner:
    if not long_lived:
        return LocalSpawner(data_dir)
    with _spawners_lock:
        spawner = _spawners.get(data_dir)
        if spawner is None:
            spawner = _spawners[data_dir] = PreforkSpawner(data_dir)
        return spawner


__all__ = ["PreforkSpawner", "SpawnFailed", "cronman_spawner", "fork_usable"]
