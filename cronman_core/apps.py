from __future__ import annotations

from django.apps import AppConfig


class CronmanCoreConfig(AppConfig):
    """Discovers ``cron_jobs`` / ``cron_job`` modules and registers system checks."""

    name = "cronman_core"
    verbose_name = "cronman"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from cronman_core import checks  # noqa: F401  (registers the checks)

        autodiscover_modules("cron_jobs", "cron_job")
