"""The Redis connection and key names of the plugin, from django-cronman's settings, read lazily.

redis-py is imported on first use, so a process that never talks to Redis
never pays for it. Connections are short on patience (``CRONMAN_REDIS_TIMEOUT``
seconds, one retry, no backoff): a Redis outage costs a scheduler tick one
warning, not minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cronman_core import conf
from cronman_core.errors import CronmanError

if TYPE_CHECKING:
    import redis

conf.declare(
    conf.Setting("CRONMAN_REDIS_HOST", "127.0.0.1", conf.text(optional=False)),
    conf.Setting("CRONMAN_REDIS_PORT", 6379, conf.count(1, 65535)),
    conf.Setting("CRONMAN_REDIS_DB", 0, conf.count(0)),
    conf.Setting("CRONMAN_REDIS_PASSWORD", None, conf.text(), secret=True),
    # "" keeps django-cronman's key names for remote control requests.
    conf.Setting("CRONMAN_REDIS_PREFIX", "", conf.text(optional=False, empty=True)),
    conf.Setting("CRONMAN_REDIS_TIMEOUT", 5.0, conf.seconds(0.0, strict=True)),
    conf.Setting("CRONMAN_REDIS_LOCKS", False, conf.FLAG),
    conf.Setting("CRONMAN_REDIS_LOCK_TTL", 30.0, conf.seconds(0.0, strict=True)),
    conf.Setting("CRONMAN_REMOTE_MANAGER_ENABLED", False, conf.FLAG),
)


class RedisUnavailable(CronmanError):
    """Redis could not be reached or answered with an error (exit code 1)."""


def address() -> str:
    """``host:port/db``, for messages."""
    return f"{conf.get('CRONMAN_REDIS_HOST')}:{conf.get('CRONMAN_REDIS_PORT')}/{conf.get('CRONMAN_REDIS_DB')}"


def key(*parts: str) -> str:
    """A key under ``CRONMAN_REDIS_PREFIX``, so projects and tests can share a server."""
    return conf.get("CRONMAN_REDIS_PREFIX") + ":".join(parts)


_clients: dict[tuple[Any, ...], redis.Redis] = {}
_clients_lock = threading.Lock()


def get_client() -> redis.Redis:
    """A client for the configured server (one connection pool per process and address)."""
    params = (
        conf.get("CRONMAN_REDIS_HOST"),
        conf.get("CRONMAN_REDIS_PORT"),
        conf.get("CRONMAN_REDIS_DB"),
        conf.get("CRONMAN_REDIS_TIMEOUT"),
        conf.get("CRONMAN_REDIS_PASSWORD"),
    )
    with _clients_lock:
        client = _clients.get(params)
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            host, port, db, timeout, password = params
            client = _clients[params] = redis.Redis(
                host=host,
                port=port,
                db=db,
                password=password,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
                decode_responses=True,
                # cronman writes UTF-8 only: other bytes at its keys are damage, read as U+FFFD so that
                # parsing refuses them with a warning instead of a UnicodeDecodeError escaping
                encoding_errors="replace",
            )
        return client


def errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "Redis is unavailable" (redis-py imported lazily)."""
    import redis

    return (redis.RedisError,)  # redis-py wraps socket errors in its ConnectionError / TimeoutError


def unavailable(exc: BaseException) -> RedisUnavailable:
    """One line naming the server and the cause."""
    return RedisUnavailable(f"Redis at {address()} is unavailable: {exc}")


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a Redis error into :class:`RedisUnavailable`: one line for the user, exit code 1."""
    try:
        yield
    except errors() as exc:
        raise unavailable(exc) from exc
