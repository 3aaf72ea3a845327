"""Celery spawner: each run goes to a Celery queue; a Celery worker runs it as a local worker.

Switched on by ``CRONMAN_SPAWNER = "celery"`` (or django-cronman's
``CRONMAN_CELERY_ENABLED = True`` when ``CRONMAN_SPAWNER`` is unset); the project's Celery app is
named by ``CRONMAN_CELERY_APP`` (``"proj.celery.app"``), runs go to
``CRONMAN_CELERY_QUEUE`` (default ``"cronman"``). The Celery worker learns the
task from :func:`register_task`, called once in the project's Celery module.

The task starts the very ``cron_worker run`` command the scheduler built
(after the ``cronman_worker_command`` wrappers: nice/ionice, raven-cmd) as a
subprocess on the Celery worker's host, in its own session with a per-run
log, and waits for it. So a run on Celery takes the same lock, calls the same
hooks, writes the same record and history, handles signals and is killed
(whole process group) exactly like a local worker; the Celery worker only
carries it. The task's result is the worker's exit code.

Only the environment changes the scheduler made (``DJANGO_SETTINGS_MODULE``,
``PYTHONPATH``, ``CRON_PROCESS_RESUMED``, what wrappers set) travel with the
message; the rest of the worker's environment is the Celery worker host's own.
celery is imported only when a run is dispatched. A scheduled run's message
expires at its fire time plus its grace; a stale one is reported missed
(``expired in queue``) by the Celery worker that drops it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cronman_core import conf, hookimpl
from cronman_core.datadir import get_data_dir
from cronman_core.errors import UsageError
from cronman_core.plugins import get_plugin_manager
from cronman_core.spawners import SCHEDULED_FIRE_ENV, ScheduledFire, Spawner, SpawnHandle, WorkerCommand
from cronman_plugins.local import LocalSpawner

if TYPE_CHECKING:
    import celery

logger = logging.getLogger("cronman.plugins.celery")

TASK_NAME = "cronman.run_worker"
conf.declare(
    conf.Setting("CRONMAN_CELERY_ENABLED", False, conf.FLAG),
    conf.Setting("CRONMAN_CELERY_APP", None, conf.text()),
    conf.Setting("CRONMAN_CELERY_QUEUE", "cronman", conf.text(optional=False)),
)


def plugin_enabled() -> bool:
    chosen = conf.get("CRONMAN_SPAWNER")
    return chosen == "celery" or (chosen is None and bool(conf.get("CRONMAN_CELERY_ENABLED")))


def register_task(app: celery.Celery) -> Any:
    """Register the worker task on ``app`` (idempotent); call it in the project's Celery module.

    The acknowledgement policy is pinned whatever the project's Celery
    defaults: acknowledged when a worker takes the message, never re-delivered
    when that worker dies (``acks_late`` would run the fire twice).
    """
    from celery import signals

    signals.task_revoked.connect(_revoked, weak=False, dispatch_uid="cronman-expired-runs")
    return app.task(name=TASK_NAME, acks_late=False, reject_on_worker_lost=False)(run_worker)


def _revoked(sender: Any = None, request: Any = None, expired: bool = False, **kwargs: Any) -> None:
    """A run message that expired in the queue: its fires are missed, with that reason, and nothing runs."""
    if not expired or getattr(request, "name", getattr(sender, "name", None)) != TASK_NAME:
        return
    task_kwargs = getattr(request, "kwargs", None) or {}
    job_spec = task_kwargs.get("job_spec", "?")
    fire = ScheduledFire.decode((task_kwargs.get("env") or {}).get(SCHEDULED_FIRE_ENV))
    logger.warning("%s expired in the queue: not run", job_spec)
    if fire is not None:
        first = dt.datetime.fromtimestamp(fire.first, dt.UTC)
        get_plugin_manager().fires_missed(job_spec, first, fire.count, "expired in queue", fire.key)


def get_app() -> celery.Celery:
    """The Celery app named by ``CRONMAN_CELERY_APP``, with the task registered."""
    from django.utils.module_loading import import_string

    path = conf.get("CRONMAN_CELERY_APP")
    if not path:
        raise UsageError('the Celery spawner needs CRONMAN_CELERY_APP, e.g. "proj.celery.app"')
    try:
        app = import_string(path)
    except ImportError as exc:
        raise UsageError(f"CRONMAN_CELERY_APP {path!r} cannot be imported: {exc}") from exc
    register_task(app)
    return app


def env_changes(env: dict[str, str]) -> dict[str, str | None]:
    """What ``env`` changes in this process's environment (None: removed)."""
    changes: dict[str, str | None] = {name: value for name, value in env.items() if os.environ.get(name) != value}
    changes.update((name, None) for name in os.environ if name not in env)
    return changes


class CelerySpawner(Spawner):
    """Sends the worker command to the Celery queue; the run starts when a Celery worker takes it."""

    def spawn(self, command: WorkerCommand) -> SpawnHandle:
        queue = conf.get("CRONMAN_CELERY_QUEUE")
        fire = ScheduledFire.decode(command.env.get(SCHEDULED_FIRE_ENV))
        result = get_app().send_task(
            TASK_NAME,
            kwargs={"argv": command.argv, "env": env_changes(command.env), "job_spec": command.job_spec},
            queue=queue,
            # A scheduled run not taken by a worker within its grace is dropped, not run years late.
            expires=dt.datetime.fromtimestamp(fire.expires, dt.UTC) if fire is not None else None,
        )
        logger.info("sent %s to Celery queue %r as task %s", command.job_spec, queue, result.id)
        return SpawnHandle(job_spec=command.job_spec, remote_id=result.id)


def run_worker(argv: list[str], env: dict[str, str | None], job_spec: str) -> int:
    """The Celery task: run the worker command on this host, wait, return its exit code."""
    _spec, job_class = get_plugin_manager().resolve(job_spec)
    worker_env = dict(os.environ)
    for name, value in env.items():
        if value is None:
            worker_env.pop(name, None)
        else:
            worker_env[name] = value
    command = WorkerCommand(argv=argv, env=worker_env, job_spec=job_spec, job_class=job_class)
    child, log_path = LocalSpawner(get_data_dir()).start(command)
    logger.info("running %s as PID %d, log %s", job_spec, child.pid, log_path)
    code = child.wait()
    logger.info("%s exited with %d", job_spec, code)
    return code


@hookimpl
def cronman_spawner(data_dir: Path) -> Spawner:
    return CelerySpawner()


__all__ = ["CelerySpawner", "TASK_NAME", "cronman_spawner", "get_app", "register_task", "run_worker"]
