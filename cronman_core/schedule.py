"""Schedule entries: a time spec, a job spec, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleEntry:
    """One line of the schedule.

    ``default=True`` marks a plugin's default entry (e.g. RunCronTasks every
    4 minutes) that any other entry for the same job name replaces.
    """

    time_spec: str
    job_spec: str
    source: str = "CRON_JOBS"
    default: bool = False
    misfire_grace: float | None = None
