"""Starting a worker for a job spec in another process (scheduler, resume, tasks).

The core builds the command (``cron_worker run <spec>`` with the same Python,
project and settings), lets ``cronman_worker_command`` plugins rewrite it
(nice/ionice, raven-cmd ...) and hands it to the ``cronman_spawner`` plugin.
No shell is involved: the spec travels as one argv item.
"""

from __future__ import annotations

import os
import sys

from django.conf import settings

from cronman_core.backends import SpawnHandle, WorkerCommand
from cronman_core.datadir import get_data_dir
from cronman_core.errors import UsageError
from cronman_core.job import cron_job_registry
from cronman_core.jobspec import format_spec, parse_and_bind
from cronman_core.plugins import get_plugin_manager
from cronman_core.utils import RESUMED_ENV


def _django_entry() -> list[str]:
    """How this process was started: ``manage.py`` (absolute) or ``-m django``."""
    script = sys.argv[0] if sys.argv else ""
    if script.endswith("manage.py"):
        return [os.path.abspath(script)]
    return ["-m", "django"]


def _pythonpath() -> str:
    """A PYTHONPATH that lets the child import the same project as this process."""
    first = sys.path[0] if sys.path and sys.path[0] else os.getcwd()
    parts = [os.path.abspath(first)]
    inherited = os.environ.get("PYTHONPATH")
    if inherited:
        parts += [p for p in inherited.split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)


def build_worker_command(job_spec: str, *, resumed: bool = False) -> WorkerCommand:
    """The command that runs ``job_spec`` in a new worker, after plugins rewrote it.

    The spec is validated here (grammar, known job, params fit ``run()``) so a
    bad spec is a :class:`UsageError` for the caller, not a failing worker.
    """
    pm = get_plugin_manager()
    spec, job_class = parse_and_bind(job_spec, cron_job_registry)
    canonical = format_spec(spec)
    env = dict(os.environ)
    settings_module = settings.SETTINGS_MODULE or env.get("DJANGO_SETTINGS_MODULE", "")
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env["PYTHONPATH"] = _pythonpath()
    if resumed:
        env[RESUMED_ENV] = "1"
    else:
        env.pop(RESUMED_ENV, None)
    argv = [sys.executable, *_django_entry(), "cron_worker", "run", canonical]
    command = WorkerCommand(
        argv=argv, env=env, job_spec=canonical, job_class=job_class, resumed=resumed
    )
    pm.hook.cronman_worker_command(command=command)
    return command


def spawn_job(job_spec: str, *, resumed: bool = False) -> SpawnHandle:
    """Start a worker for ``job_spec`` through the ``cronman_spawner`` plugin."""
    command = build_worker_command(job_spec, resumed=resumed)
    spawner = get_plugin_manager().hook.cronman_spawner(data_dir=get_data_dir())
    if spawner is None:
        raise UsageError("no spawner: enable a plugin that implements cronman_spawner")
    handle: SpawnHandle = spawner.spawn(command)
    return handle
