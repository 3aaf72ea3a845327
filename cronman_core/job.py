"""Job classes and the registry that names them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from cronman_core.errors import UnknownJobError, UsageError
from cronman_core.taxonomies import LockType

if TYPE_CHECKING:
    from cronman_core.run import JobRun


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

    def __init__(self, run: JobRun | None = None) -> None:
        self.context = run
        self.logger = logging.getLogger(f"cronman.job.{type(self).__name__}")

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Main logic of the job; params arrive as strings."""
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")


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
            raise UnknownJobError(f"unknown cron job {name!r}") from None

    def name_of(self, job_class: type[BaseCronJob]) -> str:
        for name, cls in self._jobs.items():
            if cls is job_class:
                return name
        return job_class.__name__

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
