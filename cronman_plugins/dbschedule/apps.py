from __future__ import annotations

from cronman_core.pluginapp import CronmanPluginAppConfig


class CronDbScheduleConfig(CronmanPluginAppConfig):
    name = "cronman_plugins.dbschedule"
    label = "cron_dbschedule"
    verbose_name = "Cron schedule"
    default_auto_field = "django.db.models.BigAutoField"
    cronman_plugin = "cronman_plugins.dbschedule.plugin"
