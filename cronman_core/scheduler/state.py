"""The scheduler's state in ``<data dir>/scheduler/``: the watermark and the next-fire cache.

Both files are read by one validating reader each: a value of the wrong
type or range, a torn or foreign file, a FIFO or directory in their place
is reported once (a warning naming the file) and recovered from, never an
exception that stops ticks:

* a bad watermark falls back to the cache's ``as_of``, which is never later
  than the watermark and never earlier than the last fire (every fire
  rewrites the cache), so nothing is lost and nothing runs twice; with no
  usable cache, ticks start over as on a first run;
* the cache carries a digest of its body: a file that fails it is ignored
  and recomputed, so a damaged next-fire time can never silence an entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cronman_core.files import flocked, read_state, write_atomic
from cronman_core.switch import scheduler_dir

logger = logging.getLogger("cronman.scheduler")

STATE_VERSION = 1
_DIGEST_PREFIX = b"blake2b="
_DIGEST_SIZE = 16
#: State files are small; anything bigger is not ours.
_STATE_MAX = 64 << 20


@dataclass(frozen=True)
class Watermark:
    """The last tick's instant (None: none usable) and when claims were last pruned."""

    value: float | None = None
    pruned_at: float = 0.0


def _instant(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


class SchedulerState:
    """The watermark (tiny, written every tick) and the next-fire cache (when it changed).

    Both live in ``<data dir>/scheduler/``. The cache file is re-read only
    when another process replaced it, so the daemon keeps it in memory.
    """

    def __init__(self, data_dir: Path) -> None:
        self.dir = scheduler_dir(data_dir)
        self.watermark_path = self.dir / "watermark.json"
        self.cache_path = self.dir / "next-fires.json"
        self.epoch_path = self.dir / "store-epoch"
        self.spawn_failures_path = self.dir / "spawn-failures.json"
        self._cache: dict[str, int | None] | None = None
        self._cache_as_of: float | None = None
        self._cache_stamp: tuple[int, int, int] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise read-modify-write of the state files between local processes."""
        with flocked(self.dir / "state.lock"):
            yield

    @staticmethod
    def _corrupt(path: Path, problem: str, recovery: str) -> None:
        logger.warning("scheduler state %s is corrupt (%s): %s", path, problem, recovery)

    def read_watermark(self, report: bool = True) -> Watermark:
        """The stored watermark, validated; a bad one falls back to the cache's ``as_of``.

        ``report=False`` for the re-read just before a write, so that one bad
        file is reported once.
        """
        corrupt = self._corrupt if report else _quiet
        raw = read_state(self.watermark_path, _STATE_MAX)
        if raw is None:
            return Watermark()
        problem = None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            data, problem = {}, f"not JSON: {exc}"
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            data, problem = {}, problem or "not a version-1 watermark"
        value = data.get("watermark")
        if value is not None and not _instant(value):
            problem = f"bad watermark {value!r}"[:120]
        pruned = data.get("pruned_at") or 0.0
        if not _instant(pruned):
            corrupt(self.watermark_path, f"bad pruned_at {pruned!r}"[:120], "claims are pruned now")
            pruned = 0.0
        if problem is None and value is not None:
            return Watermark(float(value), float(pruned))
        _cache, as_of = self._read_cache_file(None)
        if as_of is not None:
            corrupt(self.watermark_path, problem or "no watermark",
                    "ticking on from the next-fire cache's time, no fire lost or repeated")
            return Watermark(as_of, float(pruned))
        corrupt(self.watermark_path, problem or "no watermark",
                "starting over as on a first run (older fires are not caught up)")
        return Watermark(None, float(pruned))

    def read_epoch(self) -> tuple[str | None, float | None]:
        """The lock store's epoch this host saw last (None: never, or unreadable and set aside), and, if this
        host saw it replace an older one (the store lost its data), the instant before which claims are gone."""
        raw = read_state(self.epoch_path, 256)
        try:
            text = raw.decode("ascii").strip() if raw is not None else ""
        except UnicodeDecodeError:
            text = ""
        epoch, _, lost = text.partition(" ")
        if not (epoch.isprintable() and epoch):
            return None, None
        try:
            lost_before: float | None = float(lost) if lost else None
        except ValueError:
            lost_before = None
        return epoch, lost_before if lost_before is not None and _instant(lost_before) else None

    def write_epoch(self, epoch: str, lost_before: float | None) -> None:
        text = epoch if lost_before is None else f"{epoch} {lost_before!r}"
        write_atomic(self.epoch_path, text.encode())

    def read_spawn_failures(self) -> dict[str, str]:
        """Job spec → why its last spawn failed, for entries whose fires still wait for a retry."""
        raw = read_state(self.spawn_failures_path, 1 << 20)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return {}
        return data

    def write_spawn_failures(self, failures: dict[str, str]) -> None:
        write_atomic(self.spawn_failures_path, json.dumps(failures).encode(), durable=False)

    def write_watermark(self, watermark: float, pruned_at: float | None, reset: bool = False) -> float:
        """Advance the watermark to ``watermark`` (back only on ``reset``); return the stored value."""
        with self.locked():
            current = self.read_watermark(report=False)
            stored = watermark if reset or current.value is None else max(watermark, current.value)
            pruned = max(pruned_at or 0.0, current.pruned_at)
            data = {"version": STATE_VERSION, "watermark": stored, "pruned_at": pruned}
            write_atomic(self.watermark_path, json.dumps(data).encode())
        return stored

    def read_cache(self, zone: str) -> tuple[dict[str, int | None] | None, float | None]:
        """The next-fire cache and the watermark it is relative to (None, None: none)."""
        try:
            info = os.stat(self.cache_path, follow_symlinks=False)
        except FileNotFoundError:
            return None, None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._cache_stamp:
            self._cache, self._cache_as_of = self._read_cache_file(zone)
            self._cache_stamp = stamp
        return self._cache, self._cache_as_of

    def _read_cache_file(self, zone: str | None) -> tuple[dict[str, int | None] | None, float | None]:
        """The cache if its digest and every type hold (and its zone is ``zone``, unless None)."""
        raw = read_state(self.cache_path, _STATE_MAX)
        if raw is None:
            return None, None
        body, _, trailer = raw.rstrip(b"\n").rpartition(b"\n")
        if not trailer.startswith(_DIGEST_PREFIX):
            if _older_format(raw):
                logger.info("recomputing the next-fire cache %s: an older format", self.cache_path)
            else:
                self._corrupt(self.cache_path, "no digest", "recomputed")
            return None, None
        if trailer[len(_DIGEST_PREFIX):] != _digest(body).encode():
            self._corrupt(self.cache_path, "its digest does not match", "recomputed")
            return None, None
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        cache: Any = data.get("next") if isinstance(data, dict) else None
        as_of: Any = data.get("as_of") if isinstance(data, dict) else None
        if not (
            isinstance(data, dict)
            and data.get("version") == STATE_VERSION
            and _instant(as_of)
            and isinstance(cache, dict)
            and all(value is None or (type(value) is int and value > as_of) for value in cache.values())
        ):
            self._corrupt(self.cache_path, "a value of the wrong type", "recomputed")
            return None, None
        if zone is not None and data.get("zone") != zone:
            return None, None  # the time zone changed: every next fire is recomputed
        return cache, float(as_of)

    def write_cache(self, zone: str, as_of: float, cache: dict[str, int | None]) -> None:
        data = {"version": STATE_VERSION, "zone": zone, "as_of": as_of, "next": cache}
        write_atomic(self.cache_path, _with_digest(json.JSONEncoder(separators=(",", ":")).iterencode(data)))
        info = os.stat(self.cache_path)
        self._cache, self._cache_as_of = cache, as_of
        self._cache_stamp = (info.st_ino, info.st_mtime_ns, info.st_size)


def _quiet(path: Path, problem: str, recovery: str) -> None:
    pass


def _older_format(raw: bytes) -> bool:
    """Whether ``raw`` is a cache written before the digest line (a version-1 JSON object)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("version") == STATE_VERSION


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=_DIGEST_SIZE).hexdigest()


def _with_digest(chunks: Iterable[str]) -> Iterator[str]:
    """The body's chunks, then a line with their digest (streamed: a big cache is never one string)."""
    hasher = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    for chunk in chunks:
        hasher.update(chunk.encode())
        yield chunk
    yield f"\n{_DIGEST_PREFIX.decode()}{hasher.hexdigest()}\n"
