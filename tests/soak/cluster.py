"""The cluster soak: three scheduler hosts in daemon mode on one shared lock store, under chaos.

Each host is a project with its own data dir and ``CRONMAN_HOSTNAME``; all
share one Redis (a private redis-server), one PostgreSQL or one MariaDB
database. The
schedule has 50 entries every minute: 45 PARAMS-locked ``SoakRun:eN`` and
5 CLASS-locked ``SoakLockedN`` that work 45 s of each minute. A chaos driver SIGKILLs and
restarts schedulers, SIGSTOPs CLASS-locked workers past the lock TTL, and
restarts redis-server empty or terminates database sessions. At the end a
ledger, built from the schedulers' logs (which fires each run covers), the
missed fires they report (``tests/soak/ledger_plugin.py``) and the jobs'
own marks, proves for every slot: ran exactly once, or missed with a
reason; no CLASS-locked run did work after a run with a greater fencing
token began, except (Redis that lost its data) for less than one lock
renewal, every such write carrying the smaller token that a fencing store
refuses; no lock left held; no worker left running.

Used by ``tests/soak/test_cluster_soak.py`` (short, in CI) and
``benchmarks/cluster_soak.py`` (long).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from cronman_core.testing import CronmanProject
from tests.soak.ledger import Ledger, Tally
from tests.support import cluster
from tests.support.cluster import MARIADB
from tests.support.redis_server import RedisServer

PG = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres"}
TTL = 3.0
#: A tick SIGKILLed after its claims leaves them pending this long; then any host's tick retries the fire.
CLAIM_PENDING = 20.0
HOSTS = ("host-a", "host-b", "host-c")
LOCKED = 5
#: A daemon not gone this long after its SIGTERM is stuck: a failure of the soak (its stacks are logged).
STOP_WAIT = 90.0
#: A CLASS-locked run works this long: most of each minute, so the chaos finds one to pause.
LOCKED_SECONDS = 45


def schedule(entries: int = 50) -> tuple[tuple[str, str], ...]:
    locked = tuple(("* * * * *", f"SoakLocked{i}:l{i},seconds={LOCKED_SECONDS}") for i in range(LOCKED))
    return locked + tuple(("* * * * *", f"SoakRun:e{i}") for i in range(entries - LOCKED))


@dataclass
class Report(Tally):
    """What the ledger found."""

    backend: str
    runs_without_start_line: Counter[str] = field(default_factory=Counter)
    lock_skips: int = 0
    lost_lock_exits: int = 0
    #: Work of a CLASS-locked run after a run with a greater token began: (job, its token, seconds after).
    stale_writes: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def stale_for(self) -> float:
        """How long after a newer run began the last stale write came."""
        return max((late for _job, _token, late in self.stale_writes), default=0.0)

    def summary(self) -> str:
        return (f"{self.backend}: {self.tally()}; {self.lock_skips} lock skips, {self.lost_lock_exits} lost-lock "
                f"stops, {len(self.stale_writes)} stale locked writes (at most {self.stale_for:.2f} s late), "
                f"{self.left()}")


# -- the shared store ---------------------------------------------------------------------------


class Store:
    """The lock store the hosts share, and the faults it can suffer."""

    backend = ""
    apps: list[str] = []

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def fault(self, rng: random.Random) -> str:
        raise NotImplementedError

    def locks_held(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class RedisStore(Store):
    backend = "redis"

    def __init__(self, base: Path) -> None:
        self.server = RedisServer(base / "redis")
        self._settings = self.server.settings(CRONMAN_LOCK_BACKEND="redis", CRONMAN_REDIS_LOCK_TTL=TTL)

    def settings(self) -> dict[str, Any]:
        return self._settings

    def fault(self, rng: random.Random) -> str:
        self.server.restart_empty()
        return "redis restarted empty"

    def locks_held(self) -> list[str]:
        prefix = self.settings()["CRONMAN_REDIS_PREFIX"]
        return sorted(self.server.client().scan_iter(f"{prefix}cronman:lock:*"))

    def close(self) -> None:
        self.server.stop()


class DatabaseStore(Store):
    """A throwaway database with the database backend's tables."""

    apps = ["cronman_plugins.database"]
    engine = ""
    server: dict[str, str] = {}

    def __init__(self, base: Path) -> None:
        self.name = f"cronman_soak_{uuid.uuid4().hex[:12]}"
        self.create()
        self.databases = {"default": {"ENGINE": self.engine, "NAME": self.name, **self.server}}
        migrator = cluster.make_host(base, "migrator", self.apps, DATABASES=self.databases)
        result = migrator.run("migrate", "cronman_database", "--noinput", "-v", "0")
        if result.returncode:
            raise AssertionError(result.stderr)

    def create(self) -> None:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {"DATABASES": self.databases, "CRONMAN_LOCK_BACKEND": "database", "CRONMAN_DB_LOCK_TTL": TTL}

    def sessions(self) -> list[int]:
        """The cronman sessions on the soak's database (the admin's own left out)."""
        raise NotImplementedError

    def terminate(self, session: int) -> None:
        raise NotImplementedError

    def fault(self, rng: random.Random) -> str:
        sessions = self.sessions()
        if not sessions:
            return ""
        self.terminate(rng.choice(sessions))
        return "database session terminated"


class PostgresStore(DatabaseStore):
    backend = "database"
    engine = "django.db.backends.postgresql"
    server = PG

    def create(self) -> None:
        import psycopg

        self.admin = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5,
                                     host=PG["HOST"], port=PG["PORT"], user=PG["USER"])
        self.admin.execute(f'CREATE DATABASE "{self.name}"')

    def sessions(self) -> list[int]:
        rows = self.admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = "
                                  "'cronman' AND pid <> pg_backend_pid()", [self.name]).fetchall()
        return [row[0] for row in rows]

    def terminate(self, session: int) -> None:
        self.admin.execute("SELECT pg_terminate_backend(%s)", [session])

    def locks_held(self) -> list[str]:
        rows = self.admin.execute("SELECT l.pid::text FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                                  "WHERE l.locktype = 'advisory' AND d.datname = %s", [self.name]).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.close()


class MariaDBStore(DatabaseStore):
    backend = "mariadb"
    engine = "django.db.backends.mysql"
    server = MARIADB

    def create(self) -> None:
        import MySQLdb

        self.admin = MySQLdb.connect(host=MARIADB["HOST"], port=int(MARIADB["PORT"]), user=MARIADB["USER"],
                                     passwd=MARIADB["PASSWORD"], connect_timeout=5)
        self.admin.autocommit(True)
        self._sql(f"CREATE DATABASE `{self.name}`")

    def _sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.admin.cursor() as cursor:
            cursor.execute(statement, params or None)
            return list(cursor.fetchall()) if cursor.description else []

    def sessions(self) -> list[int]:
        rows = self._sql("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                         self.name)
        return [int(row[0]) for row in rows]

    def terminate(self, session: int) -> None:
        with contextlib.suppress(Exception):  # it may have ended meanwhile
            self._sql(f"KILL {int(session)}")

    def locks_held(self) -> list[str]:
        # GET_LOCK locks live and die with their sessions: none may be left on the soak's database.
        return [str(session) for session in self.sessions()]

    def close(self) -> None:
        self._sql(f"DROP DATABASE IF EXISTS `{self.name}`")
        self.admin.close()


STORES: dict[str, type[Store]] = {"redis": RedisStore, "database": PostgresStore, "mariadb": MariaDBStore}


@contextlib.contextmanager
def shared_store(backend: str, base: Path) -> Iterator[Store]:
    store: Store = STORES[backend](base)
    try:
        yield store
    finally:
        store.close()


# -- the hosts --------------------------------------------------------------------------------


class Host:
    """One scheduler host: its project and its daemon (restartable), logging to a file."""

    def __init__(self, base: Path, name: str, store: Store, jobs: tuple[tuple[Any, ...], ...], **extra: Any) -> None:
        self.name = name
        self.project: CronmanProject = cluster.make_host(
            base, name, store.apps, jobs, CRONMAN_PLUGINS=["tests.soak.ledger_plugin"], CRONMAN_KILL_GRACE=2,
            CRONMAN_CLAIM_PENDING=CLAIM_PENDING, **store.settings(), **extra,
        )
        self.log = self.project.path / "scheduler.log"
        self.daemon: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            # PYTHONFAULTHANDLER: a SIGABRT (see stop) writes every thread's stack into the log
            self.daemon = self.project.popen("cron_scheduler", "daemon", stdout=log, stderr=subprocess.STDOUT,
                                             env={"PYTHONFAULTHANDLER": "1"})

    def kill(self) -> None:
        assert self.daemon is not None
        self.daemon.kill()
        self.daemon.wait()

    def stop(self) -> bool:
        """SIGTERM, as systemd stops it. False if it did not exit within :data:`STOP_WAIT`: its threads' stacks
        then go to its log (SIGABRT), and it is SIGKILLed."""
        if self.daemon is None or self.daemon.poll() is not None:
            return True
        self.daemon.terminate()
        try:
            self.daemon.wait(timeout=STOP_WAIT)
            return True
        except subprocess.TimeoutExpired:
            self.daemon.send_signal(signal.SIGABRT)
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            return False


def _locked_workers(hosts: list[Host]) -> list[int]:
    """PIDs of CLASS-locked workers inside run() now (entered, not exited, alive)."""
    open_runs: dict[int, bool] = {}
    for host in hosts:
        for mark in host.project.read_marks():
            if mark.get("job", "").startswith("SoakLocked"):
                if mark["event"] == "enter":
                    open_runs[mark["pid"]] = True
                elif mark["event"] == "exit":
                    open_runs.pop(mark["pid"], None)
    return [pid for pid in open_runs if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def _chaos(hosts: list[Host], store: Store, rng: random.Random, until: float, report: Report) -> None:
    """One fault every 6 to 14 s until ``until``; each kind in turn, in a random order."""
    kinds: list[str] = []
    while True:
        wait = rng.uniform(6, 14)
        if time.time() + wait > until:
            break
        time.sleep(wait)
        if not kinds:
            kinds = rng.sample(["kill scheduler", "pause locked worker", "store"], 3)
        action = kinds.pop()
        if action == "kill scheduler":
            host = rng.choice(hosts)
            host.kill()
            time.sleep(rng.uniform(0, 5))
            host.start()
            report.faults["scheduler SIGKILLed and restarted"] += 1
        elif action == "pause locked worker":
            workers = _locked_workers(hosts)
            if not workers:
                continue
            pid = rng.choice(workers)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                time.sleep(rng.uniform(TTL + 1.5, 20))  # past the TTL, maybe past the next run's start
                os.kill(pid, signal.SIGCONT)
                report.faults["locked worker SIGSTOPped past the TTL"] += 1
        else:
            done = store.fault(rng)
            if done:
                report.faults[done] += 1


# -- the ledger ---------------------------------------------------------------------------------

_STARTED = re.compile(r"started (\S+) for its (.+?) fire(?:, catching up (\d+) earlier fire\(s\) from (.+?) in this "
                      r"one run)? \(")


def _when(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S %Z").replace(tzinfo=dt.UTC).timestamp()


def ledger(hosts: list[Host], jobs: tuple[tuple[str, str], ...], first: float, last: float, report: Report) -> None:
    """Every slot of every entry from ``first`` to ``last`` (whole minutes): once, or missed with a reason.

    A run counts from its scheduler's ``started`` line as well as from its
    worker's mark (``tests/soak/ledger.py``): two runs of one slot show in
    either.
    """
    covered: dict[tuple[str, float], int] = defaultdict(int)
    started: Counter[str] = Counter()
    account = Ledger(jobs, _spec_of)
    for host in hosts:
        for match in _STARTED.finditer(host.log.read_text()):
            spec, newest, earlier, oldest = match.groups()
            start = _when(oldest) if oldest else _when(newest)
            for slot in range(int(start), int(_when(newest)) + 1, 60):
                covered[(spec, float(slot))] += 1
            started[spec] += 1
        account.read(host.project.read_marks())
    account.settle(first, last, report, also_ran=covered)
    for spec, count in account.entered.items():
        if count > started[spec]:
            report.runs_without_start_line[spec] = count - started[spec]


def _spec_of(mark: dict[str, Any]) -> str:
    if mark["job"] == "SoakRun":
        return f"SoakRun:{mark['entry']}"
    return f"{mark['job']}:{mark['entry']},seconds={LOCKED_SECONDS}"


def stale_locked_writes(hosts: list[Host]) -> list[tuple[str, int, float]]:
    """Work of a CLASS-locked run done after a run with a greater fencing token began.

    Each is (job, the stale run's token, seconds since the newer run's first
    work): what a store that keeps the greatest token it has seen refuses.
    """
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for host in hosts:
        for mark in host.project.read_marks():
            if mark.get("job", "").startswith("SoakLocked") and mark["event"] in ("enter", "tick"):
                by_job[mark["job"]].append(mark)
    found = []
    for job, marks in by_job.items():
        newest, began = 0, 0.0
        for mark in sorted(marks, key=lambda m: m["t"]):
            if mark["token"] < newest:
                found.append((job, mark["token"], mark["t"] - began))
            elif mark["token"] > newest:
                newest, began = mark["token"], mark["t"]
    return found


def _leftover_processes(base: Path) -> list[int]:
    left = []
    for process in psutil.process_iter(["pid", "environ"]):
        with contextlib.suppress(psutil.Error):
            marks = (process.info["environ"] or {}).get("CRONMAN_TEST_MARKS", "")
            if marks.startswith(str(base)) and process.status() != psutil.STATUS_ZOMBIE:
                left.append(process.pid)
    return left


def run_soak(base: Path, backend: str, minutes: int, seed: int = 0, entries: int = 50) -> Report:
    """Run the soak for ``minutes`` whole minute boundaries and return the ledger's report."""
    rng = random.Random(seed)
    report = Report(backend)
    jobs = schedule(entries)
    with shared_store(backend, base) as store:
        hosts = [Host(base, name, store, jobs) for name in HOSTS]
        for host in hosts:
            host.start()
        # The ledger's first slot: the first whole minute after the daemons are surely up.
        first = math.ceil((time.time() + 10) / 60) * 60.0
        last = first + 60.0 * minutes
        stop_at = last + 25.0  # the last slot's ticks and spawns are done by then
        try:
            # No fault in the last 30 s before the last slot: the claims of a tick killed then lapse
            # (CLAIM_PENDING) before the last tick, which retries them.
            _chaos(hosts, store, rng, last - CLAIM_PENDING - 10, report)
            time.sleep(max(0.0, stop_at - time.time()))
        finally:
            report.daemons_stuck = sum(not host.stop() for host in hosts)
        deadline = time.monotonic() + 60
        while _leftover_processes(base) and time.monotonic() < deadline:
            time.sleep(0.5)
        ledger(hosts, jobs, first, last, report)
        for host in hosts:
            for log in (host.project.data_dir / "logs").glob("*.log"):  # the workers' own logs
                text = log.read_text(errors="replace")
                report.lost_lock_exits += text.count("lost its lock")
                report.lock_skips += text.count("is held by another worker, skipping")
        report.stale_writes = stale_locked_writes(hosts)
        report.locks_left = store.locks_held()
        report.processes_left = _leftover_processes(base)
    return report


def write_report(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_json(), indent=2, default=str))
