"""What the database-backed plugins (tasks, history) share: bounded, isolated writes.

A notifier hook that writes to the database must never fail or hang a job:
each write runs in its own savepoint (a failure leaves the job's connection
usable), on PostgreSQL with a ``statement_timeout`` of ``CRONMAN_DB_WRITE_TIMEOUT``
seconds (default 5), and a database error becomes a warning line instead
of an exception (once per process for a repeated error, such as a table
that ``migrate`` never created).

SQLite answers "database is locked" at once, whatever its busy timeout,
when a transaction that has read must upgrade to write while another
process writes: Django's default transactions do just that. Such a write
is retried, with a growing jittered pause, for up to
:data:`SQLITE_RETRY_SECONDS`, so concurrent workers lose no history row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connections, transaction

from cronman_core import conf

T = TypeVar("T")

conf.declare(conf.Setting("CRONMAN_DB_WRITE_TIMEOUT", 5.0, conf.seconds(0.0, strict=True)))

#: How long a SQLite write that found the database locked is retried.
SQLITE_RETRY_SECONDS = 30.0

_reported: set[str] = set()

#: A table that ``migrate`` never created: SQLite, PostgreSQL, MySQL/MariaDB wording.
MISSING_TABLE = re.compile(r"no such table|relation .* does not exist|Table .* doesn't exist")


def guarded_write(
    logger: logging.Logger, what: str, write: Callable[[], T], using: str = DEFAULT_DB_ALIAS
) -> T | None:
    """Run ``write()`` in a bounded savepoint; log and return None on a database error."""
    connection = connections[using]
    deadline = time.monotonic() + SQLITE_RETRY_SECONDS
    pause = 0.01
    while True:
        # Inside an outer transaction a retry could only wait for a lock that transaction holds.
        retryable = connection.vendor == "sqlite" and not connection.in_atomic_block
        try:
            with transaction.atomic(using=using):
                if connection.vendor == "postgresql":
                    timeout = conf.get("CRONMAN_DB_WRITE_TIMEOUT")
                    with connection.cursor() as cursor:
                        cursor.execute(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
                return write()
        except OperationalError as exc:
            if retryable and "database is locked" in str(exc) and time.monotonic() < deadline:
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.5)
                continue
            log_database_error(logger, what, exc)
            return None
        except DatabaseError as exc:
            log_database_error(logger, what, exc)
            return None


def log_database_error(logger: logging.Logger, what: str, exc: DatabaseError) -> None:
    """One warning line per distinct error and process; repeats go to debug (no log flood)."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if MISSING_TABLE.search(first_line):
        first_line += " (run: python manage.py migrate)"
    level = logging.DEBUG if first_line in _reported else logging.WARNING
    _reported.add(first_line)
    logger.log(level, "%s failed: %s", what, first_line)


@contextlib.contextmanager
def serialized(using: str, key: str, table: str) -> Iterator[None]:
    """A transaction that no other ``serialized(.., key, ..)`` runs beside: check-then-insert is atomic.

    PostgreSQL: a transaction-level advisory lock on ``key``. SQLite: the
    database's write lock taken first (a write to ``table`` that changes
    nothing), so a concurrent request waits its busy timeout instead of
    failing with "database is locked" when it upgrades a read lock. Other
    databases: a plain transaction.
    """
    with transaction.atomic(using=using):
        connection = connections[using]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])
            elif connection.vendor == "sqlite":
                quoted = connection.ops.quote_name(table)
                cursor.execute(f"UPDATE {quoted} SET id = id WHERE 0 = 1")
        yield


def admin_time(value: dt.datetime | None) -> str:
    """A time as the admin pages show it: with its seconds (runs a second apart must read apart), in the
    admin's time zone, ``-`` for none."""
    from django.utils import timezone  # local: as the admin needs it, not the workers that import this module

    return "-" if value is None else f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"
