"""Adapter for MySQL Connector/Python (``mysql.connector.connect``).

IP substitution connects to the IP: the driver offers no way to keep the
host name for TLS. The certificate chain is still verified against the CA
(``ssl_ca``, ``ssl_verify_cert``), but a host-name check
(``ssl_verify_identity``) compares against the IP and fails unless the
certificate lists that IP.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Mapping
from typing import Any

from mysql.connector import errors as myerrors

from ._mysql import LOST_ERRNOS, MySQLFamilyAdapter
from ._surface import PROXY_CONNECTION, PROXY_CURSOR, Surface, table
from .base import DriverParams

__all__ = ["MySQLConnectorAdapter"]

#: Arguments mysql.connector.connect takes besides its configuration keys.
_EXTRA = frozenset(
    {"failover", "option_files", "option_groups", "username", "read_default_file"}
)

SURFACE = Surface(
    connection=table(
        PROXY=PROXY_CONNECTION,
        CALL=(
            "cmd_change_user",
            "cmd_debug",
            "cmd_init_db",
            "cmd_ping",
            "cmd_process_info",
            "cmd_process_kill",
            "cmd_query",
            "cmd_refresh",
            "cmd_reset_connection",
            "cmd_shutdown",
            "cmd_statistics",
            "cmd_stmt_execute",
            "cmd_stmt_fetch",
            "cmd_stmt_prepare",
            "cmd_stmt_reset",
            "cmd_stmt_send_long_data",
            "connect",
            "consume_results",
            "fetch_eof_columns",
            "fetch_eof_status",
            "get_row",
            "get_rows",
            "handle_unread_result",
            "info_query",
            "is_connected",
            "next_result",
            "ping",
            "reconnect",
            "reset_session",
            "set_charset_collation",
            "start_transaction",
        ),
        ITER=("cmd_query_iter",),
        GET_SET=("database", "time_zone", "sql_mode"),
        LOCAL=(
            "can_consume_results",
            "charset",
            "charset_id",
            "client_flags",
            "cmd_quit",
            "cmd_stmt_close",
            "collation",
            "config",
            "connection_id",
            "converter_class",
            "disconnect",
            "free_result",
            "get_self",
            "get_server_info",
            "get_server_version",
            "get_warnings",
            "have_next_result",
            "in_transaction",
            "is_closed",
            "is_secure",
            "isset_client_flag",
            "more_results",
            "num_rows",
            "pool_config_version",
            "prepare_for_mysql",
            "python_charset",
            "query_attrs",
            "query_attrs_append",
            "query_attrs_clear",
            "query_attrs_remove",
            "raise_on_warnings",
            "read_timeout",
            "result_set_available",
            "server_host",
            "server_info",
            "server_port",
            "server_version",
            "set_allow_local_infile_in_path",
            "set_character_set_name",
            "set_client_flags",
            "set_converter_class",
            "set_login",
            "set_unicode",
            "shutdown",
            "unix_socket",
            "unread_result",
            "use_unicode",
            "user",
            "warning_count",
            "write_timeout",
        ),
    ),
    cursor=table(
        PROXY=PROXY_CURSOR,
        STREAM=("fetchsets",),
        LOCAL=(
            "add_attribute",
            "clear_attributes",
            "column_names",
            "fetchwarnings",
            "get_attributes",
            "read_timeout",
            "remove_attribute",
            "reset",
            "statement",
            "stored_results",
            "warning_count",
            "warnings",
            "with_rows",
            "write_timeout",
        ),
    ),
    notes={
        "cmd_quit": "part of closing; closing never waits",
        "cmd_stmt_close": "part of closing a prepared statement",
        "disconnect": "closing",
        "shutdown": "closes the socket without a goodbye; never waits",
        "free_result": "releases a result already read (C extension)",
        "reset": "drops what is left of the cursor's current result",
        "autocommit": "the proxy's getter (SELECT @@session.autocommit) and "
        "setter (SET) are hooked",
        "cursor": "the proxy's cursor() is hooked: mysql-connector pings the "
        "server in it",
        "reconnect": "hooked for the wait only: it reconnects where "
        "mysql-connector was told to, without the plugin's routing",
    },
)


class MySQLConnectorAdapter(MySQLFamilyAdapter):
    """mysql-connector-python, pure Python and C extension connections."""

    name = "mysql-connector"
    default_host = "127.0.0.1"
    user_alias = "username"
    timeout_keys = ("connection_timeout", "connect_timeout")
    # ``failover`` makes mysql.connector.connect ignore host and port.
    monitoring_drop_keys = frozenset({"raw", "pool_name", "pool_size", "failover"})
    surface = SURFACE
    autocommit_set_is_call = True
    autocommit_get_is_call = True
    cursor_is_call = True
    unsent_on_loss = frozenset({"cursor"})

    __slots__ = ()

    def named_client(
        self, params: DriverParams, name: str, unless: Mapping[str, Any] = {}
    ) -> DriverParams:
        """The ``program_name`` connection attribute, added to the
        application's ``conn_attrs``."""
        attrs = dict(params.kwargs.get("conn_attrs") or {})
        if "program_name" in (unless.get("conn_attrs") or {}):
            return params
        attrs["program_name"] = name
        return DriverParams(params.conninfo, {**params.kwargs, "conn_attrs": attrs})

    def is_closed(self, conn: Any) -> bool:
        """No round trip: C extension ``is_closed()``, pure Python socket state."""
        is_closed = getattr(conn, "is_closed", None)
        if is_closed is not None:
            try:
                return bool(is_closed())
            except AttributeError:  # the C handle is already gone
                return True
        channel = getattr(conn, "_socket", None)
        sock = getattr(channel, "sock", None)
        if sock is None:
            return True
        try:
            return bool(sock.fileno() == -1)
        except OSError:
            return True

    def in_transaction(self, conn: Any) -> bool:
        """``conn.in_transaction``."""
        return bool(conn.in_transaction)

    def get_autocommit(self, conn: Any) -> bool:
        """``conn.autocommit``."""
        return bool(conn.autocommit)

    def set_autocommit(self, conn: Any, value: bool) -> None:
        """``conn.autocommit = value``."""
        conn.autocommit = value

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """Errors 2002/2003/2006/2013/2055, server shutdown/kill, or an
        OperationalError/InterfaceError raised on a closed connection."""
        if not isinstance(exc, (myerrors.OperationalError, myerrors.InterfaceError)):
            return False
        if exc.errno in LOST_ERRNOS:
            return True
        if "Connection not available" in str(exc):
            return True  # what mysql-connector says when its ping failed
        if conn is not None:
            try:
                return self.is_closed(conn)
            except Exception:
                return True
        return "not available" in str(exc)

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Unbuffered cursors read rows from the socket while fetching."""
        return "Buffered" not in type(cursor).__name__

    def operational_error(self) -> type[Exception]:
        """``myerrors.OperationalError``."""
        return myerrors.OperationalError

    def known_parameters(self) -> frozenset[str]:
        """What ``mysql.connector.connect`` accepts: its configuration keys,
        the pooling and fail-over arguments and the aliases it translates."""
        from mysql.connector.constants import CNX_POOL_ARGS, DEFAULT_CONFIGURATION

        return frozenset(DEFAULT_CONFIGURATION) | frozenset(CNX_POOL_ARGS) | _EXTRA

    def plain_cursor(self, conn: Any) -> Any:
        """A buffered, non-raw, tuple-row cursor, whatever ``buffered``,
        ``raw`` or cursor defaults the connection was given."""
        return conn.cursor(buffered=True, raw=False, dictionary=False, prepared=False)

    # -- transparent reconnect -------------------------------------------------

    def peer_closed(self, conn: Any) -> bool:
        """The pure-Python connection's socket is readable while idle (MySQL
        sends nothing then unless it is dropping the connection). The C
        extension does not expose its socket: it cannot tell (False)."""
        channel = getattr(conn, "_socket", None)
        sock = getattr(channel, "sock", None)
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def session_state(self, conn: Any) -> dict[str, Any]:
        """autocommit, the current database, character set and collation,
        time zone and SQL mode, as the connection last set them."""
        state: dict[str, Any] = {}
        for key, attr in (
            ("autocommit", "_autocommit"),
            ("database", "_database"),
            ("time_zone", "_time_zone"),
            ("sql_mode", "_sql_mode"),
        ):
            value = getattr(conn, attr, None)
            if value is not None:
                state[key] = value
        # (The charset of a dead C connection may not be readable.)
        with contextlib.suppress(Exception):
            state["charset"] = (conn.charset, conn.collation)
        return state

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        if state.get("database") and state["database"] != getattr(
            conn, "_database", None
        ):
            conn.cmd_init_db(state["database"])
        charset = state.get("charset")
        if charset is not None and (conn.charset, conn.collation) != charset:
            conn.set_charset_collation(*charset)
        for key in ("time_zone", "sql_mode"):
            if key in state and getattr(conn, "_" + key, None) != state[key]:
                setattr(conn, key, state[key])
        if "autocommit" in state and bool(getattr(conn, "_autocommit", False)) != bool(
            state["autocommit"]
        ):
            conn.autocommit = bool(state["autocommit"])
