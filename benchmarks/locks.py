"""Lock backends side by side: acquire + release round trips and fire claims per second.

The pidfile backend (a private tmp data dir), the Redis backend (its own
redis-server on a free loopback port, no persistence) and the database
backend (a throwaway database on the local PostgreSQL, 127.0.0.1:5432),
interleaved in rounds, median per round; the ratios are what to read on a
noisy machine. Claims are taken with a token and confirmed once, as a tick
does. A database lock round trip opens the worker's own session, as every
worker does.

    .venv/bin/python benchmarks/locks.py [--ops 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import django
from django.conf import settings

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server, port
        time.sleep(0.05)
    sys.exit("redis-server did not start")


PG = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres"}


def create_database() -> tuple[str, Callable[[], None]]:
    """A new PostgreSQL database; returns its name and what drops it."""
    import psycopg

    admin = psycopg.connect(host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname="postgres", autocommit=True)
    name = f"cronman_bench_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return name, drop


def per_op(ops: int, work: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(ops):
        work(i)
    return (time.perf_counter() - started) / ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cronman-bench-locks-"))
    data_dir = base / "data"
    data_dir.mkdir(mode=0o700)
    server, port = start_redis(base)
    database, drop_database = create_database()
    try:
        settings.configure(
            INSTALLED_APPS=["cronman_core", "cronman_plugins.database"], CRONMAN_DATA_DIR=str(data_dir),
            CRONMAN_REDIS_PORT=port, CRONMAN_REDIS_PREFIX="bench:", USE_TZ=True,
            DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": database, **PG}},
        )
        django.setup()
        from django.core.management import call_command

        call_command("migrate", "cronman_database", verbosity=0)
        from cronman_core.testing import LockBackendContract
        from cronman_plugins.database.locks import DatabaseLockBackend
        from cronman_plugins.pidfile import PidfileBackend
        from cronman_plugins.redis.locks import RedisLockBackend

        backends = {"pidfile": PidfileBackend(data_dir), "redis": RedisLockBackend(),
                    "postgresql": DatabaseLockBackend()}
        record = LockBackendContract.make_record("Bench")
        results: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for name, backend in backends.items():
                def lock_round_trip(i: int, backend=backend) -> None:
                    lock = backend.acquire("Bench", record)
                    assert lock is not None
                    lock.release()

                def claim(i: int, backend=backend, round_=round_) -> None:
                    key, token = f"fire-bench-{round_}-{i}", uuid.uuid4().hex
                    assert backend.claim(key, 120, token)
                    backend.claim(key, 3660, token)  # confirmed after the spawn

                results.setdefault((name, "lock"), []).append(per_op(args.ops, lock_round_trip))
                results.setdefault((name, "claim"), []).append(per_op(args.ops, claim))
        print(f"{args.ops} ops x {args.rounds} rounds, median per op (Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs)")
        names = list(backends)
        print(f"{'':20}" + "".join(f"{name:>13}" for name in names)
              + "".join(f"{name + '/pidfile':>20}" for name in names[1:]))
        for what, label in (("lock", "acquire + release"), ("claim", "claim + confirm")):
            median = {name: statistics.median(results[(name, what)]) for name in names}
            print(f"{label:20}" + "".join(f"{median[n] * 1e6:10.0f} us" for n in names)
                  + "".join(f"{median[n] / median['pidfile']:19.2f}x" for n in names[1:]))
            print(f"{'  per second':20}" + "".join(f"{1 / median[n]:13.0f}" for n in names))
    finally:
        server.terminate()
        server.wait()
        from django.db import connections

        connections.close_all()
        drop_database()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
