"""Adapter for psycopg 3 (``psycopg.connect`` / ``psycopg.Connection.connect``).

IP substitution keeps ``host=<name>`` and adds ``hostaddr=<ip>``: libpq then
connects to the address but still verifies the server certificate against
the name (``sslmode=verify-full`` keeps working).
"""

from __future__ import annotations

import functools
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
from ._libpq import (
    LIBPQ_ENV,
    SET_PARAM_SQL,
    LibpqFamilyAdapter,
    changed_params,
    end_transaction,
    lost_sqlstate,
    reported_params,
)
from ._surface import EXCEPTION_ATTRS, PROXY_CONNECTION, PROXY_CURSOR, Surface, table
from .base import DriverParams, fill_from_environment

__all__ = ["PsycopgAdapter", "changed_params", "restore_local"]

_psycopg_logger = logging.getLogger("psycopg")

#: ``psycopg.Connection.connect``'s own keyword arguments (not libpq's).
_PSYCOPG_KWARGS = frozenset(
    {"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"}
)


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


class PsycopgAdapter(LibpqFamilyAdapter):
    """psycopg 3, synchronous connections."""

    name = "psycopg"
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
        return fill_from_environment(eff, LIBPQ_ENV)

    def operational_error(self) -> type[Exception]:
        """``psycopg.OperationalError``."""
        return psycopg.OperationalError

    def known_parameters(self) -> frozenset[str]:
        """libpq's conninfo keywords (as this libpq knows them) and the
        keyword arguments of ``psycopg.Connection.connect``."""
        return _known_parameters()

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        conn: DBAPIConnection = self.target(params.conninfo, **kwargs)
        return conn

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
            return lost_sqlstate(sqlstate)
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
        end_transaction(proxy, raw, exc_type is not None, _psycopg_logger)
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
        state["params"] = reported_params(conn.info.parameter_status)
        return state

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """Apply ``state`` to a fresh (idle) connection: the server
        parameters that differ first (with autocommit on, so that no
        transaction is left open), then the connection's own settings."""
        changed = changed_params(conn, state)
        if changed:
            conn.autocommit = True
            for name, value in changed:
                self.query(conn, SET_PARAM_SQL, (name, value))
        for name in ("autocommit", "isolation_level", "read_only", "deferrable"):
            if name in state and getattr(conn, name) != state[name]:
                setattr(conn, name, state[name])
        restore_local(conn, state)


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


@functools.cache
def _known_parameters() -> frozenset[str]:
    """libpq's keywords: a fact of the loaded library, read once."""
    keywords = {o.keyword.decode() for o in pq.Conninfo.get_defaults()}
    return frozenset(keywords | _PSYCOPG_KWARGS)
