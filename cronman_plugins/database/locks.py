"""The database lock backend: worker locks as PostgreSQL session advisory locks, the rest in tables.

A worker takes ``pg_try_advisory_lock`` on a connection of its own (not
Django's, which a job may close) and keeps that session for its whole run:
the lock lives exactly as long as the session, so a worker that dies
(SIGKILL, a lost host) frees it when the server ends its session, as
``flock`` does on one host, and a paused worker keeps it (nobody else can
run beside it). A thread checks the session every third of
``CRONMAN_DB_LOCK_TTL``: a session that ended (``pg_terminate_backend``, a
restarted server) means the lock is gone, and so does a session that could
not be checked for a whole TTL; either way the worker stops its job. The
same check reads the run's stop request (``kill`` from another host).

Tables (:mod:`cronman_plugins.database.models`): run records with the
session that holds each one's lock, fencing counters per key, fire claims
with their expiry on the database's clock, stop requests. Every statement
runs in autocommit; none is retried blindly (a claim is idempotent for its
own token instead).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from django.db import connections

from cronman_core import conf
from cronman_core.errors import CronmanError, UsageError
from cronman_core.locks import Lock, LockBackend
from cronman_core.records import RunRecord
from cronman_plugins.database import plugin  # noqa: F401  (declares the settings read here)

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("cronman.plugins.database")


class DatabaseUnavailable(CronmanError):
    """The lock database could not be reached or answered with an error (exit code 1)."""


def lock_id(key: str) -> int:
    """The advisory lock's 64-bit id for a lock key (a hash: a collision could only make a run skip)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"cronman-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def _halves(key: str) -> tuple[int, int]:
    """``pg_locks``' ``classid`` and ``objid`` of the advisory lock on ``key`` (its id's high and low halves)."""
    ident = lock_id(key) & 0xFFFF_FFFF_FFFF_FFFF
    return ident >> 32, ident & 0xFFFF_FFFF


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _psycopg() -> Any:
    try:
        import psycopg  # local: the postgres extra, imported only when this backend is used
    except ImportError as exc:
        raise UsageError('CRONMAN_LOCK_BACKEND = "database" needs psycopg: pip install "psycopg[binary]"') from exc
    return psycopg


def connect(alias: str, ttl: float) -> psycopg.Connection[Any]:
    """A new autocommit session on Django's database ``alias``, whose hangs are bounded by ``ttl``."""
    psycopg = _psycopg()
    wrapper = connections[alias]
    params = wrapper.get_connection_params()
    for django_only in ("cursor_factory", "context"):
        params.pop(django_only, None)
    check = max(1, int(ttl / 3))
    params.update(
        autocommit=True, application_name="cronman", connect_timeout=check,
        keepalives=1, keepalives_idle=check, keepalives_interval=max(1, check // 2), keepalives_count=3,
        tcp_user_timeout=int(ttl * 1000),
    )
    try:
        connection = psycopg.connect(**params)
        connection.execute(f"SET statement_timeout = {int(ttl * 1000 / 3)}")
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"lock database {alias!r} unreachable: {_first_line(exc)}") from exc
    return connection


@contextlib.contextmanager
def reachable(alias: str) -> Iterator[None]:
    """psycopg's errors as one :class:`DatabaseUnavailable` line."""
    psycopg = _psycopg()
    try:
        yield
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"lock database {alias!r}: {_first_line(exc)}") from exc


_FENCE = """
INSERT INTO cronman_fence AS f (key, token)
VALUES (%s, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
ON CONFLICT (key) DO UPDATE SET token = GREATEST(f.token + 1, EXCLUDED.token)
RETURNING token
"""
_RECORD = """
INSERT INTO cronman_run_record (run_id, key, data, backend_pid, backend_start)
SELECT %s, %s, %s, pid, extract(epoch FROM backend_start) FROM pg_stat_activity WHERE pid = pg_backend_pid()
ON CONFLICT (run_id) DO UPDATE SET key = EXCLUDED.key, data = EXCLUDED.data,
    backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start
"""
_HELD = """
SELECT l.pid FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
"""
_HELD_BY = f"""
SELECT EXISTS (
  SELECT 1 FROM cronman_run_record r
  JOIN pg_stat_activity a ON a.pid = r.backend_pid AND extract(epoch FROM a.backend_start) = r.backend_start
  WHERE r.run_id = %s AND r.backend_pid IN ({_HELD})
)
"""
# A claim held by someone else is refused; an expired one is taken over; the holder's own
# token (a re-sent call, the worker confirming its start) only ever extends it.
_CLAIM = """
INSERT INTO cronman_fire_claim AS c (key, token, expires_at)
VALUES (%(key)s, %(token)s, extract(epoch FROM statement_timestamp()) + %(ttl)s)
ON CONFLICT (key) DO UPDATE SET
  token = EXCLUDED.token,
  expires_at = CASE WHEN c.expires_at <= extract(epoch FROM statement_timestamp()) THEN EXCLUDED.expires_at
                    ELSE GREATEST(c.expires_at, EXCLUDED.expires_at) END
WHERE c.expires_at <= extract(epoch FROM statement_timestamp())
   OR (EXCLUDED.token <> '' AND c.token = EXCLUDED.token)
RETURNING 1
"""


class DatabaseLock(Lock):
    """A held advisory lock: its own session, checked by a thread until released."""

    def __init__(self, backend: DatabaseLockBackend, session: psycopg.Connection[Any], record: RunRecord,
                 fencing_token: int) -> None:
        self.backend = backend
        self.session = session
        self.record = record
        self.fencing_token = fencing_token
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"cronman-lock-check-{record.key}", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Check the session every third of the TTL: ended, or unchecked for a TTL, means lost."""
        ttl = self.backend.ttl
        checked_at = time.monotonic()
        stop_asked = False
        psycopg = _psycopg()
        while not self._stop.wait(ttl / 3):
            try:
                row = self.session.execute("SELECT EXISTS (SELECT 1 FROM cronman_stop_request WHERE run_id = %s)",
                                           [self.record.run_id]).fetchone()
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                if self.session.broken or self.session.closed:
                    self._lost(f"its database session ended ({_first_line(exc)})")
                    return
                if time.monotonic() - checked_at >= ttl:
                    self._lost(f"its session could not be checked for {time.monotonic() - checked_at:.1f} s")
                    return
                logger.warning("cannot check lock %r (will retry): %s", self.record.key, _first_line(exc))
                continue
            checked_at = time.monotonic()
            if row and row[0] and not stop_asked and self.on_stop_requested is not None:
                stop_asked = True
                logger.warning("run %s of %r: stop requested", self.record.run_id, self.record.key)
                self.on_stop_requested()

    def _lost(self, why: str) -> None:
        logger.error("lock %r lost: %s", self.record.key, why)
        if self.on_lost is not None:
            self.on_lost()

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.backend.write_record(self.record)

    def release(self, keep_record: bool = False) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._watcher.join()
        psycopg = _psycopg()
        try:
            self.session.execute("SELECT pg_advisory_unlock(%s)", [lock_id(self.record.key)])
        except psycopg.Error as exc:
            logger.debug("unlock of %r: %s (closing its session frees it)", self.record.key, _first_line(exc))
        finally:
            self.session.close()
        try:
            self.backend.forget(self.record, keep_record=keep_record)
        except DatabaseUnavailable as exc:
            logger.warning("cannot remove the record of %r: %s", self.record.key, exc)


class DatabaseLockBackend(LockBackend):
    """Locks, records and claims shared by every host using the same PostgreSQL database."""

    def __init__(self, alias: str | None = None, ttl: float | None = None) -> None:
        self.alias: str = alias or conf.get("CRONMAN_DB_LOCK_DATABASE")
        self.ttl: float = conf.get("CRONMAN_DB_LOCK_TTL") if ttl is None else ttl

    def describe(self) -> str:
        settings = connections[self.alias].settings_dict
        where = f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or 5432}/{settings.get('NAME')}"
        return f"database records at {where} in cronman_run_record (every host)"

    # -- one session per process for everything but the locks ---------------------

    _shared: dict[tuple[int, str], Any] = {}
    _shared_lock = threading.Lock()

    def _session(self) -> psycopg.Connection[Any]:
        """This process's shared session (reopened after it broke; a forked child opens its own)."""
        key = (os.getpid(), self.alias)
        with self._shared_lock:
            session = self._shared.get(key)
            if session is None or session.closed or session.broken:
                session = self._shared[key] = connect(self.alias, self.ttl)
            return session

    def _execute(self, sql: str, params: Any = ()) -> Any:
        with reachable(self.alias):
            return self._session().execute(sql, params)

    # -- locks ------------------------------------------------------------------------

    def acquire(self, key: str, record: RunRecord) -> Lock | None:
        record = replace(record, key=key)
        session = connect(self.alias, self.ttl)
        try:
            with reachable(self.alias):
                taken = session.execute("SELECT pg_try_advisory_lock(%s)", [lock_id(key)]).fetchone()
                if not (taken and taken[0]):
                    session.close()
                    return None
                row = session.execute(_FENCE, [key]).fetchone()
                session.execute(_RECORD, [record.run_id, key, record.to_json()])
        except BaseException:
            session.close()  # frees the lock, if it was taken
            raise
        assert row is not None
        return DatabaseLock(self, session, record, int(row[0]))

    def is_locked(self, key: str) -> bool:
        return self._execute(_HELD, _halves(key)).fetchone() is not None

    def is_held_by(self, record: RunRecord) -> bool:
        row = self._execute(_HELD_BY, [record.run_id, *_halves(record.key)]).fetchone()
        return bool(row and row[0])

    # -- records ----------------------------------------------------------------------

    def write_record(self, record: RunRecord) -> None:
        self._execute("UPDATE cronman_run_record SET data = %s WHERE run_id = %s", [record.to_json(), record.run_id])

    def records(self) -> list[RunRecord]:
        found = []
        for run_id, text in self._execute("SELECT run_id, data FROM cronman_run_record").fetchall():
            try:
                found.append(RunRecord.from_json(text))
            except ValueError as exc:
                logger.warning("skipping unreadable run record %s in the database: %s", run_id, exc)
        return found

    def forget(self, record: RunRecord, keep_record: bool) -> None:
        """A run ended: its stop request goes, and its record too unless ``resume`` needs it."""
        self._execute("DELETE FROM cronman_stop_request WHERE run_id = %s", [record.run_id])
        if not keep_record:
            self._execute("DELETE FROM cronman_run_record WHERE run_id = %s", [record.run_id])

    def remove_record(self, record: RunRecord) -> None:
        self.forget(record, keep_record=False)

    def request_stop(self, record: RunRecord) -> bool:
        self._execute("INSERT INTO cronman_stop_request (run_id, requested_at) "
                      "VALUES (%s, extract(epoch FROM clock_timestamp())) ON CONFLICT (run_id) DO NOTHING",
                      [record.run_id])
        return True

    # -- claims and the clock ------------------------------------------------------------

    def claim(self, key: str, ttl: float, token: str = "") -> bool:
        return self._execute(_CLAIM, {"key": key, "token": token, "ttl": float(ttl)}).fetchone() is not None

    def release_claim(self, key: str, token: str) -> bool:
        if not token:
            return False
        cursor = self._execute("DELETE FROM cronman_fire_claim WHERE key = %s AND token = %s", [key, token])
        return bool(cursor.rowcount)

    def prune_claims(self) -> int:
        cursor = self._execute(
            "DELETE FROM cronman_fire_claim WHERE expires_at <= extract(epoch FROM clock_timestamp())")
        return int(cursor.rowcount)

    def time(self) -> float:
        row = self._execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        return float(row[0])


__all__ = ["DatabaseLock", "DatabaseLockBackend", "DatabaseUnavailable", "lock_id"]
