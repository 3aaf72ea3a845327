"""What ``cron_worker info`` tells about registered jobs."""

from __future__ import annotations

import inspect
from typing import Any

from cronman_core.job import BaseCronJob, cron_job_registry


def run_params(job_class: type[BaseCronJob]) -> list[dict[str, Any]]:
    """The parameters of ``run()`` (without ``self``), as names, kinds and defaults."""
    params = list(inspect.signature(job_class.run).parameters.values())[1:]
    return [
        {
            "name": p.name,
            "kind": p.kind.name.lower(),
            "required": p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD),
            "default": None if p.default is inspect.Parameter.empty else repr(p.default),
        }
        for p in params
    ]


def own_doc(job_class: type[BaseCronJob]) -> str:
    """The job's docstring, or its own base class's: never ``BaseCronJob``'s, which says nothing of the job."""
    for cls in job_class.__mro__:
        if cls is BaseCronJob:
            break
        if cls.__dict__.get("__doc__"):
            return inspect.cleandoc(cls.__dict__["__doc__"])
    return ""


def job_info(name: str) -> dict[str, Any]:
    job_class = cron_job_registry.get(name)
    return {
        "name": name,
        "class": f"{job_class.__module__}.{job_class.__qualname__}",
        "doc": own_doc(job_class),
        "run_doc": inspect.cleandoc(job_class.run.__doc__ or "") if job_class.run is not BaseCronJob.run else "",
        "signature": str(inspect.signature(job_class.run)).replace("(self, ", "(").replace("(self)", "()"),
        "params": run_params(job_class),
        "lock_type": job_class.lock_type,
        "lock_name": job_class.lock_name,
        "can_resume": job_class.can_resume,
    }


def all_jobs() -> list[dict[str, Any]]:
    return [job_info(name) for name, _ in cron_job_registry.items()]
