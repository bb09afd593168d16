"""Adapter for mysqlclient (``MySQLdb.connect`` / ``MySQLdb.connections.Connection``).

IP substitution connects to the IP itself: mysqlclient hands the host to its
C client library (MariaDB Connector/C, or Oracle's libmysqlclient) and cannot
be given a socket, so the host name cannot be kept for TLS. Verification is
never turned off. The CA chain is still verified as the application
configured it, but a host-name check compares the server certificate with
the IP and fails unless the certificate lists that IP: ``ssl_mode=
"VERIFY_IDENTITY"``, and, with MariaDB Connector/C, ``"VERIFY_CA"`` too
(mysqlclient maps both to ``MYSQL_OPT_SSL_VERIFY_SERVER_CERT``, which checks
the name as well). Such a connection fails with the driver's own error
(2026), and a warning says why. The same holds for the monitors, which
connect to recorded IPs: give them TLS settings of their own with the
``blue-green-monitoring-`` prefix if the certificates carry no IPs.
mysqlclient's ``ssl`` dict takes ``ca``, ``capath``, ``cert``, ``key`` and
``cipher`` only; other keys there (``check_hostname``) are ignored by
mysqlclient itself, with or without bluegreen.

Transaction state: with MariaDB Connector/C the server status flags the
client library keeps (updated by every OK and end-of-rows packet) are read
through ``mariadb_get_info()`` on mysqlclient's native connection handle, so
``in_transaction`` is exact and costs no round trip; the current database
comes from there too. With another client library only the autocommit flag
is readable: outside autocommit a transaction is then assumed open.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import re
import select
from collections.abc import Callable
from typing import Any

import MySQLdb
import MySQLdb._mysql
import MySQLdb.connections
import MySQLdb.cursors

from .._runtime import runtime
from .._types import DBAPIConnection
from ._mysql import LOST_ERRNOS, MySQLFamilyAdapter
from ._surface import EXCEPTION_ATTRS, PROXY_CONNECTION, PROXY_CURSOR, Surface, table
from .base import DriverParams, Endpoint

__all__ = ["MySQLClientAdapter"]

logger = logging.getLogger("bluegreen.drivers")

SURFACE = Surface(
    connection=table(
        PROXY=PROXY_CONNECTION,
        CALL=(
            "begin",
            "change_user",
            "discard_result",
            "dump_debug_info",
            "kill",
            "next_result",
            "ping",
            "query",
            "read_query_result",
            "select_db",
            "send_query",
            "set_character_set",
            "set_server_option",
            "set_sql_mode",
            "show_warnings",
            "shutdown",
            "stat",
            "store_result",
            "use_result",
        ),
        LOCAL=(
            *EXCEPTION_ATTRS,
            "affected_rows",
            "character_set_name",
            "client_flag",
            "converter",
            "default_cursor",
            "errno",
            "error",
            "escape",
            "escape_string",
            "executemany_fallback",
            "field_count",
            "fileno",
            "get_autocommit",
            "get_character_set_info",
            "get_host_info",
            "get_proto_info",
            "get_server_info",
            "info",
            "insert_id",
            "literal",
            "more_results",
            "open",
            "port",
            "server_capabilities",
            "sqlstate",
            "string_literal",
            "thread_id",
            "warning_count",
            # Instance attributes mysqlclient sets in __init__.
            "cursorclass",
            "database",
            "db",
            "encoders",
            "encoding",
            "host",
            "messages",
            "user",
        ),
    ),
    cursor=table(
        PROXY=PROXY_CURSOR,
        LOCAL=(
            "description_flags",
            "executemany_fallback",
            "max_multi_stmt_count",
            "max_multi_stmt_length",
            "max_stmt_length",
            "mogrify",
            "rownumber",
            "scroll",
            "setoutputsizes",
            "warning_count",
        ),
    ),
    notes={
        "autocommit": "the proxy's setter and mysqlclient's autocommit(value) "
        "method are hooked (SET autocommit is a round trip)",
        "ping": "hooked; mysqlclient never reconnects in it unless told to "
        "with the deprecated ping(True), and then without the plugin's routing",
        "shutdown": "asks the server to shut down (COM_SHUTDOWN): a network "
        "call, hooked like any other",
        "scroll": "moves within rows already read (only buffered cursors have it)",
    },
)

#: SERVER_STATUS_IN_TRANS of the MySQL protocol's status flags.
_IN_TRANS = 0x0001
#: MARIADB_CONNECTION_SCHEMA and MARIADB_CONNECTION_SERVER_STATUS in MariaDB
#: Connector/C's ``enum mariadb_value`` (3.x, which only ever appends to it).
_INFO_SCHEMA = 15
_INFO_SERVER_STATUS = 30
_CAPSULE_NAME = b"_mysql.connection.native_connection"

#: The parameters of mysqlclient 2.x's Connection (its docstring and the C
#: module's keyword list); :meth:`MySQLClientAdapter.known_parameters` adds
#: what the installed release documents besides.
_PARAMETERS = frozenset(
    {
        "host",
        "user",
        "password",
        "passwd",
        "database",
        "db",
        "port",
        "unix_socket",
        "conv",
        "connect_timeout",
        "read_timeout",
        "write_timeout",
        "compress",
        "named_pipe",
        "init_command",
        "read_default_file",
        "read_default_group",
        "cursorclass",
        "use_unicode",
        "charset",
        "collation",
        "auth_plugin",
        "sql_mode",
        "client_flag",
        "multi_statements",
        "ssl",
        "ssl_mode",
        "server_public_key_path",
        "local_infile",
        "local_infile_dir",
        "autocommit",
        "binary_prefix",
        "executemany_fallback",
    }
)
_DOC_PARAM = re.compile(r":param\s+(?:[\w.]+\s+)?(\w+):")


@functools.cache
def _documented_parameters() -> frozenset[str]:
    """:data:`_PARAMETERS` and every ``:param`` of the installed release's
    ``Connection`` docstring (read once: it never changes)."""
    doc = MySQLdb.connections.Connection.__init__.__doc__ or ""
    return _PARAMETERS | frozenset(_DOC_PARAM.findall(doc))


def _get_info_function() -> Callable[..., bytes] | None:
    """MariaDB Connector/C's ``mariadb_get_info()`` as mysqlclient links it,
    or None (another client library, or no ctypes)."""
    try:
        lib = ctypes.CDLL(MySQLdb._mysql.__file__)
        function = lib.mariadb_get_info
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_char  # my_bool: 0 on success
    function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return function


#: The symbol lookup is done once per process (it never changes).
_get_info = functools.cache(_get_info_function)

_capsule_pointer = ctypes.PYFUNCTYPE(
    ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p
)(("PyCapsule_GetPointer", ctypes.pythonapi))


def _native_info(conn: Any, what: int, value: Any) -> bool:
    """Fill ``value`` with MariaDB Connector/C's ``what`` for ``conn``; False
    when the client library cannot tell. Reads the client's own state: no
    network I/O. Raises the driver's error on a closed connection."""
    function = _get_info()
    native = getattr(conn, "_get_native_connection", None)
    if function is None or native is None:
        return False
    pointer = _capsule_pointer(native(), _CAPSULE_NAME)
    return bool(pointer) and function(pointer, what, ctypes.byref(value)) == b"\x00"


def _server_status(conn: Any) -> int | None:
    """The server status flags the client library last received, or None."""
    status = ctypes.c_uint(0)
    return status.value if _native_info(conn, _INFO_SERVER_STATUS, status) else None


def _current_db(conn: Any) -> str | None:
    """The current database as the client library tracks it (``select_db``
    and ``USE`` through session tracking), else the one connected to."""
    schema = ctypes.c_char_p(None)
    with contextlib.suppress(MySQLdb.Error):
        if _native_info(conn, _INFO_SCHEMA, schema):
            raw = schema.value
            return raw.decode("utf-8", "replace") if raw else None
    db = getattr(conn, "db", None)
    if isinstance(db, bytes):
        return db.decode("utf-8", "replace")
    return db if isinstance(db, str) and db else None


def _mariadb_client() -> bool:
    """Whether mysqlclient runs on MariaDB Connector/C."""
    return _get_info() is not None


def _checks_host_name(kwargs: dict[str, Any]) -> str | None:
    """The ``ssl_mode`` of ``kwargs`` if it makes the client library check the
    server certificate's host name, else None."""
    mode = kwargs.get("ssl_mode")
    if not isinstance(mode, str):
        return None
    if mode == "VERIFY_IDENTITY" or (mode == "VERIFY_CA" and _mariadb_client()):
        return mode
    return None


class MySQLClientAdapter(MySQLFamilyAdapter):
    """mysqlclient (``MySQLdb``), on MariaDB Connector/C or libmysqlclient."""

    name = "mysqlclient"
    #: With no host, the client library connects to localhost (its socket).
    default_host = "localhost"
    timeout_keys = ("connect_timeout",)
    #: Whole seconds (the monitors' default is an int).
    io_timeout_keys = ("read_timeout", "write_timeout")
    #: No timeout of mysqlclient's or the client library's own: the
    #: operating system's TCP connect timeout (about two minutes on Linux).
    default_timeout = None
    monitoring_drop_keys = frozenset({"cursorclass", "conv", "use_unicode"})
    surface = SURFACE
    autocommit_set_is_call = True
    autocommit_is_method = True

    __slots__ = ()

    # -- parameters ------------------------------------------------------------

    def endpoint(self, params: DriverParams) -> Endpoint:
        """As for the other MySQL drivers, except that mysqlclient lets
        ``db`` win over ``database`` when both are given."""
        ep = super().endpoint(params)
        db = params.kwargs.get("db")
        if isinstance(db, str):
            return ep._replace(dbname=db)
        return ep

    def known_parameters(self) -> frozenset[str]:
        """mysqlclient's keyword parameters: those of 2.x, and every
        ``:param`` the installed release documents."""
        return _documented_parameters()

    # -- connections -------------------------------------------------------------

    def _connect_ip(
        self, params: DriverParams, kwargs: dict[str, Any], ip: str
    ) -> DBAPIConnection:
        """Connect to *ip* itself (see the module docstring for TLS)."""
        host = kwargs.get("host")
        kwargs["host"] = ip
        try:
            return self._call(params, kwargs)
        except MySQLdb.OperationalError as exc:
            mode = _checks_host_name(kwargs)
            if mode is not None:
                runtime().warnings.warn(
                    logger,
                    ("mysqlclient-tls-ip", host),
                    "Connecting to %s, an address standing for %s, failed with "
                    "ssl_mode=%s (%s). mysqlclient cannot keep the host name "
                    "when it is routed to an address: the client library checks "
                    "the server certificate against the address, which fails "
                    "unless the certificate lists it. bluegreen never turns "
                    "verification off; PyMySQL and psycopg keep the name, or "
                    "the certificates may carry the addresses.",
                    ip,
                    host,
                    mode,
                    exc,
                    every=600.0,
                )
            raise

    def is_closed(self, conn: Any) -> bool:
        """``not conn.open`` (mysqlclient keeps it true after a lost
        connection until ``close()``)."""
        return not conn.open

    def in_transaction(self, conn: Any) -> bool:
        """SERVER_STATUS_IN_TRANS as the client library last received it
        (MariaDB Connector/C); with another library, outside autocommit,
        True. A closed connection has none; one busy in another thread
        counts as in a transaction."""
        if not conn.open:
            return False
        try:
            status = _server_status(conn)
            if status is not None:
                return bool(status & _IN_TRANS)
            return not conn.get_autocommit()
        except MySQLdb.ProgrammingError:  # in use from another thread
            return True
        except MySQLdb.Error:
            return not self.is_closed(conn)

    def get_autocommit(self, conn: Any) -> bool:
        """``conn.get_autocommit()`` (the status flag: no round trip)."""
        return bool(conn.get_autocommit())

    def set_autocommit(self, conn: Any, value: bool) -> None:
        """``conn.autocommit(value)`` (a round trip when the value changes)."""
        conn.autocommit(bool(value))

    def is_connection_lost(self, exc: BaseException, conn: Any = None) -> bool:
        """Client errors 2002/2003/2006/2013/2055, server shutdown/kill, or
        an OperationalError/InterfaceError raised on a closed connection."""
        if not isinstance(exc, (MySQLdb.OperationalError, MySQLdb.InterfaceError)):
            return False
        if conn is not None:
            try:
                if self.is_closed(conn):
                    return True
            except Exception:
                return True
        code = exc.args[0] if exc.args else None
        return code in LOST_ERRNOS

    def is_streaming_cursor(self, cursor: Any) -> bool:
        """``SSCursor``, ``SSDictCursor`` and any cursor built on
        mysql_use_result() read rows from the socket while fetching."""
        return isinstance(cursor, MySQLdb.cursors.CursorUseResultMixIn)

    def operational_error(self) -> type[Exception]:
        """``MySQLdb.OperationalError``."""
        return MySQLdb.OperationalError  # type: ignore[no-any-return]

    def plain_cursor(self, conn: Any) -> Any:
        """A plain buffered ``MySQLdb.cursors.Cursor`` (tuple rows),
        whatever ``cursorclass`` the connection was given."""
        return conn.cursor(MySQLdb.cursors.Cursor)

    # -- transparent reconnect -------------------------------------------------

    def peer_closed(self, conn: Any) -> bool:
        """MySQL sends nothing on an idle connection unless it is dropping
        it: a readable socket (``conn.fileno()``) means the server closed
        (or killed) it."""
        try:
            fd = conn.fileno()
        except MySQLdb.ProgrammingError:  # in use from another thread
            return False
        except MySQLdb.Error:  # closed
            return True
        if fd < 0:
            return True
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(fd, select.POLLIN | select.POLLPRI)
                return bool(poller.poll(0))
            readable, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def session_state(self, conn: Any) -> dict[str, Any]:
        """autocommit, the current database and the character set and
        collation, as the client library has them (no round trip)."""
        state: dict[str, Any] = {}
        if not conn.open:
            return state
        with contextlib.suppress(MySQLdb.Error):
            state["autocommit"] = bool(conn.get_autocommit())
        db = _current_db(conn)
        if db:
            state["db"] = db
        with contextlib.suppress(MySQLdb.Error):
            info = conn.get_character_set_info()
            state["charset"] = (conn.character_set_name(), info.get("collation"))
        return state

    def restore_session(self, conn: Any, state: dict[str, Any]) -> None:
        db = state.get("db")
        if db and db != _current_db(conn):
            conn.select_db(db)
        charset = state.get("charset")
        if charset is not None:
            now = (
                conn.character_set_name(),
                conn.get_character_set_info().get("collation"),
            )
            if now != charset:
                conn.set_character_set(charset[0], charset[1])
        if "autocommit" in state and bool(conn.get_autocommit()) != state["autocommit"]:
            conn.autocommit(state["autocommit"])
