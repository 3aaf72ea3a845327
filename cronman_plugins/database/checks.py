"""System checks of the database lock backend (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from cronman_plugins.database.plugin import database_locks, unusable_database


@register("cronman")
def check_lock_database(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """cronman.E030: the database lock backend on a database that cannot share locks between hosts."""
    problem = unusable_database() if database_locks() else ""
    if not problem:
        return []
    return [Error(problem, hint='Use PostgreSQL, MySQL or MariaDB for several hosts '
                  '(or CRONMAN_LOCK_BACKEND = "redis"); on one host, "pidfile".', id="cronman.E030")]
