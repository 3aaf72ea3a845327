"""The lowest supported Django (4.2 LTS) passes the Django-facing tests; the main run is on the highest (5.2).

Django 5.2 is the newest that runs on Python 3.11 (Django 6 needs 3.12). The
tests that touch what changes between Django versions (system checks,
settings, plugin apps, models, migrations, admin forms and actions) run
again in ``.venv-django42``, built by ``scripts/setup-env.sh`` with a pin.
"""

from __future__ import annotations

import os
import subprocess
import sys

import django

from tests.conftest import REPO

LOWEST = "Django>=4.2,<4.3"
VENV = REPO / ".venv-django42"
DJANGO_FACING = [
    "tests/test_checks.py", "tests/test_settings.py", "tests/test_plugins.py", "tests/plugins/test_tasks.py",
    "tests/plugins/test_history.py", "tests/plugins/test_dbschedule.py",
]


def test_the_main_run_is_on_the_highest_supported_django() -> None:
    assert django.VERSION[:2] == (5, 2) and sys.version_info[:2] == (3, 11)


def test_the_lowest_supported_django_passes_the_django_facing_tests() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    setup = subprocess.run(["bash", "scripts/setup-env.sh"], cwd=REPO, env={**env, "VENV": str(VENV), "PIN": LOWEST},
                           capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    python = str(VENV / "bin" / "python")
    version = subprocess.run([python, "-c", "import django; print(django.get_version())"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert version.startswith("4.2."), version
    # the SIGHUP and outage tests are about the daemon, not Django: the main run has them
    result = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DJANGO_FACING,
                             "-k", "not sighup and not outage"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1] and "failed" not in result.stdout.splitlines()[-1]
