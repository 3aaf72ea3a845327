"""A notifier that always raises: the job's outcome must not change."""

from cronman_core import hookimpl


@hookimpl
def cronman_job_started(run):
    raise RuntimeError("notifier outage")


@hookimpl
def cronman_job_succeeded(run):
    raise RuntimeError("notifier outage")
