"""Every hook of cronman, grouped by phase.

Plugins implement these with :data:`cronman_core.hookimpl`. An
implementation may accept any subset of a spec's parameters, so specs can
grow without breaking plugins. Hooks are always called with keyword
arguments.

The protocol, in call order:

1. The plugin manager loads built-ins, entry points (group ``cronman``),
   plugin apps in ``INSTALLED_APPS`` and ``settings.CRONMAN_PLUGINS``.
2. :func:`cronman_register_jobs` once per process, after the apps' own
   ``cron_jobs`` modules were discovered.
3. Scheduler tick: :func:`cronman_scheduler_tick`, then the due decision over
   :func:`cronman_schedule_entries` with fire claims through
   :func:`cronman_lock_backend`, plus :func:`cronman_requested_runs`; each run
   is started with :func:`cronman_worker_command` and :func:`cronman_spawner`;
   finally :func:`cronman_scheduler_tick_done`.
4. Worker: the lock from :func:`cronman_lock_backend`, then
   :func:`cronman_job_started` (or :func:`cronman_job_skipped` when the lock
   is held), the job, and one of
   :func:`cronman_job_succeeded`, :func:`cronman_job_failed` (after
   :func:`cronman_report_error`) or :func:`cronman_job_killed`.

Notification hooks (``cronman_job_*``, ``cronman_report_error``,
``cronman_scheduler_tick*``) are isolated by the core: an exception in one
implementation is logged and the others still run; it never changes a job's
outcome. For that the core calls each implementation on its own, so a
``wrapper=True`` (or old-style ``hookwrapper=True``) implementation of a
notification hook could not wrap anything: it is refused when its plugin
loads, with one line naming the plugin.

The core calls every hook through a typed method of
:class:`~cronman_core.plugins.CronmanPluginManager` (``pm.lock_backend()``,
``pm.job_started(run)`` ...), never by name.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from cronman_core.job import CronJobRegistry, JobRun
    from cronman_core.locks import LockBackend
    from cronman_core.monitors import MonitoredJob
    from cronman_core.pauses import PauseStore
    from cronman_core.schedule import ScheduleEntry
    from cronman_core.spawners import RequestedRun, Spawner, WorkerCommand
    from cronman_core.switch import SchedulerControl

hookspec = pluggy.HookspecMarker("cronman")


# -- job discovery ------------------------------------------------------------


@hookspec
def cronman_register_jobs(registry: CronJobRegistry) -> None:
    """Register job classes that do not live in an app's ``cron_jobs`` module.

    Called once per process (scheduler, worker, Celery host), when the
    plugin manager is built: after autodiscovery of ``cron_jobs`` /
    ``cron_job`` modules, before any job is looked up.

    :param registry: the :class:`~cronman_core.job.CronJobRegistry`; call
        ``registry.register(JobClass, name=None)``.
    """


@hookspec
def cronman_schedule_entries() -> list[ScheduleEntry | tuple[str, str]] | None:
    """Contribute schedule entries.

    Every implementation contributes; the scheduler uses the union. Called
    per use (each tick, ``cron_scheduler next``, ``manage.py check``), in the
    scheduler process. An entry
    is a ``(time spec, job spec)`` pair or a
    :class:`~cronman_core.schedule.ScheduleEntry`. An entry with
    ``default=True`` is dropped when another entry runs the same job name,
    so a project can override a plugin's default schedule.

    :return: a list of entries, or None for none.
    """


@hookspec
def cronman_schedule_version() -> str | None:
    """Say cheaply whether this plugin's schedule entries changed.

    A plugin whose entries change while the scheduler runs (a database
    table) returns a token that changes with them, such as a row count and
    the latest change time. The daemon asks every
    ``CRONMAN_SCHEDULE_POLL_INTERVAL`` seconds (default 10) and ticks at once
    when any token changed, so it logs and uses the new entries without a
    restart. Entries are read at every tick in any case: this only bounds
    how late the daemon notices a change between ticks.

    :return: a token, or None when the entries only change with the code.
    """


@hookspec
def cronman_schedule_reload() -> None:
    """Read the schedule's sources anew: the daemon got SIGHUP.

    ``jobs_module`` re-imports ``CRONMAN_JOBS_MODULE`` here, so an edited
    ``CRON_JOBS`` applies without a restart. An exception is logged with
    one line; the entries read before stay in use.
    """


@hookspec
def cronman_reserved_params() -> list[str] | None:
    """Name job-spec params that a plugin consumes instead of the job's ``run()``.

    Every implementation contributes. A reserved param stays part of the job
    spec (locks, records and notifiers see it; ``cronitor_id=...`` overrides
    a class's Cronitor id as in django-cronman) but is neither bound to nor
    passed to ``run()``.

    Called once per process (the first time a spec is bound), in every
    process that binds specs.

    :return: param names, or None.
    """


# -- providers (first result wins) ---------------------------------------------


@hookspec(firstresult=True)
def cronman_lock_backend(data_dir: Path) -> LockBackend | None:
    """Return the lock backend: worker locks, run records and fire claims.

    Stops at first non-None result. The built-in ``pidfile`` plugin is the
    default (``trylast``); the ``redis`` plugin provides a cluster-wide one.
    Called per use (each worker start, tick, ``status``/``kill``...), in the
    scheduler, the worker and any command that lists workers: return a cheap
    object, or cache it yourself.

    :param data_dir: the validated private data dir.
    :return: a :class:`~cronman_core.locks.LockBackend`.
    """


@hookspec
def cronman_monitors_sync(jobs: list[MonitoredJob], apply: bool) -> list[str] | None:
    """Make this plugin's monitoring service expect what the schedule says (``cron_monitors sync``).

    For each job this plugin monitors (it has the plugin's id or slug), create
    the service's monitor or update its schedule, time zone, grace and max
    runtime where they differ; leave the rest of the monitor alone. Return
    one line per change (``healthchecks: update 'report': schedule '0 4 * * *'
    -> '0 5 * * *'``), an empty list when nothing differs. With ``apply``
    False (``--dry-run``) nothing is written: the lines say what would be.
    Raise :class:`~cronman_core.errors.UsageError` with one line when the
    service cannot be reached or refuses (the command reports it and goes on
    with the other plugins, then exits 1).

    :param jobs: one :class:`~cronman_core.monitors.MonitoredJob` per schedule
        entry: ``job_name``, ``schedule``, ``time_zone``, ``grace``,
        ``max_runtime`` and ``value(name)`` for the job's plugin settings.

    Example::

        @hookimpl
        def cronman_monitors_sync(jobs, apply):
            return [line for job in jobs if job.value("statuspage_id") for line in sync_one(job, apply)]
    """


@hookspec(firstresult=True)
def cronman_metrics() -> str | None:
    """Return this host's metrics in the Prometheus text format (``cron_worker metrics`` prints it).

    The first plugin that returns text wins (the built-in one is
    ``cronman_plugins.prometheus``, with ``CRONMAN_PROMETHEUS_ENABLED``).

    Example::

        @hookimpl
        def cronman_metrics():
            return prometheus_client.generate_latest(my_registry).decode()
    """


@hookspec(firstresult=True)
def cronman_spawner(data_dir: Path, long_lived: bool) -> Spawner | None:
    """Return the spawner that starts a worker for a job spec.

    Stops at first non-None result. ``CRONMAN_SPAWNER`` names the plugin
    that should answer: the built-in ``local`` one (a detached subprocess,
    the default), ``prefork`` (a fork of a warm process) or ``celery`` (a
    queue); a plugin that is not named returns None. Called per spawn, in
    the process that spawns (scheduler, ``cron_worker resume``,
    ``RunCronTasks``); never in a worker.

    :param data_dir: the validated private data dir (for per-run logs).
    :param long_lived: True in a process that spawns again and again (the
        scheduler daemon): a spawner may keep state warm for it, and is
        told to get ready and to let go through
        :meth:`~cronman_core.spawners.Spawner.reload` and
        :meth:`~cronman_core.spawners.Spawner.close`. False in one-shot
        commands (``cron_scheduler run``, ``resume``).
    :return: a :class:`~cronman_core.spawners.Spawner`.
    """


@hookspec(firstresult=True)
def cronman_pause_store(data_dir: Path) -> PauseStore | None:
    """Return where paused jobs (``cron_scheduler pause``, ``pause_after_failures``) are kept.

    Stops at first non-None result. Without one, the core keeps them in the
    data dir (:class:`~cronman_core.pauses.FilePauseStore`); the history app
    keeps them in the database, where every scheduler host and the admin see
    them. Called by the scheduler at a tick with due runs, by ``pause`` /
    ``unpause`` / ``next``, and by a worker whose job has
    ``pause_after_failures``.

    :param data_dir: the validated private data dir.
    :return: a :class:`~cronman_core.pauses.PauseStore`.
    """


# -- spawning ----------------------------------------------------------------


@hookspec
def cronman_worker_command(command: WorkerCommand) -> None:
    """Rewrite the command of a worker about to be spawned, in place.

    Called by the scheduler, ``cron_worker resume`` and task sources, never
    for a direct ``cron_worker run``; once per spawned run. Change ``command.argv`` /
    ``command.env``; order wrappers with ``tryfirst`` / ``trylast`` (the
    outermost wrapper is the one called last).

    :param command: the :class:`~cronman_core.spawners.WorkerCommand`; its
        ``job_class`` and ``job_spec`` say what will run.
    """


# -- notifications (worker) ---------------------------------------------------


@hookspec
def cronman_job_started(run: JobRun) -> None:
    """A worker acquired its lock and is about to call ``run()``.

    Called in the worker process (a local worker, or one on a Celery host).

    :param run: the :class:`~cronman_core.job.JobRun` (spec, run id, host, PID).
    """


@hookspec
def cronman_job_succeeded(run: JobRun) -> None:
    """``run()`` returned; ``run.finished_at`` and ``run.duration`` are set.

    :param run: the finished :class:`~cronman_core.job.JobRun`.
    """


@hookspec
def cronman_job_failed(run: JobRun, exc: BaseException) -> None:
    """``run()`` raised; called after :func:`cronman_report_error`.

    :param run: the finished run; ``run.error`` holds the error text.
    :param exc: the exception.
    """


@hookspec
def cronman_job_killed(run: JobRun, signum: int) -> None:
    """The worker got SIGTERM / SIGINT while in ``run()`` and is exiting.

    :param run: the interrupted run.
    :param signum: the signal number.
    """


@hookspec
def cronman_job_progress(run: JobRun) -> None:
    """The job reported how far it got (``self.progress(done, total, message)`` in ``run()``).

    Called in the worker process, from the job's own call, at most once a
    second per run (and always when ``done`` reaches ``total``): keep it
    quick. The history plugin keeps it on the run's row.

    :param run: the running run; ``run.progress`` is a
        :class:`~cronman_core.job.Progress` (``done``, ``total`` or None,
        ``message``, ``at``) and ``run.progress.describe(run.started_at)``
        reads ``42% (42 of 100), ETA 1 m 12 s: message``.

    Example::

        @hookimpl
        def cronman_job_progress(run):
            statsd.gauge(f"cron.{run.job_name}.done", run.progress.done)
    """


@hookspec
def cronman_job_skipped(run: JobRun, reason: str) -> None:
    """The worker did not run the job: its lock is held by another worker, its lock store could not be
    reached (``CRONMAN_STORE_WAIT``), or its fire claims could not be confirmed.

    Called in the worker process instead of :func:`cronman_job_started`;
    the worker then exits 0 for a held lock, 3 otherwise (``run.status`` is ``skipped``).

    :param run: the run that was not started; ``run.error`` holds the reason too.
    :param reason: one line, e.g. ``lock 'Sleep' is held by another worker``.
    """


@hookspec
def cronman_report_error(
    exc: BaseException, context: dict[str, Any], run: JobRun | None
) -> None:
    """Report an exception (a failing job, or an error of a command or tick).

    :param exc: the exception, with its traceback.
    :param context: tags such as ``job``, ``job_spec``, ``host``, ``run_id``,
        ``command``.
    :param run: the run when the error came from a job, else None.
    """


# -- scheduler -----------------------------------------------------------------


@hookspec
def cronman_scheduler_tick(control: SchedulerControl, now: dt.datetime) -> None:
    """Called at each scheduler tick before it decides what is due.

    Called in the scheduler process. Remote control applies requests here (``control.disable()``,
    ``control.enable()``, ``control.kill(spec)``); monitors ping "run".

    :param control: the :class:`~cronman_core.switch.SchedulerControl`.
    :param now: the tick time (aware, UTC).
    """


@hookspec
def cronman_scheduler_tick_done(
    control: SchedulerControl, now: dt.datetime, spawned: list[str], error: BaseException | None
) -> None:
    """Called after each tick, also when it failed.

    :param control: the :class:`~cronman_core.switch.SchedulerControl`.
    :param now: the tick time.
    :param spawned: job specs started by this tick.
    :param error: the exception that ended the tick, or None.
    """


@hookspec
def cronman_fires_missed(job_spec: str, first: dt.datetime, count: int, reason: str, key: str) -> None:
    """Fires of a schedule entry that will never run, with the reason.

    Called in the scheduler process by the tick that gives them up: fires
    older than their misfire grace (the scheduler was down, a spawn kept
    failing), or from before a lock store lost its data. Several hosts may
    report the same fires: ``key`` is the same for them on every host.

    :param job_spec: the entry's job spec.
    :param first: the first missed fire time (aware, UTC).
    :param count: how many fires, from ``first`` on (at least 1; capped at 100).
    :param reason: one line, e.g. ``older than its misfire grace``.
    :param key: the fire claim key of ``first``: one id for these fires on every host.
    """


@hookspec
def cronman_requested_runs(now: dt.datetime) -> list[RequestedRun] | None:
    """Return runs to start now outside the schedule (admin Cron Tasks).

    Called at each scheduler tick (and every ``CRONMAN_TASK_POLL_INTERVAL``
    seconds by the daemon), in the scheduler process, while the scheduler
    is enabled. The source claims what it returns, so two schedulers never
    get the same request.

    :param now: the current time (aware, UTC).
    :return: :class:`~cronman_core.spawners.RequestedRun` values (job spec,
        environment for its worker), or None.
    """
