"""Hook of the database plugin: the lock backend when ``CRONMAN_LOCK_BACKEND = "database"``.

A built-in plugin (loaded like any other) whose tables come with the
``cronman_plugins.database`` app: choosing the backend without the app in
``INSTALLED_APPS`` stops every command with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from django.apps import apps
from django.db import connections

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError

if TYPE_CHECKING:
    from cronman_core.locks import LockBackend

APP = "cronman_plugins.database"

conf.declare(
    conf.Setting("CRONMAN_DB_LOCK_DATABASE", "default", conf.text(optional=False)),
    conf.Setting("CRONMAN_DB_LOCK_TTL", 30.0, conf.seconds(0.0, strict=True)),
)


def database_locks() -> bool:
    return conf.get("CRONMAN_LOCK_BACKEND") == "database"


def plugin_enabled() -> bool:
    if not database_locks():
        return False
    if not apps.is_installed(APP):
        raise UsageError(f'CRONMAN_LOCK_BACKEND = "database" needs "{APP}" in INSTALLED_APPS '
                         "(its tables), then manage.py migrate")
    problem = unusable_database()
    if problem:
        raise UsageError(problem)
    return True


def unusable_database() -> str:
    """Why the configured database cannot hold the cluster's locks (cronman.E030), or ""."""
    alias = conf.get("CRONMAN_DB_LOCK_DATABASE")
    if alias not in connections:
        return f"CRONMAN_DB_LOCK_DATABASE = {alias!r} is not in DATABASES"
    vendor = connections[alias].vendor
    if vendor in ("postgresql", "mysql"):
        return ""
    why = ("a SQLite file cannot be shared by several hosts, and one host needs no database for its locks"
           if vendor == "sqlite" else f"{vendor} has no session locks the backend knows")
    return f'CRONMAN_LOCK_BACKEND = "database" on database {alias!r} ({vendor}): {why}'


@hookimpl
def cronman_lock_backend(data_dir: Path) -> LockBackend | None:
    if not database_locks():
        return None
    from cronman_plugins.database.locks import DatabaseLockBackend  # local: psycopg only when chosen

    return DatabaseLockBackend()
