"""The Connection/Cursor proxies over mysqlclient (``MySQLdb``) against a real
MariaDB: results, errors, transactions, cursor classes, hooked calls, lost
connections, IP routing, monitoring parameters and the reconnect state."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import MySQLdb
import MySQLdb.connections
import MySQLdb.cursors
import pytest

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.cursor import Cursor
from bluegreen.drivers import adapter_for
from bluegreen.drivers.mysqlclient import _mariadb_client
from bluegreen.pipeline import ConnectContext, Plugin
from bluegreen.settings import parse_config

# (A call blocked on the server fails the test instead of hanging the run.)
pytestmark = [pytest.mark.mariadb, pytest.mark.timeout(120)]

T = TypeVar("T")
ADAPTER = adapter_for(MySQLdb.connect)


@pytest.fixture
def mc_kw(pymysql_kw: Any) -> Any:
    """mysqlclient 2.x takes PyMySQL's names (``password``, ``database``,
    ``connect_timeout`` in whole seconds)."""
    return pymysql_kw


@pytest.fixture
def conn(mc_kw: Any) -> Iterator[Any]:
    c = bluegreen.connect(MySQLdb.connect, plugins="", **mc_kw())
    yield c
    if c.open:
        c.close()


@pytest.fixture
def table(mc_kw: Any) -> Iterator[str]:
    """A fresh InnoDB table. Tests take it before ``conn`` so that the
    connection (and any transaction it left open) is gone before the DROP."""
    name = "bg_core_mysqlclient"
    raw = MySQLdb.connect(**mc_kw(), autocommit=True)
    cur = raw.cursor()
    cur.execute("SET SESSION lock_wait_timeout = 20")
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, label TEXT) ENGINE=InnoDB")
    yield name
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    raw.close()


def _count(kw: dict[str, Any], table: str) -> int:
    raw = MySQLdb.connect(**kw)
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cur.fetchone()[0])
    finally:
        raw.close()


def _one(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchone()
    finally:
        cur.close()


@pytest.mark.parametrize(
    "target", [MySQLdb.connect, MySQLdb.Connect, MySQLdb.connections.Connection]
)
def test_connect_targets(mc_kw: Any, target: Any) -> None:
    c = bluegreen.connect(target, plugins="", **mc_kw())
    try:
        assert isinstance(c.driver_connection, MySQLdb.connections.Connection)
        assert isinstance(c, MySQLdb.connections.Connection)  # the proxy's __class__
        assert c.open
        assert not ADAPTER.is_closed(c.driver_connection)
        c.ping()
    finally:
        c.close()
    assert not c.open
    assert ADAPTER.is_closed(c.driver_connection)


def test_aliases_reach_the_server(mc_kw: Any, mariadb_instance: Any) -> None:
    kw = mc_kw()
    kw["passwd"] = kw.pop("password")
    kw["db"] = kw.pop("database")
    c = bluegreen.connect(MySQLdb.connect, plugins="", **kw)
    try:
        assert c.wrapper_config.endpoint().dbname == mariadb_instance.dbname
        assert _one(c, "SELECT DATABASE()") == (mariadb_instance.dbname,)
    finally:
        c.close()


def test_conninfo_is_refused() -> None:
    with pytest.raises(bluegreen.ProgrammingError, match="connection string"):
        bluegreen.connect(MySQLdb.connect, "host=x", plugins="")


def test_results_identical_to_raw(mc_kw: Any, conn: Any) -> None:
    query = "SELECT seq, seq * 2, CONCAT('x', seq) FROM seq_1_to_20"
    raw = MySQLdb.connect(**mc_kw())
    try:
        rcur = raw.cursor()
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


def test_dict_cursor_and_the_wrappers_own_queries(mc_kw: Any) -> None:
    c = bluegreen.connect(
        MySQLdb.connect, plugins="", cursorclass=MySQLdb.cursors.DictCursor, **mc_kw()
    )
    try:
        cur = c.cursor()
        assert isinstance(cur.driver_cursor, MySQLdb.cursors.DictCursor)
        cur.execute("SELECT 1 AS a, 'b' AS b")
        assert cur.fetchone() == {"a": 1, "b": "b"}
        # The wrapper's own queries get tuples whatever the cursor class.
        assert ADAPTER.query(c.driver_connection, "SELECT 1, %s", ("x",)) == [(1, "x")]
        assert ADAPTER.query(c.driver_connection, "DO 1") == []
    finally:
        c.close()


def test_streaming_cursors(conn: Any) -> None:
    for cls, row in [
        (MySQLdb.cursors.SSCursor, (1,)),
        (MySQLdb.cursors.SSDictCursor, {"seq": 1}),
    ]:
        cur = conn.cursor(cls)
        assert ADAPTER.is_streaming_cursor(cur.driver_cursor)
        cur.execute("SELECT seq FROM seq_1_to_500")
        assert cur.fetchone() == row
        assert len(cur.fetchmany(9)) == 9
        assert len(cur.fetchall()) == 490
        cur.close()
    assert not ADAPTER.is_streaming_cursor(conn.cursor().driver_cursor)


def test_errors_pass_through_unchanged(table: str, conn: Any) -> None:
    cur = conn.cursor()
    with pytest.raises(MySQLdb.ProgrammingError) as info:
        cur.execute("SELECT * FROM no_such_table_here")
    assert type(info.value) is MySQLdb.ProgrammingError
    assert info.value.args[0] == 1146
    assert not isinstance(info.value, bluegreen.Error)
    cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
    with pytest.raises(MySQLdb.IntegrityError) as dup:
        cur.execute(f"INSERT INTO {table} VALUES (1, 'b')")
    assert type(dup.value) is MySQLdb.IntegrityError
    assert dup.value.args[0] == 1062
    assert not ADAPTER.is_connection_lost(dup.value, conn.driver_connection)


def test_commit_rollback_and_in_transaction(mc_kw: Any, table: str, conn: Any) -> None:
    raw = conn.driver_connection
    assert not ADAPTER.in_transaction(raw)
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
    assert ADAPTER.in_transaction(raw)
    conn.rollback()
    assert not ADAPTER.in_transaction(raw)
    assert _count(mc_kw(), table) == 0
    cur.executemany(
        f"INSERT INTO {table} VALUES (%s, %s)", [(i, str(i)) for i in range(5)]
    )
    assert ADAPTER.in_transaction(raw)
    conn.commit()
    assert not ADAPTER.in_transaction(raw)
    assert _count(mc_kw(), table) == 5
    # A read of an InnoDB table opens a transaction outside autocommit too.
    cur.execute(f"SELECT label FROM {table} WHERE id = 1")
    assert ADAPTER.in_transaction(raw)
    conn.commit()
    if _mariadb_client():
        # The exact server status: a statement touching no table opens none.
        cur.execute("SELECT 1")
        assert not ADAPTER.in_transaction(raw)
    else:  # conservative without it
        cur.execute("SELECT 1")
        assert ADAPTER.in_transaction(raw)


def test_autocommit(mc_kw: Any, table: str, conn: Any) -> None:
    raw = conn.driver_connection
    assert conn.get_autocommit() is False
    conn.autocommit = True
    assert conn.get_autocommit() is True
    assert ADAPTER.get_autocommit(raw) is True
    conn.cursor().execute(f"INSERT INTO {table} VALUES (7, 'auto')")
    assert not ADAPTER.in_transaction(raw)
    assert _count(mc_kw(), table) == 1
    conn.begin()
    conn.cursor().execute(f"INSERT INTO {table} VALUES (8, 'in begin')")
    assert ADAPTER.in_transaction(raw)
    conn.rollback()
    assert _count(mc_kw(), table) == 1
    conn.autocommit(False)  # mysqlclient's own method form keeps working
    assert conn.get_autocommit() is False
    ADAPTER.set_autocommit(raw, True)
    assert _one(conn, "SELECT @@autocommit") == (1,)


def test_with_connection_closes_as_mysqlclient_does(mc_kw: Any) -> None:
    with bluegreen.connect(MySQLdb.connect, plugins="", **mc_kw()) as c:
        assert isinstance(c, bluegreen.Connection)
        c.cursor().execute("SELECT 1")
    assert not c.open


class Calls(Plugin):
    """Records the method names the execute hook sees."""

    seen: list[str] = []

    def execute(self, conn: Any, method_name: str, call: Callable[[], T]) -> T:
        self.seen.append(method_name)
        return call()


@pytest.fixture
def calls() -> Iterator[list[str]]:
    runtime().plugins.register("calls", Calls)
    Calls.seen = []
    yield Calls.seen
    runtime().plugins.unregister("calls")


def test_network_calls_go_through_the_hook(mc_kw: Any, calls: list[str]) -> None:
    conn = bluegreen.connect(MySQLdb.connect, plugins="calls", **mc_kw())
    try:
        db = _one(conn, "SELECT DATABASE()")[0]
        calls.clear()
        conn.ping()
        conn.begin()
        conn.select_db(db)
        conn.set_character_set("utf8mb4")
        conn.autocommit(True)
        conn.autocommit = False
        conn.query("SELECT 1")
        result = conn.store_result()
        assert result.fetch_row() == ((1,),)
        assert conn.next_result() == -1
        assert conn.show_warnings() == ()
        assert conn.get_autocommit() is False  # local: not hooked
        assert conn.character_set_name() == "utf8mb4"  # local
        assert calls == [
            "ping",
            "begin",
            "select_db",
            "set_character_set",
            "autocommit",
            "autocommit",
            "query",
            "store_result",
            "next_result",
            "show_warnings",
        ]
        cur = conn.cursor(MySQLdb.cursors.SSCursor)
        cur.execute("SELECT 1 UNION ALL SELECT 2")
        calls.clear()
        assert cur.fetchone() == (1,)
        assert cur.fetchall() == ((2,),)
        assert calls == ["fetchone", "fetchall"]
        cur.close()
        buffered = conn.cursor()
        buffered.execute("SELECT 1")
        calls.clear()
        assert buffered.fetchone() == (1,)
        assert calls == []  # rows already read: no hook
    finally:
        conn.close()


def test_lost_connection_after_a_server_side_kill(
    conn: Any, mariadb_instance: Any
) -> None:
    raw = conn.driver_connection
    (pid,) = _one(conn, "SELECT CONNECTION_ID()")
    assert not ADAPTER.peer_closed(raw)  # idle and alive: nothing to read
    mariadb_instance.execute_admin(f"KILL {pid}")
    deadline = time.monotonic() + 5
    while not ADAPTER.peer_closed(raw) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ADAPTER.peer_closed(raw)
    assert not ADAPTER.in_transaction(raw)
    cur = conn.cursor()
    with pytest.raises(MySQLdb.OperationalError) as info:
        cur.execute("SELECT 1")
    assert type(info.value) is MySQLdb.OperationalError
    assert info.value.args[0] in (2006, 2013, 1927)
    assert ADAPTER.is_connection_lost(info.value, raw)
    assert ADAPTER.is_connection_lost(info.value)  # by its error number alone
    conn.close()
    # A closed connection: every call fails, and is classified as lost.
    with pytest.raises(MySQLdb.OperationalError) as closed:
        raw.ping()
    assert ADAPTER.is_connection_lost(closed.value, raw)
    assert ADAPTER.peer_closed(raw) and not ADAPTER.in_transaction(raw)
    assert ADAPTER.session_state(raw) == {}


def test_ip_routing_reaches_the_server(mc_kw: Any, mariadb_instance: Any) -> None:
    kw = mc_kw(host="blue-name.invalid")
    ctx = ConnectContext(parse_config(ADAPTER, None, {"plugins": "", **kw}))
    assert ctx.host == "blue-name.invalid"
    assert ctx.port == mariadb_instance.port
    raw = ctx.connect(ip=mariadb_instance.host)
    try:
        # mysqlclient connects to the address itself: it cannot keep the name.
        assert mariadb_instance.host in raw.get_host_info()
        cur = raw.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        raw.close()


def test_ip_routing_never_loosens_tls(
    mc_kw: Any, mariadb_instance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The test server speaks no TLS: with ssl_mode=VERIFY_IDENTITY the
    routed connection fails with mysqlclient's own error, as it does by
    name, rather than going on in clear text; a warning says why."""
    from bluegreen._runtime import runtime

    warn_log = runtime().warnings

    warn_log.clear()
    caplog.set_level(logging.WARNING, logger="bluegreen")
    kw = mc_kw(host="blue-name.invalid", ssl_mode="VERIFY_IDENTITY")
    ctx = ConnectContext(parse_config(ADAPTER, None, {"plugins": "", **kw}))
    with pytest.raises(MySQLdb.OperationalError) as info:
        ctx.connect(ip=mariadb_instance.host)
    assert type(info.value) is MySQLdb.OperationalError
    assert info.value.args[0] == 2026  # CR_SSL_CONNECTION_ERROR
    assert not ADAPTER.is_connection_lost(info.value)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "blue-name.invalid" in text and "VERIFY_IDENTITY" in text
    assert mariadb_instance.app_password not in text
    warn_log.clear()


TLS_NAME = "blue-db.mysqlclient-tls.invalid"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_mariadb(server_pool: Any, sim_dns: Any) -> Iterator[tuple[Any, str]]:
    """A MariaDB of its own with TLS on, its certificate (from a throwaway
    CA) naming TLS_NAME only, which resolves to it; yields it and the CA."""
    inst = server_pool.create("mariadb", "test-mariadb-tls")
    inst.prepare()
    where = Path(inst.socket_dir)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=bluegreen test CA", cwd=where,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={TLS_NAME}", cwd=where,
    )  # fmt: skip
    (where / "server.ext").write_text(f"subjectAltName=DNS:{TLS_NAME}\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2",
        "-extfile", "server.ext", cwd=where,
    )  # fmt: skip
    if inst.account is not None:
        for name in ("server.key", "server.pem", "ca.pem"):
            os.chown(where / name, inst.account.uid, inst.account.gid)
    plain_argv = inst._argv
    inst._argv = lambda: [
        *plain_argv(),
        f"--ssl-ca={where / 'ca.pem'}",
        f"--ssl-cert={where / 'server.pem'}",
        f"--ssl-key={where / 'server.key'}",
    ]
    inst.start()
    sim_dns.set(TLS_NAME, inst.host)
    try:
        yield inst, str(where / "ca.pem")
    finally:
        sim_dns.remove(TLS_NAME)
        inst.stop()


def _cipher(raw: Any) -> str:
    cur = raw.cursor()
    try:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        return str(cur.fetchone()[1])
    finally:
        cur.close()


@pytest.mark.parametrize("mode", ["VERIFY_IDENTITY", "VERIFY_CA"])
def test_ip_routing_fails_a_host_name_check_rather_than_skip_it(
    tls_mariadb: tuple[Any, str], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """By name the certificate verifies; routed to the IP, mysqlclient can
    only check it against the IP, so a host-name check fails with
    mysqlclient's own error (and a warning), never passing unverified.
    (MariaDB Connector/C checks the name for VERIFY_CA too.)"""
    from bluegreen._runtime import runtime

    warn_log = runtime().warnings

    inst, ca = tls_mariadb
    warn_log.clear()
    caplog.set_level(logging.WARNING, logger="bluegreen")
    kw = inst.connect_kwargs(TLS_NAME)
    kw.update(connect_timeout=5, ssl_mode=mode, ssl={"ca": ca})
    by_name = MySQLdb.connect(**kw)
    try:
        assert _cipher(by_name)  # encrypted, certificate verified
    finally:
        by_name.close()
    ctx = ConnectContext(parse_config(ADAPTER, None, {"plugins": "", **kw}))
    if mode == "VERIFY_CA" and not _mariadb_client():
        raw = ctx.connect(ip=inst.host)  # libmysqlclient: the chain only
        try:
            assert _cipher(raw)
        finally:
            raw.close()
        return
    with pytest.raises(MySQLdb.OperationalError) as info:
        ctx.connect(ip=inst.host)
    assert type(info.value) is MySQLdb.OperationalError
    assert info.value.args[0] == 2026  # CR_SSL_CONNECTION_ERROR
    text = " ".join(r.getMessage() for r in caplog.records)
    assert TLS_NAME in text and mode in text and inst.host in text
    assert inst.app_password not in text
    warn_log.clear()


def test_ip_routing_keeps_tls_without_a_name_check(
    tls_mariadb: tuple[Any, str],
) -> None:
    """ssl_mode=REQUIRED (encryption, no certificate check, by name too):
    the routed connection is encrypted all the same."""
    inst, ca = tls_mariadb
    kw = inst.connect_kwargs(TLS_NAME)
    kw.update(connect_timeout=5, ssl_mode="REQUIRED", ssl={"ca": ca})
    ctx = ConnectContext(parse_config(ADAPTER, None, {"plugins": "", **kw}))
    raw = ctx.connect(ip=inst.host)
    try:
        assert inst.host in raw.get_host_info()
        assert _cipher(raw)
    finally:
        raw.close()


def test_monitoring_params_open_an_autocommit_tuple_connection(mc_kw: Any) -> None:
    kw = mc_kw(cursorclass=MySQLdb.cursors.DictCursor, autocommit=False)
    cfg = parse_config(ADAPTER, None, {"plugins": "", **kw})
    params = cfg.own_params("bg")
    raw = ADAPTER.connect(params)
    try:
        assert raw.get_autocommit() is True
        assert ADAPTER.get_autocommit(raw) is True
        cur = raw.cursor()
        cur.execute("SELECT @@autocommit, 'x'")
        assert cur.fetchone() == (1, "x")  # tuples: cursorclass was left out
    finally:
        raw.close()


def test_wrapper_errors_are_mysqldb_operational_errors() -> None:
    errors = ADAPTER.errors
    for cls in (errors.SwitchoverTimeoutError, errors.GreenHostRejectedError):
        assert issubclass(cls, MySQLdb.OperationalError)
        assert issubclass(cls, bluegreen.OperationalError)
    try:
        raise errors.SwitchoverTimeoutError("waited")
    except MySQLdb.OperationalError as exc:
        assert isinstance(exc, bluegreen.SwitchoverTimeoutError)
        assert str(exc) == "waited"


def test_session_state_survives_into_a_new_connection(
    mc_kw: Any, mariadb_instance: Any
) -> None:
    old = MySQLdb.connect(**mc_kw())
    new = MySQLdb.connect(**mc_kw())
    try:
        old.select_db("information_schema")
        old.set_character_set("latin1")
        old.autocommit(True)
        state = ADAPTER.session_state(old)
        assert state["autocommit"] is True
        assert state["charset"][0] == "latin1"
        if _mariadb_client():  # the database the client library tracks
            assert state["db"] == "information_schema"
        else:
            assert state["db"] == mariadb_instance.dbname
        ADAPTER.restore_session(new, state)
        row = _one(new, "SELECT DATABASE(), @@character_set_client, @@autocommit")
        assert row == (state["db"], "latin1", 1)
        assert new.encoding == "cp1252"  # mysqlclient's codec for latin1
    finally:
        old.close()
        new.close()


def test_secret_masked(
    mc_kw: Any, mariadb_instance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bluegreen")
    secret = mariadb_instance.app_password
    kw = mc_kw()
    kw["passwd"] = kw.pop("password")
    c = bluegreen.connect(MySQLdb.connect, plugins="", **kw)
    try:
        assert secret not in repr(c)
        assert secret not in repr(c.wrapper_config)
    finally:
        c.close()
    assert secret not in caplog.text


def test_sqlalchemy_round_trip(mc_kw: Any) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        "mysql+mysqldb://",
        creator=lambda: bluegreen.connect(MySQLdb.connect, plugins="", **mc_kw()),
    )
    try:
        with engine.begin() as sa:
            assert sa.execute(sqlalchemy.text("SELECT :x + 1"), {"x": 1}).scalar() == 2
    finally:
        engine.dispose()
