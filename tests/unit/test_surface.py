"""Every public name of every driver's connection and cursor classes is
classified in its adapter's surface: a method a new driver release adds makes
this test fail until someone decides whether it talks to the network."""

from __future__ import annotations

from typing import Any

import mysql.connector
import mysql.connector.cursor as my_cursor
import mysql.connector.cursor_cext as my_cursor_cext
import MySQLdb
import MySQLdb.connections
import MySQLdb.cursors
import psycopg
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pymysql
import pymysql.cursors
import pytest
from mysql.connector.connection import MySQLConnection
from mysql.connector.connection_cext import CMySQLConnection

from bluegreen.connection import Connection
from bluegreen.cursor import Cursor
from bluegreen.drivers import adapter_for
from bluegreen.drivers._surface import Kind, Surface, table


def public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def cursor_classes(module: Any) -> list[type]:
    return [
        obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and "Cursor" in name and not name.endswith("Abstract")
    ]


DRIVERS = {
    "psycopg": (
        psycopg.connect,
        [psycopg.Connection],
        [psycopg.Cursor, psycopg.ClientCursor, psycopg.ServerCursor, psycopg.RawCursor],
    ),
    "pymysql": (
        pymysql.connect,
        [pymysql.connections.Connection],
        cursor_classes(pymysql.cursors),
    ),
    "mysql-connector": (
        mysql.connector.connect,
        [MySQLConnection, CMySQLConnection],
        cursor_classes(my_cursor) + cursor_classes(my_cursor_cext),
    ),
    "psycopg2": (
        psycopg2.connect,
        [
            psycopg2.extensions.connection,
            psycopg2.extras.LoggingConnection,
            psycopg2.extras.LogicalReplicationConnection,
        ],
        [*cursor_classes(psycopg2.extras), psycopg2.extensions.cursor],
    ),
    "mysqlclient": (
        MySQLdb.connect,
        [MySQLdb.connections.Connection],
        cursor_classes(MySQLdb.cursors),
    ),
}

#: Names that close or cancel on some drivers but are something else here:
#: mysqlclient's shutdown() asks the server to shut down (COM_SHUTDOWN), a
#: network call that is hooked like any other.
NOT_CLOSING = {"mysqlclient": {"shutdown"}}


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_every_public_name_is_classified(driver: str) -> None:
    target, conn_classes, cur_classes = DRIVERS[driver]
    surface = adapter_for(target).surface
    assert len(cur_classes) >= 3
    missing = {
        f"{cls.__name__}.{name}"
        for cls in conn_classes
        for name in public(cls) - set(surface.connection)
    } | {
        f"{cls.__name__}.{name}"
        for cls in cur_classes
        for name in public(cls) - set(surface.cursor)
    }
    assert not missing, (
        f"unclassified {driver} names (add them to the adapter's surface): "
        f"{sorted(missing)}"
    )


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_proxy_names_are_defined_by_the_proxies(driver: str) -> None:
    surface = adapter_for(DRIVERS[driver][0]).surface
    for name, kind in surface.connection.items():
        assert (kind is Kind.PROXY) == (name in public(Connection)), name
    for name, kind in surface.cursor.items():
        if kind is Kind.PROXY:
            assert name in public(Cursor), name


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_network_names_that_are_not_hooked_say_why(driver: str) -> None:
    """A LOCAL name that talks to the network (closing, cancelling) carries a
    note; so does every CONTEXT whose exit is not hooked."""
    surface = adapter_for(DRIVERS[driver][0]).surface
    closing = {"cancel", "cmd_quit", "disconnect", "shutdown"}
    for name in sorted(closing - NOT_CLOSING.get(driver, set())):
        if name in surface.connection:
            assert surface.connection[name] is Kind.LOCAL
            assert name in surface.notes, name
    for name, kind in surface.connection.items():
        if kind is Kind.CONTEXT:
            assert name in surface.notes, name


def test_hook_tables_follow_the_kinds() -> None:
    s = Surface(
        connection=table(
            CALL=("a",), GET_SET=("b",), SET=("c",), LOCAL=("d",), STREAM=("e",)
        ),
        cursor=table(STREAM=("f",), LOCAL=("g",)),
    )
    assert dict(s.connection_hooks) == {"a": Kind.CALL, "b": Kind.GET_SET}
    assert s.connection_setters == {"b", "c"}
    assert dict(s.cursor_hooks) == {"f": Kind.STREAM}
    with pytest.raises(ValueError, match="twice"):
        table(CALL=("a",), LOCAL=("a",))


def test_mysqlclient_network_calls_are_hooked() -> None:
    """mysqlclient's server calls reached by delegation go through the hook;
    its local readers (status flags, escaping, the socket number) do not."""
    surface = adapter_for(MySQLdb.connect).surface
    for name in (
        "begin",
        "change_user",
        "kill",
        "next_result",
        "ping",
        "query",
        "read_query_result",
        "select_db",
        "send_query",
        "set_character_set",
        "set_sql_mode",
        "show_warnings",
        "store_result",
        "use_result",
    ):
        assert surface.connection_hooks.get(name) is Kind.CALL, name
    for name in ("get_autocommit", "fileno", "character_set_name", "escape"):
        assert name not in surface.connection_hooks, name
    assert not surface.cursor_hooks  # fetching is hooked on streaming cursors
