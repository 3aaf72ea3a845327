"""Proof, from the process itself, that it is the worker of a run: a lock only that worker holds.

A run record says which PID runs it, and its start time proves the PID was
not reused; but whoever can write the store (a shared Redis, a database
row) can write a record naming any process of this user with its real PID
and start time. So before ``kill`` signals anything, the process must prove
itself: every worker holds an exclusive ``flock`` on
``<data dir>/runs/<run id>.lock`` from its first step to its exit, and the
kernel's lock table (/proc/locks) says which PID holds it. The data dir is
private to this user, and nothing a store says can make another process
hold that lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from cronman_core.datadir import private_subdir
from cronman_core.files import open_or_replace, safe_name
from cronman_core.process import file_id, flock_holders
from cronman_core.records import RunRecord

#: A proof file this old that nobody holds is a dead worker's (not one about to lock it).
STALE_SECONDS = 60.0


def proof_path(data_dir: Path, run_id: str) -> Path:
    return private_subdir(data_dir, "runs") / f"{safe_name(run_id)}.lock"


@contextlib.contextmanager
def holding_proof(data_dir: Path, run_id: str) -> Iterator[None]:
    """Hold the run's proof lock for the block (the worker's whole run)."""
    path = proof_path(data_dir, run_id)
    fd = open_or_replace(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def proves(data_dir: Path, record: RunRecord) -> bool:
    """Whether ``record.pid`` holds the proof lock of ``record.run_id`` right now.

    False where /proc/locks cannot be read: no signal without proof.
    """
    try:
        info = os.stat(proof_path(data_dir, record.run_id), follow_symlinks=False)
    except FileNotFoundError:
        return False
    holders = flock_holders()
    return holders is not None and holders.get(file_id(info)) == record.pid


def prune_proofs(data_dir: Path, now: float | None = None) -> int:
    """Remove proof files nobody holds (workers that were SIGKILLed); return how many."""
    holders = flock_holders()
    if holders is None:
        return 0
    now = time.time() if now is None else now
    removed = 0
    with os.scandir(private_subdir(data_dir, "runs")) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                info = entry.stat(follow_symlinks=False)
                if file_id(info) not in holders and info.st_mtime < now - STALE_SECONDS:
                    os.unlink(entry.path)
                    removed += 1
    return removed
