"""The data of the admin timeline page: runs of the last 24 hours drawn per job, server-side.

Geometry is computed here so the template only prints numbers into an SVG
(no JavaScript, no CDN). Each job row also tells its last run, its next
scheduled run and the live process holding its lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from cronman_core import conf
from cronman_core.cronexpr import get_zone
from cronman_core.errors import CronmanError
from cronman_core.plugins import get_plugin_manager
from cronman_core.process import verified_process
from cronman_core.schedule import job_name
from cronman_core.scheduler.tick import Scheduler
from cronman_plugins.history.models import CronRun, CronRunStatus

logger = logging.getLogger("cronman.plugins.history")

WINDOW = dt.timedelta(hours=24)
LABEL_WIDTH = 200
PLOT_WIDTH = 960
ROW_HEIGHT = 26
AXIS_HEIGHT = 24
#: Narrowest bar, so a one-second run is still visible and hoverable.
MIN_BAR = 4.0
#: A run shown in the timeline: status colours follow the admin's palette.
COLOURS = {"succeeded": "#417690", "failed": "#ba2121", "killed": "#d2691e", "started": "#79aec8",
           "lost_lock": "#ba2121", "missed": "#cccccc"}


@dataclass
class Bar:
    x: float
    width: float
    colour: str
    title: str


@dataclass
class JobRow:
    name: str
    y: float = 0.0
    bars: list[Bar] = field(default_factory=list)
    last_run: CronRun | None = None
    next_runs: list[tuple[dt.datetime, str]] = field(default_factory=list)
    lock_holder: str = ""


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Timeline:
    start: dt.datetime
    end: dt.datetime
    rows: list[JobRow]
    ticks: list[Tick]
    width: int
    height: int
    label_width: int = LABEL_WIDTH
    lock_error: str = ""
    schedule_error: str = ""


def _next_runs(tz: dt.tzinfo) -> dict[str, list[tuple[dt.datetime, str]]]:
    """Job name → (next fire time, job spec) of its schedule entries, as ``cron_scheduler next``."""
    found: dict[str, list[tuple[dt.datetime, str]]] = {}
    for entry, instants in Scheduler().upcoming(1):
        runs = found.setdefault(job_name(entry.job_spec), [])
        if isinstance(instants, str):
            logger.warning("schedule entry %r: %s", entry.time_spec, instants)
        elif instants:
            runs.append((dt.datetime.fromtimestamp(instants[0], tz), entry.job_spec))
    return found


def _lock_holders() -> dict[str, str]:
    """Job name → "PID n on host since ..." for every record whose process provably lives."""
    holders: dict[str, list[str]] = {}
    backend = get_plugin_manager().lock_backend()
    for record in backend.records():
        if verified_process(record) is None:
            continue
        holders.setdefault(job_name(record.job_spec), []).append(
            f"PID {record.pid} on {record.host} ({record.job_spec}) since {record.started_at}"
        )
    return {name: "; ".join(found) for name, found in holders.items()}


def _bar(run: CronRun, start: dt.datetime, now: dt.datetime, tz: dt.tzinfo) -> Bar:
    scale = PLOT_WIDTH / WINDOW.total_seconds()
    begin = max(run.started_at, start)
    end = run.finished_at or (now if run.status == CronRunStatus.STARTED else begin)
    title = f"{run.job_spec} — {run.status}, {run.started_at.astimezone(tz):%Y-%m-%d %H:%M:%S}"
    if run.duration is not None:
        title += f", {run.duration:.1f} s"
    if run.error:
        title += f"\n{run.error.strip().splitlines()[-1]}"  # a traceback's last line is the error
    width = max(MIN_BAR, (end - begin).total_seconds() * scale)
    return Bar(
        x=min(LABEL_WIDTH + (begin - start).total_seconds() * scale, LABEL_WIDTH + PLOT_WIDTH - width),
        width=width,
        colour=COLOURS.get(run.status, "#999999"),
        title=title,
    )


def build_timeline(now: dt.datetime) -> Timeline:
    tz = get_zone(conf.time_zone_name())
    start = now - WINDOW
    runs = list(CronRun.objects.filter(started_at__gte=start).order_by("started_at"))
    rows: dict[str, JobRow] = {}
    timeline = Timeline(start=start, end=now, rows=[], ticks=[], width=0, height=0)
    try:
        next_runs = _next_runs(tz)
    except CronmanError as exc:
        next_runs, timeline.schedule_error = {}, str(exc)
    for name, upcoming in next_runs.items():
        rows.setdefault(name, JobRow(name)).next_runs = upcoming
    for run in runs:
        rows.setdefault(run.job_name, JobRow(run.job_name)).bars.append(_bar(run, start, now, tz))
    try:
        holders = _lock_holders()
    except (CronmanError, OSError) as exc:
        holders, timeline.lock_error = {}, str(exc)
    for name, holder in holders.items():
        rows.setdefault(name, JobRow(name)).lock_holder = holder
    timeline.rows = sorted(rows.values(), key=lambda row: row.name)
    for index, row in enumerate(timeline.rows):
        row.y = AXIS_HEIGHT + index * ROW_HEIGHT
        row.last_run = CronRun.objects.filter(job_name=row.name).order_by("-started_at").first()
        row.next_runs.sort()
    first_hour = start.astimezone(tz).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    for hour in range(0, 24, 3):
        moment = first_hour + dt.timedelta(hours=hour)
        x = LABEL_WIDTH + (moment - start).total_seconds() * PLOT_WIDTH / WINDOW.total_seconds()
        if x < LABEL_WIDTH + PLOT_WIDTH - 40:  # leave room for the "now" label
            timeline.ticks.append(Tick(x=x, label=f"{moment:%H:%M}"))
    timeline.width = LABEL_WIDTH + PLOT_WIDTH
    timeline.height = AXIS_HEIGHT + max(1, len(timeline.rows)) * ROW_HEIGHT
    return timeline

