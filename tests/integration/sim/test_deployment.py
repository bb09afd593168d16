"""Whole blue/green deployments: names, DNS, replication, switchover helpers."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest

from bluegreen.sim.deployment import KINDS, Deployment
from bluegreen.sim.dns import SimDNS
from bluegreen.sim.servers import Instance

GREEN = re.compile(r"-green-[0-9a-z]{6}$")


@pytest.fixture(scope="module", params=KINDS)
def deployment(request: pytest.FixtureRequest, sim_dns: SimDNS) -> Iterator[Deployment]:
    dep = Deployment.create(request.param, readers=1, dns=sim_dns, seed=7)
    with dep:
        yield dep


def app_connect(dep: Deployment, name: str) -> Any:
    kwargs = dep.connect_kwargs(name)
    if dep.engine == "postgres":
        return psycopg.connect(**kwargs, connect_timeout=5, autocommit=True)
    return pymysql.connect(**kwargs, connect_timeout=5, autocommit=True)


def app_execute(dep: Deployment, name: str, sql: str) -> list[tuple[Any, ...]]:
    conn = app_connect(dep, name)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def make_table(dep: Deployment, table: str) -> None:
    key = "serial" if dep.engine == "postgres" else "int auto_increment"
    dep.execute_ddl(f"CREATE TABLE {table} (id {key} PRIMARY KEY, v varchar(20))")


def count(inst: Instance, table: str) -> int:
    return int(inst.execute_admin(f"SELECT count(*) FROM {table}")[0][0])


def test_names_follow_the_aws_shapes(deployment: Deployment) -> None:
    blue, green = deployment.blue, deployment.green
    domain = deployment.names.domain
    assert re.fullmatch(r"[a-z0-9]{12}\.us-east-1\.rds\.amazonaws\.com", domain)
    for b, g in zip(blue.instances, green.instances, strict=True):
        assert not GREEN.search(b.name)
        assert GREEN.search(g.name) and GREEN.sub("", g.name) == b.name
        assert b.endpoint == b.original_endpoint == f"{b.name}.{domain}"
    if deployment.aurora:
        assert blue.cluster_endpoint == f"mydb.cluster-{domain}"
        assert blue.reader_endpoint == f"mydb.cluster-ro-{domain}"
        assert green.cluster_endpoint is not None and GREEN.search(
            green.cluster_endpoint.split(".")[0]
        )
        assert blue.writer.name == "mydb-instance-1"
    else:
        assert blue.cluster_endpoint is None and blue.reader_endpoint is None
        assert blue.writer.name == "mydb"
        assert blue.readers[0].name == "mydb-replica-1"


def test_every_endpoint_resolves_to_its_instance(deployment: Deployment) -> None:
    endpoints = deployment.endpoints()
    assert len(endpoints) == (8 if deployment.aurora else 4)
    for name, inst in endpoints.items():
        addr = socket.getaddrinfo(name, inst.port, socket.AF_INET)[0][4][0]
        assert addr == inst.host, name
    assert len({i.host for i in deployment.instances}) == 4


def test_writes_on_blue_reach_green_and_all_readers(deployment: Deployment) -> None:
    make_table(deployment, "repl_t")
    writer = deployment.blue.cluster_endpoint or deployment.blue.writer.endpoint
    for i in range(3):
        app_execute(deployment, writer, f"INSERT INTO repl_t (v) VALUES ('row{i}')")
    deployment.wait_for_replication()
    assert {inst.name: count(inst, "repl_t") for inst in deployment.instances} == {
        inst.name: 3 for inst in deployment.instances
    }
    reader = deployment.green.readers[0].endpoint
    assert app_execute(deployment, reader, "SELECT count(*) FROM repl_t")[0][0] == 3


def test_green_and_readers_are_read_only_for_the_app(deployment: Deployment) -> None:
    make_table(deployment, "ro_t")
    deployment.wait_for_replication()
    for inst in (deployment.green.writer, deployment.blue.readers[0]):
        with pytest.raises(Exception, match=r"(?i)read.only"):
            app_execute(deployment, inst.endpoint, "INSERT INTO ro_t (v) VALUES ('x')")


def test_refuse_and_drop_connections(deployment: Deployment) -> None:
    inst = deployment.blue.writer
    conn = app_connect(deployment, inst.endpoint)
    try:
        deployment.refuse_connections(inst, True)
        try:
            with pytest.raises(Exception, match=r"pg_hba\.conf rejects|locked"):
                app_connect(deployment, inst.endpoint)
            assert deployment.drop_connections(inst) >= 1
            with pytest.raises(Exception):  # noqa: B017 - driver specific error classes
                conn.cursor().execute("SELECT 1")
        finally:
            deployment.refuse_connections(inst, False)
    finally:
        conn.close()
    assert app_execute(deployment, inst.endpoint, "SELECT 1")[0][0] == 1


def test_dns_change_is_visible(deployment: Deployment) -> None:
    blue, green = deployment.blue.writer, deployment.green.writer
    deployment.dns.set(blue.endpoint, green.host)
    try:
        assert (
            socket.getaddrinfo(blue.endpoint, 0, socket.AF_INET)[0][4][0] == green.host
        )
    finally:
        deployment.dns.set(blue.endpoint, blue.host)


def test_zz_promote_green_makes_it_writable_and_independent(
    deployment: Deployment,
) -> None:
    make_table(deployment, "promo_t")
    app_execute(
        deployment,
        deployment.blue.writer.endpoint,
        "INSERT INTO promo_t (v) VALUES ('a')",
    )
    deployment.wait_for_replication()
    deployment.stop_writes("blue")
    with pytest.raises(Exception, match=r"(?i)read.only"):
        app_execute(
            deployment,
            deployment.blue.writer.endpoint,
            "INSERT INTO promo_t (v) VALUES ('b')",
        )
    deployment.promote_green()
    green = deployment.green.writer.endpoint
    app_execute(
        deployment, green, "INSERT INTO promo_t (v) VALUES ('c')"
    )  # sequence continues
    assert app_execute(deployment, green, "SELECT count(*) FROM promo_t")[0][0] == 2
    deadline = time.monotonic() + 10
    reader = deployment.green.readers[0]
    while count(reader, "promo_t") != 2:
        assert time.monotonic() < deadline, "green reader does not follow green writer"
        time.sleep(0.05)
    deployment.blue.writer.execute_admin("INSERT INTO promo_t (v) VALUES ('admin')")
    time.sleep(0.3)
    assert count(deployment.green.writer, "promo_t") == 2  # no more blue -> green


def test_stop_removes_processes_files_and_records(
    sim_dns: SimDNS, process_group_members: Callable[[set[int]], list[int]]
) -> None:
    dep = Deployment.create("rds-mysql", readers=0, dns=sim_dns, seed=1)
    dep.start()
    names = list(dep.endpoints())
    assert all(sim_dns.resolve(n) for n in names)
    pgids = {i.pid for i in dep.instances if i.pid is not None}
    base = dep.pool.base_dir
    dep.stop()
    dep.stop()
    assert process_group_members(pgids) == []
    assert not base.exists()
    assert not any(sim_dns.resolve(n) for n in names)
