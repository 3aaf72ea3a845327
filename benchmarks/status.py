"""``cron_worker status`` with many records, side by side with django-cronman 3.0.0.

Builds ``benchmarks/.venv-cronman3`` (django-cronman 3.0.0 and Django 3.2
from PyPI) on first use, starts ``--alive`` real ``sleep`` processes, then
writes ``--records`` run records for cronman (the alive ones with their real
start time, the rest with PIDs that do not exist) and as many PID files for
django-cronman, and times both ``status`` commands interleaved. cronman
proves every alive PID's start time; django-cronman only calls kill(pid, 0). The first cronman listing reads
every record and writes the records index; the timed runs use it, as every
listing after the first does.

    .venv/bin/python benchmarks/status.py [--records 10000] [--alive 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
OLD_VENV = REPO / "benchmarks" / ".venv-cronman3"
OLD_REQUIREMENTS = ["django-cronman==3.0.0", "Django>=3.2,<3.3"]

#: The same minimal project for both: only the app under test differs.
SETTINGS = """
SECRET_KEY = "benchmark"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", {app!r}]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
USE_TZ = True
CRONMAN_DATA_DIR = {data_dir!r}
"""


def old_python() -> Path:
    """The django-cronman 3.0.0 venv's python, built on first use."""
    python = OLD_VENV / "bin" / "python"
    if not python.exists():
        print(f"building {OLD_VENV} ({', '.join(OLD_REQUIREMENTS)}) ...", flush=True)
        venv.create(OLD_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *OLD_REQUIREMENTS], check=True)
    return python


def free_pids(count: int) -> list[int]:
    """PIDs no process has now (stand-ins for workers that died)."""
    pids: list[int] = []
    candidate = 3_000_000
    while len(pids) < count:
        candidate += 1
        if not psutil.pid_exists(candidate):
            pids.append(candidate)
    return pids


def write_new_records(data_dir: Path, alive: list[psutil.Process], dead: list[int]) -> None:
    from cronman_core.process import hostname
    from cronman_core.records import RunRecord
    from cronman_plugins.pidfile import PidfileBackend

    backend = PidfileBackend(data_dir)
    procs: list[tuple[int, float | None]] = [(p.pid, p.create_time()) for p in alive]
    procs += [(pid, 1_700_000_000.0) for pid in dead]
    for index, (pid, started) in enumerate(procs):
        record = RunRecord(
            key=f"SleepParams:{index}",
            job_spec=f"SleepParams:{index}",
            pid=pid,
            host=hostname(),
            create_time=started,
            run_id=f"{index:032x}",
            started_at="2026-11-30T00:00:00+00:00",
            can_resume=True,
        )
        # Written directly: fsync per record would only slow the set-up down.
        (backend.records_dir / backend.record_name(record)).write_text(record.to_json())


def write_old_pidfiles(data_dir: Path, pids: list[int]) -> None:
    for index, pid in enumerate(pids):
        digest = hashlib.md5(repr(((str(index),), {})).encode()).hexdigest()[:10]  # noqa: S324
        (data_dir / f"SleepParams_{digest}.pid").write_text(str(pid))


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{result.stderr}")
    return wall, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--alive", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    old = old_python()
    sleepers = [
        subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL) for _ in range(args.alive)
    ]
    try:
        alive = [psutil.Process(p.pid) for p in sleepers]
        dead = free_pids(args.records - args.alive)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            new_dir, old_dir = root / "new-data", root / "old-data"
            new_dir.mkdir(mode=0o700)
            old_dir.mkdir(mode=0o700)
            write_new_records(new_dir, alive, dead)
            write_old_pidfiles(old_dir, [p.pid for p in alive] + dead)
            (root / "bench_new.py").write_text(SETTINGS.format(app="cronman_core", data_dir=str(new_dir)))
            (root / "bench_old.py").write_text(SETTINGS.format(app="cronman", data_dir=str(old_dir)))
            base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            commands = {
                "cronman": (
                    [sys.executable, "-m", "django", "cron_worker", "status"],
                    dict(base, DJANGO_SETTINGS_MODULE="bench_new", PYTHONPATH=f"{root}:{REPO}"),
                ),
                "django-cronman 3.0.0": (
                    [str(old), "-m", "django", "cron_worker", "status"],
                    dict(base, DJANGO_SETTINGS_MODULE="bench_old", PYTHONPATH=str(root)),
                ),
            }
            for name, (argv, env) in commands.items():  # first listing, and a sanity check
                wall, out = timed(argv, env, root)
                alive_lines = sum(line.split()[0:2].count("ALIVE") > 0 for line in out.splitlines())
                print(f"{name}: first listing {wall:.3f} s, {alive_lines} ALIVE of {args.records}")
            walls: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, (argv, env) in commands.items():
                    walls[name].append(timed(argv, env, root)[0])
    finally:
        for sleeper in sleepers:
            sleeper.kill()
        for sleeper in sleepers:
            sleeper.wait()
    medians = {name: statistics.median(values) for name, values in walls.items()}
    print(f"\n{args.records} records ({args.alive} alive), median of {args.runs} interleaved runs")
    for name, median in medians.items():
        print(f"  {name:<22} {median:.3f} s   (runs: {', '.join(f'{v:.3f}' for v in walls[name])})")
    ratio = medians["cronman"] / medians["django-cronman 3.0.0"]
    print(f"  ratio cronman / django-cronman: {ratio:.2f}")


if __name__ == "__main__":
    main()
