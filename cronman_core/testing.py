"""Test helpers for cronman and for plugin authors.

:class:`CronmanProject` is a throwaway project: a settings module in a temp
dir layered over your base settings, a private data dir, and ``manage.py``
commands run as real subprocesses. :class:`LockBackendContract` and
:class:`SpawnerContract` are the tests every lock backend and spawner passes.
Named in ``CRONMAN_PLUGINS``, this module is also a plugin: it adds the
spawner contract's probe jobs and records their outcomes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from cronman_core import hookimpl
from cronman_core.job import BaseCronJob, CronJobRegistry, JobRun
from cronman_core.locks import LockBackend
from cronman_core.plugins import get_plugin_manager
from cronman_core.process import create_time, hostname
from cronman_core.records import RunRecord
from cronman_core.spawn import spawn_job
from cronman_core.taxonomies import IOPriority, LockType


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

    def update(self, **settings: Any) -> None:
        """Write a new settings module: the settings of the last :meth:`configure`, and ``settings``."""
        self.configure(**{**self.settings, **settings})

    def configure(self, **settings: Any) -> None:
        """Write a new settings module: the base settings, the data dir and ``settings``."""
        self.settings = dict(settings)
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

    def test_a_claims_expiry_tells_a_pending_claim_from_a_confirmed_one(self, lock_backend: LockBackend) -> None:
        if type(lock_backend).claim_expiry is LockBackend.claim_expiry:
            import pytest  # local: this module is also a plugin of worker processes, which need no pytest

            pytest.skip("this backend cannot tell when a claim lapses: ticks take every lost claim as final")
        now = lock_backend.time() or time.time()
        assert lock_backend.claim_expiry("slot") is None
        assert lock_backend.claim("slot", 120, "token")
        pending = lock_backend.claim_expiry("slot")
        assert pending is not None and now + 110 < pending < now + 130
        assert lock_backend.claim("slot", 7200, "token")  # confirmed
        confirmed = lock_backend.claim_expiry("slot")
        assert confirmed is not None and now + 7100 < confirmed < now + 7300
        assert lock_backend.release_claim("slot", "token")
        assert lock_backend.claim_expiry("slot") is None
        assert lock_backend.claim("lapsing", 0.3, "token")
        self._wait(lambda: lock_backend.claim_expiry("lapsing") is None)

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


# -- the spawner contract -------------------------------------------------------------

#: Where :class:`SpawnerProbe` runs write what they saw (one JSON line each), and the outcome hooks too.
PROBE_FILE_ENV = "CRONMAN_PROBE_FILE"
#: A variable a contract test sets for one run only.
PROBE_MARK_ENV = "CRONMAN_PROBE_MARK"


def _probe_write(payload: dict[str, Any]) -> None:
    path = os.environ.get(PROBE_FILE_ENV)
    if path:
        with open(path, "a") as handle:  # one short line, O_APPEND: whole lines from concurrent runs
            handle.write(json.dumps(payload) + "\n")


def _fd_targets() -> list[str]:
    targets = []
    for name in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue
    return targets


class SpawnerProbe(BaseCronJob):
    """Reports how it was started: process group, session, niceness, environment, descriptors."""

    lock_type = LockType.PARAMS

    def run(self, tag: str = "", seconds: str = "0", fail: str = "") -> None:
        run = self.context
        assert run is not None  # a worker always gives its job the run
        print(f"probe stdout {tag}", flush=True)
        print(f"probe stderr {tag}", file=sys.stderr, flush=True)
        _probe_write({
            "event": "run", "tag": tag, "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgrp(),
            "sid": os.getsid(0),
            "nice": os.nice(0), "ionice": int(psutil.Process().ionice().ioclass),
            "mark": os.environ.get(PROBE_MARK_ENV), "resumed": run.resumed,
            "fds": _fd_targets(), "random": random.random(), "run_id": run.run_id,
        })
        time.sleep(float(seconds))
        if fail:
            raise RuntimeError(fail)


class NiceSpawnerProbe(SpawnerProbe):
    """A probe whose job class asks for a lower CPU priority and the idle IO class."""

    worker_cpu_priority = 7
    worker_io_priority = IOPriority.IDLE


@hookimpl
def cronman_register_jobs(registry: CronJobRegistry) -> None:
    registry.register(SpawnerProbe)
    registry.register(NiceSpawnerProbe)


def _outcome(run: JobRun, outcome: str) -> None:
    _probe_write({"event": outcome, "tag": run.spec.kwargs_dict.get("tag", ""), "pid": os.getpid()})


@hookimpl
def cronman_job_succeeded(run: JobRun) -> None:
    _outcome(run, "succeeded")


@hookimpl
def cronman_job_failed(run: JobRun, exc: BaseException) -> None:
    _outcome(run, "failed")


@hookimpl
def cronman_job_killed(run: JobRun, signum: int) -> None:
    _outcome(run, "killed")


@hookimpl
def cronman_job_skipped(run: JobRun, reason: str) -> None:
    _outcome(run, "skipped")


def drive_spawner(runs: list[dict[str, Any]], wait: float | None) -> None:
    """Spawn ``runs`` (``job_spec`` and optional ``env`` / ``resumed``) as a scheduler daemon does,
    then print one JSON line: their handles, and their exit codes when ``wait`` is a timeout.

    Run in a project's ``manage.py shell`` by :class:`SpawnerContract`. Without ``wait`` the
    spawner is closed at once: the runs go on without this process.
    """
    spawner = get_plugin_manager().spawner(long_lived=True)
    spawner.reload()
    try:
        handles = [spawn_job(run["job_spec"], resumed=run.get("resumed", False), env=run.get("env"),
                             long_lived=True) for run in runs]
        results = [{"pid": h.pid, "log_path": h.log_path, "remote_id": h.remote_id} for h in handles]
        if wait is not None:
            for handle, result in zip(handles, results, strict=True):
                try:
                    result["code"] = spawner.wait(handle, wait)
                except NotImplementedError:
                    result["code"] = None
    finally:
        spawner.close()
    print(json.dumps({"spawner": type(spawner).__name__, "runs": results}))


class SpawnerContract:
    """Behaviour every :class:`~cronman_core.spawners.Spawner` must have, seen from the runs it starts.

    Subclass it in a pytest module with a ``spawner_project`` fixture: a
    :class:`CronmanProject` configured with :meth:`probe_settings` and the
    settings that choose the spawner::

        class TestMySpawner(SpawnerContract):
            @pytest.fixture
            def spawner_project(self, tmp_path):
                return CronmanProject(tmp_path, "proj.settings", **SpawnerContract.probe_settings(),
                                      CRONMAN_SPAWNER="mine")

    Runs are spawned as the scheduler daemon spawns them, from ``manage.py
    shell`` (:func:`drive_spawner`); :class:`SpawnerProbe` runs report what
    they saw. A spawner that cannot wait for a run (``Spawner.wait``) skips
    the exit-code checks only.
    """

    @staticmethod
    def probe_settings(*plugins: str) -> dict[str, Any]:
        """Settings that add the probe jobs and their outcome hooks to the project."""
        return {"CRONMAN_PLUGINS": [*plugins, "cronman_core.testing"]}

    @staticmethod
    def drive(project: CronmanProject, *runs: dict[str, Any], wait: float | None = 60.0) -> dict[str, Any]:
        project.extra_env[PROBE_FILE_ENV] = str(project.path / "probe.jsonl")
        code = f"from cronman_core.testing import drive_spawner; drive_spawner({list(runs)!r}, {wait!r})"
        # stderr to a file: a process the spawner leaves behind (a template) may keep it open.
        with open(project.path / "driver.log", "a+") as log:
            result = subprocess.run(project.argv("shell", "-c", code), cwd=project.path, env=project.env(),
                                    stdout=subprocess.PIPE, stderr=log, text=True, timeout=(wait or 0) + 60)
            log.seek(0)
            if result.returncode != 0:
                raise AssertionError(f"the spawner driver exited {result.returncode}:\n{log.read()}")
        data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return data

    @staticmethod
    def probes(project: CronmanProject, event: str = "run") -> dict[str, dict[str, Any]]:
        """What each run saw (or which outcome hook each got), by tag."""
        path = project.path / "probe.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return {item["tag"]: item for item in map(json.loads, lines) if item["event"] == event}

    def _wait_probes(self, project: CronmanProject, tags: set[str], event: str = "run") -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + 60
        while not tags <= set(self.probes(project, event)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} of {sorted(tags)} within 60 s: {self.probes(project, event)}")
            time.sleep(0.05)
        return self.probes(project, event)

    def test_each_run_leads_its_own_session_with_its_exit_code_and_outcome(
        self, spawner_project: CronmanProject
    ) -> None:
        data = self.drive(spawner_project, {"job_spec": "SpawnerProbe:tag=ok"},
                          {"job_spec": "SpawnerProbe:tag=bad,fail=boom"})
        runs = self._wait_probes(spawner_project, {"ok", "bad"})
        for tag, handle in zip(("ok", "bad"), data["runs"], strict=True):
            seen = runs[tag]
            assert seen["pgid"] == seen["sid"] == seen["pid"], seen
            if handle["pid"] is not None:
                assert handle["pid"] == seen["pid"]
        if data["runs"][0]["code"] is not None:
            assert [run["code"] for run in data["runs"]] == [0, 1]
        assert set(self._wait_probes(spawner_project, {"ok"}, "succeeded")) == {"ok"}
        assert set(self._wait_probes(spawner_project, {"bad"}, "failed")) == {"bad"}

    def test_output_goes_to_the_runs_own_private_log(self, spawner_project: CronmanProject) -> None:
        data = self.drive(spawner_project, {"job_spec": "SpawnerProbe:tag=logged,fail=kaput"})
        log_path = data["runs"][0]["log_path"]
        if log_path is None:
            return  # a remote spawner: the run's log is on its host
        text = Path(log_path).read_text()
        assert "probe stdout logged" in text and "probe stderr logged" in text
        assert "RuntimeError: kaput" in text
        assert os.stat(log_path).st_mode & 0o777 == 0o600

    def test_a_runs_environment_and_resumed_flag_reach_that_run_only(self, spawner_project: CronmanProject) -> None:
        self.drive(
            spawner_project,
            {"job_spec": "SpawnerProbe:tag=marked", "env": {PROBE_MARK_ENV: "m1"}, "resumed": True},
            {"job_spec": "SpawnerProbe:tag=plain"},
        )
        runs = self._wait_probes(spawner_project, {"marked", "plain"})
        assert (runs["marked"]["mark"], runs["marked"]["resumed"]) == ("m1", True)
        assert (runs["plain"]["mark"], runs["plain"]["resumed"]) == (None, False)
        assert runs["marked"]["random"] != runs["plain"]["random"]

    def test_the_job_classes_cpu_and_io_priority_are_applied(self, spawner_project: CronmanProject) -> None:
        self.drive(spawner_project, {"job_spec": "NiceSpawnerProbe:tag=nice"}, {"job_spec": "SpawnerProbe:tag=n0"})
        runs = self._wait_probes(spawner_project, {"nice", "n0"})
        assert runs["nice"]["nice"] == runs["n0"]["nice"] + 7
        assert runs["nice"]["ionice"] == IOPriority.IDLE and runs["n0"]["ionice"] != IOPriority.IDLE

    def test_no_socket_or_pipe_of_the_spawner_reaches_a_run(self, spawner_project: CronmanProject) -> None:
        self.drive(spawner_project, {"job_spec": "SpawnerProbe:tag=fds"})
        fds = self._wait_probes(spawner_project, {"fds"})["fds"]["fds"]
        assert [fd for fd in fds if fd.startswith(("socket:", "pipe:"))] == []

    def test_a_run_is_listed_killed_and_locked_as_any_worker(self, spawner_project: CronmanProject) -> None:
        self.drive(spawner_project, {"job_spec": "SpawnerProbe:tag=long,seconds=60"}, wait=None)
        pid = self._wait_probes(spawner_project, {"long"})["long"]["pid"]
        status = spawner_project.run("cron_worker", "status", "--json")
        workers = json.loads(status.stdout)["workers"]
        assert [(w["status"], w["pid"]) for w in workers] == [("ALIVE", pid)], status.stderr
        self.drive(spawner_project, {"job_spec": "SpawnerProbe:tag=long,seconds=60"})
        assert set(self._wait_probes(spawner_project, {"long"}, "skipped")) == {"long"}
        killed = spawner_project.run("cron_worker", "kill", str(pid))
        assert killed.returncode == 0 and f"TERMED\t{pid}" in killed.stdout, (killed.stdout, killed.stderr)
        assert set(self._wait_probes(spawner_project, {"long"}, "killed")) == {"long"}
