"""The proxy of an asyncpg connection: asyncpg's own API, with the calls
that talk to the server going through the plugins.

Hooked: ``execute``, ``executemany``, ``fetch``, ``fetchrow``, ``fetchval``,
``fetchmany``, the ``copy_*`` calls, ``set_type_codec``,
``set_builtin_type_codec``, ``reload_schema_state``, ``reset``,
``add_listener`` / ``remove_listener``, entering and leaving
``transaction()`` (or its ``start()``, ``commit()``, ``rollback()``),
``prepare()`` and the calls of the statement it returns (prepared again on a
replacement connection), and ``cursor()``: each step of its iteration, or
making it when it is awaited. Not hooked: ``fetch()`` and ``forward()`` of
an awaited cursor (they continue it inside its transaction). A connection the
switchover dropped while idle is replaced transparently as for the other
drivers; asyncpg's per-connection state (type codecs, prepared statements,
listeners) is not carried over: set ``bg_on_reconnect`` (it may be a
coroutine function) to register codecs again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._proxy import _AsyncBase, _run_hooked

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["AsyncpgConnection"]

#: asyncpg's calls that talk to the server and start something of their own.
_HOOKED = (
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "fetchmany",
    "copy_from_table",
    "copy_to_table",
    "copy_from_query",
    "copy_records_to_table",
    "set_type_codec",
    "set_builtin_type_codec",
    "reset_type_codec",
    "reload_schema_state",
    "reset",
    "add_listener",
    "remove_listener",
)


def _hooked(name: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: AsyncpgConnection, *args: Any, **kwargs: Any) -> Any:
        return await self._bg_run(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"asyncpg's ``Connection.{name}()``, through the plugins."
    return call


class AsyncpgConnection(_AsyncBase):
    """The proxy :func:`bluegreen.connect_async` returns for asyncpg
    (``isinstance(conn, asyncpg.Connection)`` holds)."""

    __slots__ = ()

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """This proxy's own class: asyncpg's ``isinstance`` check already
        holds (see :func:`proxy_class`), and asyncpg's pool calls methods
        through the class of the connection it holds, which must be the
        hooked ones."""
        return type(self)

    async def _bg_run(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        st = self._bg
        if st.hook is None or st.gate.calm:
            return await getattr(st.raw, name)(*args, **kwargs)

        def make() -> Callable[[], Awaitable[Any]]:
            return functools.partial(getattr(self._bg.raw, name), *args, **kwargs)

        return await _run_hooked(self, name, make)

    async def prepare(self, query: str, **kwargs: Any) -> AsyncpgPreparedStatement:
        """asyncpg's ``prepare()``, through the plugins; the statement it
        returns runs through them too, and is prepared again on the new
        driver connection when a switchover replaced the old one."""
        stmt = AsyncpgPreparedStatement(self, query, kwargs)
        await stmt._bg_ready()
        return stmt

    def cursor(self, query: str, *args: Any, **kwargs: Any) -> AsyncpgCursorFactory:
        """asyncpg's ``cursor()`` (inside a transaction): iterated, each
        step goes through the plugins while a switchover is near; awaited,
        the cursor is made through them (its ``fetch()`` and ``forward()``
        then continue on the same driver connection)."""
        return AsyncpgCursorFactory(self, query, args, kwargs)

    def transaction(self, **kwargs: Any) -> AsyncpgTransaction:
        """asyncpg's ``transaction()``: as an ``async with`` block, or with
        ``start()``, ``commit()`` and ``rollback()``, through the plugins."""
        return AsyncpgTransaction(self, kwargs)

    def close(self, *, timeout: float | None = None) -> Any:
        """``await conn.close()``, then the plugins are told."""
        return self._bg_closing(self._bg.raw.close(timeout=timeout))

    def terminate(self) -> None:
        """Close at once, without a word to the server."""
        try:
            self._bg.raw.terminate()
        finally:
            self._bg_notify_close()


for _name in _HOOKED:
    setattr(AsyncpgConnection, _name, _hooked(_name))


@functools.cache
def proxy_class() -> type[AsyncpgConnection]:
    """:class:`AsyncpgConnection` with asyncpg's own base for connection
    proxies (the one its pool uses), so that ``isinstance(conn,
    asyncpg.Connection)`` holds: asyncpg's check looks at the proxy's
    classes, not at ``__class__``. Made on first use: asyncpg is optional."""
    from asyncpg.connection import _ConnectionProxy

    cls: type[AsyncpgConnection] = type(
        "AsyncpgConnection",
        (AsyncpgConnection, _ConnectionProxy),
        {"__slots__": (), "__module__": __name__, "__doc__": AsyncpgConnection.__doc__},
    )
    return cls


#: What a prepared statement runs (its other methods read what it holds).
_STATEMENT_CALLS = (
    "fetch",
    "fetchrow",
    "fetchval",
    "fetchmany",
    "executemany",
    "explain",
)


class AsyncpgPreparedStatement:
    """asyncpg's ``PreparedStatement``, bound to the connection proxy rather
    than to one driver connection: preparing (a Parse, which runs nothing)
    is done again on the current driver connection whenever the plugin has
    replaced it, so a statement cached by the application (SQLAlchemy caches
    them per connection) keeps working after a transparent reconnect."""

    __slots__ = ("_conn", "_home", "_kwargs", "_query", "_stmt")

    def __init__(
        self, conn: AsyncpgConnection, query: str, kwargs: dict[str, Any]
    ) -> None:
        self._conn = conn
        self._query = query
        self._kwargs = kwargs
        self._stmt: Any = None
        self._home: Any = None

    async def _bg_ready(self) -> None:
        """Prepare through the plugins (``conn.prepare()``)."""
        raw = self._conn._bg.raw
        self._stmt = await self._conn._bg_run("prepare", (self._query,), self._kwargs)
        self._home = raw

    async def _bg_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        conn = self._conn
        st = conn._bg
        if st.hook is None or (st.gate.calm and st.raw is self._home):
            return await getattr(self._stmt, name)(*args, **kwargs)

        async def call() -> Any:
            # Made inside the hook: on the driver connection it settled on.
            raw = conn._bg.raw
            if self._home is not raw:
                self._stmt = await raw.prepare(self._query, **self._kwargs)
                self._home = raw
            return await getattr(self._stmt, name)(*args, **kwargs)

        return await _run_hooked(conn, name, lambda: call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stmt, name)


def _statement_call(name: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: AsyncpgPreparedStatement, *args: Any, **kwargs: Any) -> Any:
        return await self._bg_call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"asyncpg's ``PreparedStatement.{name}()``, through the plugins."
    return call


for _name in _STATEMENT_CALLS:
    setattr(AsyncpgPreparedStatement, _name, _statement_call(_name))


class AsyncpgCursorFactory:
    """What the proxy's ``cursor()`` returns: asyncpg's ``CursorFactory``,
    made on the current driver connection, with the plugins on its steps."""

    __slots__ = ("_args", "_conn", "_kwargs", "_query")

    def __init__(
        self,
        conn: AsyncpgConnection,
        query: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._conn = conn
        self._query = query
        self._args = args
        self._kwargs = kwargs

    def _factory(self) -> Any:
        return self._conn._bg.raw.cursor(self._query, *self._args, **self._kwargs)

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> Any:
        conn = self._conn
        st = conn._bg
        if st.hook is None or st.gate.calm:
            return await self._factory()

        def make() -> Callable[[], Awaitable[Any]]:
            return functools.partial(_awaited, self._factory())

        return await _run_hooked(conn, "cursor", make)

    async def __aiter__(self) -> Any:
        conn = self._conn
        st = conn._bg
        it = self._factory().__aiter__()
        while True:
            if st.hook is None or st.gate.calm:
                try:
                    row = await it.__anext__()
                except StopAsyncIteration:
                    return
            else:
                hook: Any = st.hook
                row = await hook(conn, "fetchmany", functools.partial(_next, it))
                if row is _END:
                    return
            yield row


_END: Any = object()


async def _next(it: Any) -> Any:
    try:
        return await it.__anext__()
    except StopAsyncIteration:
        return _END


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class AsyncpgTransaction:
    """asyncpg's ``Transaction``, made on the connection's current driver
    connection, with its start and its end through the plugins."""

    __slots__ = ("_conn", "_kwargs", "_tr")

    def __init__(self, conn: AsyncpgConnection, kwargs: dict[str, Any]) -> None:
        self._conn = conn
        self._kwargs = kwargs
        self._tr: Any = None

    async def start(self) -> None:
        """``BEGIN`` (or a savepoint), through the plugins."""
        conn = self._conn

        def make() -> Callable[[], Awaitable[Any]]:
            self._tr = conn._bg.raw.transaction(**self._kwargs)
            return self._tr.start  # type: ignore[no-any-return]

        st = conn._bg
        if st.hook is None or st.gate.calm:
            await make()()
            return
        await _run_hooked(conn, "transaction", make)

    async def _end(self, name: str) -> None:
        conn = self._conn
        st = conn._bg
        method = getattr(self._tr, name)
        if st.hook is None or st.gate.calm:
            await method()
            return
        hook: Any = st.hook
        await hook(conn, name, method)

    async def commit(self) -> None:
        """``COMMIT`` (or release the savepoint), through the plugins."""
        await self._end("commit")

    async def rollback(self) -> None:
        """``ROLLBACK`` (to the savepoint), through the plugins."""
        await self._end("rollback")

    async def __aenter__(self) -> AsyncpgTransaction:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tr, name)
