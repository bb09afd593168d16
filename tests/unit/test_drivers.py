"""Driver selection, parameter normalisation and lost-connection classification."""

from __future__ import annotations

from typing import Any

import mysql.connector
import psycopg
import psycopg.errors
import pymysql
import pytest
from mysql.connector import errors as myerrors

import bluegreen
from bluegreen.drivers import adapter_for
from bluegreen.drivers.base import DriverParams
from bluegreen.settings import parse_config

PG = adapter_for(psycopg.connect)
PYM = adapter_for(pymysql.connect)
MYC = adapter_for(mysql.connector.connect)


class _Sub(psycopg.Connection[Any]):
    pass


@pytest.mark.parametrize(
    ("target", "name", "family"),
    [
        (psycopg.connect, "psycopg", "postgres"),
        (psycopg.Connection.connect, "psycopg", "postgres"),
        (_Sub.connect, "psycopg", "postgres"),
        (pymysql.connect, "pymysql", "mysql"),
        (pymysql.Connect, "pymysql", "mysql"),
        (pymysql.connections.Connection, "pymysql", "mysql"),
        (mysql.connector.connect, "mysql-connector", "mysql"),
    ],
)
def test_adapter_selection(target: Any, name: str, family: str) -> None:
    adapter = adapter_for(target)
    assert (adapter.name, adapter.family) == (name, family)
    assert adapter.target is target


@pytest.mark.parametrize(
    "target",
    [
        print,
        psycopg.AsyncConnection.connect,
        psycopg.Connection,
        "psycopg.connect",
        None,
        pymysql.cursors.Cursor,
        mysql.connector.MySQLConnection,
    ],
)
def test_unsupported_targets(target: Any) -> None:
    with pytest.raises(bluegreen.UnsupportedDriverError) as info:
        bluegreen.connect(target, plugins="")
    msg = str(info.value)
    assert repr(target) in msg
    assert "psycopg.connect" in msg and "pymysql.connect" in msg
    assert "mysql.connector.connect" in msg
    assert isinstance(info.value, bluegreen.ProgrammingError)


def test_asyncio_targets_say_why_and_what_to_do() -> None:
    async def connect(**kwargs: Any) -> Any:  # an asyncio driver's connect
        return None

    for target in (psycopg.AsyncConnection.connect, connect):
        with pytest.raises(bluegreen.UnsupportedDriverError) as info:
            bluegreen.connect(target, plugins="")
        msg = str(info.value)
        assert "asyncio" in msg and "bluegreen.connect_async" in msg
    with pytest.raises(bluegreen.UnsupportedDriverError) as info:
        bluegreen.connect(print, plugins="")
    assert "asyncio" not in str(info.value)


def test_connection_proxy() -> None:
    with pytest.raises(TypeError, match="not a bluegreen connection"):
        bluegreen.connection_proxy(object())


def test_module_globals() -> None:
    assert bluegreen.apilevel == "2.0"
    assert bluegreen.threadsafety == 1
    assert bluegreen.paramstyle == "pyformat"
    assert bluegreen.__version__
    for name in (
        "Warning",
        "Error",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
        "connect",
    ):
        assert name in bluegreen.__all__ and hasattr(bluegreen, name)


def test_psycopg_endpoint_from_conninfo_and_kwargs() -> None:
    params = DriverParams("host=a,b port=6000,6001 dbname=d", {"user": "u"})
    assert PG.endpoint(params) == ("a", 6000, "u", "d")
    assert PG.endpoint(DriverParams("", {"host": "h"})) == ("h", 5432, None, None)
    assert PG.endpoint(DriverParams("postgresql://x@h2:7/db", {"port": 8})) == (
        "h2",
        8,
        "x",
        "db",
    )


def test_mysql_endpoints() -> None:
    assert PYM.endpoint(DriverParams("", {"host": "h", "db": "d", "user": "u"})) == (
        "h",
        3306,
        "u",
        "d",
    )
    assert MYC.endpoint(DriverParams("", {"port": "3307", "database": "d"})) == (
        "127.0.0.1",
        3307,
        None,
        "d",
    )


def test_psycopg_connect_arguments_for_ip() -> None:
    calls: list[tuple[Any, ...]] = []
    adapter = type(PG)(lambda *a, **k: calls.append((a, k)))
    params = DriverParams("host=name sslmode=verify-full", {"user": "u"})
    adapter.connect(params)
    adapter.connect(params, ip="10.1.2.3")
    adapter.connect(params, host="other", port=6000)
    assert calls == [
        (("host=name sslmode=verify-full",), {"user": "u"}),
        (("host=name sslmode=verify-full",), {"user": "u", "hostaddr": "10.1.2.3"}),
        (
            ("host=name sslmode=verify-full",),
            {"user": "u", "host": "other", "port": 6000},
        ),
    ]
    assert params.kwargs == {"user": "u"}


def test_mysql_connector_connect_arguments_for_ip() -> None:
    calls: list[dict[str, Any]] = []
    adapter = type(MYC)(lambda **k: calls.append(k))
    adapter.connect(DriverParams("", {"host": "name"}), ip="10.1.2.3")
    assert calls == [{"host": "10.1.2.3"}]


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (psycopg.errors.AdminShutdown("x"), True),
        (psycopg.errors.CrashShutdown("x"), True),
        (psycopg.errors.CannotConnectNow("x"), True),
        (psycopg.errors.lookup("08006")("x"), True),
        (psycopg.errors.lookup("08001")("x"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (psycopg.errors.QueryCanceled("x"), False),
        (psycopg.errors.UndefinedTable("x"), False),
        (psycopg.errors.SerializationFailure("x"), False),
        (psycopg.ProgrammingError("x"), False),
        (ValueError("x"), False),
        (pymysql.err.OperationalError(2013, "lost"), False),
    ],
)
def test_psycopg_lost(exc: BaseException, lost: bool) -> None:
    assert PG.is_connection_lost(exc) is lost


def test_psycopg_lost_when_connection_closed() -> None:
    class Closed:
        closed = True

    assert PG.is_connection_lost(psycopg.errors.QueryCanceled("x"), Closed())


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (pymysql.err.OperationalError(2006, "gone away"), True),
        (pymysql.err.OperationalError(2013, "lost"), True),
        (pymysql.err.OperationalError(2003, "can't connect"), True),
        (pymysql.err.OperationalError(2055, "lost"), True),
        (pymysql.err.OperationalError(1927, "killed"), True),
        (pymysql.err.InterfaceError(0, ""), True),
        (pymysql.err.InterfaceError("(0, '')"), True),
        (pymysql.err.OperationalError(1205, "lock wait timeout"), False),
        (pymysql.err.OperationalError(1213, "deadlock"), False),
        (pymysql.err.ProgrammingError(1146, "no table"), False),
        (pymysql.err.InterfaceError(2013, "x"), True),
        (myerrors.OperationalError(errno=2013), False),
        (OSError("x"), False),
    ],
)
def test_pymysql_lost(exc: BaseException, lost: bool) -> None:
    assert PYM.is_connection_lost(exc) is lost


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (myerrors.OperationalError(errno=2006), True),
        (myerrors.OperationalError(errno=2013), True),
        (myerrors.OperationalError(errno=2055), True),
        (myerrors.InterfaceError(errno=2003), True),
        (myerrors.DatabaseError(errno=2013), False),
        (myerrors.OperationalError("MySQL Connection not available."), True),
        (myerrors.OperationalError(errno=1205), False),
        (myerrors.ProgrammingError(errno=1146), False),
        (pymysql.err.OperationalError(2013, "lost"), False),
    ],
)
def test_mysql_connector_lost(exc: BaseException, lost: bool) -> None:
    assert MYC.is_connection_lost(exc) is lost


def test_rollback_quietly_swallows_errors() -> None:
    class Conn:
        open = True
        rolled = 0

        def rollback(self) -> None:
            self.rolled += 1
            raise pymysql.err.OperationalError(2013, "lost")

    conn = Conn()
    PYM.rollback_quietly(conn)
    assert conn.rolled == 1
    conn.open = False
    PYM.rollback_quietly(conn)
    assert conn.rolled == 1


def test_streaming_cursor_classification() -> None:
    conn = pymysql.connections.Connection(defer_connect=True)
    assert PYM.is_streaming_cursor(pymysql.cursors.SSDictCursor(conn))
    assert not PYM.is_streaming_cursor(pymysql.cursors.DictCursor(conn))


def test_pymysql_autocommit_in_monitoring_params() -> None:
    cfg = parse_config(PYM, None, {"plugins": "", "autocommit": False, "host": "h"})
    assert cfg.monitoring_params().kwargs["autocommit"] is True
    assert cfg.params.kwargs["autocommit"] is False
