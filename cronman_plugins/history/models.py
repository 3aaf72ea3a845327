"""``CronRun``: one run of one job spec in one worker, as the notifier hooks saw it."""

from __future__ import annotations

import datetime as dt

from django.db import models

from cronman_core import conf
from cronman_core.taxonomies import RunStatus

#: Runs that started more than this many days ago are deleted by CleanCronTasks.
DEFAULT_HISTORY_DAYS = 30


class CronRunStatus(models.TextChoices):
    STARTED = RunStatus.STARTED, "Running"
    SUCCEEDED = RunStatus.SUCCEEDED, "Succeeded"
    FAILED = RunStatus.FAILED, "Failed"
    KILLED = RunStatus.KILLED, "Killed"


class CronRunQuerySet(models.QuerySet["CronRun"]):
    def purge(self, now: dt.datetime) -> int:
        """Delete runs that started before ``CRONMAN_HISTORY_DAYS`` days ago; return how many."""
        days = float(conf.get("CRONMAN_HISTORY_DAYS", DEFAULT_HISTORY_DAYS))
        deleted, _ = self.filter(started_at__lt=now - dt.timedelta(days=days)).delete()
        return deleted


class CronRun(models.Model):
    run_id = models.CharField(max_length=32, unique=True)
    job_name = models.CharField(max_length=255, db_index=True)
    job_spec = models.CharField(max_length=1500)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    status = models.CharField(max_length=16, choices=CronRunStatus.choices)
    exit_reason = models.CharField(max_length=255, blank=True, default="")
    error = models.TextField(blank=True, default="")
    resumed = models.BooleanField(default=False)

    objects = CronRunQuerySet.as_manager()

    class Meta:
        verbose_name = "run"
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job_name", "started_at"], name="cron_run_job_started")]

    def __str__(self) -> str:
        return f"{self.job_spec} @ {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"
