"""A plugin of the soak's hosts: every fire a tick gives up goes into the host's marks file."""

from __future__ import annotations

import datetime as dt
import json
import os

from cronman_core import hookimpl


@hookimpl
def cronman_fires_missed(job_spec: str, first: dt.datetime, count: int, reason: str, key: str) -> None:
    with open(os.environ["CRONMAN_TEST_MARKS"], "a") as marks:
        marks.write(json.dumps({"job": "ledger", "event": "missed", "spec": job_spec, "first": first.timestamp(),
                                "count": count, "reason": reason}) + "\n")
