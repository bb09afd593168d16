"""Adapter for psycopg2 (``psycopg2.connect``).

psycopg2 hands its keywords to libpq as psycopg 3 does, so IP substitution
works the same way: ``host=<name>`` stays and ``hostaddr=<ip>`` is added.
libpq connects to the address and still verifies the server certificate
against the name (``sslmode=verify-full`` keeps working).

``connection_factory`` and ``cursor_factory`` (``DictCursor``,
``RealDictCursor``, ``NamedTupleCursor``, ``LoggingConnection``...) pass
through; the wrapper's own queries ask for a plain tuple cursor whatever
factory the application chose.

psycopg2's C functions that take a connection or cursor as a scope
(``register_type``, ``quote_ident``, ``encrypt_password``) check its C type
and refuse any other object: ``register_uuid(None, conn)`` (which SQLAlchemy
runs on every new connection), ``register_default_jsonb(conn)`` (Django) or
``sql.Identifier(...).as_string(conn)`` would fail on a bluegreen proxy. When
the adapter is first used it wraps those three functions, where psycopg2's
own modules look them up, so that they take a bluegreen proxy as the driver
object behind it; any other argument goes to psycopg2 unchanged. The types
registered on a connection are carried over by a transparent reconnect.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
from collections.abc import Mapping
from typing import Any

import psycopg2
import psycopg2.extensions as ext

from .._types import DBAPIConnection
from ..errors import ConfigurationError
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

__all__ = ["Psycopg2Adapter"]

_psycopg2_logger = logging.getLogger("psycopg2")

#: ``psycopg2.connect``'s own keyword arguments (the rest go to libpq).
_PSYCOPG2_KWARGS = frozenset(
    {"dsn", "connection_factory", "cursor_factory", "async", "async_", "database"}
)
#: libpq's connection keywords (libpq 17; older ones reject the newest few
#: themselves, with their own message). psycopg2 has no call listing them.
_LIBPQ_KEYWORDS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "require_auth",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "sslnegotiation",
        "requiressl",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
    }
)
_KNOWN = _LIBPQ_KEYWORDS | _PSYCOPG2_KWARGS

SURFACE = Surface(
    connection=table(
        PROXY=PROXY_CONNECTION,
        CALL=(
            "lobject",
            "reset",
            "set_client_encoding",
            "set_session",
            "tpc_begin",
            "tpc_commit",
            "tpc_prepare",
            "tpc_recover",
        ),
        UNDO=("set_isolation_level", "tpc_rollback"),
        LOCAL=(
            *EXCEPTION_ATTRS,
            "async",
            "async_",
            "binary_types",
            "cancel",
            "closed",
            "cursor_factory",
            "deferrable",
            "dsn",
            "encoding",
            "fileno",
            "filter",
            "get_backend_pid",
            "get_dsn_parameters",
            "get_native_connection",
            "get_parameter_status",
            "get_transaction_status",
            "info",
            "initialize",
            "isexecuting",
            "isolation_level",
            "notices",
            "notifies",
            "pgconn_ptr",
            "poll",
            "protocol_version",
            "readonly",
            "replication_type",
            "server_version",
            "status",
            "string_types",
            "xid",
        ),
    ),
    cursor=table(
        PROXY=PROXY_CURSOR,
        CALL=(
            "copy_expert",
            "copy_from",
            "copy_to",
            "consume_stream",
            "create_replication_slot",
            "drop_replication_slot",
            "read_message",
            "send_feedback",
            "start_replication",
            "start_replication_expert",
        ),
        STREAM=("scroll",),
        LOCAL=(
            "MAX_CACHE",
            "Record",
            "binary_types",
            "cast",
            "closed",
            "feedback_timestamp",
            "fileno",
            "io_timestamp",
            "itersize",
            "mogrify",
            "name",
            "pgresult_ptr",
            "query",
            "row_factory",
            "rownumber",
            "scrollable",
            "statusmessage",
            "string_types",
            "typecaster",
            "tzinfo_factory",
            "wal_end",
            "withhold",
        ),
    ),
    notes={
        "cancel": "sends a cancel request on a separate connection; it must "
        "work while calls are suspended",
        "poll": "drives psycopg2's asynchronous connections, which bluegreen "
        "does not open (async=True is refused at connect)",
        "initialize": "LoggingConnection's set-up of its logger",
        "notifies": "the list poll() and the hooked calls fill",
    },
)


#: psycopg2's functions taking a connection or cursor scope, and the
#: position of that argument.
_SCOPED = (("register_type", 1), ("quote_ident", 1), ("encrypt_password", 2))
_ACCEPTS_PROXIES = "_bluegreen_accepts_proxies"


def _driver_object(obj: Any) -> Any:
    """The driver connection or cursor behind a bluegreen proxy; any other
    object as it is."""
    from ..connection import Connection
    from ..cursor import Cursor

    if isinstance(obj, Connection):
        return obj.driver_connection
    if isinstance(obj, Cursor):
        return obj.driver_cursor
    return obj


def _accepting_proxies(fn: Any, pos: int) -> Any:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) > pos:
            args = (*args[:pos], _driver_object(args[pos]), *args[pos + 1 :])
        for key in ("conn_or_curs", "scope"):
            if key in kwargs:
                kwargs[key] = _driver_object(kwargs[key])
        return fn(*args, **kwargs)

    setattr(call, _ACCEPTS_PROXIES, True)
    return call


def accept_proxies() -> None:
    """Let psycopg2's scoped C functions take bluegreen proxies (idempotent;
    see the module docstring)."""
    import psycopg2._json
    import psycopg2._range

    for module in (ext, psycopg2._json, psycopg2._range):
        for name, pos in _SCOPED:
            fn = getattr(module, name, None)
            if fn is not None and not getattr(fn, _ACCEPTS_PROXIES, False):
                setattr(module, name, _accepting_proxies(fn, pos))


class Psycopg2Adapter(LibpqFamilyAdapter):
    """psycopg2."""

    name = "psycopg2"
    monitoring_drop_keys = frozenset(
        {
            "target_session_attrs",
            "load_balance_hosts",
            "connection_factory",
            "cursor_factory",
        }
    )
    surface = SURFACE
    cursor_state = ("arraysize", "itersize")

    __slots__ = ()

    def __init__(self, target: Any) -> None:
        super().__init__(target)
        accept_proxies()

    # -- parameters ---------------------------------------------------------

    def effective(self, params: DriverParams) -> dict[str, Any]:
        """The DSN's parameters overridden by the keyword arguments (psycopg2's
        ``database`` is libpq's ``dbname``), and libpq's environment defaults
        where neither gives a value."""
        eff: dict[str, Any] = (
            dict(ext.parse_dsn(params.conninfo)) if params.conninfo else {}
        )
        for key, value in params.kwargs.items():
            if key == "database":
                key = "dbname"
            eff[key] = value
        return fill_from_environment(eff, LIBPQ_ENV)

    def operational_error(self) -> type[Exception]:
        """``psycopg2.OperationalError``."""
        return psycopg2.OperationalError  # type: ignore[no-any-return]

    def known_parameters(self) -> frozenset[str]:
        """libpq's connection keywords and psycopg2's own arguments."""
        return _KNOWN

    # -- connections --------------------------------------------------------

    def _call(self, params: DriverParams, kwargs: Mapping[str, Any]) -> DBAPIConnection:
        """``psycopg2.connect(dsn, **kwargs)``, then ``autocommit`` set on
        the connection: psycopg2 takes it as an attribute, not an argument."""
        if kwargs.get("async") or kwargs.get("async_"):
            raise ConfigurationError(
                "bluegreen cannot wrap psycopg2's asynchronous connections "
                "(async=True); use bluegreen.connect_async() with psycopg 3 "
                "or asyncpg for asyncio"
            )
        autocommit = None
        if "autocommit" in kwargs:
            kwargs = dict(kwargs)
            autocommit = kwargs.pop("autocommit")
        if params.conninfo:
            conn: Any = self.target(params.conninfo, **kwargs)
        else:
            conn = self.target(**kwargs)
        if autocommit is not None:
            try:
                conn.autocommit = bool(autocommit)
            except BaseException:
                conn.close()
                raise
        return conn  # type: ignore[no-any-return]

    def is_closed(self, conn: Any) -> bool:
        """``conn.closed`` (1 closed, 2 broken)."""
        return bool(conn.closed)

    def in_transaction(self, conn: Any) -> bool:
        """libpq's transaction status: in a transaction, failed, or busy."""
        status = conn.info.transaction_status
        return status in (
            ext.TRANSACTION_STATUS_ACTIVE,
            ext.TRANSACTION_STATUS_INTRANS,
            ext.TRANSACTION_STATUS_INERROR,
        )

    def get_autocommit(self, conn: Any) -> bool:
        """``conn.autocommit``."""
        return bool(conn.autocommit)

    def set_autocommit(self, conn: Any, value: bool) -> None:
        """``conn.autocommit = value`` (nothing is sent)."""
        conn.autocommit = value

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """SQLSTATE class 08 or an admin/crash shutdown, a client-side
        failure without SQLSTATE ("server closed the connection
        unexpectedly"), or a closed connection."""
        if not isinstance(exc, psycopg2.Error):
            return False
        if conn is not None and conn.closed:
            return True
        sqlstate = exc.pgcode
        if sqlstate:
            return lost_sqlstate(sqlstate)
        if isinstance(exc, psycopg2.OperationalError):
            return True
        return isinstance(exc, psycopg2.InterfaceError) and "closed" in str(exc)

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Named (server-side) cursors fetch from the network."""
        return getattr(cursor, "name", None) is not None

    def plain_cursor(self, conn: Any) -> Any:
        """A plain ``psycopg2.extensions.cursor`` (tuple rows), whatever
        ``cursor_factory`` the connection has."""
        return conn.cursor(cursor_factory=ext.cursor)

    def exit(
        self,
        proxy: Any,
        raw: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: Any,
    ) -> Any:
        """``with conn:`` as psycopg2 does it: commit on success, roll back on
        an exception, through the proxy; the connection stays open."""
        if raw.closed:
            return None
        try:
            end_transaction(proxy, raw, exc_type is not None, _psycopg2_logger)
        finally:
            # psycopg2 remembers the block was entered until its own __exit__
            # runs; with the transaction ended above, that exit sends nothing.
            if not raw.closed and not self.in_transaction(raw):
                with contextlib.suppress(psycopg2.Error):
                    raw.__exit__(None, None, None)
        return None

    # -- transparent reconnect -------------------------------------------------

    def peer_closed(self, conn: Any) -> bool:
        """The socket is readable on an idle connection and polling it shows
        the connection gone (the server's FATAL, then end-of-file).

        ``poll()`` on an idle connection reads what arrived and keeps
        notifications and notices for the application.
        """
        if conn.closed:
            return True
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError, psycopg2.Error):
            return True
        if not readable:
            return False
        try:
            conn.poll()
        except psycopg2.Error:
            return True
        return bool(conn.closed)

    def session_state(self, conn: Any) -> dict[str, Any]:
        """autocommit, isolation level, read-only and deferrable flags, the
        cursor factory, the connection's type casters, and the server
        parameters libpq is told about."""
        state: dict[str, Any] = {}
        # Each read is local, but psycopg2 refuses some on a closed
        # connection: what cannot be read is not carried over.
        for name in ("autocommit", "isolation_level", "readonly", "deferrable"):
            with contextlib.suppress(psycopg2.Error):
                state[name] = getattr(conn, name)
        state["cursor_factory"] = conn.cursor_factory
        # Type casters registered on this connection (register_type with the
        # connection as scope: uuid, json, hstore, composites...).
        state["string_types"] = dict(conn.string_types)
        state["binary_types"] = dict(conn.binary_types)

        def parameter_status(name: str) -> Any:
            try:
                return conn.info.parameter_status(name)
            except psycopg2.Error:
                return None

        state["params"] = reported_params(parameter_status)
        return state

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        """Apply ``state`` to a fresh (idle) connection: server parameters
        that differ first, in autocommit so that no transaction stays open,
        then the connection's own settings."""
        changed = changed_params(conn, state)
        if changed:
            conn.autocommit = True
            for name, value in changed:
                self.query(conn, SET_PARAM_SQL, (name, value))
        for name in ("autocommit", "isolation_level", "readonly", "deferrable"):
            if name in state and getattr(conn, name) != state[name]:
                setattr(conn, name, state[name])
        if "cursor_factory" in state:
            conn.cursor_factory = state["cursor_factory"]
        for name in ("string_types", "binary_types"):
            if state.get(name):
                getattr(conn, name).update(state[name])
