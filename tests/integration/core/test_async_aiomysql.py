"""bluegreen.connect_async() with aiomysql on a real MariaDB server: the
driver's own API (awaitable cursor(), sync close()) through the proxies."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql
import pymysql
import pytest

import bluegreen

pytestmark = pytest.mark.timeout(60)


def kwargs(instance: Any) -> dict[str, Any]:
    kw: dict[str, Any] = instance.connect_kwargs()
    kw["db"] = kw.pop("database")
    kw["connect_timeout"] = 5
    return kw


@pytest.mark.parametrize("plugins", ["", "bg"])
def test_the_driver_api_through_the_async_proxies(
    mariadb_instance: Any, plugins: str
) -> None:
    async def main() -> None:
        conn = await bluegreen.connect_async(
            aiomysql.connect, plugins=plugins, **kwargs(mariadb_instance)
        )
        assert isinstance(conn, aiomysql.Connection)
        assert type(conn) is bluegreen.AsyncConnection
        cur = await conn.cursor()
        assert await cur.execute("SELECT %s + 1", (41,)) == 1
        assert await cur.fetchone() == (42,)
        await cur.execute("CREATE TEMPORARY TABLE t (v int)")
        await cur.executemany("INSERT INTO t VALUES (%s)", [(1,), (2,), (3,)])
        await conn.commit()
        await cur.execute("SELECT v FROM t ORDER BY v")
        assert list(await cur.fetchmany(2)) == [
            (1,),
            (2,),
        ]  # tuples, as aiomysql has them
        assert list(await cur.fetchall()) == [(3,)]
        await cur.close()
        async with conn.cursor(aiomysql.DictCursor) as dcur:
            await dcur.execute("SELECT v FROM t ORDER BY v LIMIT 1")
            assert await dcur.fetchone() == {"v": 1}
        async with conn.cursor(aiomysql.SSCursor) as scur:  # streaming
            await scur.execute("SELECT v FROM t ORDER BY v")
            assert [row async for row in scur] == [(1,), (2,), (3,)]
        await conn.begin()
        c2 = await conn.cursor()
        await c2.execute("INSERT INTO t VALUES (4)")
        await conn.rollback()
        await c2.execute("SELECT count(*) FROM t")
        assert await c2.fetchone() == (3,)
        with pytest.raises(pymysql.err.ProgrammingError):
            await c2.execute("SELECT * FROM no_such_table")
        with pytest.raises(AttributeError, match="transaction"):
            conn.transaction()
        await conn.autocommit(True)
        assert conn.get_autocommit() is True
        conn.close()  # aiomysql's close() is immediate, not awaited
        assert conn.closed

    asyncio.run(main())


def test_sqlalchemy_asyncio_engine_with_aiomysql(mariadb_instance: Any) -> None:
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    kw = kwargs(mariadb_instance)

    async def main() -> None:
        engine = create_async_engine(
            "mysql+aiomysql://",
            async_creator=lambda: bluegreen.connect_async(aiomysql.connect, **kw),
            pool_size=2,
        )
        try:
            async with engine.connect() as c:
                value = await c.scalar(sqlalchemy.text("SELECT :a + 1"), {"a": 41})
                assert value == 42
                raw = await c.get_raw_connection()
                assert type(raw.driver_connection) is bluegreen.AsyncConnection
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_monitors_get_pymysqls_names_for_aiomysqls_arguments() -> None:
    from bluegreen.drivers import async_adapter_for
    from bluegreen.settings import parse_config

    adapter = async_adapter_for(aiomysql.connect)
    config = parse_config(
        adapter,
        None,
        {"host": "db.example", "db": "app", "echo": True, "connect_timeout": 3},
    )
    params = config.own_params("bg").kwargs
    assert params["database"] == "app" and "db" not in params
    assert "echo" not in params  # aiomysql's own: PyMySQL would refuse it
    assert adapter.monitor_adapter.name == "pymysql"


def test_a_lost_aiomysql_connection_is_classified_without_error() -> None:
    """aiomysql's connections have ``closed``, not PyMySQL's ``open``: the
    classification of a lost connection must not fail on it (it raised
    AttributeError over the driver's own error, seen once by the switchover
    benchmark)."""
    import types

    from bluegreen.drivers import async_adapter_for

    adapter = async_adapter_for(aiomysql.connect)
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server")
    gone: Any = types.SimpleNamespace(closed=True)
    alive: Any = types.SimpleNamespace(closed=False)
    assert adapter.is_connection_lost(lost, gone)
    assert adapter.is_connection_lost(lost, alive)  # by its error number
    other = pymysql.err.OperationalError(1290, "read-only")
    assert adapter.is_connection_lost(other, gone)
    assert not adapter.is_connection_lost(other, alive)
