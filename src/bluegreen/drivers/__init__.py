"""Driver adapters, selected from the connect function the application passes.

Drivers are imported lazily: only the module of the driver whose connect
function was given is ever imported, so an application with only PyMySQL
installed can use bluegreen.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, cast

from .._runtime import runtime
from .._types import ConnectFunction
from ..errors import UnsupportedDriverError
from .base import DriverAdapter, DriverParams, Endpoint

__all__ = [
    "SUPPORTED_ASYNC_TARGETS",
    "SUPPORTED_TARGETS",
    "DriverAdapter",
    "DriverParams",
    "Endpoint",
    "adapter_for",
    "async_adapter_for",
]

SUPPORTED_TARGETS = (
    "psycopg.connect",
    "psycopg.Connection.connect",
    "psycopg2.connect",
    "mysql.connector.connect",
    "pymysql.connect (also pymysql.Connect, pymysql.connections.Connection)",
    "MySQLdb.connect (mysqlclient; also MySQLdb.connections.Connection)",
)


#: Adapters by target are kept in the runtime (``runtime().adapters``);
#: adapters are stateless apart from the target (and the memo of parsed
#: configurations they own), so one per connect function serves every
#: connection. Bounded: a process rarely sees more than a few targets.
_MAX_ADAPTERS = 64


def adapter_for(target: Any) -> DriverAdapter:
    """Return the adapter for the driver connect function *target*.

    Raise :class:`~bluegreen.errors.UnsupportedDriverError` for anything else.
    The adapter of a target seen before is reused (``adapter.target is
    target`` always holds).
    """
    adapters = runtime().adapters
    try:
        adapter = adapters.get(target)
    except TypeError:  # an unhashable target: certainly not supported
        adapter = None
    if adapter is not None:
        if adapter.target is target:
            return adapter
        # An equal target spelled anew (``psycopg.Connection.connect``
        # evaluated per call): same driver, an adapter holding this object.
        return type(adapter)(target)
    adapter = _new_adapter(target)
    if len(adapters) >= _MAX_ADAPTERS:
        adapters.clear()
    adapters[target] = adapter
    return adapter


#: The asyncio connect functions bluegreen.connect_async() accepts.
SUPPORTED_ASYNC_TARGETS = (
    "psycopg.AsyncConnection.connect",
    "asyncpg.connect",
    "aiomysql.connect",
)


def async_adapter_for(target: Any) -> DriverAdapter:
    """The adapter for the asyncio connect function *target*, cached like
    :func:`adapter_for`'s; :class:`UnsupportedDriverError` for anything else."""
    adapters = runtime().async_adapters
    try:
        adapter = adapters.get(target)
    except TypeError:
        adapter = None
    if adapter is not None and adapter.target is target:
        return adapter
    adapter = _new_async_adapter(target)
    if adapter is not None:
        if len(adapters) >= _MAX_ADAPTERS:
            adapters.clear()
        adapters[target] = adapter
        return adapter
    hint = ""
    top = (getattr(target, "__module__", None) or "").partition(".")[0]
    if not _is_async(target, top):
        hint = " (it opens synchronous connections: use bluegreen.connect())"
    raise UnsupportedDriverError(
        f"bluegreen.connect_async() cannot wrap {target!r}{hint}; supported "
        f"connect functions: {', '.join(SUPPORTED_ASYNC_TARGETS)}"
    )


def _new_async_adapter(target: Any) -> DriverAdapter | None:
    top = (getattr(target, "__module__", None) or "").partition(".")[0]
    if top == "psycopg":
        import psycopg

        owner = getattr(target, "__self__", None)
        if (
            isinstance(owner, type)
            and issubclass(owner, psycopg.AsyncConnection)
            and getattr(target, "__name__", None) == "connect"
        ):
            from .psycopg_async import PsycopgAsyncAdapter

            return PsycopgAsyncAdapter(target)
    elif top == "aiomysql":
        import aiomysql

        if target is aiomysql.connect:
            from .aiomysql import AiomysqlAdapter

            return AiomysqlAdapter(target)
    elif top == "asyncpg":
        import asyncpg

        if target is asyncpg.connect:
            from .asyncpg import AsyncpgAdapter

            return AsyncpgAdapter(target)
    return None


#: Driver connection classes whose subclasses are connect targets too, by
#: the driver module that defines them (checked only when the application
#: has imported that module: nothing is imported to find out).
_CONNECTION_CLASSES = (
    ("pymysql.connections", "Connection", "pymysql"),
    ("MySQLdb.connections", "Connection", "MySQLdb"),
)


def _driver_of_subclass(target: Any) -> str | None:
    """The driver package whose connection class ``target`` subclasses (an
    application's own ``class AppConnection(pymysql.connections.Connection)``
    lives in the application's module), or None."""
    if not isinstance(target, type):
        return None
    for module_name, attr, top in _CONNECTION_CLASSES:
        module = sys.modules.get(module_name)
        base = getattr(module, attr, None) if module is not None else None
        if isinstance(base, type) and issubclass(target, base):
            return top
    return None


def _new_adapter(target: Any) -> DriverAdapter:
    module = getattr(target, "__module__", None) or ""
    top = _driver_of_subclass(target) or module.partition(".")[0]
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
    elif top == "psycopg2":
        import psycopg2

        if target is psycopg2.connect:
            from .psycopg2 import Psycopg2Adapter

            return Psycopg2Adapter(target)
    elif top == "MySQLdb":
        import MySQLdb

        if target is MySQLdb.connect or (
            isinstance(target, type)
            and issubclass(target, MySQLdb.connections.Connection)
        ):
            from .mysqlclient import MySQLClientAdapter

            return MySQLClientAdapter(cast(ConnectFunction, target))
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
    if _is_async(target, top):
        raise UnsupportedDriverError(
            f"bluegreen.connect() cannot wrap {target!r}: it opens asyncio "
            "connections; use 'await bluegreen.connect_async(...)', which "
            f"supports {', '.join(SUPPORTED_ASYNC_TARGETS)} (asyncpg and "
            "aiomysql are planned). Supported synchronous connect functions: "
            f"{', '.join(SUPPORTED_TARGETS)}"
        )
    raise UnsupportedDriverError(
        f"bluegreen.connect() cannot wrap {target!r}; supported connect "
        f"functions: {', '.join(SUPPORTED_TARGETS)}"
    )


#: Packages whose connect functions open asyncio connections.
_ASYNC_PACKAGES = frozenset({"asyncpg", "aiomysql", "aiopg", "asyncmy"})


def _is_async(target: Any, top: str) -> bool:
    """Whether ``target`` opens asyncio connections."""
    if top in _ASYNC_PACKAGES or inspect.iscoroutinefunction(target):
        return True
    owner = getattr(target, "__self__", None)
    return isinstance(owner, type) and owner.__name__.startswith("Async")
