"""The test project's models."""

from __future__ import annotations

from django.db import models


class Item(models.Model):
    """Written and read by the backend checks; ``name`` is unique (for an
    IntegrityError) and ``payload`` is JSON (psycopg2's JSONB loader)."""

    name = models.CharField(max_length=100, unique=True)
    payload = models.JSONField(default=dict)


class Workload(models.Model):
    """The simulator's workload table (``bluegreen.sim.workload.TABLE``),
    which a simulated deployment creates on blue and on green: logical
    replication carries rows, not DDL, so the switchover run uses this
    table rather than a migrated one."""

    id = models.BigIntegerField(primary_key=True)
    client = models.CharField(max_length=64)

    class Meta:
        managed = False
        db_table = "bgsim_workload"
