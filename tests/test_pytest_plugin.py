"""cronman's pytest plugin as a user has it: a project of its own (no repository path, no conftest.py) whose
tests use the fixtures the installed distribution registers (``pytest11``), running docs/examples/test_cron_jobs.py
verbatim."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SETTINGS = """\
SECRET_KEY = "example"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "cronman_core", "userjobs"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
"""


def test_a_project_tests_its_jobs_with_the_installed_fixtures(tmp_path: Path) -> None:
    (tmp_path / "usersite").mkdir()
    (tmp_path / "usersite" / "__init__.py").write_text("")
    (tmp_path / "usersite" / "settings.py").write_text(SETTINGS)
    (tmp_path / "userjobs").mkdir()
    (tmp_path / "userjobs" / "__init__.py").write_text("")
    shutil.copy(REPO / "docs" / "examples" / "cron_jobs.py", tmp_path / "userjobs" / "cron_jobs.py")
    shutil.copy(REPO / "docs" / "examples" / "test_cron_jobs.py", tmp_path / "test_cron_jobs.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = usersite.settings\n")
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_cron_jobs.py"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert "cronman-" in result.stdout  # "plugins: ..., cronman-0.1.0": the entry point, not a conftest
    assert not (tmp_path / "conftest.py").exists() and str(REPO) not in env["PYTHONPATH"]
