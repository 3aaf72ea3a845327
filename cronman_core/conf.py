"""Settings: declared with a type and range, read lazily, validated on every read.

Every ``CRONMAN_*`` setting is declared once, by the core here or by the
plugin that reads it (:func:`declare` at its module's top), with its default
and a :class:`Kind` that checks and normalises the configured value. A bad
value is then one :class:`~cronman_core.errors.SettingError` line (exit 2)
at the read that needs it, and ``manage.py check`` reports every declared
setting at once (``cronman.E003``) from :func:`problems`. Values are read
on each use, not cached, so ``override_settings`` and per-test settings work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from cronman_core.errors import SettingError


@dataclass(frozen=True)
class Kind:
    """What a setting accepts: ``expect`` for messages, and ``convert``, which normalises a value
    or raises ValueError or TypeError (its message, if any, is added to the error line)."""

    expect: str
    convert: Callable[[Any], Any]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError
    return float(value)


def seconds(minimum: float = 0.0, *, strict: bool = False, unit: str = "seconds") -> Kind:
    """A finite number (of ``unit``), at least ``minimum`` (above it with ``strict``), as a float."""

    def convert(value: Any) -> float:
        number = _number(value)
        if number < minimum or (strict and number == minimum):
            raise ValueError
        return number

    bound = f"above {minimum:g}" if strict else f"at least {minimum:g}"
    return Kind(f"a number of {unit} {bound}", convert)


def count(minimum: int = 0, maximum: int | None = None) -> Kind:
    """A whole number in ``[minimum, maximum]``."""

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError
        return value

    bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
    return Kind(f"a whole number {bound}", convert)


def _flag(value: Any) -> bool:
    # A string such as "False" from an environment variable is truthy: refused, not guessed.
    if value in (0, 1) and isinstance(value, bool | int):
        return bool(value)
    raise TypeError


FLAG = Kind("True or False", _flag)


def text(*, optional: bool = True, empty: bool = False) -> Kind:
    """A string (``None`` too when ``optional``; ``""`` only when ``empty``)."""

    def convert(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not value and not empty) or "\0" in value:
            raise TypeError
        return value

    return Kind(("a string" if empty else "a non-empty string") + (" or None" if optional else ""), convert)


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise TypeError
    if not all(isinstance(item, str) and item for item in value):
        raise TypeError
    return tuple(value)


NAMES = Kind("a list or tuple of non-empty strings (not one string)", _names)


def _path(value: Any) -> str | None:
    if value is None:
        return None
    path = os.fspath(value)  # TypeError for anything that is not str or PathLike
    if not isinstance(path, str) or not path or "\0" in path:
        raise TypeError
    return path


PATH = Kind("a path (str or pathlib.Path) or None", _path)


@dataclass(frozen=True)
class Setting:
    """A declared setting; ``secret`` keeps its value out of every message."""

    name: str
    default: Any
    kind: Kind
    secret: bool = False

    def message(self, value: Any, reason: str = "") -> str:
        shown = f"a {type(value).__name__}" if self.secret else repr(value)
        return f"{self.name} must be {self.kind.expect}, got {shown}" + (f" ({reason})" if reason else "")

    def hint(self) -> str:
        default = "unset" if self.secret else repr(self.default)
        return f"Set {self.name} to {self.kind.expect}, or remove it for the default ({default})."


_declared: dict[str, Setting] = {}


def declare(*declared: Setting) -> None:
    """Declare settings (idempotent: a re-imported module declares them again)."""
    for setting in declared:
        _declared[setting.name] = setting


def declared() -> list[Setting]:
    """Every declared setting: the core's, and those of the plugin modules imported so far."""
    return list(_declared.values())


declare(
    Setting("CRONMAN_DATA_DIR", None, PATH),
    Setting("CRONMAN_DEBUG", False, FLAG),
    Setting("CRONMAN_PLUGINS", (), NAMES),
    Setting("CRONMAN_DISABLED_PLUGINS", (), NAMES),
    Setting("CRONMAN_JOBS_MODULE", None, text()),
    Setting("CRONMAN_MISFIRE_GRACE", 3600.0, seconds()),
    Setting("CRONMAN_TIME_ZONE", None, text()),
    Setting("CRONMAN_HOSTNAME", None, text()),
    Setting("CRONMAN_KILL_GRACE", 7.0, seconds()),
    Setting("CRONMAN_CLAIM_PENDING", 120.0, seconds(0.0, strict=True)),
    # How long a worker waits for a lock store it cannot reach before it runs nothing (exit 3).
    Setting("CRONMAN_STORE_WAIT", 10.0, seconds()),
    # The name of the lock backend plugin to use; None: the default (a plugin's own switch, else pidfile).
    Setting("CRONMAN_LOCK_BACKEND", None, text()),
    # The name of the spawner plugin to use ("local", "prefork", "celery"); None: the default (local).
    Setting("CRONMAN_SPAWNER", None, text()),
    Setting("CRONMAN_TASK_POLL_INTERVAL", 1.0, seconds(0.0, strict=True)),
    # How often the daemon asks schedule plugins whether their entries changed (cronman_schedule_version).
    Setting("CRONMAN_SCHEDULE_POLL_INTERVAL", 10.0, seconds(0.0, strict=True)),
)


_UNSET = object()


def get(name: str, default: Any = None) -> Any:
    """The checked value of setting ``name`` (its declared default when unset).

    A setting nobody declared is read as is, with ``default``; a declared one
    that is set to a bad value raises :class:`SettingError`.
    """
    setting = _declared.get(name)
    if setting is None:
        return getattr(settings, name, default)
    value = getattr(settings, name, _UNSET)
    if value is _UNSET:
        return setting.default
    try:
        return setting.kind.convert(value)
    except (TypeError, ValueError) as exc:
        raise SettingError(setting.message(value, "" if setting.secret else str(exc))) from None


def validate() -> None:
    """Raise :class:`SettingError` for the first declared setting set to a bad value."""
    found = problems()
    if found:
        raise SettingError(found[0][0])


def problems() -> list[tuple[str, str]]:
    """``(message, hint)`` for every declared setting that is set to a bad value."""
    found = []
    for setting in declared():
        try:
            get(setting.name)
        except SettingError as exc:
            found.append((str(exc), setting.hint()))
    return found


def debug() -> bool:
    """``CRONMAN_DEBUG``, False when badly set: it is read while another error is reported
    (``manage.py check`` names the bad value)."""
    try:
        return bool(get("CRONMAN_DEBUG"))
    except SettingError:
        return False


def time_zone_name() -> str:
    """The zone of schedules: ``CRONMAN_TIME_ZONE``, else ``TIME_ZONE``, else UTC."""
    return str(get("CRONMAN_TIME_ZONE") or getattr(settings, "TIME_ZONE", None) or "UTC")
