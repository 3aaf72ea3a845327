"""The data of the admin timeline page: runs of the last hour, 6 hours, 24 hours or 7 days drawn per job,
server-side, with missed and skipped slots as marks.

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
from cronman_core.job import format_seconds
from cronman_core.plugins import get_plugin_manager
from cronman_core.process import verified_process
from cronman_core.schedule import job_name
from cronman_core.scheduler.tick import Scheduler
from cronman_plugins.history.models import CronRun, CronRunStatus

logger = logging.getLogger("cronman.plugins.history")

#: The windows the page offers, and the spacing of their axis labels.
WINDOWS = {"1h": dt.timedelta(hours=1), "6h": dt.timedelta(hours=6), "24h": dt.timedelta(hours=24),
           "7d": dt.timedelta(days=7)}
_TICK_EVERY = {"1h": dt.timedelta(minutes=10), "6h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=3),
               "7d": dt.timedelta(days=1)}
LABEL_WIDTH = 200
PLOT_WIDTH = 960
ROW_HEIGHT = 26
AXIS_HEIGHT = 24
#: Narrowest bar, so a one-second run is still visible and hoverable.
MIN_BAR = 4.0
#: A run shown in the timeline: status colours follow the admin's palette.
COLOURS = {"succeeded": "#417690", "failed": "#ba2121", "killed": "#d2691e", "started": "#79aec8",
           "lost_lock": "#ba2121", "timeout": "#8b0000", "missed": "#999999", "skipped": "#e0b000"}
#: Slots that did not run are drawn as short marks, not bars.
MARKS = {CronRunStatus.MISSED, CronRunStatus.SKIPPED}


@dataclass
class Bar:
    x: float
    width: float
    colour: str
    title: str
    mark: bool = False


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


def _bar(run: CronRun, start: dt.datetime, window: dt.timedelta, now: dt.datetime, tz: dt.tzinfo) -> Bar:
    scale = PLOT_WIDTH / window.total_seconds()
    begin = max(run.started_at, start)
    end = run.finished_at or (now if run.status == CronRunStatus.STARTED else begin)
    title = f"{run.job_spec} — {run.get_status_display().lower()}, {run.started_at.astimezone(tz):%Y-%m-%d %H:%M:%S}"
    if run.duration is not None and run.status not in MARKS:
        title += f", {format_seconds(run.duration)}"
    if run.exit_reason and run.status in MARKS:
        title += f"\n{run.exit_reason}"
    elif run.error:
        title += f"\n{run.error.strip().splitlines()[-1]}"  # a traceback's last line is the error
    mark = run.status in MARKS
    width = MIN_BAR if mark else max(MIN_BAR, (end - begin).total_seconds() * scale)
    return Bar(
        x=min(LABEL_WIDTH + (begin - start).total_seconds() * scale, LABEL_WIDTH + PLOT_WIDTH - width),
        width=width,
        colour=COLOURS.get(run.status, "#999999"),
        title=title,
        mark=mark,
    )


def build_timeline(now: dt.datetime, window_name: str = "24h") -> Timeline:
    """The page's data for the window ``window_name`` (a key of :data:`WINDOWS`) up to ``now``."""
    tz = get_zone(conf.time_zone_name())
    window = WINDOWS[window_name]
    start = now - window
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
        rows.setdefault(run.job_name, JobRow(run.job_name)).bars.append(_bar(run, start, window, now, tz))
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
    timeline.ticks = _ticks(start, window, _TICK_EVERY[window_name], tz)
    timeline.width = LABEL_WIDTH + PLOT_WIDTH
    timeline.height = AXIS_HEIGHT + max(1, len(timeline.rows)) * ROW_HEIGHT
    return timeline


def _ticks(start: dt.datetime, window: dt.timedelta, every: dt.timedelta, tz: dt.tzinfo) -> list[Tick]:
    """Axis labels at round local times, ``every`` apart: 10 minutes in an hour ... a day in a week."""
    local = start.astimezone(tz)
    if every >= dt.timedelta(days=1):
        moment = local.replace(hour=0, minute=0, second=0, microsecond=0) + every
        label = "%a %d %b"
    else:
        step = int(every.total_seconds())
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        moment = local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(
            seconds=(seconds // step + 1) * step)
        label = "%H:%M"
    ticks = []
    while moment < start + window:
        x = LABEL_WIDTH + (moment - start).total_seconds() * PLOT_WIDTH / window.total_seconds()
        if x < LABEL_WIDTH + PLOT_WIDTH - 40:  # leave room for the "now" label
            ticks.append(Tick(x=x, label=f"{moment:{label}}"))
        moment += every
    return ticks
