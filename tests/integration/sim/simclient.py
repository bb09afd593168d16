"""What an application client observes of a simulated deployment.

:class:`ClientView` (of a deployment) gives metadata rows read as the
app user over TCP (the way a monitor would read them), refused connections,
writes that fail on a read-only host, DNS answers from
``socket.getaddrinfo``.  Everything goes through the real drivers.
"""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import pymysql

from bluegreen.sim.deployment import Deployment
from bluegreen.sim.servers import Instance

TABLE = "bgsim_t"
CLIENT_TAG = "bgsim-tests-1.0"


class ClientView:
    """Observations of one deployment as its app user sees it."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.pg = dep.engine == "postgres"
        self.errors: tuple[type[BaseException], ...] = (
            (psycopg.Error,) if self.pg else (pymysql.MySQLError,)
        )

    # -- connections ----------------------------------------------------------
    def connect(self, inst: Instance | str, timeout: int = 2) -> Any:
        """An autocommit app connection to an instance (by IP) or a host name."""
        host = inst if isinstance(inst, str) else inst.host
        port = self.dep.blue.writer.port
        user, password = self.dep.app_user, self.dep.app_password
        if self.pg:
            return psycopg.connect(
                host=host,
                port=port,
                user=user,
                password=password,
                dbname=self.dep.dbname,
                connect_timeout=max(timeout, 2),
                autocommit=True,
            )
        return pymysql.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            database=self.dep.dbname,
            connect_timeout=timeout,
            read_timeout=timeout,
            autocommit=True,
        )

    def query(self, inst: Instance | str, sql: str) -> list[tuple[Any, ...]]:
        conn = self.connect(inst)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            conn.close()

    def refused(self, inst: Instance, timeout: int = 2) -> bool:
        """True when a new app connection fails (refused, locked or timed out)."""
        try:
            self.connect(inst, timeout).close()
        except self.errors:
            return True
        return False

    # -- metadata -------------------------------------------------------------
    @property
    def metadata_sql(self) -> str:
        if not self.pg:
            return "SELECT role, status, endpoint FROM mysql.rds_topology"
        fn = (
            "pg_catalog.get_blue_green_fast_switchover_metadata"
            if self.dep.aurora
            else "rds_tools.show_topology"
        )
        return f"SELECT role, status, endpoint FROM {fn}('{CLIENT_TAG}')"

    def rows(self, inst: Instance) -> list[tuple[str, str | None, str]]:
        """The status rows as the app user reads them (sorted)."""
        return sorted(self.query(inst, self.metadata_sql))

    def admin_rows(self, inst: Instance) -> list[tuple[str, str | None, str]]:
        """The same rows read as admin (through the unix socket)."""
        return sorted(inst.execute_admin(self.metadata_sql))

    def statuses(self, inst: Instance, *, admin: bool = False) -> set[str | None]:
        rows = self.admin_rows(inst) if admin else self.rows(inst)
        return {r[1] for r in rows}

    def metadata_error(self, inst: Instance) -> BaseException | None:
        """The error reading the metadata raises for the app user, if any."""
        try:
            self.rows(inst)
        except self.errors as exc:
            return exc
        return None

    # -- data -----------------------------------------------------------------
    def create_table(self) -> None:
        self.dep.execute_ddl(f"CREATE TABLE {TABLE} (id INT PRIMARY KEY)")

    def write(self, inst: Instance | str, value: int) -> BaseException | None:
        """Insert ``value`` as the app user; the error, or None on success."""
        try:
            self.query(inst, f"INSERT INTO {TABLE} (id) VALUES ({int(value)})")
        except self.errors as exc:
            return exc
        return None

    def ids(self, inst: Instance) -> set[int]:
        return {r[0] for r in inst.execute_admin(f"SELECT id FROM {TABLE}")}


def read_only_error(exc: BaseException | None) -> bool:
    """Whether a write failed because the server is read-only."""
    text = str(exc).lower()
    return exc is not None and ("read-only" in text or "read only" in text)


def resolve(name: str) -> str | None:
    """The address ``socket.getaddrinfo`` gives for ``name`` (None: unknown)."""
    try:
        info = socket.getaddrinfo(name, 5432, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return None
    return str(info[0][4][0])
