"""The scheduler's on/off switch, and what tick hooks may do to the scheduler.

:class:`SchedulerSwitch` is two flag files in ``<data dir>/scheduler/``, so
crontab ticks, the daemon and ``cron_scheduler enable|disable`` agree on it
without building a scheduler (a bad ``TIME_ZONE`` never blocks ``disable``).
:class:`SchedulerControl` is the object handed to ``cronman_scheduler_tick``
hooks (remote control): only what plugins may call.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from cronman_core.datadir import private_subdir
from cronman_core.files import open_or_replace


def scheduler_dir(data_dir: Path) -> Path:
    """``<data dir>/scheduler``, created 0700 and held to the data dir's rules."""
    return private_subdir(data_dir, "scheduler")


def _touch(path: Path) -> None:
    os.close(open_or_replace(path, os.O_WRONLY | os.O_CREAT))


class SchedulerSwitch:
    """Whether the scheduler spawns, and whether suspended workers await a resume."""

    def __init__(self, data_dir: Path) -> None:
        directory = scheduler_dir(data_dir)
        self.disabled_path = directory / "disabled"
        self.resume_path = directory / "resume-workers"

    def is_enabled(self) -> bool:
        return not os.path.lexists(self.disabled_path)

    def disable(self) -> None:
        """Spawn nothing from now on; a pending resume request is dropped."""
        _touch(self.disabled_path)
        with contextlib.suppress(FileNotFoundError):
            self.resume_path.unlink()

    def enable(self, resume_workers: bool = False) -> None:
        """Spawn again; ``resume_workers`` asks the next tick to resume suspended workers."""
        if resume_workers:
            _touch(self.resume_path)
        with contextlib.suppress(FileNotFoundError):
            self.disabled_path.unlink()

    def take_resume_request(self) -> bool:
        """True once after ``enable(resume_workers=True)``: the caller resumes them."""
        try:
            self.resume_path.unlink()
        except FileNotFoundError:
            return False
        return True


class SchedulerControl(ABC):
    """What ``cronman_scheduler_tick`` hooks may do: switch the scheduler, kill workers."""

    @abstractmethod
    def is_enabled(self) -> bool:
        """Whether this host's scheduler spawns."""

    @abstractmethod
    def disable(self, workers: bool = False) -> None:
        """Spawn nothing from now on; with ``workers`` also suspend running workers."""

    @abstractmethod
    def enable(self, workers: bool = False) -> None:
        """Spawn again; with ``workers`` resume suspended workers at the next tick."""

    @abstractmethod
    def kill(self, spec: str | None = None) -> list[Any]:
        """Kill running workers matching ``spec`` (all when None); their entries."""
