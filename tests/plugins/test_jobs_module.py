"""``cronman_plugins.jobs_module``: CRON_JOBS of CRONMAN_JOBS_MODULE as schedule entries."""

from __future__ import annotations

import pytest

from cronman_core.errors import UsageError
from cronman_core.schedule import ScheduleEntry
from cronman_plugins.jobs_module import jobs_module_entries


def test_no_setting_no_entries(settings):
    settings.CRONMAN_JOBS_MODULE = None
    assert list(jobs_module_entries()) == []


def test_entries_name_their_list_and_index_like_a_tuple(schedule_module, settings):
    schedule_module('CRON_JOBS = (("@hourly", "Noop"), ("15 5 * * *", "Hello:world"))\n')
    entries = jobs_module_entries()
    source = f"{settings.CRONMAN_JOBS_MODULE}.CRON_JOBS"
    assert len(entries) == 2
    assert entries[1] == ScheduleEntry("15 5 * * *", "Hello:world", source)
    assert entries[:1] == [ScheduleEntry("@hourly", "Noop", source)]
    assert list(entries) == [entries[0], entries[1]]  # re-iterable: made on access


@pytest.mark.parametrize(
    "text, message",
    [
        ("raise RuntimeError('broken module')\n", "cannot be imported: broken module"),
        ("JOBS = ()\n", "has no CRON_JOBS attribute"),
        ("CRON_JOBS = (('@hourly', 5),)\n",
         "[0]: not a (time spec, job spec) pair or a (time spec, job spec, options dict) triple"),
        ("CRON_JOBS = (('@hourly', 'Noop', ['x']),)\n", "[0]: not a (time spec, job spec) pair"),
    ],
)
def test_a_module_that_cannot_give_entries_is_one_usage_error(schedule_module, text, message):
    schedule_module(text)
    with pytest.raises(UsageError) as info:
        jobs_module_entries()
    assert message in str(info.value) and "\n" not in str(info.value)
