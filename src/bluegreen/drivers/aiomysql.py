"""Adapter for aiomysql (``aiomysql.connect``): PyMySQL's protocol on asyncio.

aiomysql takes PyMySQL's parameters (``db`` for the database) and raises
PyMySQL's exceptions, so most of what the PyMySQL adapter knows holds; what
talks to the server is awaited. ``conn.cursor()`` returns an awaitable.
The monitors are threads and use PyMySQL with the same parameters
(:attr:`monitor_adapter`).

IP substitution connects to the address itself: aiomysql has no way to
open the connection to one address under another name, so with TLS the
certificate chain is verified but not the host name (set ``ssl`` with
``check_hostname=False``, or keep ``bg_suspend_new_blue_connections`` off
and DNS-based routing, if your CA setup needs the name).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import aiomysql

from .._types import DBAPIConnection
from .base import DriverAdapter, DriverParams
from .pymysql import PyMySQLAdapter

__all__ = ["AiomysqlAdapter"]

#: aiomysql's own arguments, which PyMySQL (the monitors) does not take.
_ASYNC_ONLY = frozenset({"loop", "echo"})


class AiomysqlAdapter(PyMySQLAdapter):
    """aiomysql's ``Connection``: ``connect()`` and ``cursor()`` are awaited."""

    name = "aiomysql"
    is_async = True
    cursor_is_awaitable = True
    timeout_keys = ("connect_timeout",)
    #: aiomysql waits without limit when no connect timeout is given.
    default_timeout = None  # type: ignore[assignment]
    monitoring_drop_keys = PyMySQLAdapter.monitoring_drop_keys | _ASYNC_ONLY

    __slots__ = ()

    def _monitoring_twin(self) -> DriverAdapter:
        """PyMySQL's adapter, for the monitor threads."""
        import pymysql

        return PyMySQLAdapter(pymysql.connect)

    def monitoring_params(self, params: DriverParams, overrides: Any) -> DriverParams:
        """PyMySQL's parameters for the monitors: aiomysql's, with ``db``
        under the name PyMySQL prefers (``database``)."""
        monitoring = super().monitoring_params(params, overrides)
        kwargs = dict(monitoring.kwargs)
        if "db" in kwargs and "database" not in kwargs:
            kwargs["database"] = kwargs.pop("db")
        return DriverParams(monitoring.conninfo, kwargs)

    def known_parameters(self) -> frozenset[str]:
        """The keyword parameters of ``aiomysql.connect``."""
        return frozenset(inspect.signature(aiomysql.connect).parameters)

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        conn: DBAPIConnection = self.target(**kwargs)  # an awaitable
        return conn

    def _connect_ip(
        self, params: DriverParams, kwargs: dict[str, Any], ip: str
    ) -> DBAPIConnection:
        """Connect to the address itself (see the module docstring)."""
        kwargs["host"] = ip
        return self._call(params, kwargs)

    def is_closed(self, conn: Any) -> bool:
        """``conn.closed``."""
        return bool(conn.closed)

    def set_autocommit(self, conn: Any, value: bool) -> Any:
        """``conn.autocommit(value)`` (an awaitable)."""
        return conn.autocommit(value)

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Unbuffered ``SSCursor`` and subclasses read rows while fetching."""
        return isinstance(cursor, aiomysql.SSCursor)

    async def aquery(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """A plain buffered cursor (tuple rows), whatever ``cursorclass`` the
        connection was given."""
        cur = await conn.cursor(aiomysql.Cursor)
        try:
            await cur.execute(sql, params)
            if cur.description is None:
                return []
            return [tuple(row) for row in await cur.fetchall()]
        finally:
            await cur.close()

    def peer_closed(self, conn: Any) -> bool:
        """The event loop has read the end of the stream, or bytes nobody
        asked for (MySQL sends nothing on an idle connection unless it is
        dropping it)."""
        reader = getattr(conn, "_reader", None)
        if reader is None:
            return True
        return bool(reader.at_eof() or getattr(reader, "_buffer", b""))

    async def arestore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """:meth:`~PyMySQLAdapter.restore_session`, awaited."""
        db = conn.db.decode() if isinstance(conn.db, bytes) else conn.db
        if state.get("db") and state["db"] != db:
            await conn.select_db(state["db"])
        if state.get("charset") and state["charset"] != conn.charset:
            await conn.set_charset(state["charset"])
        if "autocommit" in state and bool(conn.get_autocommit()) != state["autocommit"]:
            await conn.autocommit(state["autocommit"])
