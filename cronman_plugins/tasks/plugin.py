"""The tasks plugin: a task source for the scheduler, its jobs, and task status from workers."""

from __future__ import annotations

import datetime as dt

from cronman_core import hookimpl
from cronman_core.job import CronJobRegistry, JobRun
from cronman_core.schedule import ScheduleEntry
from cronman_core.spawners import RequestedRun
from cronman_plugins.tasks import runner
from cronman_plugins.tasks.jobs import CleanCronTasks, RunCronTasks
from cronman_plugins.tasks.models import CronTaskStatus


@hookimpl
def cronman_register_jobs(registry: CronJobRegistry) -> None:
    registry.register(RunCronTasks)
    registry.register(CleanCronTasks)


@hookimpl
def cronman_schedule_entries() -> list[ScheduleEntry]:
    # Crontab mode picks tasks up every 4 minutes (as django-cronman); the daemon polls
    # cronman_requested_runs every CRONMAN_TASK_POLL_INTERVAL seconds on top of that.
    return [ScheduleEntry("*/4 * * * *", "RunCronTasks", source="cronman_plugins.tasks", default=True)]


@hookimpl
def cronman_requested_runs(now: dt.datetime) -> list[RequestedRun]:
    return runner.requested_runs(now)


@hookimpl
def cronman_job_started(run: JobRun) -> None:
    runner.task_started(run)


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    runner.task_ended(run, CronTaskStatus.FINISHED)


@hookimpl
def cronman_job_failed(run: JobRun) -> None:
    runner.task_ended(run, CronTaskStatus.FAILED)


@hookimpl
def cronman_job_killed(run: JobRun) -> None:
    runner.task_ended(run, CronTaskStatus.FAILED)


@hookimpl
def cronman_job_skipped(run: JobRun, reason: str) -> None:
    runner.task_skipped(run, reason)
