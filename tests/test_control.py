"""``cron_worker status / kill / resume / clean / suspend`` against real workers and signals."""

import json
import os
import subprocess

import psutil
import pytest

from cronman_core.process import hostname
from cronman_core.records import RunRecord
from cronman_plugins.pidfile import PidfileBackend
from tests.conftest import wait_for
from tests.support.forked import ForkDriver, ForkedWorker


def _marks(project, job, event="start"):
    return [m for m in project.read_marks() if m["job"] == job and m.get("event", "start") == event]


def _rows(result):
    """The tab-separated rows of status / kill output (no header, no totals)."""
    return [line.split("\t") for line in result.stdout.splitlines() if "\t" in line][
        1 if result.stdout.startswith("STATUS") else 0 :
    ]


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _one_error_line(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _forge_record(project, pid, create_time):
    """A record of a ``Sleep:60`` run (id ``forged``) naming process ``pid``, as a store writer could."""
    PidfileBackend(project.data_dir).write_record(
        RunRecord(key="Sleep", job_spec="Sleep:60", pid=pid, host=hostname(), create_time=create_time,
                  run_id="forged", started_at="2026-01-01T00:00:00+00:00")
    )


@pytest.fixture(params=["run", "prefork"], ids=["cron_worker-run", "prefork"])
def start(request, project):
    """Start a worker: ``cron_worker run`` (own session, as the local spawner, or as a shell user
    would) or forked by the prefork spawner as the daemon does (always its own session)."""
    if request.param == "run":
        yield lambda spec, new_session=False: project.popen(
            "cron_worker", "run", spec, start_new_session=new_session)
        return
    drivers = []

    def fork(spec, new_session=True):
        if not drivers:  # at the first run: after the test configured its project
            project.update(CRONMAN_SPAWNER="prefork")
            drivers.append(ForkDriver(project))
        return ForkedWorker(drivers[0], spec)

    yield fork
    for driver in drivers:
        driver.close()


def test_sigkilled_worker_is_dead_and_resumed_with_the_resumed_flag(project, start):
    worker = start("Sleep:60,tag=one")
    wait_for(lambda: _marks(project, "Sleep"), timeout=60)
    worker.kill()
    worker.wait()

    status = project.run("cron_worker", "status", "--json")
    data = json.loads(status.stdout)
    assert [(w["status"], w["pid"], w["job_spec"]) for w in data["workers"]] == [
        ("DEAD", worker.pid, "Sleep:60,tag=one")
    ]
    assert data["totals"] == {"DEAD": 1, "total": 1}

    resumed = project.run("cron_worker", "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("RESUMED\t")
    new_pid = int(resumed.stdout.split("\t")[1])
    begun = wait_for(lambda: [m for m in _marks(project, "Sleep") if m["pid"] == new_pid], timeout=60)
    assert begun[0]["resumed"] is True and begun[0]["tag"] == "one"

    rows = _rows(project.run("cron_worker", "status"))
    assert [(r[0], r[1]) for r in rows] == [("ALIVE", str(new_pid))]
    killed = project.run("cron_worker", "kill", "Sleep:60,tag=one")
    assert [(r[0], r[1]) for r in _rows(killed)] == [("TERMED", str(new_pid))]
    assert _gone(new_pid)
    # SIGTERM kept the record of the resumable run: resume would start it again.
    assert [r[0] for r in _rows(project.run("cron_worker", "status"))] == ["DEAD"]
    cleaned = project.run("cron_worker", "clean")
    assert cleaned.stdout.splitlines()[-1] == "Cleaned: 1"
    assert _rows(project.run("cron_worker", "status")) == []


def test_forged_record_of_a_foreign_process_is_dead_and_never_signalled(project):
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        started = psutil.Process(bystander.pid).create_time()
        _forge_record(project, bystander.pid, started - 1000)  # the worker that wrote it is long gone
        rows = _rows(project.run("cron_worker", "status"))
        assert [(r[0], r[1]) for r in rows] == [("DEAD", str(bystander.pid))]
        killed = project.run("cron_worker", "kill")
        assert killed.returncode == 0
        assert [(r[0], r[1]) for r in _rows(killed)] == [("DEAD", str(bystander.pid))]
        line = _one_error_line(project.run("cron_worker", "kill", str(bystander.pid)))
        assert f"PID {bystander.pid} is not a running cronman worker" in line
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_record_forged_with_the_exact_pid_and_start_time_gets_no_signal(project):
    """What a writer of a shared store can do: name a bystander with its true PID and start time.

    PID and start time then match, so the process looks like the record's;
    only the run lock that every worker holds proves a worker, and the
    bystander holds none.
    """
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        _forge_record(project, bystander.pid, psutil.Process(bystander.pid).create_time())
        killed = project.run("cron_worker", "kill")
        assert killed.returncode == 0
        assert [(r[0], r[1]) for r in _rows(killed)] == [("DEAD", str(bystander.pid))]
        assert f"PID {bystander.pid} does not hold the run lock of Sleep:60 (forged): not signalled" in killed.stderr
        line = _one_error_line(project.run("cron_worker", "kill", str(bystander.pid)))
        assert f"PID {bystander.pid} is not a running cronman worker (it holds no run lock of its record)" in line
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_sigkilled_workers_run_lock_file_is_pruned_by_clean(project, start):
    worker = start("Sleep:60,tag=pruned")
    wait_for(lambda: _marks(project, "Sleep"), timeout=60)
    (proof,) = (project.data_dir / "runs").iterdir()
    worker.kill()
    worker.wait()
    assert project.run("cron_worker", "clean").returncode == 0
    assert proof.exists()  # young: it could be a worker's about to lock it
    os.utime(proof, (0, 0))
    assert project.run("cron_worker", "clean").returncode == 0
    assert not proof.exists()


@pytest.mark.parametrize("new_session", [True, False], ids=["group-leader", "shell-started"])
def test_kill_takes_the_jobs_children_too(project, start, new_session, request):
    if not new_session and request.node.callspec.params["start"] == "prefork":
        pytest.skip("a forked worker always leads its own session")
    worker = start("SpawnChild:600", new_session=new_session)
    child = wait_for(lambda: _marks(project, "SpawnChild"), timeout=60)[0]["child"]
    killed = project.run("cron_worker", "kill", str(worker.pid))
    assert killed.returncode == 0, killed.stderr
    assert [(r[0], r[1]) for r in _rows(killed)] == [("TERMED", str(worker.pid))]
    worker.wait(timeout=30)
    wait_for(lambda: _gone(child), timeout=30)


def test_a_job_ignoring_sigterm_is_sigkilled_after_the_grace(project, start):
    project.configure(CRONMAN_KILL_GRACE=0.5)
    worker = start("IgnoreTerm:600", new_session=True)
    wait_for(lambda: _marks(project, "IgnoreTerm"), timeout=60)
    killed = project.run("cron_worker", "kill", "IgnoreTerm")
    assert [(r[0], r[1]) for r in _rows(killed)] == [("KILLED", str(worker.pid))]
    assert worker.wait(timeout=30) == -9


def test_status_filters_by_name_and_params_and_skips_corrupt_records(project, start):
    workers = [start(spec) for spec in ("SleepParams:30", "SleepParams:31", "SleepNoLock:30")]
    try:
        wait_for(lambda: len(_marks(project, "Sleep")) == 3, timeout=60)
        backend = PidfileBackend(project.data_dir)
        (backend.records_dir / "torn.json").write_text('{"key": "Sle')
        every = project.run("cron_worker", "status")
        assert every.returncode == 0
        # a job without a lock has a record too (its own key), so status lists it
        assert sorted(r[-1] for r in _rows(every)) == ["SleepNoLock:30", "SleepParams:30", "SleepParams:31"]
        assert every.stdout.splitlines()[-1] == "Total: 3 (3 ALIVE)"
        # one warning naming the file, which is set aside: the next listing is quiet
        assert [line for line in every.stderr.splitlines() if "torn.json" in line] == [
            line for line in every.stderr.splitlines() if "torn.json is corrupt" in line and "moved aside" in line
        ]
        assert len(every.stderr.splitlines()) == 1
        again = project.run("cron_worker", "status")
        assert again.returncode == 0 and again.stderr == ""
        by_name = _rows(project.run("cron_worker", "status", "SleepParams"))
        assert len(by_name) == 2
        by_params = _rows(project.run("cron_worker", "status", "SleepParams:31"))
        assert [r[-1] for r in by_params] == ["SleepParams:31"]
        assert _rows(project.run("cron_worker", "status", "Other")) == []
        bad = _one_error_line(project.run("cron_worker", "status", 'Sleep:"open'))
        assert "unbalanced quotes" in bad
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def test_suspend_cleans_then_kills_so_resume_restarts_only_those(project, start):
    old = start("SleepParams:60")
    wait_for(lambda: _marks(project, "Sleep"), timeout=60)
    old.kill()
    old.wait()
    current = start("SleepParams:61")
    wait_for(lambda: len(_marks(project, "Sleep")) == 2, timeout=60)

    suspended = project.run("cron_worker", "suspend")
    assert suspended.returncode == 0, suspended.stderr
    assert f"CLEANED\t{old.pid}\tSleepParams:60" in suspended.stdout
    assert [(r[0], r[1]) for r in _rows(suspended) if r[0] != "CLEANED"] == [
        ("TERMED", str(current.pid))
    ]
    current.wait(timeout=30)
    resumed = project.run("cron_worker", "resume")
    assert [line.split("\t")[2] for line in resumed.stdout.splitlines()[:-1]] == ["SleepParams:61"]
    new_pid = int(resumed.stdout.split("\t")[1])
    wait_for(lambda: [m for m in _marks(project, "Sleep") if m["pid"] == new_pid], timeout=60)
    project.run("cron_worker", "kill")
    wait_for(lambda: _gone(new_pid), timeout=30)


def test_group_writable_data_dir_is_refused(project):
    os.chmod(project.data_dir, 0o770)
    for action in ("status", "kill", "clean"):
        line = _one_error_line(project.run("cron_worker", action))
        assert "writable by group or others" in line and "chmod 700" in line
    line = _one_error_line(project.run("cron_worker", "run", "Sleep:0"))
    assert "writable by group or others" in line
    assert project.read_marks() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_data_dir_owned_by_another_user_is_refused(project):
    os.chown(project.data_dir, 65534, 65534)
    line = _one_error_line(project.run("cron_worker", "status"))
    assert "owned by uid 65534" in line


def test_default_data_dir_is_created_private(project, tmp_path):
    state = tmp_path / "state"
    project.configure(CRONMAN_DATA_DIR=None)
    result = project.run("cron_worker", "status", env={"XDG_STATE_HOME": str(state)})
    assert result.returncode == 0, result.stderr
    data_dir = state / "cronman" / project.settings_module
    assert data_dir.is_dir() and data_dir.stat().st_mode & 0o777 == 0o700
    # nothing listed: status says where it looked, and why another user's runs are not there
    assert f"read pidfile records in {data_dir}/records; CRONMAN_DATA_DIR is not set" in result.stderr
    assert f"with settings {project.settings_module}: workers started by another user" in result.stderr


def test_status_says_where_it_read_when_it_lists_nothing(project):
    result = project.run("cron_worker", "status")
    assert result.stdout.splitlines()[-1] == "Total: 0"
    assert result.stderr == f"(read pidfile records in {project.data_dir}/records)\n"


def test_djangos_options_work_after_the_action(project):
    result = project.run("cron_worker", "status", "--settings", project.settings_module, "-v", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "Total: 0"


def test_a_symlinked_data_dir_is_refused_even_to_a_private_directory(project, tmp_path):
    real = tmp_path / "real-data"
    real.mkdir(mode=0o700)
    link = tmp_path / "data-link"
    link.symlink_to(real)
    project.update(CRONMAN_DATA_DIR=str(link))
    for args in (("cron_worker", "status"), ("cron_worker", "run", "Sleep:0"), ("cron_scheduler", "run")):
        line = _one_error_line(project.run(*args))
        assert f"data dir {link} is a symlink (to {real})" in line, line
    assert project.read_marks() == [] and list(real.iterdir()) == []


def test_a_symlinked_directory_in_the_data_dir_is_refused(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, project.data_dir / "records")
    line = _one_error_line(project.run("cron_worker", "status"))
    assert "records is a symlink" in line


def test_a_worker_without_a_lock_is_listed_and_killed(project, start):
    worker = start("SleepNoLock:600", new_session=True)
    wait_for(lambda: _marks(project, "Sleep"), timeout=60)
    (row,) = _rows(project.run("cron_worker", "status"))
    assert (row[0], row[1], row[-1]) == ("ALIVE", str(worker.pid), "SleepNoLock:600")
    assert row[4].startswith("SleepNoLock#")  # its own key: never contended
    killed = project.run("cron_worker", "kill", "SleepNoLock")
    assert [(r[0], r[1]) for r in _rows(killed)] == [("TERMED", str(worker.pid))]
    assert worker.wait(timeout=30) == 128 + 15
    # it can resume: the killed run stays as DEAD, and resume restarts it
    assert project.run("cron_worker", "status").stdout.splitlines()[-1] == "Total: 1 (1 DEAD)"
    resumed = project.run("cron_worker", "resume")
    assert resumed.stdout.splitlines()[-1] == "Resumed: 1", resumed.stderr
    wait_for(lambda: [m for m in _marks(project, "Sleep") if m["resumed"]], timeout=60)
    assert project.run("cron_worker", "kill", "SleepNoLock").returncode == 0


def test_kill_ends_a_group_member_that_outlives_its_leader(project, start):
    """The leader exits on SIGTERM; its child ignores SIGTERM in the same group: SIGKILL after the grace."""
    project.configure(CRONMAN_KILL_GRACE=1)
    worker = start("StubbornChild:600", new_session=True)
    child = wait_for(lambda: _marks(project, "StubbornChild"), timeout=60)[0]["child"]
    killed = project.run("cron_worker", "kill", "StubbornChild")
    assert killed.returncode == 0, killed.stderr
    assert [(r[0], r[1]) for r in _rows(killed)] == [("KILLED", str(worker.pid))]
    worker.wait(timeout=30)
    assert _gone(child)


def test_a_misspelled_job_name_is_one_line_with_a_suggestion(project):
    for action in ("status", "kill", "resume", "clean"):
        line = _one_error_line(project.run("cron_worker", action, "Slep"))
        assert line == "Error: unknown cron job 'Slep' (did you mean 'Sleep'?)", (action, line)
    assert _rows(project.run("cron_worker", "status", "Sleep")) == []  # known, nothing running: no error


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount of the data dir needs root")
def test_a_worker_started_while_its_data_dir_is_read_only_waits_for_it_and_runs(project):
    """A scheduled run started in a read-only spell exited 2 after its tick consumed its fire (the daemon soak)."""
    import subprocess
    import time

    project.configure(CRONMAN_STORE_WAIT=10)
    data = str(project.data_dir)
    subprocess.run(["mount", "--bind", data, data], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", data], check=True)
        worker = project.popen("cron_worker", "run", "Sleep:0,tag=after-ro")
        time.sleep(2.0)
    finally:
        subprocess.run(["umount", "--lazy", data], check=True)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "the data dir cannot be used" in err and "is not writable" in err
    assert [m["tag"] for m in _marks(project, "Sleep")] == ["after-ro"]
