"""Simulated servers: real PostgreSQL / MariaDB on loopback addresses."""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import socket
import warnings
from collections.abc import Callable

import psycopg
import pymysql
import pytest

from bluegreen.sim.servers import Instance, ServerPool


def pg_app(inst: Instance, **extra: object) -> psycopg.Connection[tuple[object, ...]]:
    kwargs: dict[str, object] = {"connect_timeout": 5, **extra}
    return psycopg.connect(
        host=inst.host,
        port=inst.port,
        user=inst.app_user,
        password=inst.app_password,
        dbname=inst.dbname,
        **kwargs,  # type: ignore[arg-type]
    )


def maria_app(inst: Instance) -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=inst.host,
        port=inst.port,
        user=inst.app_user,
        password=inst.app_password,
        database=inst.dbname,
        connect_timeout=5,
        autocommit=True,
    )


@pytest.mark.postgres
def test_pg_instance_app_user_is_plain_owner_of_its_database(
    pg_instance: Instance,
) -> None:
    assert ipaddress.IPv4Address(pg_instance.host) in ipaddress.IPv4Network(
        "127.0.1.0/24"
    )
    assert pg_instance.port == 5432
    with pg_app(pg_instance) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (pg_instance.app_user, False)
        conn.execute("CREATE TABLE IF NOT EXISTS servers_t (x int)")
        conn.execute("INSERT INTO servers_t VALUES (1)")
    assert pg_instance.execute_admin(
        "SELECT rolsuper FROM pg_roles WHERE rolname = %s", [pg_instance.admin_user]
    ) == [(True,)]


@pytest.mark.postgres
def test_pg_wrong_password_is_rejected(pg_instance: Instance) -> None:
    with pytest.raises(
        psycopg.OperationalError, match="password authentication failed"
    ):
        psycopg.connect(
            host=pg_instance.host,
            port=pg_instance.port,
            user=pg_instance.app_user,
            password="wrong",
            dbname=pg_instance.dbname,
            connect_timeout=5,
        )


@pytest.mark.mariadb
def test_mariadb_instance_app_user_has_its_database_only(
    mariadb_instance: Instance,
) -> None:
    assert ipaddress.IPv4Address(mariadb_instance.host) in ipaddress.IPv4Network(
        "127.0.1.0/24"
    )
    assert mariadb_instance.port == 3306
    conn = maria_app(mariadb_instance)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS servers_t (x int)")
        cur.execute("INSERT INTO servers_t VALUES (1)")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("SET GLOBAL read_only = 1")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("CREATE DATABASE other")
    finally:
        conn.close()
    variables = dict(mariadb_instance.execute_admin("SHOW VARIABLES LIKE 'log_bin'"))
    assert variables["log_bin"] == "ON"


@pytest.mark.postgres
def test_pg_refuse_and_drop_connections(pg_instance: Instance) -> None:
    conn = pg_app(pg_instance, autocommit=True)
    try:
        pg_instance.refuse_connections(True)
        try:
            with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects"):
                pg_app(pg_instance)
            assert conn.execute("SELECT 1").fetchone() == (1,)  # open sessions live on
            pid = conn.info.backend_pid
            assert pg_instance.drop_connections() >= 1
            # Returned once the backend is gone, not just signalled.
            gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
            assert pg_instance.execute_admin(gone, [pid]) == [(0,)]
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
            assert pg_instance.execute_admin("SELECT 1") == [(1,)]  # admin unaffected
        finally:
            pg_instance.refuse_connections(False)
    finally:
        conn.close()
    with pg_app(pg_instance) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.mariadb
def test_mariadb_refuse_and_drop_connections(mariadb_instance: Instance) -> None:
    conn = maria_app(mariadb_instance)
    try:
        mariadb_instance.refuse_connections(True)
        try:
            with pytest.raises(pymysql.err.OperationalError, match="locked"):
                maria_app(mariadb_instance)
            assert mariadb_instance.drop_connections() >= 1
            with pytest.raises(
                (pymysql.err.OperationalError, pymysql.err.InterfaceError)
            ):
                conn.cursor().execute("SELECT 1")
        finally:
            mariadb_instance.refuse_connections(False)
    finally:
        conn.close()
    again = maria_app(mariadb_instance)
    again.close()


@pytest.mark.postgres
def test_pause_makes_the_server_unreachable_until_resumed(
    pg_instance: Instance,
) -> None:
    pg_instance.pause()
    try:
        assert pg_instance.paused
        with pytest.raises(psycopg.OperationalError):
            pg_app(pg_instance, connect_timeout=1)
    finally:
        pg_instance.resume()
    with pg_app(pg_instance) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_addresses_skip_bound_ports_and_never_use_127_0_0(
    server_pool: ServerPool,
) -> None:
    with ServerPool() as pool:
        first = pool.allocate_address(5432)
        following = str(ipaddress.IPv4Address(first) + 1)
        with socket.socket() as blocker:
            # SO_REUSEADDR: a TIME_WAIT left by an earlier server is no listener.
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind((following, 5432))
            blocker.listen()
            second = pool.allocate_address(5432)
        assert second not in (first, following)
        assert not second.startswith("127.0.0.")


def test_pool_stop_leaves_no_processes_and_no_files(
    process_group_members: Callable[[set[int]], list[int]],
) -> None:
    pool = ServerPool()
    pg = pool.create("postgres", "teardown-pg")
    my = pool.create("mariadb", "teardown-my")
    pool.start_all()
    pgids = {pid for pid in (pg.pid, my.pid) if pid is not None}
    assert len(pgids) == 2
    assert process_group_members(pgids)
    pg.kill()  # a crashed server must not break teardown
    assert not pg.is_running()
    pool.stop()
    pool.stop()  # idempotent
    assert not my.is_running()
    assert process_group_members(pgids) == []
    assert not pool.base_dir.exists()


def test_restart_keeps_data(server_pool: ServerPool) -> None:
    inst = server_pool.create("postgres", "restart-pg")
    inst.start()
    inst.execute_admin("CREATE TABLE keep (x int)")
    inst.execute_admin("INSERT INTO keep VALUES (42)")
    inst.stop()
    inst.stop()
    assert not inst.is_running()
    inst.start()
    assert inst.execute_admin("SELECT x FROM keep") == [(42,)]
    inst.stop()


@pytest.mark.parametrize("listening", [False, True], ids=["no-socket", "refused"])
def test_mariadb_connect_while_starting_leaks_no_socket(
    server_pool: ServerPool, listening: bool
) -> None:
    """Regression: PyMySQL left its unix socket open when ``connect()`` failed,
    so polling a starting server leaked one socket per attempt (found later by
    the garbage collector as ``unclosed <socket.socket family=1>``)."""
    inst = server_pool.create("mariadb", f"not-started-{listening}")
    inst.socket_dir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        if listening:  # the socket file exists, but nothing accepts yet
            bound = stack.enter_context(socket.socket(socket.AF_UNIX))
            bound.bind(str(inst.socket_path))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(20):
                with pytest.raises(pymysql.err.OperationalError):
                    inst.admin_connect()
            assert not inst._ready()
            gc.collect()
    assert [str(w.message) for w in caught] == []
