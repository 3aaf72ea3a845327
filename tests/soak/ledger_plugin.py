"""A plugin of the soak's hosts: every fire a tick gives up, and every run that ran nothing, into the marks file."""

from __future__ import annotations

import datetime as dt
import json
import os

from cronman_core import hookimpl
from cronman_core.job import JobRun
from cronman_core.spawners import SCHEDULED_FIRE_ENV, ScheduledFire


@hookimpl
def cronman_fires_missed(job_spec: str, first: dt.datetime, count: int, reason: str, key: str) -> None:
    with open(os.environ["CRONMAN_TEST_MARKS"], "a") as marks:
        marks.write(json.dumps({"job": "ledger", "event": "missed", "spec": job_spec, "first": first.timestamp(),
                                "count": count, "reason": reason}) + "\n")


@hookimpl
def cronman_job_skipped(run: JobRun, reason: str) -> None:
    """A scheduled run that ran nothing (lock held, lock store unreachable, claims not confirmable): its fires."""
    fire = ScheduledFire.decode(os.environ.get(SCHEDULED_FIRE_ENV))
    if fire is None:
        return
    with open(os.environ["CRONMAN_TEST_MARKS"], "a") as marks:
        marks.write(json.dumps({"job": "ledger", "event": "not run", "spec": run.job_spec, "first": fire.first,
                                "count": fire.count, "reason": reason.split(":")[0]}) + "\n")
