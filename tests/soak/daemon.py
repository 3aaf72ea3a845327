"""The daemon soak: one scheduler daemon with up to 200 entries, per spawner and lock backend, under chaos.

A configuration is a spawner (``local``, ``prefork``) and a lock backend
(``pidfile``, ``redis`` on a private redis-server, ``database`` on a
throwaway PostgreSQL database). Its data dir is a small tmpfs of its own.
The schedule mixes entries every minute, every 2 minutes and hourly;
PARAMS-locked (``SoakRun``, resumable) and CLASS-locked (``SoakLockedN``,
20 s of work) runs; failing runs (``SoakFail``), runs that outlive their
``max_runtime`` (``SoakSlow``) and runs retried after a failed first attempt
(``SoakFlaky``, ``retries``). A chaos driver, every few seconds, in turn:
SIGKILLs a running worker, SIGKILLs the scheduler and starts it again,
fills the data dir's filesystem for a while, makes it read-only for a while,
and restarts redis-server empty or terminates a database session.

The ledger, from the workers' own marks (which fires each run that entered
``run()`` covers), the runs that ran nothing and the fires the scheduler
reports missed (``tests/soak/ledger_plugin.py``), proves for every slot of
every entry: ran exactly once, started a run that ran nothing (with its
reason), or missed with a reason. At the end no lock is held, no worker is
left running, no zombie is left behind and the scheduler logged no traceback.

Used by ``tests/soak/test_daemon_soak.py`` (short, in CI) and
``benchmarks/daemon_soak.py`` (long, 200 entries).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.soak.cluster import CLAIM_PENDING, Host, Store, _leftover_processes, _locked_workers, shared_store
from tests.soak.ledger import Ledger, Tally

SPAWNERS = ("local", "prefork")
BACKENDS = ("pidfile", "redis", "database")
#: The data dir's tmpfs: room for the runs' logs, records and state, and for the chaos to fill.
TMPFS_SIZE = "64m"


def schedule(entries: int = 200) -> tuple[tuple[Any, ...], ...]:
    """``entries`` entries: 70 % every minute, 20 % every 2 minutes, and a few of each special kind."""
    special: list[tuple[Any, ...]] = []
    special += [("* * * * *", f"SoakLocked{i}:l{i},seconds=20") for i in range(min(5, max(1, entries // 40)))]
    special += [("* * * * *", f"SoakFail:f{i}") for i in range(max(1, entries // 50))]
    special += [("* * * * *", f"SoakSlow:t{i}", {"max_runtime": 2}) for i in range(max(1, entries // 70))]
    special += [("* * * * *", f"SoakFlaky:r{i}", {"retries": 1, "retry_delay": 1})
                for i in range(max(1, entries // 70))]
    special += [(f"{(7 * i) % 60} * * * *", f"SoakRun:h{i}") for i in range(max(1, entries // 40))]
    rest = entries - len(special)
    every_two = rest * 2 // 9
    return (*special, *(("*/2 * * * *", f"SoakRun:b{i}") for i in range(every_two)),
            *(("* * * * *", f"SoakRun:m{i}") for i in range(rest - every_two)))


@dataclass
class Report(Tally):
    """What the ledger found for one configuration."""

    config: str
    entries: int = 0
    #: Runs that entered ``run()``, by job class.
    outcomes: Counter[str] = field(default_factory=Counter)
    zombies_left: int = 0
    tracebacks: int = 0
    #: Times the daemon exited by itself (a read-only or full data dir at its start) and was started again.
    restarts: int = 0

    def summary(self) -> str:
        return (f"{self.config}: {self.entries} entries, {self.tally()}; workers {dict(self.outcomes)}; "
                f"{self.left()}, {self.zombies_left} zombies left, {self.tracebacks} scheduler tracebacks, "
                f"{self.restarts} supervisor restarts")

    @property
    def clean(self) -> bool:
        return not (self.duplicated or self.unexplained or self.locks_left or self.processes_left
                    or self.zombies_left or self.tracebacks or self.daemons_stuck)


class PidfileStore(Store):
    """No shared store: the pidfile backend keeps everything in the data dir."""

    backend = "pidfile"

    def settings(self) -> dict[str, Any]:
        return {"CRONMAN_LOCK_BACKEND": "pidfile"}

    def fault(self, rng: random.Random) -> str:
        return ""

    def locks_held(self) -> list[str]:
        return []  # read from the data dir by pidfile_locks_held()

    def close(self) -> None:
        pass


def pidfile_locks_held(data_dir: Path) -> list[str]:
    """Lock files in the data dir that some process still holds (flock)."""
    held = []
    for path in sorted((data_dir / "locks").glob("*")):
        with open(path, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(path.name)
    return held


@contextlib.contextmanager
def tmpfs(path: Path):
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        for _ in range(20):  # busy while the last workers exit
            if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "--lazy", str(path)], check=False)


def _fill(data_dir: Path) -> Path:
    """Write to the data dir's filesystem until it is full (unbuffered: nothing is left to flush at close)."""
    filler = data_dir / "chaos-fill"
    chunk = b"\0" * (1 << 20)
    with contextlib.suppress(OSError):  # ENOSPC, at the open already if the runs filled it first
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while os.write(fd, chunk):
                pass
        finally:
            os.close(fd)
    return filler


def _read_only(data_dir: Path) -> bool:
    """Bind the data dir read-only over itself; a write opened through the new mount in between makes the
    remount fail (EBUSY): then again, a few times."""
    for _ in range(20):
        subprocess.run(["mount", "--bind", str(data_dir), str(data_dir)], check=True)
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(data_dir)], capture_output=True).returncode == 0:
            return True
        subprocess.run(["umount", "--lazy", str(data_dir)], check=True)
        time.sleep(0.1)
    return False


def _running_workers(host: Host) -> list[int]:
    """Worker PIDs inside run() now: CLASS-locked and slow runs (they last long enough to be found)."""
    pids = _locked_workers([host])
    open_slow: dict[int, bool] = {}
    for mark in host.project.read_marks():
        if mark.get("job") == "SoakSlow":
            open_slow[mark["pid"]] = True
    pids += [pid for pid in open_slow if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    return pids


class Supervisor(threading.Thread):
    """Starts the daemon again when it exits by itself, 2 s later, as systemd's ``Restart=always`` does.

    A daemon started while its data dir is read-only or full refuses to run
    (one line, exit 2): the deployment's supervisor brings it back
    (docs/deploying.md).
    """

    def __init__(self, host: Host, report: Report) -> None:
        super().__init__(daemon=True)
        self.host, self.report = host, report
        self.lock = threading.Lock()  # the chaos kills and starts under it too
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            with self.lock:
                daemon = self.host.daemon
                if daemon is not None and daemon.poll() is not None and not self.stopping.is_set():
                    time.sleep(2.0)
                    self.host.start()
                    self.report.restarts += 1


def chaos(host: Host, store: Store, rng: random.Random, until: float, report: Report,
          pause: tuple[float, float], supervisor: Supervisor) -> None:
    """One fault every ``pause`` seconds until ``until``; each kind in turn, in a random order."""
    data_dir = host.project.data_dir
    kinds: list[str] = []
    while True:
        wait = rng.uniform(*pause)
        if time.time() + wait > until:
            break
        time.sleep(wait)
        if not kinds:
            kinds = rng.sample(["kill worker", "kill scheduler", "disk full", "read-only", "store"], 5)
        action = kinds.pop()
        if action == "kill worker":
            workers = _running_workers(host)
            if workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    report.faults["worker SIGKILLed"] += 1
        elif action == "kill scheduler":
            with supervisor.lock:
                host.kill()
                time.sleep(rng.uniform(0, 5))
                host.start()
            report.faults["scheduler SIGKILLed and restarted"] += 1
        elif action == "disk full":
            filler = _fill(data_dir)
            time.sleep(rng.uniform(4, 10))
            filler.unlink(missing_ok=True)
            report.faults["data dir filesystem full"] += 1
        elif action == "read-only":
            # A filesystem with files open for writing refuses "remount,ro" (EBUSY), and a run always has its
            # log open: a read-only bind mount of the data dir over itself makes every new write, create and
            # rename fail (EROFS) as a read-only filesystem does; files already open write on beneath it.
            if _read_only(data_dir):
                time.sleep(rng.uniform(4, 10))
                subprocess.run(["umount", "--lazy", str(data_dir)], check=True)
                report.faults["data dir read-only"] += 1
        else:
            done = store.fault(rng)
            if done:
                report.faults[done] += 1


def ledger(host: Host, jobs: tuple[tuple[Any, ...], ...], first: float, last: float, report: Report) -> None:
    """Every fire of every entry in ``[first, last]``: ran once, started a run that ran nothing, or missed
    (``tests/soak/ledger.py``)."""
    report.tracebacks = host.log.read_text().count("Traceback (most recent call last)")
    account = _account(host, jobs)
    report.entries = len(jobs)
    report.outcomes = Counter(spec.split(":")[0].rstrip("0123456789") for spec in account.entered.elements())
    account.settle(first, last, report)


def _account(host: Host, jobs: tuple[tuple[Any, ...], ...]) -> Ledger:
    account = Ledger(jobs, _spec)
    account.read(host.project.read_marks())
    return account


def _spec(mark: dict[str, Any]) -> str:
    """The job spec of a run's enter mark."""
    if mark["job"].startswith("SoakLocked"):
        return f"{mark['job']}:{mark['entry']},seconds=20"
    return f"{mark['job']}:{mark['entry']}"


#: The last slot's tick may take this long on a loaded host (the local spawner, 200 entries) before the soak stops.
SETTLE = 240.0


def _settle(host: Host, jobs: tuple[tuple[Any, ...], ...], first: float, last: float) -> None:
    """Wait until every slot is accounted for, or :data:`SETTLE` after the last one: a tick of 200 entries
    on a loaded host takes most of a minute, and a stopped daemon starts no further run (``stopping``)."""
    time.sleep(max(0.0, last + 25.0 - time.time()))
    while time.time() < last + SETTLE:
        pending = Tally()
        _account(host, jobs).settle(first, last, pending)
        if not pending.unexplained:
            return
        time.sleep(5.0)


def _lasting_zombies(host: Host) -> int:
    """Zombies among the daemon's descendants that nobody reaps (still there 2 s later)."""
    if host.daemon is None or host.daemon.poll() is not None:
        return 0
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(host.daemon.pid).children(recursive=True)
        zombies = {c.pid for c in children if c.status() == psutil.STATUS_ZOMBIE}
        time.sleep(2.0)
        return sum(1 for pid in zombies if psutil.pid_exists(pid)
                   and psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    return 0


def run_daemon_soak(base: Path, spawner: str, backend: str, minutes: int, entries: int = 200, seed: int = 0,
                    pause: tuple[float, float] = (6.0, 14.0), artifacts: Path | None = None) -> Report:
    """One configuration for ``minutes`` whole minute boundaries; the ledger's report.

    When the ledger is not clean, the scheduler's log and the marks go to ``artifacts``.
    """
    rng = random.Random(seed)
    report = Report(f"{spawner}/{backend}")
    jobs = schedule(entries)
    with (contextlib.nullcontext(PidfileStore()) if backend == "pidfile" else shared_store(backend, base)) as store:
        host = Host(base, f"soak-{spawner}-{backend}", store, jobs, CRONMAN_SPAWNER=spawner,
                    CRONMAN_LOG_KEEP=1_000_000)  # the ledger reads every run's log
        with tmpfs(host.project.data_dir):
            host.start()
            supervisor = Supervisor(host, report)
            supervisor.start()
            first = math.ceil((time.time() + 10) / 60) * 60.0
            last = first + 60.0 * minutes
            try:
                # no fault in the last CLAIM_PENDING + 10 s: the claims of a tick killed then lapse and are retried
                chaos(host, store, rng, last - CLAIM_PENDING - 10, report, pause, supervisor)
                _settle(host, jobs, first, last)
                report.zombies_left = _lasting_zombies(host)
            finally:
                supervisor.stopping.set()
                with supervisor.lock:
                    report.daemons_stuck = int(not host.stop())
            deadline = time.monotonic() + 60
            while _leftover_processes(base) and time.monotonic() < deadline:
                time.sleep(0.5)
            ledger(host, jobs, first, last, report)
            report.locks_left = (pidfile_locks_held(host.project.data_dir) if backend == "pidfile"
                                 else store.locks_held())
            report.processes_left = _leftover_processes(base)
            if artifacts is not None and not report.clean:
                target = artifacts / f"{spawner}-{backend}"
                target.mkdir(parents=True, exist_ok=True)
                for source in (host.log, host.project.marks):
                    if source.exists():
                        shutil.copy(source, target / source.name)
    return report


def run_all(base: Path, configs: list[tuple[str, str]], minutes: int, entries: int, seed: int,
            pause: tuple[float, float], artifacts: Path | None = None) -> list[Report]:
    """Several configurations at once, each in its own thread, directory and store."""
    reports: dict[tuple[str, str], Report] = {}
    errors: list[BaseException] = []

    def one(index: int, spawner: str, backend: str) -> None:
        try:
            path = base / f"{spawner}-{backend}"
            path.mkdir()
            reports[(spawner, backend)] = run_daemon_soak(path, spawner, backend, minutes, entries, seed + index,
                                                          pause, artifacts)
        except BaseException as exc:  # noqa: BLE001  (re-raised below, in the caller's thread)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, *config)) for i, config in enumerate(configs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [reports[config] for config in configs]


__all__ = ["BACKENDS", "SPAWNERS", "Report", "run_all", "run_daemon_soak", "schedule"]
