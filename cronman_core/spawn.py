"""Starting a worker for a job spec in another process (scheduler, resume, tasks).

The core builds the command (``cron_worker run <spec>`` with the same Python,
project and settings), lets ``cronman_worker_command`` plugins rewrite it
(nice/ionice, raven-cmd ...) and hands it to the ``cronman_spawner`` plugin.
No shell is involved: the spec travels as one argv item.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from django.conf import settings

from cronman_core.jobspec import format_spec
from cronman_core.plugins import get_plugin_manager
from cronman_core.spawners import SpawnHandle, WorkerCommand
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


def worker_env(env: Mapping[str, str] | None = None, *, resumed: bool = False) -> dict[str, str]:
    """This process's environment for a worker of the same project, plus ``env`` (a requested run's)."""
    worker_env = {**os.environ, **(env or {})}
    settings_module = settings.SETTINGS_MODULE or worker_env.get("DJANGO_SETTINGS_MODULE", "")
    worker_env["DJANGO_SETTINGS_MODULE"] = settings_module
    worker_env["PYTHONPATH"] = _pythonpath()
    if resumed:
        worker_env[RESUMED_ENV] = "1"
    else:
        worker_env.pop(RESUMED_ENV, None)
    return worker_env


def build_worker_command(
    job_spec: str, *, resumed: bool = False, env: Mapping[str, str] | None = None
) -> WorkerCommand:
    """The command that runs ``job_spec`` in a new worker, after plugins rewrote it.

    The spec is validated here (grammar, known job, params fit ``run()``) so a
    bad spec is a :class:`UsageError` for the caller, not a failing worker.
    ``env`` is added to this process's environment (a requested run's).
    """
    pm = get_plugin_manager()
    spec, job_class = pm.resolve(job_spec)
    canonical = format_spec(spec)
    argv = [sys.executable, *_django_entry(), "cron_worker", "run", canonical]
    command = WorkerCommand(
        argv=argv, env=worker_env(env, resumed=resumed), job_spec=canonical, job_class=job_class, resumed=resumed
    )
    pm.worker_command(command)
    return command


def spawn_job(
    job_spec: str, *, resumed: bool = False, env: Mapping[str, str] | None = None, long_lived: bool = False
) -> SpawnHandle:
    """Start a worker for ``job_spec`` through the ``cronman_spawner`` plugin.

    ``long_lived``: the caller spawns again and again (the scheduler daemon),
    so a spawner may keep a warm process for it.
    """
    command = build_worker_command(job_spec, resumed=resumed, env=env)
    return get_plugin_manager().spawner(long_lived=long_lived).spawn(command)
