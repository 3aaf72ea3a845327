"""The cluster lock backend: worker locks, run records and fire claims in Redis.

Keys (under ``CRONMAN_REDIS_PREFIX``)::

    cronman:lock:<key>   the owner's run id (its token), with a TTL the worker renews
    cronman:fence:<key>  the last fencing token handed out for <key>
    cronman:epoch        an id set once per dataset: a new one means Redis lost its data
    cronman:stop-requests hash run id -> when someone asked that run to stop (its worker polls)
    cronman:records      hash run id -> RunRecord JSON (host, PID, start time)
    cronman:claims       sorted set fire-claim key -> expiry (Redis server time)
    cronman:claim-tokens hash fire-claim key -> the claimer's token

A worker's lock lives ``CRONMAN_REDIS_LOCK_TTL`` seconds and a thread in the
worker renews it every third of that while the lock is held, so a worker
that died (SIGKILL, lost host) frees its lock after at most one TTL. Only
the owner's token renews or deletes a lock (compare-and-delete in Lua), so
a worker whose lock expired can never release the next holder's. Claims
compare against Redis's clock, not the hosts', so skew between scheduler
hosts cannot make a slot fire twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cronman_core import conf
from cronman_core.locks import Lock, LockBackend, StoreEpoch
from cronman_core.records import RunRecord
from cronman_plugins.redis import client as rc

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

logger = logging.getLogger("cronman.plugins.redis.locks")

# The fencing token as cronman_core.locks.next_fencing_token computes it, on Redis's clock:
# the counter + 1, but never below the time in microseconds, so a Redis that lost the
# counter (restarted empty) still hands out greater tokens. Keys of the wrong type or a
# counter that is no number (damage, not cronman's writing) are repaired before anything is
# written, and named after the token, so a damaged key never leaves a lock half taken.
_ACQUIRE = """
local damaged = ''
for i, want in ipairs({'string', 'hash'}) do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= want then
    redis.call('DEL', KEYS[i])
    damaged = damaged .. ' ' .. (i == 1 and 'lock' or 'records')
  end
end
local raw = redis.pcall('GET', KEYS[3])
local counter = type(raw) == 'string' and tonumber(raw) or nil
if raw and not (counter and counter >= 0 and counter < 9007199254740992) then
  damaged = damaged .. ' fence'
  counter = 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  local t = redis.call('TIME')
  local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local token = math.max((counter or 0) + 1, floor)
  redis.call('SET', KEYS[3], string.format('%.0f', token))
  return string.format('%.0f', token) .. damaged
end
return 0
"""
# A lock renewed within its TTL that is gone was lost with Redis's data (a restart without
# persistence): it is taken again, with its record, unless another worker took it first.
# 2: renewed, and someone asked this run to stop.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif holder or not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return 2 end
return 1
"""
_RELEASE = """
local owned = redis.call('GET', KEYS[1]) == ARGV[1]
if owned then redis.call('DEL', KEYS[1]) end
if ARGV[3] == '1' then redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('HDEL', KEYS[3], ARGV[2])
return owned and 1 or 0
"""
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
# A claim already held is ours again only for the same non-empty token (a re-sent call, a
# worker confirming), and then is only ever extended.
_CLAIM = _NOW + """
local expiry = now + tonumber(ARGV[2])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held and tonumber(held) > now then
  if ARGV[3] == '' or redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[3] then return 0 end
  if expiry > tonumber(held) then redis.call('ZADD', KEYS[1], expiry, ARGV[1]) end
  return 1
end
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
_RELEASE_CLAIM = """
if ARGV[2] == '' or redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""
_EPOCH = _NOW + """
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. string.format('%.6f', now), 'NX')
return redis.call('GET', KEYS[1])
"""
_PRUNE = _NOW + """
local over = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 1, #over, 500 do
  redis.call('HDEL', KEYS[2], unpack(over, i, math.min(i + 499, #over)))
end
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""


class RedisLock(Lock):
    """A held Redis lock: renewed by a daemon thread until released."""

    def __init__(self, backend: RedisLockBackend, record: RunRecord, token: str, fencing_token: int) -> None:
        self.backend = backend
        self.record = record
        self.token = token
        self.fencing_token = fencing_token
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew, name=f"cronman-lock-renewal-{record.key}", daemon=True
        )
        self._renewer.start()

    def _renew(self) -> None:
        """Renew every third of the TTL; a lock not renewed within one TTL is lost.

        Lost when Redis says another token holds it or none does, and also
        when no renewal succeeded for a whole TTL (Redis unreachable, this
        process paused): it may have expired and been taken, so the worker
        must stop (``on_lost``) rather than run beside the next holder.
        """
        backend = self.backend
        lock_key = backend.lock_key(self.record.key)
        renewed_at = time.monotonic()
        while not self._stop.wait(backend.ttl / 3):
            if time.monotonic() - renewed_at >= backend.ttl:
                self.lost(f"not renewed for {time.monotonic() - renewed_at:.1f} s (TTL {backend.ttl:g} s)")
                return
            try:
                renewed = backend.scripts["renew"](
                    keys=[lock_key, backend.records_key, backend.stop_requests_key],
                    args=[self.token, backend.ttl_ms, self.record.run_id, self.record.to_json()],
                )
            except rc.errors() as exc:
                logger.warning("cannot renew lock %r (will retry): %s", self.record.key, exc)
                continue
            if not renewed:
                self.lost("it expired and is free or held by another worker")
                return
            renewed_at = time.monotonic()
            if renewed == 2:
                self.stop_requested()

    def update(self, **changes: Any) -> None:
        self.record = replace(self.record, **changes)
        self.backend.write_record(self.record)

    def release(self, keep_record: bool = False) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._renewer.join()
        backend = self.backend
        try:
            backend.scripts["release"](
                keys=[backend.lock_key(self.record.key), backend.records_key, backend.stop_requests_key],
                args=[self.token, self.record.run_id, "0" if keep_record else "1"],
            )
        except rc.errors() as exc:
            # The job is over; its lock expires by itself within one TTL.
            logger.warning("cannot release lock %r (it expires in %.0f s): %s", self.record.key, backend.ttl, exc)


class RedisLockBackend(LockBackend):
    """Locks, records and claims shared by every host using the same Redis database."""

    def __init__(self, ttl: float | None = None) -> None:
        self.redis: redis.Redis = rc.get_client()
        self.ttl: float = conf.get("CRONMAN_REDIS_LOCK_TTL") if ttl is None else ttl
        self.records_key = rc.key("cronman", "records")
        self.claims_key = rc.key("cronman", "claims")
        self.claim_tokens_key = rc.key("cronman", "claim-tokens")
        self.stop_requests_key = rc.key("cronman", "stop-requests")
        self.scripts: dict[str, Script] = _scripts(self.redis)

    def describe(self) -> str:
        return f"Redis records at {rc.address()} under {self.records_key!r} (every host)"

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def lock_key(self, key: str) -> str:
        return rc.key("cronman", "lock", key)

    def acquire(self, key: str, record: RunRecord) -> Lock | None:
        record = replace(record, key=key)
        token = record.run_id  # unique per run: tells whose lock it is (is_held_by)
        args: list[str | int] = [token, self.ttl_ms, record.run_id, record.to_json()]
        keys = [self.lock_key(key), self.records_key, rc.key("cronman", "fence", key)]
        with rc.reachable():
            acquired = self.scripts["acquire"](keys=keys, args=args)
        if not acquired:
            return None
        fencing_token, *damaged = str(acquired).split()
        if damaged:
            logger.warning("repaired damaged Redis keys of lock %r (%s): not cronman's values, replaced",
                           key, ", ".join(damaged))
        return RedisLock(self, record, token, int(fencing_token))

    def is_locked(self, key: str) -> bool:
        with rc.reachable():
            return bool(self.redis.exists(self.lock_key(key)))

    def is_held_by(self, record: RunRecord) -> bool:
        with rc.reachable():
            holder = self.redis.get(self.lock_key(record.key))
        if isinstance(holder, bytes):
            holder = holder.decode()
        return holder == record.run_id

    def write_record(self, record: RunRecord) -> None:
        with rc.reachable():
            self.redis.hset(self.records_key, record.run_id, record.to_json())

    def records(self) -> list[RunRecord]:
        found = []
        with rc.reachable():
            stored: dict[str, str] = self.redis.hgetall(self.records_key)  # type: ignore[assignment]
        for run_id, text in stored.items():
            try:
                found.append(RunRecord.from_json(text))
            except ValueError as exc:
                logger.warning("skipping unreadable run record %s in Redis: %s", run_id, exc)
        return found

    def remove_record(self, record: RunRecord) -> None:
        with rc.reachable():
            self.redis.hdel(self.records_key, record.run_id)
            self.redis.hdel(self.stop_requests_key, record.run_id)

    def claim(self, key: str, ttl: float, token: str = "") -> bool:
        keys = [self.claims_key, self.claim_tokens_key]
        with rc.reachable():
            return bool(self.scripts["claim"](keys=keys, args=[key, repr(float(ttl)), token]))

    def claim_expiry(self, key: str) -> float | None:
        with rc.reachable():
            score = self.redis.zscore(self.claims_key, key)
        return float(score) if score is not None and float(score) > self.time() else None

    def release_claim(self, key: str, token: str) -> bool:
        with rc.reachable():
            return bool(self.scripts["release_claim"](keys=[self.claims_key, self.claim_tokens_key], args=[key, token]))

    def request_stop(self, record: RunRecord) -> bool:
        with rc.reachable():
            self.redis.hset(self.stop_requests_key, record.run_id, repr(time.time()))
        return True

    def time(self) -> float:
        with rc.reachable():
            seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    def epoch(self) -> StoreEpoch:
        """Set once per Redis dataset: a server that lost its data gets a new one."""
        with rc.reachable():
            value = str(self.scripts["epoch"](keys=[rc.key("cronman", "epoch")], args=[uuid.uuid4().hex]))
        ident, _, since = value.partition(" ")
        try:
            return StoreEpoch(ident, float(since))
        except ValueError:  # not ours: a new dataset as far as claims go
            return StoreEpoch(value, time.time())

    def prune_claims(self) -> int:
        with rc.reachable():
            return int(self.scripts["prune"](keys=[self.claims_key, self.claim_tokens_key]))


_registered: dict[int, dict[str, Script]] = {}


def _scripts(client: redis.Redis) -> dict[str, Script]:
    """The Lua scripts, registered once per client (EVALSHA, reloaded after a Redis restart)."""
    scripts = _registered.get(id(client))
    if scripts is None:
        sources = {"acquire": _ACQUIRE, "renew": _RENEW, "release": _RELEASE, "claim": _CLAIM,
                   "release_claim": _RELEASE_CLAIM, "prune": _PRUNE, "epoch": _EPOCH}
        scripts = _registered[id(client)] = {name: client.register_script(src) for name, src in sources.items()}
    return scripts


__all__ = ["RedisLock", "RedisLockBackend"]
