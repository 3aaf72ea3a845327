"""Worker start-up cost: ``cron_worker run Noop`` against bare ``django.setup()``.

Runs both side by side (interleaved, same settings), 10 times each, and
prints median wall time and peak RSS, and their ratio. Then measures plugin
loading (``build_plugin_manager``) with 250 extra installed distributions
on ``sys.path``.

The default settings are a minimal project (auth, contenttypes, cronman_core
and the test jobs): the worker's own cost. ``--settings tests.settings``
measures the full test project, whose run-history plugin writes every run
to the database.

    .venv/bin/python benchmarks/worker_startup.py [--runs 10] [--settings MODULE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


MINIMAL_SETTINGS = """
SECRET_KEY = "benchmark"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "cronman_core", "tests.testapp"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
USE_TZ = True
CRONMAN_DATA_DIR = {data_dir!r}
"""


def fake_distributions(root: Path, count: int) -> None:
    """``count`` installed-looking distributions, a few with entry points of other groups."""
    for i in range(count):
        info = root / f"fakedist_{i}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakedist-{i}\nVersion: 1.0\n")
        if i % 5 == 0:
            (info / "entry_points.txt").write_text(f"[console_scripts]\nfake{i} = fake:main\n")


PLUGIN_LOAD = """
import statistics, time, django
django.setup()
from cronman_core.plugins import build_plugin_manager
from importlib.metadata import distributions
n = sum(1 for _ in distributions())
times = []
for _ in range({runs}):
    t = time.perf_counter(); build_plugin_manager(); times.append(time.perf_counter() - t)
print(n, statistics.median(times))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--settings", help="settings module (default: a minimal project)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp, "data")
        data_dir.mkdir(mode=0o700)
        Path(tmp, "bench_minimal.py").write_text(MINIMAL_SETTINGS.format(data_dir=str(data_dir)))
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=args.settings or "bench_minimal",
                   PYTHONPATH=os.pathsep.join([tmp, str(REPO)]), PYTHONDONTWRITEBYTECODE="",
                   CRONMAN_TEST_DATA_DIR=str(data_dir))
        bare = [sys.executable, "-c", "import django; django.setup()"]
        worker = [sys.executable, "-m", "django", "cron_worker", "run", "Noop"]
        measure(worker, env)  # warm bytecode caches
        results: dict[str, list[tuple[float, float]]] = {"django.setup()": [], "cron_worker run Noop": []}
        for _ in range(args.runs):
            results["django.setup()"].append(measure(bare, env))
            results["cron_worker run Noop"].append(measure(worker, env))
        print(f"settings: {env['DJANGO_SETTINGS_MODULE']}")
        print(f"{'command':<24} {'median wall s':>14} {'median peak RSS MiB':>20}")
        medians = {}
        for name, rows in results.items():
            medians[name] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
            print(f"{name:<24} {medians[name][0]:>14.3f} {medians[name][1]:>20.1f}")
        base, work = medians["django.setup()"], medians["cron_worker run Noop"]
        print(f"worker / bare django: wall x{work[0] / base[0]:.3f} (+{(work[0] / base[0] - 1) * 100:.1f} %), "
              f"RSS x{work[1] / base[1]:.3f}")

        site = Path(tmp, "site")
        fake_distributions(site, 250)
        env_many = dict(env, PYTHONPATH=os.pathsep.join([env["PYTHONPATH"], str(site)]))
        out = subprocess.run([sys.executable, "-c", PLUGIN_LOAD.format(runs=args.runs)], env=env_many,
                             cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
        print(f"plugin loading with {out[0]} installed distributions: median {float(out[1]) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
