"""Plugins see real driver calls: hook order, fast path, IP substitution."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg.errors
import pymysql
import pytest

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.pipeline import ConnectContext, Plugin, Target
from bluegreen.settings import Setting

T = TypeVar("T")

pytestmark = pytest.mark.postgres


class Recorder(Plugin):
    """Records every hook call in a list shared by the test."""

    log: list[tuple[str, ...]] = []
    tag = "rec"

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        self.log.append((self.tag, "connect", str(ctx.host), str(ctx.port)))
        return call_next()

    def execute(self, conn: Any, method_name: str, call: Callable[[], T]) -> T:
        self.log.append((self.tag, "before", method_name))
        try:
            return call()
        finally:
            self.log.append((self.tag, "after", method_name))

    def on_close(self, conn: Any) -> None:
        self.log.append((self.tag, "close"))


class Outer(Recorder):
    tag = "outer"


class ConnectOnly(Plugin):
    """Overrides only connect: must not cost the cursor its fast path."""

    seen: list[str] = []

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        self.seen.append("connect")
        return call_next()


class ToIP(Plugin):
    """Connects to the IP of the server while keeping a made-up host name."""

    ip = ""

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        return ctx.connect(ip=self.ip)


@pytest.fixture
def plugins() -> Iterator[list[tuple[str, ...]]]:
    Recorder.log = []
    runtime().plugins.register("test-rec", Recorder)
    runtime().plugins.register("test-outer", Outer)
    runtime().plugins.register("test-connect", ConnectOnly)
    runtime().plugins.register("test-ip", ToIP)
    yield Recorder.log
    for code in ("test-rec", "test-outer", "test-connect", "test-ip"):
        runtime().plugins.unregister(code)


def test_hooks_wrap_real_calls_in_order(
    pg_kw: Any, pg_instance: Any, plugins: list[tuple[str, ...]]
) -> None:
    c = bluegreen.connect(psycopg.connect, plugins="test-outer, test-rec", **pg_kw())
    assert plugins == [
        ("outer", "connect", pg_instance.host, str(pg_instance.port)),
        ("rec", "connect", pg_instance.host, str(pg_instance.port)),
    ]
    plugins.clear()
    cur = c.cursor()
    assert cur.execute("SELECT 1") is cur
    assert cur.fetchone() == (1,)  # buffered: not hooked
    c.commit()
    assert plugins == [
        ("outer", "before", "execute"),
        ("rec", "before", "execute"),
        ("rec", "after", "execute"),
        ("outer", "after", "execute"),
        ("outer", "before", "commit"),
        ("rec", "before", "commit"),
        ("rec", "after", "commit"),
        ("outer", "after", "commit"),
    ]
    plugins.clear()
    with pytest.raises(psycopg.errors.UndefinedTable):
        cur.execute("SELECT * FROM missing_table_for_hooks")
    assert plugins[-1] == ("outer", "after", "execute")
    c.rollback()
    plugins.clear()
    c.close()
    c.close()
    assert plugins == [("outer", "close"), ("rec", "close")]


def test_streaming_cursor_fetches_are_hooked(
    pg_kw: Any, plugins: list[tuple[str, ...]]
) -> None:
    with bluegreen.connect(psycopg.connect, plugins="test-rec", **pg_kw()) as c:
        cur = c.cursor(name="streamed")
        cur.execute("SELECT g FROM generate_series(1, 3) g")
        plugins.clear()
        assert cur.fetchone() == (1,)
        assert [r[0] for r in cur] == [2, 3]
        assert ("rec", "before", "fetchone") in plugins
        cur.close()


class CountingServerCursor(psycopg.ServerCursor[Any]):
    """Counts one-row fetches (a round trip each on a named cursor)."""

    one_row_fetches = 0

    def fetchone(self) -> Any:
        CountingServerCursor.one_row_fetches += 1
        return super().fetchone()


def test_iterating_a_streaming_cursor_fetches_in_batches(
    pg_kw: Any, plugins: list[tuple[str, ...]]
) -> None:
    """The proxy iterates with the driver's own iterator (itersize rows per
    round trip), each step through the hook, never row by row."""
    with bluegreen.connect(psycopg.connect, plugins="test-rec", **pg_kw()) as c:
        c.server_cursor_factory = CountingServerCursor
        cur = c.cursor(name="batched")
        cur.itersize = 50
        cur.execute("SELECT g FROM generate_series(1, 120) g")
        plugins.clear()
        CountingServerCursor.one_row_fetches = 0
        assert [r[0] for r in cur] == list(range(1, 121))
        assert CountingServerCursor.one_row_fetches == 0
        assert plugins.count(("rec", "before", "fetchmany")) == 121  # + the end
        cur.close()


def test_connect_only_plugin_keeps_fast_path(
    pg_kw: Any, plugins: list[tuple[str, ...]]
) -> None:
    ConnectOnly.seen = []
    with bluegreen.connect(psycopg.connect, plugins="test-connect", **pg_kw()) as c:
        assert ConnectOnly.seen == ["connect"]
        assert c.wrapper_pipeline is not None
        assert c.wrapper_pipeline.execute is None
        cur = c.cursor()
        assert cur._bg_hook is None
        assert cur.execute("SELECT 2").fetchone() == (2,)


def test_psycopg_ip_substitution_uses_hostaddr(
    pg_kw: Any, pg_instance: Any, plugins: list[tuple[str, ...]]
) -> None:
    ToIP.ip = pg_instance.host
    kw = pg_kw(host="blue-db.example.invalid")
    with bluegreen.connect(psycopg.connect, plugins="test-ip", **kw) as c:
        assert c.info.host == "blue-db.example.invalid"
        assert c.info.hostaddr == pg_instance.host
        assert c.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.mariadb
def test_pymysql_hooks(pymysql_kw: Any, plugins: list[tuple[str, ...]]) -> None:
    c = bluegreen.connect(pymysql.connect, plugins="test-rec", **pymysql_kw())
    try:
        plugins.clear()
        with c.cursor(pymysql.cursors.SSCursor) as cur:
            assert isinstance(cur.execute("SELECT seq FROM seq_1_to_3"), int)
            assert list(cur.fetchall()) == [(1,), (2,), (3,)]
        assert plugins == [
            ("rec", "before", "execute"),
            ("rec", "after", "execute"),
            ("rec", "before", "fetchall"),
            ("rec", "after", "fetchall"),
        ]
    finally:
        c.close()


@pytest.mark.mariadb
def test_pymysql_ip_substitution_keeps_the_host_name(
    pymysql_kw: Any, mariadb_instance: Any, plugins: list[tuple[str, ...]]
) -> None:
    ToIP.ip = mariadb_instance.host
    kw = pymysql_kw(host="blue-db.example.invalid")
    c = bluegreen.connect(pymysql.connect, plugins="test-ip", **kw)
    try:
        assert c.host == "blue-db.example.invalid"
        # PyMySQL keeps the name (used for TLS) while the socket goes to the IP.
        assert c.driver_connection._sock.getpeername()[0] == mariadb_instance.host
        with c.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        c.close()


@pytest.mark.mariadb
def test_pymysql_ip_substitution_unreachable_raises_the_drivers_error(
    pymysql_kw: Any, plugins: list[tuple[str, ...]]
) -> None:
    # Nothing listens on this loopback address: the refusal must surface as
    # PyMySQL's own OperationalError (2003), as it would without bluegreen.
    ToIP.ip = "127.0.1.250"
    kw = pymysql_kw(host="blue-db.example.invalid")
    with pytest.raises(pymysql.err.OperationalError) as info:
        bluegreen.connect(pymysql.connect, plugins="test-ip", **kw)
    assert info.value.args[0] == 2003


@pytest.mark.mariadb
def test_mysql_connector_ip_substitution_reaches_the_server(
    myc_kw: Any, mariadb_instance: Any, plugins: list[tuple[str, ...]]
) -> None:
    import mysql.connector

    ToIP.ip = mariadb_instance.host
    kw = myc_kw(host="blue-db.example.invalid")
    c = bluegreen.connect(mysql.connector.connect, plugins="test-ip", **kw)
    try:
        cur = c.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
        cur.close()
    finally:
        c.close()


class Vault(Plugin):
    """A plugin of the application's own: it declares its settings and a
    driver-argument prefix, and supplies the password of every connection
    (a secrets-manager plugin, in miniature)."""

    settings = (
        Setting("vault_secret", str, "", "The password to hand out.", secret=True),
        Setting("vault_rounds", int, 1, "How many times it was asked.", minimum=1),
    )
    param_prefixes = ("vault-side-",)
    seen: list[tuple[Any, ...]] = []
    sides: list[Any] = []

    @classmethod
    def credentials(cls, ctx: ConnectContext, target: Any) -> dict[str, Any]:
        cls.seen.append(
            (target.host, target.ip, target.opener, ctx.settings.vault_rounds)
        )
        return {"password": ctx.settings.vault_secret}

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        # Its own side connection, with its own prefixed arguments.
        side = ctx.credentials(
            ctx.own_params("vault"), Target(ctx.host, ctx.port, None, None, "vault")
        )
        self.sides.append(side)
        return call_next()


def test_a_plugin_of_the_application_declares_settings_and_credentials(
    pg_kw: Any, pg_instance: Any
) -> None:
    """No change to the core: registering the class is enough for its
    settings to be accepted, converted, validated and masked, and for its
    credentials hook to supply the password of the real connection (the
    application's own password is wrong)."""
    Vault.seen = []
    Vault.sides = []
    bluegreen.register_plugin("vault", Vault)
    try:
        kw = pg_kw()
        secret = kw.pop("password")
        with bluegreen.connect(
            psycopg.connect,
            plugins="vault",
            password="wrong",
            vault_secret=secret,
            vault_rounds="3",  # from a DSN: converted
            **{"vault-side-application_name": "vault-side"},
            **kw,
        ) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (
                pg_instance.app_user,
            )
            assert conn.wrapper_settings.vault_rounds == 3
        (side,) = Vault.sides
        assert side.kwargs["application_name"] == "vault-side"
        assert side.kwargs["password"] == secret and side.kwargs["autocommit"] is True
        assert Vault.seen == [
            (pg_instance.host, None, "vault", 3),
            (pg_instance.host, None, "", 3),
        ]
        with pytest.raises(bluegreen.ConfigurationError) as info:
            bluegreen.connect(psycopg.connect, plugins="vault", vault_rounds=0, **kw)
        assert "vault_rounds" in str(info.value) and "> 0" in str(info.value)
        with pytest.raises(
            bluegreen.ConfigurationError, match="did you mean 'vault_secret'"
        ):
            bluegreen.connect(
                psycopg.connect, plugins="vault", vault_secrte=secret, **kw
            )
        with pytest.raises(bluegreen.ConfigurationError) as info:
            bluegreen.connect(
                psycopg.connect, plugins="vault", vault_secret=[secret], **kw
            )
        assert "***" in str(info.value) and secret not in str(info.value)
        with pytest.raises(
            bluegreen.ConfigurationError, match="has no connection parameter"
        ):
            bluegreen.connect(
                psycopg.connect,
                plugins="vault",
                **{"vault-side-aplication_name": "x"},
                **kw,
            )
    finally:
        bluegreen.unregister_plugin("vault")
    # Once unregistered, its settings are no wrapper's: they reach the driver.
    with pytest.raises(psycopg.ProgrammingError, match="vault_rounds"):
        bluegreen.connect(psycopg.connect, plugins="", vault_rounds=2, **pg_kw())


def test_a_plugin_setting_must_carry_its_code() -> None:
    class Sloppy(Plugin):
        settings = (Setting("rounds", int, 1, "No prefix."),)

    # Refused when registered, leaving the registry as it was: a bad
    # declaration never makes every later connect() fail.
    with pytest.raises(bluegreen.ConfigurationError, match="must start with 'sloppy_'"):
        bluegreen.register_plugin("sloppy", Sloppy)
    assert "sloppy" not in bluegreen.runtime().plugins.codes()
