"""Files in the data dir: safe names and whole, durable writes.

Every state file of cronman (run records, claims, the scheduler's watermark
and next-fire cache) is replaced whole: a reader sees the old or the new
content, never half, and after a crash the rename is on disk too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

logger = logging.getLogger("cronman.files")

#: Flags for opening state files: never follow a symlink, never leak into
#: children, never block (a FIFO in place of a file opens at once, and is refused).
OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
_PREFIX_LENGTH = 60


def readable_prefix(text: str) -> str:
    """``text`` with every run of unsafe characters as ``_``, cut to 60 characters."""
    return _UNSAFE.sub("_", text)[:_PREFIX_LENGTH]


def safe_name(key: str) -> str:
    """A file name for ``key``: readable prefix plus a hash, so any key is safe and unique."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable_prefix(key)}-{digest}"


class NotRegularFileError(OSError):
    """A data-dir path holds a FIFO, directory, symlink or device instead of a file."""


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o600, *, dir_fd: int | None = None) -> int:
    """Open ``path`` as a regular file with :data:`OPEN_FLAGS`; anything else is refused.

    Raises :class:`NotRegularFileError` for a symlink, FIFO, directory or
    device (never blocking on a FIFO), other :class:`OSError` as they come.
    """
    try:
        fd = os.open(path, flags | OPEN_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise NotRegularFileError(exc.errno, f"not a regular file ({exc.strerror})", str(path)) from None
        raise
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_kind(kind)})", str(path))
    return fd


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a device"


def set_aside(path: Path, reason: object) -> Path | None:
    """Move a corrupt data-dir entry out of the way (``.corrupt-<name>-<hex>``), with one warning.

    Nothing is deleted: the operator can look at it. Returns the new path,
    or None when it was gone already or cannot be moved (also warned).
    """
    target = path.with_name(f".corrupt-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("%s is corrupt (%s) and cannot be moved aside: %s", path, reason, exc.strerror)
        return None
    logger.warning("%s is corrupt (%s): moved aside to %s", path, reason, target.name)
    return target


def open_or_replace(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """:func:`open_regular`, setting aside (once) whatever non-file is in the way.

    For the data dir's own fixed files (lock files, guards, flags): a FIFO
    or directory in their place must neither hang nor stop every command.
    """
    try:
        return open_regular(path, flags)
    except NotRegularFileError as exc:
        if set_aside(path, exc.strerror) is None and os.path.lexists(path):
            raise
    return open_regular(path, flags)


@contextlib.contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the data dir's lock file ``path`` (made if missing) for the block:
    read-modify-write of shared files, serialised between local processes."""
    fd = open_or_replace(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | Iterable[str], *, durable: bool = True) -> None:
    """Replace ``path`` whole and durably: temp file (0600), fsync, rename, fsync the dir.

    ``data`` may come as text chunks, so a big file is never one big string.
    ``durable=False`` skips the fsyncs, for what a crash may lose (readers
    still see the old file or the new one, never a mix).
    A directory in the way is set aside (:func:`set_aside`); the temp file
    never outlives a failure (a full disk leaves nothing behind).
    """
    temp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600)
        try:
            if isinstance(data, bytes):
                _write_all(fd, data)
            else:
                with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as f:
                    f.writelines(data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temp, path)
        except IsADirectoryError:
            set_aside(path, "a directory in place of a file")
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_bytes(path: Path | str, limit: int | None = None, *, dir_fd: int | None = None) -> bytes:
    """The content of regular file ``path`` (at most ``limit`` bytes); see :func:`open_regular`."""
    fd = open_regular(path, dir_fd=dir_fd)
    try:
        chunks, size = [], 0
        while limit is None or size < limit:
            chunk = os.read(fd, 65536 if limit is None else min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_state(path: Path, limit: int | None = None, *, dir_fd: int | None = None) -> bytes | None:
    """A state file's bytes, or None: missing, not a regular file (set aside) or unreadable (warned).

    With ``dir_fd``, ``path.name`` is opened in that directory.
    """
    try:
        return read_bytes(path.name if dir_fd is not None else path, limit, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except NotRegularFileError as exc:
        set_aside(path, exc.strerror)
    except OSError as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc.strerror)
    return None
