"""Celery spawner: each run goes to a Celery queue; a Celery worker runs it as a local worker would.

Switched on by ``CRONMAN_SPAWNER = "celery"`` (or django-cronman's
``CRONMAN_CELERY_ENABLED = True`` when ``CRONMAN_SPAWNER`` is unset); the project's Celery app is
named by ``CRONMAN_CELERY_APP`` (``"proj.celery.app"``), runs go to
``CRONMAN_CELERY_QUEUE`` (default ``"cronman"``). The Celery worker learns the
task from :func:`register_task`, called once in the project's Celery module.

The task forks its warm Celery process per run (``cronman_plugins.prefork.child``:
own session, per-run log, the run's environment, the wrappers' fork steps,
then ``cron_worker run``), or, for a job with ``warm_fork = False``, a
wrapper only exec can apply (raven-cmd) or a Celery process running threads,
execs the very command the scheduler built. Either way the run takes the
same lock, calls the same hooks, writes the same record and history, and is
killed (whole process group) exactly like a local worker; it dies with the
Celery process that carries it (``PR_SET_PDEATHSIG``). The task's result is
the worker's exit code.

A run carried by Celery is one of the cluster's runs (with a shared lock
backend): its record names the Celery host and says any host may resume it;
a scheduler host re-runs once a lost run (its Celery process died, its lock
lapsed) of a job with ``retry_on_worker_loss = True`` (:func:`lost_runs`).

Only the environment changes the scheduler made (``DJANGO_SETTINGS_MODULE``,
``PYTHONPATH``, ``CRON_PROCESS_RESUMED``, what wrappers set) travel with the
message; the rest of the worker's environment is the Celery worker host's own.
celery is imported only when a run is dispatched. A scheduled run's message
expires at its fire time plus its grace; a stale one is reported missed
(``expired in queue``) by the Celery worker that drops it.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cronman_core import conf, hookimpl
from cronman_core.control import liveness
from cronman_core.datadir import get_data_dir
from cronman_core.errors import CronmanError, UsageError
from cronman_core.locks import LockBackend
from cronman_core.plugins import CronmanPluginManager, get_plugin_manager
from cronman_core.policies import NEXT_FIRE_ENV, RUN_OPTIONS_ENV
from cronman_core.records import RECORD_EXTRA_ENV, RESUME_ANYWHERE
from cronman_core.spawners import (
    SCHEDULED_FIRE_ENV,
    RequestedRun,
    ScheduledFire,
    Spawner,
    SpawnHandle,
    WorkerCommand,
)
from cronman_core.worker import EXIT_LOCK
from cronman_plugins.local import LocalSpawner
from cronman_plugins.prefork.child import enter_run, run_as_worker, warm_worker
from cronman_plugins.prefork.plugin import fork_usable

if TYPE_CHECKING:
    import celery

logger = logging.getLogger("cronman.plugins.celery")

TASK_NAME = "cronman.run_worker"
#: A run's record keeps what the Celery task knew of it under this ``extra`` key.
EXTRA_KEY = "celery"
#: In a message: this run re-runs the lost run of that id.
RERUN_ENV = "CRONMAN_CELERY_RERUN_OF"
#: What a re-run gets again of the lost run's environment: its entry's options and next fire.
RERUN_KEEPS = (RUN_OPTIONS_ENV, NEXT_FIRE_ENV)
#: How long one scheduler host keeps a lost run's re-run to itself; the re-run's message expires then.
RERUN_CLAIM_TTL = 300.0
#: How long a message without an expiry (a Cron Task's, a resume's) is kept from running twice.
DELIVERY_CLAIM_TTL = 7 * 86400.0
PR_SET_PDEATHSIG = 1
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
    signals.worker_process_init.connect(_warm, weak=False, dispatch_uid="cronman-warm-pool-process")
    return app.task(name=TASK_NAME, acks_late=False, reject_on_worker_lost=False)(run_worker)


def _revoked(sender: Any = None, request: Any = None, expired: bool = False, **kwargs: Any) -> None:
    """A run message that expired in the queue: its fires are missed, with that reason, and nothing runs."""
    if not expired or getattr(request, "name", getattr(sender, "name", None)) != TASK_NAME:
        return
    task_kwargs = getattr(request, "kwargs", None)
    task_kwargs = task_kwargs if isinstance(task_kwargs, dict) else {}  # a message anyone could have sent
    job_spec = str(task_kwargs.get("job_spec", "?"))[:200]
    env = task_kwargs.get("env")
    fire = ScheduledFire.decode(env.get(SCHEDULED_FIRE_ENV) if isinstance(env, dict) else None)
    logger.warning("%s expired in the queue: not run", job_spec)
    if fire is not None:
        first = dt.datetime.fromtimestamp(fire.first, dt.UTC)
        get_plugin_manager().fires_missed(job_spec, first, fire.count, "expired in queue", fire.key)


def _warm(**kwargs: Any) -> None:
    """A new pool process: warm it as the prefork template is warmed, so the runs it forks start at once."""
    try:
        warm_worker()
    except Exception as exc:  # a run then pays for it; the pool process must start all the same
        logger.warning("cannot warm this Celery pool process for cronman runs: %s", exc)
        return
    gc.freeze()  # a child's collections then do not copy the pages it shares with this process


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
        delivery = uuid.uuid4().hex
        result = get_app().send_task(
            TASK_NAME,
            kwargs={"argv": command.argv, "env": env_changes(command.env), "job_spec": command.job_spec,
                    "delivery": delivery},
            task_id=delivery,
            queue=queue,
            # A scheduled run not taken by a worker within its grace is dropped, not run years late.
            expires=_expiry(command.env, fire),
        )
        logger.info("sent %s to Celery queue %r as task %s", command.job_spec, queue, result.id)
        return SpawnHandle(job_spec=command.job_spec, remote_id=result.id)


def _expiry(env: Mapping[str, str], fire: ScheduledFire | None) -> dt.datetime | None:
    """When the message is dropped: a re-run when the next host may send it again, a scheduled run at
    the end of its grace, anything else never."""
    if RERUN_ENV in env:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=RERUN_CLAIM_TTL)
    return dt.datetime.fromtimestamp(fire.expires, dt.UTC) if fire is not None else None


def run_worker(argv: list[str], env: dict[str, str | None], job_spec: str, delivery: str = "") -> int:
    """The Celery task: run the worker command on this host, wait, return its exit code.

    ``delivery`` (the message's id) is claimed first: a message the broker
    delivers again (its first Celery worker died, or lost the broker, before
    Celery acknowledged it) does not run twice.
    """
    pm = get_plugin_manager()
    _spec, job_class = pm.resolve(job_spec)
    try:
        if delivery and not _first_delivery(pm.lock_backend(), delivery, env.get(SCHEDULED_FIRE_ENV)):
            logger.warning("%s: message %s was delivered again after a Celery worker took it: not run twice",
                           job_spec, delivery)
            return 0
        rerun_of = env.get(RERUN_ENV)
        if rerun_of and not _take_over(pm.lock_backend(), rerun_of, job_spec):
            return 0
    except CronmanError as exc:  # as a worker that cannot reach its lock store: nothing runs unguarded
        logger.error("%s: cannot reach the lock backend (%s); not running", job_spec, exc)
        return EXIT_LOCK
    worker_env = {name: value for name, value in os.environ.items() if env.get(name, value) is not None}
    worker_env.update((name, value) for name, value in env.items() if value is not None)
    worker_env.pop(RERUN_ENV, None)
    worker_env[RECORD_EXTRA_ENV] = json.dumps({RESUME_ANYWHERE: True, EXTRA_KEY: {
        "queue": conf.get("CRONMAN_CELERY_QUEUE"),
        "scheduled": SCHEDULED_FIRE_ENV in env,
        "fire_env": {name: value for name in RERUN_KEEPS if (value := env.get(name)) is not None},
        "rerun_of": rerun_of,
    }})
    command = WorkerCommand(argv=argv, env=worker_env, job_spec=job_spec, job_class=job_class)
    steps = _fork_steps(pm, command)
    log_fd, log_path = LocalSpawner(get_data_dir()).open_log(job_spec)
    try:
        pid = _start(command, steps, log_fd)
    finally:
        os.close(log_fd)
    logger.info("running %s as PID %d (%s), log %s", job_spec, pid,
                "forked" if steps is not None else "a new process", log_path)
    code = _wait(pid)
    logger.info("%s exited with %d", job_spec, code)
    return code


def _fork_steps(pm: CronmanPluginManager, command: WorkerCommand) -> list[Callable[[], None]] | None:
    """The wrappers' fork steps for a run forked from this process; None: it must be exec'ed."""
    if not getattr(command.job_class, "warm_fork", True):
        return None
    why = fork_usable()
    if why is None and threading.active_count() > 1:
        why = (f"this Celery process runs threads ({', '.join(t.name for t in threading.enumerate())}): "
               "forking it is unsafe")
    if why is not None:
        _warn_once(f"Celery task: {why}; each run starts a new process")
        return None
    probe = WorkerCommand(argv=list(command.argv), env={}, job_spec=command.job_spec, job_class=command.job_class)
    pm.worker_command(probe)  # this host's wrappers, for their fork steps (the argv already has their prefix)
    if probe.fork_steps is None:
        _warn_once(f"{command.argv[0]} wraps the worker command and only exec can apply it: "
                   "such runs start a new process")
    return probe.fork_steps


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning("%s", message)


def _start(command: WorkerCommand, steps: list[Callable[[], None]] | None, log_fd: int) -> int:
    """Fork the run's worker (and exec its command when ``steps`` is None); its PID."""
    from django.db import connections

    connections.close_all()  # a child must never share the parent's database session
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    bound = threading.current_thread() is threading.main_thread()
    pid = os.fork()
    if pid:
        return pid
    try:
        if bound:
            _die_with_parent(parent)
        enter_run(log_fd)
        if steps is None:
            os.execvpe(command.argv[0], command.argv, command.env)
        _fresh_output()
    except BaseException:
        traceback.print_exc()
        os._exit(127)
    run_as_worker(command.job_spec, command.argv, command.env, steps)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this child when the Celery process that forked it dies: a run outlives no carrier
    (a lost run is then lost for sure, and re-run or recorded killed)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(128 + signal.SIGKILL)


def _fresh_output() -> None:
    """Output as a new process has it: Celery's stdout proxies and root handlers would make the run's
    lines the Celery worker's log records."""
    from django.conf import settings
    from django.utils.log import configure_logging

    from cronman_core.apps import default_logging

    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115  (for the run's whole life)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    default_logging()


def _wait(pid: int) -> int:
    try:
        _pid, status = os.waitpid(pid, 0)
    except ChildProcessError:
        logger.error("PID %d was reaped by someone else: its exit code is unknown", pid)
        return -1
    return os.waitstatus_to_exitcode(status)


def _first_delivery(backend: LockBackend, delivery: str, fire_text: str | None) -> bool:
    """Claim message ``delivery`` for as long as it may still be delivered (until it expires, plus a margin)."""
    fire = ScheduledFire.decode(fire_text)
    ttl = DELIVERY_CLAIM_TTL if fire is None else max(60.0, fire.expires - time.time() + 60.0)
    return backend.claim(f"celery-delivery:{delivery}", ttl, uuid.uuid4().hex)


def _take_over(backend: LockBackend, run_id: str, job_spec: str) -> bool:
    """A re-run starts: the lost run's record goes (it is re-run once). False: it is gone already."""
    lost = next((record for record in backend.records() if record.run_id == run_id), None)
    if lost is None:
        logger.warning("%s: the lost run %s has no record left (re-run or cleaned): not run again", job_spec, run_id)
        return False
    backend.remove_record(lost)
    return True


def lost_runs(pm: CronmanPluginManager) -> list[RequestedRun]:
    """Scheduled runs lost with their Celery process whose job says ``retry_on_worker_loss = True``:
    each is sent once more (claimed, so by one scheduler host).

    A run is lost when its record is DEAD without having said so (not killed):
    its Celery process died and the run with it, and its lock has lapsed
    (``liveness``: the record's run no longer holds it), so the re-run
    takes the lock with a greater fencing token and never runs beside it.
    Other lost runs stay DEAD records (``status``, ``resume``, ``clean``),
    their history rows are closed as killed.
    """
    backend = pm.lock_backend()
    if backend.in_data_dir:
        return []  # a store of one host cannot tell of runs on others
    try:
        lost = [record for record in backend.records()
                if isinstance(record.extra.get(EXTRA_KEY), dict) and not record.killed]
        alive = liveness(backend, lost)  # stored records: no second read of them
    except CronmanError as exc:
        logger.warning("cannot look for lost Celery runs: %s", exc)
        return []
    runs = []
    token = uuid.uuid4().hex
    for record, held in zip(lost, alive, strict=True):
        info = record.extra[EXTRA_KEY]
        if held or info.get("rerun_of") or not info.get("scheduled"):
            continue
        try:
            job_class = pm.resolve(record.job_spec)[1]
        except UsageError:
            continue
        if not getattr(job_class, "retry_on_worker_loss", False):
            continue
        if not backend.claim(f"celery-rerun:{record.run_id}", RERUN_CLAIM_TTL, token):
            continue
        logger.warning("%s (run %s on %s) was lost with its Celery worker: sending it once more",
                       record.job_spec, record.run_id, record.host)
        env = {str(name): str(value) for name, value in dict(info.get("fire_env") or {}).items()}
        runs.append(RequestedRun(record.job_spec, env={**env, RERUN_ENV: record.run_id}))
    return runs


@hookimpl
def cronman_spawner(data_dir: Path) -> Spawner:
    return CelerySpawner()


@hookimpl
def cronman_requested_runs(now: dt.datetime) -> list[RequestedRun]:
    return lost_runs(get_plugin_manager())


__all__ = ["CelerySpawner", "TASK_NAME", "cronman_requested_runs", "cronman_spawner", "get_app", "lost_runs",
           "register_task", "run_worker"]
