"""Admin Cron Tasks: the admin form, run_now, atomic claims, workers reporting back, races."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.db import OperationalError
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cronman_core.process import hostname
from cronman_core.spawn import build_worker_command
from cronman_core.utils import RESUMED_ENV
from cronman_plugins.tasks import runner
from cronman_plugins.tasks.checks import check_allowed_cron_tasks
from cronman_plugins.tasks.models import CronTask, CronTaskStatus
from tests.conftest import wait_for
from tests.support import tasks_support

db_project = tasks_support.db_project
sqlite_project = tasks_support.sqlite_project
postgres_databases = tasks_support.postgres_databases

ADD_URL = "/admin/cron/crontask/add/"
LIST_URL = "/admin/cron/crontask/"


def add_form(cron_job: str = "TaskEcho", params: str = "") -> dict[str, str]:
    now = timezone.now()
    return {
        "cron_job": cron_job,
        "params": params,
        "start_at_0": now.strftime("%Y-%m-%d"),
        "start_at_1": now.strftime("%H:%M:%S"),
    }


# -- admin form and permissions ------------------------------------------------------


@pytest.mark.django_db
def test_add_form_offers_only_task_jobs(admin_client, settings):
    page = admin_client.get(ADD_URL).content.decode()
    assert '<option value="TaskEcho">TaskEcho(what, sleep=&#x27;0&#x27;)</option>' in page
    assert '<option value="Hello"' not in page
    settings.ALLOWED_CRON_TASKS = ["Hello"]
    assert '<option value="Hello"' in admin_client.get(ADD_URL).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cron_job", "params", "error"),
    [
        ("TaskEcho", '"open', "unbalanced quotes"),
        ("TaskEcho", "a,,b", "empty value"),
        ("TaskEcho", "x,nope=1", "unexpected keyword argument &#x27;nope&#x27;"),
        ("TaskEcho", "", "missing a required argument: &#x27;what&#x27;"),
        ("TaskEcho", "what=1,what=2", "duplicated key"),
        ("Hello", "x", "Select a valid choice"),
    ],
)
def test_bad_request_is_a_form_error_and_saves_nothing(admin_client, cron_job, params, error):
    response = admin_client.post(ADD_URL, add_form(cron_job, params))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert CronTask.objects.count() == 0


@pytest.mark.django_db
def test_good_request_is_saved_canonical_with_its_user(admin_client, admin_user):
    response = admin_client.post(ADD_URL, add_form(params="'big world',sleep=1"))
    assert response.status_code == 302, response.content.decode()
    task = CronTask.objects.get()
    assert (task.cron_job, task.params, task.status, task.user) == (
        "TaskEcho", '"big world",sleep=1', CronTaskStatus.WAITING, admin_user,
    )
    assert task.job_spec == 'TaskEcho:"big world",sleep=1'


@pytest.mark.django_db
def test_user_without_add_permission_cannot_request_runs(client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_crontask"))
    existing = CronTask.objects.create(cron_job="TaskEcho", params="x", status=CronTaskStatus.FINISHED)
    client.force_login(viewer)
    assert client.get(LIST_URL).status_code == 200
    assert client.get(ADD_URL).status_code == 403
    assert client.post(ADD_URL, add_form(params="x")).status_code == 403
    client.post(LIST_URL, {"action": "run_again", "_selected_action": [existing.pk]})
    assert list(CronTask.objects.all()) == [existing]


@pytest.mark.django_db
def test_run_again_requests_a_new_run(admin_client, admin_user):
    old = CronTask.objects.create(cron_job="TaskEcho", params="x", status=CronTaskStatus.FAILED)
    admin_client.post(LIST_URL, {"action": "run_again", "_selected_action": [old.pk]})
    new = CronTask.objects.exclude(pk=old.pk).get()
    assert (new.job_spec, new.status, new.user) == ("TaskEcho:x", CronTaskStatus.WAITING, admin_user)


# -- run_now, claims, reaping --------------------------------------------------------


@pytest.mark.django_db
def test_run_now_deduplicates_a_repeated_request(settings):
    settings.CRONMAN_TASK_DEDUP_WINDOW = 300
    first = CronTask.objects.run_now("TaskEcho", "x")
    assert CronTask.objects.run_now("TaskEcho", "what=x") != first  # other params: a new run
    assert CronTask.objects.run_now("TaskEcho", "x") == first
    later = timezone.now() + dt.timedelta(seconds=301)
    assert CronTask.objects.run_now("TaskEcho", "x", now=later) != first
    assert CronTask.objects.count() == 3


@pytest.mark.django_db
def test_claim_due_claims_each_due_task_once():
    now = timezone.now()
    due = [CronTask.objects.create(cron_job="TaskEcho", params=str(i), start_at=now) for i in range(3)]
    CronTask.objects.create(cron_job="TaskEcho", params="later", start_at=now + dt.timedelta(hours=1))
    claimed = CronTask.objects.claim_due(now)
    assert [t.pk for t in claimed] == [t.pk for t in due]
    assert CronTask.objects.claim_due(now) == []
    assert set(CronTask.objects.values_list("status", flat=True)) == {"queued", "waiting"}


@pytest.mark.django_db
def test_worker_command_of_a_claimed_task_carries_its_id_and_only_it():
    task = CronTask.objects.run_now("TaskEcho", "'a b'")
    [run] = runner.requested_runs(timezone.now())
    assert run.job_spec == 'TaskEcho:"a b"'
    command = build_worker_command(run.job_spec, resumed=run.resumed, env=run.env)
    assert command.env[runner.TASK_ENV] == str(task.pk)
    assert command.argv[-1] == 'TaskEcho:"a b"'  # one argv item, no shell
    assert runner.TASK_ENV not in build_worker_command('TaskEcho:"a b"').env


@pytest.mark.django_db
def test_a_task_that_no_longer_fits_its_job_fails_at_pickup():
    task = CronTask.objects.create(cron_job="TaskEcho", params="a,b,c")  # saved before run() changed
    assert runner.requested_runs(timezone.now()) == []
    task.refresh_from_db()
    assert task.status == "failed" and "do not fit TaskEcho.run()" in task.error


def test_a_database_outage_at_pickup_is_one_warning_and_no_runs(monkeypatch, caplog):
    message = f"database unreachable {uuid.uuid4().hex}"

    def outage(now):
        raise OperationalError(message)

    monkeypatch.setattr(runner, "reap_dead_tasks", outage)
    with caplog.at_level(logging.DEBUG, logger="cronman.plugins.tasks"):
        assert runner.requested_runs(timezone.now()) == []
        assert runner.requested_runs(timezone.now()) == []  # the daemon polls every second
    levels = [record.levelname for record in caplog.records if message in record.getMessage()]
    assert levels == ["WARNING", "DEBUG"]


def test_unknown_name_in_allowed_cron_tasks_is_a_check_warning(settings):
    settings.ALLOWED_CRON_TASKS = ["TaskEcho", "Nope"]
    assert [(m.id, m.msg) for m in check_allowed_cron_tasks()] == [
        ("cronman.W020", "ALLOWED_CRON_TASKS names 'Nope', which is not a registered cron job")
    ]


@pytest.fixture
def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.django_db
def test_dead_workers_fail_or_resume(settings, dead_pid):
    settings.CRONMAN_TASK_QUEUED_TIMEOUT = 60
    now = timezone.now()
    started = {"host": hostname(), "pid": dead_pid, "process_started": 1.0, "started_at": now}
    crashed = CronTask.objects.create(cron_job="Fail", status="started", **started)
    resumable = CronTask.objects.create(cron_job="Sleep", status="started", **started)
    stuck = CronTask.objects.create(cron_job="Noop", status="queued", queued_at=now - dt.timedelta(seconds=61))
    fresh = CronTask.objects.create(cron_job="Noop", status="queued", queued_at=now)
    elsewhere = CronTask.objects.create(cron_job="Fail", status="started", **{**started, "host": "other"})
    runner.reap_dead_tasks(now)
    status = dict(CronTask.objects.values_list("pk", "status"))
    assert status[crashed.pk] == status[stuck.pk] == "failed"
    assert status[resumable.pk] == "waiting" and CronTask.objects.get(pk=resumable.pk).resumed
    assert status[fresh.pk] == "queued" and status[elsewhere.pk] == "started"
    assert "ended without reporting" in CronTask.objects.get(pk=crashed.pk).error
    claimed = runner.claim_tasks(now)
    assert [t.pk for t in claimed] == [resumable.pk]
    run = runner.requested_run(claimed[0])
    command = build_worker_command(run.job_spec, resumed=run.resumed, env=run.env)
    assert command.resumed and command.env[RESUMED_ENV] == "1"


# -- real processes ------------------------------------------------------------------------


def test_task_runs_in_a_worker_and_reports_back(db_project):
    task_id = db_project.shell(
        "from cronman_plugins.tasks.models import CronTask; "
        "print(CronTask.objects.run_now('TaskEcho', '\"big world\",sleep=0').pk)"
    )
    result = db_project.run("cron_worker", "run", "RunCronTasks")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: db_project.task(task_id)["status"] == "finished")
    assert [m["what"] for m in db_project.read_marks()] == ["big world"]
    task = db_project.task(task_id)
    assert task["host"] == hostname() and task["pid"] > 0
    history = db_project.query("SELECT job_spec, status, pid FROM cron_history_cronrun ORDER BY id")
    assert ('TaskEcho:"big world",sleep=0', "succeeded", task["pid"]) in history


def test_failing_task_keeps_its_error(sqlite_project):
    sqlite_project.configure(ALLOWED_CRON_TASKS=["Fail"])
    task_id = sqlite_project.shell(
        "from cronman_plugins.tasks.models import CronTask; "
        "print(CronTask.objects.run_now('Fail', 'kaput').pk)"
    )
    assert sqlite_project.run("cron_worker", "run", "RunCronTasks").returncode == 0
    wait_for(lambda: sqlite_project.task(task_id)["status"] == "failed")
    assert sqlite_project.task(task_id)["error"] == "RuntimeError: kaput"


def test_daemon_starts_a_pending_task(sqlite_project):
    # No scheduled RunCronTasks (it would race the daemon's poll for the task
    # when the test starts on a */4 minute): the daemon's poll must start it.
    (sqlite_project.path / "schedule_without_tasks.py").write_text(
        'CRON_JOBS = (("0 0 30 2 *", "RunCronTasks"),)\n'
    )
    sqlite_project.configure(CRONMAN_JOBS_MODULE="schedule_without_tasks")
    daemon = sqlite_project.popen("cron_scheduler", "daemon")
    try:
        task_id = sqlite_project.shell(
            "from cronman_plugins.tasks.models import CronTask; "
            "print(CronTask.objects.run_now('TaskEcho', 'daemon').pk)"
        )
        wait_for(lambda: sqlite_project.task(task_id)["status"] == "finished")
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "started requested run TaskEcho:daemon" in err


def test_killed_worker_of_a_resumable_job_is_resumed(sqlite_project):
    sqlite_project.configure(ALLOWED_CRON_TASKS=["Sleep"])
    task_id = sqlite_project.shell(
        "from cronman_plugins.tasks.models import CronTask; "
        "print(CronTask.objects.run_now('Sleep', 'seconds=60').pk)"
    )
    assert sqlite_project.run("cron_worker", "run", "RunCronTasks").returncode == 0
    first = wait_for(lambda: sqlite_project.task(task_id)["status"] == "started" and sqlite_project.task(task_id))
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{first['pid']}") or _zombie(first["pid"]))
    assert sqlite_project.run("cron_worker", "run", "RunCronTasks").returncode == 0
    second = wait_for(
        lambda: (t := sqlite_project.task(task_id))["status"] == "started" and t["pid"] != first["pid"] and t
    )
    assert second["resumed"]
    wait_for(lambda: [m["resumed"] for m in sqlite_project.read_marks() if m.get("event") == "start"]
             == [False, True])
    status = sqlite_project.run("cron_worker", "status", "--json")
    assert str(first["pid"]) not in status.stdout  # the task resumed it: no record left to resume twice
    os.kill(second["pid"], signal.SIGTERM)
    wait_for(lambda: sqlite_project.task(task_id)["status"] == "failed")
    assert sqlite_project.task(task_id)["error"] == "killed by signal 15"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_two_run_cron_tasks_start_each_of_100_tasks_once(db_project):
    spawned = db_project.path / "spawned.jsonl"
    db_project.configure(CRONMAN_PLUGINS=["tests.support.tasks_recorder"])
    ids = db_project.shell(
        "from cronman_plugins.tasks.models import CronTask; "
        "tasks = CronTask.objects.bulk_create(CronTask(cron_job='TaskEcho', params=f'n{i}') for i in range(100)); "
        "print(sorted(CronTask.objects.values_list('pk', flat=True)))"
    )
    env = {"CRONMAN_TEST_SPAWNED": str(spawned)}
    racers = [db_project.popen("cron_worker", "run", "RunCronTasks", env=env) for _ in range(2)]
    for racer in racers:
        _, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
    lines = [json.loads(line) for line in spawned.read_text().splitlines()]
    assert sorted(int(line["task_id"]) for line in lines) == ids
    params = dict(db_project.query("SELECT id, params FROM cron_crontask"))
    assert all(line["spec"] == f"TaskEcho:{params[int(line['task_id'])]}" for line in lines)
    assert db_project.query("SELECT DISTINCT status FROM cron_crontask") == [("queued",)]


RUN_NOW_PAIRS = """
import json, threading
from django.db import connections
from cronman_plugins.tasks.models import CronTask

errors = []

def request(barrier, params):
    try:
        barrier.wait()
        CronTask.objects.run_now("TaskEcho", params)
    except Exception as exc:
        errors.append(type(exc).__name__ + ": " + str(exc))
    finally:
        connections.close_all()

for pair in range({pairs}):
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=request, args=(barrier, str(pair))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
print(json.dumps({{"tasks": CronTask.objects.count(), "errors": errors[:3]}}))
"""


def test_simultaneous_run_now_requests_make_one_task_each(db_project):
    """50 pairs of the same request at once: 50 tasks, no "database is locked" (SQLite) or doubles (PostgreSQL)."""
    result = db_project.shell(RUN_NOW_PAIRS.format(pairs=50))
    assert result == {"tasks": 50, "errors": []}


def test_a_task_whose_lock_is_held_ends_skipped_with_the_reason(sqlite_project):
    sqlite_project.configure(ALLOWED_CRON_TASKS=["Sleep"])
    holder = sqlite_project.popen("cron_worker", "run", "Sleep:600,tag=holder")
    try:
        wait_for(lambda: [m for m in sqlite_project.read_marks() if m["job"] == "Sleep"], timeout=60)
        task_id = sqlite_project.shell(
            "from cronman_plugins.tasks.models import CronTask; "
            "print(CronTask.objects.run_now('Sleep', '1').pk)"
        )
        assert sqlite_project.run("cron_worker", "run", "RunCronTasks").returncode == 0
        wait_for(lambda: sqlite_project.task(task_id)["status"] == "skipped", timeout=60)
        assert sqlite_project.task(task_id)["error"] == "lock 'Sleep' is held by another worker"
    finally:
        holder.kill()
        holder.wait()


PARAMS_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)


@pytest.mark.django_db
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cron_job=st.sampled_from(["TaskEcho", "Hello", "", "NoSuchJob"]),
       params=st.one_of(PARAMS_TEXT, st.sampled_from(['x,sleep=1', '"a b",sleep=0', "what=\u00e9", "x," * 30])))
def test_any_request_form_input_is_saved_runnable_or_refused_on_the_form(admin_client, cron_job, params) -> None:
    """Fuzzed: the add form never errs (500), and what it saves is a job spec the worker accepts."""
    from cronman_core.plugins import get_plugin_manager

    CronTask.objects.all().delete()
    response = admin_client.post(ADD_URL, add_form(cron_job, params))
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:
        assert response.context["adminform"].form.errors
        assert not CronTask.objects.exists()
        return
    task = CronTask.objects.get()
    get_plugin_manager().resolve(task.job_spec)  # raises a UsageError if the worker would refuse it
