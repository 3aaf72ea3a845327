"""The default lock backend: OS advisory locks plus run records in the data dir.

Layout under the data dir (every file 0600, every directory 0700)::

    locks/<key>.lock      flock()ed by the worker for its whole life
    records/<run id>.json who holds (or held) a lock: PID, start time, host, spec
    claims/<key>.claim    exactly-once fire claims: "<expiry> <claimer's token>"

A lock is the kernel's: a worker killed by SIGKILL frees it at once, and a
stale record never blocks a run. A lock file is only unlinked, when its
record goes, by a process that holds the lock itself, and ``acquire`` checks
that the file it locked is still the one at the path, so an unlink can never
let two workers in. Records and claims are written whole (temp file, fsync, rename/link) and
opened without following symlinks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from cronman_core import conf, hookimpl
from cronman_core.datadir import private_subdir
from cronman_core.files import (
    NotRegularFileError,
    flocked,
    open_or_replace,
    open_regular,
    read_bytes,
    read_state,
    safe_name,
    set_aside,
    write_atomic,
)
from cronman_core.locks import Lock, LockBackend, next_fencing_token
from cronman_core.process import file_id, flock_holders, hostname, verified_process
from cronman_core.records import RunRecord

logger = logging.getLogger("cronman.plugins.pidfile")

_RUN_ID = re.compile(r"[0-9a-f]{1,64}")
_INDEX = ".index.json"
_FIELDS = [f.name for f in fields(RunRecord)]
#: Larger record files are not records (a record is a few hundred bytes).
_RECORD_MAX = 1 << 20
#: Claim temp files older than this are debris of a crashed claimer.
_STALE_TEMP_SECONDS = 60.0


class PidfileLock(Lock):
    """An flock()ed lock file held through an open descriptor, plus its record."""

    def __init__(self, backend: PidfileBackend, fd: int, record: RunRecord, fencing_token: int) -> None:
        self.backend = backend
        self.fd: int | None = fd
        self.record = record
        self.fencing_token = fencing_token

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.backend.write_record(self.record)

    def release(self, keep_record: bool = False) -> None:
        if self.fd is None:
            return
        # Closing the descriptor drops the flock; then the record (and the lock
        # file, if no one took it meanwhile) can go.
        os.close(self.fd)
        self.fd = None
        if not keep_record:
            self.backend.remove_record(self.record)


class PidfileBackend(LockBackend):
    """Locks, records and claims as files in one private directory of this host."""

    in_data_dir = True

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.locks_dir = private_subdir(self.data_dir, "locks")
        self.records_dir = private_subdir(self.data_dir, "records")
        self.claims_dir = private_subdir(self.data_dir, "claims")

    def describe(self) -> str:
        return f"pidfile records in {self.records_dir}"

    # -- locks -----------------------------------------------------------------

    def lock_path(self, key: str) -> Path:
        return self.locks_dir / f"{safe_name(key)}.lock"

    def _try_lock(self, path: Path, create: bool = True) -> int | None:
        """Open and flock ``path``; None when another process holds it (or it is gone)."""
        while True:
            try:
                fd = open_or_replace(path, os.O_RDWR | (os.O_CREAT if create else 0))
            except FileNotFoundError:
                if create:
                    raise
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            # A releasing worker may have unlinked the file between our open and
            # flock (``_discard_lock``): then we locked an orphan inode and must
            # retry on the file now at the path.
            try:
                current = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                os.close(fd)
                continue
            held = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                return fd
            os.close(fd)

    def acquire(self, key: str, record: RunRecord) -> Lock | None:
        fd = self._try_lock(self.lock_path(key))
        if fd is None:
            return None
        record = replace(record, key=key)
        try:
            # The holder's run id in the lock file says whose lock it is (is_held_by).
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.run_id.encode(), 0)
            token = self._next_fencing_token(key)
            self.write_record(record)
        except BaseException:
            os.close(fd)
            raise
        return PidfileLock(self, fd, record, token)

    def _next_fencing_token(self, key: str) -> int:
        """Count the holders of ``key`` in ``locks/<key>.fence`` (only a holder writes it)."""
        path = self.locks_dir / f"{safe_name(key)}.fence"
        raw = read_state(path, 64)
        previous = 0
        if raw is not None:
            try:
                previous = int(raw)
            except ValueError:
                set_aside(path, "not a fencing token")  # the clock floor keeps the order
        token = next_fencing_token(previous, time.time())
        # Not fsynced: a counter a crash loses is made up for by the time floor of the next token.
        write_atomic(path, str(token).encode(), durable=False)
        return token

    def is_locked(self, key: str) -> bool:
        """Whether a process holds ``key``, read from /proc/locks so no worker is disturbed.

        Without /proc/locks it tries a shared lock, which a worker starting at
        that very moment would see as held.
        """
        try:
            info = os.stat(self.lock_path(key), follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = flock_holders()
        if held is not None:
            return file_id(info) in held
        try:
            fd = open_regular(self.lock_path(key))
        except (FileNotFoundError, NotRegularFileError):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def is_held_by(self, record: RunRecord) -> bool:
        """Whether ``record``'s own run holds its lock: the lock file names the holder's run id.

        Only a holder writes the lock file, right after taking the lock, and
        /proc/locks names the holder's PID too. Locks are this host's:
        another host's record is never held here.
        """
        if record.host != hostname():
            return False
        path = self.lock_path(record.key)
        try:
            info = os.stat(path, follow_symlinks=False)
            holder = read_bytes(path, 256).decode(errors="replace")
        except (FileNotFoundError, NotRegularFileError):
            return False
        if holder != record.run_id:
            return False
        held = flock_holders()
        if held is None:
            return self.is_locked(record.key) and verified_process(record) is not None
        return held.get(file_id(info)) == record.pid

    def _discard_lock(self, key: str) -> None:
        """Unlink the lock file of ``key`` unless someone holds it (we hold it meanwhile)."""
        path = self.lock_path(key)
        fd = self._try_lock(path, create=False)
        if fd is None:
            return
        try:
            os.unlink(path)
        finally:
            os.close(fd)

    # -- records ---------------------------------------------------------------

    @staticmethod
    def record_name(record: RunRecord) -> str:
        run_id = record.run_id
        if _RUN_ID.fullmatch(run_id):  # the usual uuid hex: no hashing when listing
            return f"{run_id}.json"
        return f"{safe_name(run_id)}.json"

    def write_record(self, record: RunRecord) -> None:
        write_atomic(self.records_dir / self.record_name(record), record.to_json().encode())

    def records(self) -> list[RunRecord]:
        """Every record; unchanged files are taken from the listing index.

        ``records/.index.json`` caches parsed records by file name and inode.
        Records are only ever replaced by rename (a new inode), so a name
        with the same inode has the same content: a listing of thousands of
        records reads only new files (``cron_worker status``). The index is
        a cache: unreadable, it is ignored and rewritten.
        """
        dir_fd = os.open(self.records_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            index = _load_index(self.records_dir, dir_fd)
            fresh: dict[str, list[Any]] = {}
            found: list[RunRecord] = []
            read = 0
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    name = entry.name
                    if not name.endswith(".json") or name.startswith("."):
                        continue
                    inode = entry.inode()
                    cached = index.get(name)
                    record = _from_index(cached, inode)
                    if record is None:
                        read += 1
                        record = self._read_record(dir_fd, name)
                        if record is None:
                            continue
                        cached = [inode, [getattr(record, f) for f in _FIELDS]]
                    fresh[name] = cached
                    found.append(record)
            if read or fresh.keys() != index.keys():
                _save_index(self.records_dir, fresh)
            return found
        finally:
            os.close(dir_fd)

    def _read_record(self, dir_fd: int, name: str) -> RunRecord | None:
        """The record in ``name``, or None: gone meanwhile, or corrupt (set aside, one warning).

        Records are replaced whole by rename, so a reader never sees half of
        one: what does not parse, or is not a regular file, is damage.
        """
        path = self.records_dir / name
        data = read_state(path, _RECORD_MAX, dir_fd=dir_fd)  # None: released while we listed, or reported
        if data is None:
            return None
        try:
            record = RunRecord.from_json(data)
            if self.record_name(record) != name:
                raise ValueError("file name does not match its run id")
        except ValueError as exc:
            set_aside(path, exc)
            return None
        return record

    def remove_record(self, record: RunRecord) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.records_dir / self.record_name(record))
        self._discard_lock(record.key)

    # -- claims ----------------------------------------------------------------

    @contextlib.contextmanager
    def _claims_guard(self) -> Iterator[None]:
        """Serialise removals of claims, so no one removes a claim another just made."""
        with flocked(self.claims_dir / ".guard"):
            yield

    @staticmethod
    def _read_claim(path: Path) -> tuple[float, str]:
        """``(expiry, token)`` of the claim at ``path``; FileNotFoundError when there is none.

        Claims are linked in whole, so damage (unparsable, not a regular file)
        counts as over: ``(0.0, "")``.
        """
        try:
            expiry, _, token = read_bytes(path, 256).decode().partition(" ")
            value = float(expiry)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, UnicodeDecodeError):
            return 0.0, ""
        return (value if math.isfinite(value) else 0.0), token.strip()

    @classmethod
    def _expired(cls, path: Path, now: float) -> bool:
        try:
            return cls._read_claim(path)[0] <= now
        except FileNotFoundError:
            return False

    @staticmethod
    def _remove_claim(path: Path) -> bool:
        """Remove an over claim (a directory or other debris in its place is set aside)."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError:
            return set_aside(path, "not a claim file") is not None
        return True

    def _claim_path(self, key: str) -> Path:
        return self.claims_dir / f"{safe_name(key)}.claim"

    def claim(self, key: str, ttl: float, token: str = "") -> bool:
        path = self._claim_path(key)
        temp = self.claims_dir / f".tmp-{uuid.uuid4().hex}"
        expiry = time.time() + ttl
        fd = open_regular(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            try:
                os.write(fd, f"{expiry!r} {token}".encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            for _ in range(2):
                try:
                    os.link(temp, path)  # atomic: exactly one linker wins
                    return True
                except FileExistsError:
                    pass
                with self._claims_guard():  # removals and extensions happen under the guard only
                    try:
                        held_until, holder = self._read_claim(path)
                    except FileNotFoundError:
                        continue
                    if held_until > time.time():
                        if not token or holder != token:
                            return False
                        if expiry > held_until:
                            os.replace(temp, path)  # our own claim, extended
                        return True
                    self._remove_claim(path)
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def claim_expiry(self, key: str) -> float | None:
        try:
            expiry, _token = self._read_claim(self._claim_path(key))
        except FileNotFoundError:
            return None
        return expiry if expiry > time.time() else None

    def release_claim(self, key: str, token: str) -> bool:
        path = self._claim_path(key)
        with self._claims_guard():
            try:
                _expiry, holder = self._read_claim(path)
            except FileNotFoundError:
                return False
            if not token or holder != token:
                return False
            return self._remove_claim(path)

    def prune_claims(self) -> int:
        now = time.time()
        removed = 0
        with self._claims_guard():
            for entry in os.scandir(self.claims_dir):
                path = Path(entry.path)
                if entry.name.endswith(".claim") and self._expired(path, now):
                    removed += self._remove_claim(path)
                elif entry.name.startswith(".tmp-"):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat(follow_symlinks=False).st_mtime < now - _STALE_TEMP_SECONDS:
                            os.unlink(path)
        return removed


def _from_index(cached: Any, inode: int) -> RunRecord | None:
    """The cached record if ``cached`` is ``[inode, values]`` for this inode and well-typed."""
    if not (isinstance(cached, list) and len(cached) == 2 and cached[0] == inode):
        return None
    try:
        return RunRecord.from_values(cached[1])
    except ValueError:
        return None  # read from the file instead; the index is rewritten


def _load_index(directory: Path, dir_fd: int) -> dict[str, Any]:
    """The listing cache, or {} (then it is rewritten): a cache is never trusted for its types."""
    raw = read_state(directory / _INDEX, dir_fd=dir_fd)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        logger.warning("ignoring unreadable records index %s/%s (rewritten): %s", directory, _INDEX, exc)
        return {}
    if isinstance(data, dict) and data.get("fields") == _FIELDS and isinstance(data.get("records"), dict):
        return data["records"]
    logger.info("ignoring an outdated records index %s/%s (rewritten)", directory, _INDEX)
    return {}


def _save_index(directory: Path, records: dict[str, list[Any]]) -> None:
    data = json.JSONEncoder(separators=(",", ":")).iterencode({"fields": _FIELDS, "records": records})
    try:
        write_atomic(directory / _INDEX, data)
    except OSError as exc:  # a cache: the next listing reads the files again
        logger.info("cannot write the records index: %s", exc)


@hookimpl(trylast=True)
def cronman_lock_backend(data_dir: Path) -> LockBackend | None:
    """The default, unless ``CRONMAN_LOCK_BACKEND`` names another backend."""
    return PidfileBackend(data_dir) if conf.get("CRONMAN_LOCK_BACKEND") in (None, "pidfile") else None


__all__ = ["PidfileBackend", "PidfileLock", "cronman_lock_backend"]
