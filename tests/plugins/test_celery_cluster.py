"""Celery runs as cluster runs: real ``celery worker`` processes on two "hosts" (their own data dirs and
``CRONMAN_HOSTNAME``), a scheduler host, RabbitMQ or a private redis-server as the broker, Redis locks on
that private server and the history and Cron Tasks in one PostgreSQL database."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cronman_core.testing import CronmanProject
from tests.conftest import REPO, need, wait_for
from tests.support.redis_server import RedisServer, running_redis
from tests.support.tasks_support import PG, postgres_database

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

CELERY_APP = """\
from celery import Celery

from cronman_plugins.celery import register_task

app = Celery("cronman_test")
app.config_from_object("django.conf:settings", namespace="CELERY")
register_task(app)
"""
RABBITMQ = ("127.0.0.1", 5672)
#: Short, so a lost run's lock lapses within the test.
LOCK_TTL = 6.0


def rabbitmq_url() -> str:
    try:
        socket.create_connection(RABBITMQ, timeout=3).close()
    except OSError as exc:
        need(False, f"RabbitMQ on {RABBITMQ[0]}:{RABBITMQ[1]} is unreachable: {exc}")
    return f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}//"


class Cluster:
    """The shared stores, a scheduler host, and the Celery worker hosts started per test."""

    def __init__(self, path: Path, redis: RedisServer, broker: str, databases: dict[str, Any]) -> None:
        self.path = path
        self.databases = databases
        self.shared_dir = path / "shared"
        self.shared_dir.mkdir()
        (self.shared_dir / "cronman_test_celery.py").write_text(CELERY_APP)
        self.settings = redis.settings(
            DATABASES=databases,
            CRONMAN_REDIS_LOCKS=True,
            CRONMAN_REDIS_LOCK_TTL=LOCK_TTL,
            CRONMAN_SPAWNER="celery",
            CRONMAN_CELERY_APP="cronman_test_celery.app",
            CRONMAN_TIME_ZONE="UTC",
            CRONMAN_KILL_GRACE=2.0,
            CELERY_BROKER_URL=broker if broker != "redis" else f"redis://127.0.0.1:{redis.port}/1",
            CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP=True,
            CELERY_WORKER_PREFETCH_MULTIPLIER=1,
        )
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.queue = ""

    def project(self, name: str, jobs: tuple[tuple[Any, ...], ...] = ()) -> CronmanProject:
        project = CronmanProject(self.path / name, "tests.settings", pythonpath=[self.shared_dir, REPO])
        (project.path / "cronman_test_schedule.py").write_text(f"CRON_JOBS = {jobs!r}\n")
        project.configure(CRONMAN_HOSTNAME=name, CRONMAN_JOBS_MODULE="cronman_test_schedule",
                          CRONMAN_CELERY_QUEUE=self.queue, **self.settings)
        return project

    def new_test(self, name: str) -> None:
        """A queue of the test's own: nothing a former test left in a queue reaches this one's workers."""
        self.queue = f"cronman-{name}-{uuid.uuid4().hex[:6]}"
        self.path = self.path.parent / f"{self.path.name.split('--')[0]}--{name}"
        self.path.mkdir()

    def start_worker(self, host: str) -> CronmanProject:
        """A solo-pool ``celery worker`` posing as ``host`` (its own session: it is killed as a whole)."""
        project = self.project(host)
        log = project.path / "celery.log"
        with open(log, "w") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "cronman_test_celery", "worker", "--pool", "solo",
                 "-n", f"{host}@%h", "-Q", self.queue, "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=project.path, env=project.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_for(lambda: worker.poll() is not None or "ready." in log.read_text(), timeout=60)
        assert worker.poll() is None, log.read_text()
        self.workers[host] = worker
        return project

    def kill_worker(self, host: str) -> None:
        """SIGKILL the Celery worker (as the OOM killer or a dead host would): it says nothing to anyone."""
        worker = self.workers.pop(host)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    def stop_workers(self) -> None:
        for host in list(self.workers):
            self.kill_worker(host)  # a warm shutdown would wait for the broker; their runs die with them

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(host=PG["HOST"], port=PG["PORT"], user=PG["USER"],
                             dbname=self.databases["default"]["NAME"]) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def history(self, job: str) -> list[tuple[str, str, str, str]]:
        """``(tag in the spec, host, status, exit reason)`` of each history row of ``job``, oldest first."""
        return [(spec, host, status, reason) for spec, host, status, reason in self.query(
            "SELECT job_spec, host, status, exit_reason FROM cron_history_cronrun WHERE job_name = %s "
            "ORDER BY started_at, id", job)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RedisServer, dict[str, Any]]]:
    """A private redis-server and a migrated PostgreSQL database, for the module."""
    path = tmp_path_factory.mktemp("celery-cluster")
    with postgres_database("cronman_celery") as databases, running_redis(path) as server:
        migrator = CronmanProject(path / "migrator", "tests.settings", pythonpath=[REPO])
        migrator.configure(DATABASES=databases)
        result = migrator.run("migrate", "--noinput", "-v", "0")
        assert result.returncode == 0, result.stderr
        yield path, server, databases


def make_cluster(request: pytest.FixtureRequest, stores: tuple[Path, RedisServer, dict[str, Any]],
                 broker: str) -> Iterator[Cluster]:
    path, server, databases = stores
    base = path / f"{broker}-{uuid.uuid4().hex[:6]}"
    base.mkdir()
    cluster = Cluster(base, server, broker if broker == "redis" else rabbitmq_url(), databases)
    cluster.new_test(request.node.name.split("[")[0].removeprefix("test_")[:40])
    cluster.query("TRUNCATE cron_history_cronrun, cron_crontask")
    try:
        yield cluster
    finally:
        cluster.stop_workers()


@pytest.fixture(params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def any_broker(request: pytest.FixtureRequest, stores: Any) -> Iterator[Cluster]:
    yield from make_cluster(request, stores, request.param)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, stores: Any) -> Iterator[Cluster]:
    """On RabbitMQ, which gives a dead consumer's unacknowledged messages to whoever is left at once:
    cronman's are acknowledged on receipt, so only cronman's own re-run may run a lost run again."""
    yield from make_cluster(request, stores, "rabbitmq")


def fire_now(project: CronmanProject, minute: float | None = None) -> subprocess.CompletedProcess[str]:
    """A tick with the watermark just before ``minute`` (default: this one): its fires are due."""
    state = project.data_dir / "scheduler"
    state.mkdir(mode=0o700, exist_ok=True, parents=True)
    minute = time.time() // 60 * 60 if minute is None else minute
    (state / "watermark.json").write_text(json.dumps({"version": 1, "watermark": minute - 1}))
    return tick(project)


def tick(project: CronmanProject) -> subprocess.CompletedProcess[str]:
    result = project.run("cron_scheduler", "run")
    assert result.returncode == 0, result.stderr
    return result


def once_at(minute: float) -> str:
    """A time spec that fires at ``minute`` only (this year), so later ticks start nothing new."""
    at = time.gmtime(minute)
    return f"{at.tm_min} {at.tm_hour} {at.tm_mday} {at.tm_mon} *"


def starts(*hosts: CronmanProject, job: str | None = None) -> list[dict[str, Any]]:
    return [m for host in hosts for m in host.read_marks() if m.get("event") == "start" and job in (None, m["job"])]


def test_twenty_due_jobs_run_once_across_two_celery_workers(any_broker: Cluster) -> None:
    cluster = any_broker
    a, b = cluster.start_worker("celery-a"), cluster.start_worker("celery-b")
    jobs = tuple(("* * * * *", f"CeleryRun:tag=j{n},seconds=0.5") for n in range(19))
    scheduler = cluster.project("sched", jobs=(*jobs, ("* * * * *", "CeleryFresh:tag=fresh,seconds=0.5")))
    result = fire_now(scheduler)
    assert len(re.findall(r"sent Celery(Run|Fresh):\S+ to Celery queue", result.stderr)) == 20, result.stderr
    marks = wait_for(lambda: (found := starts(a, b)) and len(found) >= 20 and found, timeout=90)
    time.sleep(1.0)  # a duplicate would show by now
    marks = starts(a, b)
    assert sorted(m["tag"] for m in marks) == sorted([f"j{n}" for n in range(19)] + ["fresh"])
    by_host = {host.path.name: {m["tag"] for m in host.read_marks() if m.get("event") == "start"} for host in (a, b)}
    assert by_host["celery-a"] and by_host["celery-b"], by_host  # both workers took runs
    assert all(m["ppid"] == cluster.workers[m["host"]].pid for m in marks if m["job"] == "CeleryRun")  # forked
    logs = (a.path / "celery.log").read_text() + (b.path / "celery.log").read_text()
    forked, execed = (set(re.findall(rf"running {job}:\S+ as PID (\d+) \({how}\)", logs))
                      for job, how in (("CeleryRun", "forked"), ("CeleryFresh", "a new process")))
    assert (len(forked), len(execed)) == (19, 1), logs
    rows = wait_for(lambda: (rows := cluster.history("CeleryRun") + cluster.history("CeleryFresh"))
                    and all(row[2] == "succeeded" for row in rows) and len(rows) == 20 and rows, timeout=30)
    hosts_of = {spec.split("tag=")[1].split(",")[0]: host for spec, host, _status, _reason in rows}
    assert hosts_of == {tag: host for host, tags in by_host.items() for tag in tags}
    assert scheduler.read_marks() == []


def test_a_class_locked_job_never_runs_twice_at_once_across_celery_workers(any_broker: Cluster) -> None:
    cluster = any_broker
    a, b = cluster.start_worker("celery-a"), cluster.start_worker("celery-b")
    scheduler = cluster.project("sched", jobs=tuple(("* * * * *", f"CeleryLocked:tag=l{n},seconds=2")
                                                    for n in range(4)))
    fire_now(scheduler)
    logs = [a.path / "celery.log", b.path / "celery.log"]
    wait_for(lambda: len({spec for log in logs for spec in re.findall(r"(CeleryLocked:\S+) exited with",
                                                                         log.read_text())}) == 4, timeout=60)
    marks = sorted((m for m in a.read_marks() + b.read_marks()), key=lambda m: m["t"])
    runs = [(start["t"], end["t"]) for start, end in zip(marks[::2], marks[1::2], strict=True)]
    assert [m["event"] for m in marks] == ["start", "end"] * len(runs)  # one at a time: never two starts in a row
    assert all(later[0] >= earlier[1] for earlier, later in zip(runs, runs[1:], strict=False))
    run_logs = [log.read_text() for host in (a, b) for log in (host.data_dir / "logs").glob("*CeleryLocked*.log")]
    skipped = [text for text in run_logs if "lock 'CeleryLocked' is held by another worker, skipping" in text]
    assert len(runs) + len(skipped) == 4 and skipped, run_logs


@pytest.mark.parametrize("job", ["CeleryRetried", "CeleryRun"])
def test_a_celery_worker_sigkilled_mid_job_reruns_it_once_only_when_the_job_allows(
    cluster: Cluster, job: str
) -> None:
    hold = cluster.path / "hold"
    a = cluster.start_worker("celery-a")
    minute = time.time() // 60 * 60
    scheduler = cluster.project("sched", jobs=((once_at(minute), f"{job}:tag=lost,hold={hold}"),))
    fire_now(scheduler, minute)
    first = wait_for(lambda: starts(a), timeout=60)[0]
    run_pid = first["pid"]
    cluster.kill_worker("celery-a")
    wait_for(lambda: not psutil.pid_exists(run_pid), timeout=10)  # the run died with its carrier
    # Its lock has not lapsed yet: the run could still hold it, so nothing is re-run.
    early = tick(scheduler)
    assert "sending it once more" not in early.stderr
    b = cluster.start_worker("celery-b")
    # A solo pool acknowledges a message only after its task (Celery defers early acks to its event loop):
    # RabbitMQ gives it to celery-b, which does not run it twice.
    wait_for(lambda: "delivered again after a Celery worker took it: not run twice"
             in (b.path / "celery.log").read_text(), timeout=30)
    hold.touch()
    deadline = time.monotonic() + LOCK_TTL + 20
    while time.monotonic() < deadline:
        result = tick(scheduler)  # closes the lost run's history row once its lock lapsed; re-sends it or not
        if "sending it once more" in result.stderr or [row[2] for row in cluster.history(job)] == ["killed"]:
            break
        time.sleep(0.5)
    if job == "CeleryRetried":
        second = wait_for(lambda: starts(b), timeout=60)[0]
        assert second["host"] == "celery-b" and second["token"] > first["token"]  # fenced: a greater token
        wait_for(lambda: [row[2] for row in cluster.history(job)] == ["killed", "succeeded"], timeout=30)
        for _ in range(3):  # and once only
            assert "sending it once more" not in tick(scheduler).stderr
        assert len(starts(a, b)) == 2
    else:
        for _ in range(2):
            assert "sending it once more" not in tick(scheduler).stderr
        assert starts(b) == []
        assert [row[2] for row in cluster.history(job)] == ["killed"]
        assert "worker vanished" in cluster.history(job)[0][3]
    assert [row[1] for row in cluster.history(job)] == ["celery-a", "celery-b"][: len(cluster.history(job))]


def test_status_kill_and_resume_of_a_celery_run_from_the_scheduler_host(cluster: Cluster) -> None:
    a = cluster.start_worker("celery-a")
    minute = time.time() // 60 * 60
    hold = cluster.path / "hold"
    scheduler = cluster.project("sched", jobs=((once_at(minute), f"CeleryRun:tag=remote,hold={hold}"),))
    fire_now(scheduler, minute)
    first = wait_for(lambda: starts(a), timeout=60)[0]
    entries = json.loads(scheduler.run("cron_worker", "status", "CeleryRun", "--json").stdout)["workers"]
    assert [(e["host"], e["status"], e["pid"]) for e in entries] == [("celery-a", "ALIVE", first["pid"])]
    killed = scheduler.run("cron_worker", "kill", "CeleryRun")
    assert killed.returncode == 0, killed.stderr
    wait_for(lambda: not psutil.pid_exists(first["pid"]), timeout=20)
    wait_for(lambda: [row[2] for row in cluster.history("CeleryRun")] == ["killed"], timeout=30)
    resumed = scheduler.run("cron_worker", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "RESUMED" in resumed.stdout, resumed.stdout
    again = wait_for(lambda: [m for m in starts(a) if m["resumed"]], timeout=60)[0]
    assert again["host"] == "celery-a" and again["token"] > first["token"]
    assert "Resumed: 0" in scheduler.run("cron_worker", "resume").stdout  # its record went with the resume
    hold.touch()
    wait_for(lambda: [row[2] for row in cluster.history("CeleryRun")] == ["killed", "succeeded"], timeout=30)


def test_a_cron_task_on_a_lost_celery_worker_ends_without_a_scheduler_on_that_host(cluster: Cluster) -> None:
    hold = cluster.path / "hold"
    a = cluster.start_worker("celery-a")
    scheduler = cluster.project("sched")
    scheduler.shell("from cronman_plugins.tasks.models import CronTask; "
                    f"CronTask.objects.run_now('CeleryLocked', 'tag=task,hold={hold}'); print('1')")

    def task() -> tuple[str, str, bool]:
        return cluster.query("SELECT status, host, resumed FROM cron_crontask")[0]

    tick(scheduler)
    wait_for(lambda: task()[:2] == ("started", "celery-a"), timeout=60)
    cluster.kill_worker("celery-a")  # no scheduler runs on celery-a to reap its task
    b = cluster.start_worker("celery-b")
    hold.touch()
    deadline = time.monotonic() + LOCK_TTL + 30
    while task()[0] != "finished" and time.monotonic() < deadline:
        tick(scheduler)  # reaps the task (the job can resume: waiting again), then sends it again
        time.sleep(0.5)
    assert task() == ("finished", "celery-b", True)  # reaped as dead from the scheduler host, then resumed
    assert [m["resumed"] for m in starts(a, b)] == [False, True]
