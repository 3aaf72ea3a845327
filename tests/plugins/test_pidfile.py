"""The pidfile lock backend: the contract, cross-process claims, and real workers contending."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cronman_core.testing import LockBackendContract
from cronman_plugins.pidfile import PidfileBackend
from tests.conftest import wait_for


class TestPidfileContract(LockBackendContract):
    @pytest.fixture
    def lock_backend(self, data_dir: Path) -> PidfileBackend:
        return PidfileBackend(data_dir)

    def corrupt_record(self, backend: PidfileBackend) -> None:
        (backend.records_dir / "truncated.json").write_text('{"key": "Job", "pid": 12')


def test_claim_exactly_once_across_processes(data_dir: Path) -> None:
    code = (
        "import sys; from cronman_plugins.pidfile import PidfileBackend; "
        "b = PidfileBackend(sys.argv[1]); print(int(b.claim('entry@12:00', 60)))"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    wins = [int(racer.communicate(timeout=60)[0]) for racer in racers]
    assert sorted(wins) == [0] * 7 + [1]


def test_files_are_private_and_symlinks_not_followed(data_dir: Path, tmp_path: Path) -> None:
    backend = PidfileBackend(data_dir)
    record = TestPidfileContract.make_record("Job")
    lock = backend.acquire("Job", record)
    assert lock is not None
    for path in (backend.lock_path("Job"), backend.records_dir / backend.record_name(record)):
        assert path.stat().st_mode & 0o777 == 0o600
    for path in (backend.locks_dir, backend.records_dir, backend.claims_dir):
        assert path.stat().st_mode & 0o777 == 0o700
    lock.release()
    target = tmp_path / "victim"
    target.write_text("keep")
    os.symlink(target, backend.lock_path("Evil"))
    # The symlink is set aside (never followed) and the lock is a new private file.
    evil = backend.acquire("Evil", TestPidfileContract.make_record("Evil"))
    assert evil is not None
    assert target.read_text() == "keep"
    assert not backend.lock_path("Evil").is_symlink()
    assert [p.is_symlink() for p in backend.locks_dir.glob(".corrupt-*")] == [True]
    evil.release()


def test_keys_with_any_characters_get_distinct_safe_files(data_dir: Path) -> None:
    backend = PidfileBackend(data_dir)
    keys = ["Job:path=/etc/passwd", "Job:path=_etc_passwd", "Job:'a b'", "../../escape"]
    paths = {backend.lock_path(key) for key in keys}
    assert len(paths) == len(keys)
    assert all(path.parent == backend.locks_dir for path in paths)


def _start(project, spec):
    proc = project.popen("cron_worker", "run", spec)
    return proc


def _started(project, count):
    return lambda: len([m for m in project.read_marks() if m.get("event") == "start"]) >= count


@pytest.mark.parametrize(
    "first, second, both_run",
    [
        ("Sleep:30", "Sleep:1", False),  # CLASS: params do not matter
        ("SleepParams:30", "SleepParams:30", False),  # PARAMS: same params
        ("SleepParams:30", "SleepParams:1", True),  # PARAMS: other params
        ("SleepParams:30,tag=x", "SleepParams:seconds=30,tag=x", False),  # PARAMS: the same call
        ("SleepParams:30,tag=x", "SleepParams:tag=x,seconds=30", False),
        ("SleepShared1:30", "SleepShared2:1", False),  # shared lock_name
        ("SleepNoLock:30", "SleepNoLock:1", True),  # lock_type None
    ],
)
def test_concurrent_workers(project, first, second, both_run) -> None:
    holder = _start(project, first)
    try:
        wait_for(_started(project, 1), timeout=60)
        result = project.run("cron_worker", "run", second)
        assert result.returncode == 0, result.stderr
        starts = [m for m in project.read_marks() if m.get("event") == "start"]
        if both_run:
            assert len(starts) == 2
        else:
            assert len(starts) == 1
            assert "is held by another worker" in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_sigkilled_worker_frees_its_lock_and_leaves_a_dead_record(project) -> None:
    worker = _start(project, "Sleep:60,tag=first")
    wait_for(_started(project, 1), timeout=60)
    worker.kill()
    worker.wait()
    result = project.run("cron_worker", "run", "Sleep:0,tag=second")
    assert result.returncode == 0, result.stderr
    ends = [m["tag"] for m in project.read_marks() if m.get("event") == "end"]
    assert ends == ["second"]
    status = project.run("cron_worker", "status", "Sleep")
    lines = [line.split("\t") for line in status.stdout.splitlines()[1:-1]]
    assert [(line[0], line[1], line[-1]) for line in lines] == [
        ("DEAD", str(worker.pid), "Sleep:60,tag=first")
    ]


def test_listing_index_follows_changes_and_survives_corruption(data_dir: Path) -> None:
    backend = PidfileBackend(data_dir)
    lock = backend.acquire("Job", TestPidfileContract.make_record("Job", can_resume=True))
    assert lock is not None
    assert [r.killed for r in backend.records()] == [False]
    assert (backend.records_dir / ".index.json").exists()
    lock.update(killed=True)
    assert [r.killed for r in backend.records()] == [True]
    (backend.records_dir / ".index.json").write_text('{"fields": ["key"], "records": 3')
    assert [r.killed for r in backend.records()] == [True]
    lock.release()
    assert backend.records() == []
