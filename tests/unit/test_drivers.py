"""Driver selection, parameter normalisation and lost-connection classification."""

from __future__ import annotations

import re
from typing import Any

import mysql.connector
import MySQLdb
import MySQLdb.connections
import MySQLdb.cursors
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
MYSQLDB = adapter_for(MySQLdb.connect)


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
    assert cfg.own_params("bg").kwargs["autocommit"] is True
    assert cfg.params.kwargs["autocommit"] is False


# -- mysqlclient (MySQLdb) ---------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        MySQLdb.connect,
        MySQLdb.Connect,
        MySQLdb.Connection,
        MySQLdb.connections.Connection,
    ],
)
def test_mysqlclient_adapter_selection(target: Any) -> None:
    adapter = adapter_for(target)
    assert (adapter.name, adapter.family) == ("mysqlclient", "mysql")
    assert adapter.target is target


def test_mysqlclient_cursor_class_is_not_a_target() -> None:
    with pytest.raises(bluegreen.UnsupportedDriverError, match=r"MySQLdb\.connect"):
        bluegreen.connect(MySQLdb.cursors.Cursor, plugins="")


def test_mysqlclient_endpoint_aliases() -> None:
    ep = MYSQLDB.endpoint(
        DriverParams("", {"host": "h", "passwd": "s", "db": "d", "user": "u"})
    )
    assert ep == ("h", 3306, "u", "d")
    ep = MYSQLDB.endpoint(DriverParams("", {"password": "s", "database": "d2"}))
    assert ep == ("localhost", 3306, None, "d2")
    # mysqlclient lets db win when both are given (it renames db to database).
    ep = MYSQLDB.endpoint(
        DriverParams("", {"host": "h", "port": "3307", "database": "a", "db": "b"})
    )
    assert ep == ("h", 3307, None, "b")


def test_mysqlclient_known_parameters() -> None:
    known = MYSQLDB.known_parameters()
    for name in (
        "host",
        "user",
        "passwd",
        "password",
        "db",
        "database",
        "port",
        "unix_socket",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "ssl",
        "ssl_mode",
        "charset",
        "collation",
        "autocommit",
        "cursorclass",
        "conv",
        "init_command",
        "client_flag",
        "local_infile",
        "auth_plugin",
        "sql_mode",
    ):
        assert name in known, name
    assert "connection_timeout" not in known and "dbname" not in known
    # Every parameter the installed release documents is known.
    doc = MySQLdb.connections.Connection.__init__.__doc__ or ""
    documented = set(re.findall(r":param\s+\w+\s+(\w+):", doc))
    assert documented and documented <= known


def test_mysqlclient_monitoring_setting_names_are_checked() -> None:
    cfg = parse_config(
        MYSQLDB,
        None,
        {"plugins": "", "host": "h", "blue-green-monitoring-read_timeout": 3},
    )
    assert cfg.own_params("bg").kwargs["read_timeout"] == 3
    with pytest.raises(
        bluegreen.ConfigurationError,
        match="did you mean 'blue-green-monitoring-read_timeout'",
    ):
        parse_config(
            MYSQLDB,
            None,
            {"plugins": "", "host": "h", "blue-green-monitoring-read_timout": 3},
        )


def test_mysqlclient_monitoring_params() -> None:
    cfg = parse_config(
        MYSQLDB,
        None,
        {
            "plugins": "",
            "host": "h",
            "autocommit": False,
            "cursorclass": MySQLdb.cursors.DictCursor,
            "conv": {},
            "use_unicode": False,
            "write_timeout": 9,
            "charset": "utf8mb4",
        },
    )
    mon = cfg.own_params("bg").kwargs
    assert mon["autocommit"] is True
    assert not {"cursorclass", "conv", "use_unicode"} & set(mon)
    assert mon["write_timeout"] == 9 and mon["charset"] == "utf8mb4"
    assert mon["host"] == "h"
    assert cfg.params.kwargs["autocommit"] is False
    # The monitors bound their reads and writes with these when unset.
    assert MYSQLDB.io_timeout_keys == ("read_timeout", "write_timeout")


def test_mysqlclient_timeouts() -> None:
    assert MYSQLDB.connect_timeout(DriverParams("", {"host": "h"})) is None
    params = DriverParams("", {"host": "h", "connect_timeout": 4})
    assert MYSQLDB.connect_timeout_info(params) == (4.0, True)


def test_mysqlclient_connect_arguments_for_ip() -> None:
    calls: list[dict[str, Any]] = []
    adapter = type(MYSQLDB)(lambda **k: calls.append(k))
    params = DriverParams("", {"host": "name", "passwd": "s", "db": "d"})
    adapter.connect(params, ip="10.1.2.3", port=3307)
    adapter.connect(params)
    assert calls == [
        {"host": "10.1.2.3", "passwd": "s", "db": "d", "port": 3307},
        {"host": "name", "passwd": "s", "db": "d"},
    ]


@pytest.mark.parametrize(
    ("ssl_mode", "warned"),
    [("VERIFY_IDENTITY", True), ("REQUIRED", False), (None, False)],
)
def test_mysqlclient_ip_connect_never_loosens_tls(
    ssl_mode: str | None, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Routed to an IP, the TLS settings go to mysqlclient untouched; a
    failure with a host-name check is the driver's own error, explained in a
    warning."""
    from bluegreen._runtime import runtime

    warn_log = runtime().warnings

    warn_log.clear()
    calls: list[dict[str, Any]] = []
    error = MySQLdb.OperationalError(2026, "TLS/SSL error: validation failed")

    def connect(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise error

    adapter = type(MYSQLDB)(connect)
    kwargs: dict[str, Any] = {"host": "db.example.com", "ssl": {"ca": "/ca.pem"}}
    if ssl_mode:
        kwargs["ssl_mode"] = ssl_mode
    with pytest.raises(MySQLdb.OperationalError) as info:
        adapter.connect(DriverParams("", kwargs), ip="10.1.2.3")
    assert info.value is error
    assert calls == [{**kwargs, "host": "10.1.2.3"}]
    messages = [
        r.getMessage() for r in caplog.records if r.name.startswith("bluegreen")
    ]
    assert bool(messages) is warned
    if warned:
        assert "10.1.2.3" in messages[0] and "db.example.com" in messages[0]
        assert "VERIFY_IDENTITY" in messages[0]
    warn_log.clear()


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (MySQLdb.OperationalError(2006, "Server has gone away"), True),
        (MySQLdb.OperationalError(2013, "Lost connection"), True),
        (MySQLdb.OperationalError(2002, "Can't connect"), True),
        (MySQLdb.OperationalError(2003, "Can't connect"), True),
        (MySQLdb.OperationalError(1927, "Connection was killed"), True),
        (MySQLdb.OperationalError(4031, "inactivity"), True),
        (MySQLdb.OperationalError(1205, "lock wait timeout"), False),
        (MySQLdb.OperationalError(2026, "TLS/SSL error"), False),
        (MySQLdb.InterfaceError(0, ""), False),
        (MySQLdb.ProgrammingError(1146, "no table"), False),
        (MySQLdb.ProgrammingError("already in use from another thread"), False),
        (MySQLdb.IntegrityError(1062, "duplicate"), False),
        (pymysql.err.OperationalError(2013, "lost"), False),
    ],
)
def test_mysqlclient_lost(exc: BaseException, lost: bool) -> None:
    assert MYSQLDB.is_connection_lost(exc) is lost


def test_mysqlclient_lost_when_connection_closed() -> None:
    class Closed:
        open = 0

    assert MYSQLDB.is_connection_lost(MySQLdb.InterfaceError(0, ""), Closed())
    assert MYSQLDB.is_connection_lost(MySQLdb.OperationalError(1205, "x"), Closed())
    assert not MYSQLDB.is_connection_lost(MySQLdb.IntegrityError(1062, "x"), Closed())


def test_mysqlclient_streaming_cursor_classification() -> None:
    class Mine(MySQLdb.cursors.SSDictCursor):  # type: ignore[misc]
        pass

    for cls, streaming in [
        (MySQLdb.cursors.SSCursor, True),
        (MySQLdb.cursors.SSDictCursor, True),
        (Mine, True),
        (MySQLdb.cursors.Cursor, False),
        (MySQLdb.cursors.DictCursor, False),
    ]:
        assert MYSQLDB.is_streaming_cursor(cls(None)) is streaming, cls
    assert MYSQLDB.operational_error() is MySQLdb.OperationalError
    assert MYSQLDB.autocommit_is_method and MYSQLDB.autocommit_set_is_call


def test_an_applications_own_connection_subclass_is_a_target() -> None:
    """A subclass of the driver's connection class, defined in the
    application's module, gets the driver's adapter."""
    import MySQLdb
    import pymysql

    from bluegreen.drivers import adapter_for

    class AppPyMySQL(pymysql.connections.Connection):  # type: ignore[misc]
        pass

    class AppMySQLdb(MySQLdb.connections.Connection):  # type: ignore[misc]
        pass

    assert AppPyMySQL.__module__ == __name__
    assert adapter_for(AppPyMySQL).name == "pymysql"
    assert adapter_for(AppMySQLdb).name == "mysqlclient"
    assert adapter_for(AppMySQLdb).target is AppMySQLdb
