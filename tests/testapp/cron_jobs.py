"""Jobs the tests run through real ``cron_worker`` processes."""

import json
import os
import signal
import subprocess
import sys
import time

from cronman_core.job import BaseCronJob, cron_job_registry
from cronman_core.taxonomies import CPUPriority, LockType
from cronman_core.utils import is_cron_process_resumed


def _mark(name: str, payload: dict) -> None:
    """Write a JSON line to $CRONMAN_TEST_MARKS (when set) so tests see what ran."""
    path = os.environ.get("CRONMAN_TEST_MARKS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"job": name, "pid": os.getpid(), **payload}) + "\n")


class Hello(BaseCronJob):
    """Say hello and report the params received."""

    def run(self, what, sleep=None):
        print(json.dumps({"args": [what], "kwargs": {"sleep": sleep} if sleep is not None else {}}))
        _mark("Hello", {"what": what, "sleep": sleep})
        if sleep:
            time.sleep(float(sleep))


class Noop(BaseCronJob):
    """Do nothing (start-up benchmarks)."""

    lock_type = None

    def run(self):
        pass


class Fail(BaseCronJob):
    """Raise an error."""

    def run(self, message="boom"):
        raise RuntimeError(message)


class Sleep(BaseCronJob):
    """Sleep for the given seconds, marking start and end."""

    can_resume = True

    def run(self, seconds="60", tag=""):
        _mark("Sleep", {"event": "start", "tag": tag, "resumed": is_cron_process_resumed(),
                        "nice": os.nice(0), "fencing_token": self.context.fencing_token})
        time.sleep(float(seconds))
        _mark("Sleep", {"event": "end", "tag": tag})


class SleepParams(Sleep):
    lock_type = LockType.PARAMS


class SleepShared1(Sleep):
    lock_name = "SharedSleep"


class SleepShared2(Sleep):
    lock_name = "SharedSleep"


class SleepNoLock(Sleep):
    lock_type = None


class NiceSleep(Sleep):
    worker_cpu_priority = CPUPriority.LOWEST


class SpawnChild(BaseCronJob):
    """Start a child process and wait for it (kill must take the child too)."""

    def run(self, seconds="600"):
        child = subprocess.Popen(["sleep", seconds])
        _mark("SpawnChild", {"child": child.pid})
        child.wait()


class StubbornChild(BaseCronJob):
    """Leave a child in the worker's group that ignores SIGTERM, and exit on SIGTERM itself."""

    def run(self, seconds="600"):
        child = subprocess.Popen(["sh", "-c", f"trap '' TERM; sleep {int(seconds)}"])
        _mark("StubbornChild", {"child": child.pid})
        time.sleep(float(seconds))


class IgnoreTerm(BaseCronJob):
    """Ignore SIGTERM (kill must fall back to SIGKILL)."""

    def run(self, seconds="600"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _mark("IgnoreTerm", {"event": "start"})
        time.sleep(float(seconds))


class Echo(BaseCronJob):
    """Print the params received, verbatim (injection tests)."""

    lock_type = None

    def run(self, *args, **kwargs):
        _mark("Echo", {"args": list(args), "kwargs": kwargs})
        sys.stdout.write(json.dumps({"args": list(args), "kwargs": kwargs}) + "\n")


for job in (StubbornChild, Hello, Noop, Fail, Sleep, SleepParams, SleepShared1, SleepShared2, SleepNoLock,
            NiceSleep, SpawnChild, IgnoreTerm, Echo):
    cron_job_registry.register(job)


class Monitored(BaseCronJob):
    """Sleep ``sleep`` seconds, then succeed or raise ``fail``; has every monitor's id."""

    lock_type = None
    cronitor_id = "abc12"
    healthchecks_id = "5bd5e4c6-4c36-4b5a-9f3c-6b5bb1a0c0de"
    sentry_monitor_slug = "monitored-job"

    def run(self, fail="", sleep="0", say=""):
        _mark("Monitored", {"fail": fail})
        if say:
            print(say, flush=True)
        time.sleep(float(sleep))
        if fail:
            raise RuntimeError(fail)


class MonitoredQuiet(Monitored):
    """Monitored without Cronitor's optional run / fail pings, healthchecks by slug."""

    cronitor_ping_run = False
    cronitor_ping_fail = False
    healthchecks_id = None
    healthchecks_slug = "monitored-quiet"


for job in (Monitored, MonitoredQuiet):
    cron_job_registry.register(job)


class TaskEcho(BaseCronJob):
    """Mark the params received; may be requested from the admin (Cron Tasks)."""

    run_as_task = True
    lock_type = None

    def run(self, what, sleep="0"):
        _mark("TaskEcho", {"what": what, "resumed": is_cron_process_resumed()})
        time.sleep(float(sleep))


cron_job_registry.register(TaskEcho)


class MarkTime(BaseCronJob):
    """Mark the time run() was entered, then stay in run() (scheduler benchmarks)."""

    lock_type = None

    def run(self, tag="", seconds="0"):
        _mark("MarkTime", {"tag": tag, "t": time.time()})
        time.sleep(float(seconds))


cron_job_registry.register(MarkTime)


class MarkTimeFresh(MarkTime):
    """MarkTime in a new Python per run (``warm_fork = False``): the Celery dispatch benchmark's baseline."""

    warm_fork = False


cron_job_registry.register(MarkTimeFresh)


class WhereAmI(BaseCronJob):
    """Mark the worker's parent process (Celery spawner tests: the Celery worker started it)."""

    lock_type = None

    def run(self, tag=""):
        _mark("WhereAmI", {"tag": tag, "ppid": os.getppid()})


cron_job_registry.register(WhereAmI)


def _fire() -> list[int] | None:
    """The scheduled fires this run covers, ``[first, count]`` (the soak's ledger counts runs by them)."""
    from cronman_core.spawners import SCHEDULED_FIRE_ENV, ScheduledFire

    fire = ScheduledFire.decode(os.environ.get(SCHEDULED_FIRE_ENV))
    return None if fire is None else [fire.first, fire.count]


class SoakRun(BaseCronJob):
    """A soak entry's run (tests/soak): marks its entry and fencing token; one run per entry at a time."""

    lock_type = LockType.PARAMS
    can_resume = True  # resumable: cron_worker resume may restart one the chaos killed

    def run(self, entry):
        _mark("SoakRun", {"event": "enter", "entry": entry, "token": self.context.fencing_token, "t": time.time(),
                          "fire": _fire()})


class SoakLocked(BaseCronJob):
    """A CLASS-locked soak run: marks its fencing token every 0.1 s for ``seconds``, then its exit."""

    def run(self, entry, seconds="2"):
        name = type(self).__name__
        token = self.context.fencing_token
        _mark(name, {"event": "enter", "entry": entry, "token": token, "t": time.time(), "fire": _fire()})
        deadline = time.monotonic() + float(seconds)
        while time.monotonic() < deadline:
            _mark(name, {"event": "tick", "entry": entry, "token": token, "t": time.time()})
            time.sleep(0.1)
        _mark(name, {"event": "exit", "entry": entry, "token": token, "t": time.time()})


class SoakFail(BaseCronJob):
    """A soak entry that always fails (tests/soak/daemon.py)."""

    lock_type = LockType.PARAMS

    def run(self, entry):
        _mark("SoakFail", {"event": "enter", "entry": entry, "t": time.time(), "fire": _fire()})
        raise RuntimeError(f"{entry} fails, as it always does")


class SoakSlow(BaseCronJob):
    """A soak entry that outlives its ``max_runtime`` option: stopped with status ``timeout``."""

    lock_type = LockType.PARAMS

    def run(self, entry, seconds="30"):
        _mark("SoakSlow", {"event": "enter", "entry": entry, "t": time.time(), "fire": _fire()})
        time.sleep(float(seconds))


class SoakFlaky(BaseCronJob):
    """A soak entry whose first attempt fails and whose retry (``retries`` option) succeeds."""

    lock_type = LockType.PARAMS

    def run(self, entry):
        _mark("SoakFlaky", {"event": "enter", "entry": entry, "attempt": self.context.attempt, "t": time.time(),
                            "fire": _fire()})
        if self.context.attempt == 1:
            raise RuntimeError(f"{entry}: the first attempt fails")


for _job in (SoakRun, SoakFail, SoakSlow, SoakFlaky):
    cron_job_registry.register(_job)
for _i in range(5):  # five classes: each its own CLASS lock
    cron_job_registry.register(type(f"SoakLocked{_i}", (SoakLocked,), {"__doc__": SoakLocked.__doc__}))


class PgSession(BaseCronJob):
    """Mark this worker's PostgreSQL session (``pg_backend_pid()``), then hold it ``seconds``."""

    lock_type = LockType.PARAMS

    def run(self, tag, seconds="3"):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        _mark("PgSession", {"event": "start", "tag": tag, "backend": backend, "ppid": os.getppid()})
        time.sleep(float(seconds))


cron_job_registry.register(PgSession)


class CeleryRun(BaseCronJob):
    """Celery cluster tests: mark where it ran (host, parent, fencing token, resumed), then work ``seconds``
    or, given ``hold``, until that file exists (at most 60 s)."""

    lock_type = LockType.PARAMS
    can_resume = True
    run_as_task = True

    def run(self, tag="", seconds="0", hold=""):
        run = self.context
        _mark(type(self).__name__, {"event": "start", "tag": tag, "host": run.host, "ppid": os.getppid(),
                                    "token": run.fencing_token, "resumed": run.resumed, "t": time.time()})
        deadline = time.monotonic() + (60.0 if hold else float(seconds))
        while time.monotonic() < deadline and not (hold and os.path.exists(hold)):
            time.sleep(0.05)
        _mark(type(self).__name__, {"event": "end", "tag": tag, "t": time.time()})


class CeleryLocked(CeleryRun):
    lock_type = LockType.CLASS


class CeleryRetried(CeleryRun):
    retry_on_worker_loss = True


class CeleryFresh(CeleryRun):
    warm_fork = False


for job in (CeleryRun, CeleryLocked, CeleryRetried, CeleryFresh):
    cron_job_registry.register(job)


class Chatty(BaseCronJob):
    """Print ``mib`` MiB of numbered lines (the last one ``last line``), then raise if ``fail``."""

    lock_type = None

    def run(self, mib="1", fail=""):
        line = "x" * 99 + "\n"
        for number in range(int(float(mib) * 1024 * 1024) // 100):
            sys.stdout.write(f"{number:09d} {line[10:]}")
        print("last line", flush=True)
        if fail:
            raise RuntimeError(fail)


class Progressing(BaseCronJob):
    """Report progress through ``steps`` steps, ``delay`` seconds each."""

    def run(self, steps="10", delay="0.5"):
        total = int(steps)
        for done in range(total):
            self.progress(done, total, f"step {done}")
            time.sleep(float(delay))
        self.progress(total, total, "all done")


for job in (Chatty, Progressing):
    cron_job_registry.register(job)
