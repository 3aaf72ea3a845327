"""The history plugin: one ``CronRun`` row per run, written from the notifier hooks.

Writes go through :func:`cronman_plugins._db.guarded_write`: a database
outage costs a warning line and never the job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import signal

from cronman_core import hookimpl
from cronman_core.job import JobRun
from cronman_core.pauses import PauseStore
from cronman_core.process import create_time, hostname
from cronman_core.schedule import job_name
from cronman_core.taxonomies import RunStatus
from cronman_plugins._db import guarded_write
from cronman_plugins.history.models import CronRun, CronRunStatus
from cronman_plugins.history.pauses import DatabasePauseStore

logger = logging.getLogger("cronman.plugins.history")


def _fields(run: JobRun) -> dict[str, object]:
    return {
        "job_name": run.job_name,
        "job_spec": run.job_spec,
        "host": run.host,
        "pid": run.pid,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": run.duration,
        "status": run.status,
        "error": run.traceback or run.error or "",
        "output": run.output or "",
        "progress": json.dumps(run.progress.as_dict()) if run.progress is not None else "",
        "resumed": run.resumed,
        "attempt": run.attempt,
        "attempts": run.attempts,
    }


def _record(run: JobRun, exit_reason: str = "", **extra: object) -> None:
    guarded_write(
        logger,
        f"recording run {run.run_id} ({run.job_spec}) in the history",
        lambda: CronRun.objects.update_or_create(
            run_id=run.run_id, defaults={**_fields(run), "exit_reason": exit_reason, **extra}
        ),
    )


@hookimpl
def cronman_pause_store() -> PauseStore:
    return DatabasePauseStore()


@hookimpl
def cronman_job_started(run: JobRun) -> None:
    _record(run, process_started=create_time(run.pid))


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    _record(run, "run() returned")


@hookimpl
def cronman_job_failed(run: JobRun, exc: BaseException) -> None:
    # A run stopped from within (timeout, lost lock) says why; a raised one names its exception.
    _record(run, f"run() raised {type(exc).__name__}" if run.status == RunStatus.FAILED else (run.error or "")[:255])


@hookimpl
def cronman_fires_missed(job_spec: str, first: dt.datetime, count: int, reason: str, key: str) -> None:
    """One ``missed`` row per group of fires, the same from every host that gives them up."""
    run_id = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    defaults = {
        "job_name": job_name(job_spec), "job_spec": job_spec, "host": hostname(), "pid": 0,
        "started_at": first, "status": CronRunStatus.MISSED,
        "exit_reason": f"missed {count} fire(s): {reason}"[:255],
    }
    guarded_write(logger, f"recording missed fires of {job_spec} in the history",
                  lambda: CronRun.objects.get_or_create(run_id=run_id, defaults=defaults))


@hookimpl
def cronman_scheduler_tick_done(now: dt.datetime) -> None:
    guarded_write(logger, "closing runs of vanished workers", lambda: CronRun.objects.close_vanished(now))


@hookimpl
def cronman_job_progress(run: JobRun) -> None:
    progress = json.dumps(run.progress.as_dict()) if run.progress is not None else ""
    guarded_write(logger, f"recording the progress of run {run.run_id}",
                  lambda: CronRun.objects.filter(run_id=run.run_id).update(progress=progress))


@hookimpl
def cronman_job_skipped(run: JobRun, reason: str) -> None:
    """A run that did not run its job (its lock was held): a row all the same, every slot accounted for."""
    _record(run, reason[:255])


@hookimpl
def cronman_job_killed(run: JobRun, signum: int) -> None:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = str(signum)
    _record(run, f"killed by {name}")
