"""The database lock backend's tables. Written by :mod:`cronman_plugins.database.locks` in SQL of
its own, on a connection of its own: these models exist for ``migrate`` (and inspection), not for the ORM.

Column names avoid ``key`` (reserved in MySQL), and no index is longer than
MySQL's 3072 bytes: a lock key is indexed by its 64-bit hash.
"""

from __future__ import annotations

from django.db import models


class RunRecordRow(models.Model):
    """One run's record; ``session_id`` / ``session_start`` name the session that holds its lock."""

    run_id = models.CharField(max_length=64, primary_key=True)
    lock_key = models.TextField()
    data = models.TextField()
    session_id = models.BigIntegerField()
    session_start = models.FloatField()

    class Meta:
        db_table = "cronman_run_record"


class FenceRow(models.Model):
    """The last fencing token handed out per lock (by the lock key's 64-bit hash)."""

    lock_id = models.BigIntegerField(primary_key=True)
    token = models.BigIntegerField()

    class Meta:
        db_table = "cronman_fence"


class FireClaimRow(models.Model):
    """An (entry, fire time) claim: its holder's token and its expiry on the database's clock."""

    claim_key = models.CharField(max_length=255, primary_key=True)
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
