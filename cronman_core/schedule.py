"""Schedule entries, and the schedule merged from every plugin's entries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cronman_core import conf
from cronman_core.errors import UsageError
from cronman_core.job import cron_job_registry


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One line of the schedule.

    ``default=True`` marks a plugin's default entry (e.g. RunCronTasks every
    4 minutes) that any other entry for the same job name replaces.
    ``options`` are the entry's run policy options (``cronman_core.policies``),
    as given: ``manage.py check`` and the worker validate them.
    ``not_before`` (a timestamp) is when the entry came to be as it is, for
    an entry edited while the scheduler runs (``dbschedule``): no fire at or
    before it is this entry's, so a catch-up never runs one.
    Slotted, and ``source`` names the list (not the line; ``check`` adds the
    position), or the one entry when it holds a ``#``, so a schedule of
    100,000 lines stays a few MiB.
    """

    time_spec: str
    job_spec: str
    source: str = "CRON_JOBS"
    default: bool = False
    misfire_grace: float | None = None
    options: tuple[tuple[str, Any], ...] = ()
    not_before: float | None = None

    @classmethod
    def from_item(cls, item: Any, source: str) -> ScheduleEntry:
        """An entry from a ``(time spec, job spec)`` or ``(time spec, job spec, options)`` item."""
        if isinstance(item, list | tuple) and len(item) in (2, 3) and all(isinstance(x, str) for x in item[:2]):
            options = item[2] if len(item) == 3 else {}
            if isinstance(options, Mapping):
                grace = options.get("misfire_grace")
                return cls(item[0], item[1], source, options=tuple(options.items()),
                           misfire_grace=grace if isinstance(grace, int | float) else None)
        raise UsageError(f"{source}: not a (time spec, job spec) pair or a (time spec, job spec, options dict) "
                         f"triple: {item!r}")

    @property
    def option_dict(self) -> dict[str, Any]:
        return dict(self.options)


def job_name(job_spec: str) -> str:
    """The job name of a spec without parsing its params."""
    return job_spec.partition(":")[0].strip()


class Schedule:
    """Every plugin's entries, made as they are iterated (re-iterable).

    A ``default`` entry yields to any other entry for its job name. Entries
    are not kept in a list: a tick looks at each one once, so a 100,000-line
    schedule costs little memory beyond its source's own data.
    """

    def __init__(self, parts: list[Iterable[ScheduleEntry | tuple[str, str]] | None]) -> None:
        self.parts = parts

    def _all(self) -> Iterator[ScheduleEntry]:
        for part in self.parts:
            for item in part or ():
                if isinstance(item, ScheduleEntry):
                    yield item
                else:
                    yield ScheduleEntry.from_item(item, "a plugin's schedule entry")

    def __iter__(self) -> Iterator[ScheduleEntry]:
        names: set[str] = set()
        defaults: list[ScheduleEntry] = []
        for entry in self._all():
            if entry.default:
                defaults.append(entry)
                continue
            names.add(job_name(entry.job_spec))
            yield entry
        for entry in defaults:
            if job_name(entry.job_spec) not in names:
                yield entry


def grace_of(entry: ScheduleEntry) -> float:
    """Per-entry override, else the job class's ``misfire_grace``, else the setting."""
    if entry.misfire_grace is not None:
        return float(entry.misfire_grace)
    name = job_name(entry.job_spec)
    if name in cron_job_registry:
        grace = cron_job_registry.get(name).misfire_grace
        if grace is not None:
            return float(grace)
    return float(conf.get("CRONMAN_MISFIRE_GRACE"))
