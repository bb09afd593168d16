"""asyncio clients behind the scenario matrix's synchronous harness.

The matrix (test_bg_scenarios) drives its workload, its probe and its
checks through DB-API calls from threads. Here every such call becomes a
coroutine on ONE event loop (a daemon thread) through
``bluegreen.connect_async`` and the asyncio driver: the plugin's waits are
awaited on that loop, shared by every client, exactly as in an asyncio
service. A plugin that blocked the loop would stall every client and break
the matrix's deadlines and its 100 ms wake-up check.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from bgharness import Harness

import bluegreen
from bluegreen.drivers.asyncpg import dollar_params


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="bg-test-loop", daemon=True
        )
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


def async_kwargs(driver: str, kw: dict[str, Any]) -> dict[str, Any]:
    """A synchronous driver's connect arguments (psycopg's or PyMySQL's, as
    the harness and the workload give them) in ``driver``'s terms."""
    kw = dict(kw)
    if driver == "asyncpg":
        kw.pop("autocommit", None)
        if "dbname" in kw:
            kw["database"] = kw.pop("dbname")
        if "connect_timeout" in kw:
            kw["timeout"] = kw.pop("connect_timeout")
    elif driver == "aiomysql":
        kw.pop("read_timeout", None)
        kw.pop("write_timeout", None)
        if "database" in kw:
            kw["db"] = kw.pop("database")
    return kw


def target(driver: str) -> Any:
    if driver == "psycopg":
        import psycopg

        return psycopg.AsyncConnection.connect
    if driver == "asyncpg":
        import asyncpg

        return asyncpg.connect
    import aiomysql

    return aiomysql.connect


class FacadeCursor:
    """A cursor whose calls run as coroutines on the loop."""

    def __init__(self, conn: Facade) -> None:
        self.conn = conn
        self.rows: list[Any] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.rows = self.conn.lt.run(self.conn.query(sql, params))

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows

    def close(self) -> None:
        self.rows = []


class Facade:
    """A synchronous view of one asyncio bluegreen connection."""

    def __init__(self, lt: LoopThread, driver: str, aconn: Any) -> None:
        self.lt = lt
        self.driver = driver
        self.aconn = aconn

    async def query(self, sql: str, params: Any) -> list[Any]:
        conn = self.aconn
        if self.driver == "asyncpg":
            rows = await conn.fetch(dollar_params(sql), *(params or ()))
            return [tuple(r) for r in rows]
        cur = conn.cursor()
        if inspect.isawaitable(cur):  # aiomysql
            cur = await cur
        try:
            await cur.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []
        finally:
            await cur.close()

    def cursor(self) -> FacadeCursor:
        return FacadeCursor(self)

    def commit(self) -> None:
        if self.driver != "asyncpg":
            self.lt.run(self.aconn.commit())

    def rollback(self) -> None:
        if self.driver != "asyncpg":
            self.lt.run(self.aconn.rollback())

    def close(self) -> None:
        closing = self.aconn.close()
        if inspect.isawaitable(closing):
            self.lt.run(closing)


def facade_connect(
    lt: LoopThread, driver: str, settings: dict[str, Any]
) -> Callable[..., Facade]:
    """A connect function taking a synchronous driver's arguments."""

    def connect(**kw: Any) -> Facade:
        args = async_kwargs(driver, kw)
        aconn = lt.run(bluegreen.connect_async(target(driver), **args, **settings))
        return Facade(lt, driver, aconn)

    return connect


class AsyncHarness(Harness):
    """The matrix's harness with every bluegreen connection an asyncio one."""

    def __init__(self, base: Harness, driver: str, lt: LoopThread) -> None:
        super().__init__(base.dep, base._start_player, base.driver)
        self.async_driver = driver
        self.lt = lt

    def connect(self, host: str | None = None, **settings: Any) -> Any:
        kw = self.kwargs(host or self.blue_host)
        return facade_connect(self.lt, self.async_driver, settings)(**kw)

    def bg_connect_function(self, **settings: Any) -> Callable[..., Any]:
        return facade_connect(self.lt, self.async_driver, settings)
