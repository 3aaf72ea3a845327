"""Sentry: errors of jobs and commands, and Sentry Crons check-ins.

Switched on by ``CRONMAN_SENTRY_ENABLED = True`` (or by listing
``cronman_plugins.sentry`` in ``CRONMAN_PLUGINS``). sentry-sdk is
initialised on first use, once per process, from the first of
``CRONMAN_SENTRY_CONFIG``, ``SENTRY_CONFIG``, ``RAVEN_MANAGEMENT_COMMAND_CONFIG``
and ``RAVEN_CONFIG`` that is set: a dict of :func:`sentry_sdk.init` keyword
arguments, whose legacy raven keys are dropped with one warning. A project
that already called :func:`sentry_sdk.init` keeps its own client.

* Every error reported through ``cronman_report_error`` (a job's exception,
  an unexpected error of the scheduler or another command) is captured with
  its context as tags: ``job``, ``job_spec``, ``host``, ``run_id`` or
  ``command``.
* A job with a ``sentry_monitor_slug`` (class attribute or job spec param)
  sends check-ins: ``in_progress`` when it starts, then ``ok`` or ``error``.
  The first carries the monitor config: the job's schedule entry (crontab)
  and time zone (``CRONMAN_TIME_ZONE``, else ``TIME_ZONE``).

Cost: sentry-sdk sends from a background thread, so reporting never blocks
the job; at exit the process waits at most ``shutdown_timeout`` (2 s unless
the config says otherwise) for unsent events. A Sentry outage is logged by
sentry-sdk and never changes a job's outcome.

Raven-cmd wrapping (``CRONMAN_RAVEN_CMD``) is :mod:`cronman_plugins.raven_cmd`.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import math
import threading
from typing import TYPE_CHECKING, Any

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.job import JobRun
from cronman_core.jobspec import format_spec, parse
from cronman_core.monitors import MonitoredJob
from cronman_core.plugins import get_plugin_manager
from cronman_plugins._ping import api_call, creation, differences, one_per_monitor

if TYPE_CHECKING:
    from sentry_sdk._types import MonitorConfig

logger = logging.getLogger("cronman.plugins.sentry")

#: Settings holding the sentry-sdk options, first set wins.
CONFIG_SETTINGS = (
    "CRONMAN_SENTRY_CONFIG",
    "SENTRY_CONFIG",
    "RAVEN_MANAGEMENT_COMMAND_CONFIG",
    "RAVEN_CONFIG",
)
DEFAULT_SHUTDOWN_TIMEOUT = 2.0


def _options(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise TypeError


conf.declare(
    conf.Setting("CRONMAN_SENTRY_ENABLED", False, conf.FLAG),
    *(conf.Setting(name, None, conf.Kind("a dict of sentry_sdk.init() arguments or None", _options),
                   secret=True) for name in CONFIG_SETTINGS),
    # cron_monitors sync: Sentry's monitors API (an auth token with the project:write scope).
    conf.Setting("CRONMAN_SENTRY_API_URL", "https://sentry.io/api/0", conf.text(optional=False)),
    conf.Setting("CRONMAN_SENTRY_API_TOKEN", None, conf.text(), secret=True),
    conf.Setting("CRONMAN_SENTRY_ORG", None, conf.text()),
    conf.Setting("CRONMAN_SENTRY_PROJECT", None, conf.text()),
)
#: Loggers whose errors are reported through cronman_report_error: not sent twice.
REPORTED_LOGGERS = ("cronman.worker", "cronman.command", "cronman.scheduler")

_init_lock = threading.Lock()
_active: bool | None = None
#: Check-in id of each monitored run in this process, by run id.
_check_ins: dict[str, str] = {}


def sentry_config() -> tuple[str | None, dict[str, Any]]:
    """The setting that holds the sentry-sdk options and those options."""
    for name in CONFIG_SETTINGS:
        value = conf.get(name)
        if value is not None:
            return name, dict(value)
    return None, {}


def plugin_enabled() -> bool:
    """On with django-cronman's ``CRONMAN_SENTRY_ENABLED``; a malformed config stops the load."""
    if not conf.get("CRONMAN_SENTRY_ENABLED"):
        return False
    if importlib.util.find_spec("sentry_sdk") is None:
        raise UsageError("CRONMAN_SENTRY_ENABLED needs sentry-sdk: pip install sentry-sdk")
    sentry_config()
    return True


def _init_options() -> dict[str, Any]:
    from sentry_sdk.consts import ClientConstructor

    source, options = sentry_config()
    known = set(inspect.signature(ClientConstructor.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        logger.warning(
            "%s: ignoring options sentry-sdk does not know (raven settings?): %s",
            source,
            ", ".join(unknown),
        )
    options = {key: value for key, value in options.items() if key in known}
    options.setdefault("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)
    return options


def ensure_sentry() -> bool:
    """Initialise sentry-sdk once per process; return whether a client is active."""
    global _active
    with _init_lock:
        if _active is None:
            import sentry_sdk
            from sentry_sdk.integrations.logging import ignore_logger

            for name in REPORTED_LOGGERS:
                ignore_logger(name)
            if not sentry_sdk.get_client().is_active():
                try:
                    sentry_sdk.init(**_init_options())
                except Exception as exc:
                    logger.error("sentry-sdk cannot be initialised: %s", exc)
            _active = sentry_sdk.get_client().is_active()
        return _active


@hookimpl
def cronman_report_error(
    exc: BaseException, context: dict[str, Any], run: JobRun | None
) -> None:
    if not ensure_sentry():
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        for key, value in context.items():
            scope.set_tag(key, str(value))
        if run is not None:
            scope.set_context(
                "cronman run",
                {"job_spec": run.job_spec, "pid": run.pid, "started_at": run.started_at.isoformat(),
                 "duration": run.duration, "resumed": run.resumed},
            )
            if run.output:  # as an attachment: event fields are cut to 1,024 characters
                scope.add_attachment(bytes=run.output.encode(), filename="output.txt", content_type="text/plain")
        sentry_sdk.capture_exception(exc)


# -- Sentry Crons ----------------------------------------------------------------


def schedule_entry(run: JobRun) -> tuple[str, str] | None:
    """The ``(time spec, job spec)`` that schedules this run: same spec, else same job name."""
    same_name = None
    try:
        for entry in get_plugin_manager().schedule():
            try:
                spec = parse(entry.job_spec)
            except ValueError:
                continue
            if format_spec(spec) == run.job_spec:
                return entry.time_spec, entry.job_spec
            if spec.name == run.job_name and same_name is None:
                same_name = (entry.time_spec, entry.job_spec)
    except Exception as exc:
        logger.warning("no monitor schedule for %s: %s", run.job_spec, exc)
        return None
    return same_name


def monitor_config(run: JobRun) -> MonitorConfig | None:
    """Sentry's monitor config for the run's schedule entry (None when it has none)."""
    entry = schedule_entry(run)
    if entry is None:
        return None
    time_zone = conf.time_zone_name()
    return {
        "schedule": {"type": "crontab", "value": " ".join(entry[0].split())},
        "timezone": str(time_zone),
    }


def _check_in(run: JobRun, status: str) -> None:
    slug = run.job_value("sentry_monitor_slug")
    if not slug or not ensure_sentry():
        return
    from sentry_sdk.crons import capture_checkin

    if status == "in_progress":
        check_in_id = capture_checkin(
            monitor_slug=str(slug), status=status, monitor_config=monitor_config(run)
        )
        if check_in_id:
            _check_ins[run.run_id] = check_in_id
        return
    capture_checkin(
        monitor_slug=str(slug),
        check_in_id=_check_ins.pop(run.run_id, None),
        status=status,
        duration=run.duration,
    )


@hookimpl
def cronman_reserved_params() -> list[str]:
    """``sentry_monitor_slug=...`` in a job spec is ours: ``run()`` never sees it."""
    return ["sentry_monitor_slug"]


@hookimpl
def cronman_job_started(run: JobRun) -> None:
    _check_in(run, "in_progress")


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    _check_in(run, "ok")


@hookimpl
def cronman_job_failed(run: JobRun) -> None:
    _check_in(run, "error")


@hookimpl
def cronman_job_killed(run: JobRun) -> None:
    _check_in(run, "error")


# -- cron_monitors sync ------------------------------------------------------------


def _wanted_config(job: MonitoredJob) -> dict[str, Any]:
    """A cron monitor's config as the schedule says (Sentry counts its margin and runtime in minutes)."""
    return {
        "schedule_type": "crontab",
        "schedule": job.schedule,
        "timezone": job.time_zone,
        "checkin_margin": max(1, math.ceil(job.grace / 60)),
        "max_runtime": None if job.max_runtime is None else max(1, math.ceil(job.max_runtime / 60)),
    }


@hookimpl
def cronman_monitors_sync(jobs: list[MonitoredJob], apply: bool) -> list[str]:
    """Create or update the cron monitors of the jobs with a ``sentry_monitor_slug``."""
    monitored = one_per_monitor("sentry", jobs, lambda job: job.value("sentry_monitor_slug"))
    if not monitored:
        return []
    token, org = conf.get("CRONMAN_SENTRY_API_TOKEN"), conf.get("CRONMAN_SENTRY_ORG")
    if not token or not org:
        raise UsageError("CRONMAN_SENTRY_API_TOKEN and CRONMAN_SENTRY_ORG are needed to sync Sentry's monitors")
    base = f"{conf.get('CRONMAN_SENTRY_API_URL').rstrip('/')}/organizations/{org}/monitors"
    headers = {"Authorization": f"Bearer {token}"}
    lines: list[str] = []
    for slug, job in monitored:
        wanted = _wanted_config(job)
        status, current = api_call("sentry", "GET", f"{base}/{slug}/", headers=headers, allow=(404,))
        if status == 404:
            project = conf.get("CRONMAN_SENTRY_PROJECT")
            if not project:
                raise UsageError(f"monitor {slug!r} does not exist and CRONMAN_SENTRY_PROJECT (where to create "
                                 "it) is not set")
            lines.append(creation("sentry", slug, wanted))
            if apply:
                api_call("sentry", "POST", f"{base}/", headers=headers,
                         json={"name": job.job_name, "slug": slug, "project": project, "type": "cron_job",
                               "config": wanted})
            continue
        config = current.get("config", {}) if isinstance(current, dict) else {}
        changed = differences(config, wanted)
        if changed:
            lines.append(f"sentry: update {slug!r}: {', '.join(changed)}")
            if apply:
                api_call("sentry", "PUT", f"{base}/{slug}/", headers=headers, json={"config": {**config, **wanted}})
    return lines
