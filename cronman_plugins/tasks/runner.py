"""How a Cron Task reaches a worker and reports back.

Scheduler side (``cronman_requested_runs`` at each tick and daemon poll, or
the ``RunCronTasks`` job): tasks whose worker died are reaped, due tasks are
claimed atomically, and each becomes a
:class:`~cronman_core.spawners.RequestedRun` whose environment carries the
task id as ``CRONMAN_TASK_ID``. The job spec itself stays the plain
``Job:params`` the form validated, so locks, the run history and every other
plugin see the real job, and the spec travels as one argv item that no shell
parses.

Worker side: the notifier hooks take (and remove, so the job's own children
never inherit it) ``CRONMAN_TASK_ID`` and move the task queued → started →
finished / failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from django.db import DatabaseError

from cronman_core import conf
from cronman_core.control import runs_alive
from cronman_core.errors import UnknownJobError, UsageError
from cronman_core.job import JobRun, cron_job_registry
from cronman_core.plugins import get_plugin_manager
from cronman_core.process import create_time
from cronman_core.spawn import spawn_job
from cronman_core.spawners import RequestedRun
from cronman_plugins._db import guarded_write, log_database_error
from cronman_plugins.tasks.models import CronTask, CronTaskStatus

logger = logging.getLogger("cronman.plugins.tasks")

#: Environment variable that tells a worker which task it runs.
TASK_ENV = "CRONMAN_TASK_ID"

#: Seconds a claimed task may wait for its worker to report "started".
conf.declare(conf.Setting("CRONMAN_TASK_QUEUED_TIMEOUT", 300.0, conf.seconds(0.0, strict=True)))


#: In a worker: run id → task id, between "started" and the end of the run.
_running: dict[str, int] = {}


# -- scheduler side ---------------------------------------------------------------


def claim_tasks(now: dt.datetime) -> list[CronTask]:
    """Reap dead tasks, then claim the due ones for spawning by this process.

    A task whose spec no longer fits its job (the code changed since the
    request) fails here with the reason, instead of waiting for a worker.
    """
    reap_dead_tasks(now)
    tasks = []
    pm = get_plugin_manager()
    for task in CronTask.objects.claim_due(now):
        try:
            pm.resolve(task.job_spec)
        except UsageError as exc:
            logger.error("Cron Task %s: %s", task.pk, exc)
            _end(task.pk, CronTaskStatus.FAILED, now, str(exc))
            continue
        tasks.append(task)
    return tasks


def requested_run(task: CronTask) -> RequestedRun:
    """The run of a claimed task: its spec, with its id in the worker's environment."""
    return RequestedRun(task.job_spec, env={TASK_ENV: str(task.pk)}, resumed=task.resumed)


def requested_runs(now: dt.datetime) -> list[RequestedRun]:
    """The runs of the tasks claimed now; a database outage is one warning, not a crash."""
    try:
        return [requested_run(task) for task in claim_tasks(now)]
    except DatabaseError as exc:
        log_database_error(logger, "picking up Cron Tasks", exc)
        return []


def start_due_tasks(now: dt.datetime) -> list[CronTask]:
    """Claim the due tasks and spawn one worker each (what ``RunCronTasks`` does)."""
    started = []
    for task in claim_tasks(now):
        run = requested_run(task)
        try:
            handle = spawn_job(run.job_spec, resumed=run.resumed, env=run.env)
        except Exception as exc:
            logger.error("Cron Task %s (%s): spawn failed: %s", task.pk, task.job_spec, exc)
            _end(task.pk, CronTaskStatus.FAILED, now, f"spawn failed: {exc}")
        else:
            logger.info("Cron Task %s: spawned %s (pid %s)", task.pk, task.job_spec, handle.pid)
            started.append(task)
    return started


def reap_dead_tasks(now: dt.datetime) -> None:
    """End tasks whose worker is gone: failed, or waiting again once if the job can resume.

    A started task is checked on its own host by PID plus process start time,
    and from other hosts through a shared lock backend (its run's record and
    lock: a Celery host needs no scheduler of its own); a queued task is dead
    once ``CRONMAN_TASK_QUEUED_TIMEOUT`` seconds (default 300) passed without its worker reporting (spawn failed, or the
    job's lock was busy so the worker skipped).
    """
    timeout = conf.get("CRONMAN_TASK_QUEUED_TIMEOUT")
    started = list(CronTask.objects.filter(status=CronTaskStatus.STARTED))
    for task, alive in zip(started, runs_alive([task.run_record() for task in started]), strict=True):
        if alive is False:
            _worker_died(task, now, "the worker ended without reporting (killed or crashed)")
    stale = CronTask.objects.filter(
        status=CronTaskStatus.QUEUED, queued_at__lt=now - dt.timedelta(seconds=timeout)
    )
    for task in stale:
        _worker_died(task, now, f"no worker reported within {timeout:g} s of queueing")


def _can_resume(task: CronTask) -> bool:
    try:
        return bool(cron_job_registry.get(task.cron_job).can_resume)
    except UnknownJobError:
        return False


def _worker_died(task: CronTask, now: dt.datetime, reason: str) -> None:
    same_state = CronTask.objects.filter(pk=task.pk, status=task.status)
    if task.status == CronTaskStatus.STARTED and _can_resume(task) and not task.resumed:
        if same_state.update(status=CronTaskStatus.WAITING, start_at=now, resumed=True,
                             error=f"{reason}; resumed"):
            _forget_lock_record(task)
            logger.warning("Cron Task %s (%s): %s; resuming it", task.pk, task.job_spec, reason)
        return
    if same_state.update(status=CronTaskStatus.FAILED, finished_at=now, error=reason):
        logger.warning("Cron Task %s (%s): %s", task.pk, task.job_spec, reason)


def _forget_lock_record(task: CronTask) -> None:
    """The task resumes the run itself, so ``cron_worker resume`` must not run it again."""
    backend = get_plugin_manager().lock_backend()
    for record in backend.records():
        if record.run_id == task.run_id and record.host == task.host:
            backend.remove_record(record)


# -- worker side ----------------------------------------------------------------


def _take_task_id() -> int | None:
    """This worker's task id, taken out of the environment (the job's own children are not this task)."""
    raw = os.environ.pop(TASK_ENV, None)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: not a task id", TASK_ENV, raw)
        return None


def task_skipped(run: JobRun, reason: str) -> None:
    """The worker did not run the task's job (its lock is held): the task ends as skipped, saying why."""
    task_id = _take_task_id()
    if task_id is not None:
        _end(task_id, CronTaskStatus.SKIPPED, run.finished_at, reason)


def task_started(run: JobRun) -> None:
    task_id = _take_task_id()
    if task_id is None:
        return
    _running[run.run_id] = task_id
    guarded_write(
        logger,
        f"Cron Task {task_id}: recording start",
        lambda: CronTask.objects.filter(
            pk=task_id, cron_job=run.job_name, status=CronTaskStatus.QUEUED
        ).update(
            status=CronTaskStatus.STARTED,
            started_at=run.started_at,
            pid=run.pid,
            host=run.host,
            run_id=run.run_id,
            process_started=create_time(run.pid),
        ),
    )


def task_ended(run: JobRun, status: str) -> None:
    task_id = _running.pop(run.run_id, None)
    if task_id is not None:
        _end(task_id, status, run.finished_at, run.error or "")


def _end(task_id: int, status: str, when: dt.datetime | None, error: str) -> None:
    guarded_write(
        logger,
        f"Cron Task {task_id}: recording {status}",
        lambda: CronTask.objects.filter(
            pk=task_id, status__in=(CronTaskStatus.QUEUED, CronTaskStatus.STARTED)
        ).update(
            status=status, finished_at=when, error=error
        ),
    )
