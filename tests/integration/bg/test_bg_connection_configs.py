"""Switchover protection does not depend on how the application configures
its connections: every row factory, cursor class and cursor option that
psycopg, PyMySQL and mysql-connector offer at connect time.

For each configuration, detection runs on the application's own connection
(the cache is emptied first), must recognise the deployment, and must leave
no trace (no open transaction, no prepared statement). Then every
configuration runs as one client of a workload through a single switchover,
and none of them may reach the old blue.
"""

from __future__ import annotations

import functools
from typing import Any

import mysql.connector
import psycopg
import pymysql
import pymysql.cursors
import pytest
from bgharness import Harness, settings_for
from psycopg import rows

import bluegreen
import bluegreen.bg
from bluegreen._runtime import runtime
from bluegreen.sim.accounting import summarize
from bluegreen.sim.workload import ClientKind, Workload, identity_map

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SPEED = 10.0
CONNECT_TIMEOUT_MS = 2500


class KwRow:
    """A class built from the columns as keywords (``class_row``)."""

    def __init__(self, **columns: Any) -> None:
        self.__dict__.update(columns)


PSYCOPG: dict[str, dict[str, Any]] = {
    "tuple_row": {"row_factory": rows.tuple_row},
    "dict_row": {"row_factory": rows.dict_row},
    "namedtuple_row": {"row_factory": rows.namedtuple_row},
    "class_row": {"row_factory": rows.class_row(KwRow)},
    "args_row": {"row_factory": rows.args_row(lambda *values: values)},
    "kwargs_row": {"row_factory": rows.kwargs_row(lambda **kw: kw)},
    "scalar_row": {"row_factory": rows.scalar_row},
    "ClientCursor": {"cursor_factory": psycopg.ClientCursor},
    "RawCursor": {"cursor_factory": psycopg.RawCursor},
    "prepare_threshold=0": {"prepare_threshold": 0},
    "dict_row+ClientCursor+prepare0": {
        "row_factory": rows.dict_row,
        "cursor_factory": psycopg.ClientCursor,
        "prepare_threshold": 0,
    },
}
PYMYSQL: dict[str, dict[str, Any]] = {
    "Cursor": {"cursorclass": pymysql.cursors.Cursor},
    "DictCursor": {"cursorclass": pymysql.cursors.DictCursor},
    "SSCursor": {"cursorclass": pymysql.cursors.SSCursor},
    "SSDictCursor": {"cursorclass": pymysql.cursors.SSDictCursor},
    "use_unicode=False": {"use_unicode": False},
}
MYSQL_CONNECTOR: dict[str, dict[str, Any]] = {
    "pure": {"use_pure": True},
    "cext": {"use_pure": False},
    "buffered": {"buffered": True},
    "raw": {"raw": True},
    "raw+buffered+cext": {"raw": True, "buffered": True, "use_pure": False},
    "consume_results": {"consume_results": True},
    "raise_on_warnings": {"raise_on_warnings": True, "get_warnings": True},
}


def configs(engine: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """(label, driver connect function, extra connect arguments)."""
    if engine == "postgres":
        return [(f"psycopg {k}", psycopg.connect, v) for k, v in PSYCOPG.items()]
    return [(f"pymysql {k}", pymysql.connect, v) for k, v in PYMYSQL.items()] + [
        (f"mysql-connector {k}", mysql.connector.connect, v)
        for k, v in MYSQL_CONNECTOR.items()
    ]


def timeouts(target: Any) -> dict[str, Any]:
    if target is mysql.connector.connect:
        return {"connection_timeout": 3}
    return {"connect_timeout": 3}


def check_detection(harness: Harness, label: str, target: Any, extra: Any) -> None:
    """Detect on a connection configured with ``extra``; nothing left behind."""
    runtime().detections.clear()
    kw = harness.dep.connect_kwargs(harness.blue_host)
    for autocommit in (True, False):
        runtime().detections.clear()
        conn = bluegreen.connect(
            target,
            **kw,
            **timeouts(target),
            **extra,
            autocommit=autocommit,
            **settings_for(SPEED),
        )
        try:
            plugin = conn.wrapper_pipeline.plugins[0]
            detection = plugin.detection
            assert detection is not None
            assert detection.dialect.value == harness.dep.kind, (label, detection)
            assert not detection.probe_failed, (label, detection.warnings)
            assert detection.metadata_readable, (label, detection.warnings)
            raw = conn.driver_connection
            assert not conn.driver_adapter.in_transaction(raw), label
            if target is psycopg.connect:
                with psycopg.Cursor(raw, row_factory=rows.tuple_row) as cur:
                    cur.execute(
                        "SELECT count(*) FROM pg_prepared_statements", prepare=False
                    )
                    assert cur.fetchone() == (0,), label
                raw.rollback()
        finally:
            conn.close()


@pytest.mark.parametrize("kind", ["aurora-postgres", "rds-mysql"])
def test_every_connection_config_is_protected(bg_harness: Any, kind: str) -> None:
    harness: Harness = bg_harness(kind)
    dep = harness.dep
    settings = settings_for(SPEED, bg_connect_timeout_ms=CONNECT_TIMEOUT_MS)
    cases = configs(dep.engine)
    for label, target, extra in cases:
        check_detection(harness, label, target, extra)
    st = bluegreen.bg.status("1")
    assert st is not None and st.monitoring

    kinds = [
        ClientKind(
            label,
            functools.partial(bluegreen.connect, target, **extra, **settings),
            1,
        )
        for label, target, extra in cases
    ]
    workload = Workload(
        dep.engine,
        kinds,
        dep.connect_kwargs(harness.blue_host),
        identity_map({"blue": dep.blue.instances, "green": dep.green.instances}),
        mode="per-op",
        pause=0.02,
    )
    workload.start()
    player = harness.play("switchover", SPEED)
    try:
        assert player.wait(timeout=120), "the scenario did not finish"
    finally:
        records = workload.stop()
    player.check()
    switched = player.event("SWITCHED")
    assert switched is not None
    switched_at = player.monotonic_at(switched.offset)

    for label, _target, _extra in cases:
        mine = [r for r in records if r.group == label]
        after = [r for r in mine if r.start >= switched_at]
        assert after and any(r.ok for r in after), (label, mine[-3:])
        outcome = summarize(label, mine, switched_at=switched_at, final_ids=None)
        assert outcome.old_blue_writes == 0, label
        assert outcome.stale_reads == 0, label
        read_only = [r.error for r in after if r.error and "read-only" in r.error]
        assert not read_only, (label, read_only[:2])
        served_by = {r.env for r in after if r.ok}
        assert served_by == {"green"}, (label, served_by)
