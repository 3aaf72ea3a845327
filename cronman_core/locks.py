"""The lock backend contract: worker locks, the run records beside them, fire claims.

Plugins subclass :class:`LockBackend` and :class:`Lock` (``cronman_plugins.pidfile``
is the default, ``cronman_plugins.redis.locks`` the cluster one). Every
method here is abstract: a backend that misses one cannot be instantiated,
and the error names the class and the method. Behaviour every backend must
have is pinned by :class:`cronman_core.testing.LockBackendContract`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from cronman_core.records import RunRecord


class Lock(ABC):
    """A held worker lock; released explicitly or when the process dies."""

    record: RunRecord

    @abstractmethod
    def release(self, keep_record: bool = False) -> None:
        """Release the lock; ``keep_record`` leaves the record for ``resume``."""

    @abstractmethod
    def update(self, **changes: Any) -> None:
        """Change fields of the stored record (e.g. ``killed=True``)."""


class LockBackend(ABC):
    """Worker locks, the records beside them, and exactly-once fire claims."""

    @abstractmethod
    def acquire(self, key: str, record: RunRecord) -> Lock | None:
        """Take the lock ``key`` for ``record``'s process; None when it is held."""

    @abstractmethod
    def records(self) -> list[RunRecord]:
        """Every stored record, alive or dead; corrupt ones are skipped."""

    @abstractmethod
    def is_locked(self, key: str) -> bool:
        """Whether some live process holds lock ``key`` now."""

    @abstractmethod
    def is_held_by(self, record: RunRecord) -> bool:
        """Whether the run that wrote ``record`` holds its lock now (not just anyone).

        What makes another host's record ALIVE: a dead run whose key someone
        else holds now is DEAD.
        """

    @abstractmethod
    def remove_record(self, record: RunRecord) -> None:
        """Forget a dead record (``clean``); never touches a held lock."""

    @abstractmethod
    def claim(self, key: str, ttl: float) -> bool:
        """Claim ``key`` (an entry's fire slot) once: True for exactly one caller."""

    @abstractmethod
    def prune_claims(self) -> int:
        """Drop claims whose ttl has passed; return how many."""


__all__ = ["Lock", "LockBackend"]
