"""MySQL / MariaDB detection."""

from __future__ import annotations

import logging
from typing import Any

from ._model import (
    MYSQL_METADATA,
    Detection,
    Dialect,
    _text,
    mysql_topology_sources,
    topology_query,
)
from ._probe import _errno, _finish, _first_value, _metadata_outcome, _Prober

logger = logging.getLogger("bluegreen.dialects")


_ER_DBACCESS_DENIED = 1044
_ER_TABLEACCESS_DENIED = 1142
_ER_COLUMNACCESS_DENIED = 1143
_ER_NO_SUCH_TABLE = 1146
_ER_UNKNOWN_TABLE = 1109  # unknown information_schema table
_DENIED = (_ER_DBACCESS_DENIED, _ER_TABLEACCESS_DENIED, _ER_COLUMNACCESS_DENIED)
_ABSENT = (_ER_NO_SUCH_TABLE, _ER_UNKNOWN_TABLE)


def _table_state(
    prober: _Prober, sql: str
) -> tuple[bool | BaseException | None, list[tuple[Any, ...]]]:
    """(state, rows): state True = readable, False = access denied, None =
    absent, else the error; rows are the query's rows when readable."""
    try:
        rows = prober.rows(sql)
    except Exception as exc:
        errno = _errno(exc)
        if errno in _DENIED:
            return False, []
        if errno in _ABSENT:
            return None, []
        logger.debug("probe failed: %s", sql, exc_info=True)
        return exc, []
    return True, rows


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
    evidence of an RDS deployment: the ``aurora_version`` variable, a readable
    Aurora topology, an RDS ``basedir`` (``/rdsdbbin/...``), ``version_comment``
    = ``Source distribution``, an RDS endpoint host name, or a forced
    RDS/Aurora dialect. Without evidence the server is plain MySQL and nothing
    is logged above DEBUG.
    """
    version, comment, basedir, user = prober.rows(
        "SELECT VERSION(), @@version_comment, @@basedir, CURRENT_USER()"
    )[0]
    aurora = bool(prober.rows("SHOW VARIABLES LIKE 'aurora_version'"))
    topo_source, topo_ok = None, False
    # information_schema tables are never hidden; a denied mysql.* stand-in
    # says nothing about existence, so only a topology that reads counts.
    # A forced instance dialect has no topology: no need to look.
    candidates = () if forced and not forced.is_aurora else mysql_topology_sources()
    for candidate in candidates:
        if _table_state(prober, topology_query(candidate))[0] is True:
            topo_source, topo_ok = candidate, True
            break
    evidence = (
        aurora
        or topo_source is not None
        or rds_host
        or _text(basedir).startswith("/rdsdbbin")
        or _text(comment) == "Source distribution"
        or (forced is not None and not forced.is_plain)
    )
    notes: list[str] = []
    # The roles also tell a Multi-AZ DB cluster apart (see _looks_multi_az).
    meta, roles = _table_state(prober, f"SELECT role FROM {MYSQL_METADATA}")
    if isinstance(meta, BaseException):
        notes.append(f"probing {MYSQL_METADATA} failed ({type(meta).__name__}: {meta})")
        meta = None
    elif meta is False and not evidence:
        logger.debug("%s is hidden from this user and nothing says RDS", MYSQL_METADATA)
        meta = None

    if forced is not None:
        dialect = forced
    elif aurora or topo_source is not None:
        dialect = Dialect.AURORA_MYSQL
    elif meta is not None:
        dialect = Dialect.RDS_MYSQL
    else:
        dialect = Dialect.MYSQL
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
    elif readable and _looks_multi_az(roles):
        unsupported = "an RDS Multi-AZ DB cluster"
    return _finish(
        dialect, forced, source, readable, grant, topo_source, topo_ok, unsupported,
        notes, _text(version),
    )  # fmt: skip


def _looks_multi_az(rows: list[tuple[Any, ...]]) -> bool:
    """Heuristic over the ``role`` column of rds_topology: a Multi-AZ DB cluster
    lists its instances there without blue/green roles (several rows, none
    with a blue/green role)."""
    roles = [_text(r[0]) if r[0] is not None else "" for r in rows]
    bg = [r for r in roles if r.startswith("BLUE_GREEN_DEPLOYMENT_")]
    return len(roles) >= 2 and not bg
