"""The Cursor proxy: the driver's cursor with plugin hooks on network calls.

When no plugin of the connection hooks ``execute``, every method is one
attribute check plus the driver call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._hooked import hooked
from .drivers._surface import Kind

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Connection
    from .pipeline import ExecuteHook

__all__ = ["Cursor"]

_SLOTS = frozenset({"_bg_cur", "_bg_conn", "_bg_hook", "_bg_fetch_hook"})
_set = object.__setattr__


class Cursor:
    """A PEP 249 cursor proxy.

    Driver-specific attributes and methods (``rownumber``, ``scroll``,
    ``row_factory``, ...) are delegated to the driver cursor, available as
    :attr:`driver_cursor`. Errors from the driver pass through unchanged.
    """

    __slots__ = ("_bg_conn", "_bg_cur", "_bg_fetch_hook", "_bg_hook")

    _bg_cur: Any
    _bg_conn: Connection
    _bg_hook: ExecuteHook | None
    _bg_fetch_hook: ExecuteHook | None

    def __init__(
        self,
        cursor: Any,
        connection: Connection,
        hook: ExecuteHook | None,
        fetch_hook: ExecuteHook | None,
    ) -> None:
        _set(self, "_bg_cur", cursor)
        _set(self, "_bg_conn", connection)
        _set(self, "_bg_hook", hook)
        _set(self, "_bg_fetch_hook", fetch_hook)

    # -- delegation ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in _SLOTS:
            raise AttributeError(name)
        attr = getattr(self._bg_cur, name)
        hook = self._bg_hook
        if hook is not None:
            conn = self._bg_conn
            kind = conn._bg_adapter.surface.cursor_hooks.get(name)
            if kind is Kind.STREAM:
                hook = self._bg_fetch_hook  # only streaming cursors read then
                if hook is None:
                    return attr
            if kind is not None:
                return hooked(conn, hook, name, kind, attr)
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SLOTS:
            _set(self, name, value)
        else:
            setattr(self._bg_cur, name, value)

    def __repr__(self) -> str:
        return f"<bluegreen.Cursor wrapping {type(self._bg_cur).__qualname__}>"

    @property
    def driver_cursor(self) -> Any:
        """The driver's own cursor."""
        return self._bg_cur

    @property
    def connection(self) -> Connection:
        """The :class:`~bluegreen.connection.Connection` proxy of this cursor."""
        return self._bg_conn

    # -- attributes ---------------------------------------------------------

    @property
    def description(self) -> Sequence[Any] | None:
        """PEP 249 ``description`` of the last result."""
        return self._bg_cur.description  # type: ignore[no-any-return]

    @property
    def rowcount(self) -> int:
        """PEP 249 ``rowcount``."""
        return self._bg_cur.rowcount  # type: ignore[no-any-return]

    @property
    def lastrowid(self) -> Any:
        """The id of the last inserted row, as the driver reports it."""
        return self._bg_cur.lastrowid

    @property
    def arraysize(self) -> int:
        """Rows fetched by :meth:`fetchmany` without a size."""
        return self._bg_cur.arraysize  # type: ignore[no-any-return]

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._bg_cur.arraysize = value

    # -- network-bound calls --------------------------------------------------

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Execute a statement; return what the driver returns (this proxy
        instead of the driver cursor)."""
        cur = self._bg_cur
        hook = self._bg_hook
        if hook is None:
            result = cur.execute(*args, **kwargs)
        else:
            result = hook(
                self._bg_conn,
                "execute",
                functools.partial(cur.execute, *args, **kwargs),
            )
        return self if result is cur else result

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        """Execute a statement for each parameter set."""
        cur = self._bg_cur
        hook = self._bg_hook
        if hook is None:
            result = cur.executemany(*args, **kwargs)
        else:
            result = hook(
                self._bg_conn,
                "executemany",
                functools.partial(cur.executemany, *args, **kwargs),
            )
        return self if result is cur else result

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        """Call a stored procedure."""
        cur = self._bg_cur
        hook = self._bg_hook
        if hook is None:
            result = cur.callproc(*args, **kwargs)
        else:
            result = hook(
                self._bg_conn,
                "callproc",
                functools.partial(cur.callproc, *args, **kwargs),
            )
        return self if result is cur else result

    def nextset(self) -> Any:
        """Move to the next result set."""
        hook = self._bg_hook
        if hook is None:
            return self._bg_cur.nextset()
        return hook(self._bg_conn, "nextset", self._bg_cur.nextset)

    def fetchone(self) -> Any:
        """Fetch the next row, or ``None``."""
        hook = self._bg_fetch_hook
        if hook is None:
            return self._bg_cur.fetchone()
        return hook(self._bg_conn, "fetchone", self._bg_cur.fetchone)

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        """Fetch the next rows (``size`` defaults to :attr:`arraysize`)."""
        hook = self._bg_fetch_hook
        if hook is None:
            return self._bg_cur.fetchmany(*args, **kwargs)
        return hook(
            self._bg_conn,
            "fetchmany",
            functools.partial(self._bg_cur.fetchmany, *args, **kwargs),
        )

    def fetchall(self) -> Any:
        """Fetch all remaining rows."""
        hook = self._bg_fetch_hook
        if hook is None:
            return self._bg_cur.fetchall()
        return hook(self._bg_conn, "fetchall", self._bg_cur.fetchall)

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        hook = self._bg_fetch_hook
        if hook is None:
            row = self._bg_cur.fetchone()
        else:
            row = hook(self._bg_conn, "fetchone", self._bg_cur.fetchone)
        if row is None:
            raise StopIteration
        return row

    # -- local calls ----------------------------------------------------------

    def close(self) -> None:
        """Close the driver cursor."""
        self._bg_cur.close()

    def setinputsizes(self, sizes: Any) -> None:
        """PEP 249 ``setinputsizes`` (a no-op where the driver lacks it)."""
        method = getattr(self._bg_cur, "setinputsizes", None)
        if method is not None:
            method(sizes)

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """PEP 249 ``setoutputsize`` (a no-op where the driver lacks it)."""
        method = getattr(self._bg_cur, "setoutputsize", None)
        if method is not None:
            method(size, column)

    def __enter__(self) -> Cursor:
        self._bg_cur.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> Any:
        return self._bg_cur.__exit__(exc_type, exc_val, exc_tb)
