"""Schedule entries, and the schedule merged from every plugin's entries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cronman_core import conf
from cronman_core.errors import UsageError
from cronman_core.job import cron_job_registry


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One line of the schedule.

    ``default=True`` marks a plugin's default entry (e.g. RunCronTasks every
    4 minutes) that any other entry for the same job name replaces.
    Slotted, and ``source`` names the list (not the line), so a schedule of
    100,000 lines stays a few MiB.
    """

    time_spec: str
    job_spec: str
    source: str = "CRON_JOBS"
    default: bool = False
    misfire_grace: float | None = None


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
                elif isinstance(item, tuple | list) and len(item) == 2:
                    yield ScheduleEntry(item[0], item[1], source="plugin")
                else:
                    raise UsageError(f"a plugin gave a schedule entry that is not a "
                                     f"(time spec, job spec) pair: {item!r}")

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
