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


@pytest.fixture
def conn(pymysql_kw: Any) -> Iterator[Any]:
    c = bluegreen.connect(pymysql.connect, plugins="", **pymysql_kw())
    yield c
    c.close()


@pytest.fixture
def table(pymysql_kw: Any) -> Iterator[str]:
    name = "bg_core_pymysql"
    raw = pymysql.connect(**pymysql_kw(), autocommit=True)
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(
            f"CREATE TABLE {name} (id INT PRIMARY KEY, label TEXT) ENGINE=InnoDB"
        )
    yield name
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
    raw.close()


def _count(kw: dict[str, Any], table: str) -> int:
    raw = pymysql.connect(**kw)
    try:
        with raw.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        raw.close()


@pytest.mark.parametrize(
    "target", [pymysql.connect, pymysql.Connect, pymysql.connections.Connection]
)
def test_connect_targets(pymysql_kw: Any, target: Any) -> None:
    c = bluegreen.connect(target, plugins="", **pymysql_kw())
    try:
        assert isinstance(c.driver_connection, pymysql.connections.Connection)
        assert c.open is True
        c.ping()
    finally:
        c.close()
    assert c.open is False


def test_conninfo_is_refused() -> None:
    with pytest.raises(bluegreen.ProgrammingError, match="connection string"):
        bluegreen.connect(pymysql.connect, "host=x", plugins="")


def test_results_identical_to_raw(pymysql_kw: Any, conn: Any) -> None:
    query = "SELECT seq, seq * 2, CONCAT('x', seq) FROM seq_1_to_20"
    raw = pymysql.connect(**pymysql_kw())
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


def test_commit_rollback(pymysql_kw: Any, conn: Any, table: str) -> None:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
    assert conn.driver_adapter.in_transaction(conn.driver_connection)
    conn.rollback()
    assert _count(pymysql_kw(), table) == 0
    cur.executemany(
        f"INSERT INTO {table} VALUES (%s, %s)", [(i, str(i)) for i in range(5)]
    )
    conn.commit()
    assert _count(pymysql_kw(), table) == 5
    assert cur.lastrowid is not None


def test_autocommit(pymysql_kw: Any, conn: Any, table: str) -> None:
    assert conn.get_autocommit() is False
    conn.autocommit = True
    assert conn.get_autocommit() is True
    conn.cursor().execute(f"INSERT INTO {table} VALUES (7, 'auto')")
    assert _count(pymysql_kw(), table) == 1
    conn.autocommit(False)  # PyMySQL's own method form keeps working
    assert conn.get_autocommit() is False


def test_with_connection_same_as_raw(pymysql_kw: Any) -> None:
    with bluegreen.connect(pymysql.connect, plugins="", **pymysql_kw()) as c:
        assert isinstance(c, bluegreen.Connection)
        c.cursor().execute("SELECT 1")
    assert c.open is False


def test_sqlalchemy_round_trip(pymysql_kw: Any) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        "mysql+pymysql://",
        creator=lambda: bluegreen.connect(pymysql.connect, plugins="", **pymysql_kw()),
    )
    try:
        with engine.begin() as sa:
            assert sa.execute(sqlalchemy.text("SELECT :x + 1"), {"x": 1}).scalar() == 2
    finally:
        engine.dispose()


def test_secret_masked(
    pymysql_kw: Any, mariadb_instance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bluegreen")
    secret = mariadb_instance.app_password
    c = bluegreen.connect(pymysql.connect, plugins="", **pymysql_kw())
    try:
        assert secret not in repr(c)
        assert secret not in repr(c.wrapper_config)
    finally:
        c.close()
    assert secret not in caplog.text


def test_ip_substitution_keeps_host_name(
    pymysql_kw: Any, mariadb_instance: Any
) -> None:
    from bluegreen.pipeline import ConnectContext
    from bluegreen.settings import parse_config

    adapter = bluegreen.drivers.adapter_for(pymysql.connect)
    kw = pymysql_kw(host="blue-name.invalid")
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
