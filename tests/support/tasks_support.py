"""Projects with a migrated database of their own, for subprocess tests of tasks and history.

``db_project`` is parametrized over SQLite (a file per test) and PostgreSQL
(a throwaway database with a unique name on the local server, dropped
afterwards; ``need`` fails the test in CI when the server is unreachable).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cronman_core.testing import CronmanProject
from tests.conftest import need

PG = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres"}


def _pg_admin_connection() -> Any:
    import psycopg

    return psycopg.connect(
        host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname="postgres",
        autocommit=True, connect_timeout=3,
    )


@contextlib.contextmanager
def postgres_database(prefix: str = "cronman_test") -> Iterator[dict[str, Any]]:
    """``DATABASES`` for a new, empty PostgreSQL database with a unique name, dropped at the end."""
    try:
        admin = _pg_admin_connection()
    except Exception as exc:  # psycopg.OperationalError, or psycopg missing
        need(False, f"PostgreSQL on {PG['HOST']}:{PG['PORT']} is unreachable: {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": name, **PG}}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_databases() -> Iterator[dict[str, Any]]:
    """``DATABASES`` for a new, empty PostgreSQL database, dropped after the test."""
    with postgres_database() as databases:
        yield databases


def sqlite_databases(path: Any) -> dict[str, Any]:
    # Workers and RunCronTasks processes write concurrently: wait for the lock, don't fail.
    return {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": {"timeout": 30}}}


class DbProject:
    """A :class:`CronmanProject` whose every settings rewrite keeps its database."""

    def __init__(self, project: CronmanProject, databases: dict[str, Any]) -> None:
        self.project = project
        self.databases = databases
        self.vendor = "postgresql" if "postgresql" in databases["default"]["ENGINE"] else "sqlite"
        self.configure()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.project, name)

    def configure(self, **settings: Any) -> None:
        self.project.configure(DATABASES=self.databases, **settings)

    def migrate(self) -> None:
        result = self.project.run("migrate", "--noinput", "-v", "0")
        assert result.returncode == 0, result.stderr

    def shell(self, code: str) -> Any:
        """Run ``code`` in ``manage.py shell``; it prints one JSON value, returned here."""
        result = self.project.shell(code)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the project's database directly (fast polling without starting Django)."""
        settings = self.databases["default"]
        if self.vendor == "sqlite":
            with sqlite3.connect(settings["NAME"], timeout=30) as connection:
                return connection.execute(sql.replace("%s", "?"), params).fetchall()
        import psycopg

        with psycopg.connect(
            host=PG["HOST"], port=PG["PORT"], user=PG["USER"], dbname=settings["NAME"]
        ) as connection:
            return connection.execute(sql, params).fetchall()

    def task(self, task_id: int) -> dict[str, Any]:
        columns = ("status", "pid", "host", "error", "resumed", "params")
        row = self.query(f"SELECT {', '.join(columns)} FROM cron_crontask WHERE id = %s", task_id)[0]
        return dict(zip(columns, row, strict=True))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_project(request: pytest.FixtureRequest, project: CronmanProject) -> DbProject:
    """A migrated project on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        databases = sqlite_databases(project.path / "db.sqlite3")
    else:
        databases = request.getfixturevalue("postgres_databases")
    db = DbProject(project, databases)
    db.migrate()
    return db


@pytest.fixture
def sqlite_project(project: CronmanProject) -> DbProject:
    """A migrated project on its own SQLite file (tests that need no second backend)."""
    db = DbProject(project, sqlite_databases(project.path / "db.sqlite3"))
    db.migrate()
    return db
