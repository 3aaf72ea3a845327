"""pytest fixtures for projects that use cronman: run a job by spec, ask a schedule when it fires.

Loaded by pytest through the ``pytest11`` entry point of the installed
``cronman`` distribution (no ``conftest.py`` line needed), with pytest-django
setting Django up. docs/testing.md has an example test file to copy.

- ``cron_run(spec)`` runs ``cron_worker run <spec>``'s code in this process
  (lock, hooks, history, exit code) with a private data dir, and returns a
  :class:`CronRunResult`: the exit code, the notifications every plugin got,
  what the job printed, its error.
- ``cron_fires(time_spec, start, end, tz)`` lists the instants a time spec
  fires at in ``[start, end)``, read in the zone ``tz`` as the scheduler reads
  it (DST gaps and repeats included).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cronman_core import hookimpl


@dataclass
class CronRunResult:
    """What one ``cron_run`` did."""

    exit_code: int
    #: The notifications, in order: ``started``, ``progress``, ``succeeded``, ``failed``, ``killed``, ``skipped``.
    events: list[str] = field(default_factory=list)
    #: Each run's last :class:`~cronman_core.job.JobRun` (a retried job has one per attempt).
    runs: list[Any] = field(default_factory=list)
    #: What the job printed on stdout and stderr (in this process: not its children's).
    output: str = ""
    #: The exception the failed notifiers got, if any.
    error: BaseException | None = None

    @property
    def run(self) -> Any:
        """The last attempt's run."""
        return self.runs[-1] if self.runs else None

    @property
    def status(self) -> str | None:
        return self.run.status if self.run is not None else None


class _Recorder:
    """A plugin that writes down every notification of the runs of one ``cron_run``."""

    def __init__(self, result: CronRunResult) -> None:
        self.result = result

    def _note(self, event: str, run: Any) -> None:
        self.result.events.append(event)
        if run not in self.result.runs:
            self.result.runs.append(run)

    @hookimpl
    def cronman_job_started(self, run: Any) -> None:
        self._note("started", run)

    @hookimpl
    def cronman_job_progress(self, run: Any) -> None:
        self._note("progress", run)

    @hookimpl
    def cronman_job_succeeded(self, run: Any) -> None:
        self._note("succeeded", run)

    @hookimpl
    def cronman_job_failed(self, run: Any, exc: BaseException) -> None:
        self.result.error = exc
        self._note("failed", run)

    @hookimpl
    def cronman_job_killed(self, run: Any) -> None:
        self._note("killed", run)

    @hookimpl
    def cronman_job_skipped(self, run: Any) -> None:
        self._note("skipped", run)


@pytest.fixture
def cron_run(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., CronRunResult]:
    """Run a job spec in this process, as ``cron_worker run`` would; returns a :class:`CronRunResult`.

    Needs pytest-django (``settings``); the runs get a data dir of their own.
    Usage errors (unknown job, bad params) raise
    :class:`~cronman_core.errors.UsageError`, as the command's exit 2.
    """
    from cronman_core.plugins import get_plugin_manager  # local: pytest loads this before Django is set up
    from cronman_core.worker import run_job  # local: as above

    settings.CRONMAN_DATA_DIR = str(tmp_path_factory.mktemp("cronman-data"))
    Path(settings.CRONMAN_DATA_DIR).chmod(0o700)

    def run(job_spec: str) -> CronRunResult:
        result = CronRunResult(exit_code=-1)
        recorder = _Recorder(result)
        pm = get_plugin_manager()
        pm.register(recorder, name=f"cron_run-recorder-{id(recorder)}")
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                result.exit_code = run_job(job_spec)
        finally:
            pm.unregister(recorder)
            result.output = out.getvalue()
        return result

    return run


@pytest.fixture
def cron_fires() -> Callable[..., list[dt.datetime]]:
    """``cron_fires(time_spec, start, end, tz="UTC")``: the fire instants in ``[start, end)``, aware, in ``tz``."""
    # local: pytest loads this plugin in every session; the cron engine only when a test asks
    from cronman_core.cronexpr import get_zone, normalize, parse_cron

    def fires(time_spec: str, start: dt.datetime, end: dt.datetime, tz: str = "UTC") -> list[dt.datetime]:
        zone = get_zone(tz)
        expr = parse_cron(normalize(time_spec))
        begin = start if start.tzinfo else start.replace(tzinfo=zone)
        stop = end if end.tzinfo else end.replace(tzinfo=zone)
        instants = expr.fires_between(begin.timestamp() - 0.001, stop.timestamp() - 0.001, zone)
        return [dt.datetime.fromtimestamp(instant, zone) for instant in instants]

    return fires


__all__ = ["CronRunResult", "cron_fires", "cron_run"]
