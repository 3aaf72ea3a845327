from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class CronmanCoreConfig(AppConfig):
    """Discovers ``cron_jobs`` / ``cron_job`` modules and registers system checks."""

    name = "cronman_core"
    verbose_name = "cronman"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Local, as Django wants of ready(): the app registry is complete only now.
        from cronman_core import checks  # noqa: F401  (registers the checks)

        autodiscover_modules("cron_jobs", "cron_job")
