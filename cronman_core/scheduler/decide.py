"""The pure decision: entries, the persisted state and an injected ``now`` in, runs to start out.

Its rules (docs/scheduling.md):

* every occurrence in ``(watermark, now]`` is considered, never one after
  ``now``: a job never starts early;
* occurrences older than the entry's misfire grace are missed (logged), the
  others coalesce into one run per entry; an occurrence within its own
  minute is never missed (``misfire_grace = 0``: only within that minute);
* with no watermark yet it is taken as one minute before ``now``;
* an entry's fires at or before its ``not_before`` (an entry edited while
  the scheduler runs) are not its own: neither run nor missed;
* a clock behind the watermark fires nothing until it catches up;
* an entry with a ``jitter`` starts at its fire instant plus a deterministic
  offset in ``[0, jitter)`` (:func:`jitter_offset`), never before: until then
  the watermark is held before its fires and ``wake_at`` says when to look
  again. Its grace counts from that later instant.

The state keeps each time spec's next fire instant, so a tick only
computes the expressions that fire, are new, or whose cache is stale.
Exactly-once per (entry, fire instant) across overlapping ticks and hosts
comes from claims in the lock backend (:func:`claim_key`), not from the state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cronman_core.cronexpr import CronExpr, get_zone, normalize, parse_cron
from cronman_core.errors import CronmanError
from cronman_core.schedule import ScheduleEntry

logger = logging.getLogger("cronman.scheduler")

#: A clock this far behind the watermark is taken as a corrected clock, not a step.
MAX_CLOCK_BEHIND = 86400.0
#: A clock this far behind the watermark is shown by ``cron_scheduler next`` and ``check``.
CLOCK_BEHIND_NOTICE = 60.0
#: Missed occurrences counted for the log line before saying "or more".
MISSED_COUNT_LIMIT = 100


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
    #: Just before the earliest fire still waiting for its jittered instant (None: none waits);
    #: the watermark may not pass it.
    hold_from: float | None = None
    #: The earliest jittered instant still to come: a daemon ticks then.
    wake_at: float | None = None

    def hold(self, first_slot: int, start: float) -> None:
        """Fires from ``first_slot`` wait for their jittered instant ``start``."""
        hold = first_slot - 0.001
        self.hold_from = hold if self.hold_from is None else min(self.hold_from, hold)
        self.wake_at = start if self.wake_at is None else min(self.wake_at, start)


def jitter_offset(job_spec: str, slot: int, jitter: float) -> float:
    """A deterministic delay in ``[0, jitter)`` for one fire: the same on every host and every tick."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.blake2b(f"{job_spec}\0{slot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 * jitter


def held_until(watermark: float | None, now: float) -> float | None:
    """The watermark, when a clock behind it (stepped back or corrected) keeps fires back.

    Fire times up to the watermark already ran, so none of them fires again
    and nothing fires before the clock passes it. None when the clock is not
    noticeably behind, or so far behind that the next tick resets the watermark.
    """
    if watermark is None or not CLOCK_BEHIND_NOTICE < watermark - now <= MAX_CLOCK_BEHIND:
        return None
    return watermark


#: A cache key of an entry with its own time zone: ``CRON_TZ=<zone> <time spec>`` (cronie's spelling).
ZONE_PREFIX = "CRON_TZ="


def zone_option(entry: ScheduleEntry) -> str | None:
    """The entry's own ``time_zone`` option (None: the scheduler's zone)."""
    for name, value in entry.options:
        if name == "time_zone" and value is not None:
            return str(value)
    return None


def entry_key(entry: ScheduleEntry) -> str:
    """The normal form of an entry's time spec, with its own zone when it has one: what the cache keys."""
    zone = zone_option(entry)
    spec = normalize(entry.time_spec)
    return spec if zone is None else f"{ZONE_PREFIX}{zone} {spec}"


def expression(key: str, tz: dt.tzinfo) -> tuple[CronExpr, dt.tzinfo]:
    """The cron expression of a cache key and the zone it is read in (``tz`` unless the key names one)."""
    if key.startswith(ZONE_PREFIX):
        zone, _, spec = key[len(ZONE_PREFIX):].partition(" ")
        return parse_cron(spec), get_zone(zone)
    return parse_cron(key), tz


def decide(
    entries: Iterable[ScheduleEntry],
    now: float,
    tz: dt.tzinfo,
    grace_of: Callable[[ScheduleEntry], float],
    watermark: float | None = None,
    cache: dict[str, int | None] | None = None,
    cache_as_of: float | None = None,
    jitter_of: Callable[[ScheduleEntry], float] | None = None,
) -> Decision:
    """What to start at ``now``, given the watermark and the next-fire cache.

    ``jitter_of`` gives an entry's jitter (seconds); it is asked only for
    entries with fires up to ``now``.

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
        key: str | None
        if entry.options:  # rare: an entry may have its own zone
            key = entry_key(entry)
        else:
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
                first = _first_after(decision, entry, key, tz, watermark)
                if first is None and entry.time_spec in decision.invalid:  # a bad time spec, or an unknown zone
                    continue
                changed = True
            resolved[key] = first
        if first is not None and entry.not_before is not None and first <= entry.not_before:
            first = _first_after(decision, entry, key, tz, entry.not_before)  # rare: an entry edited lately
        if first is None or first > now:
            continue
        jitter = jitter_of(entry) if jitter_of is not None else 0.0
        _due_or_missed(decision, entry, key, first, now, tz, grace_of(entry) + jitter, jitter)
    # Advance the cache past now for what was due; drop specs no longer used.
    for key, first in resolved.items():
        if first is not None and first <= now:
            expr, expr_tz = expression(key, tz)
            resolved[key] = expr.next_fire(now, expr_tz)
            changed = True
    if changed or len(resolved) != len(cache):
        decision.next_fires = resolved
    return decision


def _first_after(decision: Decision, entry: ScheduleEntry, key: str, tz: dt.tzinfo, instant: float) -> int | None:
    """The entry's first fire after ``instant`` (None: never, or a bad zone, noted in ``decision``)."""
    try:
        expr, expr_tz = expression(key, tz)
        return expr.next_fire(instant, expr_tz)
    except CronmanError as exc:
        decision.invalid[entry.time_spec] = str(exc)
        return None


def _due_or_missed(
    decision: Decision,
    entry: ScheduleEntry,
    key: str,
    first: int,
    now: float,
    tz: dt.tzinfo,
    grace: float,
    jitter: float = 0.0,
) -> None:
    expr, tz = expression(key, tz)
    # Older than the grace is missed; but a fire is never missed within its own
    # minute, so grace 0 means "only within the minute" (a tick is always a little late).
    cutoff = min(now - grace, math.floor(now / 60.0) * 60.0)
    after = first - 1
    if first < cutoff:
        count, instant = 0, first  # type: int, int | None
        while instant is not None and instant < cutoff and count < MISSED_COUNT_LIMIT:
            count += 1
            instant = expr.next_fire(instant, tz)
        decision.missed.append(Missed(entry, first, count))
        after = max(after, math.ceil(cutoff) - 1)
    slots = expr.fires_between(after, now, tz)
    if not slots:
        return
    start = slots[-1] + jitter_offset(entry.job_spec, slots[-1], jitter)
    if start > now:
        decision.hold(slots[0], start)
    else:
        decision.due.append(Due(entry, tuple(slots)))


def claim_key(entry: ScheduleEntry, slot: int) -> str:
    """The lock-backend claim of one (entry, fire instant): the same on every host."""
    digest = hashlib.blake2b(
        f"{normalize(entry.time_spec)}\0{entry.job_spec}".encode(), digest_size=8
    ).hexdigest()
    return f"fire-{digest}-{slot}"
