"""Adapter for psycopg 3's asyncio connections (``psycopg.AsyncConnection.connect``).

Everything that reads parameters or a connection's local state is the
synchronous adapter's (the two connection classes share it); what talks to
the server is awaited here. IP substitution is the same ``host`` +
``hostaddr`` pair, so TLS still verifies the certificate against the name.
The monitors are threads and use psycopg's synchronous connections with the
same parameters (:attr:`monitor_adapter`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from ._libpq import SET_PARAM_SQL
from .base import DriverAdapter
from .psycopg import PsycopgAdapter, changed_params, restore_local

__all__ = ["PsycopgAsyncAdapter"]

#: Connection settings psycopg sets with ``await conn.set_<name>(value)``.
_ASYNC_SETTERS = ("autocommit", "isolation_level", "read_only", "deferrable")


class PsycopgAsyncAdapter(PsycopgAdapter):
    """psycopg's ``AsyncConnection``: ``connect()`` returns an awaitable."""

    name = "psycopg-async"
    is_async = True

    __slots__ = ()

    def _monitoring_twin(self) -> DriverAdapter:
        """psycopg's synchronous adapter, for the monitor threads."""
        return PsycopgAdapter(psycopg.Connection.connect)

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Server-side (named) cursors fetch from the network."""
        return isinstance(cursor, psycopg.AsyncServerCursor)

    def set_autocommit(self, conn: Any, value: bool) -> Any:
        """``conn.set_autocommit(value)`` (an awaitable)."""
        return conn.set_autocommit(value)

    async def aquery(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """:meth:`~PsycopgAdapter.query`, awaited: a plain cursor, tuple rows,
        never prepared."""
        async with psycopg.AsyncCursor(conn, row_factory=tuple_row) as cur:
            await cur.execute(sql, params, prepare=False)
            if cur.description is None:
                return []
            return await cur.fetchall()

    async def arestore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """:meth:`~PsycopgAdapter.restore_session`, awaited."""
        changed = changed_params(conn, state)
        if changed:
            await conn.set_autocommit(True)
            for name, value in changed:
                await self.aquery(conn, SET_PARAM_SQL, (name, value))
        for name in _ASYNC_SETTERS:
            if name in state and getattr(conn, name) != state[name]:
                await getattr(conn, f"set_{name}")(state[name])
        restore_local(conn, state)

    async def aexit(
        self,
        proxy: Any,
        raw: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: Any,
    ) -> None:
        """``async with conn:`` as psycopg does it, with commit and rollback
        going through the proxy: commit on success, roll back on an
        exception (a failed rollback never hides the application's
        exception), then close unless a pool owns the connection."""
        if raw.closed:
            return
        if exc_type is not None:
            with contextlib.suppress(Exception):
                await proxy.rollback()
        else:
            await proxy.commit()
        if not getattr(raw, "_pool", None):
            await proxy.close()
