"""``CronTask``: one requested run of a job, with django-cronman's field names."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, models, transaction
from django.utils import timezone

from cronman_core import conf
from cronman_core.errors import UsageError
from cronman_core.job import cron_job_registry
from cronman_core.jobspec import JobSpec, format_spec, parse
from cronman_core.plugins import get_plugin_manager
from cronman_core.records import RunRecord
from cronman_plugins._db import serialized

#: A second request of the same job and params within this many seconds returns the first.
conf.declare(
    conf.Setting("CRONMAN_TASK_DEDUP_WINDOW", 300.0, conf.seconds()),
    conf.Setting("ALLOWED_CRON_TASKS", (), conf.NAMES),
)


class CronTaskStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    QUEUED = "queued", "Queued"
    STARTED = "started", "Started"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


#: A task in one of these states has not ended yet.
OPEN_STATUSES = (CronTaskStatus.WAITING, CronTaskStatus.QUEUED, CronTaskStatus.STARTED)


def allowed_task_jobs() -> list[str]:
    """Job names that may run as tasks: ``run_as_task = True`` or in ``ALLOWED_CRON_TASKS``."""
    get_plugin_manager()  # plugins register their jobs on first use
    allowed = set(conf.get("ALLOWED_CRON_TASKS"))
    return [
        name
        for name, job_class in cron_job_registry.items()
        if getattr(job_class, "run_as_task", False) or name in allowed
    ]


def validate_task(cron_job: str, params: str) -> str:
    """Check a request with the job spec grammar and ``run()`` binding; return canonical params.

    Admin params get exactly the checks a job spec on the command line gets,
    so what a worker receives is what the form accepted.
    """
    if cron_job not in allowed_task_jobs():
        raise ValidationError(
            {"cron_job": f"{cron_job!r} is not a cron job that may run as a task."}
        )
    text = f"{cron_job}:{params}" if params else cron_job
    try:
        spec, _ = get_plugin_manager().resolve(text)
    except UsageError as exc:
        raise ValidationError({"params": str(exc)}) from exc
    return spec.params


class CronTaskQuerySet(models.QuerySet["CronTask"]):
    def run_now(
        self,
        cron_job: str,
        params: str | None = None,
        user: Any = None,
        now: dt.datetime | None = None,
    ) -> CronTask:
        """Request a run of ``cron_job`` now; the same open request made within
        ``CRONMAN_TASK_DEDUP_WINDOW`` seconds (default 300) is returned instead of a new one.
        """
        params = validate_task(cron_job, params or "")
        now = now or timezone.now()
        window = dt.timedelta(seconds=conf.get("CRONMAN_TASK_DEDUP_WINDOW"))
        # Two requests at once must not both find no open task and both create one.
        with serialized(self.db, f"cronman-task:{cron_job}:{params}", self.model._meta.db_table):
            existing = (
                self.filter(
                    cron_job=cron_job,
                    params=params,
                    status__in=OPEN_STATUSES,
                    created_at__gte=now - window,
                )
                .order_by("-created_at")
                .first()
            )
            if existing is not None:
                return existing
            return self.create(cron_job=cron_job, params=params, start_at=now, user=user)

    def due(self, now: dt.datetime) -> CronTaskQuerySet:
        return self.filter(status=CronTaskStatus.WAITING, start_at__lte=now).order_by(
            "start_at", "pk"
        )

    def claim_due(self, now: dt.datetime) -> list[CronTask]:
        """Move every due waiting task to queued and return those this caller won.

        Two claimers (processes, hosts) never get the same task: PostgreSQL
        and other databases with ``SKIP LOCKED`` lock the rows; elsewhere each
        row is claimed by a conditional ``UPDATE ... WHERE status='waiting'``.
        """
        connection = connections[self.db]
        if connection.features.has_select_for_update_skip_locked:
            with transaction.atomic(using=self.db):
                tasks = list(self.due(now).select_for_update(skip_locked=True))
                self.filter(pk__in=[task.pk for task in tasks]).update(
                    status=CronTaskStatus.QUEUED, queued_at=now
                )
        else:
            tasks = [
                task
                for task in self.due(now)
                if self.filter(pk=task.pk, status=CronTaskStatus.WAITING).update(
                    status=CronTaskStatus.QUEUED, queued_at=now
                )
            ]
        for task in tasks:
            task.status, task.queued_at = CronTaskStatus.QUEUED, now
        return tasks


class CronTask(models.Model):
    """A run of ``cron_job`` with ``params`` requested for ``start_at``.

    Statuses: waiting → queued (claimed, worker being spawned) → started
    (the worker took its lock) → finished / failed.
    """

    cron_job = models.CharField(max_length=255, db_index=True)
    params = models.CharField(
        max_length=1000,
        blank=True,
        default="",
        help_text='Positional values first, then key=value, e.g. "big world",sleep=5',
    )
    start_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=CronTaskStatus.choices, default=CronTaskStatus.WAITING
    )
    pid = models.PositiveIntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    run_id = models.CharField(max_length=32, blank=True, default="")
    #: Start time of the worker process: proves a live PID is still that worker.
    process_started = models.FloatField(null=True, blank=True, editable=False)
    resumed = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")

    objects = CronTaskQuerySet.as_manager()

    class Meta:
        verbose_name = "Cron Task"
        verbose_name_plural = "Cron Tasks"
        ordering = ["-start_at", "-pk"]
        indexes = [models.Index(fields=["status", "start_at"], name="cron_task_status_start")]

    def __str__(self) -> str:
        return f"{self.cron_job}:{self.params} ({self.status})" if self.params else (
            f"{self.cron_job} ({self.status})"
        )

    @property
    def spec(self) -> JobSpec:
        return parse(f"{self.cron_job}:{self.params}" if self.params else self.cron_job)

    @property
    def job_spec(self) -> str:
        return format_spec(self.spec)

    def clean(self) -> None:
        if self.cron_job:
            self.params = validate_task(self.cron_job, self.params or "")

    def run_record(self) -> RunRecord:
        """The worker as a run record, to prove with ``verified_process`` that it still lives."""
        return RunRecord(
            key="",
            job_spec=self.job_spec,
            pid=self.pid or 0,
            host=self.host,
            create_time=self.process_started,
            run_id=self.run_id,
            started_at=self.started_at.isoformat() if self.started_at else "",
        )
