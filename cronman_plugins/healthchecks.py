"""healthchecks.io pings for jobs and for the scheduler.

Switched on by ``CRONMAN_HEALTHCHECKS_ENABLED = True`` (or by listing
``cronman_plugins.healthchecks`` in ``CRONMAN_PLUGINS``). A job is
monitored by its check's UUID, ``healthchecks_id``, or by a slug,
``healthchecks_slug``, with the project's ``CRONMAN_HEALTHCHECKS_PING_KEY``
(each a class attribute, or a job spec param that overrides it). The
scheduler pings ``CRONMAN_CRON_SCHEDULER_HEALTHCHECKS_ID`` around each tick.

A run sends ``<base>/<check>/start``, then ``<base>/<check>`` on success or
``<base>/<check>/fail`` with the error text as the POST body (at most
``BODY_LIMIT`` bytes), all with ``rid`` = the run id so healthchecks.io pairs
them. ``CRONMAN_HEALTHCHECKS_URL`` (default ``https://hc-ping.com``) points
at a self-hosted instance.

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
from cronman_plugins._ping import (
    Pinger,
    api_call,
    check_settings,
    creation,
    differences,
    one_per_monitor,
    run_uuid,
    tick_id,
)

DEFAULT_URL = "https://hc-ping.com"
#: Most bytes of error text sent as a fail body (healthchecks.io keeps 10 kB by default).
BODY_LIMIT = 10_000

_pinger = Pinger("healthchecks")

conf.declare(
    conf.Setting("CRONMAN_HEALTHCHECKS_ENABLED", False, conf.FLAG),
    conf.Setting("CRONMAN_HEALTHCHECKS_URL", None, conf.text()),
    conf.Setting("CRONMAN_HEALTHCHECKS_PING_KEY", None, conf.text(), secret=True),
    conf.Setting("CRONMAN_CRON_SCHEDULER_HEALTHCHECKS_ID", None, conf.text()),
    # cron_monitors sync: the management API (a project's read-write API key).
    conf.Setting("CRONMAN_HEALTHCHECKS_API_URL", "https://healthchecks.io/api/v3", conf.text(optional=False)),
    conf.Setting("CRONMAN_HEALTHCHECKS_API_KEY", None, conf.text(), secret=True),
)


def _base_url() -> str:
    base = conf.get("CRONMAN_HEALTHCHECKS_URL") or DEFAULT_URL
    if not isinstance(base, str) or not base.startswith(("http://", "https://")):
        raise UsageError(f"CRONMAN_HEALTHCHECKS_URL must be an http(s) URL, got {base!r}")
    return base.rstrip("/")


def plugin_enabled() -> bool:
    """On with ``CRONMAN_HEALTHCHECKS_ENABLED``; bad settings stop the load."""
    if not conf.get("CRONMAN_HEALTHCHECKS_ENABLED"):
        return False
    check_settings("healthchecks")
    _base_url()
    return True


def check_path(check_id: str | None = None, slug: str | None = None) -> str | None:
    """The check's part of a ping URL: its UUID, else ``<ping key>/<slug>``; None if neither."""
    if check_id:
        return str(check_id)
    ping_key = conf.get("CRONMAN_HEALTHCHECKS_PING_KEY")
    if slug and ping_key:
        return f"{ping_key}/{slug}"
    return None


def fail_body(error: str | None, output: str | None) -> bytes:
    """The error, then the end of the run's output, within :data:`BODY_LIMIT` bytes (no character split)."""
    body = (error or "").encode()[:BODY_LIMIT].decode(errors="ignore").encode()
    if output:
        head = b"\n\n--- the end of its output ---\n"
        room = BODY_LIMIT - len(body) - len(head)
        if room > 0:
            body += head + output.encode()[-room:].decode(errors="ignore").encode()
    return body


def ping(check: str, event: str, run_id: str, error: str | None = None, output: str | None = None) -> bool:
    """Send one ping (``event``: start / success / fail); never raises."""
    label = f"healthchecks {event} ping"
    try:
        url = f"{_base_url()}/{check}"
    except UsageError as exc:
        _pinger.logger.error("%s skipped: %s", label, exc)
        return False
    if event != "success":
        url += f"/{event}"
    data = None
    if event == "fail":
        data = fail_body(error, output)
    return _pinger.ping(label, url, budget_key=run_id, params={"rid": run_uuid(run_id)}, data=data)


def _job_ping(run: JobRun, event: str) -> None:
    check = check_path(run.job_value("healthchecks_id"), run.job_value("healthchecks_slug"))
    if check:
        ping(check, event, run.run_id, run.error, run.output)


@hookimpl
def cronman_reserved_params() -> list[str]:
    """``healthchecks_id=...`` / ``healthchecks_slug=...`` in a job spec are ours: ``run()`` never sees them."""
    return ["healthchecks_id", "healthchecks_slug"]


@hookimpl
def cronman_job_started(run: JobRun) -> None:
    _job_ping(run, "start")


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    _job_ping(run, "success")


@hookimpl
def cronman_job_failed(run: JobRun) -> None:
    _job_ping(run, "fail")


@hookimpl
def cronman_job_killed(run: JobRun) -> None:
    _job_ping(run, "fail")


def _tick_ping(now: dt.datetime, event: str, error: str | None = None) -> None:
    check = conf.get("CRONMAN_CRON_SCHEDULER_HEALTHCHECKS_ID")
    if check:
        ping(str(check), event, tick_id(now), error)


@hookimpl
def cronman_scheduler_tick(now: dt.datetime) -> None:
    _tick_ping(now, "start")


@hookimpl
def cronman_scheduler_tick_done(now: dt.datetime, error: BaseException | None) -> None:
    if error is None:
        _tick_ping(now, "success")
    else:
        _tick_ping(now, "fail", f"{type(error).__name__}: {error}")


# -- cron_monitors sync ------------------------------------------------------------


def _wanted(job: MonitoredJob) -> dict[str, Any]:
    """A check's fields as the schedule says (healthchecks.io's grace is at least a minute)."""
    return {"schedule": job.schedule, "tz": job.time_zone, "grace": max(60, math.ceil(job.grace))}


@hookimpl
def cronman_monitors_sync(jobs: list[MonitoredJob], apply: bool) -> list[str]:
    """Create or update the checks of the jobs with a ``healthchecks_slug`` or ``healthchecks_id``."""
    monitored = one_per_monitor("healthchecks", jobs,
                                lambda job: job.value("healthchecks_id") or job.value("healthchecks_slug"))
    if not monitored:
        return []
    key = conf.get("CRONMAN_HEALTHCHECKS_API_KEY")
    if not key:
        raise UsageError("CRONMAN_HEALTHCHECKS_API_KEY (a read-write API key of the project) is not set")
    api = conf.get("CRONMAN_HEALTHCHECKS_API_URL").rstrip("/")
    headers = {"X-Api-Key": key}
    _status, body = api_call("healthchecks", "GET", f"{api}/checks/", headers=headers)
    checks = body.get("checks", []) if isinstance(body, dict) else []
    lines: list[str] = []
    for name, job in monitored:
        slug, check_id = job.value("healthchecks_slug"), job.value("healthchecks_id")
        found = next((c for c in checks if (check_id and str(c.get("ping_url", "")).endswith(f"/{check_id}"))
                      or (slug and not check_id and c.get("slug") == slug)), None)
        wanted = _wanted(job)
        if found is None:
            if not slug:
                raise UsageError(f"check {check_id} of {job.job_name} does not exist (give it a healthchecks_slug "
                                 "for cron_monitors to create it)")
            lines.append(creation("healthchecks", slug, wanted))
            if apply:
                api_call("healthchecks", "POST", f"{api}/checks/", headers=headers,
                         json={"name": job.job_name, "slug": slug, "unique": ["slug"], **wanted})
            continue
        changed = differences(found, wanted)
        if changed:
            lines.append(f"healthchecks: update {name!r}: {', '.join(changed)}")
            if apply:
                api_call("healthchecks", "POST", str(found["update_url"]), headers=headers, json=wanted)
    return lines
