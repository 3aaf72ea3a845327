"""End to end in Debian's chromium: request a Cron Task in the admin, watch it finish, open the timeline.

The admin runs in a ``runserver`` subprocess on a free port with the test's
own SQLite database; workers are real processes started by ``RunCronTasks``.
Screenshots go to ``test-artifacts/admin-browser/`` (git-ignored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
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
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, admin_server: str) -> None:
    page.set_default_timeout(20_000)
    page.goto(admin_server + "/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def fits(page, width: int = 1280) -> bool:
    """Nothing is wider than the window, and no list scrolls sideways: readable at 1280 px."""
    return page.evaluate(f"""document.documentElement.scrollWidth <= {width} && [...document.querySelectorAll(
        '#changelist .results, #content-main')].every(el => el.scrollWidth <= el.clientWidth + 1)""")


@pytest.mark.browser
def test_request_a_task_watch_it_finish_and_open_the_timeline(page, admin_server, sqlite_project):
    log_in(page, admin_server)
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
    page.click("text=Timeline")
    page.wait_for_selector("#cron-timeline")
    assert page.locator('#cron-timeline g[data-job="TaskEcho"] rect.run').count() == 1
    assert "Succeeded" in page.locator('#cron-jobs tr[data-job="TaskEcho"]').inner_text()
    assert shot(page, "05-timeline").stat().st_size > 0


HISTORY_ROWS = """
import datetime as dt, json
from django.utils import timezone
from cronman_plugins.history.models import CronRun
from cronman_plugins.tasks.models import CronTask
now = timezone.now()
def row(run_id, spec, status, ago, duration=None, **more):
    started = now - dt.timedelta(minutes=ago)
    finished = started + dt.timedelta(seconds=duration) if duration is not None else None
    return CronRun.objects.create(run_id=run_id, job_name=spec.split(":")[0], job_spec=spec, host="cron-a", pid=4242,
                                  started_at=started, finished_at=finished, duration=duration, status=status, **more)
row("ok1", "Report:day=1", "succeeded", 200, 72.4, exit_reason="run() returned")
row("bad1", "Report:day=2", "failed", 150, 3.2, exit_reason="run() raised RuntimeError",
    error="Traceback (most recent call last):\\nRuntimeError: disk full",
    output="fetching rows\\nwrote 120 rows\\nthe-last-words before the failure\\n")
row("miss1", "Report:day=3", "missed", 100, exit_reason="missed 1 fire(s): paused: deploy")
row("skip1", "Report:day=4", "skipped", 50, 0.1, exit_reason="lock 'Report' is held by another worker")
row("slow1", "Export", "timeout", 40, 600.0, exit_reason="ran longer than its max_runtime of 600 s; stopped")
row("run1", "Import:day=5", "started", 3, progress=json.dumps({"done": 42, "total": 100, "message": "rows",
                                                              "at": (now - dt.timedelta(minutes=1)).timestamp()}))
task = CronTask.objects.create(cron_job="TaskEcho", params="what=x", status="finished", run_id="ok1",
                               host="cron-a", pid=4242, started_at=now - dt.timedelta(minutes=200),
                               finished_at=now - dt.timedelta(minutes=199))
print(task.pk)
"""


@pytest.mark.browser
def test_history_filters_a_runs_output_the_timeline_windows_and_a_read_only_task(page, admin_server,
                                                                                  sqlite_project):
    task_id = int(sqlite_project.shell(HISTORY_ROWS))  # DbProject.shell: the JSON value printed last
    log_in(page, admin_server)

    page.goto(admin_server + "/admin/cron_history/cronrun/")
    listing = page.locator("#result_list").inner_text()
    assert "1 m 12 s" in listing and "10 m 0 s" in listing  # durations as people read them
    assert "42% (42 of 100), ETA" in listing
    started = page.locator("#result_list tbody tr td.field-started_display").first.inner_text()
    assert len(started) == 19 and started[13] == ":" and started[16] == ":"  # with seconds, no raw epoch
    shot(page, "10-runs")
    assert fits(page)

    page.goto(admin_server + "/admin/cron_history/cronrun/?status__exact=failed")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "RuntimeError" in rows.first.inner_text()
    shot(page, "11-runs-failed")
    rows.first.locator("a").first.click()
    page.wait_for_selector("pre.cronman-output")
    assert "the-last-words before the failure" in page.locator("pre.cronman-output").inner_text()
    assert page.locator("a", has_text=f"Cron Task {task_id}").count() == 0  # the failed run was no task
    shot(page, "12-run-output")

    page.goto(admin_server + "/admin/cron_history/cronrun/timeline/?window=6h")
    page.wait_for_selector("#cron-timeline")
    report = page.locator('#cron-timeline g[data-job="Report"]')
    assert report.locator("rect.slot").count() == 2  # the missed and the skipped slot, as marks
    assert report.locator("rect.run").count() == 2
    titles = " ".join(report.locator("rect.slot title").evaluate_all("titles => titles.map(t => t.textContent)"))
    assert "missed" in titles and "paused: deploy" in titles and "skipped" in titles
    assert page.locator(".cron-windows strong").inner_text() == "6h"
    shot(page, "13-timeline-6h")
    assert fits(page)
    page.click(".cron-windows >> text=1h")
    page.wait_for_selector(".cron-windows strong:text-is('1h')")  # the new page, not the old one still shown
    report = page.locator('#cron-timeline g[data-job="Report"]')
    assert (report.locator("rect.run").count(), report.locator("rect.slot").count()) == (0, 1)  # 50 min: skipped
    assert page.locator('#cron-timeline g[data-job="Import"] rect.run').count() == 1
    shot(page, "14-timeline-1h")
    page.click(".cron-windows >> text=7d")
    page.wait_for_selector(".cron-windows strong:text-is('7d')")
    labels = page.locator("#cron-timeline text").evaluate_all("texts => texts.map(t => t.textContent)")
    assert sum(label[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun") for label in labels) >= 5
    shot(page, "15-timeline-7d")

    page.goto(admin_server + f"/admin/cron/crontask/{task_id}/change/")
    assert page.locator("input[name=_save]").count() == 0  # read-only: a request is history once made
    page.click("text=run ok1")
    page.wait_for_selector(".field-job_spec")
    assert "Report:day=1" in page.locator(".field-job_spec").inner_text()
    assert page.locator("a", has_text=f"Cron Task {task_id}").count() == 1  # and back
    shot(page, "16-task-to-run")

    page.goto(admin_server + "/admin/cron/crontask/")
    assert fits(page)
    page.check("#result_list tbody input[type=checkbox]")
    page.select_option("select[name=action]", "run_again")
    with page.expect_navigation():
        page.click("button[name=index]")
    assert "Requested Cron Task(s)" in page.locator(".messagelist").inner_text()
    page.check("#result_list tbody tr:has-text('Waiting') input[type=checkbox]")
    page.select_option("select[name=action]", "run_again")
    with page.expect_navigation():  # the message of the page before must not be read for this one's
        page.click("button[name=index]")
    assert "Not requested again: already open as Cron Task(s)" in page.locator(".messagelist").inner_text()
    shot(page, "17-run-again-open")


@pytest.mark.browser
def test_a_scheduled_job_added_in_the_admin_fires_from_the_running_daemon_and_one_disabled_does_not(
    page, admin_server, sqlite_project
):
    project = sqlite_project
    (project.path / "file_jobs.py").write_text('CRON_JOBS = [("* * * * *", "Echo:file")]\n')
    project.configure(CRONMAN_JOBS_MODULE="file_jobs", CRONMAN_TIME_ZONE="UTC", CRONMAN_SCHEDULE_POLL_INTERVAL=1,
                      CRONMAN_DISABLED_PLUGINS=["tasks", "history"])  # dbschedule on
    log_path = project.path / "daemon.log"

    def marks(arg: str) -> int:
        return sum(mark["args"] == [arg] for mark in project.read_marks())

    def add(job_spec: str) -> None:
        with page.expect_navigation():
            page.click(".object-tools a.addlink")
        page.fill("#id_time_spec", "* * * * *")
        page.fill("#id_job_spec", job_spec)
        page.fill("#id_note", "added in the browser")
        with page.expect_navigation():
            page.click("input[name=_save]")
        assert "was added successfully" in page.locator(".messagelist").inner_text()

    with open(log_path, "w") as log:
        daemon = project.popen("cron_scheduler", "daemon", stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "scheduler daemon starting" in log_path.read_text(), timeout=30)
        log_in(page, admin_server)
        if time.time() % 60 > 35:  # the entries must be saved, and one disabled, before the same whole minute
            time.sleep(61 - time.time() % 60)
        with page.expect_navigation():
            page.click("text=Scheduled jobs")
        with page.expect_navigation():
            page.click(".object-tools a.addlink")
        page.fill("#id_time_spec", "* * * * *")
        page.fill("#id_job_spec", "NoSuchJob")
        page.click("input[name=_save]")
        assert "unknown cron job 'NoSuchJob'" in page.locator(".field-job_spec .errorlist").inner_text()
        shot(page, "20-scheduled-job-error")
        assert project.query("SELECT COUNT(*) FROM cron_dbschedule_scheduledjob") == [(0,)]
        page.goto(admin_server + "/admin/cron_dbschedule/scheduledjob/")

        add("Echo:admin")
        add("Echo:off")
        assert "Every minute" in page.locator("#result_list").inner_text()
        assert fits(page)
        shot(page, "21-scheduled-jobs")
        page.check("#result_list tbody tr:has-text('Echo:off') input[type=checkbox]")
        page.select_option("select[name=action]", "disable")
        with page.expect_navigation():
            page.click("button[name=index]")
        assert "1 scheduled job(s) disabled." in page.locator(".messagelist").inner_text()
        shot(page, "22-scheduled-job-disabled")
        assert sorted(project.query("SELECT job_spec, enabled, changed_by FROM cron_dbschedule_scheduledjob")) == [
            ("Echo:admin", 1, "admin"), ("Echo:off", 0, "admin")]
        saved = time.time()
        # noticed within the poll interval, without a restart; at the next whole minute the enabled entry
        # fires beside CRON_JOBS' entry, and the disabled one does not
        wait_for(lambda: "the schedule changed, 2 entries" in log_path.read_text(), timeout=10)
        assert saved % 60 < 58, "the entries were saved too close to the minute for this test"
        wait_for(lambda: marks("admin") == 1 and marks("file") >= 1, timeout=80)
        time.sleep(3)  # a run of the disabled entry, had it been started, would have written by now
        assert marks("off") == 0
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert "Traceback" not in log_path.read_text()
