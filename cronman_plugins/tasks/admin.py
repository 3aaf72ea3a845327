"""Admin > Cron > Cron Tasks: request runs (add permission) and follow their status."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Field, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from cronman_core.info import job_info
from cronman_core.job import format_seconds
from cronman_plugins._db import admin_time
from cronman_plugins.tasks.models import CronTask, allowed_task_jobs

#: What the add form asks for; everything else is written by the scheduler and the worker.
REQUEST_FIELDS = ("cron_job", "params", "start_at")
STATUS_FIELDS = (
    "status", "user", "created_at_display", "queued_at_display", "started_at_display", "finished_at_display",
    "host", "pid", "run_link", "resumed", "error",
)



def _job_choices() -> list[tuple[str, str]]:
    return [("", "---------")] + [
        (name, f"{name}{job_info(name)['signature']}") for name in allowed_task_jobs()
    ]


@admin.register(CronTask)
class CronTaskAdmin(admin.ModelAdmin):
    list_display = (
        "id", "cron_job", "params", "status", "start_at_display", "duration_display", "host", "user", "error_display",
    )
    list_display_links = ("id", "cron_job")
    list_filter = ("status", "cron_job", "start_at", "created_at")
    search_fields = ("cron_job", "params", "host", "error", "user__username")
    date_hierarchy = "start_at"
    actions = ["run_again"]

    def formfield_for_dbfield(self, db_field: Field, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "cron_job":
            return forms.ChoiceField(
                choices=_job_choices,
                label="Cron job",
                help_text="Jobs with run_as_task = True or listed in ALLOWED_CRON_TASKS.",
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Start at", ordering="start_at")
    def start_at_display(self, obj: CronTask) -> str:
        return admin_time(obj.start_at)

    @admin.display(description="Created", ordering="created_at")
    def created_at_display(self, obj: CronTask) -> str:
        return admin_time(obj.created_at)

    @admin.display(description="Queued", ordering="queued_at")
    def queued_at_display(self, obj: CronTask) -> str:
        return admin_time(obj.queued_at)

    @admin.display(description="Started", ordering="started_at")
    def started_at_display(self, obj: CronTask) -> str:
        return admin_time(obj.started_at)

    @admin.display(description="Finished", ordering="finished_at")
    def finished_at_display(self, obj: CronTask) -> str:
        return admin_time(obj.finished_at)

    @admin.display(description="Duration")
    def duration_display(self, obj: CronTask) -> str:
        if obj.started_at is None or obj.finished_at is None:
            return "-"
        return format_seconds((obj.finished_at - obj.started_at).total_seconds())

    @admin.display(description="Error")
    def error_display(self, obj: CronTask) -> str:
        text = obj.error.strip().splitlines()[-1] if obj.error.strip() else ""
        return text if len(text) <= 50 else text[:49] + "…"

    @admin.display(description="Run")
    def run_link(self, obj: CronTask) -> str:
        """The run history row of the task's run (where the history app is installed)."""
        if not obj.run_id or not apps.is_installed("cronman_plugins.history"):
            return "-"
        from cronman_plugins.history.models import CronRun  # local: the history app is optional

        run = CronRun.objects.filter(run_id=obj.run_id).only("pk").first()
        if run is None:
            return "-"
        return format_html('<a href="{}">run {}</a>', reverse("admin:cron_history_cronrun_change", args=[run.pk]),
                           obj.run_id[:8])

    def has_change_permission(self, request: HttpRequest, obj: CronTask | None = None) -> bool:
        # A request is history once made: its page is read-only, without Save buttons ("Run again" makes a new one).
        return obj is None and super().has_change_permission(request, obj)

    def get_fields(self, request: HttpRequest, obj: CronTask | None = None) -> Any:
        return REQUEST_FIELDS if obj is None else REQUEST_FIELDS + STATUS_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: CronTask | None = None) -> Any:
        # A request is history once made: "Run again" makes a new one.
        return () if obj is None else REQUEST_FIELDS + STATUS_FIELDS

    def save_model(self, request: HttpRequest, obj: CronTask, form: Any, change: bool) -> None:
        if not change:
            obj.user = cast(Any, request.user)  # admin views only run for a logged-in staff user
        super().save_model(request, obj, form, change)

    @admin.action(description="Run again now", permissions=["add"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[CronTask]) -> None:
        requested, open_ones = [], []
        for task in queryset:
            before = timezone.now()
            try:
                new = CronTask.objects.run_now(task.cron_job, task.params, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{task}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                if new.created_at < before:  # the same request is still open: it was returned, not repeated
                    open_ones.append(f"{new.pk} ({new.job_spec}, {new.get_status_display().lower()} since "
                                     f"{admin_time(new.created_at)})")
                else:
                    requested.append(str(new.pk))
        if requested:
            self.message_user(request, f"Requested Cron Task(s) {', '.join(requested)}.")
        if open_ones:
            self.message_user(request, f"Not requested again: already open as Cron Task(s) {'; '.join(open_ones)}.",
                              messages.WARNING)
