"""Files in the data dir: safe names and whole, durable writes.

Every state file of cronman (run records, claims, the scheduler's watermark
and next-fire cache) is replaced whole: a reader sees the old or the new
content, never half, and after a crash the rename is on disk too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

#: Flags for opening state files: never follow a symlink, never leak into children.
OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
_PREFIX_LENGTH = 60


def readable_prefix(text: str) -> str:
    """``text`` with every run of unsafe characters as ``_``, cut to 60 characters."""
    return _UNSAFE.sub("_", text)[:_PREFIX_LENGTH]


def safe_name(key: str) -> str:
    """A file name for ``key``: readable prefix plus a hash, so any key is safe and unique."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable_prefix(key)}-{digest}"


def write_atomic(path: Path, data: bytes | Iterable[str]) -> None:
    """Replace ``path`` whole and durably: temp file (0600), fsync, rename, fsync the dir.

    ``data`` may come as text chunks, so a big file is never one big string.
    """
    temp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600)
    try:
        try:
            if isinstance(data, bytes):
                _write_all(fd, data)
            else:
                with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as f:
                    f.writelines(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
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


def read_bytes(path: Path) -> bytes:
    """The whole content of ``path``, refusing a symlink."""
    fd = os.open(path, os.O_RDONLY | OPEN_FLAGS)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
