"""End to end in Debian's chromium: request a Cron Task in the admin, watch it finish, open the timeline.

The admin runs in a ``runserver`` subprocess on a free port with the test's
own SQLite database; workers are real processes started by ``RunCronTasks``.
Screenshots go to ``test-artifacts/admin-browser/`` (git-ignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, need, wait_for
from tests.support import tasks_support
from tests.support.tasks_support import DbProject

sqlite_project = tasks_support.sqlite_project

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "admin-browser"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def admin_server(sqlite_project: DbProject) -> Iterator[str]:
    """The project's admin on a free port (runserver), with a superuser admin / pw."""
    sqlite_project.shell(
        "from django.contrib.auth.models import User; "
        "print(User.objects.create_superuser('admin', 'admin@example.com', 'pw').pk)"
    )
    port = free_port()
    log = open(sqlite_project.path / "runserver.log", "w")  # noqa: SIM115  (closed below)
    server = sqlite_project.popen(
        "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure", stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.poll() is not None or _answers(base + "/admin/login/"), timeout=30)
        assert server.poll() is None, (sqlite_project.path / "runserver.log").read_text()
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture
def page() -> Iterator[object]:
    need(os.path.exists(CHROMIUM), f"Debian's chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            browser.close()


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.browser
def test_request_a_task_watch_it_finish_and_open_the_timeline(page, admin_server, sqlite_project):
    page.set_default_timeout(20_000)
    page.goto(admin_server + "/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert page.locator("a", has_text="Cron Tasks").count() == 1
    shot(page, "01-admin-index")

    page.goto(admin_server + "/admin/cron/crontask/add/")
    page.select_option("#id_cron_job", "TaskEcho")
    page.fill("#id_params", '"big world,sleep=0')
    page.click("input[name=_save]")
    error = page.locator(".errorlist").inner_text()
    assert "unbalanced quotes" in error
    shot(page, "02-bad-params")
    assert sqlite_project.query("SELECT COUNT(*) FROM cron_crontask") == [(0,)]

    page.fill("#id_params", '"big world",sleep=0')
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    assert "Waiting" in page.locator("#result_list").inner_text()
    shot(page, "03-task-waiting")

    result = sqlite_project.run("cron_worker", "run", "RunCronTasks")
    assert result.returncode == 0, result.stderr

    def finished() -> bool:
        page.reload()
        return "Finished" in page.locator("#result_list").inner_text()

    wait_for(finished, interval=0.5)
    row = page.locator("#result_list tbody tr").first.inner_text()
    assert "TaskEcho" in row and '"big world",sleep=0' in row
    shot(page, "04-task-finished")
    assert [m["what"] for m in sqlite_project.read_marks()] == ["big world"]

    page.goto(admin_server + "/admin/cron_history/cronrun/")
    page.click("text=Timeline (24 h)")
    page.wait_for_selector("#cron-timeline")
    assert page.locator('#cron-timeline g[data-job="TaskEcho"] rect.run').count() == 1
    assert "Succeeded" in page.locator('#cron-jobs tr[data-job="TaskEcho"]').inner_text()
    assert shot(page, "05-timeline").stat().st_size > 0
