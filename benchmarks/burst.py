"""Bursts of due jobs and fire-to-run() lateness: the prefork spawner beside the local one and django-cronman.

    .venv/bin/python benchmarks/burst.py burst [--jobs 50]
    .venv/bin/python benchmarks/burst.py lateness [--fires 200] [--scale 240]
    .venv/bin/python benchmarks/burst.py faults [--forks 5]

burst:    N jobs due at the same minute. For cronman, a ``cron_scheduler daemon``
          started 15 s before that minute (so a prefork template is warm), once
          with ``CRONMAN_SPAWNER = "prefork"`` and once with the local spawner;
          for django-cronman 3.0.0 (no daemon) its ``cron_scheduler run`` started
          at the minute, as its crontab line would. Measured: from the fire
          instant until the last of the N jobs is inside ``run()``, and the sum of
          the N workers' PSS (``/proc/<pid>/smaps_rollup``: shared pages counted
          once across the processes that share them) while they sit in ``run()``.
lateness: a prefork daemon with a clock running ``scale`` times fast (a minute every
          60/scale s) and one ``* * * * *`` entry; from each fire instant to the
          moment its forked worker is inside ``run()``.
faults:   where a forked run's time goes: a warm template (as the prefork spawner
          sets it up) forks a child that runs the worker path twice; each run's
          time and page faults (copy-on-write of the template's pages).

The projects are lean (contenttypes, auth, the app, the test jobs), the same
on both sides; each side waits for a real minute start, so ``burst`` takes
about three minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from scheduler import (  # noqa: E402  (benchmarks/ is not a package)
    OLD_PROJECT,
    lateness_child,
    make_project,
    old_python,
    report_lateness,
    wait_for_minute_start,
    write_schedule,
)


def pss_mib(pids: list[int]) -> float:
    """Sum of the processes' proportional set sizes, in MiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except FileNotFoundError:  # it left run() already: the burst took longer than its job
            print(f"PID {pid} has exited: not counted", file=sys.stderr)
    return total / 1024


def wait_marks(marks: Path | list[Path], count: int, timeout: float = 120) -> list[dict[str, float]]:
    """The first ``count`` marks written to ``marks`` (one file, or several: one per host)."""
    paths = marks if isinstance(marks, list) else [marks]
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for path in paths if path.exists() for line in path.read_text().splitlines()]
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(lines)} of {count} jobs reached run() in {timeout:g} s")
        time.sleep(0.01)


def report(name: str, fire: float, marks: list[dict[str, float]]) -> tuple[float, float]:
    pids = [int(m["pid"]) for m in marks]
    inside = max(m["t"] for m in marks) - fire
    pss = pss_mib(pids)
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    print(f"| {name} | {inside:.3f} s | {pss:.0f} MiB |", flush=True)
    return inside, pss


def daemon_burst(name: str, project: Any, marks: list[Path], jobs: int, log: Path) -> tuple[float, float]:
    """A ``cron_scheduler daemon`` of ``project`` started 15 s before a minute whose fires start ``jobs``
    runs: from that minute until all are inside ``run()`` (their marks), and their ΣPSS."""
    if time.time() % 60 > 40:
        wait_for_minute_start()
    fire = (time.time() // 60 + 1) * 60
    time.sleep(max(0.0, fire - 15 - time.time()))
    for action in ("disable", "run", "enable"):  # a watermark: nothing is due before the next minute
        project.run("cron_scheduler", action)
    with open(log, "w") as out:
        daemon = project.popen("cron_scheduler", "daemon", stdout=out, stderr=out)
        try:
            found = wait_marks(marks, jobs)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    return report(name, fire, found)


def burst_cronman(work: Path, jobs: int, spawner: str) -> tuple[float, float]:
    pairs = [("* * * * *", f"MarkTime:tag={i},seconds=30") for i in range(jobs)]
    project = make_project(work / spawner, pairs, CRONMAN_SPAWNER=spawner)
    return daemon_burst(f"cronman daemon, {spawner} spawner", project, [project.marks], jobs,
                        work / f"{spawner}-daemon.log")


def burst_old(work: Path, jobs: int) -> tuple[float, float]:
    old = work / "old"
    data = old / "data"
    data.mkdir(parents=True, mode=0o700)
    for name, text in OLD_PROJECT.items():
        (old / name).parent.mkdir(parents=True, exist_ok=True)
        (old / name).write_text(text.replace("@DATA@", repr(str(data))))
    write_schedule(old, "bench_schedule", [("* * * * *", f"MarkTime:tag={i},seconds=30") for i in range(jobs)])
    marks = old / "marks.jsonl"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="old_settings", PYTHONPATH=str(old),
               CRONMAN_TEST_MARKS=str(marks))
    argv = [str(old_python()), "manage.py", "cron_scheduler", "run"]
    wait_for_minute_start(offset=0.0)
    fire = time.time() // 60 * 60
    tick = subprocess.Popen(argv, env=env, cwd=old, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found = wait_marks(marks, jobs)
    tick.wait()
    return report("django-cronman 3.0.0, `cron_scheduler run` from cron", fire, found)


def bench_burst(jobs: int) -> None:
    old_python()  # build its venv before anything is timed
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"{jobs} jobs due at the same minute: fire instant until all are inside run(), and their ΣPSS")
        print("| spawner | all inside run() | ΣPSS |")
        print("|---|---|---|")
        prefork = burst_cronman(work, jobs, "prefork")
        local = burst_cronman(work, jobs, "local")
        old = burst_old(work, jobs)
        print(f"prefork / django-cronman: time x{prefork[0] / old[0]:.3f}, ΣPSS x{prefork[1] / old[1]:.3f}; "
              f"prefork / local: time x{prefork[0] / local[0]:.3f}, ΣPSS x{prefork[1] / local[1]:.3f}")


def bench_lateness(fires: int, scale: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp), [("* * * * *", "MarkTime:tag=late")], CRONMAN_SPAWNER="prefork",
                               LOGGING={"version": 1, "disable_existing_loggers": False})
        report_lateness(__file__, fires, scale, ["--marks", str(project.marks)], project.env(), project.path,
                        "prefork daemon, fire to inside run()")


def bench_faults(forks: int) -> None:
    import gc
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp), [("0 0 1 1 *", "Noop")])
        os.environ.update(project.env())
        sys.path.insert(0, str(project.path))
        from cronman_plugins.prefork.child import run_worker
        from cronman_plugins.prefork.template import warm_up

        warm_up()
        gc.freeze()
        print("| fork | first run | its page faults | second run | its page faults |")
        print("|---|---|---|---|---|")
        for fork in range(forks):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.setsid()
                figures = []
                for attempt in range(2):
                    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
                    run_worker(f"MarkTime:tag={fork}-{attempt}")
                    figures += [(time.perf_counter() - start) * 1000,
                                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults]
                os.write(write_fd, json.dumps(figures).encode())
                os._exit(0)
            os.close(write_fd)
            first, first_faults, second, second_faults = json.loads(os.read(read_fd, 4096))
            os.close(read_fd)
            os.waitpid(pid, 0)
            print(f"| {fork} | {first:.1f} ms | {first_faults} | {second:.1f} ms | {second_faults} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    burst_p = sub.add_parser("burst")
    burst_p.add_argument("--jobs", type=int, default=50)
    late_p = sub.add_parser("lateness")
    late_p.add_argument("--fires", type=int, default=200)
    late_p.add_argument("--scale", type=float, default=240)
    faults_p = sub.add_parser("faults")
    faults_p.add_argument("--forks", type=int, default=5)
    child = sub.add_parser("_lateness-child")
    child.add_argument("--fires", type=int, required=True)
    child.add_argument("--scale", type=float, required=True)
    child.add_argument("--marks", type=Path, required=True)
    args = parser.parse_args()
    if args.what == "burst":
        bench_burst(args.jobs)
    elif args.what == "lateness":
        bench_lateness(args.fires, args.scale)
    elif args.what == "faults":
        bench_faults(args.forks)
    else:
        lateness_child(args.fires, args.scale, args.marks, long_lived=True)


if __name__ == "__main__":
    main()
