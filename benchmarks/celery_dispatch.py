"""100 due jobs until all are inside ``run()``: on two Celery workers, beside the local and prefork spawners.

    .venv/bin/python benchmarks/celery_dispatch.py [--jobs 100] [--concurrency 50]

One run, four sides, each a ``cron_scheduler daemon`` started 15 s before a
minute at which N ``* * * * *`` entries fire (as ``burst.py burst``):

- the prefork spawner and the local spawner, on this host;
- the Celery spawner with two ``celery worker`` processes (hosts ``celery-a``
  and ``celery-b``: their own data dirs), each a prefork pool of
  ``--concurrency`` processes, RabbitMQ on loopback as the broker (a queue of
  the run's own), the task forking its warm pool process per run;
- the same with each run in a new Python (``warm_fork = False``): the design
  the task had before, a subprocess per run.

Measured: from the fire instant until the last of the N jobs is inside
``run()`` (each job marks the time it got there and stays 30 s), and the sum
of the N runs' PSS while they sit there. The Celery workers start (and warm
their pools) before the daemon, as deployed ones are. Takes about five minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from burst import burst_cronman, daemon_burst  # noqa: E402  (benchmarks/ is not a package)
from scheduler import make_project  # noqa: E402

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
CELERY_APP = """\
from celery import Celery

from cronman_plugins.celery import register_task

app = Celery("cronman_bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
register_task(app)
"""


def celery_side(work: Path, jobs: int, concurrency: int, job: str) -> tuple[float, float]:
    queue = f"cronman-bench-{uuid.uuid4().hex[:8]}"
    shared = work / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "cronman_bench_celery.py").write_text(CELERY_APP)
    (shared / "cronman_bench_urls.py").write_text("urlpatterns = []\n")  # Celery checks the URLconf: no admin here
    settings = dict(CRONMAN_SPAWNER="celery", CRONMAN_CELERY_APP="cronman_bench_celery.app",
                    CRONMAN_CELERY_QUEUE=queue, CELERY_BROKER_URL=BROKER, ROOT_URLCONF="cronman_bench_urls",
                    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP=True, CELERY_WORKER_PREFETCH_MULTIPLIER=1)
    pairs = [("* * * * *", f"{job}:tag={i},seconds=30") for i in range(jobs)]
    hosts = []
    for name in ("celery-a", "celery-b"):
        host = make_project(work / name, [], CRONMAN_HOSTNAME=name, **settings)
        host.pythonpath.insert(0, str(shared))
        hosts.append(host)
    workers = []
    try:
        for host in hosts:
            log = host.path / "celery.log"
            with open(log, "w") as out:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "cronman_bench_celery", "worker", "--pool", "prefork",
                     "--concurrency", str(concurrency), "-n", f"{host.path.parent.name}@%h", "-Q", queue,
                     "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
                    cwd=host.path, env=host.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(10)  # the pools are up (they log nothing at WARNING)
        for host, worker in zip(hosts, workers, strict=True):
            if worker.poll() is not None:
                raise SystemExit("a celery worker exited:\n" + (host.path / "celery.log").read_text()[-3000:])
        scheduler = make_project(work / "scheduler", pairs, CRONMAN_HOSTNAME="scheduler", **settings)
        scheduler.pythonpath.insert(0, str(shared))
        how = "new Python per run" if job == "MarkTimeFresh" else "forked per run"
        return daemon_burst(f"cronman daemon, Celery spawner, 2 workers × {concurrency}, {how}", scheduler,
                            [host.marks for host in hosts], jobs, work / "scheduler-daemon.log")
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        raise SystemExit(f"RabbitMQ on 127.0.0.1:5672 is unreachable ({exc}): "
                         "bash scripts/ci-services.sh starts it") from None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"{args.jobs} jobs due at the same minute: fire instant until all are inside run(), and their ΣPSS")
        print("| spawner | all inside run() | ΣPSS |")
        print("|---|---|---|")
        prefork = burst_cronman(work, args.jobs, "prefork")
        local = burst_cronman(work, args.jobs, "local")
        forked = celery_side(work / "celery-fork", args.jobs, args.concurrency, "MarkTime")
        fresh = celery_side(work / "celery-exec", args.jobs, args.concurrency, "MarkTimeFresh")
        print(f"Celery forked / prefork: time x{forked[0] / prefork[0]:.2f}, ΣPSS x{forked[1] / prefork[1]:.2f}; "
              f"Celery forked / Celery new Python: time x{forked[0] / fresh[0]:.2f}, "
              f"ΣPSS x{forked[1] / fresh[1]:.2f}; local / prefork: time x{local[0] / prefork[0]:.2f}")


if __name__ == "__main__":
    main()
