"""Every network-bound entry point of every driver goes through the plugins'
execute hook, on real servers; pools keep handing out bluegreen connections.

A recording plugin notes each hooked call; each test makes one kind of call
the way applications do and checks that the hook saw it (and that the call
still worked).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import mysql.connector
import psycopg
import pymysql
import pytest

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.pipeline import Plugin

T = TypeVar("T")


class Calls(Plugin):
    """Records the method names the execute hook sees."""

    seen: list[str] = []

    def execute(self, conn: Any, method_name: str, call: Callable[[], T]) -> T:
        self.seen.append(method_name)
        return call()


@pytest.fixture(autouse=True)
def calls() -> Iterator[list[str]]:
    runtime().plugins.register("calls", Calls)
    Calls.seen = []
    yield Calls.seen
    runtime().plugins.unregister("calls")


def pg(pg_kw: Any, **extra: Any) -> Any:
    return bluegreen.connect(psycopg.connect, plugins="calls", **pg_kw(**extra))


# -- psycopg ------------------------------------------------------------------


@pytest.mark.postgres
def test_psycopg_with_block_commits_through_the_hook(
    pg_kw: Any, calls: list[str]
) -> None:
    with pg(pg_kw) as conn:
        conn.execute("CREATE TEMP TABLE t (x int)")
        calls.clear()
    assert calls == ["commit"]
    assert conn.closed


@pytest.mark.postgres
def test_psycopg_with_block_rolls_back_through_the_hook(
    pg_kw: Any, calls: list[str]
) -> None:
    with pytest.raises(ZeroDivisionError), pg(pg_kw) as conn:
        conn.execute("SELECT 1")
        calls.clear()
        1 / 0  # noqa: B018
    assert calls == ["rollback"]


@pytest.mark.postgres
def test_psycopg_transaction_block(pg_kw: Any, calls: list[str]) -> None:
    conn = pg(pg_kw, autocommit=True)
    try:
        conn.execute("CREATE TEMP TABLE t (x int)")
        calls.clear()
        with conn.transaction() as tx:
            conn.execute("INSERT INTO t VALUES (1)")
            assert tx.connection is conn.driver_connection
        assert calls == ["transaction", "execute", "commit"]
        calls.clear()
        with conn.transaction():
            conn.execute("INSERT INTO t VALUES (2)")
            raise psycopg.Rollback()
        assert calls == ["transaction", "execute", "rollback"]
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        conn.close()


@pytest.mark.postgres
def test_psycopg_copy_stream_pipeline_and_named_cursors(
    pg_kw: Any, calls: list[str]
) -> None:
    conn = pg(pg_kw, autocommit=True)
    try:
        conn.execute("CREATE TEMP TABLE t (x int)")
        cur = conn.cursor()
        calls.clear()
        with cur.copy("COPY t (x) FROM STDIN") as copy:
            copy.write_row((1,))
            copy.write_row((2,))
        assert calls == ["copy"]
        calls.clear()
        rows = list(cur.stream("SELECT x FROM t ORDER BY x"))
        assert rows == [(1,), (2,)]
        assert calls == ["stream"]
        calls.clear()
        with conn.pipeline():
            conn.execute("INSERT INTO t VALUES (3)")
        assert calls[:2] == ["pipeline", "execute"]
        with conn.transaction():
            named = conn.cursor("named")
            named.execute("SELECT x FROM t ORDER BY x")
            calls.clear()
            named.scroll(1)
            assert named.fetchone() == (2,)
            named.close()
        assert calls[:2] == ["scroll", "fetchone"]
        # A buffered cursor's scroll reads nothing from the network.
        cur.execute("SELECT 1 UNION ALL SELECT 2")
        calls.clear()
        cur.scroll(1)
        assert calls == []
    finally:
        conn.close()


@pytest.mark.postgres
def test_psycopg_notifies(pg_kw: Any, calls: list[str]) -> None:
    conn = pg(pg_kw, autocommit=True)
    try:
        conn.execute("LISTEN bgtest")
        conn.execute("NOTIFY bgtest, 'hello'")
        calls.clear()
        got = [n.payload for n in conn.notifies(timeout=2, stop_after=1)]
        assert got == ["hello"]
        assert calls == ["notifies"]
    finally:
        conn.close()


# -- PyMySQL --------------------------------------------------------------------


@pytest.mark.mariadb
def test_pymysql_calls(pymysql_kw: Any, calls: list[str]) -> None:
    conn = bluegreen.connect(pymysql.connect, plugins="calls", **pymysql_kw())
    try:
        db = conn.db.decode()
        calls.clear()
        conn.ping(reconnect=False)
        conn.begin()
        conn.select_db(db)
        conn.autocommit(True)
        conn.autocommit = False
        assert conn.get_autocommit() is False  # local: not hooked
        assert calls == ["ping", "begin", "select_db", "autocommit", "autocommit"]
        cur = conn.cursor(pymysql.cursors.SSCursor)
        cur.execute("SELECT 1 UNION ALL SELECT 2")
        calls.clear()
        assert cur.read_next() == (1,)
        assert list(cur.fetchall_unbuffered()) == [(2,)]
        assert calls == ["read_next", "fetchall_unbuffered"]
        cur.close()
    finally:
        conn.close()


# -- mysql-connector -------------------------------------------------------------


@pytest.mark.mariadb
@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "cext"])
def test_mysql_connector_calls(myc_kw: Any, calls: list[str], use_pure: bool) -> None:
    conn = bluegreen.connect(
        mysql.connector.connect, plugins="calls", use_pure=use_pure, **myc_kw()
    )
    try:
        calls.clear()
        assert conn.database  # a SELECT DATABASE() round trip
        conn.database = conn.database
        assert conn.autocommit is False
        conn.autocommit = True
        conn.ping()
        assert conn.is_connected()
        conn.start_transaction()
        conn.rollback()
        assert calls == [
            "database",
            "database",
            "database",
            "autocommit",
            "autocommit",
            "ping",
            "is_connected",
            "start_transaction",
            "rollback",
        ]
        calls.clear()
        conn.cmd_query("SELECT 1")
        conn.consume_results()
        assert calls == ["cmd_query", "consume_results"]
    finally:
        conn.close()


# -- pools ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_psycopg_pool_close_returns_keeps_the_proxy(
    pg_conninfo: str, calls: list[str]
) -> None:
    """psycopg's recipe for SQLAlchemy on top of psycopg_pool: the pool hands
    out bluegreen connections, and closing one returns the bluegreen
    connection, not the bare driver connection, to the pool."""
    from psycopg_pool import ConnectionPool
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from bluegreen.pool import PsycopgPoolConnection

    pool = ConnectionPool(
        pg_conninfo,
        connection_class=PsycopgPoolConnection,
        kwargs={"plugins": "calls"},
        close_returns=True,
        min_size=1,
        max_size=1,
        open=True,
    )
    try:
        engine = create_engine(
            "postgresql+psycopg://", creator=pool.getconn, poolclass=NullPool
        )
        for n in range(3):
            with engine.connect() as c:
                dbapi = c.connection.dbapi_connection
                assert type(dbapi) is bluegreen.Connection
                assert isinstance(dbapi, psycopg.Connection)
                calls.clear()
                assert c.execute(text("SELECT :n"), {"n": n}).scalar() == n
                assert "execute" in calls
            # Back in the pool as the proxy: the next one is the same proxy.
            with pool.connection() as again:
                assert again is dbapi
                calls.clear()
                again.execute("SELECT 1")
            assert calls == ["execute", "commit"]
        assert pool.get_stats().get("connections_num", 0) == 1
    finally:
        pool.close()


@pytest.mark.postgres
def test_psycopg_pool_without_close_returns(pg_conninfo: str) -> None:
    from psycopg_pool import ConnectionPool

    from bluegreen.pool import PsycopgPoolConnection

    with ConnectionPool(
        pg_conninfo,
        connection_class=PsycopgPoolConnection,
        kwargs={"plugins": ""},
        min_size=1,
        max_size=1,
    ) as pool:
        with pool.connection() as conn:
            assert type(conn) is bluegreen.Connection
            first = conn
        with pool.connection() as conn:
            assert conn is first
            assert conn.execute("SELECT 1").fetchone() == (1,)
