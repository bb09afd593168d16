"""PostgreSQL detection: one catalog query tells RDS, Aurora and plain apart."""

from __future__ import annotations

from ._model import (
    _PG_TOPOLOGY,
    AURORA_PG_METADATA,
    RDS_PG_METADATA,
    Detection,
    Dialect,
    _text,
    topology_query,
)
from ._probe import _finish, _first_value, _metadata_outcome, _Prober, _try


def _pg_callable(schema: str, name: str, alias: str, *, usage: bool = False) -> str:
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
        f" WHERE n.nspname = '{schema}' AND p.proname = '{name}') AS {alias}"
    )


# Every column has its own name: the probe must read the same with any row
# factory (a dict or named-tuple row keeps one column per name).
_PG_PROBE = (
    "SELECT pg_catalog.current_setting('server_version') AS server_version, "
    "COALESCE((SELECT setting FROM pg_catalog.pg_settings"
    " WHERE name = 'rds.extensions'),"
    " pg_catalog.current_setting('rds.extensions', true)) AS rds_extensions, "
    + ", ".join(
        [
            _pg_callable(
                "pg_catalog", "get_blue_green_fast_switchover_metadata", "aurora_meta"
            ),
            _pg_callable("rds_tools", "show_topology", "rds_meta", usage=True),
            _pg_callable("pg_catalog", "aurora_replica_status", "aurora_topology"),
            _pg_callable(
                "rds_tools",
                "multi_az_db_cluster_source_dbi_resource_id",
                "multi_az",
                usage=True,
            ),
            _pg_callable("pg_catalog", "aurora_global_db_instance_status", "global_db"),
        ]
    )
    + ", pg_catalog.quote_ident(current_user) AS app_user"
)


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
