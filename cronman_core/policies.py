"""Run policies: per job class attribute, or per ``CRON_JOBS`` entry option.

A ``CRON_JOBS`` entry may be ``(time spec, job spec, options)``; each option
overrides the job class attribute of the same name (docs/scheduling.md,
"Run policies"). Both are validated by one function, :func:`check_options`,
so ``manage.py check`` (``cronman.E016``) and a worker at run time (one
line, exit 2) say the same thing.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from cronman_core.cronexpr import get_zone
from cronman_core.errors import CronmanError, UsageError
from cronman_core.job import cron_job_registry
from cronman_core.schedule import ScheduleEntry, job_name

#: How a scheduled run gets its entry's options: JSON in this variable of its environment.
RUN_OPTIONS_ENV = "CRONMAN_RUN_OPTIONS"
#: And the entry's next fire instant (a Unix time): retries never run past it.
NEXT_FIRE_ENV = "CRONMAN_NEXT_FIRE"

OVERLAP_CHOICES = ("skip", "replace", "wait")


@dataclass(frozen=True)
class RunPolicy:
    """What a run of a job (from one schedule entry) may do; defaults are django-cronman's behaviour."""

    #: IANA zone of the entry's time spec (None: ``CRONMAN_TIME_ZONE``).
    time_zone: str | None = None
    #: Seconds a missed fire is still run (None: ``CRONMAN_MISFIRE_GRACE``).
    misfire_grace: float | None = None
    #: Seconds; then the run's process group is stopped, status ``timeout``, exit 124.
    max_runtime: float | None = None
    #: When the lock is held: ``skip``, ``replace`` (stop the holder) or ``wait`` (up to ``overlap_wait``).
    overlap: str = "skip"
    overlap_wait: float = 60.0
    #: Seconds; each fire starts a deterministic amount in [0, jitter) after its time, never before.
    jitter: float = 0.0
    #: A failed run (exit 1) is run again up to this many times, ``retry_delay * 2**n`` seconds later.
    retries: int = 0
    retry_delay: float = 60.0
    #: After this many failed runs in a row (each attempt counts, a timeout too) the job is paused.
    pause_after_failures: int | None = None


OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RunPolicy))


def _seconds(minimum: float, *, above: bool = False, optional: bool = False) -> Callable[[Any], float | None]:
    bound = f"above {minimum:g}" if above else f"at least {minimum:g}"

    def convert(value: Any) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or value < minimum or (above and value == minimum):
            raise ValueError(f"a number of seconds {bound}" + (" or None" if optional else ""))
        return float(value)

    return convert


def _count(minimum: int, *, optional: bool = False) -> Callable[[Any], int | None]:
    def convert(value: Any) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"a whole number, at least {minimum}" + (" or None" if optional else ""))
        return value

    return convert


def _overlap(value: Any) -> str:
    if value not in OVERLAP_CHOICES:
        raise ValueError(" or ".join(repr(choice) for choice in OVERLAP_CHOICES))
    return str(value)


def _zone(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("an IANA time zone name such as 'America/New_York'")
    try:
        get_zone(value)
    except CronmanError:
        raise ValueError("an IANA time zone name such as 'America/New_York'") from None
    return value


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "time_zone": _zone,
    "misfire_grace": _seconds(0.0, optional=True),
    "max_runtime": _seconds(0.0, above=True, optional=True),
    "overlap": _overlap,
    "overlap_wait": _seconds(0.0),
    "jitter": _seconds(0.0),
    "retries": _count(0),
    "retry_delay": _seconds(0.0),
    "pause_after_failures": _count(1, optional=True),
}


def check_options(options: Any, where: str) -> dict[str, Any]:
    """``options`` validated and normalised; a :class:`UsageError` naming ``where`` and the option otherwise."""
    if not isinstance(options, Mapping):
        raise UsageError(f"{where}: options must be a dict, got {type(options).__name__}")
    checked = {}
    for name, value in options.items():
        if name not in _CONVERT:
            close = difflib.get_close_matches(str(name), OPTION_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(OPTION_NAMES)}"
            raise UsageError(f"{where}: unknown option {name!r}{hint}")
        try:
            checked[name] = _CONVERT[name](value)
        except ValueError as exc:
            raise UsageError(f"{where}: option {name!r} must be {exc}, got {value!r}") from None
    return checked


def policy_for(job_class: type, options: Mapping[str, Any] | None = None) -> RunPolicy:
    """The job class's attributes of the option names, overridden by ``options``, validated."""
    defaults = RunPolicy()
    values = {name: getattr(job_class, name, getattr(defaults, name)) for name in OPTION_NAMES}
    values = check_options(values, f"{job_class.__name__} class attributes")
    values.update(check_options(options or {}, "options"))
    return RunPolicy(**values)


def entry_jitter(entry: ScheduleEntry) -> float:
    """The jitter of a schedule entry: its option, else its job class's; 0 when either is unusable
    (such an entry is refused when it would start, with its reason)."""
    try:
        job_class = cron_job_registry.get(job_name(entry.job_spec))
        return policy_for(job_class, entry.option_dict).jitter
    except CronmanError:
        return 0.0


def options_from_env() -> dict[str, Any]:
    """The options a scheduled run got from its entry (empty for any other run)."""
    text = os.environ.get(RUN_OPTIONS_ENV)
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        raise UsageError(f"{RUN_OPTIONS_ENV} is not JSON: {text[:100]!r}") from None
    return check_options(options, RUN_OPTIONS_ENV)


__all__ = [
    "NEXT_FIRE_ENV", "OPTION_NAMES", "RUN_OPTIONS_ENV", "RunPolicy", "check_options", "entry_jitter",
    "options_from_env", "policy_for",
]
