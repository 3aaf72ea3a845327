"""The database lock backend: worker locks as session locks of the database, the rest in tables.

A worker takes a session lock (PostgreSQL ``pg_try_advisory_lock``,
MySQL/MariaDB ``GET_LOCK``) on a connection of its own (not Django's,
which a job may close) and keeps that session for its whole run: the lock
lives exactly as long as the session, so a worker that dies (SIGKILL, a
lost host) frees it when the server ends its session, as ``flock`` does on
one host, and a paused worker keeps it (nobody else can run beside it). A
thread checks the session every third of ``CRONMAN_DB_LOCK_TTL``: a session
that ended (``pg_terminate_backend``, ``KILL``, a restarted server) means
the lock is gone, and so does a session that could not be checked for a
whole TTL; either way the worker stops its job. The same check reads the
run's stop request (``kill`` from another host).

Tables (:mod:`cronman_plugins.database.models`): run records with the
session that holds each one's lock, fencing counters per lock, fire claims
with their expiry on the database's clock, stop requests. Every statement
runs in autocommit; none is retried blindly (a claim is idempotent for its
own token instead). What differs between the databases is in one
:class:`Dialect` each.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from django.db import connections

from cronman_core import conf
from cronman_core.errors import CronmanError
from cronman_core.locks import Lock, LockBackend
from cronman_core.records import RunRecord
from cronman_plugins.database import plugin  # noqa: F401  (declares the settings read here)

logger = logging.getLogger("cronman.plugins.database")

T = TypeVar("T")


class DatabaseUnavailable(CronmanError):
    """The lock database could not be reached or answered with an error (exit code 1)."""


def lock_id(key: str) -> int:
    """The lock's 64-bit id for a lock key (a hash: a collision could only make a run skip)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"cronman-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Dialect:
    """What one database needs said its own way: sessions, session locks, upserts, the clock."""

    #: A fencing token from the database's clock: microseconds since the epoch.
    micros_now = ""

    def __init__(self, database: Any) -> None:
        self.database = database  # the DB-API module Django uses for this database

    def connect(self, params: dict[str, Any], ttl: float) -> Any:
        raise NotImplementedError

    def broken(self, session: Any) -> bool:
        """Whether ``session`` is gone (closed, or its server ended it), after an error on it."""
        raise NotImplementedError

    def try_lock(self, session: Any, key: str) -> bool:
        raise NotImplementedError

    def unlock(self, session: Any, key: str) -> None:
        raise NotImplementedError

    def next_token(self, session: Any, key: str) -> int:
        raise NotImplementedError

    #: INSERT of a run record with the inserting session's id and start (params: run id, key, data).
    record_sql = ""
    #: A one-row answer: whether the lock on a key is held (params: see :meth:`lock_params`).
    locked_sql = ""
    #: A one-row answer: whether a run's own session holds its lock (params: run id, then lock params).
    held_by_sql = ""
    now_sql = ""
    stop_request_sql = ""

    def lock_params(self, key: str) -> list[Any]:
        raise NotImplementedError

    def claim(self, session: Any, key: str, ttl: float, token: str) -> bool:
        raise NotImplementedError


class PostgresDialect(Dialect):
    micros_now = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
    record_sql = """
INSERT INTO cronman_run_record (run_id, lock_key, data, session_id, session_start)
SELECT %s, %s, %s, pid, extract(epoch FROM backend_start) FROM pg_stat_activity WHERE pid = pg_backend_pid()
ON CONFLICT (run_id) DO UPDATE SET lock_key = EXCLUDED.lock_key, data = EXCLUDED.data,
    session_id = EXCLUDED.session_id, session_start = EXCLUDED.session_start
"""
    _holders = """
SELECT l.pid FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
"""
    locked_sql = f"SELECT EXISTS ({_holders})"
    held_by_sql = f"""
SELECT EXISTS (
  SELECT 1 FROM cronman_run_record r
  JOIN pg_stat_activity a ON a.pid = r.session_id AND extract(epoch FROM a.backend_start) = r.session_start
  WHERE r.run_id = %s AND r.session_id IN ({_holders})
)
"""
    now_sql = "SELECT extract(epoch FROM clock_timestamp())::float8"
    stop_request_sql = ("INSERT INTO cronman_stop_request (run_id, requested_at) "
                        "VALUES (%s, extract(epoch FROM clock_timestamp())) ON CONFLICT (run_id) DO NOTHING")
    # A claim held by someone else is refused; an expired one is taken over; the holder's own
    # token (a re-sent call, the worker confirming its start) only ever extends it.
    _claim_sql = """
INSERT INTO cronman_fire_claim AS c (claim_key, token, expires_at)
VALUES (%(key)s, %(token)s, extract(epoch FROM statement_timestamp()) + %(ttl)s)
ON CONFLICT (claim_key) DO UPDATE SET
  token = EXCLUDED.token,
  expires_at = CASE WHEN c.expires_at <= extract(epoch FROM statement_timestamp()) THEN EXCLUDED.expires_at
                    ELSE GREATEST(c.expires_at, EXCLUDED.expires_at) END
WHERE c.expires_at <= extract(epoch FROM statement_timestamp())
   OR (EXCLUDED.token <> '' AND c.token = EXCLUDED.token)
RETURNING 1
"""

    def connect(self, params: dict[str, Any], ttl: float) -> Any:
        for django_only in ("cursor_factory", "context"):
            params.pop(django_only, None)
        check = max(1, int(ttl / 3))
        params.update(
            autocommit=True, application_name="cronman", connect_timeout=check,
            keepalives=1, keepalives_idle=check, keepalives_interval=max(1, check // 2), keepalives_count=3,
            tcp_user_timeout=int(ttl * 1000),
        )
        session = self.database.connect(**params)
        session.execute(f"SET statement_timeout = {int(ttl * 1000 / 3)}")
        return session

    def broken(self, session: Any) -> bool:
        return bool(session.broken or session.closed)

    def try_lock(self, session: Any, key: str) -> bool:
        return bool(_rows(session, "SELECT pg_try_advisory_lock(%s)", [lock_id(key)])[0][0])

    def unlock(self, session: Any, key: str) -> None:
        _rows(session, "SELECT pg_advisory_unlock(%s)", [lock_id(key)])

    def next_token(self, session: Any, key: str) -> int:
        repair(session, key)
        return int(_rows(session, f"""
INSERT INTO cronman_fence AS f (lock_id, token) VALUES (%s, {self.micros_now})
ON CONFLICT (lock_id) DO UPDATE SET token = GREATEST(f.token + 1, EXCLUDED.token)
RETURNING token""", [lock_id(key)])[0][0])

    def lock_params(self, key: str) -> list[Any]:
        ident = lock_id(key) & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks: classid the high half, objid the low
        return [ident >> 32, ident & 0xFFFF_FFFF]

    def claim(self, session: Any, key: str, ttl: float, token: str) -> bool:
        return bool(_rows(session, self._claim_sql, {"key": key, "token": token, "ttl": float(ttl)}))


class MySQLDialect(Dialect):
    """MySQL and MariaDB: ``GET_LOCK`` (released when its session ends), ``ON DUPLICATE KEY UPDATE``."""

    micros_now = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)"
    _server_start = ("(UNIX_TIMESTAMP() - (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                     "WHERE VARIABLE_NAME = 'UPTIME'))")
    record_sql = f"""
INSERT INTO cronman_run_record (run_id, lock_key, data, session_id, session_start)
VALUES (%s, %s, %s, CONNECTION_ID(), {_server_start})
ON DUPLICATE KEY UPDATE lock_key = VALUES(lock_key), data = VALUES(data), session_id = VALUES(session_id),
    session_start = VALUES(session_start)
"""
    locked_sql = "SELECT IS_USED_LOCK(%s) IS NOT NULL"
    # A connection id is unique until the server restarts: the server's start (to the second) tells
    # a session of before a restart from a new one with the same id.
    held_by_sql = f"""
SELECT COUNT(*) FROM cronman_run_record r
WHERE r.run_id = %s AND r.session_id = IS_USED_LOCK(%s) AND ABS(r.session_start - {_server_start}) <= 2
"""
    now_sql = "SELECT UNIX_TIMESTAMP(NOW(6))"
    stop_request_sql = ("INSERT IGNORE INTO cronman_stop_request (run_id, requested_at) "
                        "VALUES (%s, UNIX_TIMESTAMP(NOW(6)))")
    # The token is set first, so the expiry's conditions see the old expiry and the new token.
    _claim_sql = """
INSERT INTO cronman_fire_claim (claim_key, token, expires_at)
VALUES (%(key)s, %(token)s, UNIX_TIMESTAMP(NOW(6)) + %(ttl)s)
ON DUPLICATE KEY UPDATE
  token = IF(expires_at <= UNIX_TIMESTAMP(NOW(6)) OR (VALUES(token) <> '' AND token = VALUES(token)),
             VALUES(token), token),
  expires_at = IF(expires_at <= UNIX_TIMESTAMP(NOW(6)), VALUES(expires_at),
                  IF(VALUES(token) <> '' AND token = VALUES(token), GREATEST(expires_at, VALUES(expires_at)),
                     expires_at))
"""

    def connect(self, params: dict[str, Any], ttl: float) -> Any:
        params.pop("client_flag", None)  # Django's FOUND_ROWS: a claim must see rows changed, not matched
        check = max(1, int(ttl / 3))
        params.update(connect_timeout=check, read_timeout=check, write_timeout=check)
        session = self.database.connect(**params)
        session.autocommit(True)
        _rows(session, f"SET SESSION max_statement_time = {ttl / 3:.3f}")
        return session

    def broken(self, session: Any) -> bool:
        try:
            session.ping()
        except self.database.Error:
            return True
        return False

    @staticmethod
    def _name(key: str) -> str:
        return f"cronman-{lock_id(key) & 0xFFFF_FFFF_FFFF_FFFF:016x}"

    def try_lock(self, session: Any, key: str) -> bool:
        return _rows(session, "SELECT GET_LOCK(%s, 0)", [self._name(key)])[0][0] == 1

    def unlock(self, session: Any, key: str) -> None:
        _rows(session, "SELECT RELEASE_LOCK(%s)", [self._name(key)])

    def next_token(self, session: Any, key: str) -> int:
        ident = lock_id(key)
        repair(session, key)
        _rows(session, f"INSERT INTO cronman_fence (lock_id, token) VALUES (%s, {self.micros_now}) "
                       "ON DUPLICATE KEY UPDATE token = GREATEST(token + 1, VALUES(token))", [ident])
        # Only the lock's holder writes its counter, and this session holds the lock.
        return int(_rows(session, "SELECT token FROM cronman_fence WHERE lock_id = %s", [ident])[0][0])

    def lock_params(self, key: str) -> list[Any]:
        return [self._name(key)]

    def claim(self, session: Any, key: str, ttl: float, token: str) -> bool:
        with session.cursor() as cursor:
            changed = cursor.execute(self._claim_sql, {"key": key, "token": token, "ttl": float(ttl)})
            if changed in (1, 2):  # inserted, or taken over or extended
                return True
            if not token:
                return False
            # Unchanged: still ours if it holds our token (a re-sent claim that extends nothing).
            cursor.execute("SELECT token FROM cronman_fire_claim WHERE claim_key = %s", [key])
            row = cursor.fetchone()
        return bool(row and row[0] == token)


DIALECTS: dict[str, type[Dialect]] = {"postgresql": PostgresDialect, "mysql": MySQLDialect}


#: Fencing tokens are microseconds since 1970 or a counter just above: a stored one outside this range is
#: damage (a hand-edited row), and would make ``token + 1`` overflow or tokens go backwards.
TOKEN_RANGE = (0, 2**53)


def repair(session: Any, key: str) -> None:
    """Drop a lock's fencing counter that no cronman wrote, with one warning (the lock's holder calls this).

    The next token is then the time in microseconds, greater than every token handed out before.
    """
    rows = _rows(session, "SELECT token FROM cronman_fence WHERE lock_id = %s", [lock_id(key)])
    if rows and not TOKEN_RANGE[0] <= int(rows[0][0]) < TOKEN_RANGE[1]:
        logger.warning("repaired the fencing counter of lock %r: %s is not a token cronman wrote", key, rows[0][0])
        _rows(session, "DELETE FROM cronman_fence WHERE lock_id = %s", [lock_id(key)])


def _rows(session: Any, sql: str, params: Any = ()) -> list[Sequence[Any]]:
    """Run ``sql`` on a DB-API session; its rows ([] for a statement without any)."""
    with session.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def _rowcount(session: Any, sql: str, params: Any = ()) -> int:
    """Run ``sql`` on a DB-API session; how many rows it changed."""
    with session.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def dialect_of(alias: str) -> Dialect:
    wrapper = connections[alias]
    return DIALECTS[wrapper.vendor](wrapper.Database)


def connect(alias: str, ttl: float) -> Any:
    """A new autocommit session on Django's database ``alias``, whose hangs are bounded by ``ttl``."""
    wrapper = connections[alias]
    dialect = DIALECTS[wrapper.vendor](wrapper.Database)
    try:
        return dialect.connect(wrapper.get_connection_params(), ttl)
    except wrapper.Database.Error as exc:
        raise DatabaseUnavailable(f"lock database {alias!r} unreachable: {_first_line(exc)}") from exc


@contextlib.contextmanager
def reachable(alias: str) -> Iterator[None]:
    """The database driver's errors as one :class:`DatabaseUnavailable` line."""
    try:
        yield
    except connections[alias].Database.Error as exc:
        raise DatabaseUnavailable(f"lock database {alias!r}: {_first_line(exc)}") from exc


class DatabaseLock(Lock):
    """A held session lock: its own session, checked by a thread until released."""

    def __init__(self, backend: DatabaseLockBackend, session: Any, record: RunRecord, fencing_token: int) -> None:
        self.backend = backend
        self.session = session
        self.record = record
        self.fencing_token = fencing_token
        self._stop = threading.Event()
        self._session_lock = threading.Lock()  # the check thread and release() share the session
        self._watcher = threading.Thread(target=self._watch, name=f"cronman-lock-check-{record.key}", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Check the session every third of the TTL: ended, or unchecked for a TTL, means lost."""
        backend = self.backend
        ttl = backend.ttl
        checked_at = time.monotonic()
        while not self._stop.wait(ttl / 3):
            try:
                with self._session_lock:
                    rows = _rows(self.session, "SELECT COUNT(*) FROM cronman_stop_request WHERE run_id = %s",
                                 [self.record.run_id])
            except backend.database_error as exc:
                if self._stop.is_set():
                    return
                if backend.dialect.broken(self.session):
                    self.lost(f"its database session ended ({_first_line(exc)})")
                    return
                if time.monotonic() - checked_at >= ttl:
                    self.lost(f"its session could not be checked for {time.monotonic() - checked_at:.1f} s")
                    return
                logger.warning("cannot check lock %r (will retry): %s", self.record.key, _first_line(exc))
                continue
            checked_at = time.monotonic()
            if rows[0][0]:
                self.stop_requested()

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.backend.write_record(self.record)

    def release(self, keep_record: bool = False) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._watcher.join()
        try:
            with self._session_lock:
                self.backend.dialect.unlock(self.session, self.record.key)
        except self.backend.database_error as exc:
            logger.debug("unlock of %r: %s (closing its session frees it)", self.record.key, _first_line(exc))
        finally:
            with contextlib.suppress(self.backend.database_error):
                self.session.close()
        try:
            self.backend.forget(self.record, keep_record=keep_record)
        except DatabaseUnavailable as exc:
            logger.warning("cannot remove the record of %r: %s", self.record.key, exc)


class DatabaseLockBackend(LockBackend):
    """Locks, records and claims shared by every host using the same PostgreSQL or MySQL database."""

    def __init__(self, alias: str | None = None, ttl: float | None = None) -> None:
        self.alias: str = alias or conf.get("CRONMAN_DB_LOCK_DATABASE")
        self.ttl: float = conf.get("CRONMAN_DB_LOCK_TTL") if ttl is None else ttl
        self.dialect = dialect_of(self.alias)
        self.database_error: type[Exception] = connections[self.alias].Database.Error

    def describe(self) -> str:
        settings = connections[self.alias].settings_dict
        where = f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or '-'}/{settings.get('NAME')}"
        return f"database records at {where} in cronman_run_record (every host)"

    # -- one session per process for everything but the locks ---------------------

    _shared: dict[tuple[int, str], Any] = {}
    _shared_lock = threading.Lock()

    def _on_shared(self, work: Callable[[Any], T]) -> T:
        """``work(session)`` on this process's shared session (reopened after it broke; a forked child opens
        its own)."""
        key = (os.getpid(), self.alias)
        with self._shared_lock, reachable(self.alias):
            session = self._shared.get(key)
            if session is None:
                session = self._shared[key] = connect(self.alias, self.ttl)
            try:
                return work(session)
            except self.database_error:
                if self.dialect.broken(session):
                    self._shared.pop(key, None)
                raise

    def _execute(self, sql: str, params: Any = ()) -> list[Sequence[Any]]:
        return self._on_shared(lambda session: _rows(session, sql, params))

    def _changed(self, sql: str, params: Any = ()) -> int:
        return self._on_shared(lambda session: _rowcount(session, sql, params))

    # -- locks ------------------------------------------------------------------------

    def acquire(self, key: str, record: RunRecord) -> Lock | None:
        record = replace(record, key=key)
        session = connect(self.alias, self.ttl)
        try:
            with reachable(self.alias):
                if not self.dialect.try_lock(session, key):
                    session.close()
                    return None
                token = self.dialect.next_token(session, key)
                _rows(session, self.dialect.record_sql, [record.run_id, key, record.to_json()])
        except BaseException:
            with contextlib.suppress(self.database_error):
                session.close()  # frees the lock, if it was taken
            raise
        return DatabaseLock(self, session, record, token)

    def is_locked(self, key: str) -> bool:
        return bool(self._execute(self.dialect.locked_sql, self.dialect.lock_params(key))[0][0])

    def is_held_by(self, record: RunRecord) -> bool:
        rows = self._execute(self.dialect.held_by_sql, [record.run_id, *self.dialect.lock_params(record.key)])
        return bool(rows[0][0])

    # -- records ----------------------------------------------------------------------

    def write_record(self, record: RunRecord) -> None:
        self._execute("UPDATE cronman_run_record SET data = %s WHERE run_id = %s", [record.to_json(), record.run_id])

    def records(self) -> list[RunRecord]:
        found = []
        for run_id, text in self._execute("SELECT run_id, data FROM cronman_run_record"):
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
        self._execute(self.dialect.stop_request_sql, [record.run_id])
        return True

    # -- claims and the clock ------------------------------------------------------------

    def claim(self, key: str, ttl: float, token: str = "") -> bool:
        return self._on_shared(lambda session: self.dialect.claim(session, key, ttl, token))

    def claim_expiry(self, key: str) -> float | None:
        rows = self._execute("SELECT expires_at FROM cronman_fire_claim WHERE claim_key = %s", [key])
        if not rows or rows[0][0] is None or not math.isfinite(float(rows[0][0])):
            return None
        expiry = float(rows[0][0])
        return expiry if expiry > self.time() else None

    def release_claim(self, key: str, token: str) -> bool:
        if not token:
            return False
        return bool(self._changed("DELETE FROM cronman_fire_claim WHERE claim_key = %s AND token = %s", [key, token]))

    def prune_claims(self) -> int:
        return self._changed("DELETE FROM cronman_fire_claim WHERE expires_at <= %s", [self.time()])

    def time(self) -> float:
        return float(self._execute(self.dialect.now_sql)[0][0])


__all__ = ["DatabaseLock", "DatabaseLockBackend", "DatabaseUnavailable", "Dialect", "lock_id"]
