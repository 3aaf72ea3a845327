"""The dbschedule plugin: enabled ``ScheduledJob`` rows join the schedule.

Entries are read at every use (each tick), so a change saved before a fire
instant applies to it. ``cronman_schedule_version`` (row count and latest
change) lets the daemon notice a change within
``CRONMAN_SCHEDULE_POLL_INTERVAL`` seconds and tick on it at once.

The entries last read are kept in ``<data dir>/dbschedule/entries.json``.
When the database cannot be read (down, a session killed), a tick uses that
copy with one warning instead of failing: ``CRON_JOBS`` and the database's
entries go on firing through a database outage.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from django.db import DatabaseError
from django.db.models import Count, Max

from cronman_core import hookimpl
from cronman_core.datadir import get_data_dir, private_subdir
from cronman_core.files import write_atomic
from cronman_core.schedule import ScheduleEntry
from cronman_plugins._db import MISSING_TABLE, log_database_error

logger = logging.getLogger("cronman.dbschedule")


def _snapshot_path() -> Path:
    return private_subdir(get_data_dir(), "dbschedule") / "entries.json"


def _as_json(entry: ScheduleEntry) -> dict[str, Any]:
    return {"time_spec": entry.time_spec, "job_spec": entry.job_spec, "options": dict(entry.options),
            "source": entry.source, "not_before": entry.not_before}


def _from_json(item: dict[str, Any]) -> ScheduleEntry:
    entry = ScheduleEntry.from_item((item["time_spec"], item["job_spec"], item["options"]), item["source"])
    return dataclasses.replace(entry, not_before=item["not_before"])


def database_entries() -> list[ScheduleEntry]:
    """The enabled rows as entries; the last copy read when the database cannot be read."""
    from cronman_plugins.dbschedule.models import ScheduledJob

    try:
        entries = [row.as_entry() for row in ScheduledJob.objects.filter(enabled=True)]
    except DatabaseError as exc:
        if MISSING_TABLE.search(str(exc)):  # not migrated yet (migrate's own checks read it first): no entry can exist
            _say_once("the database schedule has no table yet (run: python manage.py migrate): it has no entries")
            return []
        return _last_read(exc)
    _keep(entries)
    return entries


_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        logger.info(message)


def _keep(entries: list[ScheduleEntry]) -> None:
    data = json.dumps([_as_json(entry) for entry in entries], sort_keys=True).encode()
    path = _snapshot_path()
    try:
        if path.exists() and path.read_bytes() == data:
            return
        write_atomic(path, data, durable=False)
    except OSError as exc:
        logger.warning("cannot keep a copy of the database schedule in %s: %s", path, exc)


def _last_read(exc: DatabaseError) -> list[ScheduleEntry]:
    path = _snapshot_path()
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        entries = [_from_json(item) for item in json.loads(path.read_bytes())]
    except FileNotFoundError:
        logger.warning("cannot read the database schedule (%s), and no copy was kept: its entries are left out",
                       first_line)
        return []
    except (OSError, ValueError, KeyError, TypeError) as read_exc:
        logger.warning("cannot read the database schedule (%s), nor its copy %s (%s): its entries are left out",
                       first_line, path, read_exc)
        return []
    logger.warning("cannot read the database schedule (%s): using the %d entries read before", first_line,
                   len(entries))
    return entries


@hookimpl
def cronman_schedule_entries() -> list[ScheduleEntry]:
    return database_entries()


@hookimpl
def cronman_schedule_version() -> str | None:
    from cronman_plugins.dbschedule.models import ScheduledJob

    try:
        seen = ScheduledJob.objects.aggregate(rows=Count("id"), latest=Max("changed_at"))
    except DatabaseError as exc:
        log_database_error(logger, "looking for database schedule changes", exc)
        return None
    return f"{seen['rows']}:{seen['latest'] and seen['latest'].isoformat()}"
