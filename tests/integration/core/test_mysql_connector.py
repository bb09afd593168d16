"""The Connection/Cursor proxies over mysql-connector-python against MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mysql.connector
import mysql.connector.errors
import pytest

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.cursor import Cursor

pytestmark = pytest.mark.mariadb


@pytest.fixture(params=[True, False], ids=["pure", "cext"])
def use_pure(request: pytest.FixtureRequest) -> bool:
    # The dev dependencies pin a mysql-connector whose C extension loads on
    # the supported platform: a missing one is a set-up error, not a skip.
    if not request.param:
        assert mysql.connector.HAVE_CEXT, "mysql-connector's C extension is missing"
    return bool(request.param)


@pytest.fixture
def conn(myc_kw: Any, use_pure: bool) -> Iterator[Any]:
    c = bluegreen.connect(
        mysql.connector.connect, plugins="", use_pure=use_pure, **myc_kw()
    )
    yield c
    c.close()


@pytest.fixture
def table(myc_kw: Any) -> Iterator[str]:
    name = "bg_core_myconn"
    raw = mysql.connector.connect(**myc_kw(), autocommit=True)
    cur = raw.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, label TEXT) ENGINE=InnoDB")
    yield name
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    raw.close()


def _count(kw: dict[str, Any], table: str) -> int:
    raw = mysql.connector.connect(**kw)
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cur.fetchone()[0])
    finally:
        raw.close()


def test_results_identical_to_raw(myc_kw: Any, conn: Any) -> None:
    query = "SELECT seq, seq * 2, CONCAT('x', seq) FROM seq_1_to_20"
    raw = mysql.connector.connect(**myc_kw())
    try:
        rcur = raw.cursor()
        raw_result = rcur.execute(query)
        expected = rcur.fetchall()
        expected_desc = rcur.description
    finally:
        raw.close()
    cur = conn.cursor()
    assert isinstance(cur, Cursor)
    assert cur.execute(query) is raw_result
    assert [d[:2] for d in cur.description] == [d[:2] for d in expected_desc]
    assert cur.fetchone() == expected[0]
    assert cur.fetchmany(3) == expected[1:4]
    assert list(cur) == expected[4:]
    assert cur.rowcount == 20


def test_dictionary_cursor(conn: Any) -> None:
    cur = conn.cursor(dictionary=True)
    cur.execute("SELECT 1 AS a, 'b' AS b")
    assert cur.fetchall() == [{"a": 1, "b": "b"}]


def test_buffered_cursor(conn: Any) -> None:
    cur = conn.cursor(buffered=True)
    assert not conn.driver_adapter.is_streaming_cursor(cur.driver_cursor)
    cur.execute("SELECT seq FROM seq_1_to_3")
    assert cur.rowcount == 3
    assert cur.fetchall() == [(1,), (2,), (3,)]


def test_error_pass_through(conn: Any) -> None:
    cur = conn.cursor()
    with pytest.raises(mysql.connector.errors.ProgrammingError) as info:
        cur.execute("SELECT * FROM no_such_table_here")
    assert info.value.errno == 1146
    assert not isinstance(info.value, bluegreen.Error)


def test_commit_rollback(myc_kw: Any, conn: Any, table: str) -> None:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
    assert conn.driver_adapter.in_transaction(conn.driver_connection)
    conn.rollback()
    assert _count(myc_kw(), table) == 0
    cur.executemany(
        f"INSERT INTO {table} VALUES (%s, %s)", [(i, str(i)) for i in range(4)]
    )
    conn.commit()
    assert _count(myc_kw(), table) == 4


def test_autocommit(myc_kw: Any, conn: Any, table: str) -> None:
    assert conn.autocommit is False
    conn.autocommit = True
    assert conn.driver_connection.autocommit is True
    conn.cursor().execute(f"INSERT INTO {table} VALUES (3, 'x')")
    assert _count(myc_kw(), table) == 1


def test_close_state(myc_kw: Any, use_pure: bool) -> None:
    c = bluegreen.connect(
        mysql.connector.connect, plugins="", use_pure=use_pure, **myc_kw()
    )
    adapter = c.driver_adapter
    assert not adapter.is_closed(c.driver_connection)
    with c:
        assert c.is_connected()
    assert adapter.is_closed(c.driver_connection)


def test_timeout_warning_once(
    myc_kw: Any, mariadb_instance: Any, caplog: pytest.LogCaptureFixture
) -> None:

    runtime().warnings.clear()
    try:
        kw = myc_kw()
        del kw["connection_timeout"]
        for _ in range(2):
            bluegreen.connect(mysql.connector.connect, bg_id="warn-test", **kw).close()
    finally:
        runtime().warnings.clear()
    warnings = [
        r for r in caplog.records if r.name == "bluegreen.bg" and "timeout" in r.message
    ]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert mariadb_instance.app_password not in caplog.text
