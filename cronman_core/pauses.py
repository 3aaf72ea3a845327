"""Paused jobs: who paused which job, when and why; and failed runs in a row, for ``pause_after_failures``.

A paused job's fires are recorded as missed (``paused: <reason>``) and
nothing of it is started by the scheduler. The store comes from the
``cronman_pause_store`` hook (the history app keeps pauses in the database,
where every host and the admin see them); without one, this module's
:class:`FilePauseStore` keeps them in the data dir, for the schedulers that
share it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cronman_core.datadir import private_subdir
from cronman_core.errors import CronmanError
from cronman_core.files import flocked, read_bytes, write_atomic


class PauseStoreError(CronmanError):
    """The pause store cannot be read or written (one line: what and why)."""


@dataclass(frozen=True)
class Pause:
    """Why a job is paused, by whom (``user@host``, or ``auto`` for ``pause_after_failures``), since when."""

    job_name: str
    reason: str
    paused_by: str
    paused_at: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"paused by {self.paused_by} at {self.paused_at}: {self.reason}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class PauseStore(ABC):
    """Where paused jobs and failure streaks are kept; every scheduler of a cluster must read the same one."""

    @abstractmethod
    def paused(self) -> dict[str, Pause]:
        """Every paused job, by job name."""

    @abstractmethod
    def pause(self, pause: Pause) -> None:
        """Pause ``pause.job_name`` (a new reason replaces the old one)."""

    @abstractmethod
    def unpause(self, job_name: str) -> Pause | None:
        """Unpause a job; the pause it had (None: it was not paused). Its failure streak restarts."""

    @abstractmethod
    def count_outcome(self, job_name: str, failed: bool) -> int:
        """Record one finished run; return how many runs in a row have now failed (0 after a success)."""


class FilePauseStore(PauseStore):
    """Pauses and failure streaks as JSON files in ``<data dir>/pauses``, changed under an ``flock``."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = private_subdir(Path(data_dir), "pauses")
        self.pauses_path = self.directory / "paused.json"
        self.streaks_path = self.directory / "failures.json"

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(read_bytes(path, 1 << 20))
        except (FileNotFoundError, ValueError):
            return {}  # none yet, or torn by a crash: pauses are re-set by hand, streaks restart
        return data if isinstance(data, dict) else {}

    def paused(self) -> dict[str, Pause]:
        found = {}
        for name, fields in self._read(self.pauses_path).items():
            with contextlib.suppress(TypeError):
                found[name] = Pause(**fields)
        return found

    def pause(self, pause: Pause) -> None:
        with flocked(self.directory / ".lock"):
            data = self._read(self.pauses_path)
            data[pause.job_name] = asdict(pause)
            write_atomic(self.pauses_path, json.dumps(data, indent=1).encode())

    def unpause(self, job_name: str) -> Pause | None:
        with flocked(self.directory / ".lock"):
            data = self._read(self.pauses_path)
            fields = data.pop(job_name, None)
            write_atomic(self.pauses_path, json.dumps(data, indent=1).encode())
            streaks = self._read(self.streaks_path)
            if streaks.pop(job_name, None) is not None:
                write_atomic(self.streaks_path, json.dumps(streaks).encode())
        try:
            return Pause(**fields) if fields else None
        except TypeError:
            return None

    def count_outcome(self, job_name: str, failed: bool) -> int:
        with flocked(self.directory / ".lock"):
            streaks = self._read(self.streaks_path)
            count = int(streaks.get(job_name, 0)) + 1 if failed else 0
            if count or job_name in streaks:
                streaks[job_name] = count
                write_atomic(self.streaks_path, json.dumps(streaks).encode(), durable=False)
            return count


__all__ = ["FilePauseStore", "Pause", "PauseStore", "PauseStoreError", "now_iso"]
