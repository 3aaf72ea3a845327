"""Cronitor pings for jobs and for the scheduler (django-cronman's Cronitor support).

Switched on by ``CRONMAN_CRONITOR_ENABLED = True`` (or by listing
``cronman_plugins.cronitor`` in ``CRONMAN_PLUGINS``). A job is monitored
when it has a ``cronitor_id`` (class attribute, or a ``cronitor_id=`` job
spec param that overrides it); ``cronitor_ping_run = False`` /
``cronitor_ping_fail = False`` drop the optional pings. The scheduler pings
``CRONMAN_CRON_SCHEDULER_CRONITOR_ID`` around each tick.

Two URL forms:

* classic (django-cronman's): ``CRONMAN_CRONITOR_URL``, a template with
  ``{cronitor_id}`` and ``{end_point}`` (run / complete / fail); the error
  goes in the ``msg`` query param of a fail ping.
* telemetry (Cronitor's current API), used when ``CRONMAN_CRONITOR_API_KEY``
  is set: ``CRONMAN_CRONITOR_TELEMETRY_URL`` (``{api_key}``,
  ``{cronitor_id}``) with ``state``, ``series`` (the run id), ``host`` and
  ``message`` query params.

Cost and failure handling: see :mod:`cronman_plugins._ping`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.job import JobRun
from cronman_core.monitors import MonitoredJob
from cronman_core.process import hostname
from cronman_plugins._ping import Pinger, api_call, check_settings, creation, differences, one_per_monitor, tick_id

DEFAULT_URL = "https://cronitor.link/{cronitor_id}/{end_point}"
DEFAULT_TELEMETRY_URL = "https://cronitor.link/p/{api_key}/{cronitor_id}"
#: Most characters of an error message put in a ping URL.
MESSAGE_LIMIT = 1000

_pinger = Pinger("cronitor")

conf.declare(
    conf.Setting("CRONMAN_CRONITOR_ENABLED", False, conf.FLAG),
    conf.Setting("CRONMAN_CRONITOR_URL", None, conf.text()),
    conf.Setting("CRONMAN_CRONITOR_TELEMETRY_URL", None, conf.text()),
    conf.Setting("CRONMAN_CRONITOR_API_KEY", None, conf.text(), secret=True),
    conf.Setting("CRONMAN_CRON_SCHEDULER_CRONITOR_ID", None, conf.text()),
    # cron_monitors sync: the monitors API (with CRONMAN_CRONITOR_API_KEY).
    conf.Setting("CRONMAN_CRONITOR_API_URL", "https://cronitor.io/api", conf.text(optional=False)),
)


def _url(cronitor_id: str, state: str) -> tuple[str, dict[str, str]]:
    """The URL of a ping and its form's fixed params."""
    api_key = conf.get("CRONMAN_CRONITOR_API_KEY")
    if api_key:
        setting, template = "CRONMAN_CRONITOR_TELEMETRY_URL", DEFAULT_TELEMETRY_URL
        fields = {"api_key": api_key, "cronitor_id": cronitor_id}
    else:
        setting, template = "CRONMAN_CRONITOR_URL", DEFAULT_URL
        fields = {"cronitor_id": cronitor_id, "end_point": state}
    template = conf.get(setting) or template
    try:
        url = str(template).format(**fields)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(
            f"{setting} {template!r} is not a template of {', '.join(sorted(fields))}: {exc!r}"
        ) from None
    return url, ({"state": state} if api_key else {})


def plugin_enabled() -> bool:
    """On with django-cronman's ``CRONMAN_CRONITOR_ENABLED``; bad settings stop the load."""
    if not conf.get("CRONMAN_CRONITOR_ENABLED"):
        return False
    check_settings("cronitor")
    _url("id", "run")
    return True


def ping(
    cronitor_id: str, state: str, series: str, host: str, message: str | None = None
) -> bool:
    """Send one ping (``state``: run / complete / fail); never raises."""
    label = f"cronitor {state} ping of {cronitor_id}"
    try:
        url, params = _url(cronitor_id, state)
    except UsageError as exc:
        _pinger.logger.error("%s skipped: %s", label, exc)
        return False
    message = message[:MESSAGE_LIMIT] if message else None
    if params:  # telemetry form
        params.update(series=series, host=host)
        if message:
            params["message"] = message
    elif message:
        params["msg"] = message
    return _pinger.ping(label, url, budget_key=series, params=params or None)


def _job_ping(run: JobRun, state: str, flag: str | None = None) -> None:
    cronitor_id = run.job_value("cronitor_id")
    if not cronitor_id or (flag and not getattr(run.job_class, flag, True)):
        return
    message = run.error if state == "fail" else None
    ping(str(cronitor_id), state, run.run_id, run.host, message)


@hookimpl
def cronman_reserved_params() -> list[str]:
    """``cronitor_id=...`` in a job spec is ours, as in django-cronman: ``run()`` never sees it."""
    return ["cronitor_id"]


@hookimpl
def cronman_job_started(run: JobRun) -> None:
    _job_ping(run, "run", "cronitor_ping_run")


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    _job_ping(run, "complete")


@hookimpl
def cronman_job_failed(run: JobRun) -> None:
    _job_ping(run, "fail", "cronitor_ping_fail")


@hookimpl
def cronman_job_killed(run: JobRun) -> None:
    _job_ping(run, "fail", "cronitor_ping_fail")


def _tick_ping(now: dt.datetime, state: str, message: str | None = None) -> None:
    cronitor_id = conf.get("CRONMAN_CRON_SCHEDULER_CRONITOR_ID")
    if cronitor_id:
        ping(str(cronitor_id), state, tick_id(now), hostname(), message)


@hookimpl
def cronman_scheduler_tick(now: dt.datetime) -> None:
    _tick_ping(now, "run")


@hookimpl
def cronman_scheduler_tick_done(now: dt.datetime, error: BaseException | None) -> None:
    if error is None:
        _tick_ping(now, "complete")
    else:
        _tick_ping(now, "fail", f"{type(error).__name__}: {error}")




# -- cron_monitors sync ------------------------------------------------------------


def _wanted(job: MonitoredJob) -> dict[str, Any]:
    """A job monitor's fields as the schedule says: schedule, zone, grace and a duration assertion."""
    wanted: dict[str, Any] = {"schedule": job.schedule, "timezone": job.time_zone,
                              "grace_seconds": math.ceil(job.grace)}
    if job.max_runtime is not None:
        wanted["assertions"] = [f"metric.duration < {math.ceil(job.max_runtime)} seconds"]
    return wanted


@hookimpl
def cronman_monitors_sync(jobs: list[MonitoredJob], apply: bool) -> list[str]:
    """Create or update (one bulk ``PUT``) the monitors of the jobs with a ``cronitor_id``."""
    monitored = one_per_monitor("cronitor", jobs, lambda job: job.value("cronitor_id"))
    if not monitored:
        return []
    key = conf.get("CRONMAN_CRONITOR_API_KEY")
    if not key:
        raise UsageError("CRONMAN_CRONITOR_API_KEY is not set")
    api = conf.get("CRONMAN_CRONITOR_API_URL").rstrip("/")
    lines: list[str] = []
    updates: list[dict[str, Any]] = []
    for monitor_key, job in monitored:
        status, current = api_call("cronitor", "GET", f"{api}/monitors/{monitor_key}", auth=(key, ""), allow=(404,))
        wanted = _wanted(job)
        if status == 404:
            lines.append(creation("cronitor", monitor_key, wanted))
        else:
            changed = differences(current if isinstance(current, dict) else {}, wanted)
            if not changed:
                continue
            lines.append(f"cronitor: update {monitor_key!r}: {', '.join(changed)}")
        updates.append({"type": "job", "key": monitor_key, "name": job.job_name, **wanted})
    if apply and updates:
        api_call("cronitor", "PUT", f"{api}/monitors", auth=(key, ""), json=updates)
    return lines
