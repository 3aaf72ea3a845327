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

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.job import JobRun
from cronman_plugins._ping import Pinger, check_settings, run_uuid, tick_id

DEFAULT_URL = "https://hc-ping.com"
#: Most bytes of error text sent as a fail body (healthchecks.io keeps 10 kB by default).
BODY_LIMIT = 10_000

_pinger = Pinger("healthchecks")

conf.declare(
    conf.Setting("CRONMAN_HEALTHCHECKS_ENABLED", False, conf.FLAG),
    conf.Setting("CRONMAN_HEALTHCHECKS_URL", None, conf.text()),
    conf.Setting("CRONMAN_HEALTHCHECKS_PING_KEY", None, conf.text(), secret=True),
    conf.Setting("CRONMAN_CRON_SCHEDULER_HEALTHCHECKS_ID", None, conf.text()),
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
