"""CPU and IO priority of spawned workers: ``nice -n`` / ``ionice -c [-n]``.

Read from the job class's django-cronman attributes ``worker_cpu_priority``
(a :class:`~cronman_core.taxonomies.CPUPriority` value) and
``worker_io_priority`` (an :class:`~cronman_core.taxonomies.IOPriority` class,
or a ``(class, level)`` pair as in django-cronman). The wrapping happens in
``cronman_worker_command``, so it applies to the scheduler, ``resume`` and
task runs, never to a direct ``cron_worker run``. It is ``tryfirst`` so that
wrappers such as raven-cmd end up outside it. ``CRONMAN_NICE_CMD`` /
``CRONMAN_IONICE_CMD`` name the tools; an empty value switches one off.
A forked worker (the prefork spawner) execs no tool: it applies the same
priorities to itself (:func:`apply_priority`, with ``os.nice`` and psutil's
``ioprio_set``) before the job starts.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.spawners import WorkerCommand

conf.declare(
    conf.Setting("CRONMAN_NICE_CMD", "nice", conf.text(empty=True)),
    conf.Setting("CRONMAN_IONICE_CMD", "ionice", conf.text(empty=True)),
)


def priorities(job_class: type) -> tuple[int | None, int | None, int | None]:
    """``(niceness increment, IO class, IO level)`` for ``job_class``; None where unset or switched off."""
    cpu = getattr(job_class, "worker_cpu_priority", None)
    io = getattr(job_class, "worker_io_priority", None)
    increment = io_class = level = None
    if cpu is not None and conf.get("CRONMAN_NICE_CMD"):
        increment = _number(job_class, "worker_cpu_priority", cpu)
    if io is not None and conf.get("CRONMAN_IONICE_CMD"):
        io_value, io_level = io if isinstance(io, list | tuple) and len(io) == 2 else (io, None)
        io_class = _number(job_class, "worker_io_priority", io_value)
        level = None if io_level is None else _number(job_class, "worker_io_priority", io_level)
    return increment, io_class, level


def _number(job_class: type, attribute: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{job_class.__name__}.{attribute} is not a number: {value!r}") from None


def priority_args(job_class: type) -> list[str]:
    """The ``nice`` / ``ionice`` prefix for ``job_class`` (empty when it sets neither)."""
    increment, io_class, level = priorities(job_class)
    args: list[str] = []
    if increment is not None:
        args += [conf.get("CRONMAN_NICE_CMD"), "-n", str(increment)]
    if io_class is not None:
        args += [conf.get("CRONMAN_IONICE_CMD"), "-c", str(io_class)]
        if level is not None:
            args += ["-n", str(level)]
    return args


def apply_priority(increment: int | None, io_class: int | None, level: int | None) -> None:
    """What ``nice -n`` and ``ionice -c [-n]`` do, done by this process to itself.

    As GNU ``nice`` does, a niceness this user may not set is a warning and
    the job runs all the same; so is an IO class it may not set.
    """
    import psutil

    log = logging.getLogger("cronman.plugins.priority")
    if increment is not None:
        try:
            os.nice(increment)
        except OSError as exc:
            log.warning("cannot set niceness %+d: %s", increment, exc.strerror)
    if io_class is not None:
        try:
            # The idle class takes no level (ionice ignores one; psutil refuses it).
            psutil.Process().ionice(io_class, level if level is not None and io_class in (1, 2) else None)
        except (OSError, ValueError, psutil.Error) as exc:
            log.warning("cannot set IO class %d: %s", io_class, exc)


@hookimpl(tryfirst=True)
def cronman_worker_command(command: WorkerCommand) -> None:
    values = priorities(command.job_class)
    command.wrap(priority_args(command.job_class), in_fork=functools.partial(apply_priority, *values))


__all__ = ["apply_priority", "priorities", "priority_args", "cronman_worker_command"]
