"""One scheduler tick: tick hooks, the decision, fire claims, spawns, requested runs, state."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cronman_core import conf
from cronman_core.control import HostControl, resume
from cronman_core.cronexpr import get_zone
from cronman_core.datadir import get_data_dir
from cronman_core.errors import CronmanError, UsageError
from cronman_core.locks import FIRE_CLAIMS_ENV, FireClaims, LockBackend
from cronman_core.plugins import CronmanPluginManager, get_plugin_manager
from cronman_core.policies import NEXT_FIRE_ENV, RUN_OPTIONS_ENV, check_options, entry_jitter
from cronman_core.schedule import ScheduleEntry, grace_of, job_name
from cronman_core.scheduler.decide import (
    MISSED_COUNT_LIMIT,
    Decision,
    Due,
    claim_key,
    decide,
    entry_key,
    expression,
    held_until,
)
from cronman_core.scheduler.state import SchedulerState, Watermark
from cronman_core.spawn import spawn_job
from cronman_core.spawners import SCHEDULED_FIRE_ENV, RequestedRun, ScheduledFire
from cronman_core.switch import SchedulerSwitch

logger = logging.getLogger("cronman.scheduler")

#: Claims live this long past the grace window (clock skew between hosts).
CLAIM_MARGIN = 3600.0
#: A host clock this far off the lock store's is logged at each tick.
CLOCK_SKEW_WARNING = 60.0
#: Clock differences between hosts allowed for when telling a pending claim from a confirmed one.
CLOCK_SLACK = 5.0
#: Expired claims are pruned at most this often.
PRUNE_INTERVAL = 600.0


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
    #: Just before the earliest fire whose spawn failed: the watermark stays there, so the
    #: next tick decides that fire again (released, it is retried; the others stay claimed).
    retry_from: float | None = None
    #: Job spec → why its spawn failed, for entries whose fires wait for a retry within their grace
    #: (kept in the scheduler state: a fire missed after that is missed with that reason).
    spawn_failures: dict[str, str] = field(default_factory=dict)

    def retry_before(self, slot: float) -> None:
        """Keep the watermark just before ``slot``: the next tick decides that fire again."""
        retry = slot - 0.001
        self.retry_from = retry if self.retry_from is None else min(self.retry_from, retry)

    @property
    def wake_at(self) -> float | None:
        """When a jittered fire is due (before the next whole minute, maybe): a daemon ticks then."""
        return self.decision.wake_at


def _never() -> bool:
    return False


def _aware(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _fmt(timestamp: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


class Scheduler:
    """Runs ticks: hooks, decision, claims, spawns, requested runs, state."""

    def __init__(
        self, pm: CronmanPluginManager | None = None, clock: Clock | None = None, *, long_lived: bool = False
    ) -> None:
        self.pm = pm or get_plugin_manager()
        #: A daemon's scheduler: its spawner may keep a warm process (``cronman_spawner``).
        self.long_lived = long_lived
        self.clock: Clock = clock or SystemClock()
        data_dir = get_data_dir()
        self.state = SchedulerState(data_dir)
        self.switch = SchedulerSwitch(data_dir)
        #: What tick hooks get: the switch and this host's workers.
        self.control = HostControl(self.switch)
        self.zone_name = conf.time_zone_name()
        self.tz = get_zone(self.zone_name)
        #: Whether this process is stopping (the daemon sets it: SIGTERM): a tick then starts no more due runs
        #: and keeps its watermark before them, so that stopping takes one spawn, not a whole tick's.
        self.stopping: Callable[[], bool] = _never
        #: Claim keys of fires reported missed because the lock store lost its data (reported once each).
        self._lost_reported: set[str] = set()
        self._lost_epoch: str | None = None
        #: The first watermark while it cannot be stored (see :meth:`_first_watermark`).
        self._start: float | None = None

    def tick(self) -> TickResult:
        """One tick at the clock's now; tick hooks see it before the decision."""
        now = self._now()
        result = TickResult(now=now, enabled=True)
        self.pm.scheduler_tick(self.control, _aware(now))
        error: BaseException | None = None
        try:
            self._tick(result)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.pm.scheduler_tick_done(self.control, _aware(now), result.spawned, error)
        return result

    def _now(self) -> float:
        """This tick's instant: the shared lock store's clock if it has one, else this host's."""
        local = self.clock.time()
        try:
            shared = self.pm.lock_backend().time()
        except CronmanError as exc:
            logger.debug("no lock store clock this tick (%s): using this host's", exc)
            return local  # unreachable: claiming says so, with one line
        if shared is None:
            return local
        if abs(local - shared) > CLOCK_SKEW_WARNING:
            logger.warning("this host's clock is %+.0f s off the lock store's: deciding on the store's",
                           local - shared)
        return shared

    def _tick(self, result: TickResult) -> None:
        now = result.now
        stored = self.state.read_watermark()
        if stored.value is None:
            stored = self._first_watermark(now, stored)
        cache, as_of = self.state.read_cache(self.zone_name)
        decision = decide(
            self.pm.schedule(),
            now,
            self.tz,
            grace_of,
            watermark=stored.value,
            cache=cache,
            cache_as_of=as_of,
            jitter_of=entry_jitter,
        )
        result.decision = decision
        for message in decision.invalid.values():
            logger.error("skipping schedule entry: %s", message)
        failures = self.state.read_spawn_failures()
        result.spawn_failures = dict(failures)
        for missed in decision.missed:
            # A fire whose spawns kept failing until its grace ran out was missed for that reason.
            why = result.spawn_failures.pop(missed.entry.job_spec, None)
            reason = f"spawn failed: {why}" if why else "older than its misfire grace"
            logger.warning(
                "missed %s%d run(s) of %s (%s) from %s: %s",
                "" if missed.count < MISSED_COUNT_LIMIT else "at least ",
                missed.count,
                missed.entry.job_spec,
                missed.entry.time_spec.strip(),
                _fmt(missed.first, self.tz),
                reason,
            )
            self._report_missed(missed.entry, missed.first, missed.count, reason)
        if decision.behind:
            logger.warning("clock is %.1f s behind the watermark: nothing fires until it catches up",
                           decision.behind)
        result.enabled = self.switch.is_enabled()
        if result.enabled:
            self._resume_requested_workers()
            self._start_due(decision.due, result)
            self._start_requested(now, result)
        elif decision.due:
            logger.info("scheduler disabled: %d due run(s) not started", len(decision.due))
            if self.pm.lock_backend().in_data_dir:  # shared claims: another host may run them
                for run in decision.due:
                    self._report_missed(run.entry, run.slots[0], len(run.slots), "scheduler disabled")
        if result.spawn_failures != failures:
            self.state.write_spawn_failures(result.spawn_failures)
        pruned_at = self._maybe_prune(now, stored) if result.enabled else None
        watermark = decision.watermark
        held = [at for at in (result.retry_from, decision.hold_from) if at is not None]
        if held:
            watermark = min(watermark, *held)  # the cache, relative to now, is not kept
        elif decision.next_fires is not None:
            self.state.write_cache(self.zone_name, decision.watermark, decision.next_fires)
        if watermark != stored.value or pruned_at:
            self.state.write_watermark(watermark, pruned_at, reset=decision.reset)

    def begin(self) -> None:
        """A daemon starts: with no watermark yet, store the first one now, before the spawner gets ready.

        A daemon killed while it got ready (a prefork template takes seconds on
        a loaded host) would otherwise leave none, and the next one's first
        tick would start over from its own minute.
        """
        stored = self.state.read_watermark(report=False)
        if stored.value is None:
            self._first_watermark(self._now(), stored)

    def _first_watermark(self, now: float, stored: Watermark) -> Watermark:
        """No watermark stored (a first run, or one set aside): start one minute before the first tick that
        found none, and store that before any claim.

        Otherwise a first tick that failed before its end (a full or read-only
        data dir) would leave no watermark, and a later tick would start one
        minute before *its* now: the fires in between would be neither run nor
        reported missed. A store that fails is logged; the value is kept in
        memory, and every tick tries again until one succeeds.
        """
        start = now - 60.0 if self._start is None else self._start
        try:
            self.state.write_watermark(start, None)
        except OSError as exc:
            logger.warning("cannot store the scheduler's first watermark (%s): ticking on from %s, kept in memory",
                           exc, _fmt(start, self.tz))
            self._start = start
        else:
            self._start = None  # stored: a watermark removed later by hand starts over from its tick
        return Watermark(start, stored.pruned_at)

    def _resume_requested_workers(self) -> None:
        """Resume suspended workers if ``enable --workers`` asked for it."""
        if self.switch.take_resume_request():
            for outcome in resume():
                logger.info("resumed %s", outcome)

    def _held_back_by_data_loss(self, backend: LockBackend, due: list[Due]) -> list[Due]:
        """The due runs, without the fires a lock store that lost its data may have forgotten.

        A new store epoch means its claims are gone: a fire from before the
        epoch began may have run (here or on another host), so it is missed
        (a warning) rather than risked twice. Fires since then are claimed as
        usual. This holds at every tick, not only the first that sees the new
        epoch: a watermark held back (a failed spawn of another entry) has
        later ticks decide those older fires again, and their claims are gone.
        """
        epoch = backend.epoch()
        if epoch is None:
            return due
        seen, lost_before = self.state.read_epoch()
        if seen != epoch.id:
            lost_before = None if seen is None else epoch.since  # None: the first look, nothing to compare with
            self.state.write_epoch(epoch.id, lost_before)
        if lost_before is None:
            return due
        if epoch.id != self._lost_epoch:
            self._lost_epoch, self._lost_reported = epoch.id, set()
        kept: list[Due] = []
        for run in due:
            slots = tuple(slot for slot in run.slots if slot >= lost_before)
            lost = [slot for slot in run.slots[:len(run.slots) - len(slots)]
                    if claim_key(run.entry, slot) not in self._lost_reported]
            if lost:
                logger.warning(
                    "not starting %s for %s: the lock store lost its data (claims gone), so another host "
                    "may have run it; missed", run.entry.job_spec, _fmt(lost[-1], self.tz))
                self._report_missed(run.entry, lost[0], len(lost),
                                    "the lock store lost its data: another host may have run it")
                self._lost_reported.update(claim_key(run.entry, slot) for slot in lost)
            if slots:
                kept.append(Due(run.entry, slots))
        return kept

    def _report_missed(self, entry: ScheduleEntry, first: int, count: int, reason: str) -> None:
        self.pm.fires_missed(entry.job_spec, _aware(first), count, reason, claim_key(entry, first))

    def _start_due(self, due: list[Due], result: TickResult) -> None:
        if not due:
            return
        backend = self.pm.lock_backend()
        due = self._held_back_by_data_loss(backend, due)
        pending = conf.get("CRONMAN_CLAIM_PENDING")
        try:
            paused = self.pm.pause_store().paused()
        except CronmanError as exc:  # pauses are a convenience: the schedule runs on without them
            logger.error("cannot read the paused jobs (%s): starting due runs as if none were paused", exc)
            paused = {}
        for index, run in enumerate(due):
            if self.stopping():
                logger.info("stopping: %d due run(s) not started, left to the next tick", len(due) - index)
                for left in due[index:]:
                    result.retry_before(left.slots[0])
                break
            pause = paused.get(job_name(run.entry.job_spec))
            if pause is not None:
                logger.info("not starting %s: %s", run.entry.job_spec, pause.describe())
                self._report_missed(run.entry, run.slots[0], len(run.slots), f"paused: {pause.reason}")
                continue
            try:
                # A spec (or options) that can never start must not claim (and so lose) its fire.
                self.pm.resolve(run.entry.job_spec)
                options = check_options(run.entry.option_dict, f"{run.entry.source} options")
            except UsageError as exc:
                logger.error("not starting %r: %s", run.entry.job_spec, exc)
                continue
            ttl = grace_of(run.entry) + CLAIM_MARGIN
            token = uuid.uuid4().hex
            hold = min(pending, ttl)
            # The newest fire time decides: whoever wins it runs, and that run
            # covers the older missed ones too. Claiming them afterwards keeps a
            # lagging tick (another host, an older watermark) from running them
            # again; a tick that loses the newest one starts nothing. Claims are
            # pending until the spawn succeeded (see FireClaims).
            newest = claim_key(run.entry, run.fire_time)
            if not backend.claim(newest, hold, token):
                if self._pending_elsewhere(backend, newest, result.now, hold, ttl):
                    # Its tick may have died before the spawn: keep the watermark before this fire, so a
                    # tick after the claim lapses runs it (or finds it confirmed by its worker's start).
                    logger.info("%s: its %s fire is claimed but not started yet: looked at again next tick",
                                run.entry.job_spec, _fmt(run.fire_time, self.tz))
                    result.retry_before(run.slots[0])
                else:
                    logger.debug("%s at %s already fired elsewhere", run.entry.job_spec, run.fire_time)
                continue
            # An older fire claimed already ran (a tick killed after its spawns, before its watermark): this
            # run covers, and says it covers, only the fires it claimed.
            older: list[int] = []
            for slot in run.slots[:-1]:
                key = claim_key(run.entry, slot)
                if backend.claim(key, hold, token):
                    older.append(slot)
                elif self._pending_elsewhere(backend, key, result.now, hold, ttl):
                    result.retry_before(slot)  # a later tick runs it once its claim lapses (see above)
            claims = FireClaims(token, ttl, (newest, *(claim_key(run.entry, slot) for slot in older)))
            run = Due(run.entry, (*older, run.fire_time))
            late = result.now - run.fire_time
            requested = RequestedRun(run.entry.job_spec, env=self._run_env(run, claims, options))
            error = self._spawn(requested, result)
            if error is not None:
                result.spawn_failures[run.entry.job_spec] = error
                self._release(backend, claims, run)
                result.retry_before(run.slots[0])
                continue
            result.spawn_failures.pop(run.entry.job_spec, None)
            try:
                claims.confirm(backend)
            except (CronmanError, OSError) as exc:  # the worker confirms them too as it starts
                logger.warning("cannot confirm the fire claims of %s: %s", run.entry.job_spec, exc)
            caught_up = len(run.slots) - 1
            logger.info(
                "started %s for its %s fire%s (%.3f s after that time)",
                run.entry.job_spec, _fmt(run.fire_time, self.tz),
                f", catching up {caught_up} earlier fire(s) from {_fmt(run.slots[0], self.tz)} in this one run"
                if caught_up else "",
                late,
            )

    @staticmethod
    def _pending_elsewhere(backend: LockBackend, key: str, now: float, hold: float, ttl: float) -> bool:
        """Whether ``key``'s claim is still pending: it lapses within the pending ttl ``hold``, which a final
        claim (``ttl``) never does. A backend that cannot tell, or settings that make both alike: final."""
        if hold + CLOCK_SLACK >= ttl:
            return False
        try:
            expiry = backend.claim_expiry(key)
        except CronmanError:
            return False
        return expiry is not None and expiry - now <= hold + CLOCK_SLACK

    def _run_env(self, run: Due, claims: FireClaims, options: dict[str, object]) -> dict[str, str]:
        """What a scheduled run learns from its tick: its fire claims, its entry's options, the next fire,
        and the fires it covers with the moment it may no longer start (a queue expires it then)."""
        # As the decision: a fire is on time within its own minute whatever its grace, and its jitter adds on.
        grace = max(grace_of(run.entry), 60.0) + entry_jitter(run.entry)
        fire = ScheduledFire(run.slots[0], len(run.slots), claim_key(run.entry, run.slots[0]), run.fire_time + grace,
                             run.fire_time)
        env = {FIRE_CLAIMS_ENV: claims.encode(), SCHEDULED_FIRE_ENV: fire.encode()}
        if options:
            env[RUN_OPTIONS_ENV] = json.dumps(options)
        expr, tz = expression(entry_key(run.entry), self.tz)
        next_fire = expr.next_fire(run.fire_time, tz)
        if next_fire is not None:
            env[NEXT_FIRE_ENV] = str(next_fire)
        return env

    def _release(self, backend: LockBackend, claims: FireClaims, run: Due) -> None:
        """A spawn failed: give its fires back, so the next tick retries them within their grace."""
        try:
            claims.release(backend)
        except CronmanError as exc:
            # They lapse unconfirmed: a tick after that retries the fire all the same.
            logger.error("cannot release the fire claims of %s (they lapse in %.0f s): %s",
                         run.entry.job_spec, conf.get("CRONMAN_CLAIM_PENDING"), exc)
            return
        logger.warning("released the fire claims of %s for %s: the next tick retries within its grace",
                       run.entry.job_spec, _fmt(run.fire_time, self.tz))

    def _start_requested(self, now: float, result: TickResult) -> None:
        if not self.pm.has_impl("cronman_requested_runs"):
            return
        for run in self.pm.requested_runs(_aware(now)):
            if self._spawn(run, result) is None:
                logger.info("started requested run %s", run.job_spec)

    def look_at_store_epoch(self) -> None:
        """Ask the lock store for its epoch between ticks (daemon).

        A store that lost its data starts its new epoch at the first such
        look, a few seconds after the loss rather than at the next tick, so
        the fires due in between are not counted as possibly run elsewhere.
        """
        try:
            self.pm.lock_backend().epoch()
        except CronmanError as exc:
            logger.debug("no look at the lock store's epoch: %s", exc)

    def poll_requested(self) -> TickResult:
        """Between ticks (daemon): start requested runs only, if enabled."""
        result = TickResult(now=self.clock.time(), enabled=self.switch.is_enabled())
        if result.enabled:
            self._start_requested(result.now, result)
        return result

    def _spawn(self, run: RequestedRun, result: TickResult) -> str | None:
        """Start one worker; a failure is logged and reported, and the tick goes on. Returns why it failed."""
        job_spec = run.job_spec
        try:
            spawn_job(job_spec, resumed=run.resumed, env=run.env, long_lived=self.long_lived)
        except CronmanError as exc:
            logger.error("cannot start %s: %s", job_spec, exc)
            return str(exc)[:300]
        except Exception as exc:
            logger.error("cannot start %s: %s: %s", job_spec, type(exc).__name__, exc)
            self.pm.report_error(exc, {"command": "cron_scheduler", "job_spec": job_spec})
            return f"{type(exc).__name__}: {exc}"[:300]
        result.spawned.append(job_spec)
        return None

    def _maybe_prune(self, now: float, stored: Watermark) -> float | None:
        if now - stored.pruned_at < PRUNE_INTERVAL:
            return None
        removed = self.pm.lock_backend().prune_claims()
        logger.debug("pruned %d expired fire claim(s)", removed)
        return now

    def reload(self) -> None:
        """Have the spawner get ready anew (daemon start, SIGHUP): a warm process is replaced."""
        self.pm.spawner(long_lived=self.long_lived).reload()

    def schedule_reload(self) -> None:
        """Have the schedule's sources read themselves anew (SIGHUP: ``CRON_JOBS`` re-imported)."""
        self.pm.schedule_reload()

    def schedule_version(self) -> tuple[str, ...]:
        """The schedule sources' change tokens: the daemon ticks at once when they change."""
        return self.pm.schedule_version()

    def close(self) -> None:
        """Let the spawner go of what it keeps warm (daemon exit); running workers go on."""
        self.pm.spawner(long_lived=self.long_lived).close()

    def entry_count(self) -> int:
        """How many entries the schedule has now (0 when a source cannot be read: its tick says why)."""
        try:
            return sum(1 for _entry in self.pm.schedule())
        except CronmanError:
            return 0

    def describe(self) -> str:
        """One line of what this scheduler runs with: entries, zone, data dir, lock backend, spawner."""
        entries = len(list(self.pm.schedule()))
        backend = self.pm.lock_backend().describe()
        spawner = type(self.pm.spawner(long_lived=self.long_lived)).__name__
        return (f"{entries} schedule entries, time zone {self.zone_name}, data dir {self.state.dir.parent}, "
                f"lock backend {backend}, spawner {spawner}")

    def held_until(self) -> float | None:
        """See :func:`~cronman_core.scheduler.decide.held_until`, for this scheduler's state and clock."""
        return held_until(self.state.read_watermark().value, self.clock.time())

    def upcoming(self, count: int) -> list[tuple[ScheduleEntry, list[int] | str]]:
        """The next ``count`` fire instants of every entry (or its error) from now."""
        now = self.clock.time()
        rows: list[tuple[ScheduleEntry, list[int] | str]] = []
        by_spec: dict[str, list[int] | str] = {}  # entries sharing a time spec share the work
        for entry in self.pm.schedule():
            try:
                key = entry_key(entry)
            except CronmanError as exc:
                rows.append((entry, str(exc)))
                continue
            if key not in by_spec:
                by_spec[key] = self._next_instants(key, now, count)
            rows.append((entry, by_spec[key]))
        return rows

    def _next_instants(self, key: str, now: float, count: int) -> list[int] | str:
        try:
            expr, tz = expression(key, self.tz)
        except CronmanError as exc:
            return str(exc)
        instants: list[int] = []
        instant = expr.next_fire(now, tz)
        while instant is not None and len(instants) < count:
            instants.append(instant)
            instant = expr.next_fire(instant, tz)
        return instants

    def format_time(self, timestamp: float) -> str:
        return _fmt(timestamp, self.tz)
