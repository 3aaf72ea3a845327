"""Listing and controlling workers from their run records: status, kill, resume, clean.

Whatever lock backend stores the records, a process is treated as a worker
only when it is proven to be the one that wrote the record (same host, PID
and process start time, :func:`~cronman_core.process.verified_process`). A
record whose PID now belongs to another process is DEAD, and nothing but a
proven worker is ever signalled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cronman_core import conf
from cronman_core.datadir import get_data_dir
from cronman_core.errors import CronmanError, UsageError
from cronman_core.job import Progress, cron_job_registry
from cronman_core.jobspec import parse
from cronman_core.locks import LockBackend
from cronman_core.plugins import get_plugin_manager
from cronman_core.process import CREATE_TIME_TOLERANCE, hostname, proven_alive, verified_process
from cronman_core.records import RunRecord
from cronman_core.runproof import proves, prune_proofs
from cronman_core.spawn import spawn_job
from cronman_core.switch import SchedulerControl, SchedulerSwitch
from cronman_core.taxonomies import JobStatus

if TYPE_CHECKING:
    import psutil

# psutil is imported in the functions that use it ("local: start-up time"):
# ``cron_worker run`` imports this module through its command and must not pay for it.

logger = logging.getLogger("cronman.control")

#: How long one host keeps another's run to itself while it resumes it.
RESUME_CLAIM_TTL = 300.0
#: How long ``kill`` waits for SIGKILLed processes to vanish before reporting.
_KILL_SETTLE_SECONDS = 5.0
_POLL_INTERVAL = 0.05


@dataclass
class WorkerEntry:
    """One run record with the status ``status`` / ``kill`` report for it."""

    record: RunRecord
    status: str

    @property
    def progress(self) -> str:
        """What a live run said of its progress, with its ETA (``BaseCronJob.progress``); "" if nothing."""
        progress = Progress.from_dict(self.record.extra.get("progress"))
        if progress is None or self.status != JobStatus.ALIVE:
            return ""
        try:
            started = dt.datetime.fromisoformat(self.record.started_at)
        except ValueError:
            return ""
        return progress.describe(started)

    def as_dict(self) -> dict[str, Any]:
        data = {"name": self.record.key, "status": self.status, "progress": self.progress}
        data.update(asdict(self.record))
        return data


@dataclass
class ResumeResult:
    """What ``resume`` did with one dead resumable record."""

    record: RunRecord
    outcome: str  # RESUMED / SKIPPED / FAILED
    detail: str = ""
    pid: int | None = None


def _matcher(target: str | None) -> Callable[[RunRecord], bool]:
    """A filter for ``[spec|PID]``: a PID, a job name, or a name with params."""
    if not target:
        return lambda record: True
    if target.isdigit():
        pid = int(target)
        return lambda record: record.pid == pid
    wanted = parse(target)

    def matches(record: RunRecord) -> bool:
        try:
            spec = parse(record.job_spec)
        except UsageError:
            return False
        if spec.name != wanted.name:
            return False
        return not (wanted.args or wanted.kwargs) or spec.params == wanted.params

    return matches


def _select(backend: LockBackend, target: str | None, key: str | None = None) -> list[RunRecord]:
    """The records ``target`` names (and that hold lock ``key``, when given); a job name that matches
    nothing and no registered job is refused."""
    matches = _matcher(target)
    found = [record for record in backend.records() if matches(record) and key in (None, record.key)]
    found.sort(key=lambda record: (record.started_at, record.pid))
    if not found and target and not target.isdigit():
        cron_job_registry.get(parse(target).name)  # a typo: UnknownJobError with "did you mean"
    return found


def liveness(backend: LockBackend, records: list[RunRecord]) -> list[bool]:
    """Whether each record's worker is proven alive.

    On this host: its PID with the recorded start time
    (:func:`~cronman_core.process.proven_alive`); on another host (a shared
    lock backend): its own run holds its lock, not just anyone.
    """
    flags = proven_alive(records)
    local = hostname()
    return [
        flag if record.host == local else backend.is_held_by(record)
        for flag, record in zip(flags, records, strict=True)
    ]


def status(target: str | None = None) -> list[WorkerEntry]:
    """Every matching record, ALIVE or DEAD."""
    backend = get_plugin_manager().lock_backend()
    records = _select(backend, target)
    return [
        WorkerEntry(record, JobStatus.ALIVE if alive else JobStatus.DEAD)
        for record, alive in zip(records, liveness(backend, records), strict=True)
    ]


def where_records() -> str:
    """Where ``status`` looked, and, for the default data dir, why another user's runs are not there."""
    backend = get_plugin_manager().lock_backend()
    note = f"read {backend.describe()}"
    if backend.in_data_dir and not conf.get("CRONMAN_DATA_DIR"):
        note += (
            f"; CRONMAN_DATA_DIR is not set, so that is the default data dir of user {getpass.getuser()} "
            f"with settings {os.environ.get('DJANGO_SETTINGS_MODULE') or '(none)'}: workers started by "
            "another user or with other settings record their runs elsewhere. Set CRONMAN_DATA_DIR "
            "to one path for all of them (docs/deploying.md)."
        )
    return note


def totals(entries: Iterable[WorkerEntry]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


# -- kill -----------------------------------------------------------------------


def _gone(process: psutil.Process) -> bool:
    import psutil  # local: start-up time

    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


class _Victim:
    """A proven worker, its descendants and its process group, signalled as one.

    A spawned worker leads its own process group: while the leader lives the
    group is signalled with ``killpg``. A member may outlive its leader (a
    child that ignores SIGTERM); then each verified member is signalled on
    its own: a process of the worker's group (whose id the kernel does not
    reuse while a member lives) started no earlier than the worker, or a
    descendant seen while the worker lived. psutil re-checks each process's
    start time right before sending, so a reused PID is never signalled.
    """

    def __init__(self, record: RunRecord, process: psutil.Process) -> None:
        self.record = record
        self.process = process
        self.started = process.create_time()
        try:
            self.leads_group = os.getpgid(process.pid) == process.pid
        except ProcessLookupError:
            self.leads_group = False
        self.members: dict[int, psutil.Process] = {}

    def refresh(self, groups: dict[int, list[psutil.Process]]) -> None:
        """Add descendants and group members (from one scan, :func:`_groups`) seen since the last look."""
        import psutil  # local: start-up time

        with contextlib.suppress(psutil.Error):
            for child in self.process.children(recursive=True):
                self.members.setdefault(child.pid, child)
        earliest = self.started - CREATE_TIME_TOLERANCE  # a member starts after its worker
        for candidate in groups.get(self.process.pid, ()) if self.leads_group else ():
            with contextlib.suppress(psutil.Error):
                if candidate.pid not in self.members and candidate.create_time() >= earliest:
                    self.members[candidate.pid] = candidate

    def signal(self, signum: int) -> None:
        import psutil  # local: start-up time

        if self.leads_group and not _gone(self.process) and self.process.is_running():
            # is_running() re-checks the leader's start time: the group is still the worker's.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
            in_group = {pid for pid, p in self.members.items() if _in_group(p, self.process.pid)}
        else:
            with contextlib.suppress(psutil.Error):
                if not _gone(self.process):
                    self.process.send_signal(signum)
            in_group = set()
        for pid, member in self.members.items():
            if pid not in in_group:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    member.send_signal(signum)

    def alive(self) -> list[psutil.Process]:
        return [p for p in (self.process, *self.members.values()) if not _gone(p)]


def _in_group(process: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except ProcessLookupError:
        return False


def _refresh(victims: list[_Victim]) -> None:
    """Refresh every victim's members from one pass over the process table."""
    import psutil  # local: start-up time

    groups: dict[int, list[psutil.Process]] = {v.process.pid: [] for v in victims if v.leads_group}
    if groups:
        for candidate in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                pgid = os.getpgid(candidate.pid)
                if pgid in groups and candidate.pid != pgid:
                    groups[pgid].append(candidate)
    for victim in victims:
        victim.refresh(groups)


def _wait(victims: list[_Victim], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while any(victim.alive() for victim in victims) and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL)


def kill(
    target: str | None = None,
    grace: float | None = None,
    *,
    key: str | None = None,
    everywhere: bool = False,
    timeout: float = 30.0,
) -> list[WorkerEntry]:
    """SIGTERM matching workers' process groups (``key``: those holding that lock), SIGKILL those
    alive after ``grace``.

    ``kill <PID>`` of anything but a live cronman worker raises
    :class:`UsageError`; DEAD records are reported and left alone. With
    ``everywhere``, live runs on other hosts are asked through the lock
    backend to stop themselves (when it can), and followed for up to
    ``timeout`` seconds; without it (suspend, remote requests, which each
    host applies itself) they are only reported.
    """
    backend = get_plugin_manager().lock_backend()
    grace = conf.get("CRONMAN_KILL_GRACE") if grace is None else float(grace)
    records = _select(backend, target, key)
    victims: list[_Victim] = []
    entries: dict[str, WorkerEntry] = {}
    local = hostname()
    data_dir = get_data_dir()
    unproven: list[RunRecord] = []
    asked: list[RunRecord] = []
    target_is_pid = bool(target and target.isdigit())
    for record, alive in zip(records, liveness(backend, records), strict=True):
        process = verified_process(record) if alive and record.host == local else None
        if process is not None and not proves(data_dir, record):
            # PID and start time match, but a store can say those of any process: it must prove itself.
            unproven.append(record)
            process = None
        if process is not None:
            victims.append(_Victim(record, process))
        # Another host's live worker is never signalled from here: it is asked to stop itself.
        foreign = alive and record.host != local
        entries[record.run_id] = WorkerEntry(record, JobStatus.ALIVE if foreign else JobStatus.DEAD)
        if foreign and everywhere and not target_is_pid and backend.request_stop(record):
            asked.append(record)
    if target and target.isdigit() and not victims:
        why = " (it holds no run lock of its record)" if unproven else ""
        raise UsageError(f"PID {target} is not a running cronman worker{why}; not signalled")
    for record in unproven:
        logger.warning("PID %d does not hold the run lock of %s (%s): not signalled",
                       record.pid, record.job_spec, record.run_id)
    _refresh(victims)
    for victim in victims:
        logger.info("SIGTERM %s (PID %d)", victim.record.job_spec, victim.process.pid)
        victim.signal(signal.SIGTERM)
        entries[victim.record.run_id].status = JobStatus.TERMED
    _wait(victims, grace)
    _refresh(victims)
    stubborn = [victim for victim in victims if victim.alive()]
    for victim in stubborn:
        entries[victim.record.run_id].status = JobStatus.KILLED
        logger.warning("SIGKILL %s (PID %d)", victim.record.job_spec, victim.process.pid)
        victim.signal(signal.SIGKILL)
    _wait(stubborn, _KILL_SETTLE_SECONDS)
    _follow_requests(backend, asked, entries, timeout)
    return list(entries.values())


def _follow_requests(
    backend: LockBackend, asked: list[RunRecord], entries: dict[str, WorkerEntry], timeout: float
) -> None:
    """Wait for runs asked to stop on other hosts: TERMED once their lock is free, else still ALIVE."""
    deadline = time.monotonic() + timeout
    waiting = list(asked)
    while waiting:
        waiting = [record for record in waiting if backend.is_held_by(record)]
        for record in asked:
            if record not in waiting:
                entries[record.run_id].status = JobStatus.TERMED
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    for record in waiting:
        logger.warning("%s on %s (PID %d) was asked to stop and is still running after %.0f s",
                       record.job_spec, record.host, record.pid, timeout)


# -- resume / clean / suspend -----------------------------------------------------


def _dead(backend: LockBackend, target: str | None) -> list[RunRecord]:
    records = _select(backend, target)
    return [r for r, alive in zip(records, liveness(backend, records), strict=True) if not alive]


def resume(target: str | None = None) -> list[ResumeResult]:
    """Restart dead resumable runs with ``CRON_PROCESS_RESUMED=1``: this host's, and any host's that came
    through a queue every host sends to (``RunRecord.resume_anywhere``: claimed, so one host resumes it).

    One run per lock key (the latest) is resumed per call, and none whose lock
    is held now; a record is only forgotten after its new worker was spawned.
    """
    backend = get_plugin_manager().lock_backend()
    local = hostname()
    candidates = [
        record
        for record in _dead(backend, target)
        if record.can_resume and (record.host == local or record.resume_anywhere)
    ]
    results: list[ResumeResult] = []
    started_keys: set[str] = set()
    token = uuid.uuid4().hex
    for record in reversed(candidates):  # latest first
        if record.key in started_keys or backend.is_locked(record.key):
            results.append(ResumeResult(record, "SKIPPED", "its lock is held"))
            continue
        claim = f"resume:{record.run_id}"
        if record.host != local and not backend.claim(claim, RESUME_CLAIM_TTL, token):
            results.append(ResumeResult(record, "SKIPPED", "another host is resuming it"))
            continue
        try:
            handle = spawn_job(record.job_spec, resumed=True)
        except CronmanError as exc:
            if record.host != local:
                backend.release_claim(claim, token)
            results.append(ResumeResult(record, "FAILED", str(exc)))
            continue
        backend.remove_record(record)
        started_keys.add(record.key)
        results.append(ResumeResult(record, "RESUMED", handle.log_path or handle.remote_id or "", handle.pid))
    results.reverse()
    return results


def runs_alive(runs: list[RunRecord]) -> list[bool | None]:
    """Whether each run still lives, wherever it runs: a record, or one rebuilt from a history row or a task
    (host, PID, process start time, run id).

    This host's run: proven by PID and start time. Another host's, with a
    shared lock backend: alive while the run of its stored record holds its
    lock (a worker removes its record last, after its hooks); gone when no
    record of it is left. None where that cannot be told: another host's run
    with a backend of this host alone, or a store that cannot be read now.
    """
    flags: list[bool | None] = list(proven_alive(runs))
    local = hostname()
    foreign = [index for index, run in enumerate(runs) if run.host != local]
    if not foreign:
        return flags
    backend = get_plugin_manager().lock_backend()
    if backend.in_data_dir:
        return [None if index in foreign else flag for index, flag in enumerate(flags)]
    try:
        stored = {record.run_id: record for record in backend.records()}
        known = [(index, stored[runs[index].run_id]) for index in foreign if runs[index].run_id in stored]
        held = liveness(backend, [record for _index, record in known])
    except CronmanError as exc:
        logger.warning("cannot read the run records (%s): runs on other hosts are not judged", exc)
        return [None if index in foreign else flag for index, flag in enumerate(flags)]
    for index in foreign:
        flags[index] = False  # no record left: its worker ended, or its host lost it
    for (index, _record), alive in zip(known, held, strict=True):
        flags[index] = alive
    return flags


def clean(target: str | None = None, *, this_host: bool = False) -> list[RunRecord]:
    """Forget dead records so ``resume`` will not restart them (``this_host``: only this host's)."""
    backend = get_plugin_manager().lock_backend()
    removed = [record for record in _dead(backend, target) if not this_host or record.host == hostname()]
    for record in removed:
        backend.remove_record(record)
    prune_proofs(get_data_dir())
    return removed


def suspend() -> tuple[list[RunRecord], list[WorkerEntry]]:
    """Clean, then kill: the next ``resume`` restarts only what this kill stopped.

    Only this host's records are cleaned: with a shared (Redis) backend, other
    hosts' suspended runs stay resumable by their own hosts.
    """
    return clean(this_host=True), kill()


# -- the scheduler's control ------------------------------------------------------


class HostControl(SchedulerControl):
    """This host's scheduler switch and workers: what tick hooks and ``cron_scheduler enable|disable`` do."""

    def __init__(self, switch: SchedulerSwitch) -> None:
        self.switch = switch

    def is_enabled(self) -> bool:
        return self.switch.is_enabled()

    def disable(self, workers: bool = False) -> None:
        self.switch.disable()
        if workers:
            suspend()

    def enable(self, workers: bool = False) -> None:
        self.switch.enable(resume_workers=workers)

    def kill(self, spec: str | None = None) -> list[Any]:
        return list(kill(spec))


__all__ = [
    "HostControl",
    "ResumeResult",
    "WorkerEntry",
    "clean",
    "liveness",
    "kill",
    "resume",
    "runs_alive",
    "status",
    "suspend",
    "totals",
]
