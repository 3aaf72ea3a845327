"""System checks of the tasks app (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Warning, register

from cronman_core import conf
from cronman_core.errors import CronmanError


@register("cronman")
def check_allowed_cron_tasks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A name in ``ALLOWED_CRON_TASKS`` that is no job is most likely a typo."""
    from cronman_core.job import cron_job_registry
    from cronman_core.plugins import get_plugin_manager

    try:
        get_plugin_manager()  # plugins register their jobs; a broken plugin is cronman.E001
    except CronmanError:
        return []
    return [
        Warning(
            f"ALLOWED_CRON_TASKS names {name!r}, which is not a registered cron job",
            hint="Fix the name, or register the job; `manage.py cron_worker info` lists them.",
            id="cronman.W020",
        )
        for name in conf.get("ALLOWED_CRON_TASKS") or ()
        if name not in cron_job_registry
    ]
