"""Adapter for psycopg 3 (``psycopg.connect`` / ``psycopg.Connection.connect``).

IP substitution keeps ``host=<name>`` and adds ``hostaddr=<ip>``: libpq then
connects to the address but still verifies the server certificate against
the name (``sslmode=verify-full`` keeps working).
"""

from __future__ import annotations

import logging
import select
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import AdaptersMap
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row

from .._types import DBAPIConnection
from ._surface import EXCEPTION_ATTRS, PROXY_CONNECTION, PROXY_CURSOR, Surface, table
from .base import DriverAdapter, DriverParams, Endpoint, fill_from_environment

__all__ = ["PsycopgAdapter"]

_psycopg_logger = logging.getLogger("psycopg")

#: ``psycopg.Connection.connect``'s own keyword arguments (not libpq's).
_PSYCOPG_KWARGS = frozenset(
    {"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"}
)
_KNOWN: frozenset[str] | None = None
#: Server parameters the server reports to the client (GUC_REPORT) that an
#: application may change with SET, carried over to a replacement connection.
_REPORTED_PARAMS = (
    "client_encoding",
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "application_name",
)
#: libpq's environment defaults for the parameters the wrapper reads.
_LIBPQ_ENV = (
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
)

# Connection failures (class 08) and administrator/crash shutdowns.
_LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


SURFACE = Surface(
    connection=table(
        PROXY=(*PROXY_CONNECTION, "execute"),
        CALL=("tpc_begin", "tpc_prepare", "tpc_commit", "tpc_recover"),
        UNDO=("tpc_rollback",),
        TRANSACTION=("transaction",),
        CONTEXT=("pipeline",),
        ITER=("notifies",),
        LOCAL=(
            *EXCEPTION_ATTRS,
            "adapters",
            "add_notice_handler",
            "add_notify_handler",
            "broken",
            "cancel",
            "cancel_safe",
            "closed",
            "connect",
            "connection",
            "deferrable",
            "fileno",
            "info",
            "isolation_level",
            "prepare_threshold",
            "prepared_max",
            "read_only",
            "remove_notice_handler",
            "remove_notify_handler",
            "set_autocommit",
            "set_deferrable",
            "set_isolation_level",
            "set_read_only",
            "wait",
            "xid",
        ),
    ),
    cursor=table(
        PROXY=PROXY_CURSOR,
        CONTEXT=("copy",),
        ITER=("stream",),
        STREAM=("scroll",),
        LOCAL=(
            "adapters",
            "closed",
            "format",
            "itersize",
            "mogrify",
            "name",
            "pgresult",
            "results",
            "row_factory",
            "rownumber",
            "scrollable",
            "set_result",
            "statusmessage",
            "withhold",
        ),
    ),
    notes={
        "cancel": "sends a cancel request on a separate connection; it must "
        "work while calls are suspended",
        "cancel_safe": "as cancel",
        "wait": "runs psycopg's own protocol generators; the public calls "
        "that use it are hooked",
        "set_autocommit": "checks and records the mode; nothing is sent",
        "set_isolation_level": "as set_autocommit",
        "set_read_only": "as set_autocommit",
        "set_deferrable": "as set_autocommit",
        "pipeline": "entering is hooked; the statements queued in it go "
        "through the hooked cursor calls, and the sync at the end belongs to "
        "them (never suspended half-way)",
        "copy": "entering (the COPY statement) is hooked; the data that "
        "follows belongs to it",
    },
)


class PsycopgAdapter(DriverAdapter):
    """psycopg 3, synchronous connections."""

    name = "psycopg"
    family = "postgres"
    default_port = 5432
    timeout_keys = ("connect_timeout",)
    timeout_env = "PGCONNECT_TIMEOUT"
    accepts_conninfo = True
    monitoring_drop_keys = frozenset(
        {"target_session_attrs", "load_balance_hosts", "row_factory", "cursor_factory"}
    )
    surface = SURFACE
    cursor_state = ("arraysize", "row_factory", "itersize")

    __slots__ = ()

    def effective(self, params: DriverParams) -> dict[str, Any]:
        """Conninfo parameters merged with (overridden by) the keyword
        arguments, and libpq's environment defaults (``PGHOST``, ``PGPORT``,
        ``PGUSER``, ``PGDATABASE``) where neither gives a value: an
        application that names its host in ``PGHOST`` is protected too."""
        eff: dict[str, Any] = (
            dict(conninfo_to_dict(params.conninfo)) if params.conninfo else {}
        )
        eff.update(params.kwargs)
        return fill_from_environment(eff, _LIBPQ_ENV)

    def endpoint(self, params: DriverParams) -> Endpoint:
        """The first host of the conninfo and its port (default 5432)."""
        eff = self.effective(params)
        host = eff.get("host")
        host = str(host).split(",")[0] if host else None
        port = eff.get("port")
        port_s = str(port).split(",")[0] if port not in (None, "") else ""
        user = eff.get("user")
        dbname = eff.get("dbname")
        return Endpoint(
            host,
            int(port_s) if port_s else self.default_port,
            str(user) if user is not None else None,
            str(dbname) if dbname is not None else None,
        )

    def operational_error(self) -> type[Exception]:
        """``psycopg.OperationalError``."""
        return psycopg.OperationalError

    def known_parameters(self) -> frozenset[str]:
        """libpq's conninfo keywords (as this libpq knows them) and the
        keyword arguments of ``psycopg.Connection.connect``."""
        global _KNOWN
        if _KNOWN is None:
            keywords = {o.keyword.decode() for o in pq.Conninfo.get_defaults()}
            _KNOWN = frozenset(keywords | _PSYCOPG_KWARGS)
        return _KNOWN

    def monitoring_params(self, params: DriverParams, overrides: Any) -> DriverParams:
        """Flatten the conninfo into keywords so that node selection can be dropped."""
        flat = DriverParams("", self.effective(params))
        return super().monitoring_params(flat, overrides)

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        conn: DBAPIConnection = self.target(params.conninfo, **kwargs)
        return conn

    def _connect_ip(
        self, params: DriverParams, kwargs: dict[str, Any], ip: str
    ) -> DBAPIConnection:
        """An *ip* becomes ``hostaddr`` and the name stays in ``host``.

        The address stands for one host: a multi-host conninfo is narrowed to
        its first host and port, or libpq refuses the hostaddr."""
        eff = self.effective(DriverParams(params.conninfo, kwargs))
        for key in ("host", "port"):
            value = str(eff.get(key) or "")
            if "," in value:
                kwargs[key] = value.split(",")[0]
        kwargs["hostaddr"] = ip
        return self._call(params, kwargs)

    def is_closed(self, conn: Any) -> bool:
        """``conn.closed`` (also true for a broken connection)."""
        return bool(conn.closed)

    def in_transaction(self, conn: Any) -> bool:
        """Transaction status INTRANS, INERROR or ACTIVE."""
        status = conn.pgconn.transaction_status
        return bool(
            status != pq.TransactionStatus.IDLE
            and status != pq.TransactionStatus.UNKNOWN
        )

    def get_autocommit(self, conn: Any) -> bool:
        """``conn.autocommit``."""
        return bool(conn.autocommit)

    def set_autocommit(self, conn: Any, value: bool) -> None:
        """``conn.autocommit = value``."""
        conn.autocommit = value

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """SQLSTATE class 08, admin/crash shutdown, or a client-side failure.

        Client-side failures (no SQLSTATE: "server closed the connection
        unexpectedly", "consuming input failed") and operations on a closed
        connection count as lost.
        """
        if not isinstance(exc, psycopg.Error):
            return False
        if conn is not None and conn.closed:
            return True
        sqlstate = exc.sqlstate
        if sqlstate is not None:
            return sqlstate.startswith("08") or sqlstate in _LOST_SQLSTATES
        if isinstance(exc, psycopg.OperationalError):
            return True
        return isinstance(exc, psycopg.InterfaceError) and "closed" in str(exc)

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Server-side (named) cursors fetch from the network."""
        return isinstance(cursor, psycopg.ServerCursor)

    # -- queries of the wrapper's own ------------------------------------------

    def query(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` on a plain cursor: tuple rows, server-side binding
        (``%s`` placeholders), never prepared, whatever ``row_factory``,
        ``cursor_factory`` or ``prepare_threshold`` the connection has."""
        with psycopg.Cursor(conn, row_factory=tuple_row) as cur:
            cur.execute(sql, params, prepare=False)
            if cur.description is None:
                return []
            return cur.fetchall()

    # -- the proxy's context manager -------------------------------------------

    def exit(
        self,
        proxy: Any,
        raw: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: Any,
    ) -> Any:
        """``with conn:`` as psycopg does it, with commit and rollback going
        through the proxy (and so through the plugins): commit on success,
        roll back on an exception (a failed rollback is logged, never raised
        over the application's exception), then close unless a pool owns
        the connection."""
        if raw.closed:
            return None
        if exc_type is not None:
            try:
                proxy.rollback()
            except Exception as exc2:
                _psycopg_logger.warning(
                    "error ignored in rollback on %s: %s", raw, exc2
                )
        else:
            proxy.commit()
        if not getattr(raw, "_pool", None):
            proxy.close()
        return None

    returns_to_pools = True

    def pool_taking_back(self, raw: Any) -> Any:
        """The psycopg_pool pool that takes ``raw`` back on ``close()``
        (``close_returns=True``), or None."""
        pool = getattr(raw, "_pool", None)
        if pool is not None and getattr(pool, "close_returns", False):
            return pool
        return None

    # -- transparent reconnect -------------------------------------------------

    def peer_closed(self, conn: Any) -> bool:
        """The socket is readable on an idle connection and reading it shows
        the connection broken (the server's FATAL and end-of-file); a
        notification or notice arriving instead is left for psycopg."""
        pgconn = conn.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return True
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
        except (OSError, ValueError, psycopg.Error):
            return True
        if not readable:
            return False
        try:
            pgconn.consume_input()
        except psycopg.Error:
            return True
        return bool(pgconn.status != pq.ConnStatus.OK)

    def session_state(self, conn: Any) -> dict[str, Any]:
        """autocommit, isolation level, read-only and deferrable flags,
        prepared-statement settings, row factory, cursor factory, the
        adapters, and the server parameters psycopg is told about
        (client encoding, time zone, date and interval styles, application
        name)."""
        state: dict[str, Any] = {
            name: getattr(conn, name)
            for name in (
                "autocommit",
                "isolation_level",
                "read_only",
                "deferrable",
                "prepare_threshold",
                "prepared_max",
                "row_factory",
                "cursor_factory",
            )
        }
        state["adapters"] = conn.adapters
        params = {}
        for name in _REPORTED_PARAMS:
            value = conn.info.parameter_status(name)
            if value is not None:
                params[name] = value
        state["params"] = params
        return state

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """Apply ``state`` to a fresh (idle) connection: the server
        parameters that differ first (with autocommit on, so that no
        transaction is left open), then the connection's own settings."""
        changed = changed_params(conn, state)
        if changed:
            conn.autocommit = True
            for name, value in changed:
                self.query(
                    conn, "SELECT pg_catalog.set_config(%s, %s, false)", (name, value)
                )
        for name in ("autocommit", "isolation_level", "read_only", "deferrable"):
            if name in state and getattr(conn, name) != state[name]:
                setattr(conn, name, state[name])
        restore_local(conn, state)


def changed_params(conn: Any, state: dict[str, Any]) -> list[tuple[str, Any]]:
    """The server parameters of ``state`` that differ on ``conn``."""
    params = state.get("params", {})
    return [
        (name, value)
        for name, value in params.items()
        if conn.info.parameter_status(name) != value
    ]


def restore_local(conn: Any, state: dict[str, Any]) -> None:
    """The settings of ``state`` that psycopg keeps on the client (the
    same for its synchronous and asyncio connections)."""
    for name in ("prepare_threshold", "prepared_max", "row_factory", "cursor_factory"):
        if name in state:
            setattr(conn, name, state[name])
    adapters = state.get("adapters")
    if adapters is not None and adapters is not conn.adapters:
        # The types the application registered on the old connection
        # (psycopg has no public setter: the attribute behind
        # ``conn.adapters`` takes a copy, as psycopg's own connect does).
        conn._adapters = AdaptersMap(adapters)
