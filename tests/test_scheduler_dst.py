"""DST: a daily job runs once per local day; repeated hour fires once, skipped hour at the jump.

Europe/London and America/New_York, spring-forward and fall-back, daily and
hourly jobs, with a tick every minute (daemon) and every 7 minutes (crontab).
croniter 7 fires a daily job twice on a fall-back day (01:30 EDT and 01:30 EST);
these tests pin that ours does not.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from cronman_core.cronexpr import parse_cron
from cronman_core.schedule import ScheduleEntry
from cronman_core.scheduler.decide import decide

UTC = dt.UTC

# zone, transition day, what the day does
TRANSITIONS = [
    ("America/New_York", dt.date(2026, 3, 8), "spring"),  # 02:00 EST -> 03:00 EDT
    ("America/New_York", dt.date(2026, 11, 1), "fall"),  # 02:00 EDT -> 01:00 EST
    ("Europe/London", dt.date(2026, 3, 29), "spring"),  # 01:00 GMT -> 02:00 BST
    ("Europe/London", dt.date(2026, 10, 25), "fall"),  # 02:00 BST -> 01:00 GMT
]
JOBS = {
    "daily_0130": "30 1 * * *",
    "daily_0230": "30 2 * * *",
    "daily_noon": "0 12 * * *",
    "hourly": "0 * * * *",
    "quarterly": "*/15 * * * *",
}


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


def simulate(zone: str, day: dt.date, step: int) -> dict[str, list[int]]:
    """Tick every ``step`` seconds over three local days around ``day``; slots fired per job."""
    tz = ZoneInfo(zone)
    entries = [ScheduleEntry(spec, name) for name, spec in JOBS.items()]
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tz).timestamp()
    end = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(), tz).timestamp()
    fired: dict[str, list[int]] = {name: [] for name in JOBS}
    watermark, cache, as_of = start - 1, None, None
    now = start - 1
    while now < end:
        now = min(now + step, end)
        decision = decide(entries, now, tz, lambda e: 3600.0, watermark=watermark,
                          cache=cache, cache_as_of=as_of)
        for due in decision.due:
            assert due.fire_time <= now
            fired[due.entry.job_spec].extend(due.slots)
        watermark = decision.watermark
        if decision.next_fires is not None:
            cache, as_of = decision.next_fires, decision.watermark
    return fired


def per_local_day(slots: list[int], zone: str) -> Counter[dt.date]:
    tz = ZoneInfo(zone)
    return Counter(dt.datetime.fromtimestamp(s, tz).date() for s in slots)


def local(slot: int, zone: str) -> str:
    return dt.datetime.fromtimestamp(slot, ZoneInfo(zone)).strftime("%H:%M%Z")


@pytest.mark.parametrize("step", [60, 7 * 60])
@pytest.mark.parametrize("zone, day, kind", TRANSITIONS)
def test_daily_jobs_run_exactly_once_per_local_day(zone: str, day: dt.date, kind: str, step: int) -> None:
    fired = simulate(zone, day, step)
    for name in ("daily_0130", "daily_0230", "daily_noon"):
        counts = per_local_day(fired[name], zone)
        assert sorted(counts) == [day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)], name
        assert set(counts.values()) == {1}, (name, counts)
        assert len(set(fired[name])) == len(fired[name]) == 3


@pytest.mark.parametrize("zone, day, kind", TRANSITIONS)
def test_transition_day_fire_times(zone: str, day: dt.date, kind: str) -> None:
    fired = simulate(zone, day, 60)
    on_day = {name: [local(s, zone) for s in slots if per_local_day([s], zone).get(day)]
              for name, slots in fired.items()}
    expected = {
        ("America/New_York", "spring"): {"daily_0130": ["01:30EST"], "daily_0230": ["03:00EDT"]},
        ("America/New_York", "fall"): {"daily_0130": ["01:30EDT"], "daily_0230": ["02:30EST"]},
        ("Europe/London", "spring"): {"daily_0130": ["02:00BST"], "daily_0230": ["02:30BST"]},
        ("Europe/London", "fall"): {"daily_0130": ["01:30BST"], "daily_0230": ["02:30GMT"]},
    }[(zone, kind)]
    for name, times in expected.items():
        assert on_day[name] == times, name
    # Hourly: every wall hour once; the skipped hour folds into the jump, the repeated one fires once.
    assert len(on_day["hourly"]) == (23 if kind == "spring" else 24)
    # 02:00-02:45 and 03:00 are one instant on a New York spring day (01:00-01:45 and 02:00 in London).
    assert len(on_day["quarterly"]) == (23 * 4 if kind == "spring" else 24 * 4)
    assert len(set(fired["hourly"])) == len(fired["hourly"])


def test_skipped_hour_times_coalesce_at_the_jump() -> None:
    tz = ZoneInfo("America/New_York")
    jump = utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    expr = parse_cron("*/15 2 * * *")
    assert expr.fires_between(jump - 3600, jump + 3600, tz) == [jump]


def test_repeated_hour_second_pass_does_not_fire_again() -> None:
    tz = ZoneInfo("Europe/London")
    second_pass = utc(2026, 10, 25, 1, 10)  # 01:10 GMT, the repeated 01:10
    assert parse_cron("30 1 * * *").next_fire(second_pass, tz) == utc(2026, 10, 26, 1, 30)
    # A tick that spans the whole repeated hour still fires 01:30 once (at its first occurrence).
    decision = decide([ScheduleEntry("30 1 * * *", "J")], utc(2026, 10, 25, 1, 59), tz,
                      lambda e: 7200.0, watermark=utc(2026, 10, 24, 23, 59))
    assert [d.slots for d in decision.due] == [(utc(2026, 10, 25, 0, 30),)]
