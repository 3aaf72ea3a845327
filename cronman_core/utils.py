"""Helpers for job ``run()`` methods: params reach ``run()`` as strings."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

RESUMED_ENV = "CRON_PROCESS_RESUMED"

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def bool_param(value: Any) -> bool:
    """Parse a boolean job param (``1``/``true``/``yes``/``on`` and their opposites)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean value: {value!r}")


def list_param(
    value: Any, cast: Callable[[str], Any] = str, delimiter: str = ";", strip: bool = True
) -> list[Any]:
    """Split a list job param; a comma separates params, so lists use ``;`` by default."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [cast(v) for v in value]
    items = str(value).split(delimiter)
    if strip:
        items = [item.strip() for item in items]
    return [cast(item) for item in items if item != ""]


def date_param(value: Any, fmt: str = "%Y-%m-%d") -> dt.date | None:
    """Parse a date job param (``YYYY-MM-DD`` by default); ``None``/empty gives ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.datetime.strptime(str(value), fmt).date()


def flag_param(value: Any) -> bool:
    """A flag is on when present (any value but an explicit false)."""
    if value is None:
        return False
    try:
        return bool_param(value)
    except ValueError:
        return True


def is_cron_process_resumed() -> bool:
    """True in a worker started by ``cron_worker resume`` (``CRON_PROCESS_RESUMED=1``)."""
    return os.environ.get(RESUMED_ENV) == "1"
