"""Job classes, the context of one run, and the registry that names them."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cronman_core.errors import UnknownJobError, UsageError
from cronman_core.jobspec import JobSpec, format_spec
from cronman_core.process import hostname
from cronman_core.taxonomies import LockType, RunStatus


class BaseCronJob:
    """Base class of cron jobs: subclass it, implement ``run()``, register it.

    Only what the core uses lives here; attributes owned by plugins
    (``cronitor_id``, ``worker_cpu_priority``, ``run_as_task``, ...) are read
    by those plugins with their own defaults.
    """

    #: LockType.CLASS (one run per class), LockType.PARAMS (per class and params) or None.
    lock_type: ClassVar[str | None] = LockType.CLASS
    #: Shared lock name across classes (defaults to the registered job name).
    lock_name: ClassVar[str | None] = None
    #: Keep a record of a killed run so ``cron_worker resume`` can restart it.
    can_resume: ClassVar[bool] = False
    #: Seconds a missed occurrence may be late and still run (None: CRONMAN_MISFIRE_GRACE).
    misfire_grace: ClassVar[float | None] = None
    # Run policies (cronman_core.policies; a CRON_JOBS entry's options override them):
    #: IANA zone of the schedule entries' time specs (None: CRONMAN_TIME_ZONE).
    time_zone: ClassVar[str | None] = None
    #: Seconds a run may take; then its process group is stopped (status timeout, exit 124).
    max_runtime: ClassVar[float | None] = None
    #: When the lock is held: "skip", "replace" (stop the holder first) or "wait" (up to overlap_wait s).
    overlap: ClassVar[str] = "skip"
    overlap_wait: ClassVar[float] = 60.0
    #: A failed run is run again up to ``retries`` times, ``retry_delay * 2**n`` s later, never past the next fire.
    retries: ClassVar[int] = 0
    retry_delay: ClassVar[float] = 60.0
    #: Pause the job (``cron_scheduler unpause`` resumes it) after this many failed runs in a row.
    pause_after_failures: ClassVar[int | None] = None

    def __init__(self, run: JobRun | None = None) -> None:
        self.context = run
        self.logger = logging.getLogger(f"cronman.job.{type(self).__name__}")

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Main logic of the job; params arrive as strings."""
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class JobRun:
    """One run of one job spec in one worker process: what every notifier hook gets."""

    spec: JobSpec
    job_class: type[BaseCronJob]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=hostname)
    pid: int = field(default_factory=os.getpid)
    started_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    status: str = RunStatus.STARTED
    error: str | None = None
    resumed: bool = False
    #: The lock's fencing token (None without a lock): pass it to stores that can fence.
    fencing_token: int | None = None
    #: The failed run's traceback (its last 10,000 characters); ``error`` is its last line.
    traceback: str | None = None
    #: This run is attempt ``attempt`` of ``attempts`` (``retries`` + 1) of one start of its job spec.
    attempt: int = 1
    attempts: int = 1
    #: What the spawner asked the run's record to keep (``RunRecord.extra``: the queue it came through).
    record_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def job_name(self) -> str:
        return self.spec.name

    @property
    def job_spec(self) -> str:
        return format_spec(self.spec)

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def job_value(self, name: str, default: Any = None) -> Any:
        """A per-job setting of a plugin: the job spec param ``name``, else the class attribute.

        django-cronman let a ``cronitor_id=...`` param override the class's
        id; every plugin setting that a job class carries follows that rule.
        """
        value = self.spec.kwargs_dict.get(name)
        if value:
            return value
        return getattr(self.job_class, name, default)

    def finish(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = utcnow()


class CronJobRegistry:
    """Job classes by name; names are what job specs and schedules refer to."""

    def __init__(self) -> None:
        self._jobs: dict[str, type[BaseCronJob]] = {}
        self._lock = threading.Lock()

    def register(self, job_class: type[BaseCronJob], name: str | None = None) -> type[BaseCronJob]:
        """Register ``job_class`` under ``name`` (default: the class name)."""
        if not (isinstance(job_class, type) and issubclass(job_class, BaseCronJob)):
            raise TypeError(f"{job_class!r} is not a BaseCronJob subclass")
        name = name or job_class.__name__
        with self._lock:
            existing = self._jobs.get(name)
            if existing is not None and _qualname(existing) != _qualname(job_class):
                raise UsageError(
                    f"cron job name {name!r} is already registered for {_qualname(existing)}"
                )
            self._jobs[name] = job_class
        return job_class

    def unregister(self, name: str) -> None:
        with self._lock:
            if self._jobs.pop(name, None) is None:
                raise UnknownJobError(f"unknown cron job {name!r}")

    def get(self, name: str) -> type[BaseCronJob]:
        try:
            return self._jobs[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._jobs, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownJobError(f"unknown cron job {name!r}{hint}") from None

    def items(self) -> list[tuple[str, type[BaseCronJob]]]:
        return sorted(self._jobs.items())

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._jobs))

    def __len__(self) -> int:
        return len(self._jobs)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


cron_job_registry = CronJobRegistry()
