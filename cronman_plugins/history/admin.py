"""Admin > Cron history > Runs (a read-only list and a 24-hour timeline page) and Paused jobs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from cronman_core.errors import UnknownJobError
from cronman_core.job import cron_job_registry, format_seconds
from cronman_core.pauses import Pause, now_iso
from cronman_plugins._db import admin_time
from cronman_plugins.history.models import CronJobPause, CronRun
from cronman_plugins.history.pauses import DatabasePauseStore
from cronman_plugins.history.timeline import WINDOWS, build_timeline


@admin.register(CronRun)
class CronRunAdmin(admin.ModelAdmin):
    list_display = (
        "job_spec", "status_display", "started_display", "duration_display", "progress_display", "host",
        "reason_display",
    )
    list_filter = ("status", "job_name", "host", "started_at")
    search_fields = ("job_spec", "run_id", "host", "error", "exit_reason")
    date_hierarchy = "started_at"
    readonly_fields = [{"output": "output_display", "progress": "progress_display"}.get(f.name, f.name)
                       for f in CronRun._meta.fields if f.name != "id"] + ["task_link"]

    @admin.display(description="Started", ordering="started_at")
    def started_display(self, obj: CronRun) -> str:
        return admin_time(obj.started_at)

    @admin.display(description="Duration", ordering="duration")
    def duration_display(self, obj: CronRun) -> str:
        return "-" if obj.duration is None else format_seconds(obj.duration)

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: CronRun) -> str:
        status = obj.get_status_display()
        return f"{status} ({obj.attempt} of {obj.attempts})" if obj.attempts > 1 else status

    @admin.display(description="Why it ended")
    def reason_display(self, obj: CronRun) -> str:
        text = obj.exit_reason or (obj.error.strip().splitlines()[-1] if obj.error.strip() else "")
        return text if len(text) <= 60 else text[:59] + "…"

    @admin.display(description="Cron Task")
    def task_link(self, obj: CronRun) -> str:
        """The admin-requested task this run ran, if any (and if the tasks app is installed)."""
        if not apps.is_installed("cronman_plugins.tasks"):
            return "-"
        from cronman_plugins.tasks.models import CronTask  # local: the tasks app is optional

        task = CronTask.objects.filter(run_id=obj.run_id).only("pk").first()
        if task is None:
            return "-"
        return format_html('<a href="{}">Cron Task {}</a>', reverse("admin:cron_crontask_change", args=[task.pk]),
                           task.pk)

    @admin.display(description="Output (its last 64 KiB)")
    def output_display(self, obj: CronRun) -> str:
        if not obj.output:
            return "-"
        return format_html('<pre class="cronman-output" style="white-space: pre-wrap; max-height: 40em; '
                           'overflow: auto">{}</pre>', obj.output)

    @admin.display(description="Progress")
    def progress_display(self, obj: CronRun) -> str:
        return obj.progress_text() or "-"

    @admin.display(description="Attempt")
    def attempt_display(self, obj: CronRun) -> str:
        return f"{obj.attempt} of {obj.attempts}" if obj.attempts > 1 else ""

    # Rows are written by workers only.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        timeline = path(
            "timeline/",
            self.admin_site.admin_view(self.timeline_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_timeline",
        )
        return [timeline, *super().get_urls()]

    def timeline_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        window = request.GET.get("window", "24h")
        if window not in WINDOWS:
            window = "24h"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Cron runs: last {window}",
            "timeline": build_timeline(timezone.now(), window),
            "windows": list(WINDOWS),
            "window": window,
        }
        return TemplateResponse(request, "admin/cron_history/cronrun/timeline.html", context)


class CronJobPauseForm(forms.ModelForm):
    class Meta:
        model = CronJobPause
        fields = ["job_name", "reason"]

    def clean_job_name(self) -> str:
        name = str(self.cleaned_data["job_name"]).strip()
        try:
            cron_job_registry.get(name)
        except UnknownJobError as exc:
            raise forms.ValidationError(str(exc)) from None
        return name


@admin.register(CronJobPause)
class CronJobPauseAdmin(admin.ModelAdmin):
    """Paused jobs: pause one (add), unpause with the action (needs the delete permission)."""

    form = CronJobPauseForm
    list_display = ("job_name", "reason", "paused_by", "paused_at")
    search_fields = ("job_name", "reason", "paused_by")
    actions = ["unpause"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # unpause resets the failure streak too
        return actions

    def save_model(self, request: HttpRequest, obj: CronJobPause, form: Any, change: bool) -> None:
        user = request.user.get_username() if request.user.is_authenticated else "?"
        pause = Pause(obj.job_name, obj.reason, f"{user} (admin)", now_iso())
        DatabasePauseStore().pause(pause)
        obj.pk = CronJobPause.objects.get(job_name=obj.job_name).pk

    @admin.action(description="Unpause the selected jobs", permissions=["delete"])
    def unpause(self, request: HttpRequest, queryset: Any) -> None:
        store = DatabasePauseStore()
        names = [row.job_name for row in queryset]
        for name in names:
            store.unpause(name)
        self.message_user(request, f"Unpaused: {', '.join(names)}.")
