"""bluegreen.connect_async() with asyncpg on a real PostgreSQL server:
asyncpg's own API through the proxy, with and without the bg plugin."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.drivers import async_adapter_for
from bluegreen.drivers.asyncpg import dollar_params
from bluegreen.settings import parse_config

pytestmark = pytest.mark.timeout(60)


def kwargs(instance: Any) -> dict[str, Any]:
    kw: dict[str, Any] = instance.connect_kwargs()
    kw["database"] = kw.pop("dbname")
    kw["timeout"] = 5
    return kw


@pytest.mark.parametrize("plugins", ["", "bg"])
def test_asyncpgs_api_through_the_proxy(pg_instance: Any, plugins: str) -> None:
    async def main() -> None:
        conn = await bluegreen.connect_async(
            asyncpg.connect, plugins=plugins, **kwargs(pg_instance)
        )
        assert isinstance(conn, asyncpg.Connection)
        assert isinstance(conn, bluegreen.AsyncpgConnection)
        assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
        await conn.execute("CREATE TEMP TABLE t (v int)")
        await conn.executemany("INSERT INTO t VALUES ($1)", [(1,), (2,), (3,)])
        rows = await conn.fetch("SELECT v FROM t ORDER BY v")
        assert [r["v"] for r in rows] == [1, 2, 3]
        assert (await conn.fetchrow("SELECT max(v) AS m FROM t"))["m"] == 3
        async with conn.transaction():
            await conn.execute("INSERT INTO t VALUES (4)")
        with pytest.raises(ZeroDivisionError):
            async with conn.transaction():
                await conn.execute("INSERT INTO t VALUES (5)")
                raise ZeroDivisionError
        tr = conn.transaction()
        await tr.start()
        await conn.execute("INSERT INTO t VALUES (6)")
        await tr.rollback()
        assert await conn.fetchval("SELECT count(*) FROM t") == 4
        stmt = await conn.prepare("SELECT v FROM t WHERE v > $1 ORDER BY v")
        assert [r[0] for r in await stmt.fetch(2)] == [3, 4]
        async with conn.transaction():
            seen = [r["v"] async for r in conn.cursor("SELECT v FROM t ORDER BY v")]
            cur = await conn.cursor("SELECT v FROM t ORDER BY v")
            assert [r["v"] for r in await cur.fetch(2)] == [1, 2]
            assert (await cur.fetchrow())["v"] == 3
        assert seen == [1, 2, 3, 4]
        await conn.copy_records_to_table("t", records=[(7,), (8,)])
        assert await conn.fetchval("SELECT count(*) FROM t") == 6
        with pytest.raises(asyncpg.UndefinedTableError):
            await conn.fetch("SELECT * FROM no_such_table")
        assert not conn.is_in_transaction()
        await conn.close()
        assert conn.is_closed()

    asyncio.run(main())


def test_dsn_settings_and_endpoint(pg_instance: Any) -> None:
    adapter = async_adapter_for(asyncpg.connect)
    i = pg_instance
    dsn = (
        f"postgresql://{i.app_user}:{i.app_password}@{i.host}:{i.port}/{i.dbname}"
        "?bg_id=orders&application_name=x"
    )
    config = parse_config(adapter, dsn, {"timeout": 5})
    assert config.settings.bg_id == "orders"
    assert "bg_id" not in config.params.conninfo
    ep = config.endpoint()
    assert (ep.host, ep.port, ep.user, ep.dbname) == (
        i.host,
        i.port,
        i.app_user,
        i.dbname,
    )

    async def main() -> None:
        conn = await bluegreen.connect_async(asyncpg.connect, dsn, timeout=5)
        try:
            assert conn.wrapper_settings.bg_id == "orders"
            assert (
                await conn.fetchval("SELECT current_setting('application_name')") == "x"
            )
        finally:
            await conn.close()

    asyncio.run(main())


def test_placeholders_of_the_wrappers_own_queries() -> None:
    assert dollar_params("SELECT %s, %s") == "SELECT $1, $2"
    assert dollar_params("SELECT '100%%', %s") == "SELECT '100%', $1"
    assert dollar_params("SELECT 1") == "SELECT 1"


def test_monitoring_connections_run_asyncpg_on_their_own_loop(pg_instance: Any) -> None:
    """What the monitor threads use: a blocking asyncpg connection."""
    adapter = async_adapter_for(asyncpg.connect)
    monitor = adapter.monitor_adapter
    config = parse_config(adapter, None, kwargs(pg_instance))
    conn = monitor.connect(config.own_params("bg"))
    try:
        assert monitor.query(conn, "SELECT %s::int + 1", [41]) == [(42,)]
        assert not monitor.is_closed(conn)
    finally:
        conn.close()
    assert monitor.is_closed(conn)


def test_asyncpg_pool_with_bluegreen_connections(pg_instance: Any) -> None:
    """asyncpg's own pool takes bluegreen connections through ``connect=``,
    and its calls go through the proxy's hooked methods."""
    kw = kwargs(pg_instance)

    async def connect(*args: Any, **pool_kwargs: Any) -> Any:
        return await bluegreen.connect_async(asyncpg.connect, **kw)

    async def main() -> None:
        pool = await asyncpg.create_pool(connect=connect, min_size=2, max_size=2)
        try:
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
                async with conn.transaction():
                    await conn.execute("SELECT 1")
            assert await pool.fetchval("SELECT 2") == 2
            held = [c for c in pool._holders if c._con is not None]
            assert held and all(
                isinstance(c._con, bluegreen.AsyncpgConnection) for c in held
            )
        finally:
            await pool.close()

    asyncio.run(main())


def test_the_wrappers_errors_are_asyncpgs_own() -> None:
    errors = async_adapter_for(asyncpg.connect).errors
    exc = errors.SwitchoverTimeoutError("waited 30000 ms; it is safe to retry")
    assert isinstance(exc, asyncpg.InterfaceError)
    assert isinstance(exc, bluegreen.SwitchoverTimeoutError)
    assert str(exc) == "waited 30000 ms; it is safe to retry"
    assert exc.detail is None and exc.hint is None  # as asyncpg's own have
    rejected = errors.GreenHostRejectedError("use the blue name")
    assert isinstance(rejected, asyncpg.InterfaceError)
    assert isinstance(rejected, bluegreen.GreenHostRejectedError)


def test_every_server_call_goes_through_the_plugins(pg_instance: Any) -> None:
    """A plugin hooking calls sees each of asyncpg's calls that talk to the
    server, the steps of a cursor and a prepared statement's calls too."""
    from bluegreen import Plugin

    seen: list[str] = []

    class Recorder(Plugin):
        def execute(self, conn: Any, name: str, call: Any) -> Any:
            return call()

        async def execute_async(self, conn: Any, name: str, call: Any) -> Any:
            seen.append(name)
            return await call()

    runtime().plugins.register("recorder", Recorder)

    async def main() -> None:
        conn = await bluegreen.connect_async(
            asyncpg.connect, plugins="recorder", **kwargs(pg_instance)
        )
        try:
            await conn.execute("CREATE TEMP TABLE t (v int)")
            await conn.executemany("INSERT INTO t VALUES ($1)", [(1,), (2,)])
            await conn.fetch("SELECT v FROM t")
            await conn.fetchrow("SELECT 1")
            await conn.fetchval("SELECT 1")
            stmt = await conn.prepare("SELECT v FROM t ORDER BY v")
            await stmt.fetch()
            async with conn.transaction():
                rows = [r async for r in conn.cursor("SELECT v FROM t ORDER BY v")]
                cur = await conn.cursor("SELECT v FROM t ORDER BY v")
                await cur.fetch(1)
            await conn.copy_records_to_table("t", records=[(3,)])
        finally:
            await conn.close()
        assert [r[0] for r in rows] == [1, 2]

    try:
        asyncio.run(main())
    finally:
        runtime().plugins.unregister("recorder")
    assert seen[:6] == [
        "execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare",
    ]  # fmt: skip
    assert seen[6:] == [
        "fetch",  # the prepared statement's
        "transaction",
        "fetchmany", "fetchmany", "fetchmany",  # two rows, then the end
        "cursor",
        "commit",
        "copy_records_to_table",
    ]  # fmt: skip
