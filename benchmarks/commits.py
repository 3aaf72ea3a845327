"""This tree against an older commit, side by side in one run: worker start-up, decision, tick.

    .venv/bin/python benchmarks/commits.py [--base c43db49] [--runs 15] [--entries 10000]

The base commit is checked out with ``git worktree`` into a temporary
directory; each measurement imports cronman from its own tree (``PYTHONPATH``
comes before the editable install) with the same venv, and the two sides
are interleaved so the machine's noise hits both alike:

* worker start-up: ``cron_worker run Noop`` on a minimal project, with bare
  ``django.setup()`` as the yardstick (median wall and peak RSS);
* decision: ``decide()`` per entry at ``--entries`` entries, steady (next-fire
  cache) and cold, median of 5 in one process per side and round;
* tick: a whole ``cron_scheduler run`` at ``--entries`` entries through a
  no-op spawner, steady ticks (the first, cold one is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks")]

from scheduler import generate, run_measured, write_schedule  # noqa: E402
from worker_startup import MINIMAL_SETTINGS, measure  # noqa: E402

DECIDE = r"""
import datetime as dt, json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from scheduler import generate
try:
    from cronman_core.scheduler.decide import decide
except ImportError:  # before the scheduler package
    from cronman_core.scheduler import decide
from cronman_core.schedule import ScheduleEntry
utc = dt.UTC
t0 = dt.datetime(2026, 3, 2, 10, 0, 5, tzinfo=utc).timestamp()
entries = [ScheduleEntry(t, j) for t, j in generate(int(sys.argv[3]))]
start = time.perf_counter()
first = decide(entries, t0, utc, lambda e: 3600.0, watermark=t0 - 60)
cold = time.perf_counter() - start
cache, watermark, steady = first.next_fires, first.watermark, []
for minute in range(1, 6):
    start = time.perf_counter()
    d = decide(entries, t0 + 60 * minute, utc, lambda e: 3600.0, watermark=watermark, cache=cache,
               cache_as_of=watermark)
    steady.append(time.perf_counter() - start)
    cache, watermark = d.next_fires or cache, d.watermark
print(json.dumps({"steady": statistics.median(steady), "cold": cold}))
"""

#: A no-op spawner that loads on either side of the layering change.
NOOP_SPAWNER = """
from cronman_core import hookimpl
try:
    from cronman_core.spawners import SpawnHandle, Spawner
except ImportError:
    from cronman_core.backends import SpawnHandle, Spawner


class NoopSpawner(Spawner):
    def spawn(self, command):
        return SpawnHandle(job_spec=command.job_spec)


@hookimpl(tryfirst=True)
def cronman_spawner(data_dir):
    return NoopSpawner()
"""

TICK_SETTINGS = MINIMAL_SETTINGS + """
CRONMAN_JOBS_MODULE = "bench_schedule"
CRONMAN_PLUGINS = ["bench_noop"]
"""


def worktree(base: str, where: Path) -> Path:
    path = where / "base"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), base], check=True)
    return path


def side_env(tree: Path, project: Path, settings: str) -> dict[str, str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE=settings, PYTHONPATH=os.pathsep.join([str(project), str(tree)]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="c43db49", help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trees = {"base": worktree(args.base, work), "this": REPO}
        try:
            compare(trees, work, args)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(trees["base"])],
                           check=False)


def compare(trees: dict[str, Path], work: Path, args: argparse.Namespace) -> None:
    projects = {}
    for name in trees:
        project = work / f"project-{name}"
        data = project / "data"
        data.mkdir(parents=True, mode=0o700)
        (project / "bench_worker.py").write_text(MINIMAL_SETTINGS.format(data_dir=str(data / "w")))
        (project / "bench_tick.py").write_text(TICK_SETTINGS.format(data_dir=str(data / "t")))
        (project / "bench_noop.py").write_text(NOOP_SPAWNER)
        write_schedule(project, "bench_schedule", generate(args.entries))
        for sub in ("w", "t"):
            (data / sub).mkdir(mode=0o700)
        projects[name] = project

    bare = [sys.executable, "-c", "import django; django.setup()"]
    worker = [sys.executable, "-m", "django", "cron_worker", "run", "Noop"]
    tick = [sys.executable, "-m", "django", "cron_scheduler", "run"]
    starts: dict[str, list[tuple[float, float]]] = {"django.setup()": [], "base": [], "this": []}
    decides: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
    ticks: dict[str, list[tuple[float, float]]] = {"base": [], "this": []}
    for name, tree in trees.items():  # warm bytecode; the first tick is the cold one
        measure(worker, side_env(tree, projects[name], "bench_worker"))
        run_measured(tick, side_env(tree, projects[name], "bench_tick"), projects[name])
    for _ in range(args.runs):
        starts["django.setup()"].append(measure(bare, side_env(REPO, projects["this"], "bench_worker")))
        for name, tree in trees.items():
            project = projects[name]
            starts[name].append(measure(worker, side_env(tree, project, "bench_worker")))
            out = subprocess.run([sys.executable, "-c", DECIDE, str(tree), str(REPO / "benchmarks"),
                                  str(args.entries)], env=side_env(tree, project, "bench_worker"),
                                 capture_output=True, text=True, check=True).stdout
            decides[name].append(json.loads(out.splitlines()[-1]))
            wall, rss, _ = run_measured(tick, side_env(tree, project, "bench_tick"), project)
            ticks[name].append((wall, rss))

    def med(rows: list[tuple[float, float]], i: int) -> float:
        return statistics.median(row[i] for row in rows)

    print(f"base {args.base} against this tree, {args.runs} interleaved rounds, {args.entries:,} entries")
    print("| | base | this | this / base |")
    print("|---|---|---|---|")
    bare_wall = med(starts["django.setup()"], 0)
    rows = [
        ("worker start-up, median wall (s)", med(starts["base"], 0), med(starts["this"], 0)),
        ("worker start-up over bare django.setup() (% points)",
         (med(starts["base"], 0) / bare_wall - 1) * 100, (med(starts["this"], 0) / bare_wall - 1) * 100),
        ("worker peak RSS (MiB)", med(starts["base"], 1), med(starts["this"], 1)),
        ("decide() steady (us/entry)", *(statistics.median(d["steady"] for d in decides[n]) / args.entries * 1e6
                                         for n in trees)),
        ("decide() cold (us/entry)", *(statistics.median(d["cold"] for d in decides[n]) / args.entries * 1e6
                                       for n in trees)),
        ("`cron_scheduler run` steady tick, wall (s)", med(ticks["base"], 0), med(ticks["this"], 0)),
        ("`cron_scheduler run` peak RSS (MiB)", med(ticks["base"], 1), med(ticks["this"], 1)),
    ]
    for label, base, this in rows:
        ratio = f"{this - base:+.1f}" if "% points" in label else f"x{this / base:.3f}"
        print(f"| {label} | {base:.3f} | {this:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
