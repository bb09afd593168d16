"""Helpers for the ``bg`` plugin tests: the :class:`Harness` around one
simulated deployment, settings scaled to a scenario's speed, and waits."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import bluegreen
import bluegreen.bg
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.scenario import Scenario, ScenarioPlayer
from bluegreen.sim.workload import bg_settings

#: Every thread the plugin starts is named with this prefix.
BG_THREAD = "bluegreen-bg-"


def bg_threads() -> set[str]:
    """Names of the plugin's live threads."""
    return {t.name for t in threading.enumerate() if t.name.startswith(BG_THREAD)}


def query_one(conn: Any, sql: str) -> Any:
    """The first column of the first row of ``sql`` on ``conn``."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        cur.close()


def settings_for(speed: float, **overrides: Any) -> dict[str, Any]:
    """bg settings whose polling keeps pace with a scenario played at
    ``speed`` (the simulator's :func:`~bluegreen.sim.workload.bg_settings`),
    plus ``overrides``."""
    settings: dict[str, Any] = dict(bg_settings(speed))
    settings.update(overrides)
    return settings


class Harness:
    """One started deployment and what tests do with it."""

    def __init__(
        self,
        dep: Deployment,
        start_player: Callable[..., ScenarioPlayer],
        driver: str,
    ) -> None:
        self.dep = dep
        self._start_player = start_player
        self.driver = driver
        self.engine = dep.engine

    # -- names ----------------------------------------------------------------
    @property
    def blue_host(self) -> str:
        """The name applications use: the writer cluster endpoint (Aurora) or
        the writer instance endpoint (RDS), as before the switchover."""
        return self.dep.blue.cluster_endpoint or self.dep.blue.writer.endpoint

    @property
    def green_host(self) -> str:
        return self.dep.green.cluster_endpoint or self.dep.green.writer.endpoint

    # -- connecting -----------------------------------------------------------
    def target(self) -> Callable[..., Any]:
        if self.engine == "postgres":
            if self.driver == "psycopg2":
                import psycopg2

                return psycopg2.connect  # type: ignore[no-any-return]
            import psycopg

            return psycopg.connect
        if self.driver == "mysql-connector":
            import mysql.connector

            return mysql.connector.connect
        if self.driver == "mysqlclient":
            import MySQLdb

            return MySQLdb.connect
        import pymysql

        return pymysql.connect

    def target_error(self) -> type[Exception]:
        """The driver's OperationalError class."""
        return self.dep_adapter().operational_error()

    def dep_adapter(self) -> Any:
        from bluegreen.drivers import adapter_for

        return adapter_for(self.target())

    def kwargs(self, host: str) -> dict[str, Any]:
        """Driver arguments for ``host``: any name, current or from before the
        renames (the simulator's instances share credentials)."""
        inst = self.dep.endpoints().get(host)
        if inst is None:
            by_original = {i.original_endpoint: i for i in self.dep.instances}
            inst = by_original.get(host, self.dep.blue.writer)
        kw: dict[str, Any] = {
            "host": host,
            "port": inst.port,
            "user": inst.app_user,
            "password": inst.app_password,
        }
        kw["dbname" if self.engine == "postgres" else "database"] = inst.dbname
        kw["autocommit"] = True
        if self.engine == "postgres":
            kw["connect_timeout"] = 3
        elif self.driver == "mysql-connector":
            kw["connection_timeout"] = 3
        else:  # PyMySQL, mysqlclient (whole seconds; password/database names)
            kw.update(connect_timeout=3, read_timeout=5, write_timeout=5)
        return kw

    def connect(self, host: str | None = None, **settings: Any) -> Any:
        """Connect through bluegreen (``settings`` are wrapper settings)."""
        kw = self.kwargs(host or self.blue_host)
        kw.update(settings)
        return bluegreen.connect(self.target(), **kw)

    def connect_raw(self, host: str | None = None) -> Any:
        return self.target()(**self.kwargs(host or self.blue_host))

    def bg_connect_function(self, **settings: Any) -> Callable[..., Any]:
        """A connect function for :class:`~bluegreen.sim.workload.Workload`."""
        return functools.partial(bluegreen.connect, self.target(), **settings)

    def server_identity(self, conn: Any) -> str:
        """The IP (PostgreSQL) or server id (MariaDB) of the serving instance."""
        cur = conn.cursor()
        try:
            if self.engine == "postgres":
                cur.execute("SELECT host(inet_server_addr())")
            else:
                cur.execute("SELECT @@server_id")
            return str(cur.fetchone()[0])
        finally:
            cur.close()

    def identity_of(self, inst: Any) -> str:
        return inst.host if self.engine == "postgres" else str(inst.server_id)

    # -- scenarios ------------------------------------------------------------
    def play(self, scenario: str | Scenario, speed: float, **kw: Any) -> ScenarioPlayer:
        return self._start_player(self.dep, scenario, speed=speed, **kw)


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.01
) -> Any:
    """Poll ``predicate`` until truthy; fail the test naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def wait_ready(bg_id: str = "1", timeout: float = 20.0) -> bluegreen.bg.BlueGreenStatus:
    """Wait until the plugin reports the green topology mapped."""

    def ready() -> bluegreen.bg.BlueGreenStatus | None:
        st = bluegreen.bg.status(bg_id)
        return st if st is not None and st.ready else None

    return wait_for(ready, timeout, f"bg_id {bg_id!r} to be ready")  # type: ignore[no-any-return]


class AsyncHarness(Harness):
    """A harness whose bluegreen connections are asyncio ones, on ``lt``'s
    event loop, behind synchronous facades (:mod:`bluegreen.sim.aioclients`)."""

    def __init__(self, base: Harness, driver: str, lt: Any) -> None:
        super().__init__(base.dep, base._start_player, base.driver)
        self.async_driver = driver
        self.lt = lt

    def connect(self, host: str | None = None, **settings: Any) -> Any:
        from bluegreen.sim.aioclients import facade_connect

        kw = self.kwargs(host or self.blue_host)
        return facade_connect(self.lt, self.async_driver, settings)(**kw)

    def bg_connect_function(self, **settings: Any) -> Callable[..., Any]:
        from bluegreen.sim.aioclients import facade_connect

        return facade_connect(self.lt, self.async_driver, settings)
