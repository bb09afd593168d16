"""bluegreen: a DB-API 2.0 wrapper for RDS / Aurora blue/green switchovers.

Usage::

    import psycopg, bluegreen

    conn = bluegreen.connect(psycopg.connect, "host=db user=app", connect_timeout=5)

The returned :class:`Connection` behaves like the driver's own; plugins
(``plugins="bg"`` by default) sit between the application and the driver.
A plugin's author finds its API here too (docs/plugins.md): :class:`Plugin`,
:class:`Setting`, :class:`ConnectContext`, :class:`Target`,
:func:`register_plugin`, :func:`runtime` (the process state) and
:func:`fresh_runtime` (a new runtime, for tests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from ._runtime import Runtime, fresh_runtime, runtime
from ._version import __version__
from .aio import AsyncConnection, AsyncCursor, AsyncpgConnection, connect_async
from .connection import Connection
from .cursor import Cursor
from .drivers import adapter_for
from .errors import (
    ConfigurationError,
    DatabaseError,
    DataError,
    Error,
    GreenHostRejectedError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    SwitchoverTimeoutError,
    UnsupportedDriverError,
    Warning,
)
from .pipeline import (
    ConnectContext,
    Pipeline,
    Plugin,
    Target,
    register_plugin,
    unregister_plugin,
)
from .settings import Setting, Settings, parse_config

__all__ = [
    "AsyncConnection",
    "AsyncCursor",
    "AsyncpgConnection",
    "ConfigurationError",
    "ConnectContext",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Error",
    "GreenHostRejectedError",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "Plugin",
    "ProgrammingError",
    "Runtime",
    "Setting",
    "Settings",
    "SwitchoverTimeoutError",
    "Target",
    "UnsupportedDriverError",
    "Warning",
    "__version__",
    "apilevel",
    "connect",
    "connect_async",
    "connection_proxy",
    "fresh_runtime",
    "paramstyle",
    "register_plugin",
    "runtime",
    "threadsafety",
    "unregister_plugin",
]

apilevel = "2.0"
threadsafety = 1
paramstyle = "pyformat"


_C = TypeVar("_C")


def connect(
    target: Callable[..., _C], conninfo: str | None = None, /, **settings: Any
) -> _C:
    """Open a connection through the driver connect function *target*.

    *target* is ``psycopg.connect`` (or ``psycopg.Connection.connect``),
    ``mysql.connector.connect`` or ``pymysql.connect``. *conninfo* is a libpq
    connection string or URI (psycopg only). *settings* mixes driver
    arguments, passed to the driver unchanged, and wrapper settings (see
    :mod:`bluegreen.settings`), which may also appear in *conninfo*.

    Raise :class:`UnsupportedDriverError` for an unknown *target* and
    :class:`ConfigurationError` for invalid settings; errors of the driver
    pass through unchanged.

    The result is a :class:`Connection` proxy. It behaves like the driver's
    connection (``isinstance(conn, psycopg.Connection)`` holds), so type
    checkers are told it is one: ``connect(psycopg.connect, ...)`` is a
    ``psycopg.Connection``. :func:`connection_proxy` gives the proxy's own
    type back where the wrapper's attributes are wanted.
    """
    adapter = adapter_for(target)
    config = parse_config(adapter, conninfo, settings)
    if not config.settings.plugins:
        return cast(_C, Connection(adapter.connect(config.params), config, None))
    pipeline, raw = Pipeline.open(config)
    return cast(_C, Connection(raw, config, pipeline))


def connection_proxy(conn: object) -> Connection:
    """``conn`` as the :class:`Connection` proxy it is, for type checkers.

    Raise :class:`TypeError` if ``conn`` did not come from :func:`connect`.
    """
    if type(conn) is not Connection:
        raise TypeError(
            f"not a bluegreen connection: {type(conn).__qualname__} (pass a "
            "connection returned by bluegreen.connect())"
        )
    return conn
