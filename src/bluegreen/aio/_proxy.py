"""The asyncio proxies: the driver's AsyncConnection and AsyncCursor with
the plugins' asyncio hooks on the calls that talk to the server.

They mirror the synchronous proxies (:mod:`bluegreen.connection`,
:mod:`bluegreen.cursor`): the same state objects, the same gate (calm: the
call is one attribute check plus the driver's coroutine), the same
transparent reconnect (the hook raises :class:`~bluegreen.pipeline.Reconnected`
after swapping the driver connection; the call is then made on a driver
cursor made anew). Attributes the proxies do not define are the driver's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from ..connection import ConnectionState, WrapperAttributes
from ..cursor import CursorState
from ..errors import OperationalError
from ..pipeline import OPEN, Reconnected

if TYPE_CHECKING:
    from types import TracebackType

    from ..pipeline import Gate, Pipeline
    from ..settings import ConnectionConfig

__all__ = ["AsyncConnection", "AsyncCursor"]

_set = object.__setattr__
_CONN_SLOTS = frozenset({"_bg", "_bg_closed", "_bg_config", "_bg_pipeline"})
_CUR_SLOTS = frozenset({"_bg", "_bg_conn", "_bg_make"})
#: How often a call is made anew after the connection was replaced under it.
_REBUILDS = 3


async def _run_hooked(
    conn: _AsyncBase,
    name: str,
    make_call: Callable[[], Callable[[], Awaitable[Any]]],
) -> Any:
    """``await hook(conn, name, make_call())``; made anew on the new driver
    connection when the hook replaced it first (:class:`Reconnected`)."""
    hook: Any = conn._bg.hook
    assert hook is not None
    for _ in range(_REBUILDS):
        try:
            return await hook(conn, name, make_call())
        except Reconnected:
            continue
    raise OperationalError(
        f"{name}(): the connection was replaced {_REBUILDS} times in a row "
        "without the call being made; it was not sent"
    )


class _AsyncBase(WrapperAttributes):
    """What the asyncio connection proxies share: the state, delegation,
    the wrapper's properties, closing, and what plugins call."""

    __slots__ = ("_bg", "_bg_closed", "_bg_config", "_bg_pipeline")

    _bg: ConnectionState
    _bg_config: ConnectionConfig
    _bg_pipeline: Pipeline | None
    _bg_closed: bool

    def __init__(
        self, raw: Any, config: ConnectionConfig, pipeline: Pipeline | None
    ) -> None:
        hook = None if pipeline is None else pipeline.execute
        state = ConnectionState(raw, config.adapter, hook, OPEN)
        _set(self, "_bg", state)
        _set(self, "_bg_config", config)
        _set(self, "_bg_pipeline", pipeline)
        _set(self, "_bg_closed", False)
        if pipeline is not None:
            state.gate = pipeline.gate()

    # -- delegation ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in _CONN_SLOTS:
            raise AttributeError(name)
        return getattr(self._bg.raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CONN_SLOTS:
            _set(self, name, value)
        else:
            setattr(self._bg.raw, name, value)

    def __repr__(self) -> str:
        st = self._bg
        ep = self._bg_config.endpoint()
        state = "closed" if st.adapter.is_closed(st.raw) else "open"
        return (
            f"<bluegreen.{type(self).__name__} {st.adapter.name} host={ep.host!r} "
            f"port={ep.port} {state} at 0x{id(self):x}>"
        )

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The driver's connection class (``type(conn)`` is still this one)."""
        return type(self._bg.raw)

    @property
    def _bg_gate(self) -> Gate:
        return self._bg.gate

    def close(self) -> Any:
        """Close the driver connection as the driver does (psycopg: ``await
        conn.close()``; aiomysql: ``conn.close()`` at once), then tell the
        plugins (once). A psycopg_pool pool made with ``close_returns=True``
        takes the proxy back instead (as psycopg's own ``close()`` hands the
        connection to the pool), so its next checkout is protected too."""
        st = self._bg
        adapter = st.adapter
        if adapter.returns_to_pools:
            pool = adapter.pool_taking_back(st.raw)
            if pool is not None and not adapter.is_closed(st.raw):
                return pool.putconn(self)
        try:
            outcome = st.raw.close()
        except BaseException:
            self._bg_notify_close()
            raise
        if inspect.isawaitable(outcome):
            return self._bg_closing(outcome)
        self._bg_notify_close()
        return outcome

    async def _bg_closing(self, closing: Awaitable[Any]) -> Any:
        try:
            return await closing
        finally:
            self._bg_notify_close()

    # -- for plugins --------------------------------------------------------------

    def swap_driver_connection(self, raw: Any) -> Any:
        """Put ``raw`` in place of the driver connection; return the old one
        (see :meth:`bluegreen.Connection.swap_driver_connection`)."""
        old = self._bg.raw
        self._bg.raw = raw
        return old

    def refresh_gate(self) -> None:
        """Ask the pipeline for this connection's gate again."""
        pipeline = self._bg_pipeline
        if pipeline is not None:
            self._bg.gate = pipeline.gate()


class AsyncConnection(_AsyncBase):
    """The proxy :func:`bluegreen.connect_async` returns.

    Behaves like the driver's asyncio connection (``isinstance(conn,
    psycopg.AsyncConnection)`` holds); the driver's own is
    :attr:`driver_connection`. Errors from the driver pass through unchanged.
    """

    __slots__ = ()

    # -- calls ----------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """A cursor; arguments go to the driver unchanged. As with the
        driver: psycopg returns it, aiomysql an awaitable (``await
        conn.cursor()`` or ``async with conn.cursor() as cur``)."""
        st = self._bg
        if st.adapter.cursor_is_awaitable:
            return _CursorOpening(self, args, kwargs)
        return self._bg_wrap(st.raw.cursor(*args, **kwargs), args, kwargs)

    def _bg_wrap(
        self, cur: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncCursor:
        st = self._bg
        hook = st.hook
        if hook is None:
            return AsyncCursor(cur, self, None, None)
        streaming = st.adapter.is_streaming_cursor(cur)
        return AsyncCursor(
            cur, self, hook, hook if streaming else None, st.raw, (args, kwargs)
        )

    async def execute(
        self, query: Any, params: Any = None, **kwargs: Any
    ) -> AsyncCursor:
        """psycopg's ``AsyncConnection.execute()``: a new cursor, executed."""
        self._bg_postgres("execute")
        binary = kwargs.pop("binary", None)
        cur: AsyncCursor = self.cursor(binary=True) if binary else self.cursor()
        await cur.execute(query, params, **kwargs)
        return cur

    def _bg_postgres(self, name: str) -> None:
        if self._bg.adapter.family != "postgres":
            raise AttributeError(
                f"{type(self._bg.raw).__name__!r} connections have no {name!r}"
            )

    async def commit(self) -> None:
        """Commit the current transaction."""
        await self._bg_end("commit")

    async def rollback(self) -> None:
        """Roll back the current transaction."""
        await self._bg_end("rollback")

    async def _bg_end(self, name: str) -> None:
        st = self._bg
        if st.hook is None or st.gate.calm:
            raw = st.raw
            await getattr(raw, name)()
        else:
            await _run_hooked(self, name, lambda: getattr(self._bg.raw, name))
        st.adapter.transaction_ended(st.raw)

    def transaction(self, *args: Any, **kwargs: Any) -> _HookedTransaction:
        """psycopg's ``transaction()`` block; entering it (BEGIN or a
        SAVEPOINT) and leaving it (COMMIT or ROLLBACK) go through the
        plugins."""
        self._bg_postgres("transaction")
        return _HookedTransaction(self, args, kwargs)

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        """As the driver's own (psycopg: commit on success, roll back on an
        exception, then close; aiomysql: close), with commit and rollback
        going through the plugins."""
        st = self._bg
        return await st.adapter.aexit(self, st.raw, exc_type, exc, tb)


class AsyncCursor:
    """The proxy of a driver's asyncio cursor (``AsyncConnection.cursor()``)."""

    __slots__ = ("_bg", "_bg_conn", "_bg_make")

    _bg: CursorState
    _bg_conn: AsyncConnection

    def __init__(
        self,
        cursor: Any,
        connection: AsyncConnection,
        hook: Any,
        fetch_hook: Any,
        home: Any = None,
        make: tuple[tuple[Any, ...], dict[str, Any]] = ((), {}),
    ) -> None:
        _set(self, "_bg", CursorState(cursor, connection._bg, hook, fetch_hook, home))
        _set(self, "_bg_conn", connection)
        _set(self, "_bg_make", make)

    def __getattr__(self, name: str) -> Any:
        if name in _CUR_SLOTS:
            raise AttributeError(name)
        return getattr(self._bg.cur, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CUR_SLOTS:
            _set(self, name, value)
        else:
            setattr(self._bg.cur, name, value)

    def __repr__(self) -> str:
        return f"<bluegreen.AsyncCursor wrapping {type(self._bg.cur).__qualname__}>"

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._bg.cur)

    @property
    def driver_cursor(self) -> Any:
        """The driver's own cursor."""
        return self._bg.cur

    @property
    def connection(self) -> AsyncConnection:
        """The :class:`AsyncConnection` proxy of this cursor."""
        return self._bg_conn

    def _bg_refresh(self) -> Any:
        """The driver cursor, made again on the connection's current driver
        connection if a plugin replaced it."""
        st = self._bg
        raw = st.conn.raw
        if raw is st.home:
            return st.cur
        args, kwargs = self._bg_make
        new = raw.cursor(*args, **kwargs)
        st.conn.adapter.copy_cursor_state(st.cur, new)
        st.cur = new
        st.home = raw
        return new

    async def _bg_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Call ``name`` through the hook on the current driver cursor (made
        anew, and the call with it, when the hook replaced the connection)."""
        conn = self._bg_conn
        hook: Any = conn._bg.hook
        for _ in range(_REBUILDS):
            cur = await self._bg_arefresh()
            call = functools.partial(getattr(cur, name), *args, **kwargs)
            try:
                return cur, await hook(conn, name, call)
            except Reconnected:
                continue
        raise OperationalError(
            f"{name}(): the connection was replaced {_REBUILDS} times in a row "
            "without the call being made; it was not sent"
        )

    async def _bg_arefresh(self) -> Any:
        """:meth:`_bg_refresh` where making a cursor may be awaited."""
        st = self._bg
        raw = st.conn.raw
        if raw is st.home:
            return st.cur
        args, kwargs = self._bg_make
        new = raw.cursor(*args, **kwargs)
        if inspect.isawaitable(new):
            new = await new
        st.conn.adapter.copy_cursor_state(st.cur, new)
        st.cur = new
        st.home = raw
        return new

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        """Execute a statement; return this proxy where the driver returns
        its cursor."""
        st = self._bg
        cur = st.cur
        if st.hook is None or ((cs := st.conn).gate.calm and cs.raw is st.home):
            result = await cur.execute(query, params, **kwargs)
        else:
            cur, result = await self._bg_call("execute", (query, params), kwargs)
        return self if result is cur else result

    async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        """Execute a statement for each parameter set."""
        st = self._bg
        cur = st.cur
        if st.hook is None or ((cs := st.conn).gate.calm and cs.raw is st.home):
            result = await cur.executemany(query, params_seq, **kwargs)
        else:
            cur, result = await self._bg_call(
                "executemany", (query, params_seq), kwargs
            )
        return self if result is cur else result

    async def _bg_fetch(self, name: str, *args: Any) -> Any:
        st = self._bg
        hook = st.fetch_hook
        method = getattr(st.cur, name)
        if hook is None or st.conn.gate.calm:
            return await method(*args)
        return await cast(Any, hook)(
            self._bg_conn, name, functools.partial(method, *args)
        )

    async def fetchone(self) -> Any:
        """Fetch the next row, or ``None``."""
        return await self._bg_fetch("fetchone")

    async def fetchmany(self, size: int = 0) -> Any:
        """Fetch the next rows (``size`` 0: :attr:`arraysize`)."""
        return await self._bg_fetch("fetchmany", size)

    async def fetchall(self) -> Any:
        """Fetch all remaining rows."""
        return await self._bg_fetch("fetchall")

    async def scroll(self, value: int, mode: str = "relative") -> None:
        """Move in the result (a network call on server-side cursors)."""
        await self._bg_fetch("scroll", value, mode)

    def __aiter__(self) -> AsyncIterator[Any]:
        st = self._bg
        if st.fetch_hook is None:
            return st.cur.__aiter__()  # type: ignore[no-any-return]
        return self._bg_stream()

    async def _bg_stream(self) -> AsyncIterator[Any]:
        """The driver's own iteration (a server-side cursor fetches
        ``itersize`` rows per round trip), each step through the hook while
        the gate is not calm."""
        st = self._bg
        it = st.cur.__aiter__()
        hook: Any = st.fetch_hook
        cs = st.conn
        while True:
            if cs.gate.calm:
                try:
                    row = await it.__anext__()
                except StopAsyncIteration:
                    return
            else:
                row = await hook(
                    self._bg_conn, "fetchmany", functools.partial(_first, it)
                )
                if row is _END:
                    return
            yield row

    async def stream(
        self, query: Any, params: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """psycopg's ``stream()``: rows as the server sends them. Starting
        it goes through the plugins; the rows are then read as they come
        (the stream continues a statement begun on this connection)."""
        st = self._bg
        if st.hook is None or ((cs := st.conn).gate.calm and cs.raw is st.home):
            it = st.cur.stream(query, params, **kwargs)
            first = await _first(it)
        else:
            holder: list[Any] = []

            def make() -> Callable[[], Awaitable[Any]]:
                it = self._bg_refresh().stream(query, params, **kwargs)
                holder[:] = [it]
                return functools.partial(_first, it)

            first = await _run_hooked(self._bg_conn, "stream", make)
            it = holder[0]
        if first is _END:
            return
        yield first
        async for row in it:
            yield row

    async def close(self) -> None:
        """Close the driver cursor."""
        await self._bg.cur.close()

    async def __aenter__(self) -> AsyncCursor:
        await self._bg.cur.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return await self._bg.cur.__aexit__(exc_type, exc, tb)


class _CursorOpening:
    """What ``cursor()`` returns where the driver's is awaitable (aiomysql):
    awaited, the cursor proxy; as an async context manager, the cursor
    proxy, closed on exit."""

    __slots__ = ("_args", "_conn", "_cur")

    def __init__(
        self, conn: AsyncConnection, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._conn = conn
        self._args = (args, kwargs)
        self._cur: AsyncCursor | None = None

    async def _open(self) -> AsyncCursor:
        args, kwargs = self._args
        conn = self._conn
        cur = await conn._bg.raw.cursor(*args, **kwargs)
        proxy: AsyncCursor = conn._bg_wrap(cur, args, kwargs)
        return proxy

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncCursor:
        self._cur = await self._open()
        return self._cur

    async def __aexit__(self, *exc: Any) -> None:
        if self._cur is not None:
            await self._cur.close()


class _HookedTransaction:
    """The driver's transaction context manager, entered and left through
    the plugins."""

    __slots__ = ("_args", "_cm", "_conn")

    def __init__(
        self, conn: AsyncConnection, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._conn = conn
        self._args = (args, kwargs)
        self._cm: Any = None

    async def __aenter__(self) -> Any:
        conn = self._conn
        args, kwargs = self._args

        def make() -> Callable[[], Awaitable[Any]]:
            self._cm = conn._bg.raw.transaction(*args, **kwargs)
            return self._cm.__aenter__  # type: ignore[no-any-return]

        st = conn._bg
        if st.hook is None or st.gate.calm:
            return await make()()
        return await _run_hooked(conn, "transaction", make)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        conn = self._conn
        st = conn._bg
        leave = functools.partial(self._cm.__aexit__, exc_type, exc, tb)
        if st.hook is None or st.gate.calm:
            return await leave()
        name = "commit" if exc_type is None else "rollback"
        return await cast(Any, st.hook)(conn, name, leave)


_END: Any = object()


async def _first(it: AsyncIterator[Any]) -> Any:
    """The first item of ``it``, or :data:`_END`."""
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return _END
