"""The schedule: entries merged from every plugin, defaults that yield, misfire grace."""

from __future__ import annotations

import pytest

from cronman_core.errors import UsageError
from cronman_core.job import BaseCronJob, cron_job_registry
from cronman_core.plugins import CronmanPluginManager
from cronman_core.schedule import ScheduleEntry, grace_of
from tests.support.schedule import ScheduleSource


def entry(time_spec: str, job_spec: str = "Noop", **kwargs: object) -> ScheduleEntry:
    return ScheduleEntry(time_spec, job_spec, **kwargs)  # type: ignore[arg-type]


def test_default_entry_yields_to_another_entry_for_the_same_job() -> None:
    pm = CronmanPluginManager()
    pm.register(ScheduleSource([ScheduleEntry("*/4 * * * *", "Tasks", default=True),
                         ScheduleEntry("*/9 * * * *", "Other", default=True)]))
    pm.register(ScheduleSource([("0 * * * *", "Tasks:fast=1"), ("@daily", "Noop")]))
    found = {(e.time_spec, e.job_spec) for e in pm.schedule()}
    assert found == {("*/9 * * * *", "Other"), ("0 * * * *", "Tasks:fast=1"), ("@daily", "Noop")}


def test_malformed_plugin_entry_is_a_usage_error() -> None:
    pm = CronmanPluginManager()
    pm.register(ScheduleSource([("* * * * *",)]))
    with pytest.raises(UsageError, match="not a \\(time spec, job spec\\) pair"):
        list(pm.schedule())


def test_grace_per_entry_per_job_class_and_setting(settings) -> None:
    class Patient(BaseCronJob):
        misfire_grace = 7200

        def run(self) -> None:
            pass

    cron_job_registry.register(Patient, name="PatientTestJob")
    try:
        settings.CRONMAN_MISFIRE_GRACE = 60
        assert grace_of(entry("* * * * *", "Noop")) == 60
        assert grace_of(entry("* * * * *", "PatientTestJob:x")) == 7200
        assert grace_of(entry("* * * * *", "PatientTestJob", misfire_grace=5)) == 5
    finally:
        cron_job_registry.unregister("PatientTestJob")
