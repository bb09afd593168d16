"""PostgreSQL flavour of a simulated instance."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from ._base import (
    Instance,
    RunAs,
    SimError,
    ensure_template,
    run_checked,
    server_environment,
    template_key,
    write_owned,
)

_SPEED_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "max_worker_processes": "16",
    "max_logical_replication_workers": "8",
    "wal_keep_size": "256MB",
    "wal_retrieve_retry_interval": "100ms",
    # Asynchronous commits reach the replicas once written out: every 10 ms
    # instead of every 200 ms keeps replication lag at a few milliseconds.
    "wal_writer_delay": "10ms",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "hot_standby": "on",
    "checkpoint_timeout": "1h",
    "max_wal_size": "1GB",
    "logging_collector": "off",
    "huge_pages": "off",
}


@cache
def pg_bindir() -> Path:
    """The directory of the PostgreSQL server binaries (newest version wins)."""
    override = os.environ.get("BLUEGREEN_PG_BINDIR")
    candidates = [override] if override else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(re.sub(r"\D", "", p.split("/")[-2]) or 0),
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    for cand in candidates:
        if (
            cand
            and (Path(cand) / "postgres").is_file()
            and (Path(cand) / "initdb").is_file()
        ):
            return Path(cand)
    raise SimError(
        "PostgreSQL server binaries (postgres, initdb) not found; install the Debian "
        "package 'postgresql' or set BLUEGREEN_PG_BINDIR"
    )


@cache
def pg_version() -> str:
    out = subprocess.run(
        [str(pg_bindir() / "postgres"), "--version"], capture_output=True, text=True
    ).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        raise SimError(f"cannot parse the PostgreSQL version from {out!r}")
    return match.group(0)


def _quote_ident(name: str) -> str:
    """A role name quoted for SQL and for ``pg_hba.conf`` (same rules)."""
    return '"' + name.replace('"', '""') + '"'


def _wait_pid_ready(data_dir: Path, states: tuple[str, ...]) -> bool:
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() in states


def _build_template(
    work: Path,
    account: RunAs | None,
    admin: tuple[str, str],
    app: tuple[str, str],
    db: str,
) -> Path:
    bindir = pg_bindir()
    data, run = work / "data", work / "run"
    run.mkdir()
    if account is not None:
        os.chown(run, account.uid, account.gid)
    pwfile = work / "pw"
    write_owned(pwfile, admin[1] + "\n", account)
    run_checked(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            admin[0],
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ],
        account=account,
        what="initdb",
    )
    pwfile.unlink()
    kwargs: dict[str, Any] = {"env": server_environment()}
    if account is not None:
        kwargs.update(user=account.uid, group=account.gid, extra_groups=[])
    log = work / "template.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-c",
                "listen_addresses=",
                "-c",
                f"unix_socket_directories={run}",
                "-c",
                "fsync=off",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
    try:
        deadline = time.monotonic() + 60
        while not _wait_pid_ready(data, ("ready",)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SimError(
                    f"template PostgreSQL server failed:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.02)
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=str(run), port=5432, user=admin[0], dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(app[0]), sql.Literal(app[1])
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(db), sql.Identifier(app[0])
                )
            )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    if proc.returncode != 0:
        raise SimError(
            f"template PostgreSQL server did not shut down cleanly:\n{log.read_text()}"
        )
    return data


class PostgresInstance(Instance):
    """A PostgreSQL server on ``host:5432``.

    TCP logins use scram-sha-256; the unix socket in ``socket_dir`` trusts the
    admin user.  Settings are tuned for speed, never for durability.
    """

    engine: ClassVar[str] = "postgres"
    default_port: ClassVar[int] = 5432
    database_key: ClassVar[str] = "dbname"  # psycopg
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT  # fast shutdown
    _preferred_account: ClassVar[str | None] = "postgres"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusing = False
        self._primary: Instance | None = None

    def _template(self) -> Path:
        key = template_key("postgres", pg_version(), self._template_options())
        return ensure_template(
            key,
            lambda work: _build_template(
                work,
                self.account,
                (self.admin_user, self.admin_password),
                (self.app_user, self.app_password),
                self.dbname,
            ),
            self.account,
        )

    def make_standby_of(self, primary: Instance) -> None:
        """Before the first start: make this a hot standby streaming from ``primary``.

        Every instance is a copy of the same cleanly shut down template, so a
        standby can start from its own copy and stream the primary's WAL from
        the template's checkpoint on: no base backup needed.
        """
        if self.data_dir.exists():
            raise SimError(
                f"{self.name} was already prepared; standby set-up comes first"
            )
        self._primary = primary

    @property
    def primary(self) -> Instance | None:
        return self._primary

    def _hba(self) -> str:
        admin = self.admin_user
        lines = [f"local all {admin} trust", "local replication all trust"]
        lines += [
            "host replication all 127.0.0.0/8 scram-sha-256",
            f"host all {admin} 127.0.0.0/8 scram-sha-256",
        ]
        if self._refusing:
            lines += ["local all all reject", "host all all 0.0.0.0/0 reject"]
        lines.append("local all all trust")
        if self.token_login is not None:  # after the rejects: refused alike
            user = _quote_ident(self.token_login.user)
            service = self.token_login.service
            lines.append(f"host all {user} 127.0.0.0/8 pam pamservice={service}")
        lines.append("host all all 127.0.0.0/8 scram-sha-256")
        return "\n".join(lines) + "\n"

    def _configure(self) -> None:
        write_owned(self.data_dir / "pg_hba.conf", self._hba(), self.account)
        if self._primary is not None:
            p = self._primary
            conninfo = (
                f"host={p.host} port={p.port} user={p.admin_user} "
                f"password={p.admin_password} application_name={self.name}"
            )
            auto = self.data_dir / "postgresql.auto.conf"
            text = auto.read_text() + f"primary_conninfo = '{conninfo}'\n"
            write_owned(auto, text, self.account)
            write_owned(self.data_dir / "standby.signal", "", self.account)

    def _argv(self) -> list[str]:
        argv = [str(pg_bindir() / "postgres"), "-D", str(self.data_dir)]
        settings = dict(_SPEED_SETTINGS)
        settings.update(
            listen_addresses=self.host,
            port=str(self.port),
            unix_socket_directories=str(self.socket_dir),
            cluster_name=self.name,
        )
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def _ready(self) -> bool:
        return _wait_pid_ready(self.data_dir, ("ready", "standby"))

    # -- connections ---------------------------------------------------------
    def admin_connect(self, *, dbname: str | None = None) -> Any:
        """psycopg connection over the unix socket, autocommit, writable."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.admin_user,
            dbname=dbname or self.dbname,
            autocommit=True,
            connect_timeout=10,
            options="-c default_transaction_read_only=off",
        )

    def _session_alive(self, conn: Any) -> bool:
        return not (conn.closed or conn.broken)

    def is_standby(self) -> bool:
        return self._primary is not None

    def client_sessions(self, name: str) -> int:
        rows = self.execute_admin(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [name],
        )
        return int(rows[0][0])

    def drop_connections(self) -> int:
        """Terminate the sessions all at once, and return once they are gone.

        ``pg_terminate_backend`` only signals a backend, which then sends
        its FATAL and exits when it is next scheduled (milliseconds later
        on a busy machine). Waiting for the exits makes the end of the drop
        exact: a statement sent after this returns cannot have been in
        flight at it (the benchmarks split failures on that instant).
        """
        rows = self.execute_admin(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND usename IS DISTINCT FROM %s",
            [self.admin_user],
        )
        pids = [int(pid) for pid, signalled in rows if signalled]
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            left = self.execute_admin(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            )
            if not int(left[0][0]):
                break
            time.sleep(0.001)
        return len(pids)

    def refuse_connections(self, refuse: bool = True) -> None:
        """Reject every non-admin login in pg_hba.conf and reload.

        An application sees ``FATAL: pg_hba.conf rejects connection for host
        ...`` at once (psycopg raises ``OperationalError``).  Open sessions are
        untouched: combine with :meth:`drop_connections`.
        """
        with self._lock:
            self._refusing = refuse
            write_owned(self.data_dir / "pg_hba.conf", self._hba(), self.account)
            self.execute_admin("SELECT pg_reload_conf()")
            self._wait_hba_applied(refuse)

    def _wait_hba_applied(self, refuse: bool) -> None:
        # pg_reload_conf() only signals the postmaster; wait until a login
        # attempt reflects the new rules so callers can rely on them.
        import psycopg

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                psycopg.connect(**self.connect_kwargs(), connect_timeout=2).close()
                rejected = False
            except psycopg.OperationalError as exc:
                rejected = "pg_hba.conf rejects" in str(exc)
            if rejected == refuse:
                return
            time.sleep(0.02)
        raise SimError(f"{self.name}: pg_hba.conf change was not applied within 5 s")

    def create_token_user(self, timeout: float = 10.0) -> None:
        """The token role: ``LOGIN``, a member of the app role (its privileges).

        Roles are cluster-wide catalog objects: a physical standby gets the
        role from its primary (this waits until it has replayed it), while
        a logical replica (the green writer) needs its own, created here.
        Roles are not part of logical replication, so nothing conflicts.
        """
        if self.token_login is None:
            raise SimError(f"{self.name} has no token logins")
        user, app = self.token_login.user, self.app_user
        member = (
            "SELECT EXISTS (SELECT 1 FROM pg_auth_members m "
            "JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid "
            "WHERE r.rolname = %s AND g.rolname = %s AND r.rolcanlogin)"
        )
        if self.is_standby():
            deadline = time.monotonic() + timeout
            while not self.execute_admin(member, [user, app])[0][0]:
                if time.monotonic() > deadline:
                    raise SimError(
                        f"{self.name}: the role {user!r} did not replicate from "
                        f"its primary within {timeout:.0f} s"
                    )
                time.sleep(0.02)
            return
        if not self.execute_admin("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]):
            self.execute_admin(f"CREATE ROLE {_quote_ident(user)} LOGIN")
        self.execute_admin(f"GRANT {_quote_ident(app)} TO {_quote_ident(user)}")

    def set_read_only(self, read_only: bool = True) -> None:
        """``default_transaction_read_only`` for every session (ALTER SYSTEM + reload).

        Existing sessions pick it up at their next transaction; the admin
        connections of the simulator override it per session, and logical
        replication apply workers are not affected.  A client may still run
        ``SET default_transaction_read_only = off``: this mirrors RDS only as
        far as well-behaved applications go.
        """
        if self.is_standby():
            return  # a hot standby is read-only anyway
        value = "on" if read_only else "off"
        self.execute_admin(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
        self.execute_admin("SELECT pg_reload_conf()")
