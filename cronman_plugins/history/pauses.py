"""Paused jobs in the database: every scheduler host and the admin see the same pauses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F

from cronman_core.pauses import Pause, PauseStore, PauseStoreError
from cronman_plugins._db import MISSING_TABLE
from cronman_plugins.history.models import CronJobPause, CronJobStreak

T = TypeVar("T")


def _guarded(what: str, action: Callable[[], T]) -> T:
    try:
        with transaction.atomic():
            return action()
    except DatabaseError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = " (run: python manage.py migrate)" if MISSING_TABLE.search(first) else ""
        raise PauseStoreError(f"{what}: {first}{hint}") from exc


def _as_pause(row: CronJobPause) -> Pause:
    return Pause(row.job_name, row.reason, row.paused_by, row.paused_at.astimezone(dt.UTC).isoformat())


class DatabasePauseStore(PauseStore):
    """Pauses in ``cron_history_cronjobpause``, failure streaks in ``cron_history_cronjobstreak``."""

    def paused(self) -> dict[str, Pause]:
        return _guarded("reading the paused jobs",
                        lambda: {row.job_name: _as_pause(row) for row in CronJobPause.objects.all()})

    def pause(self, pause: Pause) -> None:
        _guarded(f"pausing {pause.job_name}", lambda: CronJobPause.objects.update_or_create(
            job_name=pause.job_name,
            defaults={"reason": pause.reason[:500], "paused_by": pause.paused_by[:255],
                      "paused_at": dt.datetime.fromisoformat(pause.paused_at)},
        ))

    def unpause(self, job_name: str) -> Pause | None:
        def unpause() -> Pause | None:
            row = CronJobPause.objects.filter(job_name=job_name).first()
            CronJobPause.objects.filter(job_name=job_name).delete()
            CronJobStreak.objects.filter(job_name=job_name).delete()
            return _as_pause(row) if row else None

        return _guarded(f"unpausing {job_name}", unpause)

    def count_outcome(self, job_name: str, failed: bool) -> int:
        def count() -> int:
            streaks = CronJobStreak.objects.filter(job_name=job_name)
            if not failed:
                streaks.update(failures=0)
                return 0
            if not streaks.update(failures=F("failures") + 1):
                try:
                    with transaction.atomic():
                        CronJobStreak.objects.create(job_name=job_name, failures=1)
                except IntegrityError:  # another worker of the job created it first
                    streaks.update(failures=F("failures") + 1)
            return int(streaks.values_list("failures", flat=True).get())

        return _guarded(f"counting a failure of {job_name}", count)


__all__ = ["DatabasePauseStore"]
