"""A wrapper implementation of a notification hook, which cronman refuses at load."""

from cronman_core import hookimpl


@hookimpl(wrapper=True)
def cronman_job_started(run):
    return (yield)
