"""What a run printed: the tail of its stdout and stderr, bounded, for its history row and failure notifications.

A spawned worker's stdout and stderr are its per-run log (local, prefork and
Celery spawners alike), a regular file the worker appends to: what a run
printed is what that file grew by while it ran. :class:`OutputTail` notes the
file's size when a run starts and reads the last :data:`OUTPUT_LIMIT` bytes
written since when it ends, through a descriptor of its own (the log is
opened write-only). Output that does not go to a regular file (a terminal, a
pipe: ``cron_worker run`` typed by hand) is not captured; the job's children
write to the same file, so their output is in it too.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys

#: Most bytes of output kept per run (its end: where a failure shows).
OUTPUT_LIMIT = 64 * 1024


class OutputTail:
    """The growth of this process's stdout file since :meth:`start`; nothing if stdout is not a file."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self._start = self._size() if fd is not None else 0

    @classmethod
    def start(cls) -> OutputTail:
        """Note where the output of a run starts (stdout's file, reopened to be read)."""
        try:
            if not stat.S_ISREG(os.fstat(1).st_mode):
                return cls(None)
            fd = os.open("/proc/self/fd/1", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # no /proc (not Linux), or stdout closed
            return cls(None)
        return cls(fd)

    def _size(self) -> int:
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    def read(self) -> str | None:
        """The run's output so far, its last :data:`OUTPUT_LIMIT` bytes (None: not captured)."""
        if self._fd is None:
            return None
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            end = self._size()
            begin = self._start if end >= self._start else 0  # the log was cut (pruned) while it ran
            begin = max(begin, end - OUTPUT_LIMIT)
            data = os.pread(self._fd, end - begin, begin)
        except OSError:
            return None
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


__all__ = ["OUTPUT_LIMIT", "OutputTail"]
