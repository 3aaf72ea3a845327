"""The lock backend contract: worker locks, the run records beside them, fire claims.

Plugins subclass :class:`LockBackend` and :class:`Lock` (``cronman_plugins.pidfile``
is the default, ``cronman_plugins.redis.locks`` the cluster one). Every
method here is abstract: a backend that misses one cannot be instantiated,
and the error names the class and the method. Behaviour every backend must
have is pinned by :class:`cronman_core.testing.LockBackendContract`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from cronman_core.records import RunRecord

logger = logging.getLogger("cronman.locks")

#: How a scheduled worker learns the fire claims its start confirms.
FIRE_CLAIMS_ENV = "CRONMAN_FIRE_CLAIMS"


@dataclass(frozen=True)
class StoreEpoch:
    """An id set once per dataset of a shared store, and when it was set (the store's clock)."""

    id: str
    since: float


def next_fencing_token(previous: int, now: float) -> int:
    """The token after ``previous``: greater than it, and than every earlier one even if the
    stored counter was lost (the time in microseconds only grows)."""
    return max(previous + 1, int(now * 1_000_000))


class Lock(ABC):
    """A held worker lock; released explicitly or when the process dies."""

    record: RunRecord
    #: Greater than every earlier holder's of the same key: a store that keeps the highest
    #: token it has seen can refuse the writes of a holder that lost the lock (fencing).
    fencing_token: int = 0
    #: Called, from another thread, when the backend finds the lock lost while held.
    on_lost: Callable[[], None] | None = None
    #: Called, from another thread, when someone asked this run to stop (``request_stop``).
    on_stop_requested: Callable[[], None] | None = None

    _stop_asked = False

    def lost(self, why: str) -> None:
        """The backend found the lock lost while held: say why and call :attr:`on_lost`."""
        logger.error("lock %r lost: %s", self.record.key, why)
        if self.on_lost is not None:
            self.on_lost()

    def stop_requested(self) -> None:
        """The backend found a stop request for this run: call :attr:`on_stop_requested`, once."""
        if self._stop_asked or self.on_stop_requested is None:
            return
        self._stop_asked = True
        logger.warning("run %s of %r: stop requested", self.record.run_id, self.record.key)
        self.on_stop_requested()

    @abstractmethod
    def release(self, keep_record: bool = False) -> None:
        """Release the lock; ``keep_record`` leaves the record for ``resume``."""

    @abstractmethod
    def update(self, **changes: Any) -> None:
        """Change fields of the stored record (e.g. ``killed=True``)."""


class LockBackend(ABC):
    """Worker locks, the records beside them, and exactly-once fire claims."""

    #: Whether the records are in the data dir (this host, this user and settings) rather than a shared store.
    in_data_dir: ClassVar[bool] = False

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
    def claim(self, key: str, ttl: float, token: str = "") -> bool:
        """Claim ``key`` (an entry's fire slot) for ``ttl`` seconds: True for exactly one token.

        The same non-empty ``token`` claims again while it holds the claim (a
        retried call, the worker confirming its start) and moves its expiry
        to at least now + ``ttl``; any other caller gets False until the
        claim expires or its holder releases it.
        """

    @abstractmethod
    def release_claim(self, key: str, token: str) -> bool:
        """Drop ``key``'s claim if ``token`` holds it (its spawn failed), so a later tick can retry."""

    @abstractmethod
    def prune_claims(self) -> int:
        """Drop claims whose ttl has passed; return how many."""

    def claim_expiry(self, key: str) -> float | None:
        """When ``key``'s claim lapses, on this backend's clock (:meth:`time`, else this host's); None if unheld.

        A tick that loses a fire's claim asks: a claim that lapses within
        ``CRONMAN_CLAIM_PENDING`` is still pending (its tick may have died
        before the spawn), so the tick keeps its watermark before that fire
        and tries it again once the claim lapses. The default, None, takes
        every lost claim as final (a backend that cannot tell).
        """
        return None

    def describe(self) -> str:
        """Where this backend keeps its records, for operators (``status``, the daemon's start-up line)."""
        return type(self).__name__

    def request_stop(self, record: RunRecord) -> bool:
        """Ask the run of ``record``, on whatever host, to stop itself; False if this backend cannot.

        The worker learns it from its lock (``Lock.on_stop_requested``) and
        signals its own process group, so no host signals a process on the
        word of a store. A backend of one host returns False: its workers are
        signalled directly, after proving themselves.
        """
        return False

    def time(self) -> float | None:
        """The shared store's clock (Unix seconds), or None for a store of this host alone.

        Schedulers sharing a store decide on its clock, so hosts whose clocks
        disagree still agree on which fires are due (a host hours behind
        would otherwise fire again what the others ran once its claims had
        expired).
        """
        return None

    def epoch(self) -> StoreEpoch | None:
        """The store's current epoch, which changes when the store loses its data; None if it cannot.

        A store that can lose its claims (a Redis without persistence that
        restarted empty) returns one; a scheduler that finds it changed
        starts none of the due fires from before the new epoch, since another
        host may have run them (docs/redis.md). A store that keeps its data
        as long as the scheduler's own state (the data dir) returns None.
        """
        return None


@dataclass(frozen=True)
class FireClaims:
    """The fire claims one tick made for one run, with its token and their full ttl.

    A tick claims for a short pending ttl, then confirms (claims again with
    the same token and the full ttl) once the spawn succeeded; the worker
    confirms too as it starts. A tick that died before the spawn leaves
    claims that lapse, so a later tick retries the fire within its grace.
    """

    token: str
    ttl: float
    keys: tuple[str, ...]

    def confirm(self, backend: LockBackend) -> None:
        for key in self.keys:
            backend.claim(key, self.ttl, self.token)

    def release(self, backend: LockBackend) -> None:
        for key in self.keys:
            backend.release_claim(key, self.token)

    def encode(self) -> str:
        return json.dumps([self.token, self.ttl, list(self.keys)], separators=(",", ":"))

    @classmethod
    def from_env(cls) -> FireClaims | None:
        """The claims in :data:`FIRE_CLAIMS_ENV` (taken out of the environment), None if none or bad."""
        text = os.environ.pop(FIRE_CLAIMS_ENV, None)
        if text is None:
            return None
        try:
            token, ttl, keys = json.loads(text)
            if not (isinstance(token, str) and token and type(ttl) in (int, float) and math.isfinite(ttl)
                    and isinstance(keys, list) and all(isinstance(k, str) and k for k in keys)):
                raise ValueError("wrong types")
        except (TypeError, ValueError) as exc:
            logger.warning("ignoring a malformed %s: %s", FIRE_CLAIMS_ENV, exc)
            return None
        return cls(token, float(ttl), tuple(keys))


__all__ = ["FIRE_CLAIMS_ENV", "FireClaims", "Lock", "LockBackend", "StoreEpoch", "next_fencing_token"]
