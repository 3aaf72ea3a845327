from __future__ import annotations

from django.apps import AppConfig


class CronmanRedisConfig(AppConfig):
    """Provides ``cron_remote_manager``; loads the plugin without a ``CRONMAN_PLUGINS`` line."""

    name = "cronman_plugins.redis"
    label = "cronman_redis"
    verbose_name = "Cron remote control (Redis)"
    cronman_plugin = "cronman_plugins.redis.plugin"
