"""Schedule entries: a time spec, a job spec, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass


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
