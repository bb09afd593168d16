"""Scenarios played fast against real deployments, observed as a client."""

import socket

import pymysql
import pytest

from bluegreen.sim import metadata as md
from bluegreen.sim import scenarios
from bluegreen.sim.pytest_plugin import deployment_factory, scenario_player  # noqa: F401

SPEED = 20


def status_rows(inst):
    conn = pymysql.connect(**inst.connect_kwargs(), autocommit=True, connect_timeout=3)
    try:
        cur = conn.cursor()
        cur.execute("SELECT role, status, endpoint FROM mysql.rds_topology")
        return list(cur.fetchall())
    finally:
        conn.close()


def ip(name):
    try:
        return socket.getaddrinfo(name, 3306, proto=socket.IPPROTO_TCP)[0][4][0]
    except socket.gaierror:
        return None


def test_switchover_as_a_client_sees_it(deployment_factory, scenario_player):  # noqa: F811
    dep = deployment_factory("rds-mysql", readers=0)
    dep.execute_ddl("CREATE TABLE t (id INT PRIMARY KEY)")
    dep.blue.writer.execute_admin("INSERT INTO t VALUES (42)")
    blue_name = dep.blue.writer.original_endpoint
    green_name = dep.green.writer.original_endpoint
    blue_ip, green_ip = dep.blue.writer.host, dep.green.writer.host
    sc = scenarios.get("switchover")
    p = scenario_player(dep, sc, speed=SPEED)
    assert p.wait_event("PREPARATION", 10)
    assert {r[1] for r in status_rows(dep.blue.writer)} == {md.SWITCHOVER_INITIATED}
    assert p.wait_event("IN_PROGRESS", 10)
    refused = False
    for _ in range(40):  # the refusal follows the status change within a step
        try:
            status_rows(dep.green.writer)
        except pymysql.OperationalError:
            refused = True
            break
        p.wait(0.02)
    assert refused
    assert p.wait_event("POST", 10)
    assert {r[1] for r in status_rows(dep.green.writer)} == {md.SWITCHOVER_IN_POST_PROCESSING}
    assert ip(blue_name) == blue_ip
    assert p.wait_event("Blue DNS updated", 10)
    assert ip(blue_name) == green_ip
    assert ip(md.old_blue_name(blue_name)) == blue_ip
    # Old blue is read-only; green has blue's data.
    assert dep.green.writer.execute_admin("SELECT id FROM t") == [(42,)]
    assert p.wait_event("COMPLETED", 10)
    rows = status_rows(dep.green.writer)
    assert [r[0] for r in rows] == [md.ROLE_TARGET]
    assert ip(green_name) is None
    assert p.wait(10)
    p.check()
    assert status_rows(dep.green.writer) == []
    conn = pymysql.connect(**dep.blue.writer.connect_kwargs(), autocommit=True)
    with pytest.raises(pymysql.OperationalError):
        conn.cursor().execute("INSERT INTO t VALUES (1)")
    conn.close()
    # Timing against the definition, with room for a loaded machine.
    for name, want in sc.event_offsets().items():
        got = p.event(name)
        assert got is not None, name
        # tolerance in real seconds: 0.75 s (IN_PROGRESS actions take ~0.5 s) + 25 %
        assert abs(got.offset - want) / SPEED <= 0.75 + 0.25 * abs(want) / SPEED, name


@pytest.mark.parametrize("name", ["rollback-preparation", "rollback-in-progress", "stall"])
def test_rollbacks_leave_blue_in_service(name, deployment_factory, scenario_player):  # noqa: F811
    dep = deployment_factory("rds-mysql", readers=0)
    p = scenario_player(dep, name, speed=SPEED)
    assert p.wait(30)
    p.check()
    assert {r[1] for r in status_rows(dep.blue.writer)} == {md.AVAILABLE}
    dep.blue.writer.execute_admin("SELECT 1")
    conn = pymysql.connect(**dep.blue.writer.connect_kwargs(), autocommit=True)
    conn.cursor().execute("CREATE TABLE IF NOT EXISTS r (id INT)")
    conn.close()


@pytest.mark.parametrize(
    "name",
    ["rds-pg-frozen-metadata", "metadata-errors", "dns-never-updates",
     "dns-late", "metadata-late", "unknown-status", "missing-grants"],
)
def test_fault_scenarios_play_to_the_end(name, deployment_factory, scenario_player):  # noqa: F811
    dep = deployment_factory("rds-mysql", readers=0)
    sc = scenarios.get(name)
    p = scenario_player(dep, sc.until(sc.settled_at or sc.end), speed=40)
    assert p.wait(60)
    p.check()
    assert p.event("IN_PROGRESS") is not None
