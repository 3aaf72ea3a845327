"""The jobs of the tasks plugin, registered through ``cronman_register_jobs``."""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.utils import timezone

from cronman_core import conf
from cronman_core.job import BaseCronJob
from cronman_plugins.tasks import runner
from cronman_plugins.tasks.models import OPEN_STATUSES, CronTask

#: Ended Cron Tasks older than this many days are deleted by CleanCronTasks.
conf.declare(conf.Setting("CRONMAN_TASKS_DAYS", 30.0, conf.seconds(unit="days")))


class RunCronTasks(BaseCronJob):
    """Spawn a worker for every pending Cron Task that is due."""

    #: Claims are atomic, so overlapping runs (or hosts) never start a task twice.
    lock_type = None

    def run(self) -> None:
        started = runner.start_due_tasks(timezone.now())
        self.logger.info("started %d Cron Task(s)", len(started))


class CleanCronTasks(BaseCronJob):
    """Delete ended Cron Tasks and run history older than their retention."""

    def run(self, days: str | None = None) -> None:
        """``days`` overrides ``CRONMAN_TASKS_DAYS`` (default 30) for Cron Tasks."""
        now = timezone.now()
        keep = float(days if days is not None else conf.get("CRONMAN_TASKS_DAYS"))
        deleted, _ = (
            CronTask.objects.exclude(status__in=OPEN_STATUSES)
            .filter(created_at__lt=now - dt.timedelta(days=keep))
            .delete()
        )
        self.logger.info("deleted %d Cron Task(s) older than %g day(s)", deleted, keep)
        if apps.is_installed("cronman_plugins.history"):
            from cronman_plugins.history.models import CronRun

            purged = CronRun.objects.purge(now)
            self.logger.info("deleted %d run(s) from the history", purged)
