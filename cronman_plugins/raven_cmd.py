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

from cronman_core import conf, hookimpl
from cronman_core.errors import UsageError
from cronman_core.spawners import WorkerCommand


def raven_cmd() -> list[str]:
    """The wrapper's argv prefix from ``CRONMAN_RAVEN_CMD`` ([] when unset)."""
    value = conf.get("CRONMAN_RAVEN_CMD")
    if not value:
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise UsageError(f"CRONMAN_RAVEN_CMD {value!r} is not a command line: {exc}") from None
    if isinstance(value, list | tuple) and all(isinstance(arg, str) for arg in value):
        return list(value)
    raise UsageError(
        f"CRONMAN_RAVEN_CMD must be a command line or a list of strings, got {value!r}"
    )


def plugin_enabled() -> bool:
    """On when ``CRONMAN_RAVEN_CMD`` is set; a malformed one stops the load."""
    return bool(raven_cmd())


@hookimpl(trylast=True)
def cronman_worker_command(command: WorkerCommand) -> None:
    prefix = raven_cmd()
    if prefix:
        command.argv = [*prefix, "-c", command.shell_line()]
