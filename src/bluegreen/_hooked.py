"""Hooked versions of the driver attributes the proxies reach by delegation.

The proxies define the PEP 249 methods themselves. Everything else a driver
offers is reached through ``__getattr__``; the names its adapter's
:class:`~bluegreen.drivers._surface.Surface` marks as network-bound come back
wrapped by :func:`hooked`, so that they go through the plugins' ``execute``
hook like ``execute()`` and ``commit()`` do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .drivers._surface import Kind

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Connection
    from .pipeline import ExecuteHook

__all__ = ["HookedContext", "hooked", "hooked_iter"]

_END = object()


def hooked(
    conn: Connection, hook: ExecuteHook, name: str, kind: Kind, attr: Any
) -> Any:
    """``attr`` (the driver's attribute ``name``), hooked as ``kind`` says."""
    if kind is Kind.GET or kind is Kind.GET_SET:
        return attr  # the read itself was hooked by the caller
    if not callable(attr):
        return attr
    if kind is Kind.CALL or kind is Kind.UNDO or kind is Kind.STREAM:
        return _HookedCall(conn, hook, name, attr)
    if kind is Kind.CONTEXT or kind is Kind.TRANSACTION:
        return _ContextFactory(conn, hook, name, attr, kind is Kind.TRANSACTION)
    if kind is Kind.ITER:
        return functools.partial(hooked_iter, conn, hook, name, attr)
    return attr


class _HookedCall:
    """A bound driver method whose calls go through the hook."""

    __slots__ = ("__wrapped__", "_conn", "_hook", "_name")

    def __init__(
        self, conn: Connection, hook: ExecuteHook, name: str, method: Any
    ) -> None:
        self._conn = conn
        self._hook = hook
        self._name = name
        self.__wrapped__ = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        method = self.__wrapped__
        if not args and not kwargs:
            return self._hook(self._conn, self._name, method)
        return self._hook(
            self._conn, self._name, functools.partial(method, *args, **kwargs)
        )

    def __repr__(self) -> str:
        return f"<hooked {self.__wrapped__!r}>"


class _ContextFactory:
    """A driver method returning a context manager (``transaction()``,
    ``copy()``, ``pipeline()``); what it returns is hooked."""

    __slots__ = ("__wrapped__", "_conn", "_hook", "_name", "_transaction")

    def __init__(
        self,
        conn: Connection,
        hook: ExecuteHook,
        name: str,
        method: Any,
        transaction: bool,
    ) -> None:
        self._conn = conn
        self._hook = hook
        self._name = name
        self._transaction = transaction
        self.__wrapped__ = method

    def __call__(self, *args: Any, **kwargs: Any) -> HookedContext:
        cm = self.__wrapped__(*args, **kwargs)
        return HookedContext(self._conn, self._hook, self._name, cm, self._transaction)

    def __repr__(self) -> str:
        return f"<hooked {self.__wrapped__!r}>"


class HookedContext:
    """A driver context manager whose ``__enter__`` goes through the hook.

    For a transaction (``transaction=True``) leaving goes through it too: as
    ``commit`` without an exception, as ``rollback`` with one (a rollback's
    wait never fails: see :data:`bluegreen.pipeline.UNDO_CALLS`). If the
    commit cannot be sent (the wait ran out), the driver's context manager
    is left with that error, so that it rolls the transaction back, and the
    error is raised.
    """

    __slots__ = ("_cm", "_conn", "_hook", "_name", "_transaction")

    def __init__(
        self,
        conn: Connection,
        hook: ExecuteHook,
        name: str,
        cm: Any,
        transaction: bool,
    ) -> None:
        self._conn = conn
        self._hook = hook
        self._name = name
        self._cm = cm
        self._transaction = transaction

    def __enter__(self) -> Any:
        return self._hook(self._conn, self._name, self._cm.__enter__)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        cm = self._cm
        if not self._transaction:
            return cm.__exit__(exc_type, exc, tb)
        leave = functools.partial(cm.__exit__, exc_type, exc, tb)
        if exc_type is not None:
            return self._hook(self._conn, "rollback", leave)
        try:
            return _run_commit(self._hook, self._conn, _NotSent(leave))
        except _Refused as refused:
            error = refused.error
        cm.__exit__(type(error), error, error.__traceback__)
        raise error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cm, name)


class _Refused(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class _NotSent:
    """Tells a refused commit (the hook raised before calling) apart from a
    commit that was sent and failed (the driver's error, raised as is)."""

    __slots__ = ("_call", "sent")

    def __init__(self, call: Callable[[], Any]) -> None:
        self._call = call
        self.sent = False

    def __call__(self) -> Any:
        self.sent = True
        return self._call()


def _run_commit(hook: ExecuteHook, conn: Connection, call: _NotSent) -> Any:
    try:
        return hook(conn, "commit", call)
    except Exception as exc:
        if call.sent:
            raise
        raise _Refused(exc) from None


def hooked_iter(
    conn: Connection,
    hook: ExecuteHook,
    name: str,
    method: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> Iterator[Any]:
    """Iterate over ``method(*args, **kwargs)``; its first step, which sends
    the query, goes through the hook. Closing this iterator closes the
    driver's."""
    it = iter(method(*args, **kwargs))
    first = hook(conn, name, functools.partial(next, it, _END))
    if first is _END:
        return
    yield first
    yield from it
