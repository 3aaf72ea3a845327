"""What monitoring services should expect of each scheduled job, from the schedule itself.

``cron_monitors sync`` builds one :class:`MonitoredJob` per schedule entry
(its cron expression, time zone, grace and max runtime, as the scheduler
reads them) and hands the list to the ``cronman_monitors_sync`` plugins
(healthchecks.io, Cronitor, Sentry Crons), which create or update their
service's monitors to match: the monitors never drift from ``CRON_JOBS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cronman_core import conf
from cronman_core.cronexpr import normalize, parse_cron
from cronman_core.errors import CronmanError
from cronman_core.job import BaseCronJob, cron_job_registry
from cronman_core.jobspec import parse
from cronman_core.policies import entry_jitter, policy_for
from cronman_core.schedule import ScheduleEntry, grace_of, job_name


@dataclass(frozen=True)
class MonitoredJob:
    """One schedule entry as a monitor sees it."""

    job_spec: str
    job_class: type[BaseCronJob]
    #: The entry's cron expression (aliases such as ``@hourly`` expanded).
    schedule: str
    time_zone: str
    #: Seconds after a fire before the run counts as late: the entry's misfire grace plus its jitter.
    grace: float
    max_runtime: float | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def job_name(self) -> str:
        return job_name(self.job_spec)

    def value(self, name: str, default: Any = None) -> Any:
        """A plugin's per-job setting: the job spec param ``name``, else the class attribute (as ``JobRun``)."""
        return self.params.get(name) or getattr(self.job_class, name, default)


def monitored_jobs(entries: Iterable[ScheduleEntry]) -> tuple[list[MonitoredJob], list[str]]:
    """The jobs of ``entries``, and one line per entry that cannot be monitored (and why)."""
    jobs, problems = [], []
    for entry in entries:
        try:
            job_class = cron_job_registry.get(job_name(entry.job_spec))
            policy = policy_for(job_class, entry.option_dict)
            schedule = normalize(entry.time_spec)
            parse_cron(schedule)
        except (CronmanError, ValueError) as exc:
            problems.append(f"{entry.time_spec} {entry.job_spec}: {exc}")
            continue
        jobs.append(MonitoredJob(
            job_spec=entry.job_spec, job_class=job_class, schedule=schedule,
            time_zone=policy.time_zone or conf.time_zone_name(),
            grace=grace_of(entry) + entry_jitter(entry), max_runtime=policy.max_runtime,
            params=dict(parse(entry.job_spec).kwargs_dict),
        ))
    return jobs, problems


__all__ = ["MonitoredJob", "monitored_jobs"]
