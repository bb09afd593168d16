"""Adapter for MySQL Connector/Python (``mysql.connector.connect``).

IP substitution connects to the IP: the driver offers no way to keep the
host name for TLS. The certificate chain is still verified against the CA
(``ssl_ca``, ``ssl_verify_cert``), but a host-name check
(``ssl_verify_identity``) compares against the IP and fails unless the
certificate lists that IP.
"""

from __future__ import annotations

from typing import Any

from mysql.connector import errors as myerrors

from ._mysql import LOST_ERRNOS, MySQLFamilyAdapter

__all__ = ["MySQLConnectorAdapter"]


class MySQLConnectorAdapter(MySQLFamilyAdapter):
    """mysql-connector-python, pure Python and C extension connections."""

    name = "mysql-connector"
    default_host = "127.0.0.1"
    user_alias = "username"
    timeout_keys = ("connection_timeout", "connect_timeout")
    # ``failover`` makes mysql.connector.connect ignore host and port.
    monitoring_drop_keys = frozenset({"raw", "pool_name", "pool_size", "failover"})

    __slots__ = ()

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
        if conn is not None:
            try:
                return self.is_closed(conn)
            except Exception:
                return True
        return "not available" in str(exc)

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """Unbuffered cursors read rows from the socket while fetching."""
        return "Buffered" not in type(cursor).__name__
