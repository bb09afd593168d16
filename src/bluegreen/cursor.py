"""The Cursor proxy: the driver's cursor with plugin hooks on network calls.

When no plugin of the connection hooks ``execute``, every method is one
attribute check plus the driver call; while the connection's gate is calm
(see :class:`~.pipeline.Gate`), a few more, and no callable is built.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._hooked import hooked, run_hooked
from .drivers._surface import Kind
from .pipeline import Reconnected

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Connection, ConnectionState
    from .pipeline import ExecuteHook

__all__ = ["Cursor"]

_SLOTS = frozenset(
    {"_bg", "_bg_cur", "_bg_conn", "_bg_hook", "_bg_fetch_hook", "_bg_home", "_bg_make"}
)
_NO_ARGS: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
#: An argument the application did not pass.
_NO: Any = object()
_set = object.__setattr__


def _args(first: Any, second: Any, rest: tuple[Any, ...]) -> tuple[Any, ...]:
    """The positional arguments as the application passed them."""
    if second is not _NO:
        return (first, second, *rest)
    return rest if first is _NO else (first, *rest)


class CursorState:
    """What every call on a cursor reads, held in one object (see
    :class:`~bluegreen.connection.ConnectionState` for why)."""

    __slots__ = ("conn", "cur", "fetch_hook", "home", "hook")

    def __init__(
        self,
        cur: Any,
        conn: ConnectionState,
        hook: ExecuteHook | None,
        fetch_hook: ExecuteHook | None,
        home: Any,
    ) -> None:
        #: The driver cursor.
        self.cur = cur
        #: The state of the cursor's connection (shared, changed in place).
        self.conn = conn
        self.hook = hook
        #: The hook of fetches: streaming cursors only.
        self.fetch_hook = fetch_hook
        #: The driver connection ``cur`` belongs to.
        self.home = home


class Cursor:
    """A PEP 249 cursor proxy.

    Driver-specific attributes and methods (``rownumber``, ``scroll``,
    ``row_factory``, ...) are delegated to the driver cursor, available as
    :attr:`driver_cursor`. Errors from the driver pass through unchanged.
    """

    __slots__ = ("_bg", "_bg_conn", "_bg_make")

    _bg: CursorState
    _bg_conn: Connection
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
        _set(self, "_bg", CursorState(cursor, connection._bg, hook, fetch_hook, home))
        _set(self, "_bg_conn", connection)
        _set(self, "_bg_make", make)

    # The state's fields under their former names (not for hot paths).

    @property
    def _bg_cur(self) -> Any:
        return self._bg.cur

    @_bg_cur.setter
    def _bg_cur(self, cur: Any) -> None:
        self._bg.cur = cur

    @property
    def _bg_hook(self) -> ExecuteHook | None:
        return self._bg.hook

    @property
    def _bg_fetch_hook(self) -> ExecuteHook | None:
        return self._bg.fetch_hook

    @property
    def _bg_home(self) -> Any:
        return self._bg.home

    @_bg_home.setter
    def _bg_home(self, home: Any) -> None:
        self._bg.home = home

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
        st = self._bg
        st.cur = new
        st.home = raw
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
        st = self._bg
        hook = st.hook
        if hook is None:
            return getattr(st.cur, name)
        kind = st.conn.adapter.surface.cursor_hooks.get(name)
        if kind is None:
            return getattr(st.cur, name)
        conn = self._bg_conn
        if kind is Kind.STREAM:
            hook = st.fetch_hook  # only streaming cursors read then
            if hook is None:
                return getattr(st.cur, name)
            return hooked(conn, hook, name, kind, getattr(st.cur, name))
        cur = self._bg_refresh() if st.conn.raw is not st.home else st.cur
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
            setattr(self._bg.cur, name, value)

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
        return self._bg.cur.description  # type: ignore[no-any-return]

    @property
    def rowcount(self) -> int:
        """PEP 249 ``rowcount``."""
        return self._bg.cur.rowcount  # type: ignore[no-any-return]

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

    # The first two arguments are taken apart so that the common calls,
    # execute(query) and execute(query, params), are forwarded without
    # packing and unpacking *args and **kwargs (a third of the proxy's cost).

    def execute(
        self, query: Any = _NO, params: Any = _NO, /, *rest: Any, **kwargs: Any
    ) -> Any:
        """Execute a statement; return what the driver returns (this proxy
        instead of the driver cursor)."""
        st = self._bg
        cur = st.cur
        if st.hook is None or ((cs := st.conn).gate.calm and cs.raw is st.home):
            if params is not _NO and not rest and not kwargs:
                result = cur.execute(query, params)
            elif params is _NO and query is not _NO and not kwargs:
                result = cur.execute(query)
            else:
                result = cur.execute(*_args(query, params, rest), **kwargs)
        else:
            cur, result = self._bg_call("execute", _args(query, params, rest), kwargs)
        return self if result is cur else result

    def executemany(
        self, query: Any = _NO, params_seq: Any = _NO, /, *rest: Any, **kwargs: Any
    ) -> Any:
        """Execute a statement for each parameter set."""
        st = self._bg
        cur = st.cur
        if st.hook is None or ((cs := st.conn).gate.calm and cs.raw is st.home):
            if params_seq is not _NO and not rest and not kwargs:
                result = cur.executemany(query, params_seq)
            else:
                result = cur.executemany(*_args(query, params_seq, rest), **kwargs)
        else:
            cur, result = self._bg_call(
                "executemany", _args(query, params_seq, rest), kwargs
            )
        return self if result is cur else result

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        """Call a stored procedure."""
        st = self._bg
        cur = st.cur
        if st.hook is None or ((cs := st.conn).gate.calm and cs.raw is st.home):
            result = cur.callproc(*args, **kwargs)
        else:
            cur, result = self._bg_call("callproc", args, kwargs)
        return self if result is cur else result

    def _bg_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        """Call ``name`` through the hook; return the driver cursor it ran on
        and its result."""
        hook = self._bg_hook
        assert hook is not None
        conn = self._bg_conn
        cur = self._bg_refresh() if conn._bg_raw is not self._bg_home else self._bg_cur
        try:
            result = hook(
                conn, name, functools.partial(getattr(cur, name), *args, **kwargs)
            )
        except Reconnected:
            return self._bg_again(name, args, kwargs)
        return cur, result

    def nextset(self) -> Any:
        """Move to the next result set."""
        st = self._bg
        hook = st.hook
        if hook is None or st.conn.gate.calm:
            return st.cur.nextset()
        return hook(self._bg_conn, "nextset", self._bg_cur.nextset)

    def fetchone(self) -> Any:
        """Fetch the next row, or ``None``."""
        st = self._bg
        hook = st.fetch_hook
        if hook is None or st.conn.gate.calm:
            return st.cur.fetchone()
        return hook(self._bg_conn, "fetchone", st.cur.fetchone)

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        """Fetch the next rows (``size`` defaults to :attr:`arraysize`)."""
        st = self._bg
        hook = st.fetch_hook
        if hook is None or st.conn.gate.calm:
            return st.cur.fetchmany(*args, **kwargs)
        return hook(
            self._bg_conn,
            "fetchmany",
            functools.partial(self._bg_cur.fetchmany, *args, **kwargs),
        )

    def fetchall(self) -> Any:
        """Fetch all remaining rows."""
        st = self._bg
        hook = st.fetch_hook
        if hook is None or st.conn.gate.calm:
            return st.cur.fetchall()
        return hook(self._bg_conn, "fetchall", st.cur.fetchall)

    def __iter__(self) -> Any:
        """The rows, as the driver's own iterator yields them (a streaming
        cursor's fetches a batch per round trip: psycopg's named cursors
        ``itersize`` rows), each step through the hooks where fetching is
        hooked."""
        st = self._bg
        hook = st.fetch_hook
        if hook is None:
            return iter(st.cur)
        return self._bg_stream(hook)

    def _bg_stream(self, hook: ExecuteHook) -> Iterator[Any]:
        it = iter(self._bg.cur)
        conn = self._bg_conn
        cs = self._bg.conn
        step = functools.partial(next, it, _NO)
        while True:
            gate = cs.gate
            if gate.calm:
                # The gate is read again before each step: after a row is
                # handed out and before the driver's iterator is resumed.
                for row in it:
                    yield row
                    if not gate.calm:
                        break
                else:
                    return
            else:
                row = hook(conn, "fetchmany", step)
                if row is _NO:
                    return
                yield row

    def __next__(self) -> Any:
        st = self._bg
        hook = st.fetch_hook
        if hook is None or st.conn.gate.calm:
            row = st.cur.fetchone()
        else:
            row = hook(self._bg_conn, "fetchone", st.cur.fetchone)
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
