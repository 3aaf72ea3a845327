"""Helpers for job ``run()`` methods: params reach ``run()`` as strings."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from typing import Any

RESUMED_ENV = "CRON_PROCESS_RESUMED"

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


_RAISE: Any = object()


def bool_param(value: Any, default: Any = _RAISE) -> Any:
    """Parse a boolean job param (``1``/``true``/``yes``/``on`` and their opposites).

    Without ``default``, anything else raises ValueError (a typo fails the
    run, not silently False); with one (django-cronman's signature), an
    empty or unknown value gives it.
    """
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if default is not _RAISE and (text == "" or text not in _FALSE):
        return default
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean value: {value!r}")


#: Items of a list param: ``;`` (a comma separates params) or, as in django-cronman, whitespace.
LIST_DELIMITER = r"[\s;]+"


def list_param(
    value: Any,
    default: list[Any] | None = None,
    delimiter: str = LIST_DELIMITER,
    strip: bool = True,
    skip_empty: bool = True,
    replace_map: dict[str, str] | None = None,
    cast: Callable[[str], Any] | None = None,
) -> list[Any]:
    """Split a list job param (``"1;2;3"`` or ``"1 2 3"``); django-cronman's signature.

    ``delimiter`` is a regular expression; ``replace_map`` replaces
    characters in each item; ``cast`` converts each item.
    """
    if isinstance(value, list | tuple):
        return list(value) if cast is None else [cast(v) for v in value]
    if value is None or value == "":
        return list(default or [])
    items = []
    for item in re.split(delimiter, str(value)):
        item = item.strip() if strip else item
        for old, new in (replace_map or {}).items():
            item = item.replace(old, new)
        if skip_empty and item == "":
            continue
        items.append(item if cast is None else cast(item))
    return items


def date_param(value: Any, default: dt.date | None = None, fmt: str = "%Y-%m-%d") -> dt.date | None:
    """Parse a date job param (``YYYY-MM-DD`` by default); ``None``/empty gives ``default``."""
    if value is None or value == "":
        return default
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.datetime.strptime(str(value), fmt).date()


def flag_param(value: Any, flag: str | None = None, flags: Any = None) -> bool:
    """A flag is on when present (any value but an explicit false).

    Given ``flag`` and ``flags`` (django-cronman's signature), a missing
    value is looked up in ``flags``: names separated by whitespace, ``;``,
    ``,``, ``-`` or ``|``.
    """
    if value is None:
        return flag is not None and flag in list_param(flags, delimiter=r"[\s;,\-|]+")
    try:
        return bool(bool_param(value))
    except ValueError:
        return True


def is_cron_process_resumed() -> bool:
    """True in a worker started by ``cron_worker resume`` (``CRON_PROCESS_RESUMED=1``)."""
    return os.environ.get(RESUMED_ENV) == "1"
