import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cronman_core.testing import CronmanProject

REPO = Path(__file__).resolve().parent.parent

#: In CI (.ci/run sets it) a test that needs a service fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("CRONMAN_REQUIRE_SERVICES") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip locally when a service is missing; fail loudly in CI."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty private (0700) data dir."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; each project gets a copy."""
    path = tmp_path_factory.mktemp("db") / "migrated.sqlite3"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(REPO),
               CRONMAN_TEST_DB=str(path))
    subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity", "0"], env=env, cwd=REPO,
                   check=True, timeout=120)
    return path


@pytest.fixture
def project(tmp_path: Path, migrated_sqlite: Path) -> CronmanProject:
    """A throwaway project on tests.settings with its own data dir and migrated SQLite file."""
    project = CronmanProject(tmp_path / "project", "tests.settings", pythonpath=[REPO])
    db = project.path / "db.sqlite3"
    shutil.copyfile(migrated_sqlite, db)
    project.extra_env["CRONMAN_TEST_DB"] = str(db)
    return project


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def write_module(tmp_path, name: str, text: str) -> str:
    (tmp_path / f"{name}.py").write_text(text)
    return name


@pytest.fixture
def schedule_module(tmp_path, monkeypatch, settings):
    """Point CRONMAN_JOBS_MODULE at a module written for the test."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def use(text: str) -> None:
        name = f"test_sched_{uuid.uuid4().hex}"  # a fresh name: sys.modules caches modules
        settings.CRONMAN_JOBS_MODULE = write_module(tmp_path, name, text)

    return use
