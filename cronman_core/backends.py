"""Interfaces of the pluggable backends: lock backend, spawner, worker command.

Plugins subclass these; an abstract method that is not overridden raises an
error naming the class and method. Behaviour every implementation must have
is pinned by the contract tests in ``cronman_core.testing``.
"""

from __future__ import annotations

import json
import shlex
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cronman_core.job import BaseCronJob


@dataclass
class RunRecord:
    """What a lock backend keeps about a worker: enough to prove it is that worker."""

    key: str
    job_spec: str
    pid: int
    host: str
    create_time: float | None
    run_id: str
    started_at: str
    can_resume: bool = False
    killed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse a record; raise ValueError for anything that is not a whole record."""
        try:
            data = json.loads(text)
            record = cls(**data)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"corrupt run record: {exc}") from exc
        if not isinstance(record.pid, int) or not isinstance(record.key, str):
            raise ValueError("corrupt run record: bad pid or key")
        return record


class Lock(ABC):
    """A held worker lock; released explicitly or when the process dies."""

    record: RunRecord

    @abstractmethod
    def release(self, keep_record: bool = False) -> None:
        """Release the lock; ``keep_record`` leaves the record for ``resume``."""
        raise NotImplementedError(f"{type(self).__name__}.release")

    def update(self, **changes: Any) -> None:
        """Change fields of the stored record (e.g. ``killed=True``)."""
        raise NotImplementedError(f"{type(self).__name__}.update")


class LockBackend(ABC):
    """Worker locks, the records beside them, and exactly-once fire claims."""

    @abstractmethod
    def acquire(self, key: str, record: RunRecord) -> Lock | None:
        """Take the lock ``key`` for ``record``'s process; None when it is held."""
        raise NotImplementedError(f"{type(self).__name__}.acquire")

    @abstractmethod
    def records(self) -> list[RunRecord]:
        """Every stored record, alive or dead; corrupt ones are skipped."""
        raise NotImplementedError(f"{type(self).__name__}.records")

    @abstractmethod
    def is_locked(self, key: str) -> bool:
        """Whether some live process holds lock ``key`` now."""
        raise NotImplementedError(f"{type(self).__name__}.is_locked")

    @abstractmethod
    def remove_record(self, record: RunRecord) -> None:
        """Forget a dead record (``clean``); never touches a held lock."""
        raise NotImplementedError(f"{type(self).__name__}.remove_record")

    @abstractmethod
    def claim(self, key: str, ttl: float) -> bool:
        """Claim ``key`` (an entry's fire slot) once: True for exactly one caller."""
        raise NotImplementedError(f"{type(self).__name__}.claim")

    @abstractmethod
    def prune_claims(self) -> int:
        """Drop claims whose ttl has passed; return how many."""
        raise NotImplementedError(f"{type(self).__name__}.prune_claims")


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
        raise NotImplementedError(f"{type(self).__name__}.spawn")
