"""The release: sdist and wheel built and checked with twine; the wheel in a fresh venv with the sample plugin.

A user's view: no repository on the path, cronman and ``examples/cronman-slack-notifier``
installed by pip from the built wheel and the example's directory, a project of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from cronman_core import __version__
from tests.support.httpserver import Recorder, refused_url

REPO = Path(__file__).resolve().parent.parent

SETTINGS = """
SECRET_KEY = "x"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "cronman_core", "myjobs"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
USE_TZ = True
CRONMAN_SLACK_ENABLED = True
CRONMAN_SLACK_URL = __import__("os").environ["SLACK_URL"]
"""
JOBS = """
from cronman_core.job import BaseCronJob, cron_job_registry


class Boom(BaseCronJob):
    def run(self):
        raise RuntimeError("boom")


class Fine(BaseCronJob):
    slack_notify_done = True

    def run(self):
        pass


cron_job_registry.register(Boom)
cron_job_registry.register(Fine)
"""


def _run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, REPO, cwd=REPO)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_the_sdist_and_wheel_pass_twine_check_and_carry_every_file(dist: Path) -> None:
    files = sorted(p.name for p in dist.iterdir())
    assert files == [f"cronman-{__version__}-py3-none-any.whl", f"cronman-{__version__}.tar.gz"], files
    checked = _run(sys.executable, "-m", "twine", "check", "--strict", *dist.iterdir())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout
    import zipfile

    names = zipfile.ZipFile(dist / f"cronman-{__version__}-py3-none-any.whl").namelist()
    for wanted in ("cronman_core/py.typed", "cronman_plugins/dbschedule/migrations/0001_initial.py",
                   "cronman_plugins/history/templates/admin/cron_history/cronrun/timeline.html",
                   "cronman_plugins/dbschedule/templates/admin/cron_dbschedule/scheduledjob/change_list.html"):
        assert wanted in names, wanted
    assert not [name for name in names if name.startswith(("tests/", "example/", "examples/"))]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cronman = cronman_core.pytest_plugin" in zipfile.ZipFile(
        dist / f"cronman-{__version__}-py3-none-any.whl").read(entry_points).decode()


def test_the_wheel_in_a_fresh_venv_lists_the_sample_plugin_and_it_posts_to_slack(dist: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    wheel = dist / f"cronman-{__version__}-py3-none-any.whl"
    installed = _run(python, "-m", "pip", "install", "--quiet", wheel, REPO / "examples" / "cronman-slack-notifier")
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    project = tmp_path / "project"
    (project / "myjobs").mkdir(parents=True)
    (project / "settings.py").write_text(SETTINGS)
    (project / "myjobs" / "__init__.py").write_text("")
    (project / "myjobs" / "cron_jobs.py").write_text(JOBS)
    slack = Recorder()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    env.update(DJANGO_SETTINGS_MODULE="settings", PYTHONPATH=str(project), SLACK_URL=slack.url + "/hook",
               CRONMAN_DATA_DIR=str(tmp_path / "data"))
    try:
        where = _run(python, "-c", "import cronman_core, cronman_slack; print(cronman_core.__file__)",
                     cwd=project, env=env)
        assert where.stdout.startswith(str(env_dir)), where  # the wheel's copy, not the repository's

        plugins = _run(python, "-m", "django", "cron_plugins", "--json", cwd=project, env=env)
        assert plugins.returncode == 0, plugins.stderr
        listed = {p["name"]: p for p in json.loads(plugins.stdout)}
        assert listed["slack"]["source"] == "entry point" and listed["slack"]["version"] == "0.1.0", listed["slack"]
        assert "cronman_job_failed" in listed["slack"]["hooks"]
        assert listed["jobs_module"]["version"] == __version__

        failed = _run(python, "-m", "django", "cron_worker", "run", "Boom", cwd=project, env=env)
        assert failed.returncode == 1, failed.stderr
        fine = _run(python, "-m", "django", "cron_worker", "run", "Fine", cwd=project, env=env)
        assert fine.returncode == 0, fine.stderr
        silent = _run(python, "-m", "django", "cron_worker", "run", "Fine:slack_notify_done=0", cwd=project, env=env)
        assert silent.returncode == 0, silent.stderr  # the plugin's reserved param never reaches run()
        texts = [json.loads(r.body)["text"] for r in slack.requests]
        assert [r.path for r in slack.requests] == ["/hook", "/hook"]
        assert texts[0].startswith(":x: Boom failed on ") and "RuntimeError: boom" in texts[0], texts
        assert texts[1].startswith(":white_check_mark: Fine finished on "), texts

        # Slack unreachable: one warning without the (secret) URL, the run's outcome unchanged
        down = refused_url() + "/T000/secret-token"
        failed = _run(python, "-m", "django", "cron_worker", "run", "Boom", cwd=project, env={**env, "SLACK_URL": down})
        assert failed.returncode == 1
        assert "Slack notification failed: ConnectionError" in failed.stderr
        assert "secret-token" not in failed.stderr
    finally:
        slack.stop()
