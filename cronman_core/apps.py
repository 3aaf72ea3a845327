from __future__ import annotations

import logging

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
        default_logging()


#: How cronman's messages look when the project's LOGGING says nothing of them.
DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_logging() -> None:
    """Give the ``cronman`` loggers a level and a handler if the project's LOGGING gives none.

    Without one, Python's last-resort handler prints warnings with no level,
    time or source, and drops the INFO lines an operator needs (what the
    scheduler started, the daemon's start-up line). A project that
    configures ``cronman`` or the root logger keeps exactly what it set.
    """
    logger = logging.getLogger("cronman")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(DEFAULT_LOG_FORMAT))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
