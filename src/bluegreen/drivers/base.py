"""The driver adapter interface: everything bluegreen needs to know per driver."""

from __future__ import annotations

import inspect
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, NoReturn

from .._conninfo import mask_conninfo, masked_items
from .._types import ConnectFunction, DBAPIConnection
from ..errors import DriverErrors, driver_errors
from ._surface import Surface

__all__ = [
    "DriverAdapter",
    "DriverParams",
    "Endpoint",
    "ReadOnlyDict",
    "fill_from_environment",
]

logger = logging.getLogger("bluegreen.drivers")


class Endpoint(NamedTuple):
    """Where the application asked to connect (normalised, driver defaults applied)."""

    host: str | None
    port: int
    user: str | None
    dbname: str | None


class ReadOnlyDict(dict[str, Any]):
    """A dict that refuses changes, for parameters shared between connections.

    Reading, iterating, ``dict(d)``, ``d.copy()`` and ``**d`` work as for a
    dict (and as fast); copies are plain dicts.
    """

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("connection parameters are read-only; copy them with dict()")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))


class DriverParams:
    """The arguments for the driver's connect function, wrapper settings removed.

    ``conninfo`` is the libpq string (psycopg only, ``""`` otherwise) and
    ``kwargs`` the keyword arguments, in the order the application gave them,
    read-only: one :class:`DriverParams` may serve many connections.
    The ``repr`` masks secrets.
    """

    __slots__ = ("conninfo", "kwargs")

    def __init__(self, conninfo: str, kwargs: Mapping[str, Any]) -> None:
        self.conninfo = conninfo
        self.kwargs: ReadOnlyDict = (
            kwargs if type(kwargs) is ReadOnlyDict else ReadOnlyDict(kwargs)
        )

    def __repr__(self) -> str:
        parts = []
        if self.conninfo:
            parts.append(f"conninfo={mask_conninfo(self.conninfo)!r}")
        parts.extend(f"{k}={v!r}" for k, v in masked_items(self.kwargs).items())
        return f"DriverParams({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DriverParams):
            return NotImplemented
        return self.conninfo == other.conninfo and self.kwargs == other.kwargs

    __hash__ = None  # type: ignore[assignment]


def fill_from_environment(
    eff: dict[str, Any], names: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """``eff`` with each ``(key, variable)`` of ``names`` taken from the
    environment where ``eff`` gives no value (libpq's ``PGHOST``, ...)."""
    for key, env in names:
        if eff.get(key) in (None, "") and os.environ.get(env):
            eff[key] = os.environ[env]
    return eff


class DriverAdapter(ABC):
    """What bluegreen knows about one DB-API driver.

    One adapter instance wraps one connect function (the *target* given to
    :func:`bluegreen.connect`). Adapters are stateless apart from the target.
    """

    #: Short driver name: ``psycopg``, ``pymysql``, ``mysql-connector``.
    name: ClassVar[str]
    #: ``postgres`` or ``mysql``.
    family: ClassVar[str]
    default_port: ClassVar[int]
    #: Parameter names holding the connect timeout, in seconds.
    timeout_keys: ClassVar[tuple[str, ...]]
    #: Parameters bounding each read and write on a connection, in seconds,
    #: that the monitors set when the application gives none (a monitor
    #: must never hang on a host that stopped answering).
    io_timeout_keys: ClassVar[tuple[str, ...]] = ()
    #: The driver's own connect timeout when none is given (``None``: waits forever).
    default_timeout: ClassVar[float | None] = None
    #: Environment variable the driver reads the connect timeout from, if any.
    timeout_env: ClassVar[str | None] = None
    #: Parameters a monitoring connection must not inherit from the application.
    monitoring_drop_keys: ClassVar[frozenset[str]] = frozenset()
    #: Whether a libpq conninfo string is accepted as second argument.
    accepts_conninfo: ClassVar[bool] = False
    #: Every public name of the driver's connections and cursors, classified
    #: (network-bound or not); the proxies hook the network-bound ones.
    surface: ClassVar[Surface]
    #: Assigning autocommit sends a statement (PyMySQL, mysql-connector).
    autocommit_set_is_call: ClassVar[bool] = False
    #: Reading ``conn.autocommit`` runs a query (mysql-connector).
    autocommit_get_is_call: ClassVar[bool] = False
    #: ``conn.autocommit`` is a method that sends SET autocommit (PyMySQL).
    autocommit_is_method: ClassVar[bool] = False
    #: ``conn.cursor()`` talks to the server (mysql-connector pings in it).
    cursor_is_call: ClassVar[bool] = False
    #: Calls that send nothing of the application's before they can find
    #: the connection lost (mysql-connector's ``cursor()`` pings first): on
    #: an idle connection a switchover dropped, they may be made again on a
    #: new connection.
    unsent_on_loss: ClassVar[frozenset[str]] = frozenset()

    #: Whether the driver's connections are asyncio ones (its ``connect``
    #: returns an awaitable; see :mod:`bluegreen.aio`).
    is_async: ClassVar[bool] = False

    __slots__ = ("_errors", "_monitor", "parsed", "target")

    def __init__(self, target: ConnectFunction) -> None:
        self.target = target
        #: Memo of :func:`bluegreen.settings.parse_config`, owned by the adapter
        #: so that a throwaway adapter takes its entries with it.
        self.parsed: dict[Any, Any] = {}
        self._errors: DriverErrors | None = None
        self._monitor: DriverAdapter | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def monitor_adapter(self) -> DriverAdapter:
        """The adapter the monitor threads connect with: this one, or for an
        asyncio driver the synchronous one :meth:`_monitoring_twin` makes
        (once)."""
        if not self.is_async:
            return self
        monitor = self._monitor
        if monitor is None:
            monitor = self._monitor = self._monitoring_twin()
        return monitor

    def _monitoring_twin(self) -> DriverAdapter:
        """A synchronous adapter taking this asyncio driver's parameters."""
        raise NotImplementedError(f"{self.name} has no monitoring adapter")

    # -- parameters ---------------------------------------------------------

    def effective(self, params: DriverParams) -> dict[str, Any]:
        """All connection parameters as one mapping (conninfo merged with kwargs)."""
        return dict(params.kwargs)

    @abstractmethod
    def endpoint(self, params: DriverParams) -> Endpoint:
        """Host, port, user and database name the application asked for."""

    def connect_timeout(self, params: DriverParams) -> float | None:
        """The connect timeout in seconds, ``None`` or ``0`` meaning none."""
        return self.connect_timeout_info(params)[0]

    def connect_timeout_info(self, params: DriverParams) -> tuple[float | None, bool]:
        """The connect timeout and whether it is fixed by *params* alone.

        Not fixed: it comes from the environment (:attr:`timeout_env`), which
        may change between connections with the same parameters.
        """
        eff = self.effective(params)
        for key in self.timeout_keys:
            if key in eff:
                value = eff[key]
                if value is None:
                    return None, True
                try:
                    return float(value), True
                except (TypeError, ValueError):
                    return None, True
        if self.timeout_env is None:
            return self.default_timeout, True
        env = os.environ.get(self.timeout_env, "").strip()
        try:
            return (float(env) if env else self.default_timeout), False
        except ValueError:
            return self.default_timeout, False

    @abstractmethod
    def operational_error(self) -> type[Exception]:
        """The driver's ``OperationalError`` class."""

    @property
    def errors(self) -> DriverErrors:
        """The wrapper's connection errors as this driver's own
        ``OperationalError`` subclasses (built once per driver)."""
        errors = self._errors
        if errors is None:
            errors = self._errors = driver_errors(self.operational_error())
        return errors

    def known_parameters(self) -> frozenset[str] | None:
        """Every parameter name the driver's connect function accepts, or
        None if the driver cannot tell (then names are not checked)."""
        return None

    #: Other names the driver accepts for a connect argument, by the name
    #: :meth:`with_arguments` is given (PyMySQL's and mysqlclient's
    #: ``passwd`` for ``password``).
    argument_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def with_arguments(
        self, params: DriverParams, extra: Mapping[str, Any]
    ) -> DriverParams:
        """*params* with the keyword arguments *extra* (a plugin's
        credentials) taking precedence over the application's, whatever
        spelling the application used (an alias of the same argument is
        dropped; a value in a connection string is overridden by the
        keyword, as drivers that take both do)."""
        drop = {a for name in extra for a in self.argument_aliases.get(name, ())}
        kwargs = {k: v for k, v in params.kwargs.items() if k not in drop}
        kwargs.update(extra)
        return DriverParams(params.conninfo, kwargs)

    def monitoring_params(
        self, params: DriverParams, overrides: Mapping[str, Any]
    ) -> DriverParams:
        """Parameters for a connection the wrapper opens for its own
        queries (the ``bg`` plugin's monitors).

        The application's parameters, overridden by *overrides* (the
        arguments given with the plugin's prefix, stripped), without the
        keys in :attr:`monitoring_drop_keys`, with autocommit forced on.
        """
        kwargs = {
            k: v for k, v in params.kwargs.items() if k not in self.monitoring_drop_keys
        }
        kwargs.update(overrides)
        kwargs["autocommit"] = True
        return DriverParams(params.conninfo, kwargs)

    def client_name_params(self, name: str) -> dict[str, Any]:
        """Connect arguments that name the client to the server (libpq's
        ``application_name``, a MySQL connection attribute), so that
        operators can tell the wrapper's own sessions apart; empty for a
        driver that cannot."""
        return {}

    def named_client(
        self, params: DriverParams, name: str, unless: Mapping[str, Any] = {}
    ) -> DriverParams:
        """``params`` naming the client ``name``, unless one of the keys
        :meth:`client_name_params` sets is in ``unless`` (the application
        named it itself)."""
        extra = {
            k: v for k, v in self.client_name_params(name).items() if k not in unless
        }
        if not extra:
            return params
        return DriverParams(params.conninfo, {**params.kwargs, **extra})

    # -- connections --------------------------------------------------------

    def connect(
        self,
        params: DriverParams,
        host: str | None = None,
        ip: str | None = None,
        port: int | None = None,
    ) -> DBAPIConnection:
        """Open a driver connection.

        With no arguments, connect where *params* say. *host* replaces the
        host name; *ip* is an address standing for the host name (the name
        is kept wherever the driver allows it, for TLS verification); *port*
        replaces the port.
        """
        if host is None and ip is None and port is None:
            return self._call(params, params.kwargs)
        kwargs = dict(params.kwargs)
        if host is not None:
            kwargs["host"] = host
        if port is not None:
            kwargs["port"] = port
        if ip is None:
            return self._call(params, kwargs)
        return self._connect_ip(params, kwargs, ip)

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        """Call the driver's connect function with *kwargs*."""
        conn: DBAPIConnection = self.target(**kwargs)
        return conn

    def _connect_ip(
        self, params: DriverParams, kwargs: dict[str, Any], ip: str
    ) -> DBAPIConnection:
        """Connect to *ip* standing for ``kwargs["host"]``.

        By default the driver connects to the IP itself (it cannot keep the
        name for TLS); adapters that can keep the name override this.
        """
        kwargs["host"] = ip
        return self._call(params, kwargs)

    @abstractmethod
    def is_closed(self, conn: Any) -> bool:
        """Tell, without network I/O, whether *conn* is closed."""

    @abstractmethod
    def in_transaction(self, conn: Any) -> bool:
        """Tell, without network I/O, whether a transaction is open on *conn*."""

    def transaction_ended(self, conn: Any) -> None:
        """A commit or rollback of *conn* went through (drivers that cannot
        tell an open transaction from their own state record it here)."""
        return None

    @abstractmethod
    def get_autocommit(self, conn: Any) -> bool:
        """Return the autocommit state of *conn*."""

    @abstractmethod
    def set_autocommit(self, conn: Any, value: bool) -> None:
        """Set the autocommit state of *conn*."""

    @abstractmethod
    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """Tell whether *exc* (raised by this driver) means the connection is gone.

        *conn*, if given, is the driver connection that raised it; a closed
        connection makes the classification certain.
        """

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Tell whether fetching from *cursor* reads from the network."""
        return False

    def query(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one of the wrapper's own queries on *conn*; return tuple rows.

        Independent of how the application configured *conn* (row
        factories, cursor classes, dictionary or named-tuple rows, buffered
        or unbuffered cursors, prepared statements): adapters ask for a
        plain cursor in :meth:`plain_cursor`. Driver errors propagate.
        """
        cur = self.plain_cursor(conn)
        try:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, params)
            if cur.description is None:
                return []
            return [tuple(row) for row in cur.fetchall()]
        finally:
            cur.close()

    def plain_cursor(self, conn: Any) -> Any:
        """A cursor of *conn* for :meth:`query`: buffered, tuple rows, never
        prepared, whatever cursor defaults the application gave *conn*."""
        return conn.cursor()

    def exit(
        self,
        proxy: Any,
        raw: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: Any,
    ) -> Any:
        """Run the driver's ``__exit__`` for the proxy ``with conn:`` block.

        Drivers whose context manager commits or rolls back override this,
        so that those calls go through the proxy's hooked methods.
        """
        return raw.__exit__(exc_type, exc, tb)

    # -- asyncio drivers (is_async) --------------------------------------------

    async def aquery(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """:meth:`query` on an asyncio connection."""
        raise NotImplementedError(f"{self.name} has no asyncio connections")

    async def aclose_quietly(self, conn: Any) -> None:
        """Close *conn*, awaiting the driver's ``close()`` if it is a
        coroutine; errors are logged at DEBUG and ignored."""
        try:
            outcome = conn.close()
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            logger.debug("Ignoring an error while closing: %s", exc)

    async def arollback_quietly(self, conn: Any) -> None:
        """:meth:`rollback_quietly` on an asyncio connection."""
        try:
            if not self.is_closed(conn):
                await conn.rollback()
        except Exception as exc:
            logger.debug("Ignoring an error while rolling back: %s", exc)

    async def arestore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """:meth:`restore_session` on an asyncio connection."""
        self.restore_session(conn, state)

    #: ``conn.cursor()`` returns an awaitable (aiomysql).
    cursor_is_awaitable: ClassVar[bool] = False

    async def aexit(
        self,
        proxy: Any,
        raw: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: Any,
    ) -> Any:
        """:meth:`exit` for ``async with conn:`` on an asyncio connection."""
        return await raw.__aexit__(exc_type, exc, tb)

    # -- transparent reconnect ------------------------------------------------

    def peer_closed(self, conn: Any) -> bool:
        """Tell, without blocking and without sending anything, whether the
        server has closed *conn* (its socket reads end-of-file or an error
        the server sent before closing). False when the driver cannot tell.
        """
        return False

    def session_state(self, conn: Any) -> dict[str, Any]:
        """What the application may have changed on *conn* since it was
        opened that a replacement connection must take over, read without
        network I/O (*conn* may be dead)."""
        return {}

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """Apply ``state`` (from :meth:`session_state`) to the new *conn*."""
        return None

    #: Cursor attributes an application may set that a cursor made anew on
    #: a replaced connection takes over.
    cursor_state: ClassVar[tuple[str, ...]] = ("arraysize",)

    def copy_cursor_state(self, old: Any, new: Any) -> None:
        """Copy what the application set on cursor ``old`` to ``new``."""
        for name in self.cursor_state:
            try:
                setattr(new, name, getattr(old, name))
            except Exception:  # not on this cursor class
                continue

    #: Whether :meth:`pool_taking_back` may return a pool (``close()`` skips
    #: asking otherwise).
    returns_to_pools: ClassVar[bool] = False

    def pool_taking_back(self, raw: Any) -> Any:
        """A pool that takes *raw* back when it is closed, or None.

        Closing the proxy then returns the proxy, not the bare driver
        connection, to that pool.
        """
        return None

    def rollback_quietly(self, conn: Any) -> None:
        """Roll back *conn*, ignoring (and logging at DEBUG) any error."""
        try:
            if not self.is_closed(conn):
                conn.rollback()
        except Exception as exc:
            logger.debug("Ignoring an error while rolling back: %s", exc)
