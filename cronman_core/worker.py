"""Running one job in this process: bind params, lock, notify, run, release."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from cronman_core import conf
from cronman_core.control import kill
from cronman_core.datadir import get_data_dir
from cronman_core.errors import CronmanError, DataDirError, DataDirNotWritable
from cronman_core.job import BaseCronJob, JobRun
from cronman_core.jobspec import JobSpec, bind, canonical_params
from cronman_core.locks import FireClaims, Lock, LockBackend
from cronman_core.output import OutputTail
from cronman_core.pauses import Pause, now_iso
from cronman_core.plugins import CronmanPluginManager, get_plugin_manager
from cronman_core.policies import NEXT_FIRE_ENV, RunPolicy, options_from_env, policy_for
from cronman_core.process import create_time, on_stop_signals, signal_own_run
from cronman_core.records import RECORD_EXTRA_ENV, RunRecord
from cronman_core.runproof import holding_proof
from cronman_core.taxonomies import LockType, RunStatus
from cronman_core.utils import is_cron_process_resumed

logger = logging.getLogger("cronman.worker")
T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
#: The run's lock was lost while it ran, or could not be asked for: nothing runs unguarded.
EXIT_LOCK = 3
#: The run took longer than its ``max_runtime`` and was stopped (as GNU ``timeout`` exits).
EXIT_TIMEOUT = 124
#: How often a run with ``overlap = "wait"`` (or one replacing the holder) asks for the lock again.
LOCK_POLL = 0.2
#: How often a run tries a lock store it cannot reach, for up to ``CRONMAN_STORE_WAIT`` seconds.
STORE_POLL = 0.5
#: How long a scheduled run tries to confirm its fire claims before it gives up its start, and how often.
CONFIRM_WAIT = 10.0
CONFIRM_POLL = 0.5

#: A job's progress is passed on at most this often (seconds).
PROGRESS_INTERVAL = 1.0

#: Most error text any hook gets (the full traceback goes to the error reporter).
ERROR_TEXT_LIMIT = 10_000


class JobKilled(BaseException):
    """Raised in the job by SIGTERM / SIGINT; a BaseException so ``except Exception`` can't eat it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class LockLost(CronmanError):
    """What the failed notifiers get for a run stopped because its lock was lost."""

    exit_code = EXIT_LOCK


class RunTimeout(CronmanError):
    """What the failed notifiers get for a run stopped at its ``max_runtime``."""

    exit_code = EXIT_TIMEOUT


class _SelfStop:
    """Stops this run from within (its lock was lost, its max_runtime passed, or a stop was asked
    for through it): SIGTERM to the run's process group, SIGKILL after the kill grace, as ``kill`` does."""

    def __init__(self) -> None:
        self.lost = threading.Event()
        self.timed_out = threading.Event()
        self.killer: threading.Timer | None = None
        self._stopped_at = 0.0

    def lock_lost(self) -> None:
        self.lost.set()
        self.stop()

    def timeout(self) -> None:
        self.timed_out.set()
        self.stop()

    def stop(self) -> None:
        self._stopped_at = time.monotonic()
        self.killer = threading.Timer(conf.get("CRONMAN_KILL_GRACE"), signal_own_run, (signal.SIGKILL,))
        self.killer.daemon = True
        self.killer.start()
        signal_own_run(signal.SIGTERM)

    def finish_timeout(self) -> None:
        """The job gave up on SIGTERM: its notifications must not be cut by the SIGKILL meant for
        it, but what it started gets that SIGKILL at the end of the grace all the same."""
        import psutil  # local: start-up time

        if self.killer is not None:
            self.killer.cancel()
            remaining = max(0.0, conf.get("CRONMAN_KILL_GRACE") - (time.monotonic() - self._stopped_at))
            children = psutil.Process().children(recursive=True)
            _gone, alive = psutil.wait_procs(children, timeout=remaining)
            for child in alive:
                with contextlib.suppress(psutil.Error):
                    child.kill()


class _ProgressSink:
    """Passes a job's progress on (its run record, ``cronman_job_progress``) at most once a second."""

    def __init__(self, pm: CronmanPluginManager, lock: Lock | None) -> None:
        self.pm = pm
        self.lock = lock
        self.last = -PROGRESS_INTERVAL

    def __call__(self, run: JobRun) -> None:
        progress = run.progress
        now = time.monotonic()
        final = progress is not None and progress.total is not None and progress.done >= progress.total
        if progress is None or (now - self.last < PROGRESS_INTERVAL and not final):
            return
        self.last = now
        if self.lock is not None:
            try:
                self.lock.update(extra={**self.lock.record.extra, "progress": progress.as_dict()})
            except Exception as exc:  # progress is a convenience: the job goes on
                logger.debug("%s: cannot store its progress (%s)", run.job_spec, exc)
        self.pm.job_progress(run)


def lock_key(job_class: type[BaseCronJob], spec: JobSpec, reserved: Collection[str] = ()) -> str | None:
    """The lock a run takes, per ``lock_type`` / ``lock_name`` (None: no lock).

    A PARAMS lock is keyed by the arguments as bound to ``run()``, without
    the params plugins reserve: one ``run()`` call, one lock.
    """
    if job_class.lock_type is None:
        return None
    base = job_class.lock_name or spec.name
    if job_class.lock_type == LockType.PARAMS:
        params = canonical_params(bind(job_class, spec, reserved))
        return f"{base}:{params}" if params else base
    return base


def record_key(run: JobRun) -> str:
    """The key of a run without a lock: its own, so its record is seen but never contended."""
    return f"{run.job_name}#{run.run_id}"


def _record(job_class: type[BaseCronJob], run: JobRun, key: str) -> RunRecord:
    return RunRecord(
        key=key,
        job_spec=run.job_spec,
        pid=run.pid,
        host=run.host,
        create_time=create_time(run.pid),
        run_id=run.run_id,
        started_at=run.started_at.isoformat(),
        can_resume=bool(job_class.can_resume),
        extra=dict(run.record_extra),
    )


def _acquire(
    pm: CronmanPluginManager, job_class: type[BaseCronJob], run: JobRun, key: str
) -> Lock | None:
    record = _record(job_class, run, key)
    attempts = max(1, int(getattr(job_class, "lock_check_attempts", 1) or 1))
    for attempt in range(attempts):
        lock = _reach(lambda: pm.lock_backend().acquire(key, record), run)
        if lock is not None or attempt == attempts - 1:
            return lock
        time.sleep(1)
    return None


def _reach(call: Callable[[], T], run: JobRun) -> T:
    """``call()``, tried again for ``CRONMAN_STORE_WAIT`` seconds while the lock store cannot be reached.

    Nothing has run yet, so waiting is safe: a Redis restart or a database
    failover of a few seconds delays the run instead of costing its fire.
    """
    wait = conf.get("CRONMAN_STORE_WAIT")
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except CronmanError as exc:
            if time.monotonic() >= deadline or (isinstance(exc, DataDirError) and
                                                not isinstance(exc, DataDirNotWritable)):
                raise
            if deadline - time.monotonic() > wait - STORE_POLL:
                what = "the data dir" if isinstance(exc, DataDirError) else "the lock store"
                logger.warning("%s: %s cannot be used (%s): trying again for %.0f s", run.job_spec, what, exc, wait)
            time.sleep(STORE_POLL)


def _writable_data_dir(run: JobRun) -> Path:
    """The data dir, waited for for ``CRONMAN_STORE_WAIT`` seconds while it cannot be written (a read-only
    filesystem for a while): a run started then would otherwise exit 2 after its tick consumed its fire."""
    return _reach(get_data_dir, run)


def _on_a_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def _raise_killed(signum: int, frame: FrameType | None) -> None:
    raise JobKilled(signum)


def run_job(job_spec: str) -> int:
    """Run ``job_spec`` here; return the exit code (0 done or locked, 1 raised, 3 lock lost,
    124 past its max_runtime, 128+sig killed).

    Usage errors (bad spec, unknown job, params that don't fit ``run()``, bad
    run policy options) raise :class:`~cronman_core.errors.UsageError`
    before anything runs. A failed run is run again per its ``retries``
    policy: each attempt is a run of its own (record, hooks, history).
    """
    pm = get_plugin_manager()
    spec, job_class = pm.resolve(job_spec)
    policy = policy_for(job_class, options_from_env())
    next_fire = _next_fire()
    record_extra = _record_extra()
    attempts = policy.retries + 1
    attempt = 1
    while True:
        tail = OutputTail.start()
        run = JobRun(spec=spec, job_class=job_class, resumed=is_cron_process_resumed(),
                     attempt=attempt, attempts=attempts, record_extra=record_extra, output_tail=tail)
        try:
            with holding_proof(_writable_data_dir(run), run.run_id):  # before any record names this process
                code = _run(pm, spec, job_class, run, policy)
        finally:
            tail.close()
        if policy.pause_after_failures is not None and _paused_after(pm, run, policy.pause_after_failures):
            return code
        if code != EXIT_FAILED or attempt == attempts:
            return code
        delay = policy.retry_delay * 2 ** (attempt - 1)
        if next_fire is not None and time.time() + delay >= next_fire:
            logger.warning("%s failed (attempt %d of %d): no retry, it would start at or after the next fire",
                           run.job_spec, attempt, attempts)
            return code
        logger.warning("%s failed (attempt %d of %d): retrying in %.0f s", run.job_spec, attempt, attempts, delay)
        try:
            with on_stop_signals(_raise_killed):
                time.sleep(delay)
        except JobKilled as killed:
            logger.warning("%s killed by signal %d before its retry", run.job_spec, killed.signum)
            return 128 + killed.signum
        attempt += 1


def _paused_after(pm: CronmanPluginManager, run: JobRun, limit: int) -> bool:
    """Count the run's outcome; pause its job when it makes ``limit`` failures in a row. True: paused."""
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMEOUT):
        return False  # skipped, killed, lost its lock: says nothing of the job
    try:
        store = pm.pause_store()
        streak = store.count_outcome(run.job_name, run.status != RunStatus.SUCCEEDED)
        if streak < limit:
            return False
        reason = f"{streak} failed runs in a row (pause_after_failures = {limit}); the last: {run.error or '?'}"
        store.pause(Pause(run.job_name, reason[:500], "auto", now_iso()))
    except (CronmanError, OSError) as exc:
        logger.error("%s: cannot count its failures for pause_after_failures (%s)", run.job_spec, exc)
        return False
    logger.error("%s paused: %s; run cron_scheduler unpause %s to resume it", run.job_name, reason, run.job_name)
    return True


def _record_extra() -> dict[str, Any]:
    """What the spawner asked the run's record to keep (taken out of the environment: not the job's children's)."""
    text = os.environ.pop(RECORD_EXTRA_ENV, None)
    if not text:
        return {}
    try:
        extra = json.loads(text)
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        logger.warning("ignoring a malformed %s: not a JSON object", RECORD_EXTRA_ENV)
        return {}
    return extra


def _next_fire() -> float | None:
    """The next fire of the entry this run came from (scheduled runs only): no retry reaches it."""
    text = os.environ.get(NEXT_FIRE_ENV)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _held(
    pm: CronmanPluginManager, job_class: type[BaseCronJob], run: JobRun, key: str, policy: RunPolicy
) -> tuple[Lock | None, str]:
    """The lock ``key`` held by another run: per ``overlap``, stop that run or wait for it.

    Returns the lock when it could be taken after all, else None and why not.
    """
    if policy.overlap == "replace":
        logger.warning("%s: lock %r is held: stopping the run that holds it (overlap = replace)", run.job_spec, key)
        kill(key=key, everywhere=True, timeout=conf.get("CRONMAN_KILL_GRACE") + 10.0)
        wait, why = conf.get("CRONMAN_KILL_GRACE") + 10.0, "its holder could not be stopped"
    elif policy.overlap == "wait":
        wait, why = policy.overlap_wait, f"held by another worker for {policy.overlap_wait:g} s"
    else:
        return None, "held by another worker"
    deadline = time.monotonic() + wait
    while True:
        lock = pm.lock_backend().acquire(key, _record(job_class, run, key))
        if lock is not None or time.monotonic() >= deadline:
            return lock, why
        time.sleep(LOCK_POLL)


def _confirm_claims(pm: CronmanPluginManager, claims: FireClaims, run: JobRun) -> bool:
    """Confirm this run's fire claims (its start makes them final); False: do not run.

    A claim left pending lapses, and a tick then runs its fire again. So when
    the claims cannot be confirmed (a full or read-only data dir, a store
    that errs) for :data:`CONFIRM_WAIT` seconds, the run goes on only if
    they are final already (its tick confirmed them); else it does not run,
    and the fire runs once, from the tick that retries it. A backend that
    cannot tell a pending claim from a final one (``claim_expiry``) runs.
    """
    backend = pm.lock_backend()
    deadline = time.monotonic() + CONFIRM_WAIT
    while True:
        try:
            claims.confirm(backend)
            return True
        except Exception as exc:
            error = exc
        if type(backend).claim_expiry is LockBackend.claim_expiry:
            logger.warning("%s: cannot confirm its fire claims (%s)", run.job_spec, error)
            return True
        with contextlib.suppress(Exception):
            expiry = backend.claim_expiry(claims.keys[0])
            now = backend.time() or time.time()
            if expiry is not None and expiry - now > conf.get("CRONMAN_CLAIM_PENDING") + CONFIRM_WAIT:
                return True  # its tick confirmed them
        if time.monotonic() >= deadline:
            logger.error("%s: cannot confirm its fire claims (%s): not running; the fire runs once its pending "
                         "claim lapses, from the tick that retries it", run.job_spec, error)
            return False
        time.sleep(CONFIRM_POLL)


def _not_running(pm: CronmanPluginManager, run: JobRun, reason: str) -> int:
    """A run that does not start (nothing ran, nothing is guarded): skipped, with its reason, and exit 3."""
    run.finish(RunStatus.SKIPPED, reason)
    pm.job_skipped(run, reason)
    return EXIT_LOCK


def _run(
    pm: CronmanPluginManager, spec: JobSpec, job_class: type[BaseCronJob], run: JobRun, policy: RunPolicy
) -> int:
    claims = FireClaims.from_env()
    if claims is not None and not _confirm_claims(pm, claims, run):  # a scheduled run: its start makes them final
        return _not_running(pm, run, "its fire claims cannot be confirmed: the fire runs once they lapse")
    key = lock_key(job_class, spec, pm.reserved_params)
    lock: Lock | None = None
    if key is None:
        # No lock, but a record all the same: status, kill, suspend and resume see the run.
        unlocked = record_key(run)
        try:
            lock = pm.lock_backend().acquire(unlocked, _record(job_class, run, unlocked))
        except Exception as exc:
            logger.warning("%s: cannot record the run (%s); running without a record", run.job_spec, exc)
    else:
        try:
            lock = _acquire(pm, job_class, run, key)
            why = ""
            if lock is None and policy.overlap != "skip":
                lock, why = _held(pm, job_class, run, key, policy)
        except Exception as exc:
            if not getattr(job_class, "lock_ignore_errors", False):
                logger.error("%s: cannot take lock %r (%s); not running", run.job_spec, key, exc)
                return _not_running(pm, run, f"its lock store cannot be reached: {exc}")
            logger.warning("lock %s failed (%s); running without it", key, exc)
        else:
            if lock is None:
                reason = f"lock {key!r} is {why or 'held by another worker'}"
                logger.warning("%s: %s, skipping", run.job_spec, reason)
                run.finish(RunStatus.SKIPPED, reason)
                pm.job_skipped(run, reason)
                return EXIT_OK
    self_stop = _SelfStop()
    run.progress_sink = _ProgressSink(pm, lock)
    if lock is not None:
        lock.on_stop_requested = self_stop.stop
        if key is not None:  # a record's own key guards nothing: never stop for losing it
            lock.on_lost = self_stop.lock_lost
            run.fencing_token = lock.fencing_token
    keep_record = False
    watchdog = None
    if policy.max_runtime is not None:
        watchdog = threading.Timer(policy.max_runtime, self_stop.timeout)
        watchdog.daemon = True
    try:
        with on_stop_signals(_raise_killed):
            try:
                pm.job_started(run)
                if watchdog is not None:
                    watchdog.start()
                job = job_class(run)
                job.run(*spec.args, **spec.run_kwargs(pm.reserved_params))
            except JobKilled as killed:
                if self_stop.timed_out.is_set():
                    reason = f"ran longer than its max_runtime of {policy.max_runtime:g} s; stopped"
                    run.finish(RunStatus.TIMEOUT, reason)
                    self_stop.finish_timeout()
                    pm.job_failed(run, RunTimeout(reason))
                    logger.error("%s %s", run.job_spec, reason)
                    return EXIT_TIMEOUT
                if self_stop.lost.is_set():
                    reason = f"lost its lock {lock.record.key!r} while running; stopped" if lock else "lost its lock"
                    run.finish(RunStatus.LOST_LOCK, reason)
                    pm.job_failed(run, LockLost(reason))
                    logger.error("%s %s", run.job_spec, reason)
                    return EXIT_LOCK
                run.finish(RunStatus.KILLED, f"killed by signal {killed.signum}")
                keep_record = bool(job_class.can_resume)
                if lock is not None and keep_record:
                    lock.update(killed=True)
                pm.job_killed(run, killed.signum)
                logger.warning("%s killed by signal %d", run.job_spec, killed.signum)
                return 128 + killed.signum
            except Exception as exc:
                text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                run.traceback = "".join(traceback.format_exception(exc))[-ERROR_TEXT_LIMIT:]
                run.finish(RunStatus.FAILED, text[:ERROR_TEXT_LIMIT])
                context = {
                    "job": run.job_name,
                    "job_spec": run.job_spec,
                    "host": run.host,
                    "run_id": run.run_id,
                }
                pm.report_error(exc, context, run)
                pm.job_failed(run, exc)
                # The traceback goes to the run's log (a spawned worker's stderr); a terminal gets one line.
                logger.error("%s failed: %s", run.job_spec, text,
                             exc_info=conf.debug() or not _on_a_terminal())
                return EXIT_FAILED
            run.finish(RunStatus.SUCCEEDED)
            pm.job_succeeded(run)
            return EXIT_OK
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if lock is not None:
            lock.release(keep_record=keep_record)

