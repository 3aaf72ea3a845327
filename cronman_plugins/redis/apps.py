from __future__ import annotations

from cronman_core.pluginapp import CronmanPluginAppConfig


class CronmanRedisConfig(CronmanPluginAppConfig):
    """Provides ``cron_remote_manager``; being installed switches the built-in ``redis`` plugin on."""

    name = "cronman_plugins.redis"
    label = "cronman_redis"
    verbose_name = "Cron remote control (Redis)"
