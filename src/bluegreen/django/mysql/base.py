"""Django's MySQL backend (mysqlclient) with its connections opened by
bluegreen.

``ENGINE = "bluegreen.django.mysql"``. Django passes ``OPTIONS`` to
``MySQLdb.connect()`` with the other connection arguments; bluegreen takes
its settings (``bg_id``, ``plugins``, ...) out of them, validates them and
hands the rest to mysqlclient.

When a switchover drops an idle connection, bluegreen reopens it and
carries over autocommit, the current database and the character set; this
backend adds the rest of Django's session setup through ``bg_on_reconnect``
(then the application's own ``bg_on_reconnect``, if ``OPTIONS`` gives
one): ``SQL_AUTO_IS_NULL = 0`` and the transaction isolation level
(``OPTIONS["isolation_level"]``, READ COMMITTED by default).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db.backends.mysql import base as django_base

from ... import connect, connection_proxy
from .._common import async_unsafe, chain_on_reconnect

__all__ = ["DatabaseWrapper"]

#: The driver module Django's backend uses (``MySQLdb``).
Database = django_base.Database


class DatabaseWrapper(django_base.DatabaseWrapper):  # type: ignore[misc]
    """Django's MySQL ``DatabaseWrapper``; only opening a connection
    differs (and setting up one that bluegreen reopens)."""

    def get_connection_params(self) -> dict[str, Any]:
        """Django's connection arguments, and ``bg_on_reconnect`` set to
        re-run Django's session setup on a reopened connection."""
        params: dict[str, Any] = super().get_connection_params()
        # As init_connection_state() (which sets SQL_AUTO_IS_NULL only
        # where the server has it on: setting it off again changes nothing).
        statements = ["SET SQL_AUTO_IS_NULL = 0"]
        if self.isolation_level:
            statements.append(
                "SET SESSION TRANSACTION ISOLATION LEVEL "
                + self.isolation_level.upper()
            )
        setup = functools.partial(_set_up_again, statements=tuple(statements))
        chain_on_reconnect(params, setup)
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Open ``bluegreen.connect(MySQLdb.connect, **conn_params)``, then
        drop the ``bytes`` encoder older mysqlclient releases install, as
        Django's own backend does."""
        connection = connect(Database.connect, **conn_params)
        encoders = connection.encoders
        if encoders.get(bytes) is bytes:
            encoders.pop(bytes)
        return connection


def _set_up_again(connection: Any, statements: Sequence[str]) -> None:
    """After a transparent reconnect, on the (idle) driver connection."""
    cur = connection_proxy(connection).driver_connection.cursor()
    try:
        for statement in statements:
            cur.execute(statement)
    finally:
        cur.close()
