"""The due decision with a fake clock: never early, catch-up, coalescing, grace, caching."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import threading
import time

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cronman_plugins.pidfile
from cronman_core import hookimpl
from cronman_core.plugins import CronmanPluginManager
from cronman_core.schedule import ScheduleEntry
from cronman_core.scheduler import tick
from cronman_core.scheduler.daemon import run_daemon
from cronman_core.scheduler.decide import MAX_CLOCK_BEHIND, claim_key, decide
from cronman_core.scheduler.tick import Scheduler
from cronman_core.spawners import SCHEDULED_FIRE_ENV
from tests.support.schedule import ScheduleSource

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC
MINUTE = 60


def at(hour: int, minute: int, second: float = 0) -> float:
    return T0 + (hour - 10) * 3600 + minute * 60 + second


def entry(time_spec: str, job_spec: str = "Noop", **kwargs: object) -> ScheduleEntry:
    return ScheduleEntry(time_spec, job_spec, **kwargs)  # type: ignore[arg-type]


def grace(seconds: float):
    return lambda e: seconds


# -- never early, first tick, catch-up, grace --------------------------------------


def test_never_early_and_lateness_never_negative() -> None:
    entries = [entry("5 10 * * *")]
    early = decide(entries, at(10, 4, 59.999), UTC, grace(3600), watermark=at(10, 4))
    assert early.due == []
    on_time = decide(entries, at(10, 5), UTC, grace(3600), watermark=early.watermark)
    assert [d.slots for d in on_time.due] == [(at(10, 5),)]
    assert at(10, 5) - on_time.due[0].fire_time >= 0


def test_first_tick_takes_watermark_one_minute_back() -> None:
    entries = [entry("5 10 * * *"), entry("4 10 * * *", "Hello:x")]
    decision = decide(entries, at(10, 5, 30), UTC, grace(3600), watermark=None)
    assert [(d.entry.job_spec, d.slots) for d in decision.due] == [("Noop", (at(10, 5),))]
    assert decision.watermark == at(10, 5, 30)


def test_catch_up_coalesces_missed_slots_into_one_run() -> None:
    decision = decide([entry("*/5 * * * *")], at(10, 31), UTC, grace(3600), watermark=at(10, 0))
    (due,) = decision.due
    assert due.slots == tuple(at(10, m) for m in range(5, 31, 5))
    assert due.fire_time == at(10, 30)
    assert decision.missed == []


def test_an_entry_never_catches_up_fires_from_before_its_not_before() -> None:
    # the scheduler was down from 10:00; the entry was saved at 10:17:30 (dbschedule)
    fresh = entry("*/5 * * * *", not_before=at(10, 17, 30))
    old = entry("*/5 * * * *", "Hello:x")
    decision = decide([old, fresh], at(10, 31), UTC, grace(3600), watermark=at(10, 0))
    due = {d.entry.job_spec: d.slots for d in decision.due}
    assert due["Noop"] == (at(10, 20), at(10, 25), at(10, 30))  # neither run nor missed before 10:17:30
    assert due["Hello:x"] == tuple(at(10, m) for m in range(5, 31, 5))
    assert decision.missed == []
    # with a grace that drops some: what is missed starts after not_before too
    late = decide([fresh], at(12, 2), UTC, grace(3600), watermark=at(10, 0))
    (missed,) = late.missed
    assert (missed.first, missed.count) == (at(10, 20), 9)  # 10:20 .. 11:00
    # saved exactly at a fire instant: that instant is not its own
    at_fire = decide([entry("*/5 * * * *", not_before=at(10, 30))], at(10, 31), UTC, grace(3600),
                     watermark=at(10, 29))
    assert at_fire.due == []


def test_occurrences_older_than_grace_are_missed_not_run() -> None:
    decision = decide([entry("*/5 * * * *")], at(12, 2), UTC, grace(3600), watermark=at(10, 0))
    (due,) = decision.due
    assert due.slots[0] == at(11, 5)  # 12:02 - 3600 s = 11:02, so 11:05 is the oldest kept
    assert due.slots[-1] == at(12, 0)
    (missed,) = decision.missed
    assert missed.first == at(10, 5)
    assert missed.count == 12  # 10:05 .. 11:00


def test_grace_zero_runs_only_within_the_fire_times_own_minute() -> None:
    late = decide([entry("0 * * * *")], at(11, 0, 23.5), UTC, grace(0), watermark=at(10, 59, 50))
    assert [d.slots for d in late.due] == [(at(11, 0),)]  # 23.5 s late, still its minute
    next_minute = decide([entry("0 * * * *")], at(11, 1, 0.2), UTC, grace(0), watermark=at(10, 59, 50))
    assert next_minute.due == [] and [m.first for m in next_minute.missed] == [at(11, 0)]


def test_all_missed_gives_no_run() -> None:
    decision = decide([entry("0 8 * * *")], at(10, 30), UTC, grace(600), watermark=at(7, 0))
    assert decision.due == []
    assert [m.first for m in decision.missed] == [at(8, 0)]


def test_clock_behind_watermark_fires_nothing_until_it_catches_up() -> None:
    entries = [entry("* * * * *")]
    behind = decide(entries, at(10, 0), UTC, grace(3600), watermark=at(10, 30))
    assert behind.due == [] and behind.behind == 1800 and behind.watermark == at(10, 30)
    caught_up = decide(entries, at(10, 31), UTC, grace(3600), watermark=behind.watermark)
    assert [d.slots for d in caught_up.due] == [(at(10, 31),)]


def test_clock_far_behind_is_taken_as_corrected() -> None:
    now = at(10, 0, 30)
    decision = decide([entry("* * * * *")], now, UTC, grace(3600), watermark=now + MAX_CLOCK_BEHIND + 60)
    assert decision.reset and decision.watermark == now
    assert [d.slots for d in decision.due] == [(at(10, 0),)]


def test_invalid_time_spec_is_reported_and_others_still_fire() -> None:
    decision = decide([entry("61 * * * *"), entry("* * * * *")], at(10, 1), UTC, grace(60),
                      watermark=at(10, 0))
    assert list(decision.invalid) == ["61 * * * *"]
    assert [d.entry.time_spec for d in decision.due] == ["* * * * *"]


def test_entries_sharing_a_time_spec_all_fire() -> None:
    entries = [entry("*/5 * * * *", "Noop"), entry(" */5 * * * * ", "Hello:x")]
    decision = decide(entries, at(10, 5), UTC, grace(60), watermark=at(10, 4))
    assert [d.entry.job_spec for d in decision.due] == ["Noop", "Hello:x"]


def test_cache_is_reused_and_only_changed_specs_are_recomputed() -> None:
    entries = [entry("0 * * * *"), entry("30 * * * *")]
    first = decide(entries, at(10, 0, 10), UTC, grace(60), watermark=at(10, 0))
    assert first.next_fires == {"0 * * * *": at(11, 0), "30 * * * *": at(10, 30)}
    quiet = decide(entries, at(10, 1), UTC, grace(60), watermark=at(10, 0, 10),
                   cache=first.next_fires, cache_as_of=first.watermark)
    assert quiet.due == [] and quiet.next_fires is None  # nothing to rewrite
    # A stale cache (computed after the watermark) is ignored, not trusted.
    stale = decide(entries, at(10, 30), UTC, grace(60), watermark=at(10, 29),
                   cache={"0 * * * *": at(11, 0), "30 * * * *": at(11, 30)}, cache_as_of=at(10, 40))
    assert [d.slots for d in stale.due] == [(at(10, 30),)]


def test_claim_keys_are_per_entry_and_slot_and_ignore_spacing() -> None:
    a = claim_key(entry("*/5 * * * *", "Noop"), 100)
    assert a == claim_key(entry(" */5  * * * *", "Noop"), 100)
    assert a != claim_key(entry("*/5 * * * *", "Noop"), 160)
    assert a != claim_key(entry("*/5 * * * *", "Hello:x"), 100)


# -- the property: every covered occurrence within grace fires exactly once, none early ----

_FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


@st.composite
def cron_field(draw: st.DrawFn, index: int) -> str:
    low, high = _FIELD_BOUNDS[index]
    kind = draw(st.sampled_from(["*", "step", "value", "range", "list"]))
    if kind == "*":
        return "*"
    if kind == "step":
        return f"*/{draw(st.integers(1, max(1, (high - low) // 2)))}"
    a = draw(st.integers(low, high))
    if kind == "value":
        return str(a)
    if kind == "range":
        b = draw(st.integers(a, high))
        if b == a:  # croniter 7 expands "a-a" to "*" (a bug); ours means "a"
            return str(a)
        step = draw(st.integers(1, 5))
        return f"{a}-{b}" + (f"/{step}" if step > 1 else "")
    values = draw(st.lists(st.integers(low, high), min_size=2, max_size=4, unique=True))
    return ",".join(map(str, values))


@st.composite
def cron_expression(draw: st.DrawFn) -> str:
    fields = [draw(cron_field(i)) for i in range(5)]
    if fields[0] == "*" and fields[1] == "*":
        fields[0] = str(draw(st.integers(0, 59)))  # keep the number of occurrences reasonable
    return " ".join(fields)


def croniter_between(text: str, after: float, until: float) -> list[int]:
    it = croniter(text, dt.datetime.fromtimestamp(after, UTC))
    found = []
    while True:
        try:
            instant = it.get_next(float)
        except CroniterBadDateError:  # a date that never exists (Feb 30): ours says None
            return found
        if instant > until:
            return found
        found.append(int(instant))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    exprs=st.lists(cron_expression(), min_size=1, max_size=3),
    gaps=st.lists(st.integers(1, 4 * 3600), min_size=1, max_size=25),
    grace_seconds=st.sampled_from([0, 60, 600, 3600]),
    start_offset=st.integers(0, 7 * 86400),
    use_cache=st.booleans(),
)
def test_property_fires_each_covered_occurrence_within_grace_once(
    exprs: list[str], gaps: list[int], grace_seconds: int, start_offset: int, use_cache: bool
) -> None:
    entries = [entry(text, f"Job{i}") for i, text in enumerate(exprs)]
    now = T0 + start_offset + 0.5
    watermark: float | None = None
    cache: dict | None = None
    as_of: float | None = None
    claims: set[tuple[str, int]] = set()
    expected: set[tuple[str, int]] = set()
    for gap in [0, *gaps]:
        now += gap
        covered_from = now - 60 if watermark is None else watermark
        decision = decide(entries, now, UTC, grace(grace_seconds), watermark=watermark,
                          cache=cache if use_cache else None, cache_as_of=as_of)
        for due in decision.due:
            assert due.slots == tuple(sorted(due.slots))
            for slot in due.slots:
                assert slot <= now, "fired early"
                key = (due.entry.job_spec, slot)
                assert key not in claims, "fired twice"
                claims.add(key)
        for e in entries:
            for instant in croniter_between(e.time_spec, covered_from, now):
                if now - instant <= grace_seconds or now - instant < 60:  # grace 0: its own minute
                    expected.add((e.job_spec, instant))
        watermark = decision.watermark
        if decision.next_fires is not None:
            cache, as_of = decision.next_fires, decision.watermark
    assert claims == expected


# -- the daemon loop ----------------------------------------------------------------------


class _FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.now += max(seconds, 0.001)
        return event.is_set()


class _FlakyScheduler:
    """Stands in for Scheduler: its second tick raises, the daemon must go on."""

    def __init__(self, stop: threading.Event) -> None:
        self.clock = _FakeClock(at(10, 0, 30))
        self.stop = stop
        self.ticks: list[float] = []
        self.looks: list[float] = []
        self.reported: list[BaseException] = []
        self.pm = self
        self.calls: list[str] = []
        self.reload_event = threading.Event()

    def has_impl(self, name: str) -> bool:
        return False

    def begin(self) -> None:
        self.calls.append("begin")

    def reload(self) -> None:
        self.calls.append("reload")

    def schedule_reload(self) -> None:
        self.calls.append("reread")

    def entry_count(self) -> int:
        return 0

    def close(self) -> None:
        self.calls.append("close")

    def report_error(self, exc: BaseException, context: dict[str, object], run: object = None) -> None:
        self.reported.append(exc)

    def look_at_store_epoch(self) -> None:
        self.looks.append(self.clock.now)

    def tick(self) -> None:
        self.ticks.append(self.clock.now)
        self.calls.append("tick")
        if len(self.ticks) == 3:
            self.reload_event.set()  # as SIGHUP does
        if len(self.ticks) == 2:
            raise RuntimeError("tick broke")
        if len(self.ticks) == 4:
            self.stop.set()


def test_daemon_ticks_at_every_minute_and_survives_a_failing_tick() -> None:
    stop = threading.Event()
    scheduler = _FlakyScheduler(stop)
    run_daemon(scheduler, stop, scheduler.reload_event)  # type: ignore[arg-type]
    # the spawner gets ready at start and on SIGHUP (within the second), and lets go at the end;
    # SIGHUP has the schedule read anew first, and a tick on it at once
    assert scheduler.calls == ["begin", "reload", "tick", "tick", "tick", "reread", "reload", "tick", "close"]
    assert scheduler.ticks[0] == at(10, 0, 30)  # at start, to catch up
    assert [t - at(10, 0) for t in scheduler.ticks[1:]] == pytest.approx([60, 120, 121], abs=0.01)
    assert [str(e) for e in scheduler.reported] == ["tick broke"]
    # between ticks it looks at the lock store's epoch every 5 s, never in the second before a tick
    gaps = [b - a for a, b in zip(scheduler.looks, scheduler.looks[1:], strict=False)]
    assert len(scheduler.looks) > 14 and all(4.9 < gap < 7.1 for gap in gaps), gaps
    assert all((look - at(10, 0)) % 60 < 59 for look in scheduler.looks)


class _ChangingSchedule(_FlakyScheduler):
    """Its schedule version changes at given instants; it stops the loop at 10:05."""

    def __init__(self, stop: threading.Event, changes: list[float]) -> None:
        super().__init__(stop)
        self.changes = changes
        self.versions: list[float] = []

    def has_impl(self, name: str) -> bool:
        return name == "cronman_schedule_version"

    def schedule_version(self) -> tuple[str, ...]:
        self.versions.append(self.clock.now)
        return (str(sum(1 for change in self.changes if change <= self.clock.now)),)

    def tick(self) -> None:
        self.ticks.append(self.clock.now)
        if self.clock.now >= at(10, 5):
            self.stop.set()


def test_daemon_ticks_within_the_schedule_poll_interval_of_a_change(settings) -> None:
    settings.CRONMAN_SCHEDULE_POLL_INTERVAL = 10.0
    stop = threading.Event()
    changes = [at(10, 1, 17), at(10, 3, 42)]
    scheduler = _ChangingSchedule(stop, changes)
    run_daemon(scheduler, stop)  # type: ignore[arg-type]
    gaps = [b - a for a, b in zip(scheduler.versions, scheduler.versions[1:], strict=False)]
    assert all(9.9 < gap < 10.1 for gap in gaps), gaps
    extra = [t for t in scheduler.ticks[1:] if (t - at(10, 0)) % 60 > 0.01]
    assert len(extra) == 2  # a tick for each change, besides the whole minutes
    assert all(0 < tick - change <= 10.0 for tick, change in zip(extra, changes, strict=True))


class _SteppingClock(_FakeClock):
    """A fake clock whose wall time jumps at given instants, and that stops the loop at ``end``."""

    def __init__(self, start: float, steps: dict[float, float], end: float) -> None:
        super().__init__(start)
        self.steps = steps
        self.end = end

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.now += max(seconds, 0.001)
        for when, to in list(self.steps.items()):
            if self.now >= when:
                self.now = to
                del self.steps[when]
        if self.now >= self.end:
            event.set()
        return event.is_set()


def _pidfile_manager(settings, data_dir, jobs, *plugins) -> CronmanPluginManager:
    """A plugin manager with the pidfile backend, ``jobs`` as the schedule, and ``plugins``."""
    import cronman_plugins.pidfile

    settings.CRONMAN_DATA_DIR = str(data_dir)
    settings.CRONMAN_TIME_ZONE = "UTC"
    pm = CronmanPluginManager()
    pm.register(ScheduleSource(jobs))
    pm.register(cronman_plugins.pidfile)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def test_daemon_with_clock_steps_neither_repeats_nor_loses_a_fire(data_dir, settings, monkeypatch) -> None:
    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop")])
    clock = _SteppingClock(
        at(10, 0, 30),
        {at(10, 3, 10): at(9, 58, 10), at(10, 7, 30): at(10, 20, 5)},  # back 5 min, then forward 13
        end=at(10, 21, 30),
    )
    spawned: list[float] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(clock.now))
    stop = threading.Event()
    run_daemon(Scheduler(pm=pm, clock=clock), stop)
    minutes = [at(10, m) for m in (1, 2, 3, 4, 5, 6, 7)]
    assert spawned == [at(10, 0, 30), *minutes, at(10, 20, 5), at(10, 21)]
    claims = sorted(p.name for p in (data_dir / "claims").glob("*.claim"))
    assert len(claims) == 22  # every minute 10:00 .. 10:21 claimed once, 10:08-10:20 in one run


class _Requests:
    """A task source: every call returns one request; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def cronman_requested_runs(self, now: dt.datetime) -> list[str]:
        self.calls += 1
        return [f"Echo:request{self.calls}"]


def test_requested_runs_at_each_tick_polled_by_the_daemon_and_not_while_disabled(
    data_dir, settings, monkeypatch
) -> None:
    settings.CRONMAN_TASK_POLL_INTERVAL = 5
    requests = _Requests()
    pm = _pidfile_manager(settings, data_dir, [("0 0 1 1 *", "Noop")], requests)
    spawned: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(spec))
    clock = _SteppingClock(at(10, 0, 30), {}, end=at(10, 1, 30))
    scheduler = Scheduler(pm=pm, clock=clock)
    run_daemon(scheduler, threading.Event())
    # Ticks at 10:00:30 and 10:01:00; polls every 5 s after each, until 10:01:30.
    assert spawned == [f"Echo:request{n}" for n in range(1, requests.calls + 1)]
    assert requests.calls == 12  # 2 ticks + 5 polls after each
    scheduler.control.disable()
    calls = requests.calls
    assert scheduler.tick().spawned == [] and requests.calls == calls


def test_catch_up_runs_only_for_the_tick_that_wins_the_newest_fire_time(data_dir, settings, monkeypatch) -> None:
    """Two hosts coalescing different missed sets never both run: the newest slot decides."""
    import cronman_plugins.pidfile
    source = entry("* * * * *", "Noop")
    pm = _pidfile_manager(settings, data_dir, [(source.time_spec, source.job_spec)])
    spawned: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(spec))
    backend = cronman_plugins.pidfile.PidfileBackend(data_dir)

    # another host already ran the newest slot (10:05): this tick covers 10:01-10:05 and runs nothing
    assert backend.claim(claim_key(source, int(at(10, 5))), 3600)
    clock = _FakeClock(at(10, 0, 30))
    scheduler = Scheduler(pm=pm, clock=clock)
    scheduler.tick()  # first tick: watermark 09:59:30, fires 10:00
    assert spawned == ["Noop"]
    clock.now = at(10, 5, 10)
    scheduler.tick()
    assert spawned == ["Noop"]

    # an older slot claimed elsewhere does not stop the run for the newest one
    assert backend.claim(claim_key(source, int(at(10, 7))), 3600)
    clock.now = at(10, 8, 10)
    scheduler.tick()
    assert spawned == ["Noop", "Noop"]
    assert not backend.claim(claim_key(source, int(at(10, 6))), 3600)  # claimed by the run at 10:08


def test_a_run_covers_and_reports_only_the_fires_it_claimed(data_dir, settings, monkeypatch, caplog) -> None:
    """A tick killed after its spawns, before its watermark: the next tick's run does not count that fire again."""
    import cronman_plugins.pidfile
    source = entry("* * * * *", "Noop")
    pm = _pidfile_manager(settings, data_dir, [(source.time_spec, source.job_spec)])
    fires: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, env=None, **run: fires.append(env[tick.SCHEDULED_FIRE_ENV]))
    backend = cronman_plugins.pidfile.PidfileBackend(data_dir)
    clock = _FakeClock(at(10, 0, 30))
    scheduler = Scheduler(pm=pm, clock=clock)
    scheduler.tick()  # watermark 10:00:30
    assert backend.claim(claim_key(source, int(at(10, 1))), 3600, "killed-tick")  # it ran the 10:01 fire
    clock.now = at(10, 3, 5)  # 10:01, 10:02 and 10:03 are due here; 10:01 was claimed
    caplog.clear()
    with caplog.at_level("INFO", logger="cronman.scheduler"):
        scheduler.tick()
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("started Noop")]
    assert len(started) == 1 and "catching up 1 earlier fire(s) from 2026-03-02 10:02:00 UTC" in started[0], started
    fire = json.loads(fires[-1])
    assert (fire["first"], fire["count"]) == (at(10, 2), 2)


def test_a_fire_claimed_by_a_tick_that_died_before_its_spawn_runs_once_its_claim_lapses(
    data_dir, settings, monkeypatch, caplog
) -> None:
    """A tick SIGKILLed between claim and spawn leaves a pending claim: later ticks keep their watermark
    before that fire until the claim lapses, then run it, once (before, the next tick's watermark passed it)."""
    import cronman_plugins.pidfile
    source = entry("* * * * *", "Noop")
    pm = _pidfile_manager(settings, data_dir, [(source.time_spec, source.job_spec)])
    settings.CRONMAN_CLAIM_PENDING = 120
    fires: list[tuple[int, int]] = []

    def spawn(spec, env=None, **run):
        fire = json.loads(env[tick.SCHEDULED_FIRE_ENV])
        fires.append((fire["first"], fire["count"]))

    monkeypatch.setattr(tick, "spawn_job", spawn)
    backend = cronman_plugins.pidfile.PidfileBackend(data_dir)
    minute = int(time.time() // 60 * 60)  # real time: the pidfile backend's claims expire on it
    clock = _FakeClock(minute - 150)
    scheduler = Scheduler(pm=pm, clock=clock)
    scheduler.tick()  # watermark minute - 150
    fires.clear()
    # the dead tick's pending claims: the older fire's, and (below) a newest one
    assert backend.claim(claim_key(source, minute - 120), 1.5, "dead-tick")
    clock.now = minute - 55
    caplog.clear()
    scheduler.tick()
    assert fires == [(minute - 60, 1)]  # the newest fire runs; the pending one is not said to be covered
    assert scheduler.state.read_watermark().value == pytest.approx(minute - 120.001)

    time.sleep(1.6)  # the dead tick's claim lapses
    assert backend.claim(claim_key(source, minute), 1.5, "another-dead-tick")
    clock.now = minute + 5
    scheduler.tick()  # the newest fire is pending elsewhere: nothing runs, the watermark stays
    assert fires == [(minute - 60, 1)]
    assert "Noop: its " in caplog.text and "fire is claimed but not started yet" in caplog.text
    assert scheduler.state.read_watermark().value == pytest.approx(minute - 120.001)

    time.sleep(1.6)
    clock.now = minute + 10
    scheduler.tick()  # both lapsed: one run covers minute - 120 and minute (minute - 60 ran)
    assert fires == [(minute - 60, 1), (minute - 120, 2)]
    assert scheduler.state.read_watermark().value == pytest.approx(minute + 10)
    clock.now = minute + 15
    scheduler.tick()
    assert len(fires) == 2


# -- hostile schedules and clocks ------------------------------------------------------------


def test_a_spec_that_cannot_start_claims_nothing_and_the_others_run(data_dir, settings, monkeypatch, caplog) -> None:
    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop:\x00x"), ("* * * * *", "Nope"),
                                               ("* * * * *", "Noop")])
    spawned: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(spec))
    Scheduler(pm=pm, clock=_FakeClock(at(10, 0, 30))).tick()
    assert spawned == ["Noop"]
    assert len(list((data_dir / "claims").glob("*.claim"))) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "not starting 'Noop:\\x00x': invalid job spec 'Noop:\\x00x': control character '\\x00' at characters 5-6",
        "not starting 'Nope': unknown cron job 'Nope' (did you mean 'Noop'?)",
    ]


def test_a_clock_behind_the_watermark_is_shown_by_next_and_check(data_dir, settings, monkeypatch) -> None:
    from django.core.management import call_command

    from cronman_core.checks import check_clock

    pm = _pidfile_manager(settings, data_dir, [("*/30 * * * *", "Noop")])
    spawned: list[str] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(spec))
    clock = _FakeClock(at(13, 0, 30))  # three hours fast
    Scheduler(pm=pm, clock=clock).tick()
    assert spawned == ["Noop"]
    clock.now = at(10, 0, 10)  # corrected
    corrected = Scheduler(pm=pm, clock=clock)
    assert corrected.held_until() == at(13, 0, 30)
    corrected.tick()
    assert spawned == ["Noop"]  # 10:00 .. 13:00 already ran: nothing fires twice

    monkeypatch.setattr(tick, "SystemClock", lambda: clock)
    monkeypatch.setattr(tick, "get_plugin_manager", lambda: pm)
    (warning,) = check_clock()
    assert warning.id == "cronman.W001"
    assert warning.msg.startswith("the clock is 10820 s behind the scheduler's last tick (2026-03-02 13:00:30 UTC)")
    assert "watermark.json" in warning.hint
    out = io.StringIO()
    call_command("cron_scheduler", "next", "8", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("Held until 2026-03-02 13:00:30 UTC: the clock is 10820 s behind")
    assert lines[3:] == [f"  2026-03-02 {t} UTC  (already ran)" for t in
                         ("10:30:00", "11:00:00", "11:30:00", "12:00:00", "12:30:00", "13:00:00")] + [
                        "  2026-03-02 13:30:00 UTC", "  2026-03-02 14:00:00 UTC"]

    clock.now = at(13, 30, 5)  # the clock passes the watermark: firing goes on
    corrected.tick()
    assert spawned == ["Noop", "Noop"] and check_clock() == []


# -- a failed spawn, a tick that dies between claim and spawn ----------------------------------


def test_a_failed_spawn_gives_its_fire_back_and_the_next_tick_runs_it(data_dir, settings, monkeypatch) -> None:
    from cronman_core.errors import CronmanError

    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop"), ("* * * * *", "Hello:x")])
    clock = _FakeClock(at(10, 0, 30))
    spawned: list[tuple[str, float, str]] = []
    broken = {"Noop"}

    def spawn(spec: str, **run: object) -> None:
        if spec in broken:
            raise CronmanError("broker down")
        spawned.append((spec, clock.now, run["env"]["CRONMAN_FIRE_CLAIMS"]))

    monkeypatch.setattr(tick, "spawn_job", spawn)
    scheduler = Scheduler(pm=pm, clock=clock)
    scheduler.tick()
    assert [s[:2] for s in spawned] == [("Hello:x", at(10, 0, 30))]
    broken.clear()
    clock.now = at(10, 1, 30)
    scheduler.tick()  # Noop for 10:00 and 10:01 in one run; Hello:x's 10:00 stays claimed, not run again
    assert [s[:2] for s in spawned] == [("Hello:x", at(10, 0, 30)), ("Noop", at(10, 1, 30)),
                                        ("Hello:x", at(10, 1, 30))]
    token, ttl, keys = json.loads(spawned[1][2])
    assert keys == [claim_key(entry("* * * * *", "Noop"), int(at(10, m))) for m in (1, 0)]
    backend = cronman_plugins.pidfile.PidfileBackend(data_dir)
    for job, minute in itertools.product(("Noop", "Hello:x"), (0, 1)):
        assert not backend.claim(claim_key(entry("* * * * *", job), int(at(10, minute))), 60, "other")


def test_a_claim_whose_tick_died_before_the_spawn_lapses_and_is_retried(data_dir, settings, monkeypatch) -> None:
    settings.CRONMAN_CLAIM_PENDING = 0.3
    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop")])
    clock = _FakeClock(at(10, 0, 30))
    spawned: list[float] = []

    def die(spec: str, **run: object) -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL: no handler of the tick runs

    monkeypatch.setattr(tick, "spawn_job", die)
    with pytest.raises(KeyboardInterrupt):
        Scheduler(pm=pm, clock=clock).tick()
    time.sleep(0.4)  # the unconfirmed claim lapses
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(clock.now))
    clock.now = at(10, 0, 50)
    Scheduler(pm=pm, clock=clock).tick()  # a restarted scheduler, the same minute
    assert spawned == [at(10, 0, 50)]
    # confirmed by the successful spawn: it no longer lapses
    time.sleep(0.4)
    backend = cronman_plugins.pidfile.PidfileBackend(data_dir)
    assert not backend.claim(claim_key(entry("* * * * *", "Noop"), int(at(10, 0))), 60, "other")


def test_a_first_tick_that_cannot_store_its_state_loses_no_later_fire(data_dir, settings, monkeypatch) -> None:
    # The daemon soak's case: the first tick's spawns ran, then its data dir was full (no watermark stored);
    # a tick two minutes later must still run the minute in between, not start over from its own minute.
    from cronman_core.scheduler.state import SchedulerState

    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop")])
    clock = _FakeClock(at(10, 0, 30))
    spawned: list[tuple[float, str]] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: spawned.append(
        (clock.now, json.loads(run["env"][SCHEDULED_FIRE_ENV])["first"])))
    real_write = SchedulerState.write_watermark
    full = {"on": True}

    def write_watermark(self, *args, **kwargs):
        if full["on"]:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(SchedulerState, "write_watermark", write_watermark)
    scheduler = Scheduler(pm=pm, clock=clock)
    with pytest.raises(OSError):
        scheduler.tick()  # 10:00 spawned, then the end of the tick fails
    clock.now = at(10, 1, 5)
    with pytest.raises(OSError):
        scheduler.tick()  # still full: 10:01 spawned from the watermark kept in memory
    full["on"] = False
    clock.now = at(10, 3, 0)
    scheduler.tick()  # 10:02 and 10:03: one run, nothing lost
    assert [(when, first) for when, first in spawned] == [
        (at(10, 0, 30), at(10, 0)), (at(10, 1, 5), at(10, 1)), (at(10, 3), at(10, 2))]
    assert SchedulerState(data_dir).read_watermark().value == at(10, 3)
    # stored once: a later tick of a restarted scheduler goes on from there
    clock.now = at(10, 4, 1)
    Scheduler(pm=pm, clock=clock).tick()
    assert spawned[-1] == (at(10, 4, 1), at(10, 4))


def test_a_stopping_daemon_starts_no_further_due_run_and_the_next_start_runs_them(
        data_dir, settings, monkeypatch) -> None:
    # SIGTERM during a long tick (200 entries, a loaded host): the daemon stops after the spawn under way, and
    # the fires it did not start run at the next start, once each.
    jobs = [("* * * * *", f"Hello:e{i}") for i in range(6)]
    pm = _pidfile_manager(settings, data_dir, jobs)
    clock = _FakeClock(at(10, 0, 30))
    stop = threading.Event()
    spawned: list[tuple[str, float]] = []

    def spawn(spec: str, **run: object) -> None:
        spawned.append((spec, clock.now))
        if len(spawned) == 2:
            stop.set()  # as the SIGTERM handler does, mid-tick

    monkeypatch.setattr(tick, "spawn_job", spawn)
    run_daemon(Scheduler(pm=pm, clock=clock), stop)
    assert [spec for spec, _ in spawned] == ["Hello:e0", "Hello:e1"]
    clock.now = at(10, 0, 50)
    Scheduler(pm=pm, clock=clock).tick()  # the restarted daemon's first tick
    assert sorted(spec for spec, _ in spawned) == [f"Hello:e{i}" for i in range(6)]
    clock.now = at(10, 1, 0)
    Scheduler(pm=pm, clock=clock).tick()
    assert len(spawned) == 12  # 10:01 once each; 10:00 not again


def test_a_daemon_killed_while_it_gets_ready_has_stored_its_first_watermark(data_dir, settings, monkeypatch) -> None:
    # A prefork template takes seconds to get ready on a loaded host: a daemon SIGKILLed then never ticked, and the
    # next daemon's first tick started over from its own minute, losing the fires since the first start.
    pm = _pidfile_manager(settings, data_dir, [("* * * * *", "Noop")])
    clock = _FakeClock(at(10, 0, 30))
    scheduler = Scheduler(pm=pm, clock=clock)

    def killed() -> None:
        raise KeyboardInterrupt  # stands in for SIGKILL: nothing after it runs

    monkeypatch.setattr(scheduler, "reload", killed)
    with pytest.raises(KeyboardInterrupt):
        run_daemon(scheduler, threading.Event())
    fires: list[tuple[int, int]] = []
    monkeypatch.setattr(tick, "spawn_job", lambda spec, **run: fires.append(
        tuple(json.loads(run["env"][SCHEDULED_FIRE_ENV])[k] for k in ("first", "count"))))
    clock.now = at(10, 2, 10)
    Scheduler(pm=pm, clock=clock).tick()  # the next daemon's first tick
    assert fires == [(at(10, 0), 3)]  # 10:00, 10:01 and 10:02 in one run
