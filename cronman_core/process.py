"""Proving that a PID is the process a record describes (PID + start time)."""

from __future__ import annotations

import socket
from functools import cache
from typing import TYPE_CHECKING

from cronman_core.backends import RunRecord

if TYPE_CHECKING:
    import psutil

# psutil is imported where used: a worker that takes no lock never pays for it.

#: psutil derives start times from boot time and clock ticks: equal within a boot.
CREATE_TIME_TOLERANCE = 0.05


@cache
def hostname() -> str:
    return socket.gethostname()


def create_time(pid: int) -> float | None:
    """The start time of process ``pid``, or None when there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, ValueError):
        return None


def verified_process(record: RunRecord) -> psutil.Process | None:
    """The live local process that wrote ``record``, or None (dead, foreign host, reused PID)."""
    if record.host != hostname() or record.create_time is None or record.pid <= 0:
        return None
    import psutil

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
