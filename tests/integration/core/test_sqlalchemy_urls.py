"""SQLAlchemy engines made from a URL alone (``postgresql+bluegreen_psycopg``,
``mysql+bluegreen_pymysql``, ...) connect through bluegreen on real servers:
settings in the query string reach bluegreen, driver parameters the driver,
a misspelt setting is an error that names it, a session the server ends is
a disconnect, and Alembic runs a migration through such a URL."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import URL

import bluegreen
import bluegreen.bg
import bluegreen.sqlalchemy
from bluegreen import errors

#: URL driver name -> (server, the driver's connect-timeout parameter, a
#: driver parameter given in the query string, SQL that shows it took effect)
DIALECTS: dict[str, tuple[str, str, dict[str, str], str, str]] = {
    "postgresql+bluegreen_psycopg": (
        "pg",
        "connect_timeout",
        {"application_name": "bg-url-test"},
        "SELECT current_setting('application_name')",
        "bg-url-test",
    ),
    "postgresql+bluegreen_psycopg2": (
        "pg",
        "connect_timeout",
        {"application_name": "bg-url-test"},
        "SELECT current_setting('application_name')",
        "bg-url-test",
    ),
    "mysql+bluegreen_pymysql": (
        "my",
        "connect_timeout",
        {"init_command": "SET @bg_url = 'bg-url-test'"},
        "SELECT @bg_url",
        "bg-url-test",
    ),
    "mariadb+bluegreen_pymysql": (
        "my",
        "connect_timeout",
        {"init_command": "SET @bg_url = 'bg-url-test'"},
        "SELECT @bg_url",
        "bg-url-test",
    ),
    "mysql+bluegreen_mysqlconnector": (
        "my",
        "connection_timeout",
        {"init_command": "SET @bg_url = 'bg-url-test'"},
        "SELECT @bg_url",
        "bg-url-test",
    ),
    "mariadb+bluegreen_mysqlconnector": (
        "my",
        "connection_timeout",
        {"init_command": "SET @bg_url = 'bg-url-test'"},
        "SELECT @bg_url",
        "bg-url-test",
    ),
    "mysql+bluegreen_mysqldb": (
        "my",
        "connect_timeout",
        {"init_command": "SET @bg_url = 'bg-url-test'"},
        "SELECT @bg_url",
        "bg-url-test",
    ),
    "mariadb+bluegreen_mysqldb": (
        "my",
        "connect_timeout",
        {"init_command": "SET @bg_url = 'bg-url-test'"},
        "SELECT @bg_url",
        "bg-url-test",
    ),
}

SYNC = sorted(DIALECTS)


@pytest.fixture(autouse=True)
def fresh_bg() -> Iterator[None]:
    bluegreen.bg.shutdown()
    yield
    bluegreen.bg.shutdown()


@pytest.fixture
def make_url(
    request: pytest.FixtureRequest,
) -> Callable[..., URL]:
    """``make_url(drivername, **query)``: a URL for the app user of the
    session's PostgreSQL or MariaDB test server (started on demand), with a
    5 s connect timeout."""

    def make(drivername: str, timeout_key: str = "", **query: str) -> URL:
        if not timeout_key:
            timeout_key = DIALECTS[drivername][1]
        server = "pg" if drivername.startswith("postgresql+") else "my"
        inst = request.getfixturevalue(
            "pg_instance" if server == "pg" else "mariadb_instance"
        )
        return URL.create(
            drivername,
            username=inst.app_user,
            password=inst.app_password,
            host=inst.host,
            port=inst.port,
            database=inst.dbname,
            query={timeout_key: "5", **query},
        )

    return make


def _proxy(conn: sqlalchemy.Connection) -> bluegreen.Connection:
    return bluegreen.connection_proxy(conn.connection.dbapi_connection)


@pytest.mark.parametrize("drivername", SYNC)
def test_url_connects_through_bluegreen(
    make_url: Callable[..., URL],
    bg_warnings: Callable[[], list[str]],
    drivername: str,
) -> None:
    _, _, driver_param, sql, shown = DIALECTS[drivername]
    url = make_url(
        drivername,
        bg_id="url-test",
        bg_connect_timeout_ms="1234",
        **driver_param,
    )
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as c:
            proxy = _proxy(c)  # raises TypeError if not a bluegreen proxy
            # Settings from the query string reach bluegreen, converted.
            assert proxy.wrapper_settings.bg_id == "url-test"
            assert proxy.wrapper_settings.bg_connect_timeout_ms == 1234
            assert proxy.wrapper_settings.plugins == ("bg",)
            # ... and are not passed to the driver.
            assert "bg_id" not in proxy.wrapper_config.params.kwargs
            # A driver parameter from the query string reaches the driver.
            assert c.execute(sqlalchemy.text(sql)).scalar() == shown
            assert c.execute(sqlalchemy.text("SELECT 40 + 2")).scalar() == 42
        assert bluegreen.bg.status("url-test") is not None
        # The password is not in the engine's repr.
        assert "app-secret" not in repr(engine)
        # The connect timeout from the query string was seen (no warning).
        assert bg_warnings() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("drivername", SYNC)
def test_misspelt_setting_is_named(
    make_url: Callable[..., URL], drivername: str
) -> None:
    engine = sqlalchemy.create_engine(make_url(drivername, bg_idd="orders"))
    try:
        with pytest.raises(errors.ConfigurationError) as info:
            engine.connect()
        message = str(info.value)
        assert "'bg_idd'" in message and "did you mean 'bg_id'" in message
        assert "app-secret" not in message
        # A bad value is named too (strings from the URL are converted).
        engine2 = sqlalchemy.create_engine(
            make_url(drivername, bg_connect_timeout_ms="soon")
        )
        with pytest.raises(errors.ConfigurationError, match="bg_connect_timeout_ms"):
            engine2.connect()
    finally:
        engine.dispose()


def _kill(inst: Any, server: str, session_id: int) -> None:
    if server == "pg":
        inst.execute_admin("SELECT pg_terminate_backend(%s)", (session_id,))
    else:
        inst.execute_admin(f"KILL {int(session_id)}")


@pytest.mark.parametrize("drivername", SYNC)
def test_ended_session_is_a_disconnect(
    make_url: Callable[..., URL],
    request: pytest.FixtureRequest,
    drivername: str,
) -> None:
    server = DIALECTS[drivername][0]
    inst = request.getfixturevalue(
        "pg_instance" if server == "pg" else "mariadb_instance"
    )
    session_sql = (
        "SELECT pg_backend_pid()" if server == "pg" else "SELECT CONNECTION_ID()"
    )
    engine = sqlalchemy.create_engine(make_url(drivername), pool_size=1)
    try:
        with engine.connect() as c:
            session = c.execute(sqlalchemy.text(session_sql)).scalar()
            proxy = _proxy(c)
        _kill(inst, server, int(session))  # type: ignore[arg-type]
        with engine.connect() as c:
            assert _proxy(c) is proxy  # the pool's one connection, now dead
            with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
                c.execute(sqlalchemy.text("SELECT 1"))
        assert info.value.connection_invalidated
        assert not isinstance(info.value.orig, bluegreen.Error)
        assert engine.dialect.is_disconnect(info.value.orig, proxy, None)
        # The pool replaced it: the next connection works.
        with engine.connect() as c:
            assert _proxy(c) is not proxy
            assert c.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        # The wrapper's own errors do not invalidate a connection that no
        # switchover dropped (see bluegreen.sqlalchemy: the call was not
        # sent / there is no connection yet); test_bg_sqlalchemy_errors
        # shows a dropped one replaced.
        dialect = engine.dialect
        for error in (errors.SwitchoverTimeoutError, errors.GreenHostRejectedError):
            assert not dialect.is_disconnect(error("x"), proxy, None)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_invalidate_on_switchover_outside_a_switchover(
    make_url: Callable[..., URL],
) -> None:
    """Outside a switchover the pool keeps its connections; the helper
    takes an Engine, an AsyncEngine or a Pool, and nothing else."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = sqlalchemy.create_engine(
        make_url("postgresql+bluegreen_psycopg"), pool_size=1, max_overflow=0
    )
    try:
        bluegreen.sqlalchemy.invalidate_on_switchover(engine)
        bluegreen.sqlalchemy.invalidate_on_switchover(engine.pool)  # no-op
        with engine.connect() as c:
            first = _proxy(c)
            assert not bluegreen.bg.dropped(first)
        with engine.connect() as c:
            assert _proxy(c) is first
        async_engine = create_async_engine(make_url("postgresql+bluegreen_psycopg"))
        bluegreen.sqlalchemy.invalidate_on_switchover(async_engine)
        assert sqlalchemy.event.contains(
            async_engine.sync_engine.pool,
            "checkout",
            bluegreen.sqlalchemy._replace_dropped,
        )
        with pytest.raises(TypeError, match="Engine, AsyncEngine or Pool"):
            bluegreen.sqlalchemy.invalidate_on_switchover("postgresql://")  # type: ignore[arg-type]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_psycopg_type_lookups_through_the_proxy(
    make_url: Callable[..., URL], pg_instance: Any
) -> None:
    """SQLAlchemy's psycopg dialect looks up hstore with psycopg's
    ``TypeInfo.fetch`` on the connection; JSONB and HSTORE round-trip."""
    from sqlalchemy.dialects.postgresql import HSTORE, JSONB

    pg_instance.execute_admin("CREATE EXTENSION IF NOT EXISTS hstore")
    engine = sqlalchemy.create_engine(make_url("postgresql+bluegreen_psycopg"))
    try:
        with engine.connect() as c:
            _proxy(c)
            assert engine.dialect._has_native_hstore  # type: ignore[attr-defined]
            value = c.execute(
                sqlalchemy.select(sqlalchemy.literal({"a": "1"}, HSTORE))
            ).scalar()
            assert value == {"a": "1"}
            doc = c.execute(
                sqlalchemy.select(sqlalchemy.literal({"k": [1, 2]}, JSONB))
            ).scalar()
            assert doc == {"k": [1, 2]}
    finally:
        engine.dispose()
        pg_instance.execute_admin("DROP EXTENSION IF EXISTS hstore")


@pytest.mark.postgres
def test_alembic_upgrade_through_a_bluegreen_url(
    make_url: Callable[..., URL], pg_instance: Any, tmp_path: Path
) -> None:
    from alembic import command
    from alembic.config import Config

    scripts = tmp_path / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(
        textwrap.dedent(
            """
            from alembic import context
            from sqlalchemy import engine_from_config, pool

            config = context.config
            engine = engine_from_config(
                config.get_section(config.config_ini_section, {}),
                prefix="sqlalchemy.",
                poolclass=pool.NullPool,
            )
            with engine.connect() as connection:
                config.attributes["dbapi"] = connection.connection.dbapi_connection
                context.configure(connection=connection, target_metadata=None)
                with context.begin_transaction():
                    context.run_migrations()
            """
        )
    )
    (scripts / "versions" / "0001_orders.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from alembic import op

            revision = "0001"
            down_revision = None
            branch_labels = None
            depends_on = None

            def upgrade():
                op.create_table(
                    "bg_alembic_orders",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("label", sa.Text),
                )

            def downgrade():
                op.drop_table("bg_alembic_orders")
            """
        )
    )
    url = make_url("postgresql+bluegreen_psycopg", bg_id="alembic")
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    cfg.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
    )
    pg_instance.execute_admin("DROP TABLE IF EXISTS bg_alembic_orders, alembic_version")
    try:
        command.upgrade(cfg, "head")
        proxy = bluegreen.connection_proxy(cfg.attributes["dbapi"])
        assert proxy.wrapper_settings.bg_id == "alembic"
        rows = pg_instance.execute_admin(
            "SELECT (SELECT version_num FROM alembic_version),"
            " to_regclass('bg_alembic_orders') IS NOT NULL"
        )
        assert rows == [("0001", True)]
    finally:
        pg_instance.execute_admin(
            "DROP TABLE IF EXISTS bg_alembic_orders, alembic_version"
        )


# -- asyncio -------------------------------------------------------------------

ASYNC = [
    "mysql+bluegreen_aiomysql",
    "postgresql+bluegreen_asyncpg",
    "postgresql+bluegreen_psycopg_async",
]


@pytest.mark.parametrize("drivername", ASYNC)
def test_async_url_connects_through_bluegreen(
    make_url: Callable[..., URL], drivername: str
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(drivername, "connect_timeout", bg_id="url-async")
    connect_args: dict[str, Any] = {}
    if "asyncpg" in drivername:
        # SQLAlchemy's asyncpg dialect passes query values on as strings;
        # asyncpg wants a number (the same without bluegreen).
        url = url.difference_update_query(["connect_timeout"])
        connect_args["timeout"] = 5

    async def main() -> None:
        engine = create_async_engine(url, connect_args=connect_args)
        try:
            async with engine.connect() as c:
                raw = await c.get_raw_connection()
                proxy = bluegreen.sqlalchemy._proxy_of(raw)
                assert proxy is not None
                assert proxy.wrapper_settings.bg_id == "url-async"
                assert (
                    await c.execute(sqlalchemy.text("SELECT 40 + 2"))
                ).scalar() == 42
            bad = create_async_engine(
                url.update_query_dict({"bg_idd": "x"}), connect_args=connect_args
            )
            with pytest.raises(errors.ConfigurationError, match="bg_idd"):
                async with bad.connect():
                    pass
            await bad.dispose()
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.postgres
def test_async_engine_from_the_sync_psycopg_url(make_url: Callable[..., URL]) -> None:
    """``create_async_engine("postgresql+bluegreen_psycopg://...")`` gets the
    asyncio twin, as SQLAlchemy's own psycopg dialect does."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(make_url("postgresql+bluegreen_psycopg"))
    assert isinstance(
        engine.dialect, bluegreen.sqlalchemy.PGDialectAsync_bluegreen_psycopg
    )

    async def main() -> None:
        try:
            async with engine.connect() as c:
                raw = await c.get_raw_connection()
                assert isinstance(
                    bluegreen.sqlalchemy._proxy_of(raw), bluegreen.AsyncConnection
                )
                assert (await c.execute(sqlalchemy.text("SELECT 1"))).scalar() == 1
        finally:
            await engine.dispose()

    asyncio.run(main())
