"""Hooks of the Prometheus plugin: each run, missed fire and tick of this host adds to its metrics.

``CRONMAN_PROMETHEUS_ENABLED = True`` switches it on. What it records (see
:mod:`cronman_plugins.prometheus.metrics` for the names):

- a worker's end (succeeded, failed, timeout, killed, lost_lock, skipped):
  its count by status, its duration, the end of its last success;
- a worker's start: how late it started after the fire it runs
  (``CRONMAN_SCHEDULED_FIRE``: scheduled runs only);
- fires given up (``cronman_fires_missed``): their count by reason kind;
- a tick's end: its time, and each job's next fire, so an alert can say a
  job is late without knowing its schedule.

A failure to record (a full disk) is one warning: metrics never change a
run's outcome. ``cron_worker metrics`` prints the text (``cronman_metrics``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable

from cronman_core import conf, hookimpl
from cronman_core.cronexpr import get_zone
from cronman_core.datadir import get_data_dir
from cronman_core.errors import CronmanError
from cronman_core.job import JobRun
from cronman_core.plugins import get_plugin_manager
from cronman_core.schedule import job_name
from cronman_core.scheduler.decide import entry_key, expression
from cronman_core.spawners import SCHEDULED_FIRE_ENV, ScheduledFire
from cronman_core.switch import SchedulerControl
from cronman_plugins.prometheus.metrics import MetricsStore, exposition, missed_reason

logger = logging.getLogger("cronman.plugins.prometheus")

conf.declare(conf.Setting("CRONMAN_PROMETHEUS_ENABLED", False, conf.FLAG))


def plugin_enabled() -> bool:
    return bool(conf.get("CRONMAN_PROMETHEUS_ENABLED"))


def _record(what: str, action: Callable[[MetricsStore], None]) -> None:
    try:
        action(MetricsStore(get_data_dir()))
    except (OSError, CronmanError) as exc:
        logger.warning("metrics: cannot record %s (%s)", what, exc)


def _ended(run: JobRun) -> None:
    finished = run.finished_at.timestamp() if run.finished_at is not None else None
    _record(f"the end of {run.job_spec}",
            lambda store: store.run_ended(run.job_name, run.status, run.duration, finished))


@hookimpl
def cronman_job_started(run: JobRun) -> None:
    fire = ScheduledFire.decode(os.environ.get(SCHEDULED_FIRE_ENV))
    if fire is not None and fire.fire is not None:
        late = run.started_at.timestamp() - fire.fire
        _record(f"the start of {run.job_spec}", lambda store: store.started_late(late))


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    _ended(run)


@hookimpl
def cronman_job_failed(run: JobRun) -> None:
    _ended(run)


@hookimpl
def cronman_job_killed(run: JobRun) -> None:
    _ended(run)


@hookimpl
def cronman_job_skipped(run: JobRun) -> None:
    _ended(run)


@hookimpl
def cronman_fires_missed(job_spec: str, count: int, reason: str) -> None:
    _record(f"missed fires of {job_spec}",
            lambda store: store.fires_missed(job_name(job_spec), missed_reason(reason), count))


def next_fires(now: float) -> dict[str, float]:
    """Each scheduled job's next fire after ``now`` (the soonest of its entries)."""
    tz = get_zone(conf.time_zone_name())
    found: dict[str, float] = {}
    for entry in get_plugin_manager().schedule():
        try:
            expr, zone = expression(entry_key(entry), tz)
        except CronmanError:
            continue  # an invalid entry: the tick logged it
        instant = expr.next_fire(now, zone)
        name = job_name(entry.job_spec)
        if instant is not None and (name not in found or instant < found[name]):
            found[name] = float(instant)
    return found


@hookimpl
def cronman_scheduler_tick_done(control: SchedulerControl, now: dt.datetime) -> None:
    at = now.timestamp()
    _record("the tick", lambda store: store.ticked(at, next_fires(at)))


@hookimpl
def cronman_metrics() -> str:
    return exposition(MetricsStore(get_data_dir()).read())


__all__ = ["cronman_metrics", "next_fires", "plugin_enabled"]
