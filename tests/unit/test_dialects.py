"""Unit tests of bluegreen.dialects with scripted fake DB-API connections."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bluegreen import dialects
from bluegreen._runtime import runtime
from bluegreen.dialects import (
    AURORA_PG_METADATA,
    MYSQL_METADATA,
    RDS_PG_METADATA,
    Detection,
    DetectionCache,
    Dialect,
    TopologyRow,
)
from bluegreen.dialects._mysql import _mysql_user
from bluegreen.errors import ConfigurationError

# --------------------------------------------------------------------------
# A scripted DB-API connection


class FakeError(Exception):
    """A driver error; ``errno`` like mysql-connector, args[0] like PyMySQL."""

    def __init__(self, errno: int | None = None, msg: str = "boom") -> None:
        super().__init__(errno, msg) if errno is not None else super().__init__(msg)
        if errno is not None:
            self.errno = errno


Answer = list[tuple[Any, ...]] | BaseException


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: Any = None
        self._rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.conn.executed.append(sql)
        if self.conn.aborted:
            raise FakeError(msg="current transaction is aborted")
        answers = [a for needle, a in self.conn.script if needle in sql]
        answer = answers[0] if answers else self.conn.default
        if isinstance(answer, BaseException):
            if not self.conn.autocommit and self.conn.error_aborts:
                self.conn.aborted = True
            raise answer
        self.description = [("c",)]
        self._rows = list(answer)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def close(self) -> None:
        self.conn.closed_cursors += 1


class FakeConnection:
    """Answers queries by the first script entry whose needle is in the SQL.

    Outside autocommit an error aborts the transaction until a rollback, as
    on PostgreSQL, unless ``error_aborts`` is False (MySQL).
    """

    def __init__(
        self,
        script: list[tuple[str, Answer]],
        *,
        autocommit: bool = False,
        default: Answer | None = None,
        error_aborts: bool = True,
    ) -> None:
        self.script = script
        self.autocommit = autocommit
        self.error_aborts = error_aborts
        self.default: Answer = default if default is not None else FakeError(1146)
        self.executed: list[str] = []
        self.rollbacks = 0
        self.aborted = False
        self.closed_cursors = 0

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def rollback(self) -> None:
        self.rollbacks += 1
        self.aborted = False


def pg_row(
    *,
    exts: str | None = None,
    aurora_meta: bool | None = None,
    rds_meta: bool | None = None,
    aurora_topo: bool | None = None,
    multi_az: bool | None = None,
    glob: bool | None = None,
) -> list[tuple[Any, ...]]:
    return [("16.4", exts, aurora_meta, rds_meta, aurora_topo, multi_az, glob, "app")]


def pg_conn(row: list[tuple[Any, ...]], *extra: tuple[str, Answer]) -> FakeConnection:
    return FakeConnection(
        [("pg_catalog.pg_proc", row), *extra], default=FakeError(msg="no such function")
    )


def mysql_conn(
    *extra: tuple[str, Answer],
    comment: str = "MariaDB Server",
    basedir: str = "/usr",
    aurora: bool = False,
) -> FakeConnection:
    script: list[tuple[str, Answer]] = [
        *extra,
        ("@@version_comment", [("10.11.6", comment, basedir, "app@%")]),
        ("aurora_version", [("aurora_version", "3.08.0")] if aurora else []),
        ("information_schema.replica_host_status", FakeError(1109)),
        ("mysql.replica_host_status", FakeError(1146)),
        ("aurora_global_db_instance_status", FakeError(1109)),
    ]
    return FakeConnection(script, error_aborts=False)


# --------------------------------------------------------------------------
# Dialect enum and settings


def test_dialect_properties() -> None:
    assert Dialect.AURORA_POSTGRES.family == "postgres"
    assert Dialect.RDS_MYSQL.family == "mysql"
    assert Dialect.MYSQL.family == "mysql"
    assert Dialect.AURORA_MYSQL.is_aurora and not Dialect.AURORA_MYSQL.is_rds
    assert Dialect.RDS_POSTGRES.is_rds and not Dialect.RDS_POSTGRES.is_aurora
    assert Dialect.POSTGRES.is_plain and not Dialect.RDS_MYSQL.is_plain
    assert Dialect.plain("postgres") is Dialect.POSTGRES
    assert Dialect.plain("mysql") is Dialect.MYSQL
    with pytest.raises(ValueError):
        Dialect.plain("oracle")


def test_dialect_queries() -> None:
    assert Dialect.RDS_POSTGRES.status_query == (
        "SELECT version, endpoint, port, role, status FROM rds_tools.show_topology(%s)"
    )
    assert Dialect.AURORA_POSTGRES.status_query == (
        "SELECT version, endpoint, port, role, status "
        "FROM pg_catalog.get_blue_green_fast_switchover_metadata(%s)"
    )
    assert Dialect.RDS_MYSQL.status_query == (
        "SELECT id, version, endpoint, port, role, status FROM mysql.rds_topology"
    )
    assert Dialect.AURORA_MYSQL.status_query == Dialect.RDS_MYSQL.status_query
    assert Dialect.POSTGRES.status_query is None
    assert Dialect.MYSQL.metadata_source is None
    pg_topo = Dialect.AURORA_POSTGRES.topology_query
    assert pg_topo is not None and "pg_catalog.aurora_replica_status()" in pg_topo
    assert "THEN TRUE ELSE FALSE END AS is_writer" in pg_topo
    my_topo = Dialect.AURORA_MYSQL.topology_query
    assert my_topo == (
        "SELECT server_id, session_id = 'MASTER_SESSION_ID' AS is_writer, "
        "last_update_timestamp FROM information_schema.replica_host_status"
    )
    assert Dialect.RDS_POSTGRES.topology_query is None
    with pytest.raises(ValueError):
        dialects.metadata_status_query("public.nothing")
    with pytest.raises(ValueError):
        dialects.topology_query("public.nothing")


def test_required_grants() -> None:
    assert Dialect.RDS_MYSQL.required_grants("'u'@'%'") == (
        "GRANT SELECT ON mysql.rds_topology TO 'u'@'%';"
    )
    rds_pg = Dialect.RDS_POSTGRES.required_grants("u")
    assert rds_pg is not None
    assert "GRANT USAGE ON SCHEMA rds_tools TO u;" in rds_pg
    assert "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO u;" in rds_pg
    assert Dialect.MYSQL.required_grants("u") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("aurora-postgres", Dialect.AURORA_POSTGRES),
        ("aurora-mysql", Dialect.AURORA_MYSQL),
        ("rds-postgres", Dialect.RDS_POSTGRES),
        ("postgres", Dialect.POSTGRES),
        ("mysql", Dialect.MYSQL),
        (Dialect.RDS_MYSQL, Dialect.RDS_MYSQL),
    ],
)
def test_dialect_from_setting(value: Any, expected: Dialect | None) -> None:
    assert dialects.dialect_from_setting(value) is expected


def test_dialect_from_setting_rejects_unknown() -> None:
    with pytest.raises(ConfigurationError, match=r"wrapper_dialect.*'oracle'.*aurora"):
        dialects.dialect_from_setting("oracle")


def test_every_setting_choice_is_a_dialect() -> None:
    from bluegreen.settings import DIALECTS

    assert {dialects.dialect_from_setting(v) for v in DIALECTS} == set(Dialect)


# --------------------------------------------------------------------------
# PostgreSQL detection


def test_plain_postgres() -> None:
    conn = pg_conn(pg_row())
    det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.POSTGRES
    assert det.metadata_source is None
    assert det.warnings == ()
    assert det.server_version == "16.4"
    assert not det.monitorable
    assert len(conn.executed) == 1  # one round trip
    assert conn.rollbacks == 1  # left idle: not in autocommit
    assert conn.closed_cursors == 1


def test_plain_postgres_autocommit_no_rollback() -> None:
    conn = pg_conn(pg_row())
    conn.autocommit = True
    dialects.detect(conn, "postgres")
    assert conn.rollbacks == 0


def test_rds_postgres_readable() -> None:
    det = dialects.detect(
        pg_conn(pg_row(exts="pg_stat_statements,rds_tools", rds_meta=True)), "postgres"
    )
    assert det.dialect is Dialect.RDS_POSTGRES
    assert det.metadata_source == RDS_PG_METADATA
    assert det.metadata_readable and det.missing_grant is None
    assert det.monitorable and det.metadata_readable
    assert det.status_query is not None and det.status_query.endswith("(%s)")
    assert (
        det.status_query is not None
        and "rds_tools.show_topology(%s)" in det.status_query
    )
    assert det.topology_query is None
    assert det.warnings == ()


def test_rds_postgres_missing_grant() -> None:
    det = dialects.detect(pg_conn(pg_row(rds_meta=False)), "postgres")
    assert det.dialect is Dialect.RDS_POSTGRES
    assert det.metadata_source == RDS_PG_METADATA
    assert not det.metadata_readable
    assert det.missing_grant == (
        "GRANT USAGE ON SCHEMA rds_tools TO app; "
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO app;"
    )
    assert det.monitorable and not det.metadata_readable
    assert any(det.missing_grant in w for w in det.warnings)


def test_rds_postgres_without_extension_installed() -> None:
    det = dialects.detect(pg_conn(pg_row(exts="rds_tools,plpgsql")), "postgres")
    assert det.dialect is Dialect.RDS_POSTGRES
    assert det.metadata_source is None
    assert any("CREATE EXTENSION rds_tools" in w for w in det.warnings)


def test_aurora_postgres_with_topology() -> None:
    stamp = datetime(2025, 1, 1, tzinfo=timezone.utc)
    conn = pg_conn(
        pg_row(exts="aurora_stat_utils,rds_tools", aurora_meta=True, aurora_topo=True),
        ("aurora_replica_status()", [("inst-1", True, stamp)]),
        ("aurora_global_db_instance_status", [(1,)]),
    )
    det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.AURORA_POSTGRES
    assert det.metadata_source == AURORA_PG_METADATA
    assert det.metadata_readable
    assert det.topology_available
    assert det.topology_query == Dialect.AURORA_POSTGRES.topology_query
    assert det.warnings == ()
    assert det.monitorable and det.metadata_readable


def test_aurora_postgres_old_version_without_metadata() -> None:
    conn = pg_conn(
        pg_row(exts="aurora_stat_utils", aurora_topo=True),
        ("aurora_replica_status()", []),
    )
    det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.AURORA_POSTGRES
    assert det.metadata_source is None
    assert det.topology_available
    assert len(det.warnings) == 1 and "does not exist" in det.warnings[0]
    assert "rds_tools" not in det.warnings[0]  # a hint for RDS PostgreSQL only


def test_aurora_postgres_topology_failure_rolls_back() -> None:
    conn = pg_conn(
        pg_row(aurora_meta=True, aurora_topo=True),
        ("aurora_replica_status()", FakeError(msg="not available")),
    )
    det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.AURORA_POSTGRES
    assert not det.topology_available
    assert any("topology" in w for w in det.warnings)
    assert not conn.aborted
    assert conn.rollbacks >= 2


def test_aurora_global_database_unsupported() -> None:
    conn = pg_conn(
        pg_row(exts="aurora_stat_utils", aurora_meta=True, aurora_topo=True, glob=True),
        ("aurora_replica_status()", []),
        ("aurora_global_db_instance_status", [(2,)]),
    )
    det = dialects.detect(conn, "postgres")
    assert det.unsupported_reason is not None
    assert "Global Database" in det.unsupported_reason
    assert not det.monitorable
    assert "Global Database" in det.warnings[0]


def test_multi_az_db_cluster_postgres_unsupported() -> None:
    conn = pg_conn(
        pg_row(exts="rds_tools", rds_meta=True, multi_az=True),
        ("multi_az_db_cluster_source_dbi_resource_id", [("db-ABCDEF",)]),
    )
    det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.RDS_POSTGRES
    assert det.unsupported_reason is not None
    assert "Multi-AZ" in det.unsupported_reason


def test_multi_az_function_empty_is_supported() -> None:
    conn = pg_conn(
        pg_row(exts="rds_tools", rds_meta=True, multi_az=True),
        ("multi_az_db_cluster_source_dbi_resource_id", [(None,)]),
    )
    assert dialects.detect(conn, "postgres").unsupported_reason is None


def test_postgres_probe_failure_gives_plain_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = pg_conn([])  # no row: IndexError inside detection
    conn.script = [
        ("pg_catalog.pg_proc", FakeError(msg="server closed the connection"))
    ]
    with caplog.at_level(logging.DEBUG, logger="bluegreen.dialects"):
        det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.POSTGRES
    assert det.probe_failed
    assert "server closed the connection" in det.warnings[0]
    assert not conn.aborted
    assert any(r.levelno == logging.DEBUG for r in caplog.records)


def test_forced_dialect_skips_classification_but_checks_grants() -> None:
    conn = pg_conn(pg_row(rds_meta=False))
    det = dialects.detect(conn, "postgres", forced=Dialect.RDS_POSTGRES)
    assert det.forced and det.dialect is Dialect.RDS_POSTGRES
    assert det.missing_grant is not None
    # forcing Aurora on a server without the metadata warns
    det2 = dialects.detect(
        pg_conn(pg_row()), "postgres", forced=Dialect.AURORA_POSTGRES
    )
    assert det2.dialect is Dialect.AURORA_POSTGRES
    assert det2.metadata_source is None and det2.warnings


def test_forced_dialect_of_wrong_family() -> None:
    with pytest.raises(ConfigurationError):
        dialects.detect(pg_conn(pg_row()), "postgres", forced=Dialect.RDS_MYSQL)


def test_forced_dialect_trusted_when_probe_fails() -> None:
    conn = FakeConnection([], default=FakeError(msg="proxy refuses"))
    det = dialects.detect(conn, "postgres", forced=Dialect.RDS_POSTGRES)
    assert det.dialect is Dialect.RDS_POSTGRES
    assert det.metadata_source == RDS_PG_METADATA
    assert det.probe_failed and det.warnings


def test_busy_transaction_is_not_touched() -> None:
    class Info:
        transaction_status = 2  # INTRANS

    conn = pg_conn(pg_row(rds_meta=True))
    conn.info = Info()  # type: ignore[attr-defined]
    det = dialects.detect(conn, "postgres")
    assert det.dialect is Dialect.POSTGRES and det.probe_failed
    assert conn.executed == [] and conn.rollbacks == 0
    assert det.warnings and "blue/green support is off" in det.warnings[0]


# --------------------------------------------------------------------------
# MySQL detection


def test_plain_mysql_admin_sees_no_table() -> None:
    conn = mysql_conn((MYSQL_METADATA, FakeError(1146)))
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.MYSQL
    assert det.metadata_source is None
    assert det.warnings == ()
    assert det.server_version == "10.11.6"
    assert conn.rollbacks >= 1 and not conn.aborted
    # A MySQL error fails only its statement: one rollback, at the end, ends
    # the read snapshot, not one more round trip per expected error.
    assert conn.rollbacks == 1


def test_plain_mysql_unprivileged_user_is_plain_and_quiet() -> None:
    conn = mysql_conn((MYSQL_METADATA, FakeError(1142)))
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.MYSQL
    assert det.missing_grant is None and det.warnings == ()


def test_rds_mysql_readable() -> None:
    conn = mysql_conn(
        ("SELECT role FROM", [("BLUE_GREEN_DEPLOYMENT_SOURCE",)]),
        (MYSQL_METADATA, []),
        comment="Source distribution",
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.RDS_MYSQL
    assert det.metadata_source == MYSQL_METADATA and det.metadata_readable
    assert det.status_query is not None and "%s" not in det.status_query
    assert det.status_query is not None and det.status_query.startswith("SELECT id,")
    assert det.unsupported_reason is None
    assert det.warnings == ()


@pytest.mark.parametrize(
    ("kwargs", "host"),
    [
        ({"basedir": "/rdsdbbin/mysql-8.0.36.R1"}, None),
        ({"comment": "Source distribution"}, None),
        ({}, "mydb.abc123xyz.us-east-1.rds.amazonaws.com"),
    ],
)
def test_rds_mysql_missing_grant(kwargs: dict[str, str], host: str | None) -> None:
    conn = mysql_conn((MYSQL_METADATA, FakeError(1142)), **kwargs)
    det = dialects.detect(conn, "mysql", host=host)
    assert det.dialect is Dialect.RDS_MYSQL
    assert det.metadata_source == MYSQL_METADATA
    assert not det.metadata_readable
    assert det.missing_grant == "GRANT SELECT ON mysql.rds_topology TO 'app'@'%';"
    assert any(det.missing_grant in w for w in det.warnings)


def test_aurora_mysql() -> None:
    stamp = datetime(2025, 1, 1)
    conn = mysql_conn(
        (MYSQL_METADATA, []),
        ("information_schema.replica_host_status", [("i-1", 1, stamp)]),
        ("aurora_global_db_instance_status", [(1,)]),
        aurora=True,
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.AURORA_MYSQL
    assert det.metadata_readable
    assert det.topology_source == "information_schema.replica_host_status"
    assert det.topology_available
    assert det.unsupported_reason is None


@pytest.fixture
def sim_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test hook the simulator sets: its MariaDB publishes the Aurora
    topology in mysql.replica_host_status."""
    monkeypatch.setenv("BLUEGREEN_TEST_MYSQL_TOPOLOGY", "mysql.replica_host_status")


def test_the_simulator_table_is_not_read_without_the_test_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BLUEGREEN_TEST_MYSQL_TOPOLOGY", raising=False)
    conn = mysql_conn(
        (MYSQL_METADATA, []),
        ("FROM mysql.replica_host_status", [("i-1", 1, None)]),
    )
    det = dialects.detect(conn, "mysql")
    assert det.topology_source is None
    assert not [sql for sql in conn.executed if "mysql.replica_host_status" in sql]


def test_aurora_mysql_simulated_topology_table(sim_topology: None) -> None:
    # MariaDB (the simulator) publishes the topology in mysql.replica_host_status
    conn = mysql_conn(
        (MYSQL_METADATA, []),
        ("FROM mysql.replica_host_status", [("i-1", 1, None)]),
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.AURORA_MYSQL
    assert det.topology_source == "mysql.replica_host_status"
    assert det.topology_query is not None
    assert det.topology_query.endswith("FROM mysql.replica_host_status")
    assert det.topology_available


def test_aurora_mysql_topology_is_evidence_for_a_denied_rds_topology(
    sim_topology: None,
) -> None:
    # The simulator (MariaDB) has no aurora_version: its readable topology is
    # what says Aurora, and so that a denied mysql.rds_topology exists.
    conn = mysql_conn(
        (MYSQL_METADATA, FakeError(1142)),
        ("FROM mysql.replica_host_status", [("i-1", 1, None)]),
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.AURORA_MYSQL
    assert det.metadata_source == MYSQL_METADATA and not det.metadata_readable
    assert det.missing_grant == "GRANT SELECT ON mysql.rds_topology TO 'app'@'%';"
    assert len(det.warnings) == 1 and det.missing_grant in det.warnings[0]


def test_aurora_mysql_before_307_warns() -> None:
    conn = mysql_conn(
        (MYSQL_METADATA, FakeError(1146)),
        ("information_schema.replica_host_status", []),
        aurora=True,
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.AURORA_MYSQL
    assert det.metadata_source is None
    assert det.warnings and "does not exist" in det.warnings[0]
    assert "rds_tools" not in det.warnings[0]  # a hint for RDS PostgreSQL only


def test_aurora_mysql_global_database() -> None:
    conn = mysql_conn(
        (MYSQL_METADATA, []),
        ("information_schema.replica_host_status", []),
        ("aurora_global_db_instance_status", [(3,)]),
        aurora=True,
    )
    det = dialects.detect(conn, "mysql")
    assert det.unsupported_reason is not None
    assert "Global Database" in det.unsupported_reason


def test_multi_az_db_cluster_mysql() -> None:
    conn = mysql_conn(
        ("SELECT role FROM", [(None,), (None,), (None,)]),
        (MYSQL_METADATA, []),
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.RDS_MYSQL
    assert det.unsupported_reason is not None and "Multi-AZ" in det.unsupported_reason


def test_rds_mysql_reads_rds_topology_once() -> None:
    conn = mysql_conn(
        ("SELECT role FROM", [("BLUE_GREEN_DEPLOYMENT_SOURCE",), (None,)]),
        comment="Source distribution",
    )
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.RDS_MYSQL and det.unsupported_reason is None
    assert len([sql for sql in conn.executed if MYSQL_METADATA in sql]) == 1


@pytest.mark.parametrize("forced", [Dialect.RDS_MYSQL, Dialect.MYSQL])
def test_forced_mysql_instance_dialect_does_not_look_for_a_topology(
    forced: Dialect,
) -> None:
    conn = mysql_conn(
        (MYSQL_METADATA, []),
        ("FROM mysql.replica_host_status", [("i-1", 1, None)]),
    )
    det = dialects.detect(conn, "mysql", forced=forced)
    assert det.dialect is forced
    assert det.topology_source is None and not det.topology_available
    assert not [sql for sql in conn.executed if "replica_host_status" in sql]


def test_mysql_unexpected_probe_error_is_a_warning() -> None:
    conn = mysql_conn((MYSQL_METADATA, FakeError(2013, "Lost connection")))
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.MYSQL
    assert any("Lost connection" in w for w in det.warnings)


def test_mysql_first_probe_failure() -> None:
    conn = FakeConnection([], default=FakeError(2006, "gone away"))
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.MYSQL and det.probe_failed
    assert "gone away" in det.warnings[0]


def test_pymysql_style_autocommit_and_dict_rows() -> None:
    conn = mysql_conn((MYSQL_METADATA, []))
    conn.script[1] = (
        "@@version_comment",
        [{"v": "8.0.36", "c": "x", "b": "/usr", "u": "app@%"}],  # type: ignore[list-item]
    )
    conn.get_autocommit = lambda: True  # type: ignore[attr-defined]
    conn.autocommit = True
    det = dialects.detect(conn, "mysql")
    assert det.dialect is Dialect.RDS_MYSQL
    assert det.server_version == "8.0.36"
    assert conn.rollbacks == 0


def test_mysql_user_quoting() -> None:
    assert _mysql_user("o'brien@10.0.%") == "'o''brien'@'10.0.%'"
    assert _mysql_user(b"app@localhost") == "'app'@'localhost'"


# --------------------------------------------------------------------------
# Topology filtering

NOW = datetime(2025, 7, 24, 16, 0, 0, tzinfo=timezone.utc)


def test_topology_rows_conversion() -> None:
    naive = datetime(2025, 7, 24, 15, 59, 0)
    rows = dialects.topology_rows(
        [("w", 1, naive), (b"r1", 0, NOW), {"s": "r2", "w": "t", "t": None}]
    )
    assert rows == [
        TopologyRow("w", True, naive),
        TopologyRow("r1", False, NOW),
        TopologyRow("r2", True, None),
    ]


def test_filter_topology_drops_stale_readers_keeps_writer() -> None:
    rows = [
        TopologyRow("r-stale", False, NOW - timedelta(seconds=301)),
        TopologyRow("r-b", False, NOW - timedelta(seconds=299)),
        TopologyRow("r-a", False, NOW),
        TopologyRow("w", True, NOW - timedelta(hours=2)),
        TopologyRow("r-none", False, None),
    ]
    kept = dialects.filter_topology(rows, NOW)
    assert [r.server_id for r in kept] == ["w", "r-a", "r-b", "r-none"]


def test_filter_topology_naive_utc_and_custom_age() -> None:
    naive_now = NOW.replace(tzinfo=None)
    rows = [TopologyRow("r", False, naive_now - timedelta(seconds=20))]
    assert dialects.filter_topology(rows, NOW, max_age_s=30) == rows
    assert dialects.filter_topology(rows, naive_now, max_age_s=10) == []


def test_filter_topology_two_writers_and_duplicates() -> None:
    rows = [
        TopologyRow("old-w", True, NOW - timedelta(seconds=5)),
        TopologyRow("new-w", True, NOW),
        TopologyRow("r", False, NOW - timedelta(seconds=10)),
        TopologyRow("r", False, NOW - timedelta(seconds=1)),
    ]
    kept = dialects.filter_topology(rows, NOW)
    assert kept == [rows[1], rows[3]]
    assert dialects.filter_topology([], NOW) == []


# --------------------------------------------------------------------------
# Detection cache


def _counting(
    result: Detection, delay: float = 0.0
) -> tuple[Callable[[], Detection], list[int]]:
    calls: list[int] = []

    def probe() -> Detection:
        calls.append(1)
        if delay:
            time.sleep(delay)
        return result

    return probe, calls


def test_cache_runs_once_per_key() -> None:
    cache = DetectionCache()
    det = Detection(Dialect.RDS_MYSQL)
    probe, calls = _counting(det)
    key = ("mysql", "h", 3306)
    assert cache.get(key) is None
    assert cache.get_or_detect(key, probe) is det
    assert cache.get_or_detect(key, probe) is det
    assert cache.get(key) is det
    assert len(calls) == 1
    cache.get_or_detect(("mysql", "h", 3307), probe)
    assert len(calls) == 2
    cache.clear()
    cache.get_or_detect(key, probe)
    assert len(calls) == 3


def test_cache_concurrent_callers_wait_for_first() -> None:
    cache = DetectionCache()
    det = Detection(Dialect.AURORA_POSTGRES)
    probe, calls = _counting(det, delay=0.2)
    results: list[Detection] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(cache.get_or_detect(("pg", "h", 1), probe))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert results == [det] * 8


def test_cache_without_back_off_does_not_keep_failed_probes() -> None:
    cache = DetectionCache(retry_after_s=0)
    failed = Detection(Dialect.POSTGRES, probe_failed=True)
    probe, calls = _counting(failed)
    assert cache.get_or_detect("k", probe) is failed
    assert cache.get_or_detect("k", probe) is failed
    assert len(calls) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_keeps_failed_probes_for_the_back_off_period() -> None:
    clock = FakeClock()
    cache = DetectionCache(retry_after_s=60.0, clock=clock)
    failed = Detection(Dialect.POSTGRES, probe_failed=True)
    probe, calls = _counting(failed)
    assert cache.get("k") is None
    assert cache.get_or_detect("k", probe) is failed
    clock.now += 59.9
    assert cache.get("k") is failed
    assert cache.get_or_detect("k", probe) is failed
    assert len(calls) == 1  # no probe within the back-off period
    clock.now += 0.1
    assert cache.get("k") is None  # expired: the next connection probes again
    assert cache.get_or_detect("k", probe) is failed
    assert len(calls) == 2
    clock.now += 30.0
    assert cache.get_or_detect("k", probe) is failed
    assert len(calls) == 2  # a new back-off period began at the retry
    clock.now += 30.0
    good = Detection(Dialect.POSTGRES)
    assert cache.get_or_detect("k", lambda: good) is good
    clock.now += 3600.0
    assert cache.get("k") is good  # a successful result does not expire
    assert cache.get_or_detect("other", probe) is failed
    assert len(calls) == 3  # back-off is per key
    cache.clear()
    assert cache.get("other") is None


def test_cache_concurrent_callers_share_a_failed_probe() -> None:
    cache = DetectionCache(clock=FakeClock())
    failed = Detection(Dialect.MYSQL, probe_failed=True)
    probe, calls = _counting(failed, delay=0.2)
    results: list[Detection] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_detect("k", probe)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert results == [failed] * 4


def test_cache_probe_exception_lets_next_caller_probe() -> None:
    cache = DetectionCache()

    def bad() -> Detection:
        raise RuntimeError("probe crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_detect("k", bad)
    good = Detection(Dialect.MYSQL)
    assert cache.get_or_detect("k", lambda: good) is good


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_cache_is_empty_in_forked_child() -> None:
    cache = runtime().detections
    cache.get_or_detect("k", lambda: Detection(Dialect.MYSQL))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.write(write, b"empty" if cache.get("k") is None else b"full")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"empty"
    assert cache.get("k") is not None  # the parent keeps its results


def test_cache_waiter_woken_by_the_probe_finds_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A waiter that wakes the moment the owner's probe ends must find the
    # result stored, not probe the host a second time.
    waiting = threading.Event()
    waiter_done = threading.Event()

    class Event(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waiting.set()
            return super().wait(timeout)

        def set(self) -> None:
            super().set()
            waiter_done.wait(2)  # let the woken waiter run first

    monkeypatch.setattr("bluegreen.dialects._cache.threading.Event", Event)
    cache = DetectionCache()
    det = Detection(Dialect.RDS_POSTGRES)
    calls: list[int] = []
    probe_started = threading.Event()

    def probe() -> Detection:
        calls.append(1)
        probe_started.set()
        waiting.wait(10)  # until the other caller waits for this probe
        return det

    results: list[Detection] = []

    def waiter() -> None:
        probe_started.wait(10)
        results.append(cache.get_or_detect("k", probe))
        waiter_done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    owner = cache.get_or_detect("k", probe)
    thread.join(10)
    assert owner is det and results == [det]
    assert len(calls) == 1


def test_a_mysql_transaction_reported_by_the_adapter_is_not_touched() -> None:
    # Duck typing only recognises psycopg's transaction status; the driver
    # adapter knows about MySQL transactions too, and detection must then
    # leave the connection alone rather than roll the application's work back.
    class State:
        def in_transaction(self, conn: Any) -> bool:
            return True

        def get_autocommit(self, conn: Any) -> bool:
            return False

    conn = mysql_conn((MYSQL_METADATA, FakeError(1146)))
    det = dialects.detect(conn, "mysql", state=State())
    assert det.probe_failed and det.dialect is Dialect.MYSQL
    assert conn.executed == [] and conn.rollbacks == 0


def test_autocommit_reported_by_the_adapter_avoids_rollbacks() -> None:
    class State:
        def in_transaction(self, conn: Any) -> bool:
            return False

        def get_autocommit(self, conn: Any) -> bool:
            return True

    conn = mysql_conn((MYSQL_METADATA, FakeError(1146)))
    det = dialects.detect(conn, "mysql", state=State())
    assert det.dialect is Dialect.MYSQL and not det.probe_failed
    assert conn.rollbacks == 0
