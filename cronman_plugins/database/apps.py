from __future__ import annotations

from cronman_core.pluginapp import CronmanPluginAppConfig


class CronmanDatabaseConfig(CronmanPluginAppConfig):
    """Its tables hold the run records, fencing counters, fire claims and stop requests."""

    name = "cronman_plugins.database"
    label = "cronman_database"
    verbose_name = "Cron locks (database)"
    default_auto_field = "django.db.models.BigAutoField"
    cronman_plugin = "cronman_plugins.database.plugin"

    def ready(self) -> None:
        super().ready()
        from cronman_plugins.database import checks  # noqa: F401  (registers the checks)
