"""Django database backends that open their connections through bluegreen.

Set ``ENGINE`` to ``"bluegreen.django.postgresql"`` (psycopg 3 or psycopg2,
whichever Django's own PostgreSQL backend picks) or
``"bluegreen.django.mysql"`` (mysqlclient) and put bluegreen's settings
into ``OPTIONS`` next to the driver's::

    DATABASES = {
        "default": {
            "ENGINE": "bluegreen.django.postgresql",
            "HOST": "mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com",
            "NAME": "app",
            "USER": "app",
            "PASSWORD": "...",
            "CONN_MAX_AGE": None,
            "OPTIONS": {"connect_timeout": 10, "bg_id": "orders"},
        }
    }

Each backend subclasses Django's own ``DatabaseWrapper`` and changes only
how a connection is opened: ``bluegreen.connect(<the driver's connect>,
**params)`` in place of the driver's connect call, and, through
``bg_on_reconnect``, the part of Django's session setup that a connection
bluegreen reopens after a switchover would otherwise lose (PostgreSQL's
``assume_role``; MySQL's isolation level and ``SQL_AUTO_IS_NULL``).
Everything else (features, operations, introspection, schema editor,
client, creation, transactions, error wrapping, persistent connections,
health checks, Django's psycopg pool) is Django's, working on the
bluegreen connection proxy.
"""

from __future__ import annotations

__all__: list[str] = []
