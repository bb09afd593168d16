"""Adapter for asyncpg (``asyncpg.connect``).

asyncpg is not PEP 249: no cursors for queries, ``$1`` placeholders, no
``OperationalError``, and every statement outside ``transaction()`` commits
on its own. The proxy (:class:`bluegreen.aio.AsyncpgConnection`) keeps its
API; this adapter tells bluegreen the rest:

- parameters: the DSN (a ``postgresql://`` URI) merged with the keywords
  and libpq's environment defaults, as asyncpg reads them;
- the wrapper's errors are asyncpg ``InterfaceError`` subclasses (asyncpg
  has no ``OperationalError``; its connection failures are OS errors, its
  client-side failures ``InterfaceError``);
- IP substitution connects to the address itself: asyncpg verifies a TLS
  certificate against the host it connects to, so with ``ssl`` verifying
  names the routed connection fails its check rather than trusting the
  wrong host (the chain is verified either way);
- the monitors are threads: they run asyncpg with the application's
  parameters on an event loop of their own (:class:`MonitorAdapter`).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import asyncpg

from .._types import DBAPIConnection
from ._libpq import lost_sqlstate
from ._surface import Surface
from .base import DriverAdapter, DriverParams, Endpoint, fill_from_environment

__all__ = ["AsyncpgAdapter", "MonitorAdapter"]

#: libpq's environment defaults, which asyncpg reads too.
_ENV = (
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("database", "PGDATABASE"),
)
#: A ``%s`` placeholder of the wrapper's own queries (``%%`` is a literal).
_PLACEHOLDER = re.compile(r"%%|%s")


def dollar_params(sql: str) -> str:
    """The wrapper's ``%s``-style SQL with asyncpg's ``$1, $2, ...``."""
    count = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(swap, sql)


def _lost(exc: BaseException, conn: Any) -> bool:
    if isinstance(exc, (ConnectionError, asyncio.TimeoutError, OSError)):
        return True
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return True
    if not isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)):
        return False
    if conn is not None and conn.is_closed():
        return True
    return lost_sqlstate(getattr(exc, "sqlstate", None))


class AsyncpgAdapter(DriverAdapter):
    """asyncpg's ``Connection``."""

    name = "asyncpg"
    family = "postgres"
    default_port = 5432
    timeout_keys = ("timeout",)
    default_timeout = 60.0  # asyncpg's own default
    accepts_conninfo = True
    is_async = True
    #: asyncpg's own arguments that make no sense for a monitoring connection.
    monitoring_drop_keys = frozenset(
        {"target_session_attrs", "connection_class", "record_class", "loop"}
    )
    #: The proxy hooks asyncpg's calls itself (see bluegreen.aio).
    surface: ClassVar[Surface] = Surface(connection={}, cursor={})

    __slots__ = ()

    def _monitoring_twin(self) -> DriverAdapter:
        """asyncpg on a private event loop per monitor thread."""
        return MonitorAdapter(self.target)

    # -- parameters -----------------------------------------------------------

    def effective(self, params: DriverParams) -> dict[str, Any]:
        """The DSN's parts, overridden by the keywords, and the ``PG*``
        environment defaults where neither gives a value."""
        eff: dict[str, Any] = _dsn_parts(params.conninfo) if params.conninfo else {}
        eff.update(params.kwargs)
        return fill_from_environment(eff, _ENV)

    def endpoint(self, params: DriverParams) -> Endpoint:
        """The first host and its port (default 5432)."""
        eff = self.effective(params)
        host = eff.get("host")
        if isinstance(host, (list, tuple)):
            host = host[0] if host else None
        elif host:
            host = str(host).split(",")[0]
        port = eff.get("port")
        if isinstance(port, (list, tuple)):
            port = port[0] if port else None
        port_s = str(port).split(",")[0] if port not in (None, "") else ""
        user = eff.get("user")
        database = eff.get("database")
        return Endpoint(
            str(host) if host else None,
            int(port_s) if port_s else self.default_port,
            str(user) if user is not None else None,
            str(database) if database is not None else None,
        )

    def operational_error(self) -> type[Exception]:
        """``asyncpg.InterfaceError`` (asyncpg has no ``OperationalError``)."""
        return asyncpg.InterfaceError  # type: ignore[no-any-return]

    def known_parameters(self) -> frozenset[str]:
        """The keyword parameters of ``asyncpg.connect``."""
        return frozenset(inspect.signature(asyncpg.connect).parameters)

    def monitoring_params(self, params: DriverParams, overrides: Any) -> DriverParams:
        """The application's DSN and keywords, without node selection or
        result shapes, overridden by the ``blue-green-monitoring-`` ones
        (asyncpg has no autocommit switch: every poll commits alone)."""
        kwargs = {
            k: v for k, v in params.kwargs.items() if k not in self.monitoring_drop_keys
        }
        kwargs.update(overrides)
        return DriverParams(params.conninfo, kwargs)

    def named_client(
        self, params: DriverParams, name: str, unless: Mapping[str, Any] = {}
    ) -> DriverParams:
        """``application_name`` in asyncpg's ``server_settings``."""
        if "application_name" in (unless.get("server_settings") or {}):
            return params
        settings = dict(params.kwargs.get("server_settings") or {})
        settings["application_name"] = name
        kwargs = {**params.kwargs, "server_settings": settings}
        return DriverParams(params.conninfo, kwargs)

    # -- connections ------------------------------------------------------------

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        conn: DBAPIConnection = self.target(params.conninfo or None, **kwargs)
        return conn  # an awaitable

    def connect(
        self,
        params: DriverParams,
        host: str | None = None,
        ip: str | None = None,
        port: int | None = None,
    ) -> DBAPIConnection:
        """Open a connection (an awaitable). A host, IP or port given
        replaces the DSN's and the keywords' (asyncpg lets keywords override
        the DSN); a multi-host target is narrowed to its first host."""
        if host is None and ip is None and port is None:
            return self._call(params, params.kwargs)
        first = self.endpoint(params)
        kwargs = dict(params.kwargs)
        kwargs["host"] = ip or host or first.host  # an IP: see the module doc
        kwargs["port"] = port if port is not None else first.port
        return self._call(params, kwargs)

    def is_closed(self, conn: Any) -> bool:
        """``conn.is_closed()`` (also true once the server has gone)."""
        return bool(conn.is_closed())

    def in_transaction(self, conn: Any) -> bool:
        """``conn.is_in_transaction()``."""
        return bool(conn.is_in_transaction())

    def get_autocommit(self, conn: Any) -> bool:
        """asyncpg commits every statement outside a transaction block."""
        return not conn.is_in_transaction()

    def set_autocommit(self, conn: Any, value: bool) -> None:
        raise NotImplementedError("asyncpg has no autocommit switch")

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """OS-level failures, ``ConnectionDoesNotExistError``, SQLSTATE class
        08 and admin/crash shutdowns, or any asyncpg error on a connection
        now closed."""
        return _lost(exc, conn)

    def peer_closed(self, conn: Any) -> bool:
        """The event loop has seen the server close the connection."""
        return bool(conn.is_closed())

    async def aquery(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The wrapper's ``%s`` SQL as ``$n``, rows as tuples."""
        rows = await conn.fetch(dollar_params(sql), *(params or ()))
        return [tuple(row) for row in rows]

    async def arollback_quietly(self, conn: Any) -> None:
        """``ROLLBACK`` when a transaction is open, errors ignored."""
        try:
            if not conn.is_closed() and conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        except Exception:
            return

    async def aclose_quietly(self, conn: Any) -> None:
        """Close politely for at most 2 s, else drop the socket."""
        try:
            if not conn.is_closed():
                await conn.close(timeout=2)
        except Exception:
            conn.terminate()

    async def arestore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """Nothing is carried over (see the proxy's documentation)."""
        return None


class _Blocking:
    """An asyncpg connection driven from one monitor thread, on an event
    loop of its own, with what the monitors ask of a DB-API connection."""

    autocommit = True

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: Any) -> None:
        self.loop = loop
        self.conn = conn

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def closed(self) -> bool:
        return bool(self.conn.is_closed())

    def rollback(self) -> None:
        return None

    def close(self) -> None:
        try:
            if not self.conn.is_closed():
                self.run(self.conn.close(timeout=2))
        except Exception:
            self.conn.terminate()
        finally:
            self.loop.close()


class MonitorAdapter(AsyncpgAdapter):
    """asyncpg for the monitor threads: ``connect()`` blocks, running
    asyncpg on a private event loop that the connection keeps."""

    name = "asyncpg-monitor"
    is_async = False

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        loop = asyncio.new_event_loop()
        kw = dict(kwargs)
        kw.setdefault("command_timeout", 5)  # a frozen host fails the poll
        try:
            conn = loop.run_until_complete(self.target(params.conninfo or None, **kw))
        except BaseException:
            loop.close()
            raise
        blocking: Any = _Blocking(loop, conn)
        return blocking  # type: ignore[no-any-return]

    def is_closed(self, conn: Any) -> bool:
        return bool(conn.closed)

    def in_transaction(self, conn: Any) -> bool:
        return bool(conn.conn.is_in_transaction())

    def get_autocommit(self, conn: Any) -> bool:
        return True

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        return _lost(exc, None if conn is None else conn.conn)

    def query(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        rows = conn.run(conn.conn.fetch(dollar_params(sql), *(params or ())))
        return [tuple(row) for row in rows]


def _dsn_parts(dsn: str) -> dict[str, Any]:
    """host, port, user, password and database of a ``postgresql://`` DSN
    (query parameters as they are)."""
    parts = urlsplit(dsn)
    out: dict[str, Any] = {}
    netloc = parts.netloc
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, _, password = auth.partition(":")
        if user:
            out["user"] = unquote(user)
        if password:
            out["password"] = unquote(password)
    hosts, ports = [], []
    for item in netloc.split(","):
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":")
        else:
            host, _, port = item.partition(":")
        hosts.append(unquote(host))
        ports.append(port)
    if hosts:
        out["host"] = ",".join(hosts)
    if any(ports):
        out["port"] = ",".join(p for p in ports if p)
    if parts.path.strip("/"):
        out["database"] = unquote(parts.path.lstrip("/"))
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if key:
            out.setdefault(unquote(key), unquote(value))
    return out
