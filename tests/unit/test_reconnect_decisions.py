"""The transparent reconnect's decisions (bg/_reconnect.py) with fakes: no
database, no threads. The real-server behaviour is in
tests/integration/bg/test_bg_reconnect.py."""

from __future__ import annotations

import time
import types
from typing import Any

import pytest

from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, Observation, StatusRow
from bluegreen.bg._reconnect import DEAD, careful_call
from bluegreen.bg._watch import DeploymentWatch
from bluegreen.bg.plugin import BlueGreenPlugin
from bluegreen.pipeline import HOOKED, Gate, Reconnected
from bluegreen.settings import Settings

D = "abc123xyz.us-east-1.rds.amazonaws.com"
B, G = f"mydb.{D}", f"mydb-green-k7dd3e.{D}"


class Lost(Exception):
    pass


class FakeAdapter:
    #: As mysql-connector: its cursor() pings before anything else.
    unsent_on_loss = frozenset({"cursor"})

    def __init__(self) -> None:
        self.busy = False
        self.closed_peer = False
        self.restored: list[dict[str, Any]] = []

    def in_transaction(self, raw: Any) -> bool:
        return self.busy

    def peer_closed(self, raw: Any) -> bool:
        return self.closed_peer

    def is_closed(self, raw: Any) -> bool:
        return False

    def is_connection_lost(self, exc: BaseException, raw: Any) -> bool:
        return isinstance(exc, Lost)

    def session_state(self, raw: Any) -> dict[str, Any]:
        return {"from": raw}

    def restore_session(self, raw: Any, state: dict[str, Any]) -> None:
        self.restored.append(state)


class FakeConn:
    """What the execute hook sees of a bluegreen connection."""

    def __init__(self) -> None:
        self.driver_connection: Any = types.SimpleNamespace(name="old", closed=False)
        self.driver_connection.close = lambda: setattr(
            self.driver_connection, "closed", True
        )
        self.driver_adapter = FakeAdapter()
        self.opened = 0
        self.wrapper_pipeline = types.SimpleNamespace(reopen=self._reopen)
        #: The plugin whose gate this connection takes (tests set it).
        self.gatekeeper: BlueGreenPlugin | None = None
        self._bg_gate: Gate = HOOKED

    def refresh_gate(self) -> None:
        keeper = self.gatekeeper
        self._bg_gate = HOOKED if keeper is None else keeper.gate()

    def _reopen(self) -> Any:
        self.opened += 1
        return types.SimpleNamespace(name=f"new{self.opened}", close=lambda: None)

    def swap_driver_connection(self, raw: Any) -> Any:
        old, self.driver_connection = self.driver_connection, raw
        return old


def feed(watch: DeploymentWatch, *statuses: str) -> None:
    for status in statuses:
        rows = (
            StatusRow(B, 5432, ROLE_SOURCE, status),
            StatusRow(G, 5432, ROLE_TARGET, status),
        )
        obs = Observation("blue", time.monotonic(), rows)
        watch.report(lambda t, o=obs: t.observe(o))


def watch_after_drop(phase: str = "SWITCHOVER_IN_POST_PROCESSING") -> DeploymentWatch:
    watch = DeploymentWatch("rc", Settings())
    feed(watch, "AVAILABLE", "SWITCHOVER_INITIATED", "SWITCHOVER_IN_PROGRESS", phase)
    return watch


def plugin(watch: DeploymentWatch, host: str = B, **settings: Any) -> BlueGreenPlugin:
    p = object.__new__(BlueGreenPlugin)
    p.context = types.SimpleNamespace(settings=Settings(**settings))  # type: ignore[assignment]
    p.watch, p.host, p.ip, p.detection = watch, host, None, None
    p.epoch = 0  # opened before the switchover
    return p


def call(conn: FakeConn, name: str = "execute", fail: Exception | None = None) -> Any:
    def run() -> Any:
        if fail is not None:
            raise fail
        return conn.driver_connection.name

    return run


def test_an_idle_dropped_connection_is_reopened_and_the_call_rebuilt() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    hooked: list[Any] = []
    p.context.settings = Settings(bg_on_reconnect=hooked.append)  # type: ignore[misc]
    with pytest.raises(Reconnected):
        careful_call(p, conn, "execute", call(conn), watch.view)  # type: ignore[arg-type]
    assert conn.driver_connection.name == "new1"
    assert conn.driver_adapter.restored[0]["from"].name == "old"
    assert hooked == [conn]
    assert watch.counters["reconnects"] == 1
    # The proxy makes the call again: it runs on the new connection.
    p.epoch = watch.view.kill_epoch
    assert careful_call(p, conn, "execute", call(conn), watch.view) == "new1"  # type: ignore[arg-type]


def test_inside_a_transaction_the_drivers_error_then_a_new_connection() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    conn.driver_adapter.busy = True
    with pytest.raises(Lost):
        careful_call(p, conn, "execute", call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert conn.opened == 0 and p.epoch == DEAD
    assert watch.counters["refused_in_transaction"] == 1
    # The transaction was reported lost; the next call gets a new connection.
    with pytest.raises(Reconnected):
        careful_call(p, conn, "execute", call(conn), watch.view)  # type: ignore[arg-type]
    assert conn.opened == 1


def test_a_rollback_of_a_lost_transaction_is_reopened() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    conn.driver_adapter.busy = True
    with pytest.raises(Reconnected):
        careful_call(p, conn, "rollback", call(conn), watch.view)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["fetchone", "notifies", "scroll", "nextset"])
def test_continuations_are_never_moved_to_a_new_connection(name: str) -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    with pytest.raises(Lost):
        careful_call(p, conn, name, call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert conn.opened == 0
    assert watch.counters["refused_in_flight"] == 1
    # Read-ahead rows still served on the dead connection refuse nothing.
    p2, conn2 = plugin(watch), FakeConn()
    careful_call(p2, conn2, name, call(conn2), watch.view)  # type: ignore[arg-type]
    careful_call(p2, conn2, name, call(conn2), watch.view)  # type: ignore[arg-type]
    assert watch.counters["refused_in_flight"] == 1


def test_switched_off() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch, bg_reconnect=False), FakeConn()
    with pytest.raises(Lost):
        careful_call(p, conn, "execute", call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert conn.opened == 0


def test_a_host_outside_the_deployment_is_not_touched() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch, host="db.example.com"), FakeConn()
    assert careful_call(p, conn, "execute", call(conn), watch.view) == "old"  # type: ignore[arg-type]
    assert p.epoch == watch.view.kill_epoch and conn.opened == 0


def test_a_call_that_works_proves_the_connection_alive() -> None:
    """A connection counted as dropped (an inferred IN_PROGRESS that was not
    one) that answers is kept."""
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    conn.driver_adapter.busy = True  # so it is not reopened first
    assert careful_call(p, conn, "execute", call(conn), watch.view) == "old"  # type: ignore[arg-type]
    assert p.epoch == watch.view.kill_epoch


def test_in_preparation_a_closed_socket_means_dropped() -> None:
    watch = DeploymentWatch("rc", Settings())
    for status in ("AVAILABLE", "SWITCHOVER_INITIATED"):
        rows = (
            StatusRow(B, 5432, ROLE_SOURCE, status),
            StatusRow(G, 5432, ROLE_TARGET, status),
        )
        obs = Observation("blue", time.monotonic(), rows)
        watch.report(lambda t, o=obs: t.observe(o))
    p, conn = plugin(watch), FakeConn()
    p.epoch = watch.view.kill_epoch
    assert careful_call(p, conn, "execute", call(conn), watch.view) == "old"  # type: ignore[arg-type]
    conn.driver_adapter.closed_peer = True
    with pytest.raises(Reconnected):
        careful_call(p, conn, "execute", call(conn), watch.view)  # type: ignore[arg-type]


def test_an_in_flight_call_that_loses_the_connection_is_not_re_run() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    p.epoch = watch.view.kill_epoch  # opened after the drop: alive as far as known
    runs: list[int] = []

    def in_flight() -> Any:
        runs.append(1)
        raise Lost()

    with pytest.raises(Lost):
        careful_call(p, conn, "execute", in_flight, watch.view)  # type: ignore[arg-type]
    assert runs == [1] and p.epoch == DEAD


def test_a_rollback_during_in_progress_never_waits_for_a_new_connection() -> None:
    """Rolling back a dropped connection while no connection can be had:
    the rollback goes to the old connection (the driver's own outcome), the
    connection stays known dead, and a rollback that sent nothing does not
    count as proof that it is alive."""
    watch = watch_after_drop("SWITCHOVER_IN_PROGRESS")
    p, conn = plugin(watch, bg_connect_timeout_ms=50), FakeConn()
    ran: list[str] = []

    def rollback() -> None:
        ran.append("rollback")  # psycopg with no transaction: nothing sent

    careful_call(p, conn, "rollback", rollback, watch.view)  # type: ignore[arg-type]
    assert ran == ["rollback"] and conn.opened == 0
    assert p.epoch == DEAD


def test_a_rollback_whose_reconnect_fails_goes_to_the_old_connection() -> None:
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()

    def refuse() -> Any:
        raise OSError("the green host refuses")

    conn.wrapper_pipeline.reopen = refuse
    ran: list[str] = []
    careful_call(p, conn, "rollback", lambda: ran.append("old"), watch.view)  # type: ignore[arg-type]
    assert ran == ["old"] and p.epoch == DEAD


def test_a_rollback_of_a_connection_the_server_closed_sends_nothing() -> None:
    """The server closed the dropped connection (its socket says so): it has
    rolled the transaction back itself. The rollback sends nothing and
    raises nothing, so that an application rolling back after an error
    re-raises its own error, not the driver's 'connection lost'."""
    watch = watch_after_drop("SWITCHOVER_IN_PROGRESS")
    p, conn = plugin(watch, bg_connect_timeout_ms=50), FakeConn()
    conn.driver_adapter.closed_peer = True
    ran: list[str] = []
    assert (
        careful_call(p, conn, "rollback", lambda: ran.append("x"), watch.view) is None
    )  # type: ignore[arg-type]
    assert ran == [] and p.epoch == DEAD


# -- the gate: calls skip the hook only while it would do nothing ------------


def test_the_gate_follows_the_phase_and_closes_for_good_on_a_drop() -> None:
    watch = DeploymentWatch("gate", Settings())
    feed(watch, "AVAILABLE")
    before = plugin(watch)
    before.epoch = watch.view.kill_epoch
    gate = before.gate()
    assert gate.calm
    feed(watch, "SWITCHOVER_INITIATED")  # PREPARATION: a drop may come
    assert not gate.calm
    assert before.gate() is gate
    feed(watch, "SWITCHOVER_IN_PROGRESS", "SWITCHOVER_IN_POST_PROCESSING")
    feed(watch, "SWITCHOVER_COMPLETED")
    # The switchover dropped what was open before it: that gate stays shut
    # whatever the phase, and the connection gets no calm gate any more.
    assert not gate.calm
    assert before.gate() is HOOKED
    after = plugin(watch)
    after.epoch = watch.view.kill_epoch
    assert after.gate() is not gate
    assert after.gate().calm == watch.view.quiet_calls


def test_a_reconnected_connection_gets_the_calm_gate_back() -> None:
    watch = watch_after_drop("SWITCHOVER_COMPLETED")
    p, conn = plugin(watch), FakeConn()
    conn.gatekeeper = p
    conn.refresh_gate()
    assert conn._bg_gate is HOOKED  # opened before the drop

    def reopen() -> Any:  # the plugin's connect hook sets the epoch
        p.epoch = watch.view.kill_epoch
        return types.SimpleNamespace(name="new", close=lambda: None)

    conn.wrapper_pipeline.reopen = reopen
    with pytest.raises(Reconnected):
        careful_call(p, conn, "execute", call(conn), watch.view)  # type: ignore[arg-type]
    assert conn._bg_gate.calm == watch.view.quiet_calls
    assert conn._bg_gate is watch.gate_for(watch.view.kill_epoch)


def test_a_connection_lost_under_a_call_loses_its_gate() -> None:
    watch = watch_after_drop("SWITCHOVER_COMPLETED")
    p, conn = plugin(watch), FakeConn()
    p.epoch = watch.view.kill_epoch
    conn.gatekeeper = p
    with pytest.raises(Lost):
        careful_call(p, conn, "execute", call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert p.epoch == DEAD and conn._bg_gate is HOOKED


def test_a_closed_watch_opens_its_gate() -> None:
    watch = DeploymentWatch("gate-closed", Settings())
    feed(watch, "AVAILABLE", "SWITCHOVER_INITIATED")
    p = plugin(watch)
    p.epoch = watch.view.kill_epoch
    gate = p.gate()
    assert not gate.calm
    watch.close()
    assert watch.gate_for(watch.view.kill_epoch).calm


# -- calls that send nothing of the application's before failing -------------


def watch_in_preparation() -> DeploymentWatch:
    watch = DeploymentWatch("prep", Settings())
    feed(watch, "AVAILABLE", "SWITCHOVER_INITIATED")
    return watch


def test_a_ping_first_call_that_finds_the_connection_lost_is_made_again() -> None:
    """mysql-connector's cursor() pings: when the drop came before the
    monitors could see IN_PROGRESS (and the C extension shows no socket to
    look at), the ping's failure is the first sign, and nothing of the
    application's was sent: reconnect and make the call again."""
    watch = watch_in_preparation()
    p, conn = plugin(watch), FakeConn()
    p.epoch = watch.view.kill_epoch
    with pytest.raises(Reconnected):
        careful_call(p, conn, "cursor", call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert conn.opened == 1 and watch.counters["reconnects"] == 1


@pytest.mark.parametrize("case", ["a statement", "in a transaction", "switched off"])
def test_what_may_have_been_sent_is_never_made_again(case: str) -> None:
    watch = watch_in_preparation()
    settings = {"bg_reconnect": False} if case == "switched off" else {}
    p, conn = plugin(watch, **settings), FakeConn()
    p.epoch = watch.view.kill_epoch
    conn.driver_adapter.busy = case == "in a transaction"
    name = "execute" if case == "a statement" else "cursor"
    with pytest.raises(Lost):
        careful_call(p, conn, name, call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert conn.opened == 0 and p.epoch == DEAD


def test_a_failed_reopen_leaves_the_drivers_own_error() -> None:
    watch = watch_in_preparation()
    p, conn = plugin(watch), FakeConn()
    p.epoch = watch.view.kill_epoch

    def reopen() -> Any:
        raise ConnectionRefusedError("host unreachable")

    conn.wrapper_pipeline.reopen = reopen
    with pytest.raises(Lost):
        careful_call(p, conn, "cursor", call(conn, fail=Lost()), watch.view)  # type: ignore[arg-type]
    assert p.epoch == DEAD


def test_a_fetch_served_from_memory_does_not_prove_a_dropped_connection_alive() -> None:
    """mysql-connector's C extension reads rows ahead: a fetchone() on a
    connection the switchover dropped may succeed. The connection must stay
    known dropped, or its gate would open and the next call would go
    straight to the dead connection, again and again."""
    watch = watch_after_drop()
    p, conn = plugin(watch), FakeConn()
    conn.gatekeeper = p
    assert careful_call(p, conn, "fetchone", call(conn), watch.view) == "old"  # type: ignore[arg-type]
    assert p.epoch != watch.view.kill_epoch
    conn.refresh_gate()
    assert not conn._bg_gate.calm
    with pytest.raises(Reconnected):  # the next call gets a new connection
        careful_call(p, conn, "cursor", call(conn), watch.view)  # type: ignore[arg-type]
