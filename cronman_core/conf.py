"""Settings, read lazily so ``override_settings`` and per-test settings work."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "CRONMAN_DATA_DIR": None,
    "CRONMAN_DEBUG": False,
    "CRONMAN_PLUGINS": (),
    "CRONMAN_DISABLED_PLUGINS": (),
    "CRONMAN_JOBS_MODULE": None,
    "CRONMAN_MISFIRE_GRACE": 3600,
    "CRONMAN_TIME_ZONE": None,
    "CRONMAN_KILL_GRACE": 7,
    "CRONMAN_TASK_POLL_INTERVAL": 1.0,
}


def get(name: str, default: Any = None) -> Any:
    """The value of setting ``name``, else cronman's default, else ``default``."""
    return getattr(settings, name, DEFAULTS.get(name, default))


def time_zone_name() -> str:
    """The zone of schedules: ``CRONMAN_TIME_ZONE``, else ``TIME_ZONE``, else UTC."""
    return str(get("CRONMAN_TIME_ZONE") or getattr(settings, "TIME_ZONE", None) or "UTC")
