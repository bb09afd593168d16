"""Dialect detection against real PostgreSQL and MariaDB servers.

The AWS metadata surfaces are emulated in throwaway objects created here and
dropped afterwards: a database with an ``rds_tools`` schema or with Aurora's
``pg_catalog`` functions for PostgreSQL; ``mysql.rds_topology`` and
``mysql.replica_host_status`` (the simulator's stand-in for Aurora's
``information_schema.replica_host_status``) for MariaDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg.pq import TransactionStatus

from bluegreen import dialects
from bluegreen.dialects import Dialect

# A detection that hangs on a lock must fail, not stall the suite.
pytestmark = pytest.mark.timeout(120)

RDS_HOST = "mydb-instance-1.abc123xyz.us-east-1.rds.amazonaws.com"


# --------------------------------------------------------------------------
# PostgreSQL


def _pg_connect(inst: Any, dbname: str | None = None) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=inst.host,
        port=inst.port,
        user=inst.app_user,
        password=inst.app_password,
        dbname=dbname or inst.dbname,
        connect_timeout=5,
    )


def _assert_pg_usable(conn: psycopg.Connection[Any]) -> None:
    assert conn.info.transaction_status == TransactionStatus.IDLE
    row = conn.execute("SELECT 41 + 1").fetchone()
    assert row == (42,)
    conn.rollback()


@pytest.fixture
def scratch_pg_db(pg_instance: Any) -> Iterator[str]:
    """A database of its own, so that emulated AWS objects vanish with it."""
    name = "bg_detect_scratch"
    pg_instance.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_instance.execute_admin(f"CREATE DATABASE {name}")
    yield name
    pg_instance.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_plain_postgres(pg_instance: Any) -> None:
    with _pg_connect(pg_instance) as conn:
        det = dialects.detect(conn, "postgres")
        assert det.dialect is Dialect.POSTGRES
        assert det.metadata_source is None
        assert det.warnings == ()
        assert not det.probe_failed
        assert det.server_version
        _assert_pg_usable(conn)


@pytest.mark.postgres
def test_rds_postgres_missing_grant_then_granted(
    pg_instance: Any, scratch_pg_db: str, emulate_rds_postgres: Any
) -> None:
    emulate_rds_postgres(scratch_pg_db)
    with _pg_connect(pg_instance, scratch_pg_db) as conn:
        det = dialects.detect(conn, "postgres")
        assert det.dialect is Dialect.RDS_POSTGRES
        assert det.metadata_source == "rds_tools.show_topology"
        assert not det.metadata_readable
        user = pg_instance.app_user
        assert det.missing_grant == (
            f"GRANT USAGE ON SCHEMA rds_tools TO {user}; "
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO {user};"
        )
        assert any(det.missing_grant in w for w in det.warnings)
        _assert_pg_usable(conn)

    pg_instance.execute_admin(det.missing_grant, dbname=scratch_pg_db)
    with _pg_connect(pg_instance, scratch_pg_db) as conn:
        det = dialects.detect(conn, "postgres")
        assert det.dialect is Dialect.RDS_POSTGRES
        assert det.metadata_readable and det.missing_grant is None
        assert det.monitorable and det.metadata_readable and det.warnings == ()
        assert det.status_query is not None
        rows = conn.execute(det.status_query, ("bluegreen-test",)).fetchall()
        assert rows[0][3] == "BLUE_GREEN_DEPLOYMENT_SOURCE"
        conn.rollback()


_AURORA = """
SET allow_system_table_mods = on;
CREATE FUNCTION pg_catalog.get_blue_green_fast_switchover_metadata(text)
RETURNS TABLE (version text, endpoint text, port int, role text, status text)
LANGUAGE sql AS $$ SELECT NULL::text, NULL::text, NULL::int, NULL::text, NULL::text
                   WHERE false $$;
CREATE FUNCTION pg_catalog.aurora_replica_status()
RETURNS TABLE (server_id text, session_id text, last_update_timestamp timestamptz)
LANGUAGE sql AS $$
  VALUES ('mydb-instance-1', 'MASTER_SESSION_ID', now()),
         ('mydb-instance-2', 'a1b2', now() - interval '1 hour')
$$;
"""


@pytest.mark.postgres
def test_aurora_postgres(pg_instance: Any, scratch_pg_db: str) -> None:
    # The functions live in the scratch database's pg_catalog only, and go
    # away with it.
    pg_instance.execute_admin(_AURORA, dbname=scratch_pg_db)
    pg_instance.execute_admin(
        f"ALTER DATABASE {scratch_pg_db} SET rds.extensions = 'aurora_stat_utils'"
    )
    with _pg_connect(pg_instance, scratch_pg_db) as conn:
        det = dialects.detect(conn, "postgres")
        assert det.dialect is Dialect.AURORA_POSTGRES
        assert (
            det.metadata_source == "pg_catalog.get_blue_green_fast_switchover_metadata"
        )
        assert det.metadata_readable  # Aurora needs no grant
        assert det.topology_available
        assert det.warnings == ()
        assert det.topology_query is not None
        raw = conn.execute(det.topology_query).fetchall()
        db_now = conn.execute("SELECT now()").fetchone()
        assert db_now is not None
        conn.rollback()
        rows = dialects.filter_topology(dialects.topology_rows(raw), db_now[0])
        assert [(r.server_id, r.is_writer) for r in rows] == [("mydb-instance-1", True)]
        _assert_pg_usable(conn)


@pytest.mark.postgres
def test_postgres_autocommit_connection(pg_instance: Any) -> None:
    with _pg_connect(pg_instance) as conn:
        conn.autocommit = True
        det = dialects.detect(conn, "postgres", forced=Dialect.RDS_POSTGRES)
        assert det.forced and det.dialect is Dialect.RDS_POSTGRES
        assert det.metadata_source is None and det.warnings  # nothing to monitor
        assert conn.info.transaction_status == TransactionStatus.IDLE


# --------------------------------------------------------------------------
# MariaDB (plays MySQL)


def _my_connect(inst: Any, *, admin: bool = False) -> Any:
    return pymysql.connect(
        host=inst.host,
        port=inst.port,
        user=inst.admin_user if admin else inst.app_user,
        password=inst.admin_password if admin else inst.app_password,
        database=inst.dbname,
        connect_timeout=5,
    )


def _assert_mysql_usable(inst: Any, conn: Any) -> None:
    """No snapshot left open: a row committed elsewhere is visible at once."""
    inst.execute_admin("CREATE TABLE IF NOT EXISTS bg_detect_seen (n INT)")
    try:
        inst.execute_admin("INSERT INTO bg_detect_seen VALUES (7)")
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM bg_detect_seen WHERE n = 7")
        seen = cur.fetchone()
        cur.close()
    finally:
        conn.rollback()  # release the metadata lock before dropping
        inst.execute_admin("DROP TABLE IF EXISTS bg_detect_seen")
    assert seen == (1,)


@pytest.mark.mariadb
def test_plain_mariadb(mariadb_instance: Any) -> None:
    for admin in (False, True):
        conn = _my_connect(mariadb_instance, admin=admin)
        try:
            det = dialects.detect(conn, "mysql", host=RDS_HOST if admin else None)
            assert det.dialect is Dialect.MYSQL
            assert det.metadata_source is None
            assert det.warnings == ()  # the admin sees that the table is absent
            _assert_mysql_usable(mariadb_instance, conn)
        finally:
            conn.close()


@pytest.mark.mariadb
@pytest.mark.usefixtures("rds_topology")
def test_rds_mysql_missing_grant_then_granted(mariadb_instance: Any) -> None:
    conn = _my_connect(mariadb_instance)
    try:
        # Without RDS evidence a hidden table cannot be told from a missing one.
        quiet = dialects.detect(conn, "mysql")
        assert quiet.dialect is Dialect.MYSQL and quiet.warnings == ()

        det = dialects.detect(conn, "mysql", host=RDS_HOST)
        assert det.dialect is Dialect.RDS_MYSQL
        assert det.metadata_source == "mysql.rds_topology"
        assert not det.metadata_readable
        user = mariadb_instance.app_user
        assert (
            det.missing_grant == f"GRANT SELECT ON mysql.rds_topology TO '{user}'@'%';"
        )
        assert any(det.missing_grant in w for w in det.warnings)
        _assert_mysql_usable(mariadb_instance, conn)
    finally:
        conn.close()

    mariadb_instance.execute_admin(det.missing_grant)
    try:
        conn = _my_connect(mariadb_instance)
        try:
            det = dialects.detect(conn, "mysql")  # readable: no evidence needed
            assert det.dialect is Dialect.RDS_MYSQL
            assert det.metadata_readable and det.missing_grant is None
            assert det.monitorable and det.metadata_readable and det.warnings == ()
            assert det.status_query is not None
            cur = conn.cursor()
            cur.execute(det.status_query)
            assert cur.fetchall() == (
                (1, "1.0", RDS_HOST, 3306, "BLUE_GREEN_DEPLOYMENT_SOURCE", "AVAILABLE"),
            )
            cur.close()
            conn.rollback()
        finally:
            conn.close()
    finally:
        mariadb_instance.execute_admin(
            f"REVOKE SELECT ON mysql.rds_topology FROM '{user}'@'%'"
        )


@pytest.mark.mariadb
@pytest.mark.usefixtures("rds_topology")
def test_aurora_mysql_simulated_topology(mariadb_instance: Any) -> None:
    mariadb_instance.execute_admin(
        "CREATE TABLE mysql.replica_host_status (server_id VARCHAR(100),"
        " session_id VARCHAR(100), last_update_timestamp DATETIME)"
    )
    try:
        mariadb_instance.execute_admin(
            "INSERT INTO mysql.replica_host_status VALUES"
            " ('mydb-instance-1', 'MASTER_SESSION_ID', UTC_TIMESTAMP()),"
            " ('mydb-instance-2', 'x1', UTC_TIMESTAMP())"
        )
        conn = _my_connect(mariadb_instance, admin=True)
        try:
            det = dialects.detect(conn, "mysql")
            assert det.dialect is Dialect.AURORA_MYSQL
            assert det.topology_source == "mysql.replica_host_status"
            assert det.topology_available and det.metadata_readable
            assert det.warnings == ()
            cur = conn.cursor()
            assert det.topology_query is not None
            cur.execute(det.topology_query)
            rows = dialects.topology_rows(cur.fetchall())
            cur.execute("SELECT UTC_TIMESTAMP()")
            (now,) = cur.fetchone()
            cur.close()
            conn.rollback()
            kept = dialects.filter_topology(rows, now)
            assert [(r.server_id, r.is_writer) for r in kept] == [
                ("mydb-instance-1", True),
                ("mydb-instance-2", False),
            ]
        finally:
            conn.close()
    finally:
        mariadb_instance.execute_admin("DROP TABLE IF EXISTS mysql.replica_host_status")
