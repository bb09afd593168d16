"""A small application workload that records what each operation experienced.

``Workload`` runs client threads that alternate writes and reads against one
host name, through any connect function (the raw driver, or
``bluegreen.connect`` bound to it).  Each operation becomes an
:class:`~bluegreen.sim.accounting.OpRecord` naming the instance that served it.

Three modes: ``"per-op"`` opens a connection for every operation (the case
that switchover handling is about), ``"long-lived"`` keeps one connection per
client and reconnects after an error, and ``"pool"`` checks a connection out
of a SQLAlchemy ``QueuePool`` (one per client, no pre-ping) for every
operation, invalidating it after an error as SQLAlchemy's engine does for a
lost connection.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bluegreen.sim.accounting import OpRecord

__all__ = [
    "MODES",
    "TABLE",
    "ClientKind",
    "Workload",
    "bg_settings",
    "connect_function",
    "create_table",
    "identity_map",
    "prepare_table",
    "table_ddl",
    "written_ids",
]

logger = logging.getLogger(__name__)

TABLE = "bgsim_workload"
#: The workload's connection styles (see the module docstring).
MODES = ("per-op", "long-lived", "pool")

Connector = Callable[..., Any]


@dataclass(frozen=True)
class ClientKind:
    """``count`` clients labelled ``group`` that connect with ``connect``."""

    group: str
    connect: Connector
    count: int


def connect_function(
    engine: str,
    *,
    via_bluegreen: bool,
    driver: str = "pymysql",
    settings: Mapping[str, Any] | None = None,
) -> Connector:
    """The connect function a client kind uses (imports the driver lazily).

    ``engine`` is ``"postgres"`` (psycopg) or ``"mariadb"`` (``driver``:
    ``"pymysql"``, ``"mysql-connector"`` or ``"mysqlclient"``). ``settings``
    are wrapper settings for the bluegreen client kind.
    """
    target: Connector
    if engine == "postgres":
        import psycopg

        target = psycopg.connect
    elif driver == "pymysql":
        import pymysql

        target = pymysql.connect
    elif driver == "mysql-connector":
        import mysql.connector

        target = mysql.connector.connect
    elif driver == "mysqlclient":
        import MySQLdb

        target = MySQLdb.connect
    else:
        raise ValueError(f"unknown MySQL driver {driver!r}")
    if not via_bluegreen:
        return target
    import bluegreen

    return functools.partial(bluegreen.connect, target, **(settings or {}))


def _timeouts(engine: str, connect: Connector) -> dict[str, Any]:
    inner = connect.args[0] if isinstance(connect, functools.partial) else connect
    module = getattr(inner, "__module__", "") or ""
    if engine == "postgres":
        return {"connect_timeout": 3, "autocommit": True}
    if module.startswith("mysql."):
        return {"connection_timeout": 3, "autocommit": True}
    # PyMySQL and mysqlclient (MySQLdb: whole seconds only).
    return {
        "connect_timeout": 3,
        "read_timeout": 5,
        "write_timeout": 5,
        "autocommit": True,
    }


def table_ddl(engine: str) -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` of the workload table for ``engine``."""
    if engine == "postgres":
        return (
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, client text, "
            "at timestamptz DEFAULT now())"
        )
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, "
        "client VARCHAR(64), at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))"
    )


def create_table(writer: Any) -> None:
    """Create the workload table on ``writer`` as admin (idempotent)."""
    writer.execute_admin(table_ddl(writer.engine))
    if writer.engine == "postgres":
        writer.execute_admin(f"GRANT ALL ON {TABLE} TO {writer.app_user}")


def prepare_table(deployment: Any, timeout: float = 30.0) -> None:
    """Create the workload table on both writers of ``deployment`` (the app
    user may use it) and wait until green has caught up."""
    deployment.execute_ddl(table_ddl(deployment.engine))
    if deployment.engine == "postgres":
        deployment.execute_ddl(f"GRANT ALL ON {TABLE} TO {deployment.app_user}")
    deployment.wait_for_replication(timeout=timeout)


def bg_settings(speed: float) -> dict[str, int]:
    """``bg`` polling intervals for a scenario played at ``speed``.

    A simulated run starts seconds before the deployment appears in the
    metadata, where an application would have minutes: the status is checked
    every second (divided by the speed) instead of every minute until then.
    The faster intervals are the defaults divided by the speed.
    """
    return {
        "bg_interval_baseline_ms": max(20, round(1000 / speed)),
        "bg_interval_increased_ms": max(20, round(1000 / speed)),
        "bg_interval_high_ms": max(10, round(100 / speed)),
    }


def identity_map(envs: Mapping[str, Sequence[Any]]) -> dict[str, tuple[str, str]]:
    """Server identity -> (instance name, environment) for ``{"blue": [...], ...}``.

    PostgreSQL instances are identified by their IP (``inet_server_addr()``),
    MariaDB ones by ``@@server_id``.
    """
    out: dict[str, tuple[str, str]] = {}
    for env, instances in envs.items():
        for inst in instances:
            key = inst.host if inst.engine == "postgres" else str(inst.server_id)
            out[key] = (inst.name, env)
    return out


def written_ids(primary: Any) -> set[int]:
    """Every id in the workload table of ``primary`` (read as admin)."""
    return {int(r[0]) for r in primary.execute_admin(f"SELECT id FROM {TABLE}")}


class Workload:
    """Client threads doing alternate writes and reads until :meth:`stop`."""

    def __init__(
        self,
        engine: str,
        kinds: Sequence[ClientKind],
        connect_kwargs: Mapping[str, Any],
        identities: Mapping[str, tuple[str, str]],
        *,
        mode: str = "per-op",
        pause: float = 0.05,
        first_id: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.engine = engine
        self.kinds = list(kinds)
        self.connect_kwargs = dict(connect_kwargs)
        self.identities = dict(identities)
        self.mode = mode
        self.pause = pause
        self.records: list[OpRecord] = []
        self.window: tuple[float, float] | None = None
        # Write ids: unique across runs (the time), and across workloads that
        # write to one table at once when the caller gives each its own base.
        if first_id is None:
            first_id = 1 + int(time.time() * 1000) % 10**9 * 1000
        self._ids = itertools.count(first_id)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def start(self) -> Workload:
        """Start every client thread."""
        self._started = time.monotonic()
        for kind in self.kinds:
            for n in range(kind.count):
                name = f"{kind.group}-{n}"
                t = threading.Thread(
                    target=self._client,
                    args=(kind, name),
                    name=f"bluegreen-workload-{name}",
                    daemon=True,
                )
                self._threads.append(t)
                t.start()
        return self

    def stop(self, timeout: float = 15.0) -> list[OpRecord]:
        """Stop the clients (after their current operation); the records."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.window = (self._started, time.monotonic())
        with self._lock:
            return list(self.records)

    # -- client thread --------------------------------------------------------
    def _client(self, kind: ClientKind, name: str) -> None:
        extra = _timeouts(self.engine, kind.connect)
        if self.mode == "pool":
            self._pooled_client(kind, name, extra)
            return
        conn: Any = None
        for n in itertools.count():
            if self._stop.is_set():
                break
            op = "write" if n % 2 == 0 else "read"
            wid = next(self._ids) if op == "write" else None
            start = time.monotonic()
            try:
                if conn is None:
                    conn = kind.connect(**self.connect_kwargs, **extra)
                ident = self._operate(conn, op, wid, name)
                rec = self._record(kind, name, op, start, None, ident, wid)
            except Exception as exc:
                rec = self._record(kind, name, op, start, exc, None, wid)
                _close(conn)
                conn = None
            if self.mode == "per-op":
                _close(conn)
                conn = None
            with self._lock:
                self.records.append(rec)
            self._stop.wait(self.pause)
        _close(conn)

    def _pooled_client(
        self, kind: ClientKind, name: str, extra: dict[str, Any]
    ) -> None:
        from sqlalchemy.pool import QueuePool

        kwargs = {**self.connect_kwargs, **extra}
        pool = QueuePool(
            lambda: kind.connect(**kwargs), pool_size=1, max_overflow=0, pre_ping=False
        )
        try:
            # Checked out once before the operations start: the pool holds it.
            pool.connect().close()
        except Exception:
            logger.debug("%s: the first connection failed", name, exc_info=True)
        try:
            for n in itertools.count():
                if self._stop.is_set():
                    break
                op = "write" if n % 2 == 0 else "read"
                wid = next(self._ids) if op == "write" else None
                start = time.monotonic()
                conn: Any = None
                try:
                    conn = pool.connect()
                    ident = self._operate(conn, op, wid, name)
                    rec = self._record(kind, name, op, start, None, ident, wid)
                except Exception as exc:
                    rec = self._record(kind, name, op, start, exc, None, wid)
                    if conn is not None:
                        # What SQLAlchemy's engine does with a lost connection.
                        conn.invalidate()
                finally:
                    if conn is not None:
                        _close(conn)
                with self._lock:
                    self.records.append(rec)
                self._stop.wait(self.pause)
        finally:
            pool.dispose()

    def _operate(self, conn: Any, op: str, wid: int | None, client: str) -> str:
        cur = conn.cursor()
        try:
            if self.engine == "postgres":
                if op == "write":
                    # psycopg's RawCursor takes $n placeholders.
                    raw = "Raw" in type(getattr(cur, "driver_cursor", cur)).__name__
                    cur.execute(
                        f"INSERT INTO {TABLE} (id, client) VALUES "
                        f"{'($1, $2)' if raw else '(%s, %s)'} "
                        "RETURNING host(inet_server_addr())",
                        (wid, client),
                    )
                else:
                    cur.execute(
                        f"SELECT host(inet_server_addr()), max(id) FROM {TABLE}"
                    )
            else:
                if op == "write":
                    cur.execute(
                        f"INSERT INTO {TABLE} (id, client) VALUES (%s, %s)",
                        (wid, client),
                    )
                    cur.execute("SELECT @@server_id")
                else:
                    cur.execute(f"SELECT @@server_id, max(id) FROM {TABLE}")
            return _text(_first_value(cur.fetchone()))
        finally:
            cur.close()

    def _record(
        self,
        kind: ClientKind,
        name: str,
        op: str,
        start: float,
        exc: BaseException | None,
        ident: str | None,
        wid: int | None,
    ) -> OpRecord:
        inst, env = self.identities.get(ident or "", (ident, None))
        return OpRecord(
            client=name,
            group=kind.group,
            kind=op,
            start=start,
            end=time.monotonic(),
            ok=exc is None,
            error=None if exc is None else f"{type(exc).__name__}: {exc}".strip(),
            instance=inst,
            env=env,
            write_id=wid,
        )


def _first_value(row: Any) -> Any:
    """The first column of ``row``, whatever shape the application's row
    factory or cursor class gives rows: tuples, dicts, named tuples, objects
    made from the columns, or psycopg's ``scalar_row`` (the value itself)."""
    if isinstance(row, Mapping):
        return next(iter(row.values()))
    if isinstance(row, (str, bytes, bytearray, int)):
        return row
    if isinstance(row, Sequence):
        return row[0]
    fields = vars(row)
    return next(iter(fields.values()))


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode()
    return str(value)


def _close(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception:
            logger.debug("Closing a workload connection failed.", exc_info=True)
