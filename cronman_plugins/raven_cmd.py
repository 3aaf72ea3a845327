"""Run spawned workers through ``CRONMAN_RAVEN_CMD`` (django-cronman's raven-cmd wrapping).

On whenever ``CRONMAN_RAVEN_CMD`` is set, with or without
``CRONMAN_SENTRY_ENABLED`` (a separate module from :mod:`cronman_plugins.sentry`
for that reason). A spawned worker's ``python manage.py cron_worker run
Foo:bar=1`` becomes ``<CRONMAN_RAVEN_CMD> -c "<command>"``, where the command
is one shell line with every argument quoted (:func:`shlex.join`), so no job
spec can inject shell code into the wrapper's shell. The setting is a
command line (split with :func:`shlex.split`) or a list of arguments.

The wrapper is the outermost one (``trylast``): it wraps nice / ionice too.
"""

from __future__ import annotations

import shlex
from typing import Any

from cronman_core import conf, hookimpl
from cronman_core.spawners import WorkerCommand


def _argv(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return shlex.split(value)  # ValueError for an unclosed quote
    if isinstance(value, list | tuple) and all(isinstance(arg, str) for arg in value):
        return list(value)
    raise TypeError


conf.declare(conf.Setting(
    "CRONMAN_RAVEN_CMD", [], conf.Kind("a command line or a list of strings, or None", _argv)
))


def raven_cmd() -> list[str]:
    """The wrapper's argv prefix from ``CRONMAN_RAVEN_CMD`` ([] when unset)."""
    argv: list[str] = conf.get("CRONMAN_RAVEN_CMD")
    return argv


def plugin_enabled() -> bool:
    """On when ``CRONMAN_RAVEN_CMD`` is set; a malformed one stops the load."""
    return bool(raven_cmd())


@hookimpl(trylast=True)
def cronman_worker_command(command: WorkerCommand) -> None:
    prefix = raven_cmd()
    if prefix:
        command.argv = [*prefix, "-c", command.shell_line()]
