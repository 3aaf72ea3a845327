"""The database lock backend on the local PostgreSQL: contract, sessions that die or pause, two hosts."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cronman_core.errors import CronmanError
from cronman_core.records import RunRecord
from cronman_core.testing import CronmanProject, LockBackendContract
from cronman_plugins.database.locks import TOKEN_RANGE, DatabaseLockBackend, DatabaseUnavailable, lock_id
from tests.conftest import wait_for
from tests.support import cluster
from tests.support.cluster import started_fires
from tests.support.forked import ForkDriver, ForkedWorker
from tests.support.redis_server import free_port
from tests.support.tasks_support import PG, _pg_admin_connection, need

pytestmark = pytest.mark.postgres

TABLES = ("cronman_run_record", "cronman_fence", "cronman_fire_claim", "cronman_stop_request")
ALIAS = "cronman_locks_test"


@pytest.fixture(scope="module")
def lock_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A PostgreSQL database with the backend's tables, for this module (emptied before each test)."""
    try:
        admin = _pg_admin_connection()
    except Exception as exc:  # psycopg.OperationalError, or psycopg missing
        need(False, f"PostgreSQL on {PG['HOST']}:{PG['PORT']} is unreachable: {exc}")
    name = f"cronman_locks_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    databases = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": name, **PG}}
    try:
        project = host(tmp_path_factory.mktemp("migrate"), "migrator", databases)
        result = project.run("migrate", "cronman_database", "--noinput", "-v", "0")
        assert result.returncode == 0, result.stderr
        yield databases
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def sql(databases: dict[str, Any], statement: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname=databases["default"]["NAME"],
                         autocommit=True) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def databases(lock_database: dict[str, Any]) -> dict[str, Any]:
    sql(lock_database, f"TRUNCATE {', '.join(TABLES)}")
    return lock_database


def host(path: Path, name: str, databases: dict[str, Any], jobs: tuple[tuple[str, str], ...] = cluster.NEVER,
         **settings: Any) -> CronmanProject:
    return cluster.make_host(path, name, ["cronman_plugins.database"], jobs, DATABASES=databases,
                             CRONMAN_LOCK_BACKEND="database", **settings)


def marks_of(project: CronmanProject, tag: str, event: str = "start") -> list[dict[str, Any]]:
    return [m for m in project.read_marks() if m.get("tag") == tag and m.get("event") == event]


def lock_sessions(databases: dict[str, Any]) -> list[int]:
    """PIDs of the server sessions holding an advisory lock in the test database."""
    return [row[0] for row in sql(databases, "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                                             "WHERE l.locktype = 'advisory' AND d.datname = current_database()")]


# -- the backend in this process ------------------------------------------------------------


def add_alias(monkeypatch: pytest.MonkeyPatch, alias: str, settings: dict[str, Any]) -> None:
    """One more entry in this process's DATABASES, for the backend to connect with."""
    configured = connections.configure_settings({"default": {"ENGINE": "django.db.backends.dummy"},
                                                 alias: dict(settings)})
    monkeypatch.setitem(connections.settings, alias, configured[alias])


class DatabaseContract(LockBackendContract):
    """The contract on the ``databases`` fixture of the module that subclasses it (PostgreSQL, MariaDB)."""

    alias = ALIAS

    @pytest.fixture
    def lock_backend(self, databases: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> DatabaseLockBackend:
        add_alias(monkeypatch, self.alias, databases["default"])
        return DatabaseLockBackend(alias=self.alias, ttl=3)

    def corrupt_record(self, backend: DatabaseLockBackend) -> None:
        backend._execute("INSERT INTO cronman_run_record VALUES ('truncated', 'Job', '{\"key\": \"Job\", \"pid\": 12', "
                         "0, 0)")


class TestDatabaseContract(DatabaseContract):
    pass


# -- real workers and schedulers -------------------------------------------------------------


def test_a_sigkilled_workers_lock_is_free_at_once(tmp_path: Path, databases: dict[str, Any]) -> None:
    """The server ends a dead worker's session, and its advisory lock with it: no TTL to wait out."""
    project = host(tmp_path, "host-a", databases)
    worker = project.popen("cron_worker", "run", "Sleep:600,tag=first")
    wait_for(lambda: marks_of(project, "first"), timeout=60)
    assert len(lock_sessions(databases)) == 1
    worker.kill()
    worker.wait()
    wait_for(lambda: lock_sessions(databases) == [], timeout=10)
    result = project.run("cron_worker", "run", "Sleep:0,tag=second")
    assert result.returncode == 0, result.stderr
    assert [m["tag"] for m in project.read_marks() if m.get("event") == "end"] == ["second"]
    status = json.loads(project.run("cron_worker", "status", "--json").stdout)
    assert [(w["status"], w["pid"], w["host"]) for w in status["workers"]] == [("DEAD", worker.pid, "host-a")]


def test_a_terminated_session_stops_its_worker_before_the_next_one_runs(
    tmp_path: Path, databases: dict[str, Any]
) -> None:
    project = host(tmp_path, "host-a", databases, CRONMAN_DB_LOCK_TTL=1.5, CRONMAN_KILL_GRACE=2)
    first = project.popen("cron_worker", "run", "Sleep:60,tag=first", start_new_session=True)
    wait_for(lambda: marks_of(project, "first"), timeout=60)
    (session,) = lock_sessions(databases)
    assert sql(databases, "SELECT pg_terminate_backend(%s)", session) == [(True,)]  # a failover, a DBA
    _out, err = first.communicate(timeout=30)
    assert first.returncode == 3, err
    assert "lock 'Sleep' lost: its database session ended" in err
    assert "lost its lock 'Sleep' while running; stopped" in err
    second = project.run("cron_worker", "run", "Sleep:0,tag=second")
    assert second.returncode == 0, second.stderr
    tokens = {m["tag"]: m["fencing_token"] for m in project.read_marks() if m.get("event") == "start"}
    assert tokens["second"] > tokens["first"] > 0
    assert [m["tag"] for m in project.read_marks() if m.get("event") == "end"] == ["second"]


def test_a_worker_paused_past_the_ttl_keeps_its_lock_and_nobody_runs_beside_it(
    tmp_path: Path, databases: dict[str, Any]
) -> None:
    """Unlike a TTL lock, the session outlives the pause: the other run skips, the paused one finishes."""
    project = host(tmp_path, "host-a", databases, CRONMAN_DB_LOCK_TTL=1.5)
    first = project.popen("cron_worker", "run", "Sleep:3,tag=first")
    wait_for(lambda: marks_of(project, "first"), timeout=60)
    first.send_signal(signal.SIGSTOP)
    try:
        time.sleep(4)  # past the TTL: a TTL lock would have expired by now
        skipped = project.run("cron_worker", "run", "Sleep:0,tag=second")
        assert skipped.returncode == 0 and "is held by another worker" in skipped.stderr
    finally:
        first.send_signal(signal.SIGCONT)
    _out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    assert [m["tag"] for m in project.read_marks() if m.get("event") == "end"] == ["first"]


def test_another_host_sees_the_run_and_stops_it_through_the_database(
    tmp_path: Path, databases: dict[str, Any]
) -> None:
    host_a = host(tmp_path, "host-a", databases, CRONMAN_DB_LOCK_TTL=1.5)
    host_b = host(tmp_path, "host-b", databases, CRONMAN_DB_LOCK_TTL=1.5)
    worker = host_a.popen("cron_worker", "run", "Sleep:60,tag=a", start_new_session=True)
    try:
        wait_for(lambda: marks_of(host_a, "a"), timeout=60)
        status = json.loads(host_b.run("cron_worker", "status", "--json").stdout)
        assert [(w["status"], w["pid"], w["host"]) for w in status["workers"]] == [("ALIVE", worker.pid, "host-a")]
        killed = host_b.run("cron_worker", "kill", "Sleep", "--timeout", "20")
        assert killed.returncode == 0, killed.stderr
        assert [(r.split("\t")[0], r.split("\t")[2]) for r in killed.stdout.splitlines()[:-1]] == [("TERMED", "host-a")]
        assert worker.wait(timeout=30) == 128 + signal.SIGTERM
        assert "stop requested" in worker.communicate()[1]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert sql(databases, "SELECT count(*) FROM cronman_stop_request") == [(0,)]


def test_overlap_replace_stops_the_holder_on_another_host_then_runs(
    tmp_path: Path, databases: dict[str, Any]
) -> None:
    host_a = host(tmp_path, "host-a", databases, CRONMAN_DB_LOCK_TTL=1.5, CRONMAN_KILL_GRACE=1.0)
    host_b = host(tmp_path, "host-b", databases, CRONMAN_DB_LOCK_TTL=1.5, CRONMAN_KILL_GRACE=1.0)
    holder = host_a.popen("cron_worker", "run", "Sleep:60,tag=old", start_new_session=True)
    try:
        wait_for(lambda: marks_of(host_a, "old"), timeout=60)
        options = {"CRONMAN_RUN_OPTIONS": json.dumps({"overlap": "replace"})}
        replacing = host_b.run("cron_worker", "run", "Sleep:0,tag=new", env=options, timeout=60)
        assert replacing.returncode == 0, replacing.stderr
        assert holder.wait(timeout=30) == 128 + signal.SIGTERM
        assert marks_of(host_b, "new", "end")  # it ran, after the holder on host-a was stopped
        new_token = marks_of(host_b, "new")[0]["fencing_token"]
        assert new_token > marks_of(host_a, "old")[0]["fencing_token"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_two_hosts_fire_each_slot_once(tmp_path: Path, databases: dict[str, Any]) -> None:
    spec = "Echo:pg"
    hosts = [host(tmp_path, name, databases, jobs=(("* * * * *", spec),)) for name in ("host-a", "host-b", "host-c")]
    ticks = [h.popen("cron_scheduler", "run") for h in hosts]
    outputs = [tick.communicate(timeout=60) for tick in ticks]
    assert [tick.returncode for tick in ticks] == [0, 0, 0], outputs
    fires = [fire for _out, err in outputs for fire in started_fires(err, spec)]
    assert fires and len(fires) == len(set(fires)), outputs
    wait_for(lambda: sum(len(h.read_marks()) for h in hosts) >= len(fires), timeout=60)
    assert sum(len(h.read_marks()) for h in hosts) == len(fires)


def test_a_worker_that_cannot_reach_the_database_runs_nothing(tmp_path: Path, databases: dict[str, Any]) -> None:
    unreachable = {"default": {**databases["default"], "PORT": str(free_port())}}
    project = host(tmp_path, "host-a", unreachable, CRONMAN_STORE_WAIT=0)
    result = project.run("cron_worker", "run", "Sleep:0,tag=never")
    assert result.returncode == 3, result.stderr
    assert "Sleep:0,tag=never: cannot take lock 'Sleep' (lock database 'default' unreachable:" in result.stderr
    assert project.read_marks() == []


def test_sqlite_is_refused_by_check_as_e030(project: CronmanProject) -> None:
    project.configure(INSTALLED_APPS=[*cluster.APPS, "cronman_plugins.database"], CRONMAN_LOCK_BACKEND="database")
    result = project.run("check")
    assert result.returncode == 1
    assert '(cronman.E030) CRONMAN_LOCK_BACKEND = "database" on database \'default\' (sqlite)' in result.stderr
    run = project.run("cron_worker", "run", "Noop")
    assert run.returncode == 2 and run.stderr.startswith('Error: CRONMAN_LOCK_BACKEND = "database" on database')


def test_the_backend_without_its_app_is_one_line(project: CronmanProject) -> None:
    project.configure(CRONMAN_LOCK_BACKEND="database")
    result = project.run("cron_worker", "status")
    assert result.returncode == 2
    assert result.stderr.strip() == ('Error: CRONMAN_LOCK_BACKEND = "database" needs "cronman_plugins.database" '
                                     "in INSTALLED_APPS (its tables), then manage.py migrate")


def test_database_errors_are_one_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    add_alias(monkeypatch, "nowhere", {"ENGINE": "django.db.backends.postgresql", "NAME": "x", **PG,
                                       "PORT": str(free_port())})
    with pytest.raises(DatabaseUnavailable, match="lock database 'nowhere' unreachable"):
        DatabaseLockBackend(alias="nowhere", ttl=3).claim("fire-x", 60, "token")


def test_twenty_forked_runs_each_open_their_own_database_session_and_the_template_none(
    tmp_path: Path, databases: dict[str, Any],
) -> None:
    project = cluster.make_host(
        tmp_path, "pg", ["cronman_plugins.database"], DATABASES=databases, CRONMAN_LOCK_BACKEND="database",
        CRONMAN_SPAWNER="prefork",
    )
    forks = ForkDriver(project)
    try:
        workers = [ForkedWorker(forks, f"PgSession:{n},seconds=4") for n in range(20)]
        marks = wait_for(lambda: len(project.read_marks()) == 20 and project.read_marks(), timeout=60)
        (template,) = {mark["ppid"] for mark in marks}
        sessions = {row[0]: row[1] for row in sql(databases, "SELECT pid, client_port FROM pg_stat_activity "
                                                             "WHERE datname = current_database()")}
        backends = [mark["backend"] for mark in marks]
        assert len(set(backends)) == 20 and set(backends) <= set(sessions)
        ports = {c.laddr.port for c in psutil.Process(template).net_connections("tcp")}
        assert ports == set(), ports  # the template holds no connection at all
        by_worker = {w.pid: {c.laddr.port for c in psutil.Process(w.pid).net_connections("tcp")} for w in workers}
        for mark in marks:
            assert sessions[mark["backend"]] in by_worker[mark["pid"]]  # its session is its own socket
        assert [worker.wait() for worker in workers] == [0] * 20
    finally:
        forks.close()


# -- hostile rows ---------------------------------------------------------------------------------

# Hostile rows in the database lock backend's tables (PostgreSQL): one line or a recovery, never more.
#
# One hypothesis test over the four tables: a run record whose data is any
# text, a fencing counter of any 64-bit value, a fire claim and a stop request
# with any key, token and float (NaN and infinities too). Every operation of
# the backend then works or raises ``CronmanError`` (one line for its
# command), a good record beside the damage is still listed, a damaged fencing
# counter is repaired with one warning (the lock is taken, with a token greater
# than any before), and a new fire is claimed exactly once.

TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=60)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
BIGINTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([-1, 0, 2**53, 2**63 - 1, -(2**63)]))


def _record(key: str) -> RunRecord:
    return RunRecord(key=key, job_spec=key, pid=1, host="h", create_time=None, run_id=uuid.uuid4().hex,
                     started_at="2026-12-04T00:00:00+00:00")


def _put(databases: dict[str, Any], place: str, text: str, number: int, real: float, good: RunRecord) -> None:
    if place == "record":
        sql(databases, "INSERT INTO cronman_run_record VALUES (%s, %s, %s, %s, %s)", uuid.uuid4().hex, text, text,
            number, real)
    elif place == "fence":
        sql(databases, "INSERT INTO cronman_fence VALUES (%s, %s)", lock_id("Hostile"), number)
    elif place == "claim":
        sql(databases, "INSERT INTO cronman_fire_claim VALUES (%s, %s, %s)", text[:255] or "k", text[:64], real)
    else:
        sql(databases, "INSERT INTO cronman_stop_request VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (text[:64] or good.run_id), real)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(["record", "fence", "claim", "stop request"]), text=TEXT, number=BIGINTS, real=FLOATS)
def test_hostile_rows_give_one_line_or_a_recovery(
    lock_database: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    place: str, text: str, number: int, real: float,
) -> None:
    databases = lock_database
    sql(databases, "TRUNCATE cronman_run_record, cronman_fence, cronman_fire_claim, cronman_stop_request")
    add_alias(monkeypatch, ALIAS, databases["default"])
    backend = DatabaseLockBackend(alias=ALIAS, ttl=3)
    good = _record("Good")
    good_lock = backend.acquire("Good", good)
    assert good_lock is not None
    _put(databases, place, text, number, real, good)
    before = int(time.time() * 1_000_000)
    caplog.clear()

    def lock_cycle() -> None:
        lock = backend.acquire("Hostile", _record("Hostile"))
        assert lock is not None, "a damaged row must not keep the lock from being taken"
        assert lock.fencing_token >= before
        lock.update()
        lock.release()

    operations = {
        "records": backend.records, "is held": lambda: backend.is_held_by(good), "lock cycle": lock_cycle,
        "claim": lambda: backend.claim(f"fire-{uuid.uuid4().hex}", 60.0, "t"),
        "release claim": lambda: backend.release_claim(text[:255] or "k", text[:64] or "t"),
        "prune": backend.prune_claims, "request stop": lambda: backend.request_stop(good),
    }
    try:
        for name, operation in operations.items():
            try:
                operation()
            except CronmanError:
                pass  # one line for the command that called it
            except AssertionError:
                raise
            except Exception as exc:  # noqa: BLE001  (the point: nothing else may escape)
                pytest.fail(f"{name} with a hostile {place} row: {type(exc).__name__}: {exc}")
        assert good.run_id in {r.run_id for r in backend.records()}  # the good record is not lost
        if place == "fence" and not TOKEN_RANGE[0] <= number < TOKEN_RANGE[1]:
            assert [r.getMessage() for r in caplog.records if "fencing counter" in r.getMessage()] == [
                f"repaired the fencing counter of lock 'Hostile': {number} is not a token cronman wrote"]
        fire = f"fire-{uuid.uuid4().hex}"
        assert [backend.claim(fire, 60.0, "a"), backend.claim(fire, 60.0, "b")] == [True, False]
    finally:
        good_lock.release()
