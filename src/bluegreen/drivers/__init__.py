"""Driver adapters, selected from the connect function the application passes.

Drivers are imported lazily: only the module of the driver whose connect
function was given is ever imported, so an application with only PyMySQL
installed can use bluegreen.
"""

from __future__ import annotations

from typing import Any, cast

from .._types import ConnectFunction
from ..errors import UnsupportedDriverError
from .base import DriverAdapter, DriverParams, Endpoint

__all__ = [
    "SUPPORTED_TARGETS",
    "DriverAdapter",
    "DriverParams",
    "Endpoint",
    "adapter_for",
]

SUPPORTED_TARGETS = (
    "psycopg.connect",
    "psycopg.Connection.connect",
    "mysql.connector.connect",
    "pymysql.connect (also pymysql.Connect, pymysql.connections.Connection)",
)


def adapter_for(target: Any) -> DriverAdapter:
    """Return the adapter for the driver connect function *target*.

    Raise :class:`~bluegreen.errors.UnsupportedDriverError` for anything else.
    """
    module = getattr(target, "__module__", None) or ""
    top = module.partition(".")[0]
    if top == "psycopg":
        import psycopg

        owner = getattr(target, "__self__", None)
        if (
            isinstance(owner, type)
            and issubclass(owner, psycopg.Connection)
            and getattr(target, "__name__", None) == "connect"
        ):
            from .psycopg import PsycopgAdapter

            return PsycopgAdapter(target)
    elif top == "pymysql":
        import pymysql

        if isinstance(target, type) and issubclass(
            target, pymysql.connections.Connection
        ):
            from .pymysql import PyMySQLAdapter

            return PyMySQLAdapter(cast(ConnectFunction, target))
    elif top == "mysql":
        import mysql.connector

        if target is mysql.connector.connect:
            from .mysql_connector import MySQLConnectorAdapter

            return MySQLConnectorAdapter(target)
    raise UnsupportedDriverError(
        f"bluegreen.connect() cannot wrap {target!r}; supported connect "
        f"functions: {', '.join(SUPPORTED_TARGETS)}"
    )
