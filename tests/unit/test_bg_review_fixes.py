"""Regressions found in review: each test failed before its fix.

No database and no monitor threads: the watch is fed by hand, the driver
adapter gets a fake target that records what it would have been called with.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bluegreen.bg._hosts import build_inventory
from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, Observation, Phase, StatusRow
from bluegreen.bg._routing import Action, route_connect, suspends_calls
from bluegreen.bg._tracker import RoutingView, SwitchoverTracker
from bluegreen.bg._watch import DeploymentWatch
from bluegreen.bg.plugin import BlueGreenPlugin
from bluegreen.drivers import adapter_for
from bluegreen.drivers.base import DriverParams
from bluegreen.pipeline import OPEN
from bluegreen.settings import Settings

D = "abc123xyz.us-east-1.rds.amazonaws.com"
B, G = f"mydb.{D}", f"mydb-green-k7dd3e.{D}"


def rows(status: str, blue: str = B, green: str = G) -> tuple[StatusRow, ...]:
    return (
        StatusRow(blue, 5432, ROLE_SOURCE, status),
        StatusRow(green, 5432, ROLE_TARGET, status),
    )


def in_progress_watch(**settings: Any) -> DeploymentWatch:
    watch = DeploymentWatch("review", Settings(**settings))
    for status in ("AVAILABLE", "SWITCHOVER_INITIATED", "SWITCHOVER_IN_PROGRESS"):
        obs = Observation("blue", time.monotonic(), rows(status))
        watch.report(lambda t, o=obs: t.observe(o))
    assert watch.view.phase is Phase.IN_PROGRESS
    return watch


class _FakeAdapter:
    """What the plugin asks a connection's adapter during a switchover."""

    unsent_on_loss: frozenset[str] = frozenset()

    @staticmethod
    def in_transaction(raw: Any) -> bool:
        return False

    @staticmethod
    def peer_closed(raw: Any) -> bool:
        return False

    @staticmethod
    def is_connection_lost(exc: BaseException, raw: Any) -> bool:
        return False


#: A bluegreen connection as the execute hook sees it (no driver behind it).
FAKE_CONN: Any = types.SimpleNamespace(
    driver_connection=None,
    driver_adapter=_FakeAdapter(),
    _bg_gate=OPEN,
    refresh_gate=lambda: None,
)


def plugin_on(watch: DeploymentWatch, settings: Settings) -> BlueGreenPlugin:
    plugin = object.__new__(BlueGreenPlugin)
    plugin.context = types.SimpleNamespace(settings=settings)  # type: ignore[assignment]
    plugin.watch, plugin.host, plugin.ip, plugin.detection = watch, B, None, None
    plugin.errors = adapter_for(psycopg.connect).errors
    # Opened after the drop (only suspension is tested with it).
    plugin.epoch = watch.view.kill_epoch
    return plugin


def test_a_closed_watch_lets_calls_through_at_once() -> None:
    # shutdown() during IN_PROGRESS: open connections must not spin on the
    # dead watch until the switchover timeout.
    settings = Settings(bg_connect_timeout_ms=300, bg_switchover_timeout_ms=3000)
    watch = in_progress_watch(bg_connect_timeout_ms=300, bg_switchover_timeout_ms=3000)
    watch.close()
    assert watch.view.passthrough
    plugin = plugin_on(watch, settings)
    started = time.process_time()
    assert plugin.execute(FAKE_CONN, "execute", lambda: "sent") == "sent"  # type: ignore[arg-type]
    assert time.process_time() - started < 0.2


def test_a_forked_child_gets_a_usable_condition() -> None:
    watch = in_progress_watch()
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with watch._cond:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        # What the at-fork handler does in a child whose parent thread held
        # the condition at fork time.
        before = watch.view.version
        watch.after_fork_in_child()
        assert watch.view.passthrough
        # The condition is usable (no deadlock on the parent's lock): a
        # waiter on the old view returns at once, one on the current view
        # waits until its deadline and no longer.
        assert watch.wait(before, time.monotonic() + 1, time.monotonic())
        started = time.monotonic()
        assert not watch.wait(watch.view.version, started + 0.2, started)
        assert 0.19 <= time.monotonic() - started < 2
    finally:
        release.set()
        holder.join(5)


def test_psycopg_multi_host_conninfo_is_narrowed_for_an_ip() -> None:
    seen: list[dict[str, Any]] = []

    def fake_connect(conninfo: str = "", **kwargs: Any) -> Any:
        params = conninfo_to_dict(make_conninfo(conninfo, **kwargs))
        seen.append(params)
        return params

    # A fresh adapter of psycopg's kind around the stub (the shared one,
    # cached per target, must stay untouched).
    adapter = type(adapter_for(psycopg.connect))(fake_connect)
    conninfo = f"host={B},mydb.cluster-ro-{D} port=5432,5433 dbname=app"
    adapter.connect(DriverParams(conninfo, {}), ip="10.0.0.1")
    params = seen[-1]
    assert params["hostaddr"] == "10.0.0.1"
    assert params["host"] == B  # one host name, kept for TLS
    assert str(params["port"]) == "5432"


@pytest.mark.parametrize("timeout_ms", [0, 500])
def test_driver_errors_in_preparation_stay_driver_errors(timeout_ms: int) -> None:
    # A small bg_connect_timeout_ms must not turn an ordinary connect error
    # (bad password) into a SwitchoverTimeoutError.
    settings = Settings(bg_connect_timeout_ms=timeout_ms)
    watch = DeploymentWatch("review", settings)
    for status in ("AVAILABLE", "SWITCHOVER_INITIATED"):
        obs = Observation("blue", time.monotonic(), rows(status))
        watch.report(lambda t, o=obs: t.observe(o))
    watch.report(lambda t: t.observe_dns({B: "10.0.0.1", G: "10.0.1.1"}, 0.0))
    plugin = plugin_on(watch, settings)
    view = watch.view
    route = route_connect(view, B, None, time.monotonic(), suspend_new_blue=False)
    now = time.monotonic()
    error = psycopg.OperationalError("password authentication failed")
    assert not plugin._retry_after(error, route, view, now + timeout_ms / 1000, now)


def test_another_databases_green_name_is_left_alone() -> None:
    inv = build_inventory(rows(""), ips={B: "10.0.0.1", G: "10.0.1.1"})
    other = f"reportsdb-green-q1w2e3.{D}"
    for phase, renamed in ((Phase.IN_PROGRESS, False), (Phase.POST, True)):
        view = RoutingView(phase=phase, inventory=inv, renamed=renamed, release_at=1e12)
        route = route_connect(view, other, None, 0.0, suspend_new_blue=False)
        assert route.action is Action.DIRECT
        assert not suspends_calls(view, other, None, 0.0)


def test_a_new_deployment_after_a_timeout_in_post_is_followed() -> None:
    now = [1000.0]
    t = SwitchoverTracker(switchover_timeout=10.0, clock=lambda: now[0])
    for at, status in ((1000.0, "AVAILABLE"), (1001.0, "SWITCHOVER_INITIATED")):
        t.observe(Observation("blue", at, rows(status)))
    t.observe(Observation("blue", 1002.0, rows("SWITCHOVER_IN_POST_PROCESSING")))
    now[0] = 1020.0
    assert t.check_time(1020.0) and t.finished
    # The frozen old rows say nothing new ...
    assert not t.observe(Observation("blue", 1021.0, rows("SWITCHOVER_INITIATED")))
    # ... a new deployment (new green names) starts a new cycle.
    g2 = f"mydb-green-zz99aa.{D}"
    t.observe(Observation("blue", 1030.0, rows("AVAILABLE", green=g2)))
    t.observe(Observation("blue", 1031.0, rows("SWITCHOVER_INITIATED", green=g2)))
    assert t.phase is Phase.PREPARATION
    assert g2 in t.inventory.green


def test_a_rollback_is_never_refused_so_the_statement_error_shows() -> None:
    """An INSERT failed during a switchover; the application rolls back. The
    wait for the switchover runs out, and the rollback is sent anyway: the
    application sees its own error (or the driver's rollback outcome), never
    a SwitchoverTimeoutError that hides it."""
    from bluegreen.errors import SwitchoverTimeoutError

    settings = Settings(bg_connect_timeout_ms=100, bg_switchover_timeout_ms=60000)
    watch = in_progress_watch(bg_connect_timeout_ms=100, bg_switchover_timeout_ms=60000)
    watch.note_host(B)
    plugin = plugin_on(watch, settings)
    sent: list[str] = []
    with pytest.raises(SwitchoverTimeoutError):
        plugin.execute(FAKE_CONN, "execute", lambda: sent.append("execute"))  # type: ignore[arg-type]

    def app() -> None:
        try:
            raise psycopg.errors.ReadOnlySqlTransaction("read-only")
        except psycopg.Error:
            plugin.execute(FAKE_CONN, "rollback", lambda: sent.append("rollback"))  # type: ignore[arg-type]
            raise

    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        app()
    assert sent == ["rollback"]
    for name in ("tpc_rollback",):
        plugin.execute(FAKE_CONN, name, lambda n=name: sent.append(n))  # type: ignore[arg-type]
    assert sent == ["rollback", "tpc_rollback"]
