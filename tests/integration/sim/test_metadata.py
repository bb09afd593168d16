"""The metadata surfaces as the non-admin app user sees them (facts sheet 2/3)."""

import psycopg
import pymysql
import pytest

from bluegreen.sim import metadata as md
from bluegreen.sim.pytest_plugin import deployment_factory  # noqa: F401
from bluegreen.sim.scenario import initial_rows

QUERIES = {
    "aurora-postgres": "SELECT version, endpoint, port, role, status FROM "
    "pg_catalog.get_blue_green_fast_switchover_metadata('bluegreen-test')",
    "rds-postgres": "SELECT version, endpoint, port, role, status FROM "
    "rds_tools.show_topology('bluegreen-test')",
    "aurora-mysql": "SELECT version, endpoint, port, role, status "
    "FROM mysql.rds_topology",
    "rds-mysql": "SELECT version, endpoint, port, role, status FROM mysql.rds_topology",
}


def app_query(dep, inst, sql):
    kw = inst.connect_kwargs()
    if dep.engine == "postgres":
        with psycopg.connect(**kw, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql).fetchall()
    conn = pymysql.connect(**kw, autocommit=True, connect_timeout=5)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize("kind", list(QUERIES))
def test_surfaces_seen_by_the_app_user(kind, deployment_factory):  # noqa: F811
    dep = deployment_factory(kind, readers=1)
    meta = dep.metadata
    # Installed but not provisioned: no rows (NOT_CREATED).
    assert app_query(dep, dep.blue.writer, QUERIES[kind]) == []
    meta.set_rows(initial_rows(dep, md.AVAILABLE))
    for inst in dep.instances:
        rows = app_query(dep, inst, QUERIES[kind])
        roles = sorted(r[3] for r in rows)
        assert roles == [md.ROLE_SOURCE] * 2 + [md.ROLE_TARGET] * 2
        assert {r[4] for r in rows} == {md.AVAILABLE}
        assert {r[0] for r in rows} == {"1.0"}
        assert any("-green-" in r[1] for r in rows)
    # Per instance: freeze blue, move on elsewhere.
    meta.freeze(dep.blue.instances)
    meta.set_status(md.SWITCHOVER_INITIATED)
    assert {r[4] for r in app_query(dep, dep.blue.writer, QUERIES[kind])} == {
        md.AVAILABLE
    }
    assert {r[4] for r in app_query(dep, dep.green.writer, QUERIES[kind])} == {
        md.SWITCHOVER_INITIATED
    }
    if dep.engine == "postgres":
        ext = app_query(
            dep,
            dep.blue.reader if hasattr(dep.blue, "reader") else dep.blue.readers[0],
            "SELECT setting FROM pg_settings WHERE name = 'rds.extensions'",
        )
        want = "aurora_stat_utils" if dep.aurora else "rds_tools"
        assert want in ext[0][0]
        if not dep.aurora:
            assert "aurora_stat_utils" not in ext[0][0]
    if dep.aurora:
        sql = (
            "SELECT server_id, session_id = 'MASTER_SESSION_ID' "
            "FROM aurora_replica_status()"
            if dep.engine == "postgres"
            else "SELECT SERVER_ID, SESSION_ID = 'MASTER_SESSION_ID' "
            "FROM mysql.replica_host_status"
        )
        rows = app_query(dep, dep.green.writer, sql)
        assert sorted(bool(r[1]) for r in rows) == [False, True]
        assert all("-green-" in r[0] for r in rows)
    # Errors on one instance only.
    meta.set_mode([dep.green.writer], md.MetadataMode.ERROR)
    with pytest.raises(Exception):  # noqa: B017 - driver-specific error class
        app_query(dep, dep.green.writer, QUERIES[kind])
    assert app_query(dep, dep.blue.writer, QUERIES[kind])
    meta.set_mode([dep.green.writer], md.MetadataMode.OK)
    assert app_query(dep, dep.green.writer, QUERIES[kind])


@pytest.mark.parametrize("kind", ["rds-postgres", "rds-mysql"])
def test_missing_grants_hide_or_deny(kind, deployment_factory):  # noqa: F811
    dep = deployment_factory(kind, readers=0)
    dep.metadata.set_rows(initial_rows(dep, md.AVAILABLE))
    assert app_query(dep, dep.blue.writer, QUERIES[kind])
    dep.metadata.set_grants(False)
    with pytest.raises(Exception):  # noqa: B017
        app_query(dep, dep.blue.writer, QUERIES[kind])
    dep.metadata.set_grants(True)
    assert app_query(dep, dep.blue.writer, QUERIES[kind])


def test_absent_surface_fails_the_existence_check(deployment_factory):  # noqa: F811
    dep = deployment_factory("rds-mysql", readers=0)
    check = (
        "SELECT 1 AS tmp FROM information_schema.tables "
        "WHERE table_schema = 'mysql' AND table_name = 'rds_topology'"
    )
    assert app_query(dep, dep.blue.writer, check)
    dep.metadata.set_mode([dep.blue.writer], md.MetadataMode.ABSENT)
    assert app_query(dep, dep.blue.writer, check) == []
