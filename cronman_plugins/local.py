"""The default spawner: a detached subprocess on this host, leading its own process group.

Each worker gets its own session (``kill`` signals the whole group, the job's
children too), the command's environment, no stdin, and a private per-run log
file under ``<data dir>/logs``. Logs are pruned at a spawn, at most once a
second per process (a burst of spawns would otherwise list the directory
for each): the newest ``CRONMAN_LOG_KEEP`` files are kept and none grows
past ``CRONMAN_LOG_MAX_BYTES`` (its tail is kept). Finished workers are reaped by a
background thread that polls them, so a long-running scheduler leaves no
zombies and needs no SIGCHLD handler.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

from cronman_core import conf, hookimpl
from cronman_core.datadir import private_subdir
from cronman_core.files import readable_prefix
from cronman_core.spawners import Spawner, SpawnHandle, WorkerCommand

logger = logging.getLogger("cronman.plugins.local")

conf.declare(
    conf.Setting("CRONMAN_LOG_KEEP", 1000, conf.count(1)),
    conf.Setting("CRONMAN_LOG_MAX_BYTES", 10 * 1024 * 1024, conf.count(1024)),
)
TRUNCATED = b"[cronman: log truncated, the tail follows]\n"
_ENOMEM_RETRY_DELAY = 1.0
_REAP_INTERVAL = 0.5
#: Logs are pruned at most this often by one process.
PRUNE_INTERVAL = 1.0
_pruned: dict[Path, float] = {}


class _Reaper:
    """Polls spawned children until they exit, so none stays a zombie; keeps the last exit codes."""

    #: Exit codes kept for :meth:`wait` (the oldest are forgotten).
    KEEP_CODES = 10_000

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []
        self._codes: dict[int, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, child: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children.append(child)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="cronman-reaper", daemon=True
                )
                self._thread.start()

    def reap(self) -> int:
        """Collect finished children now; return how many are still running."""
        with self._lock:
            return self._poll()

    def wait(self, pid: int, timeout: float | None) -> int:
        """The exit code of child ``pid`` (as ``Popen.returncode``), waiting up to ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                self._poll()
                if pid in self._codes:
                    return self._codes[pid]
                if not any(child.pid == pid for child in self._children):
                    raise LookupError(f"PID {pid} is not a worker this process spawned")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"PID {pid} still runs")
            time.sleep(0.02)

    def _poll(self) -> int:
        running = []
        for child in self._children:
            if child.poll() is None:
                running.append(child)
            else:
                self._codes[child.pid] = child.returncode
                while len(self._codes) > self.KEEP_CODES:
                    del self._codes[next(iter(self._codes))]
        self._children = running
        return len(self._children)

    def _run(self) -> None:
        while True:
            time.sleep(_REAP_INTERVAL)
            with self._lock:
                if not self._poll():
                    self._thread = None
                    return


reaper = _Reaper()


def _log_name(job_spec: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{readable_prefix(job_spec)}-{uuid.uuid4().hex[:8]}.log"


def _cap(path: str, size: int, max_bytes: int) -> None:
    """Keep the last half of a log grown past ``max_bytes`` (the worker appends)."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        keep = max_bytes // 2
        tail = os.pread(fd, keep, max(0, size - keep))
        os.ftruncate(fd, 0)
        os.pwrite(fd, TRUNCATED + tail, 0)
    finally:
        os.close(fd)


def prune_logs(logs_dir: Path, keep: int, max_bytes: int) -> None:
    """Delete all but the newest ``keep`` logs; cap the size of the rest."""
    entries = []
    for entry in os.scandir(logs_dir):
        if entry.name.endswith(".log"):
            with contextlib.suppress(FileNotFoundError):
                entries.append((entry.stat(follow_symlinks=False), entry.path))
    entries.sort(key=lambda item: item[0].st_mtime, reverse=True)
    for _info, path in entries[keep:]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    for info, path in entries[:keep]:
        if info.st_size > max_bytes:
            with contextlib.suppress(FileNotFoundError):
                _cap(path, info.st_size, max_bytes)


class LocalSpawner(Spawner):
    """Starts ``command.argv`` detached, output to a per-run log file."""

    def __init__(self, data_dir: Path) -> None:
        self.logs_dir = private_subdir(Path(data_dir), "logs")

    def spawn(self, command: WorkerCommand) -> SpawnHandle:
        child, log_path = self.start(command)
        reaper.add(child)
        logger.info("spawned %s as PID %d, log %s", command.job_spec, child.pid, log_path)
        return SpawnHandle(job_spec=command.job_spec, pid=child.pid, log_path=str(log_path))

    def wait(self, handle: SpawnHandle, timeout: float | None = None) -> int:
        if handle.pid is None:
            raise LookupError(f"{handle.job_spec} has no local PID")
        return reaper.wait(handle.pid, timeout)

    def open_log(self, job_spec: str) -> tuple[int, Path]:
        """A new private per-run log (its descriptor, close-on-exec, and path), after pruning the old ones."""
        now = time.monotonic()
        if now - _pruned.get(self.logs_dir, -PRUNE_INTERVAL) >= PRUNE_INTERVAL:
            _pruned[self.logs_dir] = now
            prune_logs(
                self.logs_dir,
                conf.get("CRONMAN_LOG_KEEP"),
                conf.get("CRONMAN_LOG_MAX_BYTES"),
            )
        log_path = self.logs_dir / _log_name(job_spec)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(log_path, flags, 0o600), log_path

    def start(self, command: WorkerCommand) -> tuple[subprocess.Popen[bytes], Path]:
        """Start the worker and its log; the caller reaps it (``spawn``) or waits for it (Celery)."""
        log_fd, log_path = self.open_log(command.job_spec)
        try:
            return self._popen(command, log_fd), log_path
        finally:
            os.close(log_fd)

    @staticmethod
    def _popen(command: WorkerCommand, log_fd: int) -> subprocess.Popen[bytes]:
        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                command.argv,
                env=command.env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

        try:
            return start()
        except OSError as exc:
            if exc.errno != errno.ENOMEM:
                raise
            logger.warning("spawning %s: out of memory, retrying once", command.job_spec)
            time.sleep(_ENOMEM_RETRY_DELAY)
        return start()


@hookimpl(trylast=True)
def cronman_spawner(data_dir: Path) -> Spawner | None:
    if conf.get("CRONMAN_SPAWNER") not in (None, "local"):
        return None  # another spawner was named: pm.spawner() says so if it is not active
    return LocalSpawner(data_dir)


__all__ = ["LocalSpawner", "prune_logs", "reaper", "cronman_spawner"]
