"""``CronRun``: one run of one job spec in one worker, as the notifier hooks saw it."""

from __future__ import annotations

import datetime as dt
import json

from django.db import models

from cronman_core import conf
from cronman_core.job import Progress
from cronman_core.records import RunRecord
from cronman_core.taxonomies import RunStatus

#: Runs that started more than this many days ago are deleted by CleanCronTasks.
conf.declare(
    conf.Setting("CRONMAN_HISTORY_DAYS", 30.0, conf.seconds(unit="days")),
    # A run's captured output (up to 64 KiB) is emptied this many days after it started (the row stays).
    conf.Setting("CRONMAN_HISTORY_OUTPUT_DAYS", 7.0, conf.seconds(unit="days")),
)


class CronRunStatus(models.TextChoices):
    STARTED = RunStatus.STARTED, "Running"
    SUCCEEDED = RunStatus.SUCCEEDED, "Succeeded"
    FAILED = RunStatus.FAILED, "Failed"
    KILLED = RunStatus.KILLED, "Killed"
    LOST_LOCK = RunStatus.LOST_LOCK, "Lost its lock"
    TIMEOUT = RunStatus.TIMEOUT, "Timed out"
    MISSED = RunStatus.MISSED, "Missed"
    SKIPPED = RunStatus.SKIPPED, "Skipped"


class CronRunQuerySet(models.QuerySet["CronRun"]):
    def close_vanished(self, now: dt.datetime) -> int:
        """End the runs still "running" whose worker is provably gone, on this host or (with a shared lock
        backend) another one: a Celery host that runs no scheduler, a host that died.

        A worker killed with SIGKILL (or crashed) reports nothing; its run is
        marked killed, without an end time, so the history never shows it
        running forever.
        """
        from cronman_core.control import runs_alive  # local: the app's models load before the plugins

        running = list(self.filter(status=CronRunStatus.STARTED))
        flags = runs_alive([run.run_record() for run in running])
        vanished = [run.pk for run, alive in zip(running, flags, strict=True) if alive is False]
        return self.filter(pk__in=vanished, status=CronRunStatus.STARTED).update(
            status=CronRunStatus.KILLED,
            exit_reason=f"worker vanished (noticed {now:%Y-%m-%d %H:%M:%S} UTC)",
        )

    def purge(self, now: dt.datetime) -> int:
        """Delete runs that started before ``CRONMAN_HISTORY_DAYS`` days ago, and empty the output of those
        before ``CRONMAN_HISTORY_OUTPUT_DAYS``; return how many runs were deleted."""
        deleted, _ = self.filter(started_at__lt=now - dt.timedelta(days=conf.get("CRONMAN_HISTORY_DAYS"))).delete()
        self.filter(started_at__lt=now - dt.timedelta(days=conf.get("CRONMAN_HISTORY_OUTPUT_DAYS"))).exclude(
            output="").update(output="")
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
    #: The last 64 KiB of what the run printed (stdout and stderr), where its output went to a file.
    output = models.TextField(blank=True, default="")
    #: The last progress the job reported (JSON of ``cronman_core.job.Progress``), kept as it ended.
    progress = models.TextField(blank=True, default="")
    resumed = models.BooleanField(default=False)
    #: Attempt ``attempt`` of ``attempts`` (the job's ``retries`` + 1).
    attempt = models.PositiveSmallIntegerField(default=1)
    attempts = models.PositiveSmallIntegerField(default=1)
    #: Start time of the worker process: proves a live PID is still that worker.
    process_started = models.FloatField(null=True, blank=True, editable=False)

    objects = CronRunQuerySet.as_manager()

    class Meta:
        verbose_name = "run"
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job_name", "started_at"], name="cron_run_job_started")]

    def __str__(self) -> str:
        return f"{self.job_spec} @ {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"

    def progress_text(self) -> str:
        """``42% (42 of 100), ETA 1 m 12 s: message`` (no ETA once the run ended); "" if it said nothing."""
        try:
            progress = Progress.from_dict(json.loads(self.progress)) if self.progress else None
        except ValueError:
            progress = None
        if progress is None:
            return ""
        return progress.describe(self.started_at, eta=self.status == CronRunStatus.STARTED)

    def run_record(self) -> RunRecord:
        """The worker as a run record, for ``verified_process``."""
        return RunRecord(
            key="",
            job_spec=self.job_spec,
            pid=self.pid,
            host=self.host,
            create_time=self.process_started,
            run_id=self.run_id,
            started_at=self.started_at.isoformat(),
        )


class CronJobPause(models.Model):
    """A paused job (``cron_scheduler pause``, ``pause_after_failures`` or the admin): nothing of it starts."""

    job_name = models.CharField(max_length=255, unique=True)
    reason = models.CharField(max_length=500)
    paused_by = models.CharField(max_length=255, help_text="user@host, a staff user, or auto")
    paused_at = models.DateTimeField()

    class Meta:
        verbose_name = "paused job"
        ordering = ["job_name"]

    def __str__(self) -> str:
        return f"{self.job_name} (paused: {self.reason})"


class CronJobStreak(models.Model):
    """Failed runs in a row of a job whose ``pause_after_failures`` is set (0 after a success)."""

    job_name = models.CharField(max_length=255, unique=True)
    failures = models.PositiveIntegerField(default=0)
