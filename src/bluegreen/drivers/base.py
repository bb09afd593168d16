"""The driver adapter interface: everything bluegreen needs to know per driver."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from .._conninfo import mask_conninfo, masked_items
from .._types import ConnectFunction, DBAPIConnection

__all__ = ["DriverAdapter", "DriverParams", "Endpoint"]

logger = logging.getLogger("bluegreen.drivers")


class Endpoint(NamedTuple):
    """Where the application asked to connect (normalised, driver defaults applied)."""

    host: str | None
    port: int
    user: str | None
    dbname: str | None


class DriverParams:
    """The arguments for the driver's connect function, wrapper settings removed.

    ``conninfo`` is the libpq string (psycopg only, ``""`` otherwise) and
    ``kwargs`` the keyword arguments, in the order the application gave them.
    The ``repr`` masks secrets.
    """

    __slots__ = ("conninfo", "kwargs")

    def __init__(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs

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
    #: The driver's own connect timeout when none is given (``None``: waits forever).
    default_timeout: ClassVar[float | None] = None
    #: Parameters a monitoring connection must not inherit from the application.
    monitoring_drop_keys: ClassVar[frozenset[str]] = frozenset()
    #: Whether a libpq conninfo string is accepted as second argument.
    accepts_conninfo: ClassVar[bool] = False

    __slots__ = ("target",)

    def __init__(self, target: ConnectFunction) -> None:
        self.target = target

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- parameters ---------------------------------------------------------

    def effective(self, params: DriverParams) -> dict[str, Any]:
        """All connection parameters as one mapping (conninfo merged with kwargs)."""
        return dict(params.kwargs)

    @abstractmethod
    def endpoint(self, params: DriverParams) -> Endpoint:
        """Host, port, user and database name the application asked for."""

    def connect_timeout(self, params: DriverParams) -> float | None:
        """The connect timeout in seconds, ``None`` or ``0`` meaning none."""
        eff = self.effective(params)
        for key in self.timeout_keys:
            if key in eff:
                value = eff[key]
                if value is None:
                    return None
                try:
                    return float(value)
                except (TypeError, ValueError):
                    return None
        return self.default_timeout

    def monitoring_params(
        self, params: DriverParams, overrides: Mapping[str, Any]
    ) -> DriverParams:
        """Parameters for a monitoring connection.

        The application's parameters, overridden by *overrides* (the
        ``blue-green-monitoring-`` settings, prefix stripped), without the
        keys in :attr:`monitoring_drop_keys`, with autocommit forced on.
        """
        kwargs = {
            k: v for k, v in params.kwargs.items() if k not in self.monitoring_drop_keys
        }
        kwargs.update(overrides)
        kwargs["autocommit"] = True
        return DriverParams(params.conninfo, kwargs)

    # -- connections --------------------------------------------------------

    @abstractmethod
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

    @abstractmethod
    def is_closed(self, conn: Any) -> bool:
        """Tell, without network I/O, whether *conn* is closed."""

    @abstractmethod
    def in_transaction(self, conn: Any) -> bool:
        """Tell, without network I/O, whether a transaction is open on *conn*."""

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

    def rollback_quietly(self, conn: Any) -> None:
        """Roll back *conn*, ignoring (and logging at DEBUG) any error."""
        try:
            if not self.is_closed(conn):
                conn.rollback()
        except Exception as exc:
            logger.debug("Ignoring an error while rolling back: %s", exc)
