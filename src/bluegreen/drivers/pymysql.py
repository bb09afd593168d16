"""Adapter for PyMySQL (``pymysql.connect`` / ``pymysql.connections.Connection``).

IP substitution: bluegreen opens the TCP socket to the IP itself and hands
it to PyMySQL (``defer_connect=True`` then ``connect(sock)``), so the
connection keeps ``host=<name>`` and TLS checks both the CA chain and the
host name (``ssl_verify_identity``) against the name the application used.
"""

from __future__ import annotations

import socket
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

from .base import DriverAdapter, DriverParams, Endpoint

__all__ = ["PyMySQLAdapter"]

#: CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_CONN_HOST_ERROR, CR_CONNECTION_ERROR,
#: CR_SERVER_LOST_EXTENDED, ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED,
#: ER_CLIENT_INTERACTION_TIMEOUT.
LOST_ERRNOS = frozenset({2006, 2013, 2003, 2002, 2055, 1053, 1927, 4031})


class PyMySQLAdapter(DriverAdapter):
    """PyMySQL."""

    name = "pymysql"
    family = "mysql"
    default_port = 3306
    timeout_keys = ("connect_timeout",)
    default_timeout = 10.0  # PyMySQL's own default
    monitoring_drop_keys = frozenset({"cursorclass", "defer_connect"})

    __slots__ = ()

    def endpoint(self, params: DriverParams) -> Endpoint:
        """``host`` (default localhost), ``port``, ``user``, ``database``/``db``."""
        kw = params.kwargs
        db = kw.get("database", kw.get("db"))
        return Endpoint(
            kw.get("host") or "localhost",
            int(kw.get("port") or self.default_port),
            kw.get("user"),
            db if isinstance(db, str) else None,
        )

    def connect(
        self,
        params: DriverParams,
        host: str | None = None,
        ip: str | None = None,
        port: int | None = None,
    ) -> Any:
        """Connect; for an *ip*, open the socket ourselves and keep the host name."""
        if host is None and ip is None and port is None:
            return self.target(**params.kwargs)
        kwargs = dict(params.kwargs)
        if host is not None:
            kwargs["host"] = host
        if port is not None:
            kwargs["port"] = port
        if ip is None or kwargs.get("defer_connect"):
            if ip is not None:
                kwargs["host"] = ip
            return self.target(**kwargs)
        kwargs["defer_connect"] = True
        conn = self.target(**kwargs)
        sock = socket.create_connection((ip, conn.port), conn.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            conn.connect(sock)
        except BaseException:
            sock.close()
            raise
        return conn

    def is_closed(self, conn: Any) -> bool:
        """``not conn.open``."""
        return not conn.open

    def in_transaction(self, conn: Any) -> bool:
        """The server status flag SERVER_STATUS_IN_TRANS."""
        return bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)

    def get_autocommit(self, conn: Any) -> bool:
        """``conn.get_autocommit()``."""
        return bool(conn.get_autocommit())

    def set_autocommit(self, conn: Any, value: bool) -> None:
        """``conn.autocommit(value)`` (a round trip when the value changes)."""
        conn.autocommit(value)

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """Client errors 2002/2003/2006/2013/2055, server shutdown/kill, or
        ``InterfaceError(0, '')`` (PyMySQL's "connection already closed")."""
        if not isinstance(exc, pymysql.err.Error):
            return False
        if not isinstance(
            exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError)
        ):
            return False
        if conn is not None and not conn.open:
            return True
        code = exc.args[0] if exc.args else None
        if isinstance(exc, pymysql.err.InterfaceError) and code in (0, "(0, '')"):
            return True
        return code in LOST_ERRNOS

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Unbuffered ``SSCursor`` and subclasses read rows while fetching."""
        return isinstance(cursor, pymysql.cursors.SSCursor)
