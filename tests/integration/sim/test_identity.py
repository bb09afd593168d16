"""How each simulated instance names itself, as RDS and Aurora let a client ask.

Next to the blue/green metadata, drivers that follow the cluster topology
(the AWS Advanced wrappers, for one) ask an instance who it is and whether
it is the writer.  The queries below have the shapes those drivers send; each
runs as the app user over TCP on every instance of a real deployment (writer,
reader or standby, blue and green) and must answer for that instance: its
instance id (renamed by the switchover), its DBI resource id or server id
(never renamed), and its row in the status metadata.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from simclient import ClientView

from bluegreen.sim import metadata as md
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.pytest_plugin import deployment_factory  # noqa: F401
from bluegreen.sim.scenario import initial_rows
from bluegreen.sim.servers import Instance

AURORA_PG_SELF = (
    "SELECT pg_catalog.aurora_db_instance_identifier(), "
    "pg_catalog.aurora_db_instance_identifier()"
)
AURORA_PG_WRITER = (
    "SELECT SERVER_ID FROM pg_catalog.aurora_replica_status() "
    "WHERE SESSION_ID OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID' "
    "AND SERVER_ID OPERATOR(pg_catalog.=) pg_catalog.aurora_db_instance_identifier()"
)
AURORA_PG_TOPOLOGY = (
    "SELECT SERVER_ID, CASE WHEN SESSION_ID OPERATOR(pg_catalog.=) "
    "'MASTER_SESSION_ID' THEN TRUE ELSE FALSE END, CPU, "
    "COALESCE(REPLICA_LAG_IN_MSEC, 0), LAST_UPDATE_TIMESTAMP "
    "FROM pg_catalog.aurora_replica_status() "
    "WHERE EXTRACT(EPOCH FROM(pg_catalog.NOW() OPERATOR(pg_catalog.-) "
    "LAST_UPDATE_TIMESTAMP)) OPERATOR(pg_catalog.<=) 300 "
    "OR SESSION_ID OPERATOR(pg_catalog.=) 'MASTER_SESSION_ID' "
    "OR LAST_UPDATE_TIMESTAMP IS NULL"
)
RDS_PG_SELF = (
    "SELECT id, SUBSTRING(endpoint FROM 0 FOR POSITION('.' IN endpoint)) "
    "FROM rds_tools.show_topology() "
    "WHERE id OPERATOR(pg_catalog.=) rds_tools.dbi_resource_id()"
)
MYSQL_SELF = (
    "SELECT id, SUBSTRING_INDEX(endpoint, '.', 1) FROM mysql.rds_topology "
    "WHERE id = @@server_id"
)
METADATA = {
    "aurora-postgres": "pg_catalog.get_blue_green_fast_switchover_metadata('t')",
    "rds-postgres": "rds_tools.show_topology('t')",
    "aurora-mysql": "mysql.rds_topology",
    "rds-mysql": "mysql.rds_topology",
}
COLUMNS = ["id", "endpoint", "port", "role", "status", "version"]
RESOURCE_ID = re.compile(r"^db-[A-Z0-9]{26}$")


def columns_and_rows(
    view: ClientView, inst: Instance, sql: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    conn = view.connect(inst)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        names = [str(d[0]).lower() for d in cur.description]
        return names, [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def row_id(dep: Deployment, inst: Instance) -> int | str:
    return inst.server_id if dep.engine == "mariadb" else inst.resource_id


@pytest.mark.parametrize("kind", list(METADATA))
def test_status_rows_name_their_instance(
    kind: str,
    deployment_factory: Any,  # noqa: F811
) -> None:
    """``id`` names the instance of each row: MySQL's ``@@server_id``, the
    PostgreSQL DBI resource id; the columns are those of ``mysql.rds_topology``
    on every kind."""
    dep = deployment_factory(kind, readers=1)
    view = ClientView(dep)
    dep.metadata.set_rows(initial_rows(dep, md.AVAILABLE))
    want = {inst.endpoint: row_id(dep, inst) for inst in dep.instances}
    for inst in dep.instances:
        names, rows = columns_and_rows(view, inst, f"SELECT * FROM {METADATA[kind]}")
        assert names == COLUMNS
        assert {r[1]: r[0] for r in rows} == want
        # Blue rows first, then green, in instance order.
        assert [r[1] for r in rows] == list(want)


@pytest.mark.parametrize("kind", ["rds-mysql", "aurora-mysql"])
def test_mysql_instance_finds_its_own_row(
    kind: str,
    deployment_factory: Any,  # noqa: F811
) -> None:
    dep = deployment_factory(kind, readers=1)
    view = ClientView(dep)
    assert view.query(dep.blue.writer, MYSQL_SELF) == []  # no deployment yet
    dep.metadata.set_rows(initial_rows(dep, md.AVAILABLE))
    for inst in dep.instances:
        assert view.query(inst, MYSQL_SELF) == [(inst.server_id, inst.name)]
    if dep.aurora:
        # What MariaDB cannot offer: Aurora MySQL's own server id variable.
        with pytest.raises(view.errors, match="aurora_server_id"):
            view.query(dep.blue.writer, "SELECT @@aurora_server_id")


def test_rds_postgres_instance_identity(
    deployment_factory: Any,  # noqa: F811
) -> None:
    dep = deployment_factory("rds-postgres", readers=1)
    view = ClientView(dep)
    ids = set()
    for inst in dep.instances:  # writers and hot standbys
        [(resource_id, name)] = view.query(
            inst,
            "SELECT rds_tools.dbi_resource_id(), rds_tools.db_instance_identifier()",
        )
        assert RESOURCE_ID.match(resource_id), resource_id
        assert (resource_id, name) == (inst.resource_id, inst.name)
        ids.add(resource_id)
        assert view.query(inst, RDS_PG_SELF) == []  # no deployment yet
    assert len(ids) == len(dep.instances)

    dep.metadata.set_rows(initial_rows(dep, md.AVAILABLE))
    for inst in dep.instances:
        assert view.query(inst, RDS_PG_SELF) == [(inst.resource_id, inst.name)]

    # The renames change the instance id, not the resource id; a frozen
    # instance keeps its old rows but is renamed all the same.
    blue, green = dep.blue.writer, dep.green.writer
    dep.metadata.freeze([blue])
    dep.metadata.rename()
    assert dep.metadata.instance_id(green) == blue.name
    for inst, name in ((blue, f"{blue.name}-old1"), (green, blue.name)):
        assert view.query(
            inst,
            "SELECT rds_tools.dbi_resource_id(), rds_tools.db_instance_identifier()",
        ) == [(inst.resource_id, name)]
    assert view.query(green, RDS_PG_SELF) == [(green.resource_id, blue.name)]
    assert view.query(blue, RDS_PG_SELF) == [(blue.resource_id, blue.name)]

    # Like the metadata, the identity functions need the rds_tools grants.
    dep.metadata.set_grants(False)
    with pytest.raises(view.errors):
        view.query(blue, "SELECT rds_tools.dbi_resource_id()")


def test_aurora_postgres_instance_identity(
    deployment_factory: Any,  # noqa: F811
) -> None:
    dep = deployment_factory("aurora-postgres", readers=1)
    view = ClientView(dep)
    for env in (dep.blue, dep.green):
        for inst in env.instances:
            assert view.query(inst, AURORA_PG_SELF) == [(inst.name, inst.name)]
            writer = view.query(inst, AURORA_PG_WRITER)
            assert writer == ([(inst.name,)] if inst is env.writer else [])
            topology = view.query(inst, AURORA_PG_TOPOLOGY)
            assert sorted((r[0], r[1]) for r in topology) == sorted(
                (i.name, i is env.writer) for i in env.instances
            )

    # Green's instances take the blue ids; the old blue ones get -old1.
    dep.metadata.rename()
    blue, green = dep.blue.writer, dep.green.writer
    assert view.query(green, AURORA_PG_SELF) == [(blue.name, blue.name)]
    assert view.query(green, AURORA_PG_WRITER) == [(blue.name,)]
    old = f"{blue.name}-old1"
    assert view.query(blue, AURORA_PG_SELF) == [(old, old)]
    assert view.query(blue, AURORA_PG_WRITER) == [(old,)]
    assert view.query(dep.green.readers[0], AURORA_PG_WRITER) == []

    # An Aurora built-in: there before the blue/green metadata is.
    dep.metadata.set_mode(dep.instances, md.MetadataMode.ABSENT)
    assert view.query(green, AURORA_PG_SELF) == [(blue.name, blue.name)]
