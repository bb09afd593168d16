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
from .errors import OperationalError
from .pipeline import Reconnected

if TYPE_CHECKING:
    from types import TracebackType

    from .connection import Connection
    from .pipeline import ExecuteHook

__all__ = ["HookedContext", "hooked", "hooked_iter", "run_hooked"]

_END = object()
#: How many times a call is rebuilt after the hook replaced the connection.
_REBUILDS = 3


def run_hooked(
    conn: Connection,
    hook: ExecuteHook,
    name: str,
    make_call: Callable[[], Callable[[], Any]],
) -> Any:
    """``hook(conn, name, make_call())``; when the hook replaced the driver
    connection before making the call (:class:`Reconnected`), the call is
    made anew, on the new driver connection, and run through the hook again.
    """
    for _ in range(_REBUILDS):
        try:
            return hook(conn, name, make_call())
        except Reconnected:
            continue
    raise OperationalError(
        f"{name}(): the connection was replaced {_REBUILDS} times in a row "
        "without the call being made; it was not sent"
    )


def hooked(
    conn: Connection,
    hook: ExecuteHook,
    name: str,
    kind: Kind,
    attr: Any,
    rebind: Callable[[], Any] | None = None,
) -> Any:
    """``attr`` (the driver's attribute ``name``), hooked as ``kind`` says.

    ``rebind()`` reads the attribute again after the hook replaced the
    driver connection (None: ``attr`` is used again).
    """
    if kind is Kind.GET or kind is Kind.GET_SET:
        return attr  # the read itself was hooked by the caller
    if not callable(attr):
        return attr
    rebind = rebind or (lambda: attr)
    if kind is Kind.CALL or kind is Kind.UNDO or kind is Kind.STREAM:
        return _HookedCall(conn, hook, name, attr, rebind)
    if kind is Kind.CONTEXT or kind is Kind.TRANSACTION:
        return _ContextFactory(conn, hook, name, attr, kind is Kind.TRANSACTION, rebind)
    if kind is Kind.ITER:
        return functools.partial(hooked_iter, conn, hook, name, attr, rebind)
    return attr


class _HookedCall:
    """A bound driver method whose calls go through the hook."""

    __slots__ = ("__wrapped__", "_conn", "_hook", "_name", "_rebind")

    def __init__(
        self,
        conn: Connection,
        hook: ExecuteHook,
        name: str,
        method: Any,
        rebind: Callable[[], Any],
    ) -> None:
        self._conn = conn
        self._hook = hook
        self._name = name
        self._rebind = rebind
        self.__wrapped__ = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        method = self.__wrapped__
        call = functools.partial(method, *args, **kwargs) if args or kwargs else method
        try:
            return self._hook(self._conn, self._name, call)
        except Reconnected:
            pass
        rebind = self._rebind
        return run_hooked(
            self._conn,
            self._hook,
            self._name,
            lambda: functools.partial(rebind(), *args, **kwargs),
        )

    def __repr__(self) -> str:
        return f"<hooked {self.__wrapped__!r}>"


class _ContextFactory:
    """A driver method returning a context manager (``transaction()``,
    ``copy()``, ``pipeline()``); what it returns is hooked."""

    __slots__ = ("__wrapped__", "_conn", "_hook", "_name", "_rebind", "_transaction")

    def __init__(
        self,
        conn: Connection,
        hook: ExecuteHook,
        name: str,
        method: Any,
        transaction: bool,
        rebind: Callable[[], Any],
    ) -> None:
        self._conn = conn
        self._hook = hook
        self._name = name
        self._transaction = transaction
        self._rebind = rebind
        self.__wrapped__ = method

    def __call__(self, *args: Any, **kwargs: Any) -> HookedContext:
        rebind = self._rebind
        return HookedContext(
            self._conn,
            self._hook,
            self._name,
            self.__wrapped__(*args, **kwargs),
            self._transaction,
            lambda: rebind()(*args, **kwargs),
        )

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

    __slots__ = ("_cm", "_conn", "_hook", "_name", "_remake", "_transaction")

    def __init__(
        self,
        conn: Connection,
        hook: ExecuteHook,
        name: str,
        cm: Any,
        transaction: bool,
        remake: Callable[[], Any] | None = None,
    ) -> None:
        self._conn = conn
        self._hook = hook
        self._name = name
        self._cm = cm
        self._transaction = transaction
        self._remake = remake

    def __enter__(self) -> Any:
        try:
            return self._hook(self._conn, self._name, self._cm.__enter__)
        except Reconnected:
            if self._remake is None:
                raise
        # The driver's context manager belonged to the replaced connection:
        # make it again on the new one before entering.
        remake = self._remake

        def fresh() -> Callable[[], Any]:
            self._cm = remake()
            return self._cm.__enter__  # type: ignore[no-any-return]

        return run_hooked(self._conn, self._hook, self._name, fresh)

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
    rebind: Callable[[], Any],
    *args: Any,
    **kwargs: Any,
) -> Iterator[Any]:
    """Iterate over ``method(*args, **kwargs)``; its first step, which sends
    the query, goes through the hook. Closing this iterator closes the
    driver's."""
    it = iter(method(*args, **kwargs))
    try:
        first = hook(conn, name, functools.partial(next, it, _END))
    except Reconnected:

        def fresh() -> Callable[[], Any]:
            nonlocal it
            it = iter(rebind()(*args, **kwargs))
            return functools.partial(next, it, _END)

        first = run_hooked(conn, hook, name, fresh)
    if first is _END:
        return
    yield first
    yield from it
