"""The base class of cronman's plugin apps (Django apps that are plugins: tasks, history, redis)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.core.checks import Error, register


class CronmanPluginAppConfig(AppConfig):
    """Base of the plugin apps (tasks, history, redis, third-party ones): they need ``cronman_core`` too.

    Without it the commands do not exist ("Unknown command: 'cron_worker'")
    and nothing schedules; ``manage.py check`` says so (cronman.E018).
    """

    # Django picks the AppConfig subclass of an app's apps module whose ``default`` is true:
    # not this base, imported there, but each subclass (unless it says otherwise).
    default = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.default = cls.__dict__.get("default", True)

    def ready(self) -> None:
        register(check_core_installed, "cronman")


def check_core_installed(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """cronman.E018: a cronman plugin app is installed without ``cronman_core``."""
    if apps.is_installed("cronman_core"):
        return []
    plugins = sorted(c.name for c in apps.get_app_configs() if isinstance(c, CronmanPluginAppConfig))
    return [Error(
        f"{', '.join(plugins)} {'is' if len(plugins) == 1 else 'are'} installed without cronman_core: "
        "the cron_scheduler and cron_worker commands and every job's schedule are missing",
        hint='Add "cronman_core" to INSTALLED_APPS.',
        id="cronman.E018",
    )]
