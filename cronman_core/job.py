"""Job classes, the context of one run, and the registry that names them."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cronman_core.errors import UnknownJobError, UsageError
from cronman_core.jobspec import JobSpec, format_spec
from cronman_core.output import OutputTail
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

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Say how far ``run()`` got: ``cron_worker status`` shows percent and ETA, the run history too.

        Cheap to call often: the worker passes it on at most once a second
        (and always when ``done`` reaches ``total``).
        """
        if self.context is not None:
            self.context.report_progress(done, total, message)


@dataclass(frozen=True)
class Progress:
    """How far a run got (``BaseCronJob.progress``), and when it said so (Unix seconds)."""

    done: float
    total: float | None
    message: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "message": self.message, "at": self.at}

    @classmethod
    def from_dict(cls, data: Any) -> Progress | None:
        """A progress stored in a record or a row; None for anything else (a store anyone may damage)."""
        try:
            total = data["total"]
            return cls(float(data["done"]), None if total is None else float(total), str(data["message"])[:200],
                       float(data["at"]))
        except (TypeError, KeyError, ValueError):
            return None

    def describe(self, started_at: dt.datetime, eta: bool = True) -> str:
        """``42% (42 of 100), ETA 1 m 12 s: message``: the ETA (of a run still going) from its pace so far."""
        text = f"{_number(self.done)} done"
        if self.total:
            text = f"{min(100.0, 100 * self.done / self.total):.0f}% ({_number(self.done)} of {_number(self.total)})"
            elapsed = self.at - started_at.timestamp()
            if eta and 0 < self.done < self.total and elapsed > 0:
                left = elapsed * (self.total - self.done) / self.done - (time.time() - self.at)
                text += f", ETA {format_seconds(max(0.0, left))}"
        return f"{text}: {self.message}" if self.message else text


def _number(value: float) -> str:
    return f"{value:g}"


def format_seconds(seconds: float) -> str:
    """``1 h 2 m``, ``1 m 12 s``, ``3.4 s``: a duration as people read it."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} m"


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
    #: What the run printed (stdout and stderr), its last 64 KiB, read as it finished; None: not captured
    #: (output to a terminal or a pipe).
    output: str | None = None
    output_tail: OutputTail | None = field(default=None, repr=False, compare=False)
    #: The last progress the job reported (``BaseCronJob.progress``), and where the worker passes it on.
    progress: Progress | None = None
    progress_sink: Callable[[JobRun], None] | None = field(default=None, repr=False, compare=False)

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

    def report_progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Record the job's progress and pass it on (``BaseCronJob.progress``)."""
        numbers = (done,) if total is None else (done, total)
        if any(isinstance(n, bool) or not isinstance(n, int | float) or n != n or n < 0 for n in numbers):
            raise ValueError(f"progress({done!r}, {total!r}): done and total must be numbers >= 0")
        self.progress = Progress(float(done), None if total is None else float(total), str(message)[:200],
                                 time.time())
        if self.progress_sink is not None:
            self.progress_sink(self)

    def finish(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = utcnow()
        if self.output_tail is not None:
            self.output = self.output_tail.read()


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
