"""Scheduler benchmarks, side by side with django-cronman 3.0.0 where it applies.

    .venv/bin/python benchmarks/scheduler.py decide [--sizes 10 1000 10000 100000]
    .venv/bin/python benchmarks/scheduler.py tick [--entries 100000] [--ticks 3]
    .venv/bin/python benchmarks/scheduler.py lateness [--fires 200] [--scale 240]
    .venv/bin/python benchmarks/scheduler.py fifty [--jobs 50]

decide:   decision time per entry: ours (steady state: a tick a minute with the
          next-fire cache, and cold: no cache) against ``CronScheduler.get_jobs()``.
tick:     the whole ``cron_scheduler run`` process at N entries, wall and peak RSS
          (``ru_maxrss`` of the child), each tick at the start of a real minute;
          both sides start workers through a no-op spawner, so the tick is measured.
lateness: a ``cron_scheduler`` daemon with a clock running ``scale`` times fast
          (a minute every 60/scale s) and ``* * * * *``; from each fire instant to
          the return of the local spawner (the worker command is ``true``).
fifty:    one real tick with N due jobs: from starting ``cron_scheduler run`` until
          all N workers are inside ``run()``, and the workers' RSS then.

Entries are generated deterministically (seed 1) with a realistic mix: daily at
a random time, weekly, monthly, every few hours; about 40 fire per minute at
100,000 entries.
"""

from __future__ import annotations

import argparse
import json
import os
import py_compile
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from status import old_python  # noqa: E402  (builds benchmarks/.venv-cronman3 once)

QUIET = ("cronman_plugins.tasks", "cronman_plugins.history")
#: The same apps as the django-cronman side (plus the test jobs), not the test suite's admin.
LEAN_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "cronman_core", "tests.testapp"]


def generate(count: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    entries = []
    for i in range(count):
        minute, hour, kind = rng.randrange(60), rng.randrange(24), rng.random()
        if kind < 0.6:
            spec = f"{minute} {hour} * * *"
        elif kind < 0.8:
            spec = f"{minute} {hour} * * {rng.randrange(7)}"
        elif kind < 0.9:
            spec = f"{minute} {hour} {rng.randrange(1, 29)} * *"
        else:
            spec = f"{minute} */{rng.choice((2, 3, 4, 6, 12))} * * *"
        entries.append((spec, f"Echo:n={i}" if i % 2 else "Noop"))
    return entries


def write_schedule(directory: Path, name: str, entries: list[tuple[str, str]]) -> str:
    with open(directory / f"{name}.py", "w") as f:
        f.write("CRON_JOBS = (\n")
        for pair in entries:
            f.write(f"    {pair!r},\n")
        f.write(")\n")
    return name


#: Forks and execs argv from a small process, then prints the child's peak RSS (KiB):
#: forking from this big process would count its pages in the child's ru_maxrss.
MEASURE = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the command, and its stderr."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", MEASURE, str(write_fd), *argv], env=env,
                                 cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, pass_fds=(write_fd,))
        os.close(write_fd)
        child.wait()
        wall = time.perf_counter() - start
        peak_kib = int(os.read(read_fd, 64) or 0)
        os.close(read_fd)
        err.seek(0)
        text = err.read().decode()
    if child.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}): {text[-2000:]}")
    return wall, peak_kib / 1024, text


def wait_for_minute_start(offset: float = 1.0) -> None:
    time.sleep(60 - time.time() % 60 + offset)


# -- decide ---------------------------------------------------------------------------

OLD_GET_JOBS = r"""
import datetime, json, os, sys, time
import django
from django.conf import settings
settings.configure(SECRET_KEY="b", INSTALLED_APPS=["cronman"], CRONMAN_JOBS_MODULE=sys.argv[1],
                   CRONMAN_DATA_DIR=sys.argv[2], DATABASES={})
django.setup()
from cronman.scheduler import CronScheduler
times = []
for i in range(int(sys.argv[3])):
    scheduler = CronScheduler(now=datetime.datetime(2026, 3, 2, 10, i))
    scheduler.cron_jobs  # import the module outside the timing
    start = time.perf_counter()
    jobs = scheduler.get_jobs()
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "due": len(jobs)}))
"""


def bench_decide(sizes: list[int]) -> None:
    import datetime as dt

    from cronman_core.schedule import ScheduleEntry
    from cronman_core.scheduler.decide import decide

    utc = dt.UTC
    t0 = dt.datetime(2026, 3, 2, 10, 0, 5, tzinfo=utc).timestamp()
    print("| entries | ours steady (us/entry) | ours cold (us/entry) | django-cronman get_jobs (us/entry) | speed-up |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in sizes:
            pairs = generate(size)
            entries = [ScheduleEntry(t, j) for t, j in pairs]
            start = time.perf_counter()
            first = decide(entries, t0, utc, lambda e: 3600.0, watermark=t0 - 60)
            cold = time.perf_counter() - start
            cache, watermark = first.next_fires, first.watermark
            steady = []
            for minute in range(1, 6):
                now = t0 + 60 * minute
                start = time.perf_counter()
                decision = decide(entries, now, utc, lambda e: 3600.0, watermark=watermark,
                                  cache=cache, cache_as_of=watermark)
                steady.append(time.perf_counter() - start)
                cache = decision.next_fires or cache
                watermark = decision.watermark
            module = write_schedule(work, f"sched_{size}", pairs)
            data = work / "data"
            data.mkdir(exist_ok=True)
            env = dict(os.environ, PYTHONPATH=str(work))
            repeats = "1" if size >= 100_000 else "3"
            out = subprocess.run([str(old_python()), "-c", OLD_GET_JOBS, module, str(data), repeats],
                                 env=env, capture_output=True, text=True, check=True)
            old = json.loads(out.stdout.splitlines()[-1])["seconds"]
            ours = statistics.median(steady)
            print(f"| {size:,} | {ours / size * 1e6:.2f} | {cold / size * 1e6:.2f} | "
                  f"{old / size * 1e6:.1f} | x{old / ours:.0f} |", flush=True)


# -- tick -----------------------------------------------------------------------------

NOOP_SPAWNER = '''
from cronman_core import hookimpl
from cronman_core.spawners import SpawnHandle, Spawner


class NoopSpawner(Spawner):
    def spawn(self, command):
        return SpawnHandle(job_spec=command.job_spec, pid=None)


@hookimpl(tryfirst=True)
def cronman_spawner(data_dir):
    return NoopSpawner()
'''

OLD_TICK = r"""
import sys
import django
from django.conf import settings
settings.configure(SECRET_KEY="b", CRONMAN_JOBS_MODULE=sys.argv[1], CRONMAN_DATA_DIR=sys.argv[2],
                   INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "cronman"],
                   DATABASES={})
django.setup()
from cronman.spawner import CronSpawner
CronSpawner.start_worker = lambda self, job_spec: 1  # measure the tick, not the workers
from django.core.management import call_command
call_command("cron_scheduler", "run")
"""


def make_project(work: Path, entries: list[tuple[str, str]], plugin: str | None = None, **settings: object):
    """A project with lean settings, ``entries`` as its CRON_JOBS and ``plugin`` as a plugin."""
    from cronman_core.testing import CronmanProject

    project = CronmanProject(work / "project", "tests.settings", pythonpath=[REPO])
    module = write_schedule(project.path, "bench_schedule", entries)
    plugins = []
    if plugin:
        (project.path / "bench_plugin.py").write_text(plugin)
        plugins.append("bench_plugin")
    project.configure(CRONMAN_JOBS_MODULE=module, CRONMAN_DISABLED_PLUGINS=QUIET,
                      INSTALLED_APPS=LEAN_APPS, CRONMAN_PLUGINS=plugins, **settings)
    return project


def bench_tick(entries: int, ticks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = make_project(work, generate(entries), NOOP_SPAWNER)
        # Both sides import the schedule from cached bytecode, as a deployed project does.
        env = project.env()
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        py_compile.compile(str(project.path / "bench_schedule.py"), doraise=True)
        argv = project.argv("cron_scheduler", "run")
        print(f"cronman `cron_scheduler run`, {entries:,} entries (one tick at the start of each minute):")
        for tick in range(ticks + 1):
            wait_for_minute_start()
            wall, rss, err = run_measured(argv, env, project.path)
            started = err.count("started ")
            label = "cold: no watermark, builds the next-fire cache" if tick == 0 else "steady"
            print(f"  tick {tick}: {wall:.2f} s, peak RSS {rss:.1f} MiB, {started} started  [{label}]",
                  flush=True)
        old_data = work / "old-data"
        old_data.mkdir()
        env["PYTHONPATH"] = str(project.path)
        print("django-cronman 3.0.0 `cron_scheduler run` (no-op start_worker, bytecode cached):")
        for tick in range(2):
            wall, rss, err = run_measured(
                [str(old_python()), "-c", OLD_TICK, "bench_schedule", str(old_data)], env, project.path
            )
            print(f"  tick {tick}: {wall:.2f} s, peak RSS {rss:.1f} MiB", flush=True)


# -- lateness -------------------------------------------------------------------------

LATENESS_PLUGIN = '''
import json, os, time
from cronman_core import hookimpl
from cronman_core.spawners import Spawner
import cronman_plugins.local as local

RECORDS = os.environ["BENCH_RECORDS"]


class TimedSpawner(Spawner):
    def __init__(self, inner):
        self.inner = inner

    def spawn(self, command):
        handle = self.inner.spawn(command)
        with open(RECORDS, "a") as f:
            f.write(json.dumps({"spec": command.job_spec, "t": time.time()}) + "\\n")
        return handle


@hookimpl(tryfirst=True)
def cronman_spawner(data_dir):
    return TimedSpawner(local.cronman_spawner(data_dir=data_dir))


@hookimpl(trylast=True)
def cronman_worker_command(command):
    command.argv = ["true"]
'''


class ScaledClock:
    """Wall time running ``scale`` times fast from ``base`` (a fake schedule clock)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.base = time.time()

    def time(self) -> float:
        return self.base + (time.time() - self.base) * self.scale

    def real(self, fake: float) -> float:
        return self.base + (fake - self.base) / self.scale

    def at(self, real: float) -> float:
        return self.base + (real - self.base) * self.scale

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds) / self.scale)


def lateness_child(fires: int, scale: float, records: Path, long_lived: bool = False) -> None:
    """A daemon loop on a scaled clock until ``records`` (JSON lines with a time ``t``) has ``fires`` + 1
    lines; prints each one's lateness after its fire instant. ``long_lived``: as ``cron_scheduler daemon``
    (a spawner may keep a warm process)."""
    import django

    django.setup()
    from cronman_core.scheduler.daemon import run_daemon
    from cronman_core.scheduler.tick import Scheduler

    clock = ScaledClock(scale)
    scheduler = Scheduler(clock=clock, long_lived=long_lived)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if records.exists() and len(records.read_text().splitlines()) > fires:
                stop.set()
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    run_daemon(scheduler, stop)
    lateness = []
    # The first fire is the start-up catch-up of the current minute: not a timed one.
    for line in records.read_text().splitlines()[1 : fires + 1]:
        spawned = json.loads(line)["t"]
        slot = clock.at(spawned) // 60 * 60  # the minute it fired for (lateness < 60 fake s)
        lateness.append(spawned - clock.real(slot))
    print(json.dumps(lateness))


def bench_lateness(fires: int, scale: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = make_project(work, [("* * * * *", "Noop"), *generate(999)], LATENESS_PLUGIN,
                               LOGGING={"version": 1, "disable_existing_loggers": False})
        records = work / "records.jsonl"
        report_lateness(__file__, fires, scale, ["--records", str(records)], project.env(BENCH_RECORDS=str(records)),
                        project.path, "daemon lateness", "1,000 entries, ")


def report_lateness(
    script: str, fires: int, scale: float, child_args: list[str], env: dict[str, str], cwd: Path, what: str,
    detail: str = "",
) -> None:
    """Run ``script _lateness-child`` (a daemon on a scaled clock) and print its lateness percentiles."""
    out = subprocess.run([sys.executable, script, "_lateness-child", "--fires", str(fires), "--scale", str(scale),
                          *child_args], env=env, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    lateness = sorted(json.loads(out.stdout.splitlines()[-1]))
    p50 = lateness[len(lateness) // 2] * 1000
    p99 = lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))] * 1000
    print(f"{what} over {len(lateness)} fires ({detail}clock x{scale:g}): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lateness[-1] * 1000:.1f} ms, "
          f"min {lateness[0] * 1000:.1f} ms")


# -- fifty ----------------------------------------------------------------------------


OLD_PROJECT = {
    "manage.py": "import sys\nfrom django.core.management import execute_from_command_line\n"
                 "execute_from_command_line(sys.argv)\n",
    "old_settings.py": "SECRET_KEY = 'b'\nINSTALLED_APPS = ['django.contrib.contenttypes', "
                       "'django.contrib.auth', 'cronman', 'oldbench']\n"
                       "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}\n"
                       "CRONMAN_JOBS_MODULE = 'bench_schedule'\nCRONMAN_DATA_DIR = @DATA@\n",
    "oldbench/__init__.py": "",
    "oldbench/cron_jobs.py": (
        "import json, os, time\n"
        "from cronman.job import BaseCronJob, cron_job_registry\n\n\n"
        "class MarkTime(BaseCronJob):\n"
        "    lock_type = None\n\n"
        "    def run(self, tag='', seconds='0'):\n"
        "        with open(os.environ['CRONMAN_TEST_MARKS'], 'a') as f:\n"
        "            f.write(json.dumps({'tag': tag, 't': time.time(), 'pid': os.getpid()}) + '\\n')\n"
        "        time.sleep(float(seconds))\n\n\n"
        "cron_job_registry.register(MarkTime)\n"
    ),
}


def fifty_tick(argv: list[str], env: dict[str, str], cwd: Path, marks: Path, jobs: int) -> str:
    """Start one tick at a minute start; wait until ``jobs`` workers are in run(); measure."""
    import psutil

    wait_for_minute_start()
    start = time.time()
    tick = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tick_done = None
    while True:
        lines = marks.read_text().splitlines() if marks.exists() else []
        if tick_done is None and tick.poll() is not None:
            tick_done = time.time() - start
        if len(lines) >= jobs:
            break
        time.sleep(0.01)
    found = [json.loads(line) for line in lines]
    inside = max(m["t"] for m in found) - start
    workers = [psutil.Process(m["pid"]) for m in found]
    rss = sum(p.memory_info().rss for p in workers) / 2**20
    uss = sum(p.memory_full_info().uss for p in workers) / 2**20
    tick.wait()
    for p in workers:
        p.terminate()
    done = f"{tick_done:.2f} s" if tick_done is not None else "after the last worker"
    return (f"all {jobs} inside run() after {inside:.2f} s (tick process done {done}); "
            f"workers' RSS {rss:.0f} MiB in total (USS {uss:.0f} MiB)")


def bench_fifty(jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pairs = [("* * * * *", f"MarkTime:tag={i},seconds=20") for i in range(jobs)]
        project = make_project(work, pairs)
        for action in ("disable", "run", "enable"):  # a watermark, nothing started yet
            project.run("cron_scheduler", action)
        print(f"cronman, one tick with {jobs} due jobs: "
              + fifty_tick(project.argv("cron_scheduler", "run"), project.env(), project.path,
                           project.marks, jobs), flush=True)
        old = work / "old"
        data = old / "data"
        data.mkdir(parents=True, mode=0o700)
        for name, text in OLD_PROJECT.items():
            (old / name).parent.mkdir(parents=True, exist_ok=True)
            (old / name).write_text(text.replace("@DATA@", repr(str(data))))
        write_schedule(old, "bench_schedule", pairs)
        marks = old / "marks.jsonl"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="old_settings", PYTHONPATH=str(old),
                   CRONMAN_TEST_MARKS=str(marks))
        argv = [str(old_python()), "manage.py", "cron_scheduler", "run"]
        print(f"django-cronman 3.0.0, one tick with {jobs} due jobs: "
              + fifty_tick(argv, env, old, marks, jobs), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    decide_p = sub.add_parser("decide")
    decide_p.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10_000, 100_000])
    tick_p = sub.add_parser("tick")
    tick_p.add_argument("--entries", type=int, default=100_000)
    tick_p.add_argument("--ticks", type=int, default=3)
    late_p = sub.add_parser("lateness")
    late_p.add_argument("--fires", type=int, default=200)
    late_p.add_argument("--scale", type=float, default=240)
    child = sub.add_parser("_lateness-child")
    child.add_argument("--fires", type=int, required=True)
    child.add_argument("--scale", type=float, required=True)
    child.add_argument("--records", type=Path, required=True)
    fifty_p = sub.add_parser("fifty")
    fifty_p.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    if args.what == "decide":
        bench_decide(args.sizes)
    elif args.what == "tick":
        bench_tick(args.entries, args.ticks)
    elif args.what == "lateness":
        bench_lateness(args.fires, args.scale)
    elif args.what == "_lateness-child":
        lateness_child(args.fires, args.scale, args.records)
    else:
        bench_fifty(args.jobs)


if __name__ == "__main__":
    main()
