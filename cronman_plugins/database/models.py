"""The database lock backend's tables. Written by :mod:`cronman_plugins.database.locks` in SQL of
its own, on a connection of its own: these models exist for ``migrate`` (and inspection), not for the ORM."""

from __future__ import annotations

from django.db import models


class RunRecordRow(models.Model):
    """One run's record; ``backend_pid`` / ``backend_start`` name the session that holds its lock."""

    run_id = models.CharField(max_length=64, primary_key=True)
    key = models.CharField(max_length=1500)
    data = models.TextField()
    backend_pid = models.IntegerField()
    backend_start = models.FloatField()

    class Meta:
        db_table = "cronman_run_record"


class FenceRow(models.Model):
    """The last fencing token handed out per lock key."""

    key = models.CharField(max_length=1500, primary_key=True)
    token = models.BigIntegerField()

    class Meta:
        db_table = "cronman_fence"


class FireClaimRow(models.Model):
    """An (entry, fire time) claim: its holder's token and its expiry on the database's clock."""

    key = models.CharField(max_length=255, primary_key=True)
    token = models.CharField(max_length=64)
    expires_at = models.FloatField(db_index=True)

    class Meta:
        db_table = "cronman_fire_claim"


class StopRequestRow(models.Model):
    """``kill`` asked the run to stop; its worker reads it at its next lock check."""

    run_id = models.CharField(max_length=64, primary_key=True)
    requested_at = models.FloatField()

    class Meta:
        db_table = "cronman_stop_request"
