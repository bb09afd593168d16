"""The Connection proxy: the driver's connection with the plugin pipeline."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._hooked import hooked, run_hooked
from .cursor import Cursor
from .drivers._surface import Kind
from .pipeline import OPEN, Reconnected

if TYPE_CHECKING:
    from types import TracebackType

    from .drivers.base import DriverAdapter
    from .pipeline import ExecuteHook, Gate, Pipeline
    from .settings import ConnectionConfig, Settings

__all__ = ["Connection"]

_SLOTS = frozenset(
    {
        "_bg",
        "_bg_raw",
        "_bg_adapter",
        "_bg_config",
        "_bg_pipeline",
        "_bg_hook",
        "_bg_gate",
        "_bg_closed",
        "_bg_assigned",
    }
)
_set = object.__setattr__


class ConnectionState:
    """What every call on a connection reads, held in one object.

    The proxies define ``__getattr__`` (to delegate to the driver), and in
    CPython 3.11 that leaves every attribute read on them unspecialised
    (about 20 ns each, against 2 ns on a plain slotted object). The hot
    paths therefore read the proxy once (``_bg``) and the rest from here.
    Its cursors hold the same object: it is changed in place, never
    replaced.
    """

    __slots__ = ("adapter", "gate", "hook", "raw")

    def __init__(
        self, raw: Any, adapter: DriverAdapter, hook: ExecuteHook | None, gate: Gate
    ) -> None:
        #: The driver connection (replaced by a transparent reconnect).
        self.raw = raw
        self.adapter = adapter
        #: The chained execute hook, or None (no plugin hooks calls).
        self.hook = hook
        #: While calm, calls skip the hook (see :class:`~.pipeline.Gate`).
        self.gate = gate


class WrapperAttributes:
    """What the connection proxies (synchronous and asyncio) tell about
    themselves; they hold a :class:`ConnectionState` in ``_bg``."""

    __slots__ = ()

    _bg: ConnectionState
    _bg_config: ConnectionConfig
    _bg_pipeline: Pipeline | None
    _bg_closed: bool

    def _bg_notify_close(self) -> None:
        """Tell the plugins that the application closed the connection
        (once)."""
        if self._bg_closed:
            return
        _set(self, "_bg_closed", True)
        pipeline = self._bg_pipeline
        if pipeline is not None:
            for on_close in pipeline.close_hooks:
                on_close(cast("Connection", self))

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection."""
        return self._bg.raw

    @property
    def driver_adapter(self) -> DriverAdapter:
        """The adapter of the wrapped driver."""
        return self._bg.adapter

    @property
    def wrapper_config(self) -> ConnectionConfig:
        """Settings and driver parameters parsed at connect time."""
        return self._bg_config

    @property
    def wrapper_settings(self) -> Settings:
        """The validated wrapper settings of this connection."""
        return self._bg_config.settings

    @property
    def wrapper_pipeline(self) -> Pipeline | None:
        """The plugin pipeline, ``None`` when no plugin is configured."""
        return self._bg_pipeline


_F = TypeVar("_F", bound=Callable[..., Any])


class _DriverOnly:
    """A proxy method that exists only where the driver's connection has a
    method of that name, so that ``hasattr(conn, name)`` answers as for the
    driver (psycopg2's extras tell a cursor from a connection by
    ``hasattr(obj, "execute")``)."""

    __slots__ = ("fn", "name")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = fn.__name__

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self.fn
        raw = obj._bg_raw
        if not hasattr(raw, self.name):
            raise AttributeError(
                f"{type(raw).__name__!r} connections have no {self.name!r}"
            )
        return MethodType(self.fn, obj)


def driver_only(fn: _F) -> _F:
    """Make ``fn`` a :class:`_DriverOnly` method (typed as ``fn`` itself)."""
    return cast(_F, _DriverOnly(fn))


class Connection(WrapperAttributes):
    """A PEP 249 connection proxy returned by :func:`bluegreen.connect`.

    Behaves like the driver's connection: attributes and methods it does not
    define (``info``, ``row_factory``, ``adapters``, ``ping()``, ``open``, ...)
    are read from and written to the driver connection, available as
    :attr:`driver_connection`. Errors from the driver pass through unchanged.
    """

    __slots__ = (
        "_bg",
        "_bg_assigned",
        "_bg_closed",
        "_bg_config",
        "_bg_pipeline",
    )

    _bg: ConnectionState
    _bg_config: ConnectionConfig
    _bg_pipeline: Pipeline | None
    _bg_closed: bool
    #: Names the application (or a pool) assigned on the driver connection
    #: through this proxy: a replacement driver connection takes them over.
    _bg_assigned: set[str] | None

    def __init__(
        self, raw: Any, config: ConnectionConfig, pipeline: Pipeline | None
    ) -> None:
        if pipeline is None:
            state = ConnectionState(raw, config.adapter, None, OPEN)
        else:
            state = ConnectionState(raw, config.adapter, pipeline.execute, OPEN)
        _set(self, "_bg", state)
        _set(self, "_bg_config", config)
        _set(self, "_bg_pipeline", pipeline)
        _set(self, "_bg_closed", False)
        _set(self, "_bg_assigned", None)
        if pipeline is not None:
            state.gate = pipeline.gate()

    # The state's fields under their former names (not for hot paths).

    @property
    def _bg_raw(self) -> Any:
        return self._bg.raw

    @_bg_raw.setter
    def _bg_raw(self, raw: Any) -> None:
        self._bg.raw = raw

    @property
    def _bg_adapter(self) -> DriverAdapter:
        return self._bg.adapter

    @property
    def _bg_hook(self) -> ExecuteHook | None:
        return self._bg.hook

    @property
    def _bg_gate(self) -> Gate:
        return self._bg.gate

    @_bg_gate.setter
    def _bg_gate(self, gate: Gate) -> None:
        self._bg.gate = gate

    # -- delegation ---------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in _SLOTS:
            raise AttributeError(name)
        st = self._bg
        raw = st.raw
        hook = st.hook
        if hook is not None:
            kind = st.adapter.surface.connection_hooks.get(name)
            if kind is not None:
                if kind is Kind.GET or kind is Kind.GET_SET:
                    return run_hooked(
                        self,
                        hook,
                        name,
                        lambda: functools.partial(getattr, self._bg_raw, name),
                    )
                return hooked(
                    self,
                    hook,
                    name,
                    kind,
                    getattr(raw, name),
                    lambda: getattr(self._bg_raw, name),
                )
        return getattr(raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SLOTS or name == "autocommit":
            _set(self, name, value)
            return
        st = self._bg
        raw = st.raw
        hook = st.hook
        if hook is not None:
            assigned = self._bg_assigned
            if assigned is None:
                assigned = set()
                _set(self, "_bg_assigned", assigned)
            assigned.add(name)
        if hook is not None and name in st.adapter.surface.connection_setters:
            run_hooked(
                self,
                hook,
                name,
                lambda: functools.partial(setattr, self._bg_raw, name, value),
            )
        else:
            setattr(raw, name, value)

    def __repr__(self) -> str:
        adapter = self._bg_adapter
        try:
            ep = self._bg_config.endpoint()
            where = (
                f"host={ep.host!r} port={ep.port} user={ep.user!r} dbname={ep.dbname!r}"
            )
        except Exception:
            where = "(unknown endpoint)"
        try:
            state = "closed" if adapter.is_closed(self._bg_raw) else "open"
        except Exception:
            state = "unknown"
        return (
            f"<bluegreen.Connection {adapter.name} {where} {state} at 0x{id(self):x}>"
        )

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The driver's connection class, so that ``isinstance(conn,
        psycopg.Connection)`` holds and driver helpers that check it (such as
        ``psycopg.types.TypeInfo.fetch``, used by SQLAlchemy) accept the proxy.
        ``type(conn)`` is still :class:`Connection`."""
        return type(self._bg_raw)

    # -- PEP 249 --------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> Cursor:
        """Create a cursor; arguments go to the driver unchanged."""
        st = self._bg
        hook = st.hook
        if hook is None:
            return Cursor(st.raw.cursor(*args, **kwargs), self, None, None)
        adapter = st.adapter
        if not st.gate.calm and (adapter.cursor_is_call or adapter.is_closed(st.raw)):
            # mysql-connector checks the connection (a ping) in cursor(); and
            # a driver connection already closed (the plugin found it
            # dropped) would refuse to make a cursor at all: the plugins get
            # to replace it first.
            cur = run_hooked(
                self,
                hook,
                "cursor",
                lambda: functools.partial(self._bg.raw.cursor, *args, **kwargs),
            )
        else:
            cur = st.raw.cursor(*args, **kwargs)
        streaming = adapter.is_streaming_cursor(cur)
        return Cursor(
            cur, self, hook, hook if streaming else None, st.raw, (args, kwargs)
        )

    @driver_only
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Cursor:
        """psycopg's ``Connection.execute()``: a new cursor, executed.

        Only psycopg connections have it (for the others the attribute does
        not exist); the call goes through the plugins.
        """
        binary = kwargs.pop("binary", None)
        cur = self.cursor(binary=True) if binary else self.cursor()
        cur.execute(query, params, **kwargs)
        return cur

    def commit(self) -> Any:
        """Commit the current transaction."""
        st = self._bg
        hook = st.hook
        if hook is None:
            return st.raw.commit()
        if st.gate.calm:
            raw = st.raw
            result = raw.commit()
            st.adapter.transaction_ended(raw)
            return result
        try:
            result = hook(self, "commit", self._bg_raw.commit)
        except Reconnected:
            result = run_hooked(self, hook, "commit", lambda: self._bg_raw.commit)
        self._bg_adapter.transaction_ended(self._bg_raw)
        return result

    def rollback(self) -> Any:
        """Roll back the current transaction."""
        st = self._bg
        hook = st.hook
        if hook is None:
            return st.raw.rollback()
        if st.gate.calm:
            raw = st.raw
            result = raw.rollback()
            st.adapter.transaction_ended(raw)
            return result
        try:
            result = hook(self, "rollback", self._bg_raw.rollback)
        except Reconnected:
            result = run_hooked(self, hook, "rollback", lambda: self._bg_raw.rollback)
        self._bg_adapter.transaction_ended(self._bg_raw)
        return result

    def swap_driver_connection(self, raw: Any) -> Any:
        """Put ``raw`` in place of the driver connection; return the old one.

        For plugins that replace a connection the server dropped (the ``bg``
        plugin's transparent reconnect): this proxy and its cursors stay
        valid, and each cursor makes itself a driver cursor on ``raw`` at
        its next network call. The old driver connection is not closed here.
        """
        old = self._bg_raw
        for name in sorted(self._bg_assigned or ()):
            try:  # e.g. psycopg_pool's _pool, _expire_at, a row_factory
                setattr(raw, name, getattr(old, name))
            except Exception:
                continue
        self._bg.raw = raw
        return old

    def refresh_gate(self) -> None:
        """Ask the pipeline for this connection's :class:`~.pipeline.Gate`
        again (a plugin whose state for this connection changed calls it)."""
        pipeline = self._bg_pipeline
        if pipeline is not None:
            self._bg.gate = pipeline.gate()

    @property
    def autocommit(self) -> Any:
        """The driver's ``autocommit`` attribute, as the driver has it.

        For psycopg and mysql-connector a bool; for PyMySQL its ``autocommit()``
        method. Assigning a bool works for every driver. Where reading or
        setting it talks to the server (mysql-connector, PyMySQL), that goes
        through the plugins like any other call.
        """
        raw = self._bg_raw
        hook = self._bg_hook
        adapter = self._bg_adapter
        if hook is None:
            return raw.autocommit
        if adapter.autocommit_get_is_call:
            return run_hooked(
                self,
                hook,
                "autocommit",
                lambda: functools.partial(getattr, self._bg_raw, "autocommit"),
            )
        if adapter.autocommit_is_method:
            return hooked(
                self,
                hook,
                "autocommit",
                Kind.CALL,
                raw.autocommit,
                lambda: self._bg_raw.autocommit,
            )
        return raw.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        adapter = self._bg_adapter
        hook = self._bg_hook
        if hook is not None and adapter.autocommit_set_is_call:
            run_hooked(
                self,
                hook,
                "autocommit",
                lambda: functools.partial(adapter.set_autocommit, self._bg_raw, value),
            )
        else:
            adapter.set_autocommit(self._bg_raw, value)

    def close(self) -> None:
        """Close the driver connection, then tell the plugins (once).

        A connection that a pool hands out and takes back on ``close()``
        (psycopg_pool's ``close_returns=True``) goes back to that pool as
        this proxy, so that the next ``getconn()`` hands out a protected
        connection again, never the bare driver connection.
        """
        st = self._bg
        raw = st.raw
        adapter = st.adapter
        if adapter.returns_to_pools:
            pool = adapter.pool_taking_back(raw)
            if pool is not None and not adapter.is_closed(raw):
                pool.putconn(self)
                return
        try:
            raw.close()
        finally:
            if not self._bg_closed:
                self._bg_notify_close()

    def __enter__(self) -> Connection:
        self._bg_raw.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> Any:
        """Leave ``with conn:`` as the driver does; where that commits or
        rolls back (psycopg), the commit or rollback goes through the
        plugins."""
        try:
            return self._bg_adapter.exit(self, self._bg_raw, exc_type, exc_val, exc_tb)
        finally:
            if self._bg_adapter.is_closed(self._bg_raw):
                self._bg_notify_close()
