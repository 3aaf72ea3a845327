"""The spawner contract: the command that starts a worker, and who starts it.

Plugins subclass :class:`Spawner` (``cronman_plugins.local`` is the default,
``cronman_plugins.celery`` the distributed one); ``cronman_worker_command``
plugins rewrite a :class:`WorkerCommand` before it is spawned. As for lock
backends, every method here is abstract.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cronman_core.job import BaseCronJob


@dataclass(frozen=True)
class RequestedRun:
    """A run asked for outside the schedule (``cronman_requested_runs``).

    ``env`` is added to the worker's environment (a task id, say), so the
    source needs no process-global state to recognise its worker.
    """

    job_spec: str
    env: dict[str, str] = field(default_factory=dict)
    resumed: bool = False


@dataclass
class WorkerCommand:
    """The command that will start a worker; ``cronman_worker_command`` rewrites it."""

    argv: list[str]
    env: dict[str, str]
    job_spec: str
    job_class: type[BaseCronJob]
    resumed: bool = False

    def shell_line(self) -> str:
        """The argv as one shell-quoted line (for wrappers that take ``-c``)."""
        return shlex.join(self.argv)


@dataclass
class SpawnHandle:
    """What a spawner returns: a PID for local workers, an id for remote ones."""

    job_spec: str
    pid: int | None = None
    log_path: str | None = None
    remote_id: str | None = None


class Spawner(ABC):
    """Starts a worker for a command without waiting for it."""

    @abstractmethod
    def spawn(self, command: WorkerCommand) -> SpawnHandle:
        """Start ``command``; raise for a run that could not be started."""


__all__ = ["RequestedRun", "SpawnHandle", "Spawner", "WorkerCommand"]
