"""MariaDB flavour of a simulated instance (it plays MySQL)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ._base import (
    Instance,
    SimError,
    ensure_template,
    run_checked,
    server_environment,
    template_key,
)

if TYPE_CHECKING:
    from .tokenlogins import TokenLoginSetup

_SERVER_NAMES = ("mariadbd", "mysqld")
_SPEED_OPTIONS = [
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-use-native-aio=0",
    "--sync-binlog=0",
    "--performance-schema=OFF",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
]
#: Accounts that are never locked or disconnected by fault helpers.
_SYSTEM_USERS = ("root", "mariadb.sys", "mysql", "system user", "event_scheduler")


@cache
def mariadb_binaries() -> tuple[Path, Path]:
    """(server, install-db) binaries."""
    server: str | None = os.environ.get("BLUEGREEN_MARIADBD")
    if not server:
        for name in _SERVER_NAMES:
            server = shutil.which(name) or shutil.which(
                name, path="/usr/sbin:/usr/libexec"
            )
            if server:
                break
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not server or not install:
        raise SimError(
            "MariaDB server binaries (mariadbd, mariadb-install-db) not found; install "
            "the Debian package 'mariadb-server' or set BLUEGREEN_MARIADBD"
        )
    return Path(server), Path(install)


@cache
def mariadb_version() -> str:
    out = subprocess.run(
        [str(mariadb_binaries()[0]), "--version"], capture_output=True, text=True
    ).stdout
    match = re.search(r"Ver (\d+\.\d+\.\d+)", out)
    if not match:
        raise SimError(f"cannot parse the MariaDB version from {out!r}")
    return match.group(1)


#: PAM inside the server process (``auth_pam`` v2 needs a setuid helper).
_PAM_PLUGIN = "auth_pam_v1"


@cache
def mariadb_plugin_dir() -> Path | None:
    """The server's compiled-in plugin directory (``None``: unknown)."""
    out = subprocess.run(
        [str(mariadb_binaries()[0]), "--no-defaults", "--verbose", "--help"],
        capture_output=True,
        text=True,
        env=server_environment(),
    ).stdout
    match = re.search(r"^plugin-dir\s+(\S+)", out, re.MULTILINE)
    return Path(match.group(1)) if match else None


def _user_option() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def _socket_connect(path: Path, user: str, password: str, db: str | None) -> Any:
    """PyMySQL connection over the unix socket ``path``, autocommit.

    The socket is opened here and handed to PyMySQL (``defer_connect=True``
    then ``connect(sock)``): PyMySQL's own unix-socket path leaks its socket
    when ``connect()`` fails (it closes only a socket that got as far as the
    handshake), and polling a server that is still starting fails many times.
    """
    import pymysql
    from pymysql.constants import CR

    conn = pymysql.connect(
        unix_socket=str(path),
        user=user,
        password=password,
        database=db,
        autocommit=True,
        connect_timeout=10,
        defer_connect=True,
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(conn.connect_timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise pymysql.err.OperationalError(
                CR.CR_CONNECTION_ERROR,
                f"Can't connect to local MariaDB server through socket {path} ({exc})",
            ) from exc
        conn.host_info = "Localhost via UNIX socket"
        conn.connect(sock)
    except BaseException:
        sock.close()
        raise
    return conn


def _build_template(
    work: Path, admin: tuple[str, str], app: tuple[str, str], db: str
) -> Path:
    server, install = mariadb_binaries()
    data, run = work / "data", work / "run"
    run.mkdir()
    run_checked(
        [
            str(install),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *_user_option(),
            "--innodb-log-file-size=8M",
        ],
        account=None,
        what="mariadb-install-db",
    )
    socket = run / "mysqld.sock"
    log = work / "template.err"
    proc = subprocess.Popen(
        [
            str(server),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={socket}",
            "--skip-networking",
            f"--pid-file={run / 'mysqld.pid'}",
            f"--log-error={log}",
            *_user_option(),
            *_SPEED_OPTIONS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=server_environment(),
    )
    try:
        conn = None
        deadline = time.monotonic() + 60
        while conn is None:
            try:
                conn = _socket_connect(socket, "root", "", None)
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SimError(
                        f"template MariaDB server failed:\n{log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)
        cur = conn.cursor()
        statements: list[tuple[str, Sequence[Any]]] = [
            ("SET SESSION sql_log_bin = 0", ()),
            ("CREATE USER %s@'%%' IDENTIFIED BY %s", admin),
            ("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (admin[0],)),
            ("CREATE USER %s@'%%' IDENTIFIED BY %s", app),
            (f"CREATE DATABASE `{db}`", ()),
            (f"GRANT ALL PRIVILEGES ON `{db}`.* TO %s@'%%'", (app[0],)),
            ("DELETE FROM mysql.global_priv WHERE User = ''", ()),
            ("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (admin[1],)),
            ("FLUSH PRIVILEGES", ()),
        ]
        for sql, params in statements:
            cur.execute(sql, params or None)
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return data


class MariaDBInstance(Instance):
    """A MariaDB server on ``host:3306`` with binary logging and GTIDs on."""

    engine: ClassVar[str] = "mariadb"
    default_port: ClassVar[int] = 3306
    database_key: ClassVar[str] = "database"  # PyMySQL / mysql-connector
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: mariadbd runs as root with --user=root when we are root.
    _preferred_account: ClassVar[str | None] = None

    def __init__(
        self, *args: Any, performance_schema: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.socket_path = self.socket_dir / "mysqld.sock"
        #: Run with the performance schema, whose ``session_connect_attrs``
        #: show each session's connection attributes (``program_name``: how
        #: tests tell the wrapper's monitoring sessions apart). Off by
        #: default: it costs memory and start-up time.
        self.performance_schema = performance_schema

    def _template(self) -> Path:
        key = template_key("mariadb", mariadb_version(), self._template_options())
        return ensure_template(
            key,
            lambda work: _build_template(
                work,
                (self.admin_user, self.admin_password),
                (self.app_user, self.app_password),
                self.dbname,
            ),
            None,
        )

    def _configure(self) -> None:
        (self.socket_dir / "tmp").mkdir(exist_ok=True)

    def _token_options(self) -> list[str]:
        if self.token_login is None:
            return []
        return [
            f"--plugin-load-add={_PAM_PLUGIN}",
            # Ask for the password with mysql_clear_password (as RDS MySQL's
            # IAM authentication does), not with the dialog plugin.
            "--pam-use-cleartext-plugin=ON",
        ]

    def _argv(self) -> list[str]:
        return [
            str(mariadb_binaries()[0]),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.socket_dir / 'mysqld.pid'}",
            f"--tmpdir={self.socket_dir / 'tmp'}",
            f"--log-error={self.log_file}",
            f"--server-id={self.server_id}",
            "--log-bin=mysql-bin",
            "--relay-log=relay-bin",
            "--log-slave-updates",
            "--binlog-format=ROW",
            "--skip-slave-start",
            *_user_option(),
            *_SPEED_OPTIONS,
            *self._token_options(),
            *(["--performance-schema=ON"] if self.performance_schema else []),
        ]

    def _ready(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            self.admin_connect(dbname="").close()
        except Exception:
            return False
        return True

    # -- connections ---------------------------------------------------------
    def admin_connect(self, *, dbname: str | None = None) -> Any:
        """PyMySQL connection over the unix socket, autocommit."""
        return _socket_connect(
            self.socket_path,
            self.admin_user,
            self.admin_password,
            (dbname if dbname is not None else self.dbname) or None,
        )

    def _session_alive(self, conn: Any) -> bool:
        return bool(conn.open)

    def execute_many_admin(
        self,
        statements: Sequence[tuple[str, Sequence[Any] | None]],
        *,
        atomic: bool = False,
    ) -> None:
        """Run statements in the admin session, without writing them to the binlog.

        ``atomic``: in one transaction (for DML on InnoDB tables, so that a
        reader never sees a half-replaced table).
        """

        def work(conn: Any) -> None:
            cur = conn.cursor()
            try:
                cur.execute("SET SESSION sql_log_bin = 0")
                if atomic:
                    cur.execute("START TRANSACTION")
                for sql, params in statements:
                    cur.execute(sql, params)
                if atomic:
                    cur.execute("COMMIT")
                cur.execute("SET SESSION sql_log_bin = 1")
            finally:
                cur.close()

        self.run_admin(work)

    def _client_users(self) -> list[tuple[str, str]]:
        rows = self.execute_admin(
            "SELECT User, Host FROM mysql.user WHERE is_role = 'N' AND User <> '' "
            "AND User NOT IN %s",
            [(self.admin_user, *_SYSTEM_USERS)],
        )
        return [(str(u), str(h)) for u, h in rows]

    def client_sessions(self, name: str) -> int:
        if not self.performance_schema:
            raise SimError(
                f"{self.name}: counting sessions by program_name needs the "
                "instance created with performance_schema=True"
            )
        rows = self.execute_admin(
            "SELECT count(DISTINCT a.PROCESSLIST_ID) FROM "
            "performance_schema.session_connect_attrs a JOIN "
            "information_schema.PROCESSLIST p ON p.ID = a.PROCESSLIST_ID "
            "WHERE a.ATTR_NAME = 'program_name' AND a.ATTR_VALUE = %s",
            [name],
        )
        return int(rows[0][0])

    def drop_connections(self) -> int:
        rows = self.execute_admin(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND USER NOT IN %s AND COMMAND NOT IN "
            "('Binlog Dump', 'Binlog Dump GTID', 'Slave_IO', 'Slave_SQL', 'Daemon')",
            [(self.admin_user, *_SYSTEM_USERS)],
        )

        def work(conn: Any) -> int:
            killed = 0
            cur = conn.cursor()
            try:
                for (pid,) in rows:
                    try:
                        cur.execute("KILL CONNECTION %s", (int(pid),))
                        killed += 1
                    except Exception:  # already gone
                        pass
            finally:
                cur.close()
            return killed

        return self.run_admin(work)

    def refuse_connections(self, refuse: bool = True) -> None:
        """``ALTER USER ... ACCOUNT LOCK`` for every non-admin account (not binlogged).

        An application's new connection fails at once with MySQL error 4151
        ("Access denied, this account is locked"); open sessions continue.
        """
        action = "LOCK" if refuse else "UNLOCK"
        self.execute_many_admin(
            [
                (f"ALTER USER %s@%s ACCOUNT {action}", (u, h))
                for u, h in self._client_users()
            ]
        )

    def set_read_only(self, read_only: bool = True) -> None:
        """``SET GLOBAL read_only``: non-admin writes fail, replication continues."""
        self.execute_admin(f"SET GLOBAL read_only = {1 if read_only else 0}")

    def enable_token_logins(self, setup: TokenLoginSetup) -> None:
        plugin_dir = mariadb_plugin_dir()
        if plugin_dir is not None and not (plugin_dir / f"{_PAM_PLUGIN}.so").exists():
            raise SimError(
                f"token logins need MariaDB's PAM plugin {plugin_dir}/{_PAM_PLUGIN}.so"
                " (Debian package mariadb-server)"
            )
        super().enable_token_logins(setup)

    def create_token_user(self, timeout: float = 10.0) -> None:
        """The token user, ``IDENTIFIED VIA pam``, with the app user's grants on
        ``dbname``; on this instance only (not binlogged: each instance has
        its own PAM service).  Metadata grants: see
        :meth:`~bluegreen.sim.deployment.Deployment.apply_app_grants`."""
        if self.token_login is None:
            raise SimError(f"{self.name} has no token logins")
        user = self.token_login.user
        try:
            self.execute_many_admin(
                [
                    (
                        "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED VIA pam USING %s",
                        (user, self.token_login.service),
                    ),
                    (
                        f"GRANT ALL PRIVILEGES ON `{self.dbname}`.* TO %s@'%%'",
                        (user,),
                    ),
                ]
            )
        except Exception as exc:
            raise SimError(
                f"{self.name}: cannot create the token user {user!r} "
                f"(is the {_PAM_PLUGIN} plugin loaded? see {self.log_file}): {exc}"
            ) from exc

    def replicate_from(self, source: Instance) -> None:
        """Start GTID replication (``slave_pos``) from ``source``."""
        self.execute_many_admin(
            [
                ("STOP SLAVE", None),
                (
                    "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, "
                    "MASTER_USER = %s, MASTER_PASSWORD = %s, "
                    "MASTER_USE_GTID = slave_pos, "
                    "MASTER_CONNECT_RETRY = 1",
                    (
                        source.host,
                        source.port,
                        source.admin_user,
                        source.admin_password,
                    ),
                ),
                ("START SLAVE", None),
            ]
        )

    def stop_replication(self) -> None:
        self.execute_many_admin([("STOP SLAVE", None), ("RESET SLAVE ALL", None)])
