"""What a run printed and how far it got: bounded output capture, progress in status and the history,
skipped runs as history rows; real workers with their output in a file, as spawners give them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from cronman_core.job import Progress, format_seconds
from cronman_core.output import OUTPUT_LIMIT
from tests.conftest import wait_for
from tests.support import tasks_support

sqlite_project = tasks_support.sqlite_project


def run_logged(project, log: Path, *args: str) -> int:
    """``cron_worker run`` with stdout and stderr in ``log`` (a file, as a spawned worker's)."""
    with open(log, "w") as out:
        return project.popen("cron_worker", "run", *args, stdout=out, stderr=subprocess.STDOUT).wait(timeout=120)


def rows(project) -> list[tuple]:
    return project.query("SELECT job_spec, status, output, exit_reason, progress FROM cron_history_cronrun "
                         "ORDER BY id")


def test_a_run_printing_10_mib_keeps_its_last_64_kib(sqlite_project, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("")
    assert run_logged(sqlite_project, log, "Chatty:mib=10,fail=kaput") == 1
    assert log.stat().st_size > 10 * 1024 * 1024
    ((spec, status, output, _reason, _progress),) = rows(sqlite_project)
    assert (spec, status) == ("Chatty:mib=10,fail=kaput", "failed")
    assert len(output.encode()) <= OUTPUT_LIMIT
    assert len(output.encode()) > OUTPUT_LIMIT - 200
    assert output.endswith("last line\n")  # its end (the traceback is the row's error, logged after the hooks)
    assert output.encode() in log.read_bytes()


def test_output_is_the_runs_own_not_what_the_file_held_before(sqlite_project, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("an earlier run's line\n")
    with open(log, "a") as out:
        worker = sqlite_project.popen("cron_worker", "run", "Chatty:mib=0.001", stdout=out, stderr=subprocess.STDOUT)
        assert worker.wait(timeout=60) == 0
    ((_spec, status, output, _reason, _progress),) = rows(sqlite_project)
    assert status == "succeeded"
    assert "last line" in output and "earlier" not in output


def test_output_to_a_pipe_is_not_captured(sqlite_project) -> None:
    assert sqlite_project.run("cron_worker", "run", "Chatty:mib=0.001").returncode == 0
    assert [row[2] for row in rows(sqlite_project)] == [""]


def test_progress_shows_in_status_with_an_eta_and_stays_on_the_history_row(sqlite_project, tmp_path: Path) -> None:
    with open(tmp_path / "run.log", "w") as out:
        worker = sqlite_project.popen("cron_worker", "run", "Progressing:steps=8,delay=1", stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            def halfway() -> str:  # any step but the first (no pace yet) and the last
                lines = sqlite_project.run("cron_worker", "status").stdout.splitlines()
                found = [line.split("\t")[5] for line in lines[1:-1]]
                return next((text for text in found if re.match(r"(1[2-9]|[2-8]\d)% \(\d of 8\)", text)), "")

            text = wait_for(halfway, timeout=30)
            assert "ETA" in text and ": step " in text, text
            data = json.loads(sqlite_project.run("cron_worker", "status", "--json").stdout)
            assert data["workers"][0]["progress"].split("%")[0].isdigit()
            running = rows(sqlite_project)[0]
            assert running[1] == "started" and json.loads(running[4])["total"] == 8
        finally:
            assert worker.wait(timeout=60) == 0
    (row,) = rows(sqlite_project)
    assert (row[1], json.loads(row[4])["done"], json.loads(row[4])["message"]) == ("succeeded", 8, "all done")


def test_a_skipped_run_is_a_history_row_with_its_reason(sqlite_project, tmp_path: Path) -> None:
    holder = sqlite_project.popen("cron_worker", "run", "Sleep:30,tag=holder")
    try:
        wait_for(lambda: any(m.get("tag") == "holder" for m in sqlite_project.read_marks()), timeout=30)
        assert sqlite_project.run("cron_worker", "run", "Sleep:1,tag=second").returncode == 0
    finally:
        holder.kill()
        holder.wait()
    skipped = [row for row in rows(sqlite_project) if row[1] == "skipped"]
    assert [(row[0], row[3]) for row in skipped] == [
        ("Sleep:1,tag=second", "lock 'Sleep' is held by another worker")]


@pytest.mark.parametrize(("progress", "expected"), [
    (Progress(5, 10, "", 1000.0), "50% (5 of 10)"),
    (Progress(7, None, "rows", 1000.0), "7 done: rows"),
    (Progress(12, 10, "", 1000.0), "100% (12 of 10)"),
])
def test_progress_reads_as_people_read_it(progress: Progress, expected: str) -> None:
    import datetime as dt

    assert progress.describe(dt.datetime.fromtimestamp(990.0, dt.UTC), eta=False) == expected


def test_durations_read_as_people_read_them() -> None:
    assert [format_seconds(s) for s in (3.44, 42, 72, 3720)] == ["3.4 s", "42 s", "1 m 12 s", "1 h 2 m"]


def test_bad_progress_is_one_clear_error() -> None:
    from cronman_core.job import JobRun
    from cronman_core.jobspec import parse
    from tests.testapp.cron_jobs import Progressing

    run = JobRun(spec=parse("Progressing"), job_class=Progressing)
    with pytest.raises(ValueError, match=r"progress\('a lot', None\): done and total must be numbers >= 0"):
        Progressing(run).progress("a lot")  # type: ignore[arg-type]
