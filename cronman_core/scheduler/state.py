"""The scheduler's state in ``<data dir>/scheduler/``: the watermark and the next-fire cache."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cronman_core.files import write_atomic
from cronman_core.switch import scheduler_dir

logger = logging.getLogger("cronman.scheduler")

STATE_VERSION = 1


class SchedulerState:
    """The watermark (tiny, written every tick) and the next-fire cache (when it changed).

    Both live in ``<data dir>/scheduler/``. The cache file is re-read only
    when another process replaced it, so the daemon keeps it in memory.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = scheduler_dir(data_dir)
        self.watermark_path = self.dir / "watermark.json"
        self.cache_path = self.dir / "next-fires.json"
        self._cache: dict[str, int | None] | None = None
        self._cache_as_of: float | None = None
        self._cache_stamp: tuple[int, int, int] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the state files between local processes."""
        fd = os.open(self.dir / "state.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable scheduler state %s: %s", path, exc)
            return None
        return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else None

    def read_watermark(self) -> dict[str, Any]:
        return self._read_json(self.watermark_path) or {}

    def write_watermark(self, watermark: float, pruned_at: float | None, reset: bool = False) -> float:
        """Advance the watermark to ``watermark`` (back only on ``reset``); return the stored value."""
        with self.locked():
            current = self.read_watermark()
            stored = watermark if reset else max(watermark, float(current.get("watermark") or watermark))
            pruned = max(pruned_at or 0.0, float(current.get("pruned_at") or 0.0))
            data = {"version": STATE_VERSION, "watermark": stored, "pruned_at": pruned}
            write_atomic(self.watermark_path, json.dumps(data).encode())
        return stored

    def read_cache(self, zone: str) -> tuple[dict[str, int | None] | None, float | None]:
        """The next-fire cache and the watermark it is relative to (None, None: none)."""
        try:
            info = os.stat(self.cache_path)
        except FileNotFoundError:
            return None, None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._cache_stamp:
            data = self._read_json(self.cache_path) or {}
            self._cache, self._cache_as_of = data.get("next"), data.get("as_of")
            if data.get("zone") != zone or not isinstance(self._cache, dict):
                self._cache, self._cache_as_of = None, None
            self._cache_stamp = stamp
        return self._cache, self._cache_as_of

    def write_cache(self, zone: str, as_of: float, cache: dict[str, int | None]) -> None:
        data = {"version": STATE_VERSION, "zone": zone, "as_of": as_of, "next": cache}
        write_atomic(self.cache_path, json.JSONEncoder(separators=(",", ":")).iterencode(data))
        info = os.stat(self.cache_path)
        self._cache, self._cache_as_of = cache, as_of
        self._cache_stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
