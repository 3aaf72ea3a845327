"""Hooks of the Redis plugin: remote control at each tick, and the cluster lock backend.

Switched on by the ``cronman_plugins.redis`` app in ``INSTALLED_APPS``, by
django-cronman's ``CRONMAN_REMOTE_MANAGER_ENABLED = True`` or by
``CRONMAN_REDIS_LOCKS = True``: one built-in plugin named ``redis``, so
``CRONMAN_DISABLED_PLUGINS = ["redis"]`` switches off all of it.
The lock backend is offered only with ``CRONMAN_REDIS_LOCKS``, otherwise the
pidfile backend stays the default.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from django.apps import apps

from cronman_core import conf, hookimpl
from cronman_plugins.redis import client as rc

if TYPE_CHECKING:
    from cronman_core.locks import LockBackend
    from cronman_core.switch import SchedulerControl

logger = logging.getLogger("cronman.plugins.redis")


def redis_locks() -> bool:
    """``CRONMAN_LOCK_BACKEND = "redis"``, or when that is unset django-cronman's ``CRONMAN_REDIS_LOCKS``."""
    chosen = conf.get("CRONMAN_LOCK_BACKEND")
    return chosen == "redis" if chosen is not None else bool(conf.get("CRONMAN_REDIS_LOCKS"))


def plugin_enabled() -> bool:
    return bool(
        apps.is_installed("cronman_plugins.redis")
        or conf.get("CRONMAN_REMOTE_MANAGER_ENABLED")
        or redis_locks()
    )


@hookimpl
def cronman_lock_backend(data_dir: Path) -> LockBackend | None:
    if not redis_locks():
        return None
    from cronman_plugins.redis.locks import RedisLockBackend

    return RedisLockBackend()


@hookimpl
def cronman_scheduler_tick(control: SchedulerControl, now: dt.datetime) -> None:
    from cronman_plugins.redis.remote import apply_requests

    try:
        apply_requests(control)
    except rc.errors() as exc:
        logger.warning("remote control skipped this tick: %s", rc.unavailable(exc))
