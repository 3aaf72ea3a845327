"""The database lock backend on the local MariaDB (``GET_LOCK``): contract, sessions that die, two hosts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronman_core.testing import CronmanProject
from tests.conftest import need, wait_for
from tests.plugins.test_database_locks import DatabaseContract, host, marks_of
from tests.support.cluster import MARIADB, started_fires

pytestmark = pytest.mark.mariadb

TABLES = ("cronman_run_record", "cronman_fence", "cronman_fire_claim", "cronman_stop_request")


def admin(database: str = "") -> Any:
    import MySQLdb

    connection = MySQLdb.connect(host=MARIADB["HOST"], port=int(MARIADB["PORT"]), user=MARIADB["USER"],
                                 passwd=MARIADB["PASSWORD"], database=database, connect_timeout=3)
    connection.autocommit(True)
    return connection


def sql(database: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    connection = admin(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params or None)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A MariaDB database with the backend's tables, for this module (emptied before each test)."""
    try:
        admin().close()
    except Exception as exc:  # MySQLdb.OperationalError, or mysqlclient missing
        need(False, f"MariaDB on {MARIADB['HOST']}:{MARIADB['PORT']} is unreachable: {exc}")
    name = f"cronman_locks_{uuid.uuid4().hex[:12]}"
    sql("", f"CREATE DATABASE `{name}`")
    databases = {"default": {"ENGINE": "django.db.backends.mysql", "NAME": name, **MARIADB}}
    try:
        project = host(tmp_path_factory.mktemp("migrate"), "migrator", databases)
        result = project.run("migrate", "cronman_database", "--noinput", "-v", "0")
        assert result.returncode == 0, result.stderr
        yield databases
    finally:
        sql("", f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def databases(mariadb: dict[str, Any]) -> dict[str, Any]:
    for table in TABLES:
        sql(mariadb["default"]["NAME"], f"DELETE FROM {table}")
    return mariadb


def lock_sessions(databases: dict[str, Any]) -> list[int]:
    """Connection ids of the sessions holding a cronman lock (MariaDB's metadata_lock_info plugin is not
    assumed: the run records name them, and IS_USED_LOCK confirms)."""
    name = databases["default"]["NAME"]
    return [row[0] for row in sql(name, "SELECT session_id FROM cronman_run_record")
            if sql(name, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", row[0])[0][0]]


class TestMariaDBContract(DatabaseContract):
    alias = "cronman_mariadb_test"


def test_a_sigkilled_workers_lock_is_free_at_once(tmp_path: Path, databases: dict[str, Any]) -> None:
    project = host(tmp_path, "host-a", databases)
    worker = project.popen("cron_worker", "run", "Sleep:600,tag=first")
    wait_for(lambda: marks_of(project, "first"), timeout=60)
    worker.kill()
    worker.wait()
    result = project.run("cron_worker", "run", "Sleep:0,tag=second")
    assert result.returncode == 0, result.stderr
    assert [m["tag"] for m in project.read_marks() if m.get("event") == "end"] == ["second"]


def test_a_killed_session_stops_its_worker_before_the_next_one_runs(
    tmp_path: Path, databases: dict[str, Any]
) -> None:
    project = host(tmp_path, "host-a", databases, CRONMAN_DB_LOCK_TTL=1.5, CRONMAN_KILL_GRACE=2)
    first = project.popen("cron_worker", "run", "Sleep:60,tag=first", start_new_session=True)
    wait_for(lambda: marks_of(project, "first"), timeout=60)
    (session,) = lock_sessions(databases)
    sql("", f"KILL {int(session)}")  # a failover, a DBA
    _out, err = first.communicate(timeout=30)
    assert first.returncode == 3, err
    assert "lock 'Sleep' lost: its database session ended" in err
    second = project.run("cron_worker", "run", "Sleep:0,tag=second")
    assert second.returncode == 0, second.stderr
    tokens = {m["tag"]: m["fencing_token"] for m in project.read_marks() if m.get("event") == "start"}
    assert tokens["second"] > tokens["first"] > 0


def test_two_hosts_fire_each_slot_once_and_see_each_others_runs(tmp_path: Path, databases: dict[str, Any]) -> None:
    spec = "Echo:mariadb"
    hosts = [host(tmp_path, name, databases, jobs=(("* * * * *", spec),)) for name in ("host-a", "host-b")]
    ticks = [h.popen("cron_scheduler", "run") for h in hosts]
    outputs = [tick.communicate(timeout=60) for tick in ticks]
    assert [tick.returncode for tick in ticks] == [0, 0], outputs
    fires = [fire for _out, err in outputs for fire in started_fires(err, spec)]
    assert fires and len(fires) == len(set(fires)), outputs
    worker = hosts[0].popen("cron_worker", "run", "Sleep:60,tag=a")
    try:
        wait_for(lambda: marks_of(hosts[0], "a"), timeout=60)
        rows = hosts[1].run("cron_worker", "status").stdout.splitlines()[1:-1]
        assert [(r.split("\t")[0], r.split("\t")[2]) for r in rows] == [("ALIVE", "host-a")]
    finally:
        worker.kill()
        worker.wait()


def test_check_accepts_mariadb(project: CronmanProject, databases: dict[str, Any]) -> None:
    from tests.support.cluster import APPS

    project.configure(INSTALLED_APPS=[*APPS, "cronman_plugins.database"], DATABASES=databases,
                      CRONMAN_LOCK_BACKEND="database")
    result = project.run("check")
    assert "cronman.E030" not in result.stderr, result.stderr
