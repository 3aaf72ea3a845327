from __future__ import annotations

from cronman_core.pluginapp import CronmanPluginAppConfig


class CronTasksConfig(CronmanPluginAppConfig):
    """The label ``cron`` keeps django-cronman's "Admin > Cron > Cron Tasks"."""

    name = "cronman_plugins.tasks"
    label = "cron"
    verbose_name = "Cron"
    default_auto_field = "django.db.models.BigAutoField"
    cronman_plugin = "cronman_plugins.tasks.plugin"

    def ready(self) -> None:
        super().ready()
        from cronman_plugins.tasks import checks  # noqa: F401  (registers the checks)
