"""Adapter for PyMySQL (``pymysql.connect`` / ``pymysql.connections.Connection``).

IP substitution: bluegreen opens the TCP socket to the IP itself and hands
it to PyMySQL (``defer_connect=True`` then ``connect(sock)``), so the
connection keeps ``host=<name>`` and TLS checks both the CA chain and the
host name (``ssl_verify_identity``) against the name the application used.
"""

from __future__ import annotations

import contextlib
import inspect
import select
import socket
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

from .._types import DBAPIConnection
from ._mysql import LOST_ERRNOS, MySQLFamilyAdapter
from ._surface import EXCEPTION_ATTRS, PROXY_CONNECTION, PROXY_CURSOR, Surface, table
from .base import DriverParams

__all__ = ["LOST_ERRNOS", "PyMySQLAdapter"]

#: Attribute bluegreen sets on a PyMySQL connection: its last result when a
#: commit or rollback ended the transaction (see in_transaction).
_ENDED = "_bluegreen_transaction_ended_at"

SURFACE = Surface(
    connection=table(
        PROXY=PROXY_CONNECTION,
        CALL=(
            "begin",
            "connect",
            "kill",
            "next_result",
            "ping",
            "query",
            "select_db",
            "set_character_set",
            "set_charset",
            "show_warnings",
        ),
        LOCAL=(
            *EXCEPTION_ATTRS,
            "affected_rows",
            "character_set_name",
            "escape",
            "get_autocommit",
            "get_host_info",
            "get_proto_info",
            "get_server_info",
            "insert_id",
            "literal",
            "open",
            "thread_id",
            "write_packet",
        ),
    ),
    cursor=table(
        PROXY=PROXY_CURSOR,
        STREAM=("scroll", "read_next", "fetchall_unbuffered"),
        LOCAL=("dict_type", "max_stmt_length", "mogrify", "setoutputsizes"),
    ),
    notes={
        "write_packet": "a low-level protocol primitive under the hooked calls",
        "autocommit": "the proxy's setter and PyMySQL's autocommit(value) "
        "method are hooked (SET autocommit is a round trip)",
        "connect": "reopens the connection where PyMySQL was told to; "
        "hooked for the wait only, not routed",
        "ping": "hooked; ping(reconnect=True) reconnects where PyMySQL was "
        "told to, without the plugin's routing",
    },
)


class PyMySQLAdapter(MySQLFamilyAdapter):
    """PyMySQL."""

    name = "pymysql"
    default_host = "localhost"
    timeout_keys = ("connect_timeout",)
    io_timeout_keys = ("read_timeout", "write_timeout")
    default_timeout = 10.0  # PyMySQL's own default
    monitoring_drop_keys = frozenset({"cursorclass", "defer_connect"})
    surface = SURFACE
    autocommit_set_is_call = True
    autocommit_is_method = True

    __slots__ = ()

    def client_name_params(self, name: str) -> dict[str, Any]:
        """The ``program_name`` connection attribute
        (``performance_schema.session_connect_attrs``)."""
        return {"program_name": name}

    def _connect_ip(
        self, params: DriverParams, kwargs: dict[str, Any], ip: str
    ) -> DBAPIConnection:
        """Open the socket to *ip* ourselves and keep the host name."""
        if kwargs.get("defer_connect"):
            return super()._connect_ip(params, kwargs, ip)
        kwargs["defer_connect"] = True
        conn: Any = self._call(params, kwargs)
        try:
            sock = socket.create_connection((ip, conn.port), conn.connect_timeout)
        except OSError as exc:
            # What PyMySQL itself raises when it cannot reach the server, so
            # the application's error handling sees the driver's own error.
            raise pymysql.err.OperationalError(
                2003, f"Can't connect to MySQL server on {ip!r} ({exc})"
            ) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            conn.connect(sock)
        except BaseException:
            sock.close()
            raise
        return conn  # type: ignore[no-any-return]

    def is_closed(self, conn: Any) -> bool:
        """``not conn.open``."""
        return not conn.open

    def in_transaction(self, conn: Any) -> bool:
        """The server status flag SERVER_STATUS_IN_TRANS, or, outside
        autocommit, a last statement that returned rows.

        PyMySQL updates ``server_status`` only from OK packets, not from the
        end of a result set: after a SELECT that opened a transaction the
        flag still says idle. A last result without a status of its own (a
        result set) therefore counts as a transaction outside autocommit.
        """
        if conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS:
            return True
        if conn.server_status & SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT:
            return False
        last = getattr(conn, "_result", None)
        return (
            last is not None
            and last.server_status is None
            and last is not getattr(conn, _ENDED, None)
        )

    def transaction_ended(self, conn: Any) -> None:
        """A commit or rollback went through: the last result set (which
        PyMySQL keeps) no longer means an open transaction."""
        with contextlib.suppress(AttributeError):
            setattr(conn, _ENDED, getattr(conn, "_result", None))

    def get_autocommit(self, conn: Any) -> bool:
        """``conn.get_autocommit()``."""
        return bool(conn.get_autocommit())

    def set_autocommit(self, conn: Any, value: bool) -> None:
        """``conn.autocommit(value)`` (a round trip when the value changes)."""
        conn.autocommit(value)

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """Client errors 2002/2003/2006/2013/2055, server shutdown/kill, or
        ``InterfaceError(0, '')`` (PyMySQL's "connection already closed")."""
        if not isinstance(
            exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError)
        ):
            return False
        if conn is not None and self.is_closed(conn):
            return True
        code = exc.args[0] if exc.args else None
        if isinstance(exc, pymysql.err.InterfaceError) and code in (0, "(0, '')"):
            return True
        return code in LOST_ERRNOS

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Unbuffered ``SSCursor`` and subclasses read rows while fetching."""
        return isinstance(cursor, pymysql.cursors.SSCursor)

    def operational_error(self) -> type[Exception]:
        """``pymysql.err.OperationalError``."""
        return pymysql.err.OperationalError  # type: ignore[no-any-return]

    def known_parameters(self) -> frozenset[str]:
        """The keyword parameters of ``pymysql.connections.Connection``."""
        signature = inspect.signature(pymysql.connections.Connection.__init__)
        return frozenset(
            name
            for name, p in signature.parameters.items()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "self"
        )

    def plain_cursor(self, conn: Any) -> Any:
        """A plain buffered ``pymysql.cursors.Cursor`` (tuple rows), whatever
        ``cursorclass`` the connection was given."""
        return conn.cursor(pymysql.cursors.Cursor)

    # -- transparent reconnect -------------------------------------------------

    def peer_closed(self, conn: Any) -> bool:
        """MySQL sends nothing on an idle connection unless it is dropping
        it: a readable socket means the server closed (or killed) it."""
        sock = getattr(conn, "_sock", None)
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def session_state(self, conn: Any) -> dict[str, Any]:
        """autocommit, the current database (``select_db``) and the
        character set and collation."""
        db = conn.db
        return {
            "autocommit": bool(conn.get_autocommit()),
            "db": db.decode() if isinstance(db, bytes) else db,
            "charset": conn.charset,
            "collation": getattr(conn, "collation", None),
        }

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        db = conn.db.decode() if isinstance(conn.db, bytes) else conn.db
        if state.get("db") and state["db"] != db:
            conn.select_db(state["db"])
        if state.get("charset") and state["charset"] != conn.charset:
            conn.set_character_set(state["charset"], state.get("collation"))
        if "autocommit" in state and bool(conn.get_autocommit()) != state["autocommit"]:
            conn.autocommit(state["autocommit"])
