"""Deciding what is due, and the tick and daemon loop that act on it.

The decision (:func:`decide`) is pure: entries, the persisted state and an
injected ``now`` in, runs to start out. Its rules (docs/scheduling.md):

* every occurrence in ``(watermark, now]`` is considered, never one after
  ``now``: a job never starts early;
* occurrences older than the entry's misfire grace are missed (logged), the
  others coalesce into one run per entry;
* with no watermark yet it is taken as one minute before ``now``;
* a clock behind the watermark fires nothing until it catches up.

The state keeps each time spec's next fire instant, so a tick only
computes the expressions that fire, are new, or whose cache is stale.
Exactly-once per (entry, fire instant) across overlapping ticks and hosts
comes from claims in the lock backend, not from the state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from cronman_core import conf
from cronman_core.cronexpr import CronExprError, get_zone, normalize, parse_cron
from cronman_core.errors import (
    CronmanError,
    JobParamsError,
    JobSpecError,
    UnknownJobError,
    UsageError,
)
from cronman_core.plugins import CronmanPluginManager, get_plugin_manager
from cronman_core.process import on_stop_signals
from cronman_core.schedule import ScheduleEntry

logger = logging.getLogger("cronman.scheduler")

#: A clock this far behind the watermark is taken as a corrected clock, not a step.
MAX_CLOCK_BEHIND = 86400.0
#: Claims live this long past the grace window (clock skew between hosts).
CLAIM_MARGIN = 3600.0
#: Expired claims are pruned at most this often.
PRUNE_INTERVAL = 600.0
#: Missed occurrences counted for the log line before saying "or more".
MISSED_COUNT_LIMIT = 100
STATE_VERSION = 1


# -- entries --------------------------------------------------------------------


def job_name(job_spec: str) -> str:
    """The job name of a spec without parsing its params."""
    return job_spec.partition(":")[0].strip()


class Schedule:
    """Every plugin's entries, made as they are iterated (re-iterable).

    A ``default`` entry yields to any other entry for its job name. Entries
    are not kept in a list: a tick looks at each one once, so a 100,000-line
    schedule costs little memory beyond its source's own data.
    """

    def __init__(self, parts: list[Iterable[ScheduleEntry | tuple[str, str]] | None]) -> None:
        self.parts = parts

    def _all(self) -> Iterator[ScheduleEntry]:
        for part in self.parts:
            for item in part or ():
                if isinstance(item, ScheduleEntry):
                    yield item
                elif isinstance(item, tuple | list) and len(item) == 2:
                    yield ScheduleEntry(item[0], item[1], source="plugin")
                else:
                    raise UsageError(f"a plugin gave a schedule entry that is not a "
                                     f"(time spec, job spec) pair: {item!r}")

    def __iter__(self) -> Iterator[ScheduleEntry]:
        names: set[str] = set()
        defaults: list[ScheduleEntry] = []
        for entry in self._all():
            if entry.default:
                defaults.append(entry)
                continue
            names.add(job_name(entry.job_spec))
            yield entry
        for entry in defaults:
            if job_name(entry.job_spec) not in names:
                yield entry


def collect_entries(pm: CronmanPluginManager) -> Schedule:
    """The schedule from every ``cronman_schedule_entries`` implementation."""
    return Schedule(list(pm.hook.cronman_schedule_entries()))


def scheduler_zone_name() -> str:
    from django.conf import settings

    return str(conf.get("CRONMAN_TIME_ZONE") or getattr(settings, "TIME_ZONE", None) or "UTC")


@dataclass(frozen=True)
class Problem:
    """A schedule problem for ``manage.py check``: check id (``E`` error, ``W`` warning), message, hint."""

    id: str
    message: str
    hint: str


def schedule_problems(pm: CronmanPluginManager) -> list[Problem]:
    """Everything that would stop a schedule entry from running, found before any tick."""
    from cronman_core.job import cron_job_registry
    from cronman_core.jobspec import bind, parse

    problems: list[Problem] = []
    try:
        get_zone(scheduler_zone_name())
    except CronmanError as exc:
        problems.append(Problem("cronman.E015", str(exc), "Set CRONMAN_TIME_ZONE (or TIME_ZONE) "
                                "to an IANA zone name such as 'Europe/London'."))
    try:
        entries = list(collect_entries(pm))
    except CronmanError as exc:
        problems.append(Problem("cronman.E014", f"cannot load schedule entries: {exc}",
                                "Fix CRONMAN_JOBS_MODULE / CRON_JOBS or the plugin that adds entries."))
        return problems
    positions: dict[str, int] = {}
    for entry in entries:
        position = positions[entry.source] = positions.get(entry.source, -1) + 1
        where = f"{entry.source}[{position}]: ({entry.time_spec!r}, {entry.job_spec!r})"
        try:
            expr = parse_cron(entry.time_spec)
        except CronExprError as exc:
            problems.append(Problem("cronman.E010", f"{where}: {exc}", "Use 5 fields (minute hour "
                                    "day-of-month month day-of-week) or an alias such as @hourly."))
        else:
            if not expr.possible:
                problems.append(Problem("cronman.W010", f"{where}: no date matches {expr.text!r}, "
                                        "it never fires", "Check the day-of-month and month fields."))
        try:
            spec = parse(entry.job_spec)
            job_class = cron_job_registry.get(spec.name)
        except JobSpecError as exc:
            problems.append(Problem("cronman.E012", f"{where}: {exc}",
                                    "Write the job spec as Name or Name:value,key=value."))
            continue
        except UnknownJobError:
            problems.append(Problem("cronman.E011", f"{where}: unknown cron job {spec.name!r}",
                                    "Register the job class in a cron_jobs module, or fix the name "
                                    "(see manage.py cron_worker info)."))
            continue
        try:
            bind(job_class, spec, pm.reserved_params)
        except JobParamsError as exc:
            problems.append(Problem("cronman.E013", f"{where}: {exc}",
                                    f"Give the params that {spec.name}.run() accepts "
                                    f"(see manage.py cron_worker info {spec.name})."))
    return problems


# -- the pure decision ----------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """One run to start: an entry and the fire instants it covers (ascending)."""

    entry: ScheduleEntry
    slots: tuple[int, ...]

    @property
    def fire_time(self) -> int:
        return self.slots[-1]


@dataclass(frozen=True)
class Missed:
    """Occurrences of an entry older than its grace: logged, never run."""

    entry: ScheduleEntry
    first: int
    count: int  # capped at MISSED_COUNT_LIMIT


@dataclass
class Decision:
    due: list[Due] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    #: time spec -> error, for entries whose time spec is invalid.
    invalid: dict[str, str] = field(default_factory=dict)
    watermark: float = 0.0
    #: The new next-fire cache (relative to ``watermark``), or None if unchanged.
    next_fires: dict[str, int | None] | None = None
    #: Seconds the clock is behind the watermark (0 when it is not).
    behind: float = 0.0
    #: The watermark was far ahead of the clock and is replaced, not advanced.
    reset: bool = False


def decide(
    entries: Iterable[ScheduleEntry],
    now: float,
    tz: dt.tzinfo,
    grace_of: Callable[[ScheduleEntry], float],
    watermark: float | None = None,
    cache: dict[str, int | None] | None = None,
    cache_as_of: float | None = None,
) -> Decision:
    """What to start at ``now``, given the watermark and the next-fire cache.

    ``cache`` maps a normalized time spec to its first fire instant after
    ``cache_as_of`` (None: never). It is trusted only when ``cache_as_of``
    is not after the watermark; a value at or before the watermark is
    recomputed.
    """
    reset = False
    if watermark is not None and watermark - now > MAX_CLOCK_BEHIND:
        logger.warning("clock is %.0f s behind the watermark: taking it as corrected", watermark - now)
        watermark, reset = None, True
    if watermark is None:
        watermark, cache = now - 60.0, None
    if now <= watermark:
        return Decision(watermark=watermark, behind=watermark - now)
    if cache is None or cache_as_of is None or cache_as_of > watermark:
        cache = {}
    decision = Decision(watermark=now, reset=reset)
    resolved: dict[str, int | None] = {}
    # Most time specs are already normal and key ``resolved`` themselves: only
    # the others (extra spaces, aliases) are mapped, to keep memory flat.
    odd: dict[str, str] = {}
    changed = False
    for entry in entries:
        raw = entry.time_spec
        key = raw if raw in resolved else odd.get(raw)
        if key is None:
            key = normalize(raw)
            if key != raw:
                odd[raw] = key
        if key in resolved:
            first = resolved[key]
        else:
            first = cache.get(key, -1)
            if first is not None and first <= watermark:
                try:
                    first = parse_cron(key).next_fire(watermark, tz)
                except CronExprError as exc:
                    decision.invalid[entry.time_spec] = str(exc)
                    continue
                changed = True
            resolved[key] = first
        if first is None or first > now:
            continue
        _due_or_missed(decision, entry, key, first, now, tz, grace_of(entry))
    # Advance the cache past now for what was due; drop specs no longer used.
    for key, first in resolved.items():
        if first is not None and first <= now:
            resolved[key] = parse_cron(key).next_fire(now, tz)
            changed = True
    if changed or len(resolved) != len(cache):
        decision.next_fires = resolved
    return decision


def _due_or_missed(
    decision: Decision, entry: ScheduleEntry, key: str, first: int, now: float, tz: dt.tzinfo, grace: float
) -> None:
    expr = parse_cron(key)
    cutoff = now - grace
    after = first - 1
    if first < cutoff:
        count, instant = 0, first  # type: int, int | None
        while instant is not None and instant < cutoff and count < MISSED_COUNT_LIMIT:
            count += 1
            instant = expr.next_fire(instant, tz)
        decision.missed.append(Missed(entry, first, count))
        after = max(after, math.ceil(cutoff) - 1)
    slots = expr.fires_between(after, now, tz)
    if slots:
        decision.due.append(Due(entry, tuple(slots)))


def claim_key(entry: ScheduleEntry, slot: int) -> str:
    """The lock-backend claim of one (entry, fire instant): the same on every host."""
    digest = hashlib.blake2b(
        f"{normalize(entry.time_spec)}\0{entry.job_spec}".encode(), digest_size=8
    ).hexdigest()
    return f"fire-{digest}-{slot}"


def grace_of(entry: ScheduleEntry) -> float:
    """Per-entry override, else the job class's ``misfire_grace``, else the setting."""
    if entry.misfire_grace is not None:
        return float(entry.misfire_grace)
    from cronman_core.job import cron_job_registry

    name = job_name(entry.job_spec)
    if name in cron_job_registry:
        grace = cron_job_registry.get(name).misfire_grace
        if grace is not None:
            return float(grace)
    return float(conf.get("CRONMAN_MISFIRE_GRACE"))


# -- state in the data dir --------------------------------------------------------


def _write_atomic(path: Path, data: Iterable[str]) -> None:
    """Replace ``path`` whole and durably: temp file, fsync, rename, fsync the dir.

    ``data`` comes in chunks, so a big next-fire cache is never one big string.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SchedulerState:
    """The watermark (tiny, written every tick) and the next-fire cache (when it changed).

    Both live in ``<data dir>/scheduler/``. The cache file is re-read only
    when another process replaced it, so the daemon keeps it in memory.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "scheduler"
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.dir, 0o700)
        self.watermark_path = self.dir / "watermark.json"
        self.cache_path = self.dir / "next-fires.json"
        self._cache: dict[str, int | None] | None = None
        self._cache_as_of: float | None = None
        self._cache_stamp: tuple[int, int, int] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the state files between local processes."""
        fd = os.open(self.dir / "state.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable scheduler state %s: %s", path, exc)
            return None
        return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else None

    def read_watermark(self) -> dict[str, Any]:
        return self._read_json(self.watermark_path) or {}

    def write_watermark(self, watermark: float, pruned_at: float | None, reset: bool = False) -> float:
        """Advance the watermark to ``watermark`` (back only on ``reset``); return the stored value."""
        with self.locked():
            current = self.read_watermark()
            stored = watermark if reset else max(watermark, float(current.get("watermark") or watermark))
            pruned = max(pruned_at or 0.0, float(current.get("pruned_at") or 0.0))
            data = {"version": STATE_VERSION, "watermark": stored, "pruned_at": pruned}
            _write_atomic(self.watermark_path, [json.dumps(data)])
        return stored

    def read_cache(self, zone: str) -> tuple[dict[str, int | None] | None, float | None]:
        """The next-fire cache and the watermark it is relative to (None, None: none)."""
        try:
            info = os.stat(self.cache_path)
        except FileNotFoundError:
            return None, None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._cache_stamp:
            data = self._read_json(self.cache_path) or {}
            self._cache, self._cache_as_of = data.get("next"), data.get("as_of")
            if data.get("zone") != zone or not isinstance(self._cache, dict):
                self._cache, self._cache_as_of = None, None
            self._cache_stamp = stamp
        return self._cache, self._cache_as_of

    def write_cache(self, zone: str, as_of: float, cache: dict[str, int | None]) -> None:
        data = {"version": STATE_VERSION, "zone": zone, "as_of": as_of, "next": cache}
        _write_atomic(self.cache_path, json.JSONEncoder(separators=(",", ":")).iterencode(data))
        info = os.stat(self.cache_path)
        self._cache, self._cache_as_of = cache, as_of
        self._cache_stamp = (info.st_ino, info.st_mtime_ns, info.st_size)


# -- control ------------------------------------------------------------------------


class SchedulerControl:
    """What tick hooks (remote control) and ``cron_scheduler enable|disable`` may do.

    The enabled flag lives in the data dir, so crontab ticks, the daemon and
    the command agree on it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "scheduler"
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.dir, 0o700)
        self.disabled_path = self.dir / "disabled"
        self.resume_path = self.dir / "resume-workers"

    def is_enabled(self) -> bool:
        return not self.disabled_path.exists()

    def disable(self, workers: bool = False) -> None:
        """Spawn nothing from now on; with ``workers`` also suspend running workers."""
        self.disabled_path.touch(mode=0o600)
        with contextlib.suppress(FileNotFoundError):
            self.resume_path.unlink()
        if workers:
            from cronman_core import control

            control.suspend()

    def enable(self, workers: bool = False) -> None:
        """Spawn again; with ``workers`` resume suspended workers at the next tick."""
        if workers:
            self.resume_path.touch(mode=0o600)
        with contextlib.suppress(FileNotFoundError):
            self.disabled_path.unlink()

    def kill(self, spec: str | None = None) -> list[Any]:
        """Kill running workers matching ``spec`` (all when None)."""
        from cronman_core import control

        return list(control.kill(spec))

    def resume_requested_workers(self) -> None:
        """Resume suspended workers if ``enable --workers`` asked for it."""
        try:
            self.resume_path.unlink()
        except FileNotFoundError:
            return
        from cronman_core import control

        for result in control.resume():
            logger.info("resumed %s", result)


# -- the tick -----------------------------------------------------------------------


class Clock(Protocol):
    """Wall time for decisions, and a wait that a stop event can cut short."""

    def time(self) -> float: ...

    def wait(self, event: threading.Event, seconds: float) -> bool: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


@dataclass
class TickResult:
    now: float
    enabled: bool
    spawned: list[str] = field(default_factory=list)
    decision: Decision = field(default_factory=Decision)


def _aware(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _fmt(timestamp: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


class Scheduler:
    """Runs ticks: hooks, decision, claims, spawns, requested runs, state."""

    def __init__(self, pm: CronmanPluginManager | None = None, clock: Clock | None = None) -> None:
        from cronman_core.datadir import get_data_dir

        self.pm = pm or get_plugin_manager()
        self.clock: Clock = clock or SystemClock()
        data_dir = get_data_dir()
        self.state = SchedulerState(data_dir)
        self.control = SchedulerControl(data_dir)
        self.zone_name = scheduler_zone_name()
        self.tz = get_zone(self.zone_name)

    def tick(self) -> TickResult:
        """One tick at the clock's now; tick hooks see it before the decision."""
        now = self.clock.time()
        result = TickResult(now=now, enabled=True)
        self.pm.notify("cronman_scheduler_tick", control=self.control, now=_aware(now))
        error: BaseException | None = None
        try:
            self._tick(result)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.pm.notify(
                "cronman_scheduler_tick_done",
                control=self.control,
                now=_aware(now),
                spawned=result.spawned,
                error=error,
            )
        return result

    def _tick(self, result: TickResult) -> None:
        now = result.now
        stored = self.state.read_watermark()
        cache, as_of = self.state.read_cache(self.zone_name)
        decision = decide(
            collect_entries(self.pm),
            now,
            self.tz,
            grace_of,
            watermark=stored.get("watermark"),
            cache=cache,
            cache_as_of=as_of,
        )
        result.decision = decision
        for message in decision.invalid.values():
            logger.error("skipping schedule entry: %s", message)
        for missed in decision.missed:
            logger.warning(
                "missed %s%d run(s) of %s (%s) from %s: older than its misfire grace",
                "" if missed.count < MISSED_COUNT_LIMIT else "at least ",
                missed.count,
                missed.entry.job_spec,
                missed.entry.time_spec.strip(),
                _fmt(missed.first, self.tz),
            )
        if decision.behind:
            logger.warning("clock is %.1f s behind the watermark: nothing fires until it catches up",
                           decision.behind)
        result.enabled = self.control.is_enabled()
        if result.enabled:
            self.control.resume_requested_workers()
            self._start_due(decision.due, result)
            self._start_requested(now, result)
        elif decision.due:
            logger.info("scheduler disabled: %d due run(s) not started", len(decision.due))
        pruned_at = self._maybe_prune(now, stored) if result.enabled else None
        if decision.next_fires is not None:
            self.state.write_cache(self.zone_name, decision.watermark, decision.next_fires)
        if decision.watermark != stored.get("watermark") or pruned_at:
            self.state.write_watermark(decision.watermark, pruned_at, reset=decision.reset)

    def _start_due(self, due: list[Due], result: TickResult) -> None:
        from cronman_core.worker import get_lock_backend

        if not due:
            return
        backend = get_lock_backend(self.pm)
        for run in due:
            ttl = grace_of(run.entry) + CLAIM_MARGIN
            # The newest fire time decides: whoever wins it runs, and that run
            # covers the older missed ones too. Claiming them afterwards keeps a
            # lagging tick (another host, an older watermark) from running them
            # again; a tick that loses the newest one starts nothing.
            if not backend.claim(claim_key(run.entry, run.fire_time), ttl):
                logger.debug("%s at %s already fired elsewhere", run.entry.job_spec, run.fire_time)
                continue
            won = 1 + sum(backend.claim(claim_key(run.entry, slot), ttl) for slot in run.slots[:-1])
            late = result.now - run.fire_time
            if self._spawn(run.entry.job_spec, result):
                logger.info(
                    "started %s for %s (%d slot(s), %.3f s after its time)",
                    run.entry.job_spec, _fmt(run.fire_time, self.tz), won, late,
                )

    def _start_requested(self, now: float, result: TickResult) -> None:
        if not self.pm.has_impl("cronman_requested_runs"):
            return
        for specs in self.pm.hook.cronman_requested_runs(now=_aware(now)):
            for spec in specs or ():
                if self._spawn(spec, result):
                    logger.info("started requested run %s", spec)

    def poll_requested(self) -> TickResult:
        """Between ticks (daemon): start requested runs only, if enabled."""
        result = TickResult(now=self.clock.time(), enabled=self.control.is_enabled())
        if result.enabled:
            self._start_requested(result.now, result)
        return result

    def _spawn(self, job_spec: str, result: TickResult) -> bool:
        """Start one worker; a failure is logged and reported, and the tick goes on."""
        from cronman_core.spawn import spawn_job

        try:
            spawn_job(job_spec)
        except CronmanError as exc:
            logger.error("cannot start %s: %s", job_spec, exc)
            return False
        except Exception as exc:
            logger.error("cannot start %s: %s: %s", job_spec, type(exc).__name__, exc)
            self.pm.notify(
                "cronman_report_error",
                exc=exc,
                context={"command": "cron_scheduler", "job_spec": job_spec},
                run=None,
            )
            return False
        result.spawned.append(job_spec)
        return True

    def _maybe_prune(self, now: float, stored: dict[str, Any]) -> float | None:
        from cronman_core.worker import get_lock_backend

        if now - float(stored.get("pruned_at") or 0.0) < PRUNE_INTERVAL:
            return None
        removed = get_lock_backend(self.pm).prune_claims()
        logger.debug("pruned %d expired fire claim(s)", removed)
        return now

    def upcoming(self, count: int) -> list[tuple[ScheduleEntry, list[int] | str]]:
        """The next ``count`` fire instants of every entry (or its error) from now."""
        now = self.clock.time()
        rows: list[tuple[ScheduleEntry, list[int] | str]] = []
        by_spec: dict[str, list[int] | str] = {}  # entries sharing a time spec share the work
        for entry in collect_entries(self.pm):
            key = normalize(entry.time_spec)
            if key not in by_spec:
                by_spec[key] = self._next_instants(entry.time_spec, now, count)
            rows.append((entry, by_spec[key]))
        return rows

    def _next_instants(self, time_spec: str, now: float, count: int) -> list[int] | str:
        try:
            expr = parse_cron(time_spec)
        except CronExprError as exc:
            return str(exc)
        instants: list[int] = []
        instant = expr.next_fire(now, self.tz)
        while instant is not None and len(instants) < count:
            instants.append(instant)
            instant = expr.next_fire(instant, self.tz)
        return instants

    def format_time(self, timestamp: float) -> str:
        return _fmt(timestamp, self.tz)


# -- daemon -------------------------------------------------------------------------


#: The daemon never sleeps longer than this, so a wall-clock step is seen at once.
MAX_SLEEP = 1.0


def run_daemon(scheduler: Scheduler, stop: threading.Event | None = None) -> None:
    """Tick at every whole minute of the scheduler's clock until ``stop`` is set.

    Every fire instant is a whole minute, so waking at each one is waking at
    every fire time. Sleeps are cut to :data:`MAX_SLEEP`, so a wall-clock
    step in either direction is noticed within a second; the watermark and
    the claims make a stepped clock neither repeat nor lose a fire. An
    exception in a tick is reported and the loop goes on; database
    connections are closed between ticks.
    """
    from django.db import connections

    stop = stop or threading.Event()
    clock = scheduler.clock
    poll = float(conf.get("CRONMAN_TASK_POLL_INTERVAL"))
    polling = scheduler.pm.has_impl("cronman_requested_runs")
    next_tick = clock.time()  # tick at start: catch up what fell while we were down
    next_poll = next_tick + poll
    while not stop.is_set():
        now = clock.time()
        if now >= next_tick or next_tick - now > 60.0:  # due, or the clock stepped back
            _guarded(scheduler, scheduler.tick)
            connections.close_all()
            next_tick = (math.floor(clock.time() / 60.0) + 1) * 60.0
            next_poll = clock.time() + poll
        elif polling and now >= next_poll:
            _guarded(scheduler, scheduler.poll_requested)
            connections.close_all()
            next_poll = clock.time() + poll
        wake = min(next_tick, next_poll) if polling else next_tick
        clock.wait(stop, min(wake - clock.time(), MAX_SLEEP))


def _guarded(scheduler: Scheduler, action: Callable[[], TickResult]) -> None:
    try:
        action()
    except Exception as exc:
        logger.error("scheduler tick failed: %s: %s", type(exc).__name__, exc,
                     exc_info=bool(conf.get("CRONMAN_DEBUG")))
        scheduler.pm.notify(
            "cronman_report_error", exc=exc, context={"command": "cron_scheduler daemon"}, run=None
        )


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM / SIGINT set ``stop``: the running tick finishes, then the loop ends."""

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("got signal %d: finishing the tick and exiting", signum)
        stop.set()

    with on_stop_signals(handler):
        yield
