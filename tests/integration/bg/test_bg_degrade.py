"""The ``bg`` plugin degrades to plain pass-through, with one warning at most.

A plain server, a deployment whose metadata the application user may not
read, and monitors that cannot log in: the application's connections and
queries work as without the plugin, no monitor thread runs where there is
nothing to monitor, and operators get one warning that says what to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import mysql.connector
import psycopg
import pymysql
import pytest
from bgharness import Harness, bg_threads, query_one, settings_for, wait_for

import bluegreen
import bluegreen.bg
from bluegreen.sim import metadata as md
from bluegreen.sim.scenario import initial_rows

pytestmark = [pytest.mark.timeout(120)]

SETTINGS = settings_for(10)


def provision(h: Harness) -> None:
    assert h.dep.metadata is not None
    h.dep.metadata.set_rows(initial_rows(h.dep, md.AVAILABLE))


def bg_status(bg_id: str = "1") -> bluegreen.bg.BlueGreenStatus:
    st = bluegreen.bg.status(bg_id)
    assert st is not None, f"no watch for bg_id {bg_id!r}"
    return st


def assert_passthrough_status() -> None:
    st = bg_status()
    assert st.phase == "NOT_CREATED"
    assert not st.ready
    assert st.mapping == {}


# -- plain servers ------------------------------------------------------------------


@pytest.mark.postgres
def test_plain_postgres(pg_instance: Any, bg_warnings: Callable[[], list[str]]) -> None:
    kwargs = {**pg_instance.connect_kwargs(), "connect_timeout": 3, **SETTINGS}
    for _ in range(10):
        with bluegreen.connect(psycopg.connect, **kwargs) as conn:
            assert query_one(conn, "SELECT 6 * 7") == 42
            conn.rollback()
    time.sleep(0.3)  # monitors started by mistake would be running by now
    assert bg_threads() == set()
    assert not bg_status().monitoring
    assert_passthrough_status()
    assert bg_warnings() == []


@pytest.mark.mariadb
def test_plain_mariadb(
    mariadb_instance: Any, bg_warnings: Callable[[], list[str]]
) -> None:
    base = mariadb_instance.connect_kwargs()
    for _ in range(5):
        conn = bluegreen.connect(pymysql.connect, **base, connect_timeout=3, **SETTINGS)
        try:
            assert query_one(conn, "SELECT 6 * 7") == 42
        finally:
            conn.close()
        conn = bluegreen.connect(
            mysql.connector.connect, **base, connection_timeout=3, **SETTINGS
        )
        try:
            assert query_one(conn, "SELECT 6 * 7") == 42
        finally:
            conn.close()
    time.sleep(0.3)
    assert bg_threads() == set()
    assert not bg_status().monitoring
    assert_passthrough_status()
    assert bg_warnings() == []


# -- missing grants -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rds-postgres", "rds-mysql"])
def test_missing_grants_warn_once(
    kind: str,
    bg_harness: Callable[..., Harness],
    bg_warnings: Callable[[], list[str]],
) -> None:
    """Metadata present but unreadable for the app user: one warning with the
    GRANT statement, however many connections; queries work."""
    h = bg_harness(kind, readers=0)
    assert h.dep.metadata is not None
    h.dep.metadata.set_grants(False)
    provision(h)
    for n in range(20):
        with h.connect(**SETTINGS) as conn:
            assert query_one(conn, "SELECT 6 * 7") == 42
        if n == 9:
            time.sleep(0.5)  # a few monitor intervals, if any monitor runs
    grants = [m for m in bg_warnings() if "GRANT" in m]
    assert len(grants) == 1, bg_warnings()
    assert h.dep.app_user in grants[0]
    assert bg_warnings() == grants, "more than the one warning about the grant"
    assert_passthrough_status()


# -- monitors that cannot connect ----------------------------------------------------


@pytest.mark.slow
def test_monitor_login_fails(
    bg_harness: Callable[..., Harness],
    bg_warnings: Callable[[], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong monitoring password: one warning, application connections work."""
    h = bg_harness("rds-mysql", readers=0)
    provision(h)
    secret = "wrong-monitoring-pw-4711"
    settings = {**SETTINGS, "blue-green-monitoring-password": secret}
    for n in range(20):
        with h.connect(**settings) as conn:
            assert query_one(conn, "SELECT 6 * 7") == 42
        if n == 0:
            wait_for(
                lambda: bg_status("1").monitor_errors.get("blue"),
                10,
                "the blue monitor to fail",
            )
        if n == 9:
            time.sleep(0.5)  # the monitor keeps trying meanwhile
    messages = bg_warnings()
    assert len(messages) == 1, messages
    assert "monitor" in messages[0] and h.blue_host in messages[0], messages
    st = bg_status()
    assert st.monitoring and st.monitor_errors["blue"] is not None
    assert st.phase == "NOT_CREATED"
    everything = caplog.text + "".join(str(v) for v in st.monitor_errors.values())
    assert secret not in everything


@pytest.mark.slow
def test_green_refuses_monitor(
    bg_harness: Callable[..., Harness], bg_warnings: Callable[[], list[str]]
) -> None:
    """The green side refuses logins from the start: one warning about the
    green monitor; the blue monitor works, and so does the application."""
    h = bg_harness("rds-postgres", readers=0)
    provision(h)
    h.dep.refuse_connections(h.dep.green.writer, True)
    for n in range(20):
        with h.connect(**SETTINGS) as conn:
            assert query_one(conn, "SELECT 6 * 7") == 42
        if n == 0:
            wait_for(
                lambda: bg_status("1").monitor_errors.get("green"),
                10,
                "the green monitor to fail",
            )
        if n == 9:
            time.sleep(0.5)
    messages = bg_warnings()
    assert len(messages) == 1, messages
    assert "green monitor" in messages[0], messages
    st = bg_status()
    assert st.monitor_errors["blue"] is None
    assert st.monitor_errors["green"] is not None
    assert st.phase == "CREATED"
