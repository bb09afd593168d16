"""The ``bg`` plugin degrades to plain pass-through, loudly.

A plain server, a deployment whose metadata the application user may not
read, monitors that cannot log in, a detection that fails: the application's
connections and queries work as without the plugin, no monitor thread runs
where there is nothing to monitor, operators get a warning that says
switchover protection is off and what to fix (repeated at a low rate while
it lasts, not once per connection), ``status()`` says so too, and protection
comes back by itself when the cause goes away.
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
    st = bg_status()
    assert not st.protected
    assert st.reason is not None and "plain PostgreSQL" in st.reason
    assert list(st.unprotected) == [pg_instance.host]


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
    assert "switchover protection is OFF" in grants[0]
    assert bg_warnings() == grants, "more than the one warning about the grant"
    assert_passthrough_status()
    st = bg_status()
    assert not st.protected and st.reason is not None and "GRANT" in st.reason
    # The administrator runs the GRANT: protection comes back by itself.
    h.dep.metadata.set_grants(True)
    wait_for(lambda: bg_status().protected, 10, "protection to come back")
    assert bg_status().reason is None and bg_status().unprotected == {}


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
    assert "switchover protection is OFF" in messages[0]
    st = bg_status()
    assert st.monitoring and st.monitor_errors["blue"] is not None
    assert not st.protected and h.blue_host in st.unprotected
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


# -- repeated, not once ----------------------------------------------------------------


@pytest.mark.slow
def test_protection_off_is_repeated_while_it_lasts(
    bg_harness: Callable[..., Harness],
    bg_warnings: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One connection, then nothing: the warning comes back every REPEAT_S
    (shortened here) while the monitor still cannot log in."""
    monkeypatch.setattr("bluegreen.bg._watch.REPEAT_S", 0.3)
    h = bg_harness("rds-postgres", readers=0)
    provision(h)
    settings = {**SETTINGS, "blue-green-monitoring-password": "wrong"}
    with h.connect(**settings) as conn:
        assert query_one(conn, "SELECT 1") == 1

    def off_warnings() -> list[str]:
        return [m for m in bg_warnings() if "protection is OFF" in m]

    wait_for(lambda: len(off_warnings()) >= 3, 15, "the warning to be repeated")
    assert not bg_status().protected


# -- a failed detection is retried in the background ---------------------------


@pytest.mark.slow
def test_failed_detection_is_retried_and_protection_comes_back(
    bg_harness: Callable[..., Harness],
    bg_warnings: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The probe on the application's connection fails once (a transient
    error). The application holds that one connection and opens no other:
    the plugin still recovers, from a detector thread of its own."""
    from bluegreen.bg import plugin as bg_plugin

    real_detect = bg_plugin.detect
    calls = {"n": 0}

    def flaky_detect(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient probe failure")
        return real_detect(*args, **kwargs)

    monkeypatch.setattr(bg_plugin, "detect", flaky_detect)
    caplog.set_level("INFO", logger="bluegreen.bg")
    h = bg_harness("aurora-mysql", readers=0)
    provision(h)
    conn = h.connect(**SETTINGS)
    try:
        messages = [m for m in bg_warnings() if "protection is OFF" in m]
        assert len(messages) == 1 and "transient probe failure" in messages[0]
        assert not bg_status().protected
        wait_for(lambda: bg_status().protected, 15, "protection to come back")
        assert bg_status().monitoring
        assert any("back on" in r.getMessage() for r in caplog.records)
        assert query_one(conn, "SELECT 6 * 7") == 42
        assert calls["n"] >= 2
    finally:
        conn.close()
