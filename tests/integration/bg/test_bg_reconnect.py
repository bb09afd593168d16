"""Transparent reconnect: pooled and long-lived connections through a
switchover, on real servers and the simulator.

At IN_PROGRESS the simulator drops every connection, as RDS does. A
connection that was idle then must see no error: its next call runs on a
new connection to the new primary. A call in flight at the drop, or a
connection inside a transaction, gets the driver's own error (never a
re-run), and the next call works again.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from bgharness import Harness, settings_for, wait_for

import bluegreen
import bluegreen.bg
from bluegreen.sim.accounting import OpRecord
from bluegreen.sim.workload import TABLE, identity_map

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SPEED = 10.0
SETTINGS = settings_for(SPEED, bg_connect_timeout_ms=5000)
KINDS = ["aurora-postgres", "rds-postgres", "aurora-mysql", "rds-mysql"]
_ids = itertools.count(int(time.time()) % 100000 * 10000)


def sql(engine: str, op: str) -> tuple[str, tuple[Any, ...]]:
    """The statement of an operation and its parameters; it returns the
    serving instance's identity (IP on PostgreSQL, server id on MariaDB)."""
    wid = next(_ids)
    if engine == "postgres":
        if op == "write":
            return (
                f"INSERT INTO {TABLE} (id, client) VALUES (%s, 'reconnect') "
                "RETURNING host(inet_server_addr())",
                (wid,),
            )
        return "SELECT host(inet_server_addr())", ()
    if op == "write":
        return (
            f"INSERT INTO {TABLE} (id, client) SELECT %s, @@server_id RETURNING client",
            (wid,),
        )
    return "SELECT @@server_id", ()


def first(row: Any) -> str:
    value = row[0] if not isinstance(row, dict) else next(iter(row.values()))
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


class Clients:
    """Client threads, one connection style each, recording every op."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        dep = harness.dep
        self.ids = identity_map(
            {"blue": dep.blue.instances, "green": dep.green.instances}
        )
        self.records: list[OpRecord] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.closers: list[Callable[[], None]] = []
        self.lock = threading.Lock()

    def add(self, style: str, op: Callable[[str], str], n: int = 2) -> None:
        for i in range(n):
            t = threading.Thread(
                target=self._loop, args=(f"{style}-{i}", style, op), daemon=True
            )
            self.threads.append(t)

    def _loop(self, client: str, style: str, op: Callable[[str], str]) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                return
            kind = "write" if n % 2 == 0 else "read"
            start = time.monotonic()
            try:
                ident = op(kind)
                error = None
            except Exception as exc:
                ident, error = None, f"{type(exc).__name__}: {exc}"
            inst, env = self.ids.get(ident or "", (ident, None))
            with self.lock:
                self.records.append(
                    OpRecord(
                        client,
                        style,
                        kind,
                        start,
                        time.monotonic(),
                        error is None,
                        error,
                        inst,
                        env,
                    )
                )
            self.stop.wait(0.01)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> list[OpRecord]:
        self.stop.set()
        for t in self.threads:
            t.join(15)
        for close in self.closers:
            close()
        return self.records


def plain_style(h: Harness, clients: Clients) -> Callable[[str], str]:
    """A long-lived connection per client, autocommit."""
    local = threading.local()
    engine = h.engine

    def op(kind: str) -> str:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = h.connect(**SETTINGS)
            clients.closers.append(conn.close)
        text, params = sql(engine, kind)
        cur = conn.cursor()
        try:
            cur.execute(text, params or None)
            return first(cur.fetchone())
        finally:
            cur.close()

    return op


def sqlalchemy_style(h: Harness, clients: Clients) -> Callable[[str], str]:
    """SQLAlchemy 2 QueuePool through creator=, no pre-ping."""
    import sqlalchemy

    url = (
        f"postgresql+{h.driver if h.driver == 'psycopg2' else 'psycopg'}://"
        if h.engine == "postgres"
        else {
            "mysql-connector": "mysql+mysqlconnector://",
            "mysqlclient": "mysql+mysqldb://",
        }.get(h.driver, "mysql+pymysql://")
    )
    kw = h.kwargs(h.blue_host)
    kw.pop("autocommit")
    engine = sqlalchemy.create_engine(
        url,
        creator=lambda: bluegreen.connect(h.target(), **kw, **SETTINGS),
        pool_size=2,
        max_overflow=0,
        pool_pre_ping=False,
    )
    clients.closers.append(engine.dispose)

    def op(kind: str) -> str:
        text, params = sql(h.engine, kind)
        names = {f"p{i}": v for i, v in enumerate(params)}
        stmt = text.replace("%s", ":p0")
        with engine.connect() as c:
            value = c.execute(sqlalchemy.text(stmt), names).scalar()
            c.commit()
        return str(value)

    # Fill the pool before the switchover: these are the held connections.
    with engine.connect() as a, engine.connect() as b:
        a.execute(sqlalchemy.text("SELECT 1"))
        b.execute(sqlalchemy.text("SELECT 1"))
    return op


def psycopg_pool_style(h: Harness, clients: Clients) -> Callable[[str], str]:
    """psycopg_pool.ConnectionPool with bluegreen's connection class."""
    from psycopg_pool import ConnectionPool

    from bluegreen.pool import PsycopgPoolConnection

    kw = h.kwargs(h.blue_host)
    pool = ConnectionPool(
        "",
        connection_class=PsycopgPoolConnection,
        kwargs={**kw, **SETTINGS},
        min_size=2,
        max_size=2,
        open=True,
    )
    pool.wait(10)
    clients.closers.append(pool.close)

    def op(kind: str) -> str:
        text, params = sql(h.engine, kind)
        with pool.connection() as conn:
            return first(conn.execute(text, params or None).fetchone())

    return op


@pytest.mark.parametrize(
    ("kind", "driver"),
    [
        ("aurora-postgres", "psycopg"),
        ("rds-postgres", "psycopg2"),
        ("rds-mysql", "pymysql"),
        # mysql-connector with its C extension: no socket to look at, the
        # ping of cursor() is what finds a dropped connection.
        ("rds-mysql", "mysql-connector"),
        # mysqlclient: the socket from conn.fileno(), the transaction state
        # from the client library's server status flags.
        ("aurora-mysql", "mysqlclient"),
    ],
)
def test_held_connections_see_no_error_through_a_switchover(
    bg_harness: Callable[..., Harness], kind: str, driver: str
) -> None:
    h = bg_harness(kind, driver=driver)
    first_conn = h.connect(**SETTINGS)  # starts the monitors
    clients = Clients(h)
    clients.add("plain", plain_style(h, clients))
    clients.add("sqlalchemy", sqlalchemy_style(h, clients))
    if h.driver == "psycopg" and h.engine == "postgres":
        clients.add("psycopg_pool", psycopg_pool_style(h, clients))
    clients.start()
    player = h.play("switchover", SPEED, until=10.0)
    try:
        assert player.wait(timeout=120), "the scenario did not finish"
    finally:
        records = clients.finish()
        first_conn.close()
    player.check()
    killed = player.event("Connections dropped")
    switched = player.event("SWITCHED")
    assert killed is not None and switched is not None
    kill_at = player.monotonic_at(killed.offset)
    switched_at = player.monotonic_at(switched.offset)

    for style in {r.group for r in records}:
        mine = [r for r in records if r.group == style]
        after = [r for r in mine if r.start >= kill_at]
        assert len(after) >= 10, (style, len(after))
        failed_after = [
            (round(r.start - kill_at, 3), r.error) for r in after if not r.ok
        ]
        assert not failed_after, (style, failed_after)
        for r in mine:
            if not r.ok:  # only what was in flight at the drop may fail
                began = player.monotonic_at(player.event("IN_PROGRESS").offset)  # type: ignore[union-attr]
                assert r.start < kill_at and r.end >= began, (style, r)
        late = [r for r in mine if r.start >= switched_at]
        assert late and {r.env for r in late} == {"green"}, (style, late[:3])
    st = bluegreen.bg.status("1")
    assert st is not None
    # Every held connection was reopened, except those whose call was in
    # flight at the drop (their pool may have thrown them away instead).
    in_flight = sum(1 for r in records if not r.ok)
    assert st.reconnects >= len({r.client for r in records}) - in_flight, st


@pytest.mark.parametrize(
    ("kind", "driver"),
    [
        ("aurora-postgres", "psycopg"),
        ("rds-mysql", "pymysql"),
        ("aurora-mysql", "mysql-connector"),
    ],
)
def test_transactions_settings_and_the_switch_off(
    bg_harness: Callable[..., Harness], kind: str, driver: str
) -> None:
    """In one switchover: a connection inside a transaction at the drop gets
    the driver's error and then works on the new primary; session settings
    and the application's own setup survive a reconnect; with
    bg_reconnect=false a dropped connection fails once, as without it."""
    h = bg_harness(kind, driver=driver)
    pg = h.engine == "postgres"
    dep = h.dep
    hooked: list[Any] = []

    def setup(conn: Any) -> None:
        hooked.append(conn)
        cur = conn.cursor()
        cur.execute(
            "SET search_path TO pg_catalog, public" if pg else "SET @app_setup = 42"
        )
        cur.close()

    in_txn = h.connect(**{**SETTINGS, "autocommit": False})
    session = h.connect(**SETTINGS, bg_on_reconnect=setup)
    without = h.connect(**SETTINGS, bg_reconnect=False)
    driver_error = type(in_txn.driver_connection).__module__.split(".")[0]
    cur = session.cursor()
    if pg:
        from psycopg.rows import dict_row

        cur.execute("SET TIME ZONE 'Asia/Tokyo'")
        cur.execute("SET application_name = 'reconnect-test'")
        session.row_factory = dict_row
    else:
        cur.execute("SET @app_setup = 42")
    cur.close()
    work = in_txn.cursor()
    text, params = sql(h.engine, "write")
    work.execute(text, params)
    assert in_txn.driver_adapter.in_transaction(in_txn.driver_connection)

    player = h.play("switchover", SPEED, until=10.0)
    wait_for(lambda: player.event("POST") is not None, 30, "POST")
    wait_for(
        lambda: bluegreen.bg.status("1").phase in ("POST", "COMPLETED"),  # type: ignore[union-attr]
        10,
        "the plugin to see POST",
    )
    try:
        # Inside a transaction at the drop: the driver's own error, not a
        # re-run on a new connection (the INSERT is lost, and the
        # application must know).
        with pytest.raises(Exception) as info:
            work.execute(*sql(h.engine, "write"))
        assert type(info.value).__module__.split(".")[0] == driver_error
        assert not isinstance(info.value, bluegreen.Error)
        in_txn.rollback()
        work.execute(*sql(h.engine, "write"))
        green = first(work.fetchone())
        in_txn.commit()
        assert green in {h.identity_of(i) for i in dep.green.instances}

        # Idle at the drop: reconnected, with its settings and setup.
        cur = session.cursor()
        if pg:
            cur.execute(
                "SELECT current_setting('TimeZone') AS tz, "
                "current_setting('application_name') AS app, "
                "current_setting('search_path') AS path, "
                "host(inet_server_addr()) AS host"
            )
            row = cur.fetchone()
            assert isinstance(row, dict), row  # the row factory carried over
            assert row["tz"] == "Asia/Tokyo"
            assert row["app"] == "reconnect-test"
            assert row["path"] == "pg_catalog, public"
            assert row["host"] in {i.host for i in dep.green.instances}
        else:
            cur.execute("SELECT @app_setup, @@server_id")
            value, server = cur.fetchone()
            assert str(value) == "42"  # from the hook: user variables are lost
            assert str(server) in {h.identity_of(i) for i in dep.green.instances}
        cur.close()
        assert len(hooked) == 1 and hooked[0] is session

        # bg_reconnect=false: the dropped connection fails once.
        with pytest.raises(Exception) as info:
            c = without.cursor()
            c.execute("SELECT 1")
        assert not isinstance(info.value, bluegreen.Error)
        assert without.driver_adapter.is_connection_lost(
            info.value, without.driver_connection
        )
        st = bluegreen.bg.status("1")
        assert st is not None and st.refused_in_transaction >= 1
        assert st.reconnects >= 2
        assert player.wait(timeout=60)
    finally:
        for conn in (in_txn, session, without):
            with contextlib.suppress(Exception):
                conn.close()


@pytest.mark.parametrize("kind", ["rds-postgres", "aurora-mysql"])
def test_no_reconnect_outside_a_switchover(
    bg_harness: Callable[..., Harness], kind: str
) -> None:
    """An administrator ends an idle connection with no switchover under
    way: the application gets the driver's error, as without the plugin."""
    h = bg_harness(kind)
    conn = h.connect(**SETTINGS)
    try:
        wait_for(lambda: bluegreen.bg.status("1").monitoring, 10, "the monitors")  # type: ignore[union-attr]
        cur = conn.cursor()
        if h.engine == "postgres":
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            h.dep.blue.writer.execute_admin(f"SELECT pg_terminate_backend({pid})")
        else:
            cur.execute("SELECT CONNECTION_ID()")
            pid = cur.fetchone()[0]
            h.dep.blue.writer.execute_admin(f"KILL {pid}")
        cur.close()
        time.sleep(0.2)
        with pytest.raises(Exception) as info:
            cur = conn.cursor()
            cur.execute("SELECT 1")
        assert not isinstance(info.value, bluegreen.Error)
        assert conn.driver_adapter.is_connection_lost(
            info.value, conn.driver_connection
        )
        assert bluegreen.bg.status("1").reconnects == 0  # type: ignore[union-attr]
    finally:
        with contextlib.suppress(Exception):
            conn.close()
