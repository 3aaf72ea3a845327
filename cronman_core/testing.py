"""Test helpers for cronman and for plugin authors.

:class:`CronmanProject` is a throwaway project: a settings module in a temp
dir layered over your base settings, a private data dir, and ``manage.py``
commands run as real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cronman_core.locks import LockBackend
from cronman_core.process import create_time, hostname
from cronman_core.records import RunRecord


class CronmanProject:
    """A settings module plus data dir in ``path``; runs commands as subprocesses."""

    _counter = 0

    def __init__(
        self,
        path: Path,
        base_settings: str,
        pythonpath: Sequence[str | os.PathLike[str]] = (),
        **settings: Any,
    ) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.base_settings = base_settings
        self.pythonpath = [str(self.path), *map(str, pythonpath)]
        self.data_dir = self.path / "data"
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.marks = self.path / "marks.jsonl"
        self.extra_env: dict[str, str] = {}
        self.configure(**settings)

    def configure(self, **settings: Any) -> None:
        """Write a new settings module: the base settings, the data dir and ``settings``."""
        CronmanProject._counter += 1
        self.settings_module = f"cronman_test_settings_{os.getpid()}_{CronmanProject._counter}"
        lines = [f"from {self.base_settings} import *  # noqa", f"CRONMAN_DATA_DIR = {str(self.data_dir)!r}"]
        lines += [f"{name} = {value!r}" for name, value in settings.items()]
        (self.path / f"{self.settings_module}.py").write_text("\n".join(lines) + "\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=self.settings_module,
            PYTHONPATH=os.pathsep.join(self.pythonpath),
            CRONMAN_TEST_MARKS=str(self.marks),
            PYTHONUNBUFFERED="1",
        )
        env.pop("CRON_PROCESS_RESUMED", None)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "django", *args]

    def run(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``django-admin <args>`` to completion; stdout/stderr as text."""
        return subprocess.run(
            self.argv(*args),
            cwd=self.path,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def shell(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``code`` in ``manage.py shell``; raise AssertionError (with stderr) if it fails."""
        result = self.run("shell", "-c", code, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"manage.py shell exited {result.returncode}:\n{result.stderr}")
        return result

    def popen(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``django-admin <args>`` without waiting (for races and signals)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            self.argv(*args), cwd=self.path, env=self.env(**(env or {})), text=True, **kwargs
        )

    def read_marks(self) -> list[dict[str, Any]]:
        if not self.marks.exists():
            return []
        return [json.loads(line) for line in self.marks.read_text().splitlines() if line.strip()]


class LockBackendContract:
    """Behaviour every :class:`~cronman_core.locks.LockBackend` must have.

    Subclass it in a pytest module and provide a ``lock_backend`` fixture (a
    fresh, empty backend) and :meth:`corrupt_record`::

        class TestMyBackend(LockBackendContract):
            @pytest.fixture
            def lock_backend(self, tmp_path):
                return MyBackend(...)

            def corrupt_record(self, backend):
                ...  # store one unparsable record
    """

    #: Fire claims made at once by that many threads; exactly one must win.
    CLAIM_RACERS = 16

    def corrupt_record(self, backend: LockBackend) -> None:
        """Store one record the backend cannot parse (a truncated write)."""
        raise NotImplementedError(f"{type(self).__name__}.corrupt_record")

    @staticmethod
    def make_record(key: str, **changes: Any) -> RunRecord:
        """A record of this process, as a worker would write it."""
        fields: dict[str, Any] = dict(
            key=key,
            job_spec=key,
            pid=os.getpid(),
            host=hostname(),
            create_time=create_time(os.getpid()),
            run_id=uuid.uuid4().hex,
            started_at="2026-01-01T00:00:00+00:00",
        )
        fields.update(changes)
        return RunRecord(**fields)

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {predicate}")
            time.sleep(0.02)

    def test_acquire_contend_release(self, lock_backend: LockBackend) -> None:
        first = lock_backend.acquire("Job", self.make_record("Job"))
        assert first is not None
        assert lock_backend.is_locked("Job")
        assert lock_backend.acquire("Job", self.make_record("Job")) is None
        other = lock_backend.acquire("Other", self.make_record("Other"))
        assert other is not None
        first.release()
        other.release()
        assert not lock_backend.is_locked("Job")
        again = lock_backend.acquire("Job", self.make_record("Job"))
        assert again is not None
        again.release()
        assert lock_backend.records() == []

    def test_records_listed_while_held(self, lock_backend: LockBackend) -> None:
        record = self.make_record("Job:1", job_spec="Job:1", can_resume=True)
        lock = lock_backend.acquire("Job:1", record)
        assert lock is not None
        assert lock_backend.records() == [record]
        lock.update(killed=True)
        assert [r.killed for r in lock_backend.records()] == [True]
        lock.release()
        assert lock_backend.records() == []

    def test_is_held_by_its_own_run_only(self, lock_backend: LockBackend) -> None:
        first = self.make_record("Job")
        lock = lock_backend.acquire("Job", first)
        assert lock is not None
        assert lock_backend.is_held_by(first)
        assert not lock_backend.is_held_by(self.make_record("Job"))  # same key, another run
        lock.release(keep_record=True)
        assert not lock_backend.is_held_by(first)
        second = lock_backend.acquire("Job", self.make_record("Job"))
        assert second is not None
        assert not lock_backend.is_held_by(first)  # the key is held, but not by that run
        second.release()
        lock_backend.remove_record(first)

    def test_keep_record_frees_the_lock(self, lock_backend: LockBackend) -> None:
        record = self.make_record("Job", can_resume=True)
        lock = lock_backend.acquire("Job", record)
        assert lock is not None
        lock.release(keep_record=True)
        assert lock_backend.records() == [record]
        assert not lock_backend.is_locked("Job")
        second = lock_backend.acquire("Job", self.make_record("Job"))
        assert second is not None
        assert len(lock_backend.records()) == 2
        second.release()
        lock_backend.remove_record(record)
        assert lock_backend.records() == []

    def test_corrupt_record_skipped(self, lock_backend: LockBackend) -> None:
        self.corrupt_record(lock_backend)
        lock = lock_backend.acquire("Job", self.make_record("Job"))
        assert lock is not None
        assert [r.key for r in lock_backend.records()] == ["Job"]
        lock.release()

    def test_claim_exactly_once_under_concurrency(self, lock_backend: LockBackend) -> None:
        barrier = threading.Barrier(self.CLAIM_RACERS)
        wins: list[bool] = []

        def racer() -> None:
            barrier.wait()
            wins.append(lock_backend.claim("entry@2026-01-01T00:00", 60))

        threads = [threading.Thread(target=racer) for _ in range(self.CLAIM_RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(wins) == [False] * (self.CLAIM_RACERS - 1) + [True]
        assert not lock_backend.claim("entry@2026-01-01T00:00", 60)
        assert lock_backend.claim("entry@2026-01-01T00:01", 60)

    def test_claim_is_idempotent_for_its_token_and_released_only_by_it(self, lock_backend: LockBackend) -> None:
        assert lock_backend.claim("slot", 60, "token-a")
        assert lock_backend.claim("slot", 60, "token-a")  # a re-sent call: still ours
        assert not lock_backend.claim("slot", 60, "token-b")
        assert not lock_backend.claim("slot", 60)  # no token is nobody's
        assert not lock_backend.release_claim("slot", "token-b")
        assert not lock_backend.release_claim("slot", "")
        assert lock_backend.release_claim("slot", "token-a")
        assert not lock_backend.release_claim("slot", "token-a")
        assert lock_backend.claim("slot", 60, "token-b")  # released: the fire can be retried
        assert not lock_backend.claim("slot", 60, "token-a")

    def test_a_pending_claim_lapses_unless_its_token_confirms_it(self, lock_backend: LockBackend) -> None:
        assert lock_backend.claim("confirmed", 0.3, "token")
        assert lock_backend.claim("confirmed", 3600, "token")  # extended
        assert lock_backend.claim("lapsed", 0.3, "token")
        self._wait(lambda: lock_backend.claim("lapsed", 60, "other"))
        assert not lock_backend.claim("confirmed", 60, "other")
        assert lock_backend.claim("confirmed", 0.01, "token")  # never shortened
        time.sleep(0.05)
        assert not lock_backend.claim("confirmed", 60, "other")

    def test_fencing_tokens_increase_per_key(self, lock_backend: LockBackend) -> None:
        tokens = []
        for key in ("Job", "Job", "Other", "Job"):
            lock = lock_backend.acquire(key, self.make_record(key))
            assert lock is not None
            tokens.append((key, lock.fencing_token))
            lock.release()
        job = [token for key, token in tokens if key == "Job"]
        assert job[0] > 0 and job == sorted(set(job)), tokens

    def test_prune_claims(self, lock_backend: LockBackend) -> None:
        expires = time.time() + 0.05
        assert lock_backend.claim("short", 0.05)
        assert lock_backend.claim("long", 3600)
        self._wait(lambda: time.time() > expires + 0.05)
        assert lock_backend.prune_claims() == 1
        assert lock_backend.claim("short", 60)
        assert not lock_backend.claim("long", 60)
