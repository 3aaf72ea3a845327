"""No secret is ever printed: Sentry DSN, Redis and database passwords, Cronitor, healthchecks and Sentry API keys.

A project with every secret set (each a recognisable marker) runs the commands
operators run and the failures they see: ``cron_plugins``, ``status``, a failed
job (its output, its log, its history row), ``check`` with a bad secret, a Redis
and a database that refuse, monitor APIs that refuse. No marker may appear in
anything printed, logged or recorded.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cronman_core.testing import CronmanProject
from tests.support.httpserver import Recorder, refused_url

MARKERS = {
    "dsn": "dsnSECRET1a2b3c",
    "redis": "redisSECRET4d5e",
    "database": "dbSECRET6f7a8b",
    "cronitor": "cronitorSECRET9c",
    "healthchecks_ping": "hcpingSECRET0d1e",
    "healthchecks_api": "hcapiSECRET2f3a",
    "sentry_api": "sentrytokenSECRET4b",
}


def _texts(project: CronmanProject) -> dict[str, str]:
    """Every file the project's runs wrote: data dir (logs, records, state) and marks."""
    found = {}
    for path in project.data_dir.rglob("*"):
        if path.is_file():
            found[str(path)] = path.read_bytes().decode(errors="replace")
    return found


def _leaks(text: str) -> list[str]:
    return [name for name, marker in MARKERS.items() if marker in text]


@pytest.fixture
def secret_project(project: CronmanProject, tmp_path: Path) -> CronmanProject:
    sentry = Recorder()
    refused = refused_url()
    host_port = refused.removeprefix("http://")
    (project.path / "secret_schedule.py").write_text(
        'CRON_JOBS = [("*/5 * * * *", "Fail:kaput,cronitor_id=abc,healthchecks_slug=fail-job")]\n')
    project.configure(
        CRONMAN_JOBS_MODULE="secret_schedule",
        CRONMAN_SENTRY_ENABLED=True,
        CRONMAN_SENTRY_CONFIG={"dsn": f"http://{MARKERS['dsn']}@127.0.0.1:{sentry.port}/1"},
        CRONMAN_REDIS_PASSWORD=MARKERS["redis"],
        CRONMAN_CRONITOR_ENABLED=True, CRONMAN_CRONITOR_API_KEY=MARKERS["cronitor"],
        CRONMAN_CRONITOR_URL=refused + "/{cronitor_id}/{end_point}", CRONMAN_CRONITOR_API_URL=refused,
        CRONMAN_HEALTHCHECKS_ENABLED=True, CRONMAN_HEALTHCHECKS_PING_KEY=MARKERS["healthchecks_ping"],
        CRONMAN_HEALTHCHECKS_API_KEY=MARKERS["healthchecks_api"], CRONMAN_HEALTHCHECKS_URL=refused,
        CRONMAN_HEALTHCHECKS_API_URL=refused,
        CRONMAN_SENTRY_API_TOKEN=MARKERS["sentry_api"], CRONMAN_SENTRY_ORG="org", CRONMAN_SENTRY_PROJECT="proj",
        CRONMAN_SENTRY_API_URL=refused,
        SECRET_DATABASE={"ENGINE": "django.db.backends.postgresql", "NAME": "nope", "USER": "nobody",
                         "PASSWORD": MARKERS["database"], "HOST": host_port.split(":")[0],
                         "PORT": host_port.split(":")[1]},
    )
    project.sentry = sentry  # type: ignore[attr-defined]
    yield project
    sentry.stop()


def test_no_secret_in_commands_output_logs_records_or_history(secret_project: CronmanProject) -> None:
    project = secret_project
    outputs: dict[str, str] = {}

    def run(name: str, *args: str, env: dict[str, str] | None = None, **settings: object) -> None:
        if settings:
            project.update(**settings)
        result = project.run(*args, env=env)
        outputs[name] = result.stdout + result.stderr

    run("cron_plugins", "cron_plugins")
    run("cron_plugins --json", "cron_plugins", "--json")
    run("failed job", "cron_worker", "run", "Fail:kaput,cronitor_id=abc,healthchecks_slug=fail-job")
    run("status", "cron_worker", "status", "--json")
    run("next", "cron_scheduler", "next", "1")
    run("monitors sync", "cron_monitors", "sync", "--dry-run")
    run("check", "check")
    # a Redis that refuses the connection: the worker cannot lock (exit 3) and says why
    run("redis refused", "cron_worker", "run", "Hello:x", CRONMAN_REDIS_LOCKS=True, CRONMAN_REDIS_PORT=1)
    # a database that refuses: the history write fails with one line
    run("database refused", "cron_worker", "run", "Hello:x", CRONMAN_REDIS_LOCKS=False,
        DATABASES={"default": project.settings["SECRET_DATABASE"]})
    # a secret of the wrong type: named, not echoed
    run("bad secret", "cron_worker", "run", "Hello:x", CRONMAN_REDIS_LOCKS=False,
        CRONMAN_HEALTHCHECKS_API_KEY=[MARKERS["healthchecks_api"]])

    assert "kaput" in outputs["failed job"] and "exited" not in outputs["cron_plugins"]
    assert outputs["redis refused"] and outputs["database refused"] and "CRONMAN_HEALTHCHECKS_API_KEY" in outputs[
        "bad secret"]
    leaks = {name: _leaks(text) for name, text in outputs.items() if _leaks(text)}
    assert leaks == {}, {name: outputs[name][-2000:] for name in leaks}
    files = {path: _leaks(text) for path, text in _texts(project).items() if _leaks(text)}
    assert files == {}
    db = project.path / "db.sqlite3"
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT job_spec, error, output, exit_reason FROM cron_history_cronrun").fetchall()
    assert any("kaput" in (row[1] or "") for row in rows), rows
    assert [row for row in rows if _leaks(" ".join(str(v) for v in row))] == []
    # the Sentry event of the failure carries no DSN, password or key either
    events = project.sentry.envelope_items()  # type: ignore[attr-defined]
    assert events, "the failure reached Sentry"
    assert _leaks(repr(events)) == []
