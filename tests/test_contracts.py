"""The backend contracts (``cronman_core.locks``, ``cronman_core.spawners``): one abstract idiom.

A backend that misses a method cannot be made, and the error names the
class and the method, before anything runs.
"""

from __future__ import annotations

import pytest

from cronman_core.locks import Lock, LockBackend
from cronman_core.spawners import Spawner


class HalfLock(Lock):
    def release(self, keep_record: bool = False) -> None:
        pass


class HalfBackend(LockBackend):
    def acquire(self, key, record):
        return None


class NoSpawn(Spawner):
    pass


@pytest.mark.parametrize(
    "cls, missing",
    [
        (HalfLock, ["update"]),
        (HalfBackend, ["claim", "is_locked", "prune_claims", "records", "release_claim", "remove_record"]),
        (NoSpawn, ["spawn"]),
    ],
)
def test_a_missing_method_is_named_with_its_class(cls, missing):
    with pytest.raises(TypeError) as info:
        cls()
    message = str(info.value)
    assert cls.__name__ in message
    for name in missing:
        assert name in message
