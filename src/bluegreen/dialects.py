"""Deployment type detection: plain, RDS or Aurora; PostgreSQL or MySQL.

Detection probes the blue/green metadata sources directly instead of trusting
version strings: wherever the metadata exists (a real RDS server, or the local
simulator, whose MariaDB cannot pretend to be RDS through ``version_comment``),
it is found.

Connection contract of :func:`detect`: the caller hands over a fresh, idle
DB-API connection (no open transaction, nothing it wants to keep uncommitted).
Detection only reads; after a failed probe, and at the end when the connection
is not known to be in autocommit mode, it calls ``conn.rollback()`` so that the
connection is left idle and usable (PostgreSQL aborts a transaction on any
error; MySQL keeps a read snapshot open). Every exception raised by a probe is
caught and logged at DEBUG: detection never breaks the application's
connection; at worst it returns the plain dialect with a warning.

What a client can and cannot recognise (from the public AWS documentation and
the AWS wrappers' behaviour as far as we know it; this could not be verified
against real AWS from this project):

- Multi-AZ DB cluster, PostgreSQL: ``rds_tools.multi_az_db_cluster_source_dbi_
  resource_id()`` returns the source instance's resource id. MySQL: its
  ``mysql.rds_topology`` lists the cluster's instances without blue/green
  roles. Both are recognised on a best-effort basis.
- Aurora Global Database: ``aurora_global_db_instance_status`` (a function on
  PostgreSQL, an ``information_schema`` table on MySQL) lists instances of
  more than one AWS region. Recognised when the status is readable.
- CNAME aliases cannot be recognised from inside the database at all.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from . import rds
from ._log import OnceLog
from .errors import ConfigurationError

__all__ = [
    "AURORA_PG_METADATA",
    "MYSQL_METADATA",
    "RDS_PG_METADATA",
    "Detection",
    "DetectionCache",
    "Dialect",
    "OnceLog",
    "TopologyRow",
    "detect",
    "dialect_from_setting",
    "filter_topology",
    "metadata_status_query",
    "topology_query",
    "topology_rows",
    "warn_once",
]

logger = logging.getLogger(__name__)

#: The blue/green metadata sources (facts sheet, section 2).
MYSQL_METADATA = "mysql.rds_topology"
RDS_PG_METADATA = "rds_tools.show_topology"
AURORA_PG_METADATA = "pg_catalog.get_blue_green_fast_switchover_metadata"

_PG_TOPOLOGY = "pg_catalog.aurora_replica_status"
_MYSQL_TOPOLOGY = "information_schema.replica_host_status"
# The simulator runs MariaDB, which cannot add information_schema tables; it
# publishes the same columns in mysql.replica_host_status, accepted as a
# fallback topology source when the information_schema table does not exist.
_MYSQL_SIM_TOPOLOGY = "mysql.replica_host_status"

#: Rows older than this are ignored by :func:`filter_topology` (except the writer).
TOPOLOGY_MAX_AGE_S = 300.0


class Dialect(enum.Enum):
    """A deployment type; the value is the ``wrapper_dialect`` setting's spelling."""

    AURORA_POSTGRES = "aurora-postgres"
    RDS_POSTGRES = "rds-postgres"
    AURORA_MYSQL = "aurora-mysql"
    RDS_MYSQL = "rds-mysql"
    POSTGRES = "postgres"
    MYSQL = "mysql"

    @property
    def family(self) -> str:
        """``"postgres"`` or ``"mysql"``."""
        return "postgres" if self.value.endswith("postgres") else "mysql"

    @property
    def is_aurora(self) -> bool:
        """True for the Aurora dialects."""
        return self.value.startswith("aurora-")

    @property
    def is_rds(self) -> bool:
        """True for RDS (non-Aurora) instances; Aurora is not counted here."""
        return self.value.startswith("rds-")

    @property
    def is_plain(self) -> bool:
        """True for plain PostgreSQL / MySQL / MariaDB."""
        return not (self.is_aurora or self.is_rds)

    @property
    def metadata_source(self) -> str | None:
        """Where this deployment type publishes blue/green metadata, if anywhere."""
        return _METADATA_SOURCE.get(self)

    @property
    def status_query(self) -> str | None:
        """The blue/green status query (see :func:`metadata_status_query`)."""
        source = self.metadata_source
        return metadata_status_query(source) if source else None

    @property
    def topology_query(self) -> str | None:
        """The Aurora topology query, None for instance deployments."""
        if self is Dialect.AURORA_POSTGRES:
            return topology_query(_PG_TOPOLOGY)
        if self is Dialect.AURORA_MYSQL:
            return topology_query(_MYSQL_TOPOLOGY)
        return None

    def required_grants(self, user: str) -> str | None:
        """The GRANT statement(s) a non-admin ``user`` needs to read the metadata.

        ``user`` is already quoted for the dialect (``app`` for PostgreSQL,
        ``'app'@'%'`` for MySQL).
        """
        if self.family == "mysql" and not self.is_plain:
            return f"GRANT SELECT ON {MYSQL_METADATA} TO {user};"
        if self is Dialect.RDS_POSTGRES:
            return (
                f"GRANT USAGE ON SCHEMA rds_tools TO {user}; "
                f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO {user};"
            )
        if self is Dialect.AURORA_POSTGRES:
            return f"GRANT EXECUTE ON FUNCTION {AURORA_PG_METADATA}(text) TO {user};"
        return None

    @classmethod
    def plain(cls, family: str) -> Dialect:
        """The plain dialect of a family (``"postgres"`` or ``"mysql"``)."""
        if family == "postgres":
            return cls.POSTGRES
        if family == "mysql":
            return cls.MYSQL
        raise ValueError(f"unknown database family {family!r}")


_METADATA_SOURCE = {
    Dialect.AURORA_POSTGRES: AURORA_PG_METADATA,
    Dialect.RDS_POSTGRES: RDS_PG_METADATA,
    Dialect.AURORA_MYSQL: MYSQL_METADATA,
    Dialect.RDS_MYSQL: MYSQL_METADATA,
}


def metadata_status_query(source: str) -> str:
    """The status query of a metadata source.

    The PostgreSQL functions take one ``%s`` parameter, the client tag;
    ``mysql.rds_topology`` also returns ``id`` (first column).
    """
    columns = "version, endpoint, port, role, status"
    if source == MYSQL_METADATA:
        return f"SELECT id, {columns} FROM {source}"
    if source in (RDS_PG_METADATA, AURORA_PG_METADATA):
        return f"SELECT {columns} FROM {source}(%s)"
    raise ValueError(f"unknown blue/green metadata source {source!r}")


def topology_query(source: str) -> str:
    """The Aurora topology query: ``server_id, is_writer, last_update_timestamp``."""
    if source == _PG_TOPOLOGY:
        return (
            "SELECT server_id, CASE WHEN session_id = 'MASTER_SESSION_ID' "
            "THEN TRUE ELSE FALSE END AS is_writer, last_update_timestamp "
            f"FROM {source}()"
        )
    if source in (_MYSQL_TOPOLOGY, _MYSQL_SIM_TOPOLOGY):
        return (
            "SELECT server_id, session_id = 'MASTER_SESSION_ID' AS is_writer, "
            f"last_update_timestamp FROM {source}"
        )
    raise ValueError(f"unknown topology source {source!r}")


def dialect_from_setting(value: str | Dialect | None) -> Dialect | None:
    """Parse the ``wrapper_dialect`` setting; None (or ``auto``/empty) = detect.

    A forced dialect trusts the user about the deployment type: :func:`detect`
    does not classify the server, but it still checks that the forced
    dialect's metadata source exists and is readable, because a missing grant
    is the most common reason for the plugin to see nothing.
    """
    if value is None or isinstance(value, Dialect):
        return value
    text = value.strip().lower().replace("_", "-")
    if text in ("", "auto"):
        return None
    aliases = {"postgresql": "postgres", "mariadb": "mysql"}
    text = aliases.get(text, text)
    for dialect in Dialect:
        if dialect.value == text:
            return dialect
    allowed = ", ".join(["auto", *(d.value for d in Dialect)])
    raise ConfigurationError(
        f"wrapper_dialect: {value!r} is not a known dialect; allowed: {allowed}"
    )


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found out about a server."""

    dialect: Dialect
    #: The blue/green metadata source that exists, or None.
    metadata_source: str | None = None
    #: True if the current user can read ``metadata_source``.
    metadata_readable: bool = False
    #: The GRANT statement(s) to run when the source exists but is unreadable.
    missing_grant: str | None = None
    #: The Aurora topology source (table or function), if any.
    topology_source: str | None = None
    #: True if the topology query ran successfully during detection.
    topology_available: bool = False
    #: Why blue/green support cannot work here (Multi-AZ DB cluster, ...).
    unsupported_reason: str | None = None
    #: Human-readable warnings to log (once) for operators.
    warnings: tuple[str, ...] = ()
    server_version: str | None = None
    #: True if the dialect came from the ``wrapper_dialect`` setting.
    forced: bool = False
    #: True if a probe failed unexpectedly; such results are cached for a
    #: back-off period only (see :class:`DetectionCache`).
    probe_failed: bool = False

    @property
    def status_query(self) -> str | None:
        """The metadata status query for the source found, if any."""
        return (
            metadata_status_query(self.metadata_source)
            if self.metadata_source
            else None
        )

    @property
    def status_query_takes_tag(self) -> bool:
        """True if :attr:`status_query` needs the client tag parameter."""
        return self.metadata_source in (RDS_PG_METADATA, AURORA_PG_METADATA)

    @property
    def topology_query(self) -> str | None:
        """The topology query for the source found, if any."""
        return topology_query(self.topology_source) if self.topology_source else None

    @property
    def supports_blue_green(self) -> bool:
        """True if the plugin can monitor a switchover through this connection."""
        return (
            self.metadata_source is not None
            and self.metadata_readable
            and self.unsupported_reason is None
        )

    def log_warnings(self, log: logging.Logger, where: str) -> None:
        """Log each warning once per process, prefixed with ``where`` (a host)."""
        for text in self.warnings:
            warn_once(log, (where, text), "%s: %s", where, text)


# --------------------------------------------------------------------------
# Topology rows (pure)


@dataclass(frozen=True)
class TopologyRow:
    """One row of the Aurora topology query."""

    server_id: str
    is_writer: bool
    last_update: datetime | None


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _as_tuple(row: Any) -> tuple[Any, ...]:
    if isinstance(row, Mapping):
        return tuple(row.values())
    return tuple(row)


def topology_rows(raw: Iterable[Any]) -> list[TopologyRow]:
    """Convert the rows of a topology query into :class:`TopologyRow` objects."""
    result = []
    for row in raw:
        server_id, is_writer, last_update = _as_tuple(row)[:3]
        if isinstance(is_writer, bytes | bytearray | str):
            is_writer = _text(is_writer).strip().lower() in ("1", "t", "true")
        stamp = last_update if isinstance(last_update, datetime) else None
        result.append(TopologyRow(_text(server_id), bool(is_writer), stamp))
    return result


def _utc(stamp: datetime) -> datetime:
    # Aurora MySQL reports naive UTC timestamps; PostgreSQL aware ones.
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp


def filter_topology(
    rows: Iterable[TopologyRow],
    now: datetime,
    max_age_s: float = TOPOLOGY_MAX_AGE_S,
) -> list[TopologyRow]:
    """Drop stale topology rows; the writer first, then readers by server id.

    A reader row whose ``last_update`` is more than ``max_age_s`` before
    ``now`` is ignored (a row without a timestamp is kept). The writer is kept
    however old its row; if several rows claim to be the writer (a failover in
    progress), only the most recently updated one is kept. Duplicate server
    ids keep their most recent row. Naive datetimes are taken as UTC.
    """
    limit = _utc(now) - timedelta(seconds=max_age_s)
    oldest = datetime.min.replace(tzinfo=timezone.utc)

    def age_key(row: TopologyRow) -> datetime:
        return _utc(row.last_update) if row.last_update else oldest

    latest: dict[str, TopologyRow] = {}
    for row in rows:
        seen = latest.get(row.server_id)
        if seen is None or age_key(row) >= age_key(seen):
            latest[row.server_id] = row
    writers = [r for r in latest.values() if r.is_writer]
    writer = max(writers, key=age_key) if writers else None
    readers = sorted(
        (
            r
            for r in latest.values()
            if not r.is_writer
            and (r.last_update is None or _utc(r.last_update) >= limit)
        ),
        key=lambda r: r.server_id,
    )
    return ([writer] if writer else []) + readers


# --------------------------------------------------------------------------
# Warnings once per process


_ONCE = OnceLog()


def warn_once(log: logging.Logger, key: Hashable, msg: str, *args: Any) -> bool:
    """Log a WARNING once per process for each distinct ``key``; True if logged."""
    return _ONCE.warn(log, key, msg, *args)


# --------------------------------------------------------------------------
# Detection cache


class DetectionCache:
    """Runs detection once per key (``(family, host, port)``) per process.

    Concurrent callers for the same key wait for the first caller's probe.
    A result with ``probe_failed`` set is kept for ``retry_after_s`` seconds
    (by ``clock``) only, so a host where probing fails is probed again once
    per back-off period instead of on every connection; an exception from
    the probe is propagated to its caller and the next waiter probes
    instead. The cache empties itself in a forked child (the parent's
    in-flight probes do not exist there).
    """

    def __init__(
        self,
        retry_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._results: dict[Hashable, Detection] = {}
        # Failed probes: the result and the clock reading it expires at.
        self._failed: dict[Hashable, tuple[Detection, float]] = {}
        self._pending: dict[Hashable, threading.Event] = {}
        ref = weakref.ref(self)

        def _reset_in_child() -> None:
            cache = ref()
            if cache is not None:
                cache._after_fork()

        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_in_child)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._results = {}
        self._failed = {}
        self._pending = {}

    def get(self, key: Hashable) -> Detection | None:
        """The cached result for ``key`` (a failed one until it expires), or None."""
        found = self._results.get(key)  # a dict read is atomic: no lock
        if found is None and self._failed:
            failed = self._failed.get(key)
            if failed is not None and self._clock() < failed[1]:
                return failed[0]
        return found

    def get_or_detect(self, key: Hashable, probe: Callable[[], Detection]) -> Detection:
        """The cached detection for ``key``, running ``probe`` if there is none."""
        while True:
            with self._lock:
                found = self.get(key)
                if found is not None:
                    return found
                event = self._pending.get(key)
                owner = event is None
                if event is None:
                    event = self._pending[key] = threading.Event()
            if not owner:
                event.wait()
                continue
            try:
                result = probe()
            finally:
                with self._lock:
                    if self._pending.get(key) is event:
                        del self._pending[key]
                event.set()
            with self._lock:
                if result.probe_failed:
                    expires = self._clock() + self.retry_after_s
                    self._failed[key] = (result, expires)
                else:
                    self._results[key] = result
                    self._failed.pop(key, None)
            return result

    def clear(self) -> None:
        """Forget every result (probes in flight finish normally)."""
        with self._lock:
            self._results.clear()
            self._failed.clear()


# --------------------------------------------------------------------------
# Probing


class _Cursor(Protocol):
    @property
    def description(self) -> Any: ...

    def execute(self, *args: Any, **kwargs: Any) -> Any: ...

    def fetchall(self) -> Any: ...

    def close(self) -> Any: ...


class _Connection(Protocol):
    def cursor(self, *args: Any, **kwargs: Any) -> Any: ...

    def rollback(self) -> Any: ...


def _autocommit(conn: Any) -> bool | None:
    """True/False if the driver says so, None if it cannot be told."""
    getter = getattr(conn, "get_autocommit", None)  # PyMySQL
    if callable(getter):
        try:
            return bool(getter())
        except Exception:
            return None
    value = getattr(conn, "autocommit", None)  # psycopg, mysql-connector
    return value if isinstance(value, bool) else None


def _busy_transaction(conn: Any) -> bool:
    """True if a psycopg connection is inside a transaction (not idle)."""
    info = getattr(conn, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and int(status) != 0  # 0 = IDLE


def _errno(exc: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL / mysql-connector exception."""
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int):
        return errno
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


class _Prober:
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.autocommit = _autocommit(conn)

    def rows(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        cur: _Cursor = self.conn.cursor()
        try:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, params)
            if cur.description is None:
                return []
            return [_as_tuple(r) for r in cur.fetchall()]
        except Exception:
            self.rollback()
            raise
        finally:
            try:
                cur.close()
            except Exception:
                logger.debug("closing a detection cursor failed", exc_info=True)

    def rollback(self) -> None:
        if self.autocommit:
            return
        try:
            self.conn.rollback()
        except Exception:
            logger.debug("rollback after a detection probe failed", exc_info=True)


def detect(
    conn: Any,
    family: str,
    *,
    host: str | None = None,
    forced: Dialect | None = None,
) -> Detection:
    """Detect the deployment type behind ``conn`` (see the module docstring).

    ``family`` is ``"postgres"`` or ``"mysql"``. ``host`` is the name the
    application connected to; an RDS endpoint name counts as evidence of an
    RDS deployment where the database itself cannot tell (a MySQL user without
    any privilege on ``mysql.*`` cannot see whether ``mysql.rds_topology``
    exists). ``forced`` is the ``wrapper_dialect`` setting.
    """
    plain = Dialect.plain(family)
    if forced is not None and forced.family != family:
        raise ConfigurationError(
            f"wrapper_dialect: {forced.value!r} is a {forced.family} dialect but "
            f"the connection is {family}"
        )
    if _busy_transaction(conn):
        return Detection(
            dialect=forced or plain,
            forced=forced is not None,
            probe_failed=True,
            warnings=("dialect detection skipped: the connection is in a transaction",),
        )
    prober = _Prober(conn)
    try:
        if family == "postgres":
            result = _detect_postgres(prober, forced)
        else:
            evidence = host is not None and rds.is_rds_host(host)
            result = _detect_mysql(prober, forced, evidence)
    except Exception as exc:
        logger.debug("dialect detection failed", exc_info=True)
        result = Detection(
            dialect=forced or plain,
            metadata_source=forced.metadata_source if forced else None,
            metadata_readable=forced is not None,
            forced=forced is not None,
            probe_failed=True,
            warnings=(
                f"dialect detection failed ({type(exc).__name__}: {exc}); "
                "blue/green support is off for this host",
            ),
        )
    finally:
        prober.rollback()
    return result


# --------------------------------------------------------------------------
# PostgreSQL


def _pg_callable(schema: str, name: str, *, usage: bool = False) -> str:
    """A scalar subquery: NULL if the function does not exist, else callable?

    The catalogs are readable by everyone, unlike ``to_regproc('s.f')``, which
    raises when the user lacks USAGE on the schema and returns NULL for
    overloaded names.
    """
    check = "pg_catalog.has_function_privilege(p.oid, 'EXECUTE')"
    if usage:
        check += " AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
    return (
        f"(SELECT bool_or({check}) FROM pg_catalog.pg_proc p"
        " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        f" WHERE n.nspname = '{schema}' AND p.proname = '{name}')"
    )


_PG_PROBE = (
    "SELECT pg_catalog.current_setting('server_version'), "
    "COALESCE((SELECT setting FROM pg_catalog.pg_settings"
    " WHERE name = 'rds.extensions'),"
    " pg_catalog.current_setting('rds.extensions', true)), "
    + ", ".join(
        [
            _pg_callable("pg_catalog", "get_blue_green_fast_switchover_metadata"),
            _pg_callable("rds_tools", "show_topology", usage=True),
            _pg_callable("pg_catalog", "aurora_replica_status"),
            _pg_callable(
                "rds_tools", "multi_az_db_cluster_source_dbi_resource_id", usage=True
            ),
            _pg_callable("pg_catalog", "aurora_global_db_instance_status"),
        ]
    )
    + ", pg_catalog.quote_ident(current_user)"
)


def _metadata_outcome(
    dialect: Dialect, state: bool | None, user: str, notes: list[str]
) -> tuple[str | None, bool, str | None]:
    """(source, readable, missing_grant) from the source's state.

    ``state``: None = the source does not exist, False = it exists but the
    user cannot read it, True = readable.
    """
    source = dialect.metadata_source
    if source is None:
        return None, False, None
    if state is None:
        notes.append(
            f"{dialect.value}: the blue/green metadata source {source} does not "
            "exist (too old an engine version, or for RDS PostgreSQL the "
            "rds_tools extension is not installed: CREATE EXTENSION rds_tools); "
            "blue/green support is off"
        )
        return None, False, None
    if state:
        return source, True, None
    grant = dialect.required_grants(user)
    notes.append(
        f"user {user} cannot read the blue/green metadata {source}; "
        f"blue/green support is off until an administrator runs: {grant}"
    )
    return source, False, grant


def _detect_postgres(prober: _Prober, forced: Dialect | None) -> Detection:
    row = prober.rows(_PG_PROBE)[0]
    version, exts_text, aurora_meta, rds_meta, aurora_topo, multi_az, glob, user = row
    exts = {e.strip() for e in _text(exts_text).split(",")} if exts_text else set()
    if forced is not None:
        dialect = forced
    elif (
        "aurora_stat_utils" in exts
        or aurora_meta is not None
        or aurora_topo is not None
    ):
        dialect = Dialect.AURORA_POSTGRES
    elif "rds_tools" in exts or rds_meta is not None:
        dialect = Dialect.RDS_POSTGRES
    else:
        dialect = Dialect.POSTGRES
    notes: list[str] = []
    states = {AURORA_PG_METADATA: aurora_meta, RDS_PG_METADATA: rds_meta}
    state = states.get(dialect.metadata_source or "")
    source, readable, grant = _metadata_outcome(dialect, state, _text(user), notes)

    topo_source, topo_ok = None, False
    if dialect.is_aurora and aurora_topo is not None:
        topo_source = _PG_TOPOLOGY
        topo_ok = _try(prober, topology_query(_PG_TOPOLOGY), notes, "Aurora topology")
    unsupported = None
    if multi_az and _first_value(
        prober, "SELECT * FROM rds_tools.multi_az_db_cluster_source_dbi_resource_id()"
    ):
        unsupported = "an RDS Multi-AZ DB cluster"
    elif dialect.is_aurora and glob:
        regions = _first_value(
            prober,
            "SELECT count(DISTINCT aws_region) "
            "FROM pg_catalog.aurora_global_db_instance_status()",
        )
        if regions is not None and int(regions) > 1:
            unsupported = "an Aurora Global Database"
    return _finish(
        dialect, forced, source, readable, grant, topo_source, topo_ok, unsupported,
        notes, _text(version),
    )  # fmt: skip


def _try(prober: _Prober, sql: str, notes: list[str], what: str) -> bool:
    try:
        prober.rows(sql)
    except Exception as exc:
        logger.debug("%s probe failed", what, exc_info=True)
        notes.append(f"the {what} query failed ({type(exc).__name__}: {exc})")
        return False
    return True


def _first_value(prober: _Prober, sql: str) -> Any:
    """The first column of the first row, or None if none or the query failed."""
    try:
        rows = prober.rows(sql)
    except Exception:
        logger.debug("optional detection probe failed: %s", sql, exc_info=True)
        return None
    value = rows[0][0] if rows and rows[0] else None
    return None if value in (None, "", b"") else value


def _finish(
    dialect: Dialect,
    forced: Dialect | None,
    source: str | None,
    readable: bool,
    grant: str | None,
    topo_source: str | None,
    topo_ok: bool,
    unsupported: str | None,
    notes: list[str],
    version: str,
) -> Detection:
    if unsupported is not None:
        unsupported = (
            f"the server looks like {unsupported}, which blue/green switchover "
            "support does not cover"
        )
        notes.insert(0, unsupported + "; blue/green support is off")
    return Detection(
        dialect=dialect,
        metadata_source=source,
        metadata_readable=readable,
        missing_grant=grant,
        topology_source=topo_source,
        topology_available=topo_ok,
        unsupported_reason=unsupported,
        warnings=tuple(notes),
        server_version=version,
        forced=forced is not None,
    )


# --------------------------------------------------------------------------
# MySQL / MariaDB

_ER_DBACCESS_DENIED = 1044
_ER_TABLEACCESS_DENIED = 1142
_ER_COLUMNACCESS_DENIED = 1143
_ER_NO_SUCH_TABLE = 1146
_ER_UNKNOWN_TABLE = 1109  # unknown information_schema table
_DENIED = (_ER_DBACCESS_DENIED, _ER_TABLEACCESS_DENIED, _ER_COLUMNACCESS_DENIED)
_ABSENT = (_ER_NO_SUCH_TABLE, _ER_UNKNOWN_TABLE)


def _table_state(prober: _Prober, sql: str) -> bool | BaseException | None:
    """True = readable, False = access denied, None = absent, else the error."""
    try:
        prober.rows(sql)
    except Exception as exc:
        errno = _errno(exc)
        if errno in _DENIED:
            return False
        if errno in _ABSENT:
            return None
        logger.debug("probe failed: %s", sql, exc_info=True)
        return exc
    return True


def _mysql_user(current_user: Any) -> str:
    name, _, host = _text(current_user).rpartition("@")
    if not name:
        name, host = host, "%"
    return "'{}'@'{}'".format(name.replace("'", "''"), host.replace("'", "''"))


def _detect_mysql(prober: _Prober, forced: Dialect | None, rds_host: bool) -> Detection:
    """MySQL/MariaDB detection.

    Privilege checks come before existence checks in MySQL: a user without any
    privilege on the table gets "access denied" (1142) for a table that does
    not exist too, and ``information_schema.tables`` hides it either way. So
    "denied" counts as "the metadata exists but is unreadable" only with other
    evidence of an RDS deployment: the ``aurora_version`` variable, an RDS
    ``basedir`` (``/rdsdbbin/...``), ``version_comment`` = ``Source
    distribution``, an RDS endpoint host name, or a forced RDS/Aurora dialect.
    Without evidence the server is plain MySQL and nothing is logged above
    DEBUG.
    """
    version, comment, basedir, user = prober.rows(
        "SELECT VERSION(), @@version_comment, @@basedir, CURRENT_USER()"
    )[0]
    aurora = bool(prober.rows("SHOW VARIABLES LIKE 'aurora_version'"))
    evidence = (
        aurora
        or rds_host
        or _text(basedir).startswith("/rdsdbbin")
        or _text(comment) == "Source distribution"
        or (forced is not None and not forced.is_plain)
    )
    notes: list[str] = []
    meta = _table_state(prober, f"SELECT 1 FROM {MYSQL_METADATA} LIMIT 0")
    if isinstance(meta, BaseException):
        notes.append(f"probing {MYSQL_METADATA} failed ({type(meta).__name__}: {meta})")
        meta = None
    elif meta is False and not evidence:
        logger.debug("%s is hidden from this user and nothing says RDS", MYSQL_METADATA)
        meta = None

    topo_source, topo_ok = None, False
    # information_schema tables are never hidden; a denied mysql.* stand-in
    # says nothing about existence, so only a topology that reads counts.
    for candidate in (_MYSQL_TOPOLOGY, _MYSQL_SIM_TOPOLOGY):
        if _table_state(prober, topology_query(candidate)) is True:
            topo_source, topo_ok = candidate, True
            break

    if forced is not None:
        dialect = forced
    elif aurora or topo_source is not None:
        dialect = Dialect.AURORA_MYSQL
    elif meta is not None:
        dialect = Dialect.RDS_MYSQL
    else:
        dialect = Dialect.MYSQL
    if not dialect.is_aurora:
        topo_source, topo_ok = None, False
    source, readable, grant = _metadata_outcome(dialect, meta, _mysql_user(user), notes)

    unsupported = None
    if dialect.is_aurora:
        regions = _first_value(
            prober,
            "SELECT COUNT(DISTINCT aws_region) "
            "FROM information_schema.aurora_global_db_instance_status",
        )
        if regions is not None and int(regions) > 1:
            unsupported = "an Aurora Global Database"
    elif readable and _looks_multi_az(prober):
        unsupported = "an RDS Multi-AZ DB cluster"
    return _finish(
        dialect, forced, source, readable, grant, topo_source, topo_ok, unsupported,
        notes, _text(version),
    )  # fmt: skip


def _looks_multi_az(prober: _Prober) -> bool:
    """Heuristic: a Multi-AZ DB cluster lists its instances in rds_topology
    without blue/green roles (several rows, none with a blue/green role)."""
    try:
        rows = prober.rows(f"SELECT role FROM {MYSQL_METADATA}")
    except Exception:
        logger.debug("reading %s roles failed", MYSQL_METADATA, exc_info=True)
        return False
    roles = [_text(r[0]) if r[0] is not None else "" for r in rows]
    bg = [r for r in roles if r.startswith("BLUE_GREEN_DEPLOYMENT_")]
    return len(roles) >= 2 and not bg
