"""The deployment-type model: dialects, metadata sources, detection results,
topology rows, and warnings logged once per process. Pure: no I/O."""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import rds
from .._log import REPEAT_S
from .._runtime import runtime
from ..errors import ConfigurationError

#: The blue/green metadata sources (facts sheet, section 2).
MYSQL_METADATA = "mysql.rds_topology"
RDS_PG_METADATA = "rds_tools.show_topology"
AURORA_PG_METADATA = "pg_catalog.get_blue_green_fast_switchover_metadata"

_PG_TOPOLOGY = "pg_catalog.aurora_replica_status"
_MYSQL_TOPOLOGY = "information_schema.replica_host_status"

#: Test hook: a comma-separated list of tables to read the Aurora MySQL
#: topology from when ``information_schema.replica_host_status`` does not
#: exist, with the same columns. A simulator whose MariaDB cannot add
#: information_schema tables (bluegreen's own sets it in the environment it
#: runs programs in) names its stand-in here; production code never sets it.
TEST_MYSQL_TOPOLOGY_ENV = "BLUEGREEN_TEST_MYSQL_TOPOLOGY"


def mysql_topology_sources() -> tuple[str, ...]:
    """Where detection looks for the Aurora MySQL topology, in order."""
    extra = os.environ.get(TEST_MYSQL_TOPOLOGY_ENV, "")
    return (_MYSQL_TOPOLOGY, *(t.strip() for t in extra.split(",") if t.strip()))


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
    if source in mysql_topology_sources():
        return (
            "SELECT server_id, session_id = 'MASTER_SESSION_ID' AS is_writer, "
            f"last_update_timestamp FROM {source}"
        )
    raise ValueError(f"unknown topology source {source!r}")


def dialect_from_setting(value: str | Dialect | None) -> Dialect | None:
    """The dialect named by the ``wrapper_dialect`` setting; None = detect.

    The setting is validated against :data:`bluegreen.settings.DIALECTS`
    (the :class:`Dialect` values) when it is parsed, so this only maps the
    validated spelling to its dialect.

    A forced dialect trusts the user about the deployment type: :func:`detect`
    does not classify the server, but it still checks that the forced
    dialect's metadata source exists and is readable, because a missing grant
    is the most common reason for the plugin to see nothing.
    """
    if value is None or isinstance(value, Dialect):
        return value
    try:
        return Dialect(value)
    except ValueError:
        allowed = ", ".join(d.value for d in Dialect)
        raise ConfigurationError(
            f"wrapper_dialect: {value!r} is not a known dialect; allowed: {allowed}"
        ) from None


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
    def topology_query(self) -> str | None:
        """The topology query for the source found, if any."""
        return topology_query(self.topology_source) if self.topology_source else None

    @property
    def monitorable(self) -> bool:
        """Whether the ``bg`` plugin's monitors can follow a switchover here.

        An RDS or Aurora dialect with a blue/green metadata source, not an
        unsupported deployment, and (unless the dialect was forced) a probe
        that did not fail. The metadata need not be readable yet: the
        monitors start anyway and keep looking, so that a GRANT given later,
        or metadata provisioned later, is picked up.
        """
        dialect = self.dialect
        if dialect.is_plain or self.unsupported_reason is not None:
            return False
        if self.probe_failed and not self.forced:
            return False
        return dialect.metadata_source is not None

    def log_warnings(self, log: logging.Logger, where: str) -> None:
        """Log each warning, prefixed with ``where`` (``host:port``).

        Warnings about a host whose name is an RDS or Aurora endpoint mean
        that switchover protection is off where it is expected: they are
        repeated every :data:`~bluegreen._log.REPEAT_S` seconds for as long
        as they last. Others are logged once per process.
        """
        host = where.rpartition(":")[0] or where
        every = REPEAT_S if rds.is_rds_host(host) else None
        for text in self.warnings:
            runtime().warnings.warn(
                log, ("detection", where, text), "%s: %s", where, text, every=every
            )


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
