"""Admin > Cron > Cron Tasks: request runs (add permission) and follow their status."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Field, QuerySet
from django.http import HttpRequest

from cronman_core.info import job_info
from cronman_plugins.tasks.models import CronTask, allowed_task_jobs

#: What the add form asks for; everything else is written by the scheduler and the worker.
REQUEST_FIELDS = ("cron_job", "params", "start_at")
STATUS_FIELDS = (
    "status", "user", "created_at", "queued_at", "started_at", "finished_at",
    "host", "pid", "run_id", "resumed", "error",
)


def _job_choices() -> list[tuple[str, str]]:
    return [("", "---------")] + [
        (name, f"{name}{job_info(name)['signature']}") for name in allowed_task_jobs()
    ]


@admin.register(CronTask)
class CronTaskAdmin(admin.ModelAdmin):
    list_display = (
        "id", "cron_job", "params", "status", "start_at", "started_at", "finished_at",
        "host", "pid", "user",
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
        requested = []
        for task in queryset:
            try:
                new = CronTask.objects.run_now(task.cron_job, task.params, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{task}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                requested.append(str(new.pk))
        if requested:
            self.message_user(request, f"Requested Cron Task(s) {', '.join(requested)}.")
