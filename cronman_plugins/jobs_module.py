"""Built-in plugin: schedule entries from ``CRON_JOBS`` in ``CRONMAN_JOBS_MODULE``."""

from __future__ import annotations


from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.schedule import ScheduleEntry


def jobs_module_entries() -> list[ScheduleEntry]:
    """The ``CRON_JOBS`` of ``CRONMAN_JOBS_MODULE`` (none when the setting is None)."""
    import importlib

    path = conf.get("CRONMAN_JOBS_MODULE")
    if not path:
        return []
    try:
        module = importlib.import_module(path)
    except Exception as exc:
        raise UsageError(f"CRONMAN_JOBS_MODULE {path!r} cannot be imported: {exc}") from exc
    try:
        cron_jobs = module.CRON_JOBS
    except AttributeError:
        raise UsageError(f"CRONMAN_JOBS_MODULE {path!r} has no CRON_JOBS attribute") from None
    entries = []
    for index, item in enumerate(cron_jobs):
        if not (isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise UsageError(f"{path}.CRON_JOBS[{index}] is not a (time spec, job spec) pair: {item!r}")
        entries.append(ScheduleEntry(item[0], item[1], source=f"{path}.CRON_JOBS[{index}]"))
    return entries


@hookimpl
def cronman_schedule_entries() -> list[ScheduleEntry]:
    return jobs_module_entries()
