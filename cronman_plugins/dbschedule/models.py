"""``ScheduledJob``: one schedule entry in the database."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from cronman_core.checks import entry_problems
from cronman_core.plugins import get_plugin_manager
from cronman_core.schedule import ScheduleEntry

#: The form field that each ``manage.py check`` problem of an entry belongs to.
PROBLEM_FIELDS = {
    "cronman.E010": "time_spec", "cronman.W010": "time_spec", "cronman.E016": "options",
    "cronman.E011": "job_spec", "cronman.E012": "job_spec", "cronman.E013": "job_spec",
}
#: What decides when an entry fires: a change to any of them starts its fires anew (``active_since``).
SCHEDULE_FIELDS = ("time_spec", "job_spec", "options", "enabled")


class ScheduledJob(models.Model):
    """A ``CRON_JOBS`` line kept in the database: ``(time_spec, job_spec, options)``, switchable."""

    time_spec = models.CharField(
        max_length=200, help_text="Cron expression in the scheduler's time zone, e.g. <code>*/5 * * * *</code> "
                                  "or <code>@daily</code>.")
    job_spec = models.CharField(
        max_length=1000, help_text="Job name and params, e.g. <code>Report:daily,to=ops</code>.")
    options = models.JSONField(
        default=dict, blank=True,
        help_text='Run policy options as a JSON object, e.g. <code>{"overlap": "skip", "retries": 2}</code>.')
    enabled = models.BooleanField(default=True)
    note = models.TextField(blank=True)
    changed_by = models.CharField(max_length=150, blank=True, editable=False)
    changed_at = models.DateTimeField(auto_now=True)
    #: When the entry last came to be as it fires: it never fires for an instant at or before this.
    active_since = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("id",)
        verbose_name = "scheduled job"

    def __str__(self) -> str:
        return f"{self.time_spec} {self.job_spec}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        stored = type(self).objects.filter(pk=self.pk).values_list(*SCHEDULE_FIELDS).first() if self.pk else None
        if stored != tuple(getattr(self, name) for name in SCHEDULE_FIELDS):
            self.active_since = timezone.now()
        super().save(*args, **kwargs)

    @property
    def source(self) -> str:
        return f"database schedule #{self.pk}"

    def as_entry(self) -> ScheduleEntry:
        """The schedule entry of this row: fires after ``active_since`` only."""
        entry = ScheduleEntry.from_item((self.time_spec, self.job_spec, self.options), self.source)
        return dataclasses.replace(entry, not_before=self.active_since.timestamp())

    def clean(self) -> None:
        """The checks ``manage.py check`` makes of a ``CRON_JOBS`` line, as errors on the fields they concern."""
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Give the options as a JSON object: {\"name\": value, ...}."})
        entry = ScheduleEntry(self.time_spec.strip(), self.job_spec.strip(), options=tuple(self.options.items()))
        errors: dict[str, list[str]] = {}
        for problem in entry_problems(get_plugin_manager(), entry, "this entry"):
            errors.setdefault(PROBLEM_FIELDS.get(problem.id, "__all__"), []).append(
                f"{problem.message} ({problem.hint})")
        if errors:
            raise ValidationError(errors)
        self.time_spec, self.job_spec = entry.time_spec, entry.job_spec
