"""A third-party notifier: appends events to $CRONMAN_TESTPLUGIN_LOG."""

import json
import os

from cronman_core import hookimpl


def _log(event, run):
    path = os.environ.get("CRONMAN_TESTPLUGIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "job_spec": run.job_spec, "run_id": run.run_id}) + "\n")


@hookimpl
def cronman_job_started(run):
    _log("started", run)


@hookimpl
def cronman_job_succeeded(run):
    _log("succeeded", run)


@hookimpl
def cronman_job_failed(run, exc):
    _log("failed", run)


@hookimpl
def cronman_job_killed(run, signum):
    _log("killed", run)
