"""Deployment type detection: plain, RDS or Aurora; PostgreSQL or MySQL.

Detection probes the blue/green metadata sources directly instead of trusting
version strings: wherever the metadata exists (a real RDS server, or the local
simulator, whose MariaDB cannot pretend to be RDS through ``version_comment``),
it is found.

Connection contract of :func:`detect`: the caller hands over a fresh, idle
DB-API connection (no open transaction, nothing it wants to keep uncommitted).
Detection only reads; when the connection is not known to be in autocommit
mode it calls ``conn.rollback()`` at the end, and on PostgreSQL also after a
failed probe, so that the connection is left idle and usable (PostgreSQL
aborts a transaction on any error; MySQL fails only the statement, but keeps a
read snapshot open). Every exception raised by a probe is
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

import logging
from typing import Any

from .. import rds
from ..errors import ConfigurationError
from ._cache import DetectionCache
from ._model import (
    AURORA_PG_METADATA,
    MYSQL_METADATA,
    RDS_PG_METADATA,
    TOPOLOGY_MAX_AGE_S,
    Detection,
    Dialect,
    TopologyRow,
    dialect_from_setting,
    filter_topology,
    metadata_status_query,
    topology_query,
    topology_rows,
)
from ._mysql import _detect_mysql
from ._postgres import _detect_postgres
from ._probe import ConnectionState, _busy_transaction, _Prober

__all__ = [
    "AURORA_PG_METADATA",
    "MYSQL_METADATA",
    "RDS_PG_METADATA",
    "TOPOLOGY_MAX_AGE_S",
    "ConnectionState",
    "Detection",
    "DetectionCache",
    "Dialect",
    "TopologyRow",
    "detect",
    "dialect_from_setting",
    "filter_topology",
    "metadata_status_query",
    "topology_query",
    "topology_rows",
]

logger = logging.getLogger("bluegreen.dialects")


def detect(
    conn: Any,
    family: str,
    *,
    host: str | None = None,
    forced: Dialect | None = None,
    state: ConnectionState | None = None,
) -> Detection:
    """Detect the deployment type behind ``conn`` (see the module docstring).

    ``family`` is ``"postgres"`` or ``"mysql"``. ``host`` is the name the
    application connected to; an RDS endpoint name counts as evidence of an
    RDS deployment where the database itself cannot tell (a MySQL user without
    any privilege on ``mysql.*`` cannot see whether ``mysql.rds_topology``
    exists). ``forced`` is the ``wrapper_dialect`` setting. ``state`` (the
    driver adapter) tells whether ``conn`` is inside a transaction, which
    detection then leaves untouched, and whether it is in autocommit; without
    it only a psycopg transaction is recognised.
    """
    plain = Dialect.plain(family)
    if forced is not None and forced.family != family:
        raise ConfigurationError(
            f"wrapper_dialect: {forced.value!r} is a {forced.family} dialect but "
            f"the connection is {family}"
        )
    busy = state.in_transaction(conn) if state is not None else _busy_transaction(conn)
    if busy:
        return Detection(
            dialect=forced or plain,
            forced=forced is not None,
            probe_failed=True,
            warnings=(
                "dialect detection skipped: the connection is in a transaction; "
                "blue/green support is off for this host until detection is "
                "retried on a later connection",
            ),
        )
    prober = _Prober(
        conn,
        error_aborts=family == "postgres",
        autocommit=state.get_autocommit(conn) if state is not None else None,
        query=getattr(state, "query", None),
    )
    prober.ended = getattr(state, "transaction_ended", None)
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
