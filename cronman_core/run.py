"""The context of one run, handed to every notifier and error-reporter hook."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cronman_core.jobspec import JobSpec, format_spec
from cronman_core.process import hostname
from cronman_core.taxonomies import RunStatus

if TYPE_CHECKING:
    from cronman_core.job import BaseCronJob


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class JobRun:
    """One run of one job spec in one worker process."""

    spec: JobSpec
    job_class: type[BaseCronJob]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=hostname)
    pid: int = field(default_factory=os.getpid)
    started_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    status: str = RunStatus.STARTED
    error: str | None = None
    resumed: bool = False

    @property
    def job_name(self) -> str:
        return self.spec.name

    @property
    def job_spec(self) -> str:
        return format_spec(self.spec)

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def finish(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = utcnow()
