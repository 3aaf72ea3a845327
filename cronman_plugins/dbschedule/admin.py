"""Admin > Cron schedule > Scheduled jobs: add, edit, enable and disable entries; see who changed what."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from cronman_core.cronexpr import describe
from cronman_plugins._db import admin_time
from cronman_plugins.dbschedule.models import ScheduledJob


@admin.register(ScheduledJob)
class ScheduledJobAdmin(admin.ModelAdmin):
    list_display = ("id", "time_spec", "in_words", "job_spec", "enabled", "note", "changed_by", "changed_at_display")
    list_display_links = ("id", "time_spec")
    list_filter = ("enabled",)
    search_fields = ("time_spec", "job_spec", "note", "changed_by")
    fields = ("time_spec", "job_spec", "options", "enabled", "note", "changed_by", "changed_at_display",
              "active_since_display")
    readonly_fields = ("changed_by", "changed_at_display", "active_since_display")
    actions = ["enable", "disable"]

    @admin.display(description="In words")
    def in_words(self, obj: ScheduledJob) -> str:
        return describe(obj.time_spec) or "-"

    @admin.display(description="Changed at", ordering="changed_at")
    def changed_at_display(self, obj: ScheduledJob) -> str:
        return admin_time(obj.changed_at)

    @admin.display(description="Fires after")
    def active_since_display(self, obj: ScheduledJob) -> str:
        return admin_time(obj.active_since)

    def save_model(self, request: HttpRequest, obj: ScheduledJob, form: ModelForm, change: bool) -> None:
        obj.changed_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    def _switch(self, request: HttpRequest, queryset: QuerySet[ScheduledJob], enabled: bool) -> None:
        changed = 0
        for row in queryset.filter(enabled=not enabled):
            row.enabled, row.changed_by = enabled, request.user.get_username()
            row.save()
            changed += 1
        self.message_user(request, f"{changed} scheduled job(s) {'enabled' if enabled else 'disabled'}.",
                          messages.SUCCESS)

    @admin.action(description="Enable the selected scheduled jobs", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ScheduledJob]) -> None:
        self._switch(request, queryset, True)

    @admin.action(description="Disable the selected scheduled jobs", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[ScheduledJob]) -> None:
        self._switch(request, queryset, False)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"options": {}, **super().get_changeform_initial_data(request)}
