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

DEFAULTS: dict[str, Any] = {
    "CRONMAN_REDIS_HOST": "127.0.0.1",
    "CRONMAN_REDIS_PORT": 6379,
    "CRONMAN_REDIS_DB": 0,
    "CRONMAN_REDIS_PASSWORD": None,
    # "" keeps django-cronman's key names for remote control requests.
    "CRONMAN_REDIS_PREFIX": "",
    "CRONMAN_REDIS_TIMEOUT": 5.0,
    "CRONMAN_REDIS_LOCKS": False,
    "CRONMAN_REDIS_LOCK_TTL": 30.0,
}


class RedisUnavailable(CronmanError):
    """Redis could not be reached or answered with an error (exit code 1)."""


def setting(name: str) -> Any:
    return conf.get(name, DEFAULTS[name])


def address() -> str:
    """``host:port/db``, for messages."""
    return f"{setting('CRONMAN_REDIS_HOST')}:{setting('CRONMAN_REDIS_PORT')}/{setting('CRONMAN_REDIS_DB')}"


def key(*parts: str) -> str:
    """A key under ``CRONMAN_REDIS_PREFIX``, so projects and tests can share a server."""
    return str(setting("CRONMAN_REDIS_PREFIX")) + ":".join(parts)


_clients: dict[tuple[Any, ...], redis.Redis] = {}
_clients_lock = threading.Lock()


def get_client() -> redis.Redis:
    """A client for the configured server (one connection pool per process and address)."""
    params = (
        setting("CRONMAN_REDIS_HOST"),
        int(setting("CRONMAN_REDIS_PORT")),
        int(setting("CRONMAN_REDIS_DB")),
        float(setting("CRONMAN_REDIS_TIMEOUT")),
        setting("CRONMAN_REDIS_PASSWORD"),
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
