"""Several scheduler "hosts" in one test: projects with their own data dir and CRONMAN_HOSTNAME, one shared store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cronman_core.testing import CronmanProject
from tests import settings as test_settings
from tests.conftest import REPO

#: The test apps without the database-backed plugins: these projects need no migrations.
APPS = [app for app in test_settings.INSTALLED_APPS if app not in ("cronman_plugins.tasks", "cronman_plugins.history")]
NEVER = (("0 0 1 1 *", "Noop"),)
#: The machine's MariaDB on loopback (root, no password), for the database backend's MySQL dialect.
MARIADB = {"HOST": "127.0.0.1", "PORT": "3306", "USER": "root", "PASSWORD": ""}


def make_host(
    path: Path, name: str, apps: list[str], jobs: tuple[tuple[str, str], ...] = NEVER, **settings: Any
) -> CronmanProject:
    """A project posing as host ``name``: its own data dir and schedule; ``settings`` name the shared store."""
    project = CronmanProject(path / name, "tests.settings", pythonpath=[REPO])
    (project.path / "cronman_test_schedule.py").write_text(f"CRON_JOBS = {jobs!r}\n")
    project.configure(
        INSTALLED_APPS=[*APPS, *apps], CRONMAN_HOSTNAME=name, CRONMAN_JOBS_MODULE="cronman_test_schedule", **settings
    )
    return project


def started_fires(stderr: str, job_spec: str) -> list[str]:
    """The fire times a tick's log says it started ``job_spec`` for."""
    return re.findall(rf"started {re.escape(job_spec)} for (.+?) \(", stderr)
