"""The Connection/Cursor proxies over psycopg2 against a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pytest

import bluegreen
from bluegreen.cursor import Cursor

pytestmark = pytest.mark.postgres


@pytest.fixture
def conn(pg_kw: Any) -> Iterator[Any]:
    c = bluegreen.connect(psycopg2.connect, plugins="", **pg_kw())
    yield c
    c.close()


@pytest.fixture
def table(pg_kw: Any) -> Iterator[str]:
    name = "bg_core_items2"
    raw = psycopg2.connect(**pg_kw())
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, label text)")
    yield name
    with raw.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
    raw.close()


def _count(kw: dict[str, Any], table: str) -> int:
    raw = psycopg2.connect(**kw)
    try:
        with raw.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        raw.close()


def test_connect_with_keywords_dsn_and_uri(
    pg_kw: Any, pg_conninfo: str, pg_instance: Any
) -> None:
    i = pg_instance
    uri = (
        f"postgresql://{i.app_user}:{i.app_password}@{i.host}:{i.port}/{i.dbname}"
        "?connect_timeout=5&plugins=&bg_id=uri%20id"
    )
    for args, kwargs in (
        ((), {"plugins": "", **pg_kw()}),
        ((pg_conninfo + " plugins='' bg_id=42",), {}),
        ((uri,), {}),
    ):
        c = bluegreen.connect(psycopg2.connect, *args, **kwargs)
        try:
            assert isinstance(c, bluegreen.Connection)
            assert isinstance(c.driver_connection, psycopg2.extensions.connection)
            assert c.info.port == i.port
            assert c.wrapper_settings.plugins == ()
            # The wrapper's settings never reach libpq.
            assert "bg_id" not in c.dsn and "plugins" not in c.dsn
        finally:
            c.close()
        assert c.closed


def test_database_alias_and_endpoint(pg_kw: Any, pg_instance: Any) -> None:
    kw = pg_kw()
    kw["database"] = kw.pop("dbname")
    c = bluegreen.connect(psycopg2.connect, plugins="", **kw)
    try:
        endpoint = c.driver_adapter.endpoint(c.wrapper_config.params)
        assert endpoint.dbname == pg_instance.dbname
        assert endpoint.port == pg_instance.port
        assert c.get_dsn_parameters()["dbname"] == pg_instance.dbname
    finally:
        c.close()


def test_results_identical_to_raw_driver(pg_kw: Any, conn: Any) -> None:
    query = "SELECT g, g * 2, 'x' || g::text FROM generate_series(1, 20) g"
    raw = psycopg2.connect(**pg_kw())
    try:
        rcur = raw.cursor()
        rcur.execute(query)
        expected = rcur.fetchall()
        expected_desc = [(d.name, d.type_code) for d in rcur.description]
    finally:
        raw.close()
    cur = conn.cursor()
    assert isinstance(cur, Cursor)
    assert cur.execute(query) is None  # psycopg2's own return value
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
    assert cur.mogrify("SELECT %s", (1,)) == b"SELECT 1"


def test_cursor_and_connection_factories(pg_kw: Any) -> None:
    c = bluegreen.connect(
        psycopg2.connect,
        plugins="",
        cursor_factory=psycopg2.extras.RealDictCursor,
        **pg_kw(),
    )
    try:
        cur = c.cursor()
        cur.execute("SELECT 1 AS a, 'b' AS b")
        assert cur.fetchone() == {"a": 1, "b": "b"}
        cur = c.cursor(cursor_factory=psycopg2.extras.NamedTupleCursor)
        cur.execute("SELECT 2 AS a")
        assert cur.fetchone().a == 2
        # The wrapper's own queries get tuples whatever the factory.
        assert c.driver_adapter.query(c.driver_connection, "SELECT 3") == [(3,)]
    finally:
        c.close()
    c = bluegreen.connect(
        psycopg2.connect,
        plugins="",
        connection_factory=psycopg2.extras.DictConnection,
        **pg_kw(),
    )
    try:
        cur = c.cursor()
        cur.execute("SELECT 4 AS d")
        assert cur.fetchone()["d"] == 4
    finally:
        c.close()


def test_driver_errors_pass_through_unchanged(conn: Any) -> None:
    cur = conn.cursor()
    with pytest.raises(psycopg2.errors.UndefinedTable) as info:
        cur.execute("SELECT * FROM no_such_table_here")
    assert type(info.value) is psycopg2.errors.UndefinedTable
    assert not isinstance(info.value, bluegreen.Error)
    assert conn.driver_adapter.in_transaction(conn.driver_connection)
    conn.rollback()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)


def test_commit_rollback_and_in_transaction(pg_kw: Any, conn: Any, table: str) -> None:
    adapter, raw = conn.driver_adapter, conn.driver_connection
    cur = conn.cursor()
    assert not adapter.in_transaction(raw)
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
    assert adapter.in_transaction(raw)
    conn.rollback()
    assert _count(pg_kw(), table) == 0
    cur.executemany(
        f"INSERT INTO {table} VALUES (%(id)s, %(label)s)",
        [{"id": i, "label": str(i)} for i in range(2, 12)],
    )
    conn.commit()
    assert not adapter.in_transaction(raw)
    assert _count(pg_kw(), table) == 10


def test_with_connection_commits_and_keeps_it_open(pg_kw: Any, table: str) -> None:
    c = bluegreen.connect(psycopg2.connect, plugins="", **pg_kw())
    with c:
        c.cursor().execute(f"INSERT INTO {table} VALUES (1, 'kept')")
    assert not c.closed  # psycopg2's `with conn` ends the transaction only
    assert _count(pg_kw(), table) == 1
    with pytest.raises(ZeroDivisionError), c:
        c.cursor().execute(f"INSERT INTO {table} VALUES (2, 'lost')")
        raise ZeroDivisionError
    assert not c.closed
    assert _count(pg_kw(), table) == 1
    c.close()


def test_autocommit(pg_kw: Any, conn: Any, table: str) -> None:
    assert conn.autocommit is False
    conn.autocommit = True
    assert conn.driver_connection.autocommit is True
    conn.cursor().execute(f"INSERT INTO {table} VALUES (5, 'auto')")
    assert _count(pg_kw(), table) == 1
    # psycopg2 takes autocommit as an attribute; bluegreen accepts it as a
    # keyword too and sets it once connected (its monitors need that).
    c = bluegreen.connect(psycopg2.connect, plugins="", autocommit=True, **pg_kw())
    try:
        assert c.driver_connection.autocommit is True
    finally:
        c.close()


def test_server_side_cursor(conn: Any) -> None:
    cur = conn.cursor(name="bg_named")
    assert conn.driver_adapter.is_streaming_cursor(cur.driver_cursor)
    cur.itersize = 2
    cur.execute("SELECT g FROM generate_series(1, 5) g")
    assert cur.fetchmany(2) == [(1,), (2,)]
    assert [r[0] for r in cur] == [3, 4, 5]
    cur.close()
    conn.rollback()
    assert not conn.driver_adapter.is_streaming_cursor(conn.cursor().driver_cursor)


def test_copy_and_session_calls(conn: Any, table: str) -> None:
    import io

    cur = conn.cursor()
    cur.copy_from(io.StringIO("1\tone\n2\ttwo\n"), table, columns=("id", "label"))
    out = io.StringIO()
    cur.copy_expert(f"COPY (SELECT id FROM {table} ORDER BY id) TO STDOUT", out)
    assert out.getvalue() == "1\n2\n"
    conn.commit()
    conn.set_session(readonly=True)
    assert conn.readonly is True
    conn.set_client_encoding("LATIN1")
    assert conn.encoding == "LATIN1"


def test_lost_connection_is_classified(pg_kw: Any, conn: Any) -> None:
    adapter = conn.driver_adapter
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    conn.rollback()
    admin = psycopg2.connect(**pg_kw())
    admin.autocommit = True
    try:
        admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        admin.close()
    with pytest.raises(psycopg2.OperationalError) as info:
        cur.execute("SELECT 1")
    assert adapter.is_connection_lost(info.value, conn.driver_connection)
    assert adapter.is_connection_lost(info.value)  # no SQLSTATE: client side
    assert adapter.is_closed(conn.driver_connection)
    # What a reconnect carries over is read from the dead connection.
    state = adapter.session_state(conn.driver_connection)
    assert state["cursor_factory"] is None
    assert "TimeZone" in state["params"]
    with pytest.raises(psycopg2.InterfaceError) as closed:
        conn.cursor().execute("SELECT 1")
    assert adapter.is_connection_lost(closed.value)
    # An ordinary error is not a lost connection.
    assert not adapter.is_connection_lost(psycopg2.errors.UniqueViolation())


def test_peer_closed_sees_a_terminated_session(pg_kw: Any, conn: Any) -> None:
    adapter, raw = conn.driver_adapter, conn.driver_connection
    conn.autocommit = True
    assert not adapter.peer_closed(raw)
    admin = psycopg2.connect(**pg_kw())
    admin.autocommit = True
    try:
        admin.cursor().execute(
            "SELECT pg_terminate_backend(%s)", (raw.info.backend_pid,)
        )
    finally:
        admin.close()
    import time

    deadline = time.monotonic() + 5
    while not adapter.peer_closed(raw):
        assert time.monotonic() < deadline, "the terminated session still looks open"
        time.sleep(0.01)


def test_session_state_carried_to_a_new_connection(pg_kw: Any, conn: Any) -> None:
    adapter = conn.driver_adapter
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET TimeZone = 'Asia/Tokyo'")
    conn.cursor_factory = psycopg2.extras.RealDictCursor
    psycopg2.extras.register_uuid(None, conn)
    state = adapter.session_state(conn.driver_connection)
    fresh = adapter.connect(conn.wrapper_config.params)
    try:
        adapter.restore_session(fresh, state)
        assert fresh.autocommit is True
        assert fresh.cursor_factory is psycopg2.extras.RealDictCursor
        assert fresh.info.parameter_status("TimeZone") == "Asia/Tokyo"
        assert not adapter.in_transaction(fresh)
        # The uuid caster registered on the old connection came along.
        with fresh.cursor(cursor_factory=psycopg2.extensions.cursor) as cur:
            cur.execute("SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid")
            assert isinstance(cur.fetchone()[0], uuid.UUID)
    finally:
        fresh.close()


def test_scoped_functions_take_the_proxy(conn: Any) -> None:
    """psycopg2's C functions with a connection/cursor scope check its type;
    bluegreen lets them take its proxies (SQLAlchemy and Django call them)."""
    from psycopg2 import sql

    cur = conn.cursor()
    # Scoped to this connection only: the raw driver connection sees it.
    psycopg2.extras.register_uuid(None, conn)
    cur.execute("SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid")
    assert isinstance(cur.fetchone()[0], uuid.UUID)
    psycopg2.extras.register_default_jsonb(conn, loads=lambda text: ("raw", text))
    cur.execute("""SELECT '{"a": 1}'::jsonb""")
    assert cur.fetchone()[0] == ("raw", '{"a": 1}')
    psycopg2.extras.register_uuid(None, cur)  # a cursor scope works too
    assert sql.Identifier("odd name").as_string(conn) == '"odd name"'
    assert sql.Identifier("x").as_string(cur) == '"x"'
    assert psycopg2.extensions.encrypt_password("pw", "u", conn, "md5").startswith(
        "md5"
    )
    # Anything else still gets psycopg2's own error.
    with pytest.raises(TypeError):
        psycopg2.extensions.register_type(psycopg2.extensions.UNICODE, object())


def test_wrapper_errors_are_psycopg2_errors(conn: Any) -> None:
    errors = conn.driver_adapter.errors
    for cls in errors:
        assert issubclass(cls, psycopg2.OperationalError)
        assert issubclass(cls, bluegreen.Error)


def test_monitoring_params(pg_conninfo: str) -> None:
    c = bluegreen.connect(
        psycopg2.connect,
        pg_conninfo + " target_session_attrs=read-write",
        plugins="",
        cursor_factory=psycopg2.extras.DictCursor,
        **{"blue-green-monitoring-connect_timeout": 2},
    )
    try:
        mon = c.wrapper_config.own_params("bg")
        assert mon.kwargs["connect_timeout"] == 2
        assert mon.kwargs["autocommit"] is True
        for dropped in ("target_session_attrs", "cursor_factory"):
            assert dropped not in mon.kwargs
        m = c.driver_adapter.connect(mon)
        try:
            assert m.autocommit is True
            assert c.driver_adapter.query(m, "SELECT 1") == [(1,)]
        finally:
            m.close()
    finally:
        c.close()
    with pytest.raises(bluegreen.ConfigurationError, match="connect_timeout"):
        bluegreen.connect(
            psycopg2.connect,
            pg_conninfo,
            plugins="",
            **{"blue-green-monitoring-connect_timout": 2},
        )


def test_async_connections_are_refused(pg_kw: Any) -> None:
    with pytest.raises(bluegreen.ConfigurationError, match="async"):
        bluegreen.connect(psycopg2.connect, plugins="", async_=True, **pg_kw())


def test_sqlalchemy_creator_round_trip(pg_kw: Any) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg2://",
        creator=lambda: bluegreen.connect(psycopg2.connect, plugins="", **pg_kw()),
    )
    try:
        with engine.begin() as sa:
            value = sa.execute(sqlalchemy.text("SELECT :x + 1"), {"x": 41}).scalar()
        assert value == 42
        with engine.connect() as sa:
            assert isinstance(sa.connection.dbapi_connection, bluegreen.Connection)
    finally:
        engine.dispose()
