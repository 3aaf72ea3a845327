"""Proving that a PID is the process a record describes (PID + start time)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterator
from functools import cache
from types import FrameType
from typing import TYPE_CHECKING

from django.conf import settings

from cronman_core import conf
from cronman_core.records import RunRecord

if TYPE_CHECKING:
    import psutil

#: psutil derives start times from boot time and clock ticks: equal within a boot.
CREATE_TIME_TOLERANCE = 0.05


def flock_holders() -> dict[tuple[int, int, int], int] | None:
    """(major, minor, inode) → PID of every write-``flock()``ed file, or None without /proc/locks.

    The kernel's lock table: the one account of who holds a lock that no
    store, record or file content can forge.
    """
    try:
        with open("/proc/locks", "rb") as handle:
            text = handle.read().decode()
    except OSError:
        return None
    held = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE":
            try:
                major, minor, inode = fields[5].split(":")
                held[(int(major, 16), int(minor, 16), int(inode))] = int(fields[4])
            except ValueError:
                continue
    return held


def signal_own_run(signum: int) -> None:
    """Signal this process and what it started: its process group when it leads one."""
    import psutil  # local: start-up time

    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signum)
        return
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.send_signal(signum)
    os.kill(os.getpid(), signum)


def file_id(info: os.stat_result) -> tuple[int, int, int]:
    """The key of a file in :func:`flock_holders`."""
    return os.major(info.st_dev), os.minor(info.st_dev), info.st_ino


@cache
def hostname() -> str:
    """This host's name in run records; ``CRONMAN_HOSTNAME`` overrides it (two "hosts" on one machine)."""
    override = conf.get("CRONMAN_HOSTNAME") if settings.configured else None
    return str(override or socket.gethostname())


def create_time(pid: int) -> float | None:
    """The start time of process ``pid``, or None when there is none."""
    import psutil  # local: a worker that takes no lock never pays for its import

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, ValueError):
        return None


def verified_process(record: RunRecord) -> psutil.Process | None:
    """The live local process that wrote ``record``, or None (dead, foreign host, reused PID)."""
    if record.host != hostname() or record.create_time is None or record.pid <= 0:
        return None
    import psutil  # local: start-up time, as in create_time

    try:
        process = psutil.Process(record.pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, ValueError):
        return None
    if abs(started - record.create_time) > CREATE_TIME_TOLERANCE:
        return None
    return process


def _boot_time() -> float | None:
    """``btime`` of /proc/stat, as psutil reads it (None off Linux): no psutil import."""
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def proven_alive(records: list[RunRecord]) -> list[bool]:
    """For each record, whether :func:`verified_process` would find its process.

    The same proof (this host, PID, start time within
    :data:`CREATE_TIME_TOLERANCE`, not a zombie), batched for listings of
    thousands of records: on Linux one read of ``/proc/<pid>/stat`` per
    record, where psutil reads it twice plus ``/proc/stat``; elsewhere
    :func:`verified_process` per record.
    """
    boot = _boot_time()
    if boot is None:
        return [verified_process(record) is not None for record in records]
    ticks = os.sysconf("SC_CLK_TCK")
    local = hostname()
    flags = []
    for record in records:
        alive = False
        if record.host == local and record.create_time is not None and record.pid > 0:
            try:
                fd = os.open(f"/proc/{record.pid}/stat", os.O_RDONLY)
            except OSError:
                data = b""
            else:
                try:
                    data = os.read(fd, 4096)
                finally:
                    os.close(fd)
            fields = data[data.rfind(b")") + 2 :].split()
            if len(fields) > 19 and fields[0] != b"Z":
                started = int(fields[19]) / ticks + boot
                alive = abs(started - record.create_time) <= CREATE_TIME_TOLERANCE
        flags.append(alive)
    return flags


#: The signals that ask a cronman process to stop (``kill``, Ctrl-C, systemd, Kubernetes).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Handle SIGTERM / SIGINT with ``handler`` inside the block, restoring the old handlers after."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
