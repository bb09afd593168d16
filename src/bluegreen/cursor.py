"""The Cursor proxy: the driver's cursor with plugin hooks on network calls.

When no plugin of the connection hooks ``execute``, every method is one
attribute check plus the driver call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._hooked import hooked, run_hooked
from .drivers._surface import Kind
from .pipeline import Reconnected

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Connection
    from .pipeline import ExecuteHook

__all__ = ["Cursor"]

_SLOTS = frozenset(
    {"_bg_cur", "_bg_conn", "_bg_hook", "_bg_fetch_hook", "_bg_home", "_bg_make"}
)
_NO_ARGS: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
_set = object.__setattr__


class Cursor:
    """A PEP 249 cursor proxy.

    Driver-specific attributes and methods (``rownumber``, ``scroll``,
    ``row_factory``, ...) are delegated to the driver cursor, available as
    :attr:`driver_cursor`. Errors from the driver pass through unchanged.
    """

    __slots__ = (
        "_bg_conn",
        "_bg_cur",
        "_bg_fetch_hook",
        "_bg_home",
        "_bg_hook",
        "_bg_make",
    )

    _bg_cur: Any
    _bg_conn: Connection
    _bg_hook: ExecuteHook | None
    _bg_fetch_hook: ExecuteHook | None
    #: The driver connection ``_bg_cur`` belongs to.
    _bg_home: Any
    #: The arguments the cursor was made with (to make it again).
    _bg_make: tuple[tuple[Any, ...], dict[str, Any]]

    def __init__(
        self,
        cursor: Any,
        connection: Connection,
        hook: ExecuteHook | None,
        fetch_hook: ExecuteHook | None,
        home: Any = None,
        make: tuple[tuple[Any, ...], dict[str, Any]] = _NO_ARGS,
    ) -> None:
        _set(self, "_bg_cur", cursor)
        _set(self, "_bg_conn", connection)
        _set(self, "_bg_hook", hook)
        _set(self, "_bg_fetch_hook", fetch_hook)
        _set(self, "_bg_home", home)
        _set(self, "_bg_make", make)

    def _bg_refresh(self) -> Any:
        """The driver cursor, made again on the connection's current driver
        connection if a plugin replaced it (the old one is closed quietly;
        its settings, such as ``arraysize``, carry over)."""
        conn = self._bg_conn
        raw = conn._bg_raw
        old = self._bg_cur
        if raw is self._bg_home:
            return old
        args, kwargs = self._bg_make
        new = raw.cursor(*args, **kwargs)
        adapter = conn._bg_adapter
        adapter.copy_cursor_state(old, new)
        # It belonged to a connection the server dropped.
        with contextlib.suppress(Exception):
            old.close()
        _set(self, "_bg_cur", new)
        _set(self, "_bg_home", raw)
        return new

    def _bg_again(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Run ``name`` through the hook again on a driver cursor made anew,
        after the hook replaced the connection (:class:`Reconnected`)."""
        hook = self._bg_hook
        assert hook is not None

        def make() -> Any:
            return functools.partial(getattr(self._bg_refresh(), name), *args, **kwargs)

        result = run_hooked(self._bg_conn, hook, name, make)
        return self._bg_cur, result

    # -- delegation ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in _SLOTS:
            raise AttributeError(name)
        hook = self._bg_hook
        if hook is None:
            return getattr(self._bg_cur, name)
        conn = self._bg_conn
        kind = conn._bg_adapter.surface.cursor_hooks.get(name)
        if kind is None:
            return getattr(self._bg_cur, name)
        if kind is Kind.STREAM:
            hook = self._bg_fetch_hook  # only streaming cursors read then
            if hook is None:
                return getattr(self._bg_cur, name)
            return hooked(conn, hook, name, kind, getattr(self._bg_cur, name))
        cur = self._bg_refresh() if conn._bg_raw is not self._bg_home else self._bg_cur
        return hooked(
            conn,
            hook,
            name,
            kind,
            getattr(cur, name),
            lambda: getattr(self._bg_refresh(), name),
        )

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
            conn = self._bg_conn
            if conn._bg_raw is not self._bg_home:
                cur = self._bg_refresh()
            try:
                result = hook(
                    conn, "execute", functools.partial(cur.execute, *args, **kwargs)
                )
            except Reconnected:
                cur, result = self._bg_again("execute", args, kwargs)
        return self if result is cur else result

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        """Execute a statement for each parameter set."""
        cur = self._bg_cur
        hook = self._bg_hook
        if hook is None:
            result = cur.executemany(*args, **kwargs)
        else:
            conn = self._bg_conn
            if conn._bg_raw is not self._bg_home:
                cur = self._bg_refresh()
            try:
                result = hook(
                    conn,
                    "executemany",
                    functools.partial(cur.executemany, *args, **kwargs),
                )
            except Reconnected:
                cur, result = self._bg_again("executemany", args, kwargs)
        return self if result is cur else result

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        """Call a stored procedure."""
        cur = self._bg_cur
        hook = self._bg_hook
        if hook is None:
            result = cur.callproc(*args, **kwargs)
        else:
            conn = self._bg_conn
            if conn._bg_raw is not self._bg_home:
                cur = self._bg_refresh()
            try:
                result = hook(
                    conn, "callproc", functools.partial(cur.callproc, *args, **kwargs)
                )
            except Reconnected:
                cur, result = self._bg_again("callproc", args, kwargs)
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
