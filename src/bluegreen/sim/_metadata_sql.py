"""The SQL that creates the simulated metadata surfaces on one server.

Pure text builders used by :class:`~bluegreen.sim.metadata.MetadataController`:
the PostgreSQL functions (which read the JSON state file :data:`STATE_FILE` in
the data directory) and the MariaDB tables and views.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["STATE_FILE", "MetadataMode", "my_ddl", "my_insert", "pg_ddl"]

#: The per-instance metadata state, relative to the data directory.
STATE_FILE = "bgsim_metadata.json"


class MetadataMode:
    """What a metadata source does on one instance."""

    OK = "ok"  #: returns its rows
    ERROR = "error"  #: exists, but reading it raises an error
    ABSENT = "absent"  #: does not exist (existence checks fail)


def my_insert(
    target: str, rows: Sequence[tuple[Any, ...]]
) -> tuple[str, Sequence[Any]]:
    """One multi-row ``INSERT INTO target VALUES (...), (...)`` statement."""
    row = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
    params = [value for r in rows for value in r]
    return f"INSERT INTO {target} VALUES " + ", ".join([row] * len(rows)), params


_PG_READ = (
    "coalesce(pg_catalog.pg_read_file('" + STATE_FILE + "', 0, 10485760, true), '{}')"
    "::jsonb"
)

_PG_TOPOLOGY_BODY = f"""
DECLARE s jsonb := {_PG_READ};
BEGIN
  IF s->>'mode' = 'error' THEN
    RAISE EXCEPTION 'blue/green deployment metadata is not available'
      USING ERRCODE = 'XX000';
  END IF;
  RETURN QUERY SELECT r.id, r.endpoint, r.port, r.role, r.status, r.version
    FROM ROWS FROM (jsonb_to_recordset(coalesce(s->'topology', '[]'::jsonb))
        AS (id text, version text, endpoint text, port int, role text, status text))
      WITH ORDINALITY AS r(id, version, endpoint, port, role, status, n)
    ORDER BY r.n;
END
"""

_PG_REPLICA_BODY = f"""
DECLARE s jsonb := {_PG_READ};
BEGIN
  RETURN QUERY SELECT r.server_id, r.session_id,
      coalesce((r.last_update || '+00')::timestamptz, now()),
      0::double precision, 0::double precision
    FROM jsonb_to_recordset(coalesce(s->'replicas', '[]'::jsonb))
      AS r(server_id text, session_id text, last_update text);
END
"""

# The columns (and their order) of the MySQL table, which the AWS drivers'
# tests expect from the PostgreSQL functions too.
_PG_RETURNS = (
    "TABLE(id text, endpoint text, port integer, role text, status text, version text)"
)


def _pg_identity_fn(name: str, key: str) -> str:
    """A function returning ``key`` of the state file: the instance's own id
    or resource id (its owner can read the file, its callers cannot)."""
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS text "
        "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog "
        f"AS $body$SELECT {_PG_READ}->>'{key}'$body$"
    )


# Shown in pg_settings: a placeholder GUC such as rds.extensions is hidden there.
_PG_SETTINGS_VIEW = """
CREATE OR REPLACE VIEW pg_catalog.pg_settings AS
SELECT * FROM pg_catalog.pg_show_all_settings()
UNION ALL
SELECT 'rds.extensions', current_setting('rds.extensions', true), unit, category,
       'Extensions RDS lets this instance use (simulated).', extra_desc, 'sighup',
       vartype, 'configuration file', min_val, max_val, enumvals,
       current_setting('rds.extensions', true), current_setting('rds.extensions', true),
       sourcefile, sourceline, pending_restart
  FROM pg_catalog.pg_show_all_settings()
 WHERE name = 'application_name' AND current_setting('rds.extensions', true) IS NOT NULL
"""


def pg_ddl(
    flavor: str, present: bool, grants: bool, app: str, also: Sequence[str] = ()
) -> list[str]:
    """The statements that create (or drop) the PostgreSQL surfaces; the
    grants go to ``app`` and the users in ``also``."""
    out = ["SET allow_system_table_mods = on", _PG_SETTINGS_VIEW]
    if flavor == "aurora":
        fn = "pg_catalog.get_blue_green_fast_switchover_metadata"
        rep = "pg_catalog.aurora_replica_status"
        # An Aurora built-in, there whether a blue/green deployment is or not.
        out.append(
            _pg_identity_fn("pg_catalog.aurora_db_instance_identifier", "instance_id")
        )
        if not present:
            return [*out, f"DROP FUNCTION IF EXISTS {fn}(text)"]
        return [
            *out,
            f"CREATE OR REPLACE FUNCTION {fn}(client text) RETURNS {_PG_RETURNS} "
            "LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog "
            f"AS $body${_PG_TOPOLOGY_BODY}$body$",
            f"CREATE OR REPLACE FUNCTION {rep}() RETURNS TABLE(server_id text, "
            "session_id text, last_update_timestamp timestamptz, "
            "replica_lag_in_msec double precision, cpu double precision) "
            "LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog "
            f"AS $body${_PG_REPLICA_BODY}$body$",
        ]
    fn = "rds_tools.show_topology"
    if not present:
        return [*out, "DROP SCHEMA IF EXISTS rds_tools CASCADE"]
    stmts = [
        *out,
        "CREATE SCHEMA IF NOT EXISTS rds_tools",
        f"CREATE OR REPLACE FUNCTION {fn}(client text DEFAULT NULL) "
        f"RETURNS {_PG_RETURNS} "
        "LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog "
        f"AS $body${_PG_TOPOLOGY_BODY}$body$",
        f"REVOKE ALL ON FUNCTION {fn}(text) FROM PUBLIC",
    ]
    for name, key in (
        ("rds_tools.dbi_resource_id", "resource_id"),
        ("rds_tools.db_instance_identifier", "instance_id"),
    ):
        stmts += [
            _pg_identity_fn(name, key),
            f"REVOKE ALL ON FUNCTION {name}() FROM PUBLIC",
        ]
    for user in (app, *also):
        if grants:
            stmts += [
                f'GRANT USAGE ON SCHEMA rds_tools TO "{user}"',
                f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO "{user}"',
            ]
        else:
            stmts += [
                f'REVOKE USAGE ON SCHEMA rds_tools FROM "{user}"',
                f'REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools FROM "{user}"',
            ]
    return stmts


def my_ddl(
    flavor: str, mode: str, grants: bool, app: str, also: Sequence[str] = ()
) -> list[tuple[str, Sequence[Any] | None]]:
    """The statements that set the MariaDB surfaces up for ``mode``; the
    grants go to ``app`` and the users in ``also``."""
    out: list[tuple[str, Sequence[Any] | None]] = [
        ("CREATE DATABASE IF NOT EXISTS bgsim", None),
        ("DROP VIEW IF EXISTS mysql.rds_topology", None),
        ("DROP TABLE IF EXISTS mysql.rds_topology", None),
    ]
    if mode == MetadataMode.OK:
        out.append(
            (
                "CREATE TABLE mysql.rds_topology (id BIGINT NOT NULL PRIMARY KEY, "
                "endpoint VARCHAR(255), port INT, role VARCHAR(64), "
                "status VARCHAR(64), version VARCHAR(16)) ENGINE=InnoDB",
                None,
            )
        )
    elif mode == MetadataMode.ERROR:
        out += [
            ("CREATE TABLE IF NOT EXISTS bgsim.gone (id BIGINT)", None),
            (
                "CREATE SQL SECURITY DEFINER VIEW mysql.rds_topology AS SELECT id, "
                "'' AS endpoint, 0 AS port, '' AS role, '' AS status, '' AS version "
                "FROM bgsim.gone",
                None,
            ),
            ("DROP TABLE bgsim.gone", None),
        ]
    if mode != MetadataMode.ABSENT:
        verb = "GRANT SELECT ON mysql.rds_topology TO %s@'%%'"
        if grants:
            out += [(verb, (user,)) for user in (app, *also)]
    if flavor == "aurora":
        out += [
            (
                "CREATE TABLE IF NOT EXISTS bgsim.replica_host_status_data ("
                "server_id VARCHAR(255) NOT NULL PRIMARY KEY, session_id VARCHAR(255), "
                "frozen_at DATETIME(6) NULL) ENGINE=InnoDB",
                None,
            ),
            (
                "CREATE OR REPLACE SQL SECURITY DEFINER "
                "VIEW mysql.replica_host_status AS "
                "SELECT server_id AS SERVER_ID, session_id AS SESSION_ID, "
                "COALESCE(frozen_at, UTC_TIMESTAMP(6)) AS LAST_UPDATE_TIMESTAMP, "
                "0.0 AS REPLICA_LAG_IN_MILLISECONDS, 0.0 AS CPU "
                "FROM bgsim.replica_host_status_data",
                None,
            ),
        ]
        out += [
            ("GRANT SELECT ON mysql.replica_host_status TO %s@'%%'", (user,))
            for user in (app, *also)
        ]
    return out
