from __future__ import annotations

from django.apps import AppConfig


class CronHistoryConfig(AppConfig):
    name = "cronman_plugins.history"
    label = "cron_history"
    verbose_name = "Cron history"
    default_auto_field = "django.db.models.BigAutoField"
    cronman_plugin = "cronman_plugins.history.plugin"
