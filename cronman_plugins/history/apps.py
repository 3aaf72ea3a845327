from __future__ import annotations

from cronman_core.pluginapp import CronmanPluginAppConfig


class CronHistoryConfig(CronmanPluginAppConfig):
    name = "cronman_plugins.history"
    label = "cron_history"
    verbose_name = "Cron history"
    default_auto_field = "django.db.models.BigAutoField"
    cronman_plugin = "cronman_plugins.history.plugin"
