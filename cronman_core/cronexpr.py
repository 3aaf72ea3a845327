"""Cron expressions and their fire instants in a time zone (pure, no I/O).

Five fields (minute hour day-of-month month day-of-week), any amount of
whitespace between them, ``*``, numbers, ``jan``-``dec`` / ``sun``-``sat``
names, ranges (wrapping ones such as ``fri-mon`` too), steps and lists, and
the aliases ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily``
``@midnight`` ``@hourly``. Day-of-month and day-of-week combine like
croniter (and so django-cronman): OR when both are restricted, else AND.

Fire instants are computed here rather than by croniter because the
scheduler needs exact wall-clock semantics across DST changes:

* a wall time in the repeated hour of a fall-back fires at its first
  occurrence only;
* a wall time in the skipped hour of a spring-forward fires once, at the
  jump (several such times of one expression coalesce into that instant).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cronman_core.errors import UsageError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, low, high, names mapped to values)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # most days each month can have
_ONE_MINUTE = dt.timedelta(minutes=1)
_ONE_DAY = dt.timedelta(days=1)
_UTC = dt.UTC
#: Search horizon: Feb 29 recurs within 8 years; a longer search means "never".
_MAX_YEARS = 9


class CronExprError(UsageError):
    """A time spec that is not a valid 5-field cron expression or alias."""


def normalize(time_spec: str) -> str:
    """The canonical text of a time spec: single spaces, aliases expanded."""
    text = " ".join(time_spec.split())
    return ALIASES.get(text.lower(), text)


def describe(time_spec: str) -> str:
    """``At 02:30, Monday through Friday``: a time spec in words, by ``cron-descriptor`` ("" if it cannot).

    cron-descriptor is maintained, pure Python and reads every form cronman
    accepts (names, ranges, steps, ``L``, ``W``, ``#``) in many languages;
    writing the same by hand would be a second cron grammar to keep in step.
    """
    from cron_descriptor import ExpressionDescriptor, Options  # local: only cron_scheduler next uses it

    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return str(ExpressionDescriptor(normalize(time_spec), options).get_description())
    except Exception:  # a spec it reads otherwise than cronman: no words rather than wrong ones
        return ""


def _value(text: str, field: int) -> int:
    name, low, high, names = _FIELDS[field]
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number in the {name} field")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range {low}-{high} in the {name} field")
    return value


def _parse_field(text: str, field: int) -> int:
    """The bitmask of the values ``text`` selects in ``field``."""
    name, low, high, _ = _FIELDS[field]
    mask = 0
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"bad step {step_text!r} in the {name} field")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field), _value(last, field)
        elif base:
            start = _value(base, field)
            end = high if slash else start
        else:
            raise ValueError(f"empty value in the {name} field")
        span = end - start if end >= start else end - start + (high - low + 1)
        for offset in range(0, span + 1, step):
            value = start + offset
            if value > high:
                value -= high - low + 1
            mask |= 1 << value
    if field == 4 and mask & (1 << 7):  # 7 is Sunday too
        mask = (mask | 1) & ~(1 << 7)
    return mask


def _next_bit(mask: int, start: int) -> int:
    """The smallest set bit of ``mask`` at or after ``start``, else -1."""
    rest = mask >> start
    if not rest:
        return -1
    return start + (rest & -rest).bit_length() - 1


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed cron expression: one bitmask per field."""

    text: str
    minutes: int
    hours: int
    days: int
    months: int
    weekdays: int
    day_or: bool
    #: False when no date can ever match (``0 0 30 2 *``).
    possible: bool

    def _day_matches(self, day: dt.date) -> bool:
        dom = bool(self.days >> day.day & 1)
        dow = bool(self.weekdays >> ((day.weekday() + 1) % 7) & 1)
        return (dom or dow) if self.day_or else (dom and dow)

    def next_wall(self, start: dt.datetime) -> dt.datetime | None:
        """The first naive wall time at or after ``start`` (whole minutes) that matches."""
        t = start.replace(second=0, microsecond=0)
        if t < start:
            t += _ONE_MINUTE
        if not self.possible:
            return None
        horizon = t.year + _MAX_YEARS
        while t.year <= horizon:
            if not self.months >> t.month & 1:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = dt.datetime(year, month, 1)
                continue
            if not self._day_matches(t.date()):
                t = dt.datetime(t.year, t.month, t.day) + _ONE_DAY
                continue
            hour = _next_bit(self.hours, t.hour)
            if hour < 0:
                t = dt.datetime(t.year, t.month, t.day) + _ONE_DAY
                continue
            minute = _next_bit(self.minutes, t.minute if hour == t.hour else 0)
            if minute < 0:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            return t.replace(hour=hour, minute=minute)
        return None

    def next_fire(self, after: float, tz: dt.tzinfo) -> int | None:
        """The first fire instant (epoch seconds) strictly after ``after``, or None if never."""
        wall = dt.datetime.fromtimestamp(after, tz).replace(tzinfo=None, second=0, microsecond=0)
        t = self.next_wall(wall)
        while t is not None:
            instant = wall_to_instant(t, tz)
            if instant > after:
                return instant
            t = self.next_wall(t + _ONE_MINUTE)
        return None

    def fires_between(self, after: float, until: float, tz: dt.tzinfo) -> list[int]:
        """Every fire instant in ``(after, until]``, ascending."""
        found: list[int] = []
        instant = self.next_fire(after, tz)
        while instant is not None and instant <= until:
            found.append(instant)
            instant = self.next_fire(instant, tz)
        return found


def wall_to_instant(wall: dt.datetime, tz: dt.tzinfo) -> int:
    """The fire instant of a naive wall time: its first occurrence, or the jump over a gap."""
    if tz is _UTC:
        return int(wall.replace(tzinfo=_UTC).timestamp())
    first = int(wall.replace(tzinfo=tz, fold=0).timestamp())
    second = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    if first <= second:  # ordinary (equal) or repeated hour (first occurrence wins)
        return first
    # In a gap fold=0 uses the offset before the jump and lands after it, fold=1
    # lands before it: the jump is the first second whose offset differs from
    # the one just before the gap.
    before = dt.datetime.fromtimestamp(second, tz).utcoffset()
    low, high = second, first
    while high - low > 1:
        mid = (low + high) // 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high


@functools.lru_cache(maxsize=8192)
def parse_cron(time_spec: str) -> CronExpr:
    """Parse a time spec; raise :class:`CronExprError` with one clear line."""
    text = normalize(time_spec)
    fields = text.split()
    if text.startswith("@"):
        raise CronExprError(f"invalid time spec {time_spec!r}: unknown alias {fields[0]!r}")
    if len(fields) != 5:
        raise CronExprError(
            f"invalid time spec {time_spec!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    try:
        masks = [_parse_field(part, index) for index, part in enumerate(fields)]
    except ValueError as exc:
        raise CronExprError(f"invalid time spec {time_spec!r}: {exc}") from None
    minutes, hours, days, months, weekdays = masks
    full_days, full_weekdays = (1 << 32) - 2, (1 << 7) - 1
    # croniter's rule: a field counts as unrestricted when it is "*", or when it
    # selects every value and the other day field contains a "*".
    dom_star = fields[2] == "*" or (days == full_days and "*" in fields[4])
    dow_star = fields[4] == "*" or (weekdays == full_weekdays and "*" in fields[2])
    day_or = not dom_star and not dow_star
    if dom_star:
        days = full_days
    if dow_star:
        weekdays = full_weekdays
    # Only a day-of-month restriction alone can be impossible (``0 0 30 2 *``).
    possible = not (dow_star and not dom_star) or any(
        months >> month & 1 and _next_bit(days, 1) <= _DAYS_IN_MONTH[month - 1]
        for month in range(1, 13)
    )
    return CronExpr(text, minutes, hours, days, months, weekdays, day_or, possible)


def get_zone(name: str) -> dt.tzinfo:
    """A time zone by IANA name (``UTC`` is the fast fixed zone)."""
    if name.upper() == "UTC":
        return _UTC
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:
        raise UsageError(f"unknown time zone {name!r}: {exc}") from None
