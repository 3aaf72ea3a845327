"""Enumerations shared by jobs, plugins and commands (values as in django-cronman)."""

from __future__ import annotations


class LockType:
    """How a worker's lock is named: by job class (default) or by class and params."""

    CLASS = "class"
    PARAMS = "params"


class CPUPriority:
    """``nice -n`` values for ``worker_cpu_priority``."""

    HIGHEST = -20
    HIGH = -10
    NORMAL = 0
    LOW = 10
    LOWEST = 19


class IOPriority:
    """``ionice -c`` classes for ``worker_io_priority``."""

    REAL_TIME = 1
    BEST_EFFORT = 2
    IDLE = 3


class JobStatus:
    """Status of a recorded worker, as ``cron_worker status`` / ``kill`` print it."""

    ALIVE = "ALIVE"
    DEAD = "DEAD"
    TERMED = "TERMED"
    KILLED = "KILLED"


class RunStatus:
    """Outcome of one run, as notifiers and the run history see it."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    SKIPPED = "skipped"
    LOST_LOCK = "lost_lock"
    #: Stopped at its ``max_runtime`` (exit code 124).
    TIMEOUT = "timeout"
    #: Fires that never ran (history only): given up by the scheduler, with the reason.
    MISSED = "missed"
