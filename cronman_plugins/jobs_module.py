"""Built-in plugin: schedule entries from ``CRON_JOBS`` in ``CRONMAN_JOBS_MODULE``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.schedule import ScheduleEntry


def jobs_module_entries() -> Sequence[ScheduleEntry]:
    """The ``CRON_JOBS`` of ``CRONMAN_JOBS_MODULE`` (none when the setting is None)."""
    import importlib

    path = conf.get("CRONMAN_JOBS_MODULE")
    if not path:
        return []
    try:
        module = importlib.import_module(path)
    except Exception as exc:
        raise UsageError(f"CRONMAN_JOBS_MODULE {path!r} cannot be imported: {exc}") from exc
    try:
        cron_jobs = module.CRON_JOBS
    except AttributeError:
        raise UsageError(f"CRONMAN_JOBS_MODULE {path!r} has no CRON_JOBS attribute") from None
    source = f"{path}.CRON_JOBS"  # one string for all lines: checks add the index
    for index, item in enumerate(cron_jobs):
        ScheduleEntry.from_item(item, f"{source}[{index}]")  # the shape only: options are checked by check
    return CronJobsEntries(cron_jobs, source)


class CronJobsEntries(Sequence[ScheduleEntry]):
    """The lines of a (validated) ``CRON_JOBS`` as entries made on access.

    A tick looks at each entry once, so a 100,000-line schedule costs no
    memory beyond the module's own tuple.
    """

    def __init__(self, cron_jobs: Sequence[Sequence[Any]], source: str) -> None:
        self._lines = cron_jobs
        self.source = source

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, index: int) -> ScheduleEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[ScheduleEntry]: ...

    def __getitem__(self, index: int | slice) -> ScheduleEntry | list[ScheduleEntry]:
        if isinstance(index, slice):
            return [self._entry(item) for item in self._lines[index]]
        return self._entry(self._lines[index])

    def _entry(self, item: Sequence[Any]) -> ScheduleEntry:
        if len(item) == 2:  # the common case, kept cheap for 100,000-line schedules
            return ScheduleEntry(item[0], item[1], self.source)
        return ScheduleEntry.from_item(item, self.source)

    def __iter__(self) -> Iterator[ScheduleEntry]:
        source = self.source
        for item in self._lines:
            if len(item) == 2:
                yield ScheduleEntry(item[0], item[1], source)
            else:
                yield ScheduleEntry.from_item(item, source)


@hookimpl
def cronman_schedule_entries() -> Sequence[ScheduleEntry]:
    return jobs_module_entries()


@hookimpl
def cronman_schedule_reload() -> None:
    """Re-import ``CRONMAN_JOBS_MODULE`` (SIGHUP); one that fails to import or to parse is not used.

    ``importlib.reload`` runs the new code in the module's own namespace, so
    a failure half-way would leave a mix: the namespace read before is put
    back instead, and the error is raised for the daemon to log.
    """
    import importlib
    import sys

    path = conf.get("CRONMAN_JOBS_MODULE")
    module = sys.modules.get(path) if path else None
    if module is None:
        return
    before = dict(module.__dict__)
    try:
        importlib.reload(module)
        jobs_module_entries()
    except Exception as exc:
        module.__dict__.clear()
        module.__dict__.update(before)
        raise UsageError(f"{path}.CRON_JOBS not reloaded, the schedule read before stays: "
                         f"{type(exc).__name__}: {exc}") from None
