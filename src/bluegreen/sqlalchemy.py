"""SQLAlchemy dialects that connect through bluegreen, and pool hygiene
after a switchover.

Installing bluegreen registers these dialects with SQLAlchemy (entry points
in the ``sqlalchemy.dialects`` group), so a URL is enough::

    engine = sqlalchemy.create_engine(
        "postgresql+bluegreen_psycopg://app:pw@host/db?bg_id=orders&connect_timeout=10"
    )

=====================================  =======================================
URL                                    driver connect function
=====================================  =======================================
``postgresql+bluegreen_psycopg``       ``psycopg.connect``
``postgresql+bluegreen_psycopg2``      ``psycopg2.connect``
``mysql+bluegreen_pymysql``            ``pymysql.connect``
``mysql+bluegreen_mysqlconnector``     ``mysql.connector.connect``
``mysql+bluegreen_mysqldb``            ``MySQLdb.connect`` (mysqlclient)
``postgresql+bluegreen_psycopg_async`` ``psycopg.AsyncConnection.connect``
``postgresql+bluegreen_asyncpg``       ``asyncpg.connect``
``mysql+bluegreen_aiomysql``           ``aiomysql.connect``
=====================================  =======================================

The MySQL ones also exist as ``mariadb+...``. Each dialect is SQLAlchemy's
own dialect for that driver, changed only in how a connection is opened
and in what counts as a disconnect. Wrapper settings (``bg_id``,
``plugins``, ``bg_*``, the ``blue-green-monitoring-`` prefix) may be given
in the URL's query string or in ``connect_args``; they are taken out before
SQLAlchemy's dialect reads the query string and handed to
:func:`bluegreen.connect` (:func:`bluegreen.connect_async` for the asyncio
dialects), which validates them like any other: a misspelt ``bg_idd=`` is a
:class:`~bluegreen.errors.ConfigurationError` naming it. Everything else in
the query string reaches the driver as it would without bluegreen.

:func:`invalidate_on_switchover` keeps a pool from handing out a
connection that a switchover dropped, for applications that turn the
transparent reconnect off (``bg_reconnect=false``).

This module imports SQLAlchemy; ``import bluegreen`` does not import it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.dialects.mysql.aiomysql import MySQLDialect_aiomysql
from sqlalchemy.dialects.mysql.mariadb import MariaDBDialect
from sqlalchemy.dialects.mysql.mysqlconnector import (
    MariaDBDialect_mysqlconnector,
    MySQLDialect_mysqlconnector,
)
from sqlalchemy.dialects.mysql.mysqldb import MySQLDialect_mysqldb
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.postgresql.psycopg import (
    PGDialect_psycopg,
    PGDialectAsync_psycopg,
)
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import URL, Engine
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.engine.interfaces import ConnectArgsType, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, Pool

import bluegreen
import bluegreen.bg
from bluegreen.connection import WrapperAttributes
from bluegreen.settings import _wanted_in_conninfo

__all__ = [
    "MariaDBDialect_bluegreen_mysqlconnector",
    "MariaDBDialect_bluegreen_mysqldb",
    "MariaDBDialect_bluegreen_pymysql",
    "MySQLDialect_bluegreen_aiomysql",
    "MySQLDialect_bluegreen_mysqlconnector",
    "MySQLDialect_bluegreen_mysqldb",
    "MySQLDialect_bluegreen_pymysql",
    "PGDialectAsync_bluegreen_psycopg",
    "PGDialect_bluegreen_asyncpg",
    "PGDialect_bluegreen_psycopg",
    "PGDialect_bluegreen_psycopg2",
    "invalidate_on_switchover",
]

#: Whether a URL query key belongs to bluegreen rather than to the driver:
#: the core's own classification, the one that takes wrapper settings out
#: of a libpq string. Misspelt and misplaced wrapper names (``bg_idd``,
#: ``plugin``, ``blue-green-monitoring-bg_id``) count as bluegreen's too, so
#: that bluegreen reports them instead of the driver rejecting them.
_for_wrapper: Callable[[str], bool] = _wanted_in_conninfo


def _proxy_of(conn: Any) -> WrapperAttributes | None:
    """The bluegreen proxy behind ``conn``: itself, a pool's proxied
    connection or an asyncio adaptation of SQLAlchemy around it; None
    for anything else."""
    for _ in range(3):
        if isinstance(conn, WrapperAttributes):
            return conn
        if conn is None:
            return None
        inner = getattr(conn, "dbapi_connection", None)
        if inner is None:
            inner = getattr(conn, "driver_connection", None)
        conn = inner
    return None


def _driver_error(e: BaseException) -> BaseException:
    """The driver's (or bluegreen's) exception behind ``e``: SQLAlchemy's
    asyncpg dialect raises emulated DB-API errors holding it in ``orig``."""
    if isinstance(e, exc.EmulatedDBAPIException) and e.orig is not None:
        return e.orig
    return e


class _BlueGreenDialect(DefaultDialect):
    """What every bluegreen dialect changes in SQLAlchemy's dialect for its
    driver (the next class in the MRO): the connect arguments, connecting,
    and ``is_disconnect``."""

    supports_statement_cache = True

    def create_connect_args(self, url: URL, *args: Any, **kw: Any) -> ConnectArgsType:
        # (*args, **kw: the MySQL dialects take a private extra argument.)
        wrapper = {k: v for k, v in url.query.items() if _for_wrapper(k)}
        if not wrapper:
            return super().create_connect_args(url, *args, **kw)
        cargs, cparams = super().create_connect_args(
            url.difference_update_query(wrapper), *args, **kw
        )
        # The query string's values are strings (or tuples when a key is
        # repeated); bluegreen converts strings and rejects the rest, naming
        # the setting.
        cparams.update(wrapper)
        return cargs, cparams

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        return bluegreen.connect(self.loaded_dbapi.connect, *cargs, **cparams)

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        orig = _driver_error(e)
        if isinstance(orig, bluegreen.SwitchoverTimeoutError):
            # The call was not sent (bluegreen raises it before sending): the
            # connection is as good as it was. It is a disconnect exactly
            # when the switchover has dropped that connection (RDS drops
            # every connection at IN_PROGRESS); then SQLAlchemy replaces it,
            # through the plugin's routing, instead of handing it out again.
            proxy = _proxy_of(connection)
            return proxy is not None and bluegreen.bg.dropped(proxy)
        if isinstance(orig, bluegreen.Error):
            # A GreenHostRejectedError is raised by connect(): there is no
            # connection to invalidate, and a retry with the same (green)
            # name fails the same way.
            return False
        if super().is_disconnect(e, connection, cursor):
            return True
        # What bluegreen itself knows about this driver's lost connections
        # (the classification its transparent reconnect relies on).
        proxy = _proxy_of(connection)
        if proxy is None:
            return False
        return proxy.driver_adapter.is_connection_lost(orig, proxy.driver_connection)


class _BlueGreenAsyncDialect(_BlueGreenDialect):
    """For SQLAlchemy's asyncio dialects: the driver's connect coroutine
    goes through :func:`bluegreen.connect_async` (SQLAlchemy's
    ``async_creator`` mechanism, unless the application gave its own)."""

    supports_statement_cache = True

    @classmethod
    def get_async_dialect_cls(cls, url: URL) -> type[Dialect]:
        # Itself: SQLAlchemy's psycopg dialects name their own asyncio class.
        return cls

    def _bluegreen_target(self) -> Callable[..., Any]:
        raise NotImplementedError

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        if "async_creator_fn" not in cparams:
            cparams["async_creator_fn"] = functools.partial(
                bluegreen.connect_async, self._bluegreen_target()
            )
        return self.loaded_dbapi.connect(*cargs, **cparams)


# -- PostgreSQL ----------------------------------------------------------------


class PGDialectAsync_bluegreen_psycopg(_BlueGreenAsyncDialect, PGDialectAsync_psycopg):
    """``postgresql+bluegreen_psycopg_async``: psycopg 3's
    ``AsyncConnection`` through :func:`bluegreen.connect_async`."""

    supports_statement_cache = True

    def _bluegreen_target(self) -> Callable[..., Any]:
        import psycopg

        return psycopg.AsyncConnection.connect


class PGDialect_bluegreen_psycopg(_BlueGreenDialect, PGDialect_psycopg):
    """``postgresql+bluegreen_psycopg``: psycopg 3 through bluegreen
    (``create_async_engine`` with this URL gets the asyncio twin)."""

    supports_statement_cache = True

    @classmethod
    def get_async_dialect_cls(cls, url: URL) -> type[Dialect]:
        return PGDialectAsync_bluegreen_psycopg


class PGDialect_bluegreen_psycopg2(_BlueGreenDialect, PGDialect_psycopg2):
    """``postgresql+bluegreen_psycopg2``: psycopg2 through bluegreen."""

    supports_statement_cache = True


class PGDialect_bluegreen_asyncpg(_BlueGreenAsyncDialect, PGDialect_asyncpg):
    """``postgresql+bluegreen_asyncpg``: asyncpg through
    :func:`bluegreen.connect_async`."""

    supports_statement_cache = True

    def _bluegreen_target(self) -> Callable[..., Any]:
        import asyncpg

        return asyncpg.connect  # type: ignore[no-any-return]


# -- MySQL and MariaDB ---------------------------------------------------------


class MySQLDialect_bluegreen_pymysql(_BlueGreenDialect, MySQLDialect_pymysql):
    """``mysql+bluegreen_pymysql``: PyMySQL through bluegreen."""

    supports_statement_cache = True


class MySQLDialect_bluegreen_mysqlconnector(
    _BlueGreenDialect, MySQLDialect_mysqlconnector
):
    """``mysql+bluegreen_mysqlconnector``: mysql-connector-python through
    bluegreen."""

    supports_statement_cache = True


class MySQLDialect_bluegreen_mysqldb(_BlueGreenDialect, MySQLDialect_mysqldb):
    """``mysql+bluegreen_mysqldb``: mysqlclient (``MySQLdb``) through
    bluegreen."""

    supports_statement_cache = True


class MySQLDialect_bluegreen_aiomysql(_BlueGreenAsyncDialect, MySQLDialect_aiomysql):
    """``mysql+bluegreen_aiomysql``: aiomysql through
    :func:`bluegreen.connect_async`."""

    supports_statement_cache = True

    def _bluegreen_target(self) -> Callable[..., Any]:
        import aiomysql

        return aiomysql.connect  # type: ignore[no-any-return]


class MariaDBDialect_bluegreen_pymysql(MariaDBDialect, MySQLDialect_bluegreen_pymysql):
    """``mariadb+bluegreen_pymysql``."""

    supports_statement_cache = True


class MariaDBDialect_bluegreen_mysqlconnector(
    _BlueGreenDialect, MariaDBDialect_mysqlconnector
):
    """``mariadb+bluegreen_mysqlconnector``."""

    supports_statement_cache = True


class MariaDBDialect_bluegreen_mysqldb(MariaDBDialect, MySQLDialect_bluegreen_mysqldb):
    """``mariadb+bluegreen_mysqldb``."""

    supports_statement_cache = True


# -- pool hygiene --------------------------------------------------------------


def invalidate_on_switchover(target: Engine | AsyncEngine | Pool) -> None:
    """Make the pool of *target* replace, at checkout, every connection that a
    blue/green switchover dropped.

    For applications that turn the transparent reconnect off
    (``bg_reconnect=false``): RDS drops every connection when a switchover
    reaches IN_PROGRESS, and a pool would otherwise hand those dead
    connections out afterwards, one failed request each. With this, a
    checkout of a connection opened before the drop raises
    :class:`sqlalchemy.exc.DisconnectionError` in the pool's ``checkout``
    event, and the pool opens a new connection in its place, through the
    plugin's routing (to the new primary once the switchover is at POST).

    Each connection is judged by its own ``bg_id`` (see
    :func:`bluegreen.bg.dropped`), so one call covers an engine whose
    connections belong to any deployment. Outside a switchover the check
    costs a few attribute reads per checkout, no round trip (unlike
    ``pool_pre_ping``). Works for any engine whose connections come from
    bluegreen (a ``+bluegreen_`` URL or a ``creator``); calling it twice
    adds nothing.
    """
    if isinstance(target, AsyncEngine):
        target = target.sync_engine
    pool = target.pool if isinstance(target, Engine) else target
    if not isinstance(pool, Pool):
        raise TypeError(
            "invalidate_on_switchover() takes a SQLAlchemy Engine, AsyncEngine "
            f"or Pool, not {type(target).__qualname__}"
        )
    if not event.contains(pool, "checkout", _replace_dropped):
        event.listen(pool, "checkout", _replace_dropped)


def _replace_dropped(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any
) -> None:
    conn = _proxy_of(dbapi_connection)
    if conn is not None and bluegreen.bg.dropped(conn):
        raise exc.DisconnectionError(
            "this pooled connection was opened before a blue/green switchover "
            f"of bg_id {conn.wrapper_settings.bg_id!r} dropped it; the pool "
            "replaces it"
        )
