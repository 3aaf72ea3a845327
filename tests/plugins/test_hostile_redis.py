"""Hostile values in Redis: whatever sits at a cronman key, each operation recovers or says one clear line.

One hypothesis test over every key the Redis plugin reads and writes: run
records, the stop requests, fire claims and their tokens, a fencing counter,
the dataset epoch, and the remote manager's status, kill list and host
reports. Each example puts there random text, random bytes (not UTF-8), or a
value of the wrong Redis type. Then every operation of the lock backend and
of the remote control either works or raises ``CronmanError`` (one line for
the command that called it), never another exception; a good record next to
the damage is still listed; and once the damage is gone, a lock is taken
with a token greater than any before it and a fire is claimed exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronman_core.errors import CronmanError
from cronman_core.records import RunRecord
from cronman_core.switch import SchedulerControl
from cronman_plugins.redis import client as rc
from cronman_plugins.redis import plugin as redis_plugin
from cronman_plugins.redis.locks import RedisLockBackend
from cronman_plugins.redis.remote import execute
from tests.support.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.redis

#: Where the damage goes: (key parts under the prefix, how the key is normally typed).
PLACES = {
    "record": (("cronman", "records"), "hash"),
    "stop request": (("cronman", "stop-requests"), "hash"),
    "claim": (("cronman", "claims"), "zset"),
    "claim token": (("cronman", "claim-tokens"), "hash"),
    "fence": (("cronman", "fence", "Hostile"), "string"),
    "lock": (("cronman", "lock", "Hostile"), "string"),
    "epoch": (("cronman", "epoch"), "string"),
    "remote status": (("cron_scheduler", "status", "host-a"), "string"),
    "remote kill": (("cron_scheduler", "kill", "host-a"), "list"),
    "remote hosts": (("cron_scheduler", "hosts"), "hash"),
}
VALUES = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.sampled_from(["", "0", "-1", "nan", "inf", "1e309", "{}", "[]", "null", '{"key": 1}', "9" * 40]),
)
WRONG_TYPES = ("string", "hash", "list", "set", "zset")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def _raw(server: RedisServer) -> Any:
    import redis

    return redis.Redis(port=server.port)  # bytes in, bytes out: values need not be UTF-8


def _put(raw: Any, key: str, kind: str, value: bytes | str) -> None:
    raw.delete(key)
    if kind == "string":
        raw.set(key, value)
    elif kind == "hash":
        raw.hset(key, "field-" + uuid.uuid4().hex[:6], value)
    elif kind == "list":
        raw.rpush(key, value)
    elif kind == "set":
        raw.sadd(key, value)
    else:
        raw.zadd(key, {value: 1.0})


class _Control(SchedulerControl):
    """A scheduler switch that only remembers what it was told."""

    def __init__(self) -> None:
        self.enabled = True

    def is_enabled(self) -> bool:
        return self.enabled

    def enable(self, workers: bool = False) -> None:
        self.enabled = True

    def disable(self, workers: bool = False) -> None:
        self.enabled = False

    def kill(self, target: str) -> list[Any]:
        return []


def _record(key: str) -> RunRecord:
    return RunRecord(key=key, job_spec=key, pid=1, host="h", create_time=None, run_id=uuid.uuid4().hex,
                     started_at="2026-12-04T00:00:00+00:00")


def _operations(backend: RedisLockBackend, good: RunRecord) -> dict[str, Callable[[], Any]]:
    """Every operation as its caller makes it (commands and ticks wrap Redis errors into one line)."""

    def lock_cycle() -> None:
        lock = backend.acquire("Hostile", _record("Hostile"))
        if lock is not None:
            lock.update()
            lock.release()

    def remote(request: str) -> Callable[[], Any]:
        return lambda: execute(request, ["host-a"], False, 1.0)

    return {
        "records": backend.records,
        "write record": lambda: backend.write_record(good),
        "is held": lambda: backend.is_held_by(good),
        "lock cycle": lock_cycle,
        "claim": lambda: backend.claim(f"fire-{uuid.uuid4().hex}", 60.0, "t"),
        "release claim": lambda: backend.release_claim("fire-x", "t"),
        "prune": backend.prune_claims,
        "epoch": backend.epoch,
        "request stop": lambda: backend.request_stop(good),
        "remote get_status": remote("get_status"),
        "remote kill": remote("kill:Hello"),
        "remote clear_status": remote("clear_status"),
        "tick applies remote requests": lambda: redis_plugin.cronman_scheduler_tick(_Control(), None),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(sorted(PLACES)), value=VALUES, wrong_type=st.sampled_from((None, *WRONG_TYPES)))
def test_hostile_values_at_every_key_give_one_line_or_a_recovery(
    redis_server: RedisServer, place: str, value: bytes | str, wrong_type: str | None
) -> None:
    from django.test import override_settings

    with override_settings(**redis_server.settings(CRONMAN_HOSTNAME="host-a")):
        backend = RedisLockBackend(ttl=5.0)
        raw = _raw(redis_server)
        good = _record("Good")
        backend.write_record(good)
        parts, kind = PLACES[place]
        key = rc.key(*parts)
        _put(raw, key, wrong_type or kind, value)
        before = int(time.time() * 1_000_000)
        for name, operation in _operations(backend, good).items():
            try:
                operation()
            except CronmanError:
                pass  # one line for the command that called it
            except Exception as exc:  # noqa: BLE001  (the point: nothing else may escape)
                pytest.fail(f"{name} with {place} = {value!r} ({wrong_type or kind}): {type(exc).__name__}: {exc}")
        if place != "record" or wrong_type in (None, "hash"):
            assert good.run_id in {r.run_id for r in _records(backend)}, place  # the good record is not lost
        # the damage removed: a lock is taken again with a greater token, a fire claimed exactly once
        raw.delete(key)
        lock = backend.acquire("Hostile", _record("Hostile"))
        assert lock is not None and lock.fencing_token >= before
        lock.release()
        fire = f"fire-{uuid.uuid4().hex}"
        assert [backend.claim(fire, 60.0, "a"), backend.claim(fire, 60.0, "b")] == [True, False]
        for leftover in raw.scan_iter(rc.key("*")):
            raw.delete(leftover)


def _records(backend: RedisLockBackend) -> list[RunRecord]:
    try:
        return backend.records()
    except CronmanError:
        return []


@pytest.mark.parametrize(("place", "kind", "value"), [
    ("fence", "string", "not a number"), ("fence", "string", "1e309"), ("fence", "hash", "x"),
    ("lock", "hash", "x"), ("record", "string", "x"),
])
def test_a_damaged_lock_key_is_repaired_with_one_warning_and_the_job_runs(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, place: str, kind: str, value: str
) -> None:
    from django.test import override_settings

    with override_settings(**redis_server.settings()):
        backend = RedisLockBackend(ttl=5.0)
        parts, _kind = PLACES[place]
        _put(_raw(redis_server), rc.key(*parts), kind, value)
        before = int(time.time() * 1_000_000)
        with caplog.at_level("WARNING", logger="cronman"):
            lock = backend.acquire("Hostile", _record("Hostile"))
        assert lock is not None and lock.fencing_token >= before  # before: one line and no run, forever
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        damaged = "records" if place == "record" else place
        assert warnings == [
            f"repaired damaged Redis keys of lock 'Hostile' ({damaged}): not cronman's values, replaced"]
        assert lock.record.run_id in {r.run_id for r in backend.records()}
        lock.release()
        again = backend.acquire("Hostile", _record("Hostile"))
        assert again is not None and again.fencing_token > lock.fencing_token
        again.release()
