"""System checks (``manage.py check``): ids ``cronman.E0xx``."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from cronman_core.errors import DataDirError, PluginError


@register("cronman")
def check_plugins_and_data_dir(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Plugins that fail to load and an unusable data dir stop ``check``."""
    from cronman_core.datadir import get_data_dir
    from cronman_core.plugins import get_plugin_manager

    errors: list[Error] = []
    try:
        get_plugin_manager()
    except PluginError as exc:
        errors.append(Error(str(exc), hint="Fix or remove the plugin.", id="cronman.E001"))
    try:
        get_data_dir()
    except DataDirError as exc:
        errors.append(
            Error(
                str(exc),
                hint="Set CRONMAN_DATA_DIR to a directory owned by this user with mode 0700.",
                id="cronman.E002",
            )
        )
    return errors


@register("cronman")
def check_schedule(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Schedule entries that could never run (cronman.E010-E015, W010), before any tick."""
    from cronman_core.plugins import get_plugin_manager
    from cronman_core.scheduler import schedule_problems

    try:
        pm = get_plugin_manager()
    except PluginError:
        return []  # reported as cronman.E001
    return [
        (CheckWarning if ".W" in p.id else Error)(p.message, hint=p.hint, id=p.id)
        for p in schedule_problems(pm)
    ]
