"""CPU and IO priority of spawned workers: ``nice -n`` / ``ionice -c [-n]``.

Read from the job class's django-cronman attributes ``worker_cpu_priority``
(a :class:`~cronman_core.taxonomies.CPUPriority` value) and
``worker_io_priority`` (an :class:`~cronman_core.taxonomies.IOPriority` class,
or a ``(class, level)`` pair as in django-cronman). The wrapping happens in
``cronman_worker_command``, so it applies to the scheduler, ``resume`` and
task runs, never to a direct ``cron_worker run``. It is ``tryfirst`` so that
wrappers such as raven-cmd end up outside it. ``CRONMAN_NICE_CMD`` /
``CRONMAN_IONICE_CMD`` name the tools; an empty value switches one off.
"""

from __future__ import annotations

from typing import Any

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.spawners import WorkerCommand

conf.declare(
    conf.Setting("CRONMAN_NICE_CMD", "nice", conf.text(empty=True)),
    conf.Setting("CRONMAN_IONICE_CMD", "ionice", conf.text(empty=True)),
)


def _number(job_class: type, attribute: str, value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        raise UsageError(f"{job_class.__name__}.{attribute} is not a number: {value!r}") from None


def priority_args(job_class: type) -> list[str]:
    """The ``nice`` / ``ionice`` prefix for ``job_class`` (empty when it sets neither)."""
    cpu = getattr(job_class, "worker_cpu_priority", None)
    io = getattr(job_class, "worker_io_priority", None)
    nice = conf.get("CRONMAN_NICE_CMD")
    ionice = conf.get("CRONMAN_IONICE_CMD")
    args: list[str] = []
    if cpu is not None and nice:
        args += [nice, "-n", _number(job_class, "worker_cpu_priority", cpu)]
    if io is not None and ionice:
        io_class, level = io if isinstance(io, list | tuple) and len(io) == 2 else (io, None)
        args += [ionice, "-c", _number(job_class, "worker_io_priority", io_class)]
        if level is not None:
            args += ["-n", _number(job_class, "worker_io_priority", level)]
    return args


@hookimpl(tryfirst=True)
def cronman_worker_command(command: WorkerCommand) -> None:
    command.argv[:0] = priority_args(command.job_class)


__all__ = ["priority_args", "cronman_worker_command"]
