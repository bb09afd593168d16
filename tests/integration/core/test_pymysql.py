"""The Connection/Cursor proxies over PyMySQL against a real MariaDB."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors
import pytest

import bluegreen
from bluegreen.cursor import Cursor

pytestmark = pytest.mark.mariadb


def _kw(inst: Any, **extra: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(
        host=inst.host,
        port=inst.port,
        user=inst.app_user,
        password=inst.app_password,
        database=inst.dbname,
        connect_timeout=5,
    )
    kw.update(extra)
    return kw


@pytest.fixture
def conn(mariadb_instance: Any) -> Iterator[Any]:
    c = bluegreen.connect(pymysql.connect, plugins="", **_kw(mariadb_instance))
    yield c
    c.close()


@pytest.fixture
def table(mariadb_instance: Any) -> Iterator[str]:
    name = "bg_core_pymysql"
    raw = pymysql.connect(**_kw(mariadb_instance), autocommit=True)
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(
            f"CREATE TABLE {name} (id INT PRIMARY KEY, label TEXT) ENGINE=InnoDB"
        )
    yield name
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
    raw.close()


def _count(inst: Any, table: str) -> int:
    raw = pymysql.connect(**_kw(inst))
    try:
        with raw.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        raw.close()


@pytest.mark.parametrize(
    "target", [pymysql.connect, pymysql.Connect, pymysql.connections.Connection]
)
def test_connect_targets(mariadb_instance: Any, target: Any) -> None:
    c = bluegreen.connect(target, plugins="", **_kw(mariadb_instance))
    try:
        assert isinstance(c.driver_connection, pymysql.connections.Connection)
        assert c.open is True
        c.ping()
    finally:
        c.close()
    assert c.open is False


def test_conninfo_is_refused(mariadb_instance: Any) -> None:
    with pytest.raises(bluegreen.ProgrammingError, match="connection string"):
        bluegreen.connect(pymysql.connect, "host=x", plugins="")


def test_results_identical_to_raw(mariadb_instance: Any, conn: Any) -> None:
    query = "SELECT seq, seq * 2, CONCAT('x', seq) FROM seq_1_to_20"
    raw = pymysql.connect(**_kw(mariadb_instance))
    try:
        with raw.cursor() as rcur:
            raw_rc = rcur.execute(query)
            expected = rcur.fetchall()
            expected_desc = rcur.description
    finally:
        raw.close()
    cur = conn.cursor()
    assert isinstance(cur, Cursor)
    assert cur.execute(query) == raw_rc == 20
    assert cur.description == expected_desc
    assert cur.rowcount == 20
    assert cur.fetchone() == expected[0]
    assert cur.fetchmany(3) == expected[1:4]
    assert cur.rownumber == 4
    assert cur.fetchall() == expected[4:]
    cur.execute(query)
    assert tuple(cur) == expected


def test_dict_cursor(conn: Any) -> None:
    cur = conn.cursor(pymysql.cursors.DictCursor)
    assert isinstance(cur.driver_cursor, pymysql.cursors.DictCursor)
    cur.execute("SELECT 1 AS a, 'b' AS b")
    assert cur.fetchone() == {"a": 1, "b": "b"}


def test_error_pass_through(conn: Any) -> None:
    cur = conn.cursor()
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        cur.execute("SELECT * FROM no_such_table_here")
    assert type(info.value) is pymysql.err.ProgrammingError
    assert info.value.args[0] == 1146
    assert not isinstance(info.value, bluegreen.Error)


def test_commit_rollback(mariadb_instance: Any, conn: Any, table: str) -> None:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
    assert conn.driver_adapter.in_transaction(conn.driver_connection)
    conn.rollback()
    assert _count(mariadb_instance, table) == 0
    cur.executemany(
        f"INSERT INTO {table} VALUES (%s, %s)", [(i, str(i)) for i in range(5)]
    )
    conn.commit()
    assert _count(mariadb_instance, table) == 5
    assert cur.lastrowid is not None


def test_autocommit(mariadb_instance: Any, conn: Any, table: str) -> None:
    assert conn.get_autocommit() is False
    conn.autocommit = True
    assert conn.get_autocommit() is True
    conn.cursor().execute(f"INSERT INTO {table} VALUES (7, 'auto')")
    assert _count(mariadb_instance, table) == 1
    conn.autocommit(False)  # PyMySQL's own method form keeps working
    assert conn.get_autocommit() is False


def test_with_connection_same_as_raw(mariadb_instance: Any) -> None:
    with bluegreen.connect(pymysql.connect, plugins="", **_kw(mariadb_instance)) as c:
        assert isinstance(c, bluegreen.Connection)
        c.cursor().execute("SELECT 1")
    assert c.open is False


def test_sqlalchemy_round_trip(mariadb_instance: Any) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        "mysql+pymysql://",
        creator=lambda: bluegreen.connect(
            pymysql.connect, plugins="", **_kw(mariadb_instance)
        ),
    )
    try:
        with engine.begin() as sa:
            assert sa.execute(sqlalchemy.text("SELECT :x + 1"), {"x": 1}).scalar() == 2
    finally:
        engine.dispose()


def test_secret_masked(mariadb_instance: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bluegreen")
    secret = mariadb_instance.app_password
    c = bluegreen.connect(pymysql.connect, plugins="", **_kw(mariadb_instance))
    try:
        assert secret not in repr(c)
        assert secret not in repr(c.wrapper_config)
    finally:
        c.close()
    assert secret not in caplog.text


def test_ip_substitution_keeps_host_name(mariadb_instance: Any) -> None:
    from bluegreen.pipeline import ConnectContext
    from bluegreen.settings import parse_config

    adapter = bluegreen.drivers.adapter_for(pymysql.connect)
    kw = _kw(mariadb_instance, host="blue-name.invalid")
    ctx = ConnectContext(parse_config(adapter, None, {"plugins": "", **kw}))
    assert ctx.host == "blue-name.invalid"
    assert ctx.port == mariadb_instance.port
    raw = ctx.connect(ip=mariadb_instance.host)
    try:
        assert raw.host == "blue-name.invalid"
        with raw.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        raw.close()
