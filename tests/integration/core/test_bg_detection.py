"""The ``bg`` plugin's deployment detection, end to end through bluegreen.connect.

Every connection here uses the default ``plugins="bg"``. The emulated RDS
metadata comes from the core conftest, as for ``test_detection.py``: an
``rds_tools`` schema in a throwaway database for PostgreSQL,
``mysql.rds_topology`` for MariaDB.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import mysql.connector
import psycopg
import pymysql
import pytest
from psycopg.pq import TransactionStatus

import bluegreen
from bluegreen._runtime import runtime
from bluegreen.bg import plugin as bg_plugin
from bluegreen.dialects import Detection, Dialect

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def fresh_detection() -> Iterator[None]:
    """An empty detection cache and no warning remembered, before and after."""
    runtime().detections.clear()
    runtime().warnings.clear()
    yield
    runtime().detections.clear()
    runtime().warnings.clear()


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Records (family, forced) for each detection the plugin runs."""
    calls: list[tuple[str, Any]] = []
    real = bg_plugin.detect

    def spy(conn: Any, family: str, **kwargs: Any) -> Detection:
        calls.append((family, kwargs.get("forced")))
        return real(conn, family, **kwargs)

    monkeypatch.setattr(bg_plugin, "detect", spy)
    return calls


@pytest.fixture
def rds_pg_db(pg_instance: Any, emulate_rds_postgres: Any) -> Iterator[str]:
    """A database with RDS PostgreSQL's metadata, which the app user cannot read."""
    name = "bg_plugin_rds_scratch"
    pg_instance.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg_instance.execute_admin(f"CREATE DATABASE {name}")
    emulate_rds_postgres(name)
    yield name
    pg_instance.execute_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _pg_transactions_work(conn: Any) -> None:
    """Queries, rollback and commit behave as on the raw driver."""
    assert conn.info.transaction_status == TransactionStatus.IDLE
    conn.execute("CREATE TEMP TABLE bg_t (n int)")
    conn.commit()
    conn.execute("INSERT INTO bg_t VALUES (1)")
    assert conn.info.transaction_status == TransactionStatus.INTRANS
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM bg_t").fetchone() == (0,)
    conn.execute("INSERT INTO bg_t VALUES (2)")
    conn.commit()
    assert conn.execute("SELECT n FROM bg_t").fetchall() == [(2,)]
    conn.commit()


# --------------------------------------------------------------------------
# (i) a plain server: no warning, one probe per host per process


@pytest.mark.postgres
def test_plain_postgres_probed_once(
    pg_kw: Any, probes: list[Any], bg_warnings: Callable[[], list[str]]
) -> None:
    for _ in range(5):
        with bluegreen.connect(psycopg.connect, **pg_kw()) as conn:
            assert conn.wrapper_settings.plugins == ("bg",)
            # (v) detection ran on this very connection and left it idle
            assert conn.info.transaction_status == TransactionStatus.IDLE
            assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
            detection = conn.wrapper_pipeline.plugins[0].detection
            assert detection.dialect is Dialect.POSTGRES
            assert not detection.probe_failed
    assert probes == [("postgres", None)]
    assert bg_warnings() == []


@pytest.mark.mariadb
def test_plain_mariadb_probed_once_across_drivers(
    pymysql_kw: Any,
    myc_kw: Any,
    probes: list[Any],
    bg_warnings: Callable[[], list[str]],
) -> None:
    for _ in range(3):
        conn = bluegreen.connect(pymysql.connect, **pymysql_kw())
        try:
            # Detection left no transaction open (autocommit is off).
            assert not conn.driver_adapter.in_transaction(conn.driver_connection)
            cur = conn.cursor()
            cur.execute("SELECT 6 * 7")
            assert cur.fetchone() == (42,)
        finally:
            conn.close()
        conn = bluegreen.connect(mysql.connector.connect, **myc_kw())
        try:
            cur = conn.cursor()
            cur.execute("SELECT 6 * 7")
            assert cur.fetchone() == (42,)
            cur.close()
        finally:
            conn.close()
    assert probes == [("mysql", None)]  # one host: one detection for both drivers
    assert bg_warnings() == []


# --------------------------------------------------------------------------
# (ii) emulated RDS metadata without the grant


@pytest.mark.postgres
def test_rds_postgres_missing_grant_warns_once_and_passes_through(
    pg_kw: Any,
    pg_instance: Any,
    rds_pg_db: str,
    probes: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bluegreen")
    user = pg_instance.app_user
    grant = (
        f"GRANT USAGE ON SCHEMA rds_tools TO {user}; "
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO {user};"
    )
    for _ in range(4):
        with bluegreen.connect(psycopg.connect, **pg_kw(dbname=rds_pg_db)) as conn:
            detection = conn.wrapper_pipeline.plugins[0].detection
            assert detection.dialect is Dialect.RDS_POSTGRES
            assert detection.missing_grant == grant
            _pg_transactions_work(conn)
    assert len(probes) == 1
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["bluegreen.bg"]
    assert grant in records[0].getMessage()
    assert pg_instance.app_password not in caplog.text


# --------------------------------------------------------------------------
# (iii) a forced wrapper_dialect skips type detection


@pytest.mark.postgres
def test_forced_dialect_skips_type_detection(
    pg_kw: Any, probes: list[Any], bg_warnings: Callable[[], list[str]]
) -> None:
    # The server is plain PostgreSQL; the setting is trusted about the type.
    kw = pg_kw(wrapper_dialect="aurora-postgres")
    for _ in range(2):
        with bluegreen.connect(psycopg.connect, **kw) as conn:
            detection = conn.wrapper_pipeline.plugins[0].detection
            assert detection.forced
            assert detection.dialect is Dialect.AURORA_POSTGRES
            assert detection.metadata_source is None  # it still checks the source
            assert conn.info.transaction_status == TransactionStatus.IDLE
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert probes == [("postgres", Dialect.AURORA_POSTGRES)]
    texts = bg_warnings()
    assert len(texts) == 1 and "does not exist" in texts[0]
    # The forced dialect is part of the cache key: auto-detection is separate.
    with bluegreen.connect(psycopg.connect, **pg_kw()) as conn:
        assert conn.wrapper_pipeline.plugins[0].detection.dialect is Dialect.POSTGRES
    assert len(probes) == 2


@pytest.mark.mariadb
@pytest.mark.usefixtures("rds_topology")
def test_forced_rds_mysql_names_the_grant(
    pymysql_kw: Any, mariadb_instance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bluegreen")
    for _ in range(3):
        conn = bluegreen.connect(
            pymysql.connect, wrapper_dialect="rds-mysql", **pymysql_kw()
        )
        try:
            assert conn.wrapper_pipeline.plugins[0].detection.forced
            cur = conn.cursor()
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
            conn.commit()
        finally:
            conn.close()
    grant = f"GRANT SELECT ON mysql.rds_topology TO '{mariadb_instance.app_user}'@'%';"
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["bluegreen.bg"]
    assert grant in records[0].getMessage()


# --------------------------------------------------------------------------
# (iv) a failing probe never breaks bluegreen.connect


@pytest.mark.postgres
def test_failing_probe_query_degrades_to_pass_through(
    pg_kw: Any,
    monkeypatch: pytest.MonkeyPatch,
    probes: list[Any],
    bg_warnings: Callable[[], list[str]],
) -> None:
    # A probe that fails on the server (as for a user who cannot read what it
    # reads) aborts the transaction; the connection must come back idle.
    from bluegreen.dialects import _postgres

    monkeypatch.setattr(_postgres, "_PG_PROBE", "SELECT * FROM bg_no_such_catalog")
    for _ in range(3):
        with bluegreen.connect(psycopg.connect, **pg_kw()) as conn:
            assert conn.wrapper_pipeline.plugins[0].detection.probe_failed
            _pg_transactions_work(conn)
    assert len(probes) == 1  # failed results are kept for the back-off period
    texts = bg_warnings()
    assert len(texts) == 1 and "dialect detection failed (UndefinedTable" in texts[0]


@pytest.mark.postgres
def test_detect_raising_degrades_to_pass_through(
    pg_kw: Any, monkeypatch: pytest.MonkeyPatch, bg_warnings: Callable[[], list[str]]
) -> None:
    calls: list[int] = []

    def broken(conn: Any, family: str, **kwargs: Any) -> Detection:
        calls.append(1)
        conn.execute("SELECT 1")  # leaves a transaction open, then fails
        raise RuntimeError("detector bug")

    monkeypatch.setattr(bg_plugin, "detect", broken)
    for _ in range(3):
        conn = bluegreen.connect(psycopg.connect, **pg_kw())
        try:
            assert conn.wrapper_pipeline.plugins[0].detection.probe_failed
            _pg_transactions_work(conn)
        finally:
            conn.close()
    assert calls == [1]
    texts = bg_warnings()
    assert len(texts) == 1 and "RuntimeError: detector bug" in texts[0]


@pytest.mark.mariadb
def test_detect_raising_mysql_connection_usable(
    pymysql_kw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(conn: Any, family: str, **kwargs: Any) -> Detection:
        raise OSError("probe I/O failed")

    monkeypatch.setattr(bg_plugin, "detect", broken)
    conn = bluegreen.connect(pymysql.connect, **pymysql_kw())
    try:
        cur = conn.cursor()
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    finally:
        conn.close()


@pytest.mark.mariadb
def test_forced_dialect_of_the_other_family_is_a_configuration_error(
    pymysql_kw: Any,
) -> None:
    with pytest.raises(bluegreen.ConfigurationError, match="postgres dialect"):
        bluegreen.connect(
            pymysql.connect, wrapper_dialect="rds-postgres", **pymysql_kw()
        )


@pytest.mark.mariadb
@pytest.mark.parametrize("connect", [pymysql.connect, mysql.connector.connect])
def test_detection_leaves_an_open_mysql_transaction_alone(
    connect: Any, mariadb_instance: Any
) -> None:
    # The driver adapter tells detection that the connection is inside a
    # transaction: nothing is probed and nothing rolled back, so the
    # application's uncommitted work survives.
    from bluegreen.dialects import detect
    from bluegreen.drivers import adapter_for

    adapter = adapter_for(connect)
    host = mariadb_instance.host
    conn = connect(
        host=host,
        port=mariadb_instance.port,
        user=mariadb_instance.app_user,
        password=mariadb_instance.app_password,
        database=mariadb_instance.dbname,
    )
    try:
        adapter.set_autocommit(conn, False)
        cur = conn.cursor()
        cur.execute("CREATE TEMPORARY TABLE pending (x INT)")
        cur.execute("START TRANSACTION")
        cur.execute("INSERT INTO pending VALUES (1)")
        assert adapter.in_transaction(conn)
        det = detect(conn, "mysql", host=host, state=adapter)
        assert det.probe_failed and det.warnings
        assert adapter.in_transaction(conn)
        cur.execute("SELECT count(*) FROM pending")
        assert cur.fetchone() == (1,)
        conn.rollback()
        cur.close()
    finally:
        conn.close()
