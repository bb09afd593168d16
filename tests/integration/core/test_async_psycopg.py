"""bluegreen.connect_async() with psycopg's AsyncConnection on a real server:
the driver's API through the proxies, with and without the bg plugin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import bluegreen
from bluegreen import ConfigurationError, Plugin, UnsupportedDriverError
from bluegreen._runtime import runtime

pytestmark = pytest.mark.timeout(60)

#: The ``pg_kw`` fixture (core/conftest.py): connect arguments of the test server.
KwargsFactory = Callable[..., dict[str, Any]]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("plugins", ["", "bg"])
def test_the_driver_api_through_the_async_proxies(
    pg_kw: KwargsFactory, plugins: str
) -> None:
    async def main() -> None:
        conn = await bluegreen.connect_async(
            psycopg.AsyncConnection.connect, plugins=plugins, **pg_kw()
        )
        assert isinstance(conn, psycopg.AsyncConnection)
        assert type(conn) is bluegreen.AsyncConnection
        async with conn:
            cur = conn.cursor()
            assert await cur.execute("SELECT %s::int + 1", (41,)) is cur
            assert await cur.fetchone() == (42,)
            await cur.execute("CREATE TEMP TABLE t (v int)")
            await cur.executemany("INSERT INTO t VALUES (%s)", [(1,), (2,), (3,)])
            await conn.commit()
            await cur.execute("SELECT v FROM t ORDER BY v")
            assert await cur.fetchmany(2) == [(1,), (2,)]
            assert await cur.fetchall() == [(3,)]
            await cur.execute("SELECT v FROM t ORDER BY v")
            assert [row async for row in cur] == [(1,), (2,), (3,)]
            assert [r async for r in cur.stream("SELECT v FROM t ORDER BY v")] == [
                (1,),
                (2,),
                (3,),
            ]
            async with conn.transaction():
                await cur.execute("INSERT INTO t VALUES (4)")
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await cur.execute("INSERT INTO t VALUES (5)")
                    raise ZeroDivisionError
            res = await conn.execute("SELECT count(*) FROM t")
            assert await res.fetchone() == (4,)
            async with conn.cursor("named") as named:  # server-side: streaming
                await named.execute("SELECT v FROM t ORDER BY v")
                assert await named.fetchone() == (1,)
                assert [r async for r in named] == [(2,), (3,), (4,)]
            with pytest.raises(psycopg.errors.UndefinedTable):
                await cur.execute("SELECT * FROM no_such_table")
            await conn.rollback()
            await conn.set_autocommit(True)
            assert conn.autocommit is True
        assert conn.closed

    run(main())


def test_settings_are_validated_as_in_the_sync_api(pg_kw: KwargsFactory) -> None:
    async def main() -> None:
        with pytest.raises(ConfigurationError, match="bg_connect_timeout_ms"):
            await bluegreen.connect_async(
                psycopg.AsyncConnection.connect, bg_connect_timeout_ms=-1, **pg_kw()
            )
        conn = await bluegreen.connect_async(
            psycopg.AsyncConnection.connect,
            bg_id="orders",
            **{"blue-green-monitoring-connect_timeout": 2},
            **pg_kw(),
        )
        try:
            assert conn.wrapper_settings.bg_id == "orders"
            assert conn.wrapper_config.own_overrides["bg"] == {"connect_timeout": 2}
        finally:
            await conn.close()

    run(main())


def test_wrong_targets_name_the_right_function() -> None:
    async def main() -> None:
        with pytest.raises(UnsupportedDriverError, match=r"use bluegreen\.connect\(\)"):
            await bluegreen.connect_async(psycopg.connect)

    run(main())
    with pytest.raises(UnsupportedDriverError, match="connect_async"):
        bluegreen.connect(psycopg.AsyncConnection.connect)


def test_a_plugin_without_asyncio_hooks_is_refused(pg_kw: KwargsFactory) -> None:
    class SyncOnly(Plugin):
        def execute(self, conn: Any, name: str, call: Any) -> Any:
            return call()

    runtime().plugins.register("synconly", SyncOnly)
    try:

        async def main() -> None:
            with pytest.raises(ConfigurationError, match="execute_async"):
                await bluegreen.connect_async(
                    psycopg.AsyncConnection.connect, plugins="synconly", **pg_kw()
                )

        run(main())
    finally:
        runtime().plugins.unregister("synconly")


def test_sqlalchemy_asyncio_engine_with_async_creator(pg_kw: KwargsFactory) -> None:
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    kw = pg_kw()

    async def main() -> None:
        engine = create_async_engine(
            "postgresql+psycopg://",
            async_creator=lambda: bluegreen.connect_async(
                psycopg.AsyncConnection.connect, **kw
            ),
            pool_size=2,
        )
        try:
            async with engine.connect() as c:
                value = await c.scalar(sqlalchemy.text("SELECT :a + 1"), {"a": 41})
                assert value == 42
                raw = await c.get_raw_connection()
                proxy = raw.driver_connection
                assert type(proxy) is bluegreen.AsyncConnection
                assert proxy.wrapper_pipeline is not None  # bg is on
                with pytest.raises(sqlalchemy.exc.ProgrammingError):
                    await c.execute(sqlalchemy.text("SELECT * FROM no_such_table"))
        finally:
            await engine.dispose()

    run(main())


@pytest.mark.parametrize("close_returns", [False, True])
def test_psycopg_async_pool_hands_out_bluegreen_connections(
    pg_conninfo: str, close_returns: bool
) -> None:
    from psycopg_pool import AsyncConnectionPool

    from bluegreen.pool import AsyncPsycopgPoolConnection

    async def main() -> None:
        pool = AsyncConnectionPool(
            pg_conninfo,
            connection_class=AsyncPsycopgPoolConnection,
            kwargs={"bg_id": "async-pool"},
            min_size=1,
            max_size=1,
            open=False,
            close_returns=close_returns,
        )
        await pool.open(wait=True, timeout=10)
        try:
            async with pool.connection() as conn:
                assert type(conn) is bluegreen.AsyncConnection
                assert conn.wrapper_settings.bg_id == "async-pool"
                cur = await conn.execute("SELECT %s::int * 2", (21,))
                assert await cur.fetchone() == (42,)
                first = conn
            # Back in the pool as the proxy: the next checkout is the same one.
            if close_returns:
                conn = await pool.getconn()
                assert conn is first
                await conn.close()  # returns it to the pool
            async with pool.connection() as again:
                assert again is first
                assert not again.closed
            assert pool.get_stats().get("connections_num", 0) == 1
        finally:
            await pool.close()

    run(main())
