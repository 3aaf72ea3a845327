"""The spawner contract: the command that starts a worker, and who starts it.

Plugins subclass :class:`Spawner` (``cronman_plugins.local`` is the default,
``cronman_plugins.prefork`` forks a warm process, ``cronman_plugins.celery``
is the distributed one); ``cronman_worker_command`` plugins rewrite a
:class:`WorkerCommand` before it is spawned. As for lock backends, the one
method every spawner needs is abstract; the others have defaults for
spawners that keep nothing warm or see no exit codes.
"""

from __future__ import annotations

import json
import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cronman_core.job import BaseCronJob


#: How a scheduled run's command says which fires it covers (JSON of :class:`ScheduledFire`).
SCHEDULED_FIRE_ENV = "CRONMAN_SCHEDULED_FIRE"


@dataclass(frozen=True)
class ScheduledFire:
    """The fires a scheduled run covers: a spawner that queues the run can expire it and report it missed."""

    #: The first fire instant it covers, how many, and the claim key of that first one (``cronman_fires_missed``).
    first: int
    count: int
    key: str
    #: The last moment it may still start (the newest fire plus the entry's grace).
    expires: float
    #: The newest fire instant it covers (the one it runs for); None from a tick that did not say.
    fire: int | None = None

    def encode(self) -> str:
        return json.dumps({"first": self.first, "count": self.count, "key": self.key, "expires": self.expires,
                           "fire": self.fire})

    @classmethod
    def decode(cls, text: str | None) -> ScheduledFire | None:
        """None for a run that is not scheduled, or an unreadable value (it then never expires)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}")
            fire = data.get("fire")
            return cls(int(data["first"]), int(data["count"]), str(data["key"]), float(data["expires"]),
                       None if fire is None else int(fire))
        except (ValueError, TypeError, KeyError):
            return None


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
    """The command that will start a worker; ``cronman_worker_command`` rewrites it.

    Wrappers change it through :meth:`wrap`, which also says how a forked
    worker (the prefork spawner: no exec) does the same thing itself. A
    command whose argv was changed any other way, or wrapped without such a
    step, can only be exec'ed: :attr:`fork_steps` is then None.
    """

    argv: list[str]
    env: dict[str, str]
    job_spec: str
    job_class: type[BaseCronJob]
    resumed: bool = False
    _steps: list[Callable[[], None]] | None = field(default_factory=list, init=False, repr=False)
    _wrapped: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._wrapped = list(self.argv)

    def wrap(self, prefix: list[str], in_fork: Callable[[], None] | None = None) -> None:
        """Put ``prefix`` before the argv; ``in_fork`` (picklable: a module-level
        function or a ``functools.partial`` of one) does its work in a forked worker."""
        if not prefix:
            return
        self.argv[:0] = prefix
        if in_fork is None or self._steps is None:
            self._steps = None
        else:
            self._steps.insert(0, in_fork)  # the innermost wrapper runs last, as exec would
        self._wrapped = list(self.argv)

    @property
    def fork_steps(self) -> list[Callable[[], None]] | None:
        """What a forked worker runs before the job, outermost wrapper first; None: exec only."""
        if self._steps is None or self.argv != self._wrapped:
            return None
        return list(self._steps)

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

    def reload(self) -> None:  # noqa: B027  (optional: most spawners keep nothing warm)
        """Get ready anew (a long-lived process's start and its SIGHUP): nothing to do by default."""

    def close(self) -> None:  # noqa: B027
        """Let go of what this spawner keeps between spawns (a long-lived process's exit)."""

    def wait(self, handle: SpawnHandle, timeout: float | None = None) -> int:
        """The exit code of the run ``handle`` started, once it ended (TimeoutError after ``timeout``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot wait for a run")


__all__ = ["SCHEDULED_FIRE_ENV", "RequestedRun", "ScheduledFire", "SpawnHandle", "Spawner", "WorkerCommand"]
