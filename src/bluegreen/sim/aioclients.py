"""asyncio clients for the simulator's synchronous workload.

:class:`~bluegreen.sim.workload.Workload`, the scenario tests and
``benchmarks/switchover.py`` drive clients through DB-API calls from
threads. :func:`facade_connect` gives them connections whose every call is
a coroutine on ONE event loop (:class:`LoopThread`, a daemon thread),
through an asyncio driver (psycopg's AsyncConnection, asyncpg, aiomysql),
with or without ``bluegreen.connect_async``: the plugin's waits are awaited
on that loop, shared by every client, as in an asyncio service. A plugin
that blocked the loop would stall every client at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import bluegreen

from ..drivers.asyncpg import dollar_params

__all__ = [
    "ASYNC_DRIVERS",
    "Facade",
    "LoopThread",
    "async_kwargs",
    "facade_connect",
    "run_query",
]

#: The asyncio drivers, by engine.
ASYNC_DRIVERS = {"postgres": ("psycopg", "asyncpg"), "mariadb": ("aiomysql",)}


class LoopThread:
    """An event loop running in a daemon thread, with a ticker that records
    the longest time the loop went without running it (:attr:`max_stall`:
    how long anything, the plugin included, kept the loop busy)."""

    def __init__(self, tick: float = 0.005) -> None:
        self.loop = asyncio.new_event_loop()
        self.max_stall = 0.0
        self._tick = tick
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="bg-test-loop", daemon=True
        )
        self.thread.start()
        self._ticker: asyncio.Task[None] = self.run(self._start_ticker())

    async def _start_ticker(self) -> asyncio.Task[None]:
        return asyncio.ensure_future(self._ticking())

    async def _stop_ticker(self) -> None:
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker

    async def _ticking(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            self.max_stall = max(self.max_stall, now - last - self._tick)
            last = now

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the ticker (ended, not left pending), then the loop."""
        self.run(self._stop_ticker())
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


async def run_query(driver: str, conn: Any, sql: str, params: Any) -> list[Any]:
    """Run ``sql`` (``%s`` placeholders) on the asyncio connection ``conn``
    of ``driver`` in that driver's own way; its rows, as tuples."""
    if driver == "asyncpg":
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
        return await run_query(self.driver, self.aconn, sql, params)

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
    lt: LoopThread,
    driver: str,
    settings: dict[str, Any] | None = None,
    *,
    via_bluegreen: bool = True,
) -> Callable[..., Facade]:
    """A connect function taking a synchronous driver's arguments (as the
    workload gives them) and opening an asyncio connection on ``lt``:
    through ``bluegreen.connect_async`` with ``settings``, or with the
    driver alone."""

    def connect(**kw: Any) -> Facade:
        args = async_kwargs(driver, kw)
        if via_bluegreen:
            opening = bluegreen.connect_async(
                target(driver), **args, **(settings or {})
            )
        else:
            opening = target(driver)(**args)
        return Facade(lt, driver, lt.run(opening))

    return connect
