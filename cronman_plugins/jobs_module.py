"""Built-in plugin: schedule entries from ``CRON_JOBS`` in ``CRONMAN_JOBS_MODULE``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

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
        if not (isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise UsageError(f"{source}[{index}] is not a (time spec, job spec) pair: {item!r}")
    return CronJobsEntries(cron_jobs, source)


class CronJobsEntries(Sequence[ScheduleEntry]):
    """The lines of a (validated) ``CRON_JOBS`` as entries made on access.

    A tick looks at each entry once, so a 100,000-line schedule costs no
    memory beyond the module's own tuple.
    """

    def __init__(self, cron_jobs: Sequence[tuple[str, str]], source: str) -> None:
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
            return [ScheduleEntry(t, j, self.source) for t, j in self._lines[index]]
        time_spec, job_spec = self._lines[index]
        return ScheduleEntry(time_spec, job_spec, self.source)

    def __iter__(self) -> Iterator[ScheduleEntry]:
        source = self.source
        for time_spec, job_spec in self._lines:
            yield ScheduleEntry(time_spec, job_spec, source)


@hookimpl
def cronman_schedule_entries() -> Sequence[ScheduleEntry]:
    return jobs_module_entries()
