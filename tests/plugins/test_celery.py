"""The Celery spawner with a real ``celery worker`` on a private redis-server broker."""

from __future__ import annotations

import json
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
from tests import settings as test_settings
from tests.conftest import REPO, wait_for
from tests.support.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.redis

APPS = [app for app in test_settings.INSTALLED_APPS if app not in ("cronman_plugins.tasks", "cronman_plugins.history")]

CELERY_APP = """\
from celery import Celery

from cronman_plugins.celery import register_task

app = Celery("cronman_test")
app.config_from_object("django.conf:settings", namespace="CELERY")
register_task(app)
"""


class CeleryCluster:
    """A redis-server broker, the shared settings, and one solo-pool Celery worker."""

    def __init__(self, path: Path, server: RedisServer) -> None:
        self.path = path
        self.shared_dir = path / "shared"
        self.shared_dir.mkdir()
        (self.shared_dir / "cronman_test_celery.py").write_text(CELERY_APP)
        self.settings = server.settings(
            INSTALLED_APPS=APPS,
            CRONMAN_REDIS_LOCKS=True,
            CRONMAN_CELERY_ENABLED=True,
            CRONMAN_CELERY_APP="cronman_test_celery.app",
            CRONMAN_CELERY_QUEUE=f"cronman-{uuid.uuid4().hex[:8]}",
            CELERY_BROKER_URL=f"redis://127.0.0.1:{server.port}/1",
            CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP=True,
        )
        self.worker_host = self.project("celery-host")
        self.log = path / "celery-worker.log"
        self.worker = self.start_worker(self.settings["CRONMAN_CELERY_QUEUE"], self.log)

    def start_worker(self, queue: str, log_path: Path) -> subprocess.Popen[bytes]:
        """A solo-pool ``celery worker`` on the worker host, consuming ``queue``, ready."""
        with open(log_path, "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "cronman_test_celery", "worker", "--pool", "solo",
                 "--concurrency", "1", "-Q", queue, "--loglevel", "INFO",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=self.worker_host.path, env=self.worker_host.env(), stdout=log, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: worker.poll() is not None or "ready." in log_path.read_text(), timeout=60)
        assert worker.poll() is None, log_path.read_text()
        return worker

    def project(self, name: str, jobs: tuple[tuple[Any, ...], ...] = ()) -> CronmanProject:
        """A host of the cluster (its own data dir) whose schedule is ``jobs``."""
        project = CronmanProject(self.path / name, "tests.settings", pythonpath=[self.shared_dir, REPO])
        (project.path / "cronman_test_schedule.py").write_text(f"CRON_JOBS = {jobs!r}\n")
        project.configure(CRONMAN_HOSTNAME=name, CRONMAN_JOBS_MODULE="cronman_test_schedule", **self.settings)
        return project

    def worker_logs(self) -> str:
        logs = self.worker_host.data_dir / "logs"
        return "".join(path.read_text() for path in sorted(logs.glob("*.log"))) if logs.exists() else ""

    def stop(self) -> None:
        self.worker.terminate()
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryCluster]:
    path = tmp_path_factory.mktemp("celery")
    with running_redis(path) as server:
        cluster = CeleryCluster(path, server)
        try:
            yield cluster
        finally:
            cluster.stop()


def tick(project: CronmanProject) -> subprocess.CompletedProcess[str]:
    result = project.run("cron_scheduler", "run")
    assert result.returncode == 0, result.stderr
    return result


def test_due_run_reaches_run_on_the_celery_worker(cluster: CeleryCluster) -> None:
    scheduler = cluster.project("scheduler-1", jobs=(("* * * * *", "WhereAmI:celery"),))
    result = tick(scheduler)
    assert "sent WhereAmI:celery to Celery queue" in result.stderr
    marks = wait_for(lambda: [m for m in cluster.worker_host.read_marks() if m["job"] == "WhereAmI"], timeout=60)
    assert [(m["tag"], m["ppid"]) for m in marks] == [("celery", cluster.worker.pid)]
    assert scheduler.read_marks() == []  # nothing ran on the scheduler's host
    wait_for(lambda: "exited with 0" in cluster.log.read_text(), timeout=60)


def test_job_with_a_held_lock_is_skipped_on_the_celery_worker(cluster: CeleryCluster) -> None:
    holder_host = cluster.project("holder")
    holder = holder_host.popen("cron_worker", "run", "Sleep:60,tag=holder")
    try:
        wait_for(lambda: any(m.get("tag") == "holder" for m in holder_host.read_marks()), timeout=60)
        scheduler = cluster.project("scheduler-2", jobs=(("* * * * *", "Sleep:0,tag=celery"),))
        assert "sent Sleep:0,tag=celery to Celery queue" in tick(scheduler).stderr
        wait_for(lambda: "'Sleep' is held by another worker" in cluster.worker_logs(), timeout=60)
        assert [m for m in cluster.worker_host.read_marks() if m["job"] == "Sleep"] == []
    finally:
        holder.kill()
        holder.wait()


def test_an_entrys_max_runtime_holds_on_the_celery_worker(cluster: CeleryCluster) -> None:
    scheduler = cluster.project("scheduler-4", jobs=(("* * * * *", "SpawnChild:30", {"max_runtime": 1}),))
    assert "sent SpawnChild:30 to Celery queue" in tick(scheduler).stderr
    marks = wait_for(lambda: [m for m in cluster.worker_host.read_marks() if m["job"] == "SpawnChild"], timeout=60)
    wait_for(lambda: "SpawnChild:30 exited with 124" in cluster.log.read_text(), timeout=30)
    wait_for(lambda: not psutil.pid_exists(marks[0]["child"]), timeout=10)


def test_a_message_that_waited_past_its_grace_is_not_run_and_is_missed(cluster: CeleryCluster) -> None:
    queue = f"cronman-late-{uuid.uuid4().hex[:8]}"  # nobody consumes it while the tick sends
    scheduler = cluster.project("scheduler-5", jobs=(("* * * * *", "WhereAmI:stale", {"misfire_grace": 0}),))
    scheduler.update(CRONMAN_CELERY_QUEUE=queue)
    state = scheduler.data_dir / "scheduler"
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "watermark.json").write_text(json.dumps({"version": 1, "watermark": time.time() // 60 * 60 - 1}))
    assert "sent WhereAmI:stale to Celery queue" in tick(scheduler).stderr
    time.sleep(max(0.0, (time.time() // 60 + 1) * 60 - time.time()) + 0.5)  # its minute is over: expired
    log = cluster.path / "late-worker.log"
    late = cluster.start_worker(queue, log)
    try:
        wait_for(lambda: "WhereAmI:stale expired in the queue: not run" in log.read_text(), timeout=30)
    finally:
        late.terminate()
        late.wait(timeout=30)
    assert [m for m in cluster.worker_host.read_marks() if m.get("tag") == "stale"] == []


def test_a_broker_down_at_a_tick_releases_the_fire_for_the_next_tick(cluster: CeleryCluster) -> None:
    from tests.support.redis_server import free_port

    scheduler = cluster.project("scheduler-6", jobs=(("* * * * *", "WhereAmI:retried"),))
    good = scheduler.settings["CELERY_BROKER_URL"]
    scheduler.update(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/1")  # nothing listens there
    state = scheduler.data_dir / "scheduler"
    state.mkdir(mode=0o700, exist_ok=True)
    (state / "watermark.json").write_text(json.dumps({"version": 1, "watermark": time.time() // 60 * 60 - 1}))
    down = scheduler.run("cron_scheduler", "run", timeout=120)
    assert "cannot start WhereAmI:retried" in down.stderr, down.stderr
    assert "released the fire claims of WhereAmI:retried" in down.stderr
    scheduler.update(CELERY_BROKER_URL=good)
    assert "sent WhereAmI:retried to Celery queue" in tick(scheduler).stderr
    wait_for(lambda: [m for m in cluster.worker_host.read_marks() if m.get("tag") == "retried"], timeout=60)


def test_the_task_never_acknowledges_late_whatever_the_project_says() -> None:
    from celery import Celery

    from cronman_plugins.celery import TASK_NAME, register_task

    app = Celery("pinned", set_as_current=False)
    app.conf.task_acks_late = True
    app.conf.task_reject_on_worker_lost = True
    register_task(app)
    task = app.tasks[TASK_NAME]
    assert (task.acks_late, task.reject_on_worker_lost) == (False, False)


def test_missing_celery_app_setting_is_one_line(cluster: CeleryCluster) -> None:
    scheduler = cluster.project("scheduler-3", jobs=(("* * * * *", "WhereAmI:nowhere"),))
    settings: dict[str, Any] = dict(cluster.settings, CRONMAN_CELERY_APP="no_such_module.app")
    scheduler.configure(CRONMAN_HOSTNAME="scheduler-3", CRONMAN_JOBS_MODULE="cronman_test_schedule", **settings)
    result = tick(scheduler)
    assert "cannot start WhereAmI:nowhere: CRONMAN_CELERY_APP 'no_such_module.app' cannot be imported" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kwargs", [None, [], "x", {"env": ["a"]}, {"env": "x", "job_spec": 3},
                                    {"env": {"CRONMAN_SCHEDULED_FIRE": "[1]"}}, {"env": {"CRONMAN_SCHEDULED_FIRE": 5}}])
def test_an_expired_message_of_any_shape_is_one_warning(kwargs, caplog) -> None:
    # a message in the queue is anyone's: an expired one with odd kwargs must not raise in the worker's signal
    from types import SimpleNamespace

    from cronman_plugins.celery import TASK_NAME, _revoked

    _revoked(request=SimpleNamespace(name=TASK_NAME, kwargs=kwargs), expired=True)
    assert [r.levelname for r in caplog.records if r.name.startswith("cronman")] == ["WARNING"]
