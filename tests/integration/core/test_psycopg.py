"""The Connection/Cursor proxies over psycopg 3 against a real PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.errors
import pytest
from psycopg.rows import dict_row

import bluegreen
from bluegreen.cursor import Cursor

pytestmark = pytest.mark.postgres


@pytest.fixture
def conn(pg_kw: Any) -> Iterator[bluegreen.Connection]:
    c = bluegreen.connect(psycopg.connect, plugins="", **pg_kw())
    yield c
    c.close()


@pytest.fixture
def table(pg_kw: Any) -> Iterator[str]:
    name = "bg_core_items"
    with psycopg.connect(**pg_kw(), autocommit=True) as raw:
        raw.execute(f"DROP TABLE IF EXISTS {name}")
        raw.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, label text)")
    yield name
    with psycopg.connect(**pg_kw(), autocommit=True) as raw:
        raw.execute(f"DROP TABLE IF EXISTS {name}")


def _count(kw: dict[str, Any], table: str) -> int:
    with psycopg.connect(**kw) as raw:
        row = raw.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def test_connect_function_and_classmethod(pg_kw: Any, pg_instance: Any) -> None:
    for target in (psycopg.connect, psycopg.Connection.connect):
        c = bluegreen.connect(target, plugins="", **pg_kw())
        try:
            assert isinstance(c, bluegreen.Connection)
            assert isinstance(c.driver_connection, psycopg.Connection)
            assert c.info.port == pg_instance.port
        finally:
            c.close()
        assert c.closed


def test_conninfo_with_wrapper_settings(pg_conninfo: str, pg_instance: Any) -> None:
    dsn = pg_conninfo + " plugins='' bg_id=42 bg_interval_high_ms=' 250 '"
    c = bluegreen.connect(psycopg.connect, dsn)
    try:
        assert c.wrapper_settings.bg_id == "42"
        assert c.wrapper_settings.bg_interval_high_ms == 250
        assert c.wrapper_settings.plugins == ()
        assert c.execute("SELECT current_user").fetchone() == (pg_instance.app_user,)
    finally:
        c.close()


def test_uri_with_wrapper_settings(pg_instance: Any) -> None:
    i = pg_instance
    uri = (
        f"postgresql://{i.app_user}:{i.app_password}@{i.host}:{i.port}/{i.dbname}"
        "?connect_timeout=5&plugins=&bg_id=uri%20id"
        "&blue-green-monitoring-connect_timeout=2"
    )
    c = bluegreen.connect(psycopg.connect, uri)
    try:
        assert c.wrapper_settings.bg_id == "uri id"
        assert c.wrapper_config.own_overrides["bg"] == {"connect_timeout": "2"}
        assert c.execute("SELECT current_database()").fetchone() == (i.dbname,)
    finally:
        c.close()


def test_results_identical_to_raw_driver(pg_kw: Any, conn: Any) -> None:
    query = "SELECT g, g * 2, 'x' || g::text FROM generate_series(1, 20) g"
    with psycopg.connect(**pg_kw()) as raw:
        rcur = raw.execute(query)
        expected = rcur.fetchall()
        expected_desc = [(d.name, d.type_code) for d in rcur.description or ()]
    cur = conn.cursor()
    assert isinstance(cur, Cursor)
    assert cur.execute(query) is cur
    assert [(d.name, d.type_code) for d in cur.description] == expected_desc
    assert cur.rowcount == 20
    assert cur.fetchone() == expected[0]
    assert cur.fetchmany(3) == expected[1:4]
    cur.arraysize = 2
    assert cur.fetchmany() == expected[4:6]
    assert cur.rownumber == 6
    assert cur.fetchall() == expected[6:]
    cur.execute(query)
    assert list(cur) == expected


def test_row_factories(conn: Any) -> None:
    cur = conn.cursor(row_factory=dict_row)
    assert cur.execute("SELECT 1 AS a, 'b' AS b").fetchone() == {"a": 1, "b": "b"}
    conn.row_factory = dict_row
    assert conn.driver_connection.row_factory is dict_row
    assert conn.cursor().execute("SELECT 2 AS a").fetchall() == [{"a": 2}]
    assert conn.execute("SELECT 3 AS c").fetchone() == {"c": 3}


def test_driver_errors_pass_through_unchanged(conn: Any) -> None:
    cur = conn.cursor()
    with pytest.raises(psycopg.errors.UndefinedTable) as info:
        cur.execute("SELECT * FROM no_such_table_here")
    assert type(info.value) is psycopg.errors.UndefinedTable
    assert not isinstance(info.value, bluegreen.Error)
    conn.rollback()
    assert cur.execute("SELECT 1").fetchone() == (1,)


def test_commit_and_rollback(pg_kw: Any, conn: Any, table: str) -> None:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
    assert conn.driver_adapter.in_transaction(conn.driver_connection)
    conn.rollback()
    assert _count(pg_kw(), table) == 0
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (2, "two"))
    conn.commit()
    assert not conn.driver_adapter.in_transaction(conn.driver_connection)
    assert _count(pg_kw(), table) == 1


def test_executemany(pg_kw: Any, conn: Any, table: str) -> None:
    cur = conn.cursor()
    cur.executemany(
        f"INSERT INTO {table} VALUES (%(id)s, %(label)s)",
        [{"id": i, "label": str(i)} for i in range(10)],
    )
    conn.commit()
    assert _count(pg_kw(), table) == 10


def test_with_connection_same_as_raw(pg_kw: Any, table: str) -> None:
    with bluegreen.connect(psycopg.connect, plugins="", **pg_kw()) as c:
        assert isinstance(c, bluegreen.Connection)
        c.execute(f"INSERT INTO {table} VALUES (1, 'kept')")
    assert c.closed
    assert _count(pg_kw(), table) == 1
    with (
        pytest.raises(ZeroDivisionError),
        bluegreen.connect(psycopg.connect, plugins="", **pg_kw()) as c2,
    ):
        c2.execute(f"INSERT INTO {table} VALUES (2, 'lost')")
        raise ZeroDivisionError
    assert c2.closed
    assert _count(pg_kw(), table) == 1


def test_cursor_context_manager(conn: Any) -> None:
    with conn.cursor() as cur:
        assert isinstance(cur, Cursor)
        cur.execute("SELECT 1")
    assert cur.closed


def test_autocommit(pg_kw: Any, conn: Any, table: str) -> None:
    assert conn.autocommit is False
    conn.autocommit = True
    assert conn.driver_connection.autocommit is True
    conn.execute(f"INSERT INTO {table} VALUES (5, 'auto')")
    assert _count(pg_kw(), table) == 1
    c = bluegreen.connect(psycopg.connect, plugins="", autocommit=True, **pg_kw())
    try:
        assert c.autocommit is True
    finally:
        c.close()


def test_driver_specific_attributes(conn: Any) -> None:
    assert conn.info.dbname
    assert conn.adapters is conn.driver_connection.adapters
    with conn.transaction():
        conn.execute("SELECT 1")
    conn.prepare_threshold = None
    assert conn.driver_connection.prepare_threshold is None


def test_server_side_cursor(conn: Any) -> None:
    with conn.transaction():
        cur = conn.cursor(name="bg_named")
        cur.execute("SELECT g FROM generate_series(1, 5) g")
        assert cur.fetchmany(2) == [(1,), (2,)]
        assert [r[0] for r in cur] == [3, 4, 5]
        cur.close()


def test_sqlalchemy_round_trip(pg_kw: Any) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://",
        creator=lambda: bluegreen.connect(psycopg.connect, plugins="", **pg_kw()),
    )
    try:
        with engine.begin() as sa:
            value = sa.execute(sqlalchemy.text("SELECT :x + 1"), {"x": 41}).scalar()
        assert value == 42
        with engine.connect() as sa:
            raw = sa.connection.dbapi_connection
            assert isinstance(raw, bluegreen.Connection)
    finally:
        engine.dispose()


def test_secret_never_shown(
    pg_conninfo: str, pg_instance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bluegreen")
    secret = pg_instance.app_password
    c = bluegreen.connect(psycopg.connect, pg_conninfo, plugins="")
    try:
        assert secret not in repr(c)
        assert secret not in repr(c.wrapper_config)
        assert "***" in repr(c.wrapper_config)
    finally:
        c.close()
    with pytest.raises(bluegreen.ConfigurationError) as info:
        bluegreen.connect(
            psycopg.connect, pg_conninfo, plugins="", bg_auth_token=secret
        )
    assert secret not in str(info.value)
    assert "bg_auth_token" in str(info.value)
    with pytest.raises(bluegreen.ConfigurationError) as info:
        bluegreen.connect(psycopg.connect, pg_conninfo + " bg_id_ms=1")
    assert secret not in str(info.value)
    assert secret not in caplog.text


def test_monitoring_params(pg_conninfo: str) -> None:
    c = bluegreen.connect(
        psycopg.connect,
        pg_conninfo + " target_session_attrs=read-write",
        plugins="",
        load_balance_hosts="disable",
        row_factory=dict_row,
        **{"blue-green-monitoring-connect_timeout": 2},
    )
    try:
        mon = c.wrapper_config.own_params("bg")
        assert mon.kwargs["connect_timeout"] == 2
        assert mon.kwargs["autocommit"] is True
        for dropped in ("target_session_attrs", "load_balance_hosts", "row_factory"):
            assert dropped not in mon.kwargs
        assert c.wrapper_config.params.kwargs["row_factory"] is dict_row
        m = c.driver_adapter.connect(mon)
        try:
            assert m.autocommit is True
            assert m.execute("SELECT 1").fetchone() == (1,)
        finally:
            m.close()
    finally:
        c.close()


def test_settings_validated_at_connect(pg_kw: Any) -> None:
    with pytest.raises(bluegreen.ConfigurationError, match="bg_connect_timeout_ms"):
        bluegreen.connect(
            psycopg.connect, plugins="", bg_connect_timeout_ms=-1, **pg_kw()
        )
    with pytest.raises(bluegreen.ConfigurationError, match="did you mean 'plugins'"):
        bluegreen.connect(psycopg.connect, plugin="", **pg_kw())
    with pytest.raises(bluegreen.ConfigurationError, match="nosuch"):
        bluegreen.connect(psycopg.connect, plugins="nosuch", **pg_kw())
