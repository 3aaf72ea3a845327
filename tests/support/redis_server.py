"""A private redis-server on a free loopback port, for the Redis and Celery plugin tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import need, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A running redis-server without persistence; never the machine's shared one."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._pings, timeout=20)

    def restart_empty(self) -> None:
        """Stop and start again on the same port: without persistence, every key is gone."""
        self.stop()
        self.start()

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, decode_responses=True)

    def _pings(self) -> bool:
        import redis

        if self.process.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited with {self.process.returncode}")
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def settings(self, **extra: Any) -> dict[str, Any]:
        """Project settings for this server, under a fresh key prefix (tests share the server)."""
        return {
            "CRONMAN_REDIS_HOST": "127.0.0.1",
            "CRONMAN_REDIS_PORT": self.port,
            "CRONMAN_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
            **extra,
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    need(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(directory)
    try:
        yield server
    finally:
        server.stop()


def wait_gone(server: RedisServer, key: str, timeout: float = 30.0) -> None:
    wait_for(lambda: not server.client().exists(key), timeout=timeout)


__all__ = ["RedisServer", "free_port", "running_redis", "wait_gone"]
