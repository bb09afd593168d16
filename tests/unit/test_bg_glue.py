"""The bg plugin's glue (_watch, _monitor, the plugin's connect and execute
loops) with fake clocks, resolvers and connections: no database, and threads
only where the test is about threads.

Each regression test here failed before its fix (bg hardening issue, item 3):
a closed watch came back to life, waits ignored their deadline on a closed
watch, threads held their watch strongly, and a thread stopped for good on
an unexpected error.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from bluegreen import _log
from bluegreen._runtime import runtime
from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, Observation, Phase, StatusRow
from bluegreen.bg._monitor import DnsWatcher, _Worker
from bluegreen.bg._tracker import SwitchoverTracker
from bluegreen.bg._watch import DeploymentWatch
from bluegreen.bg.plugin import BlueGreenPlugin
from bluegreen.drivers import adapter_for
from bluegreen.errors import SwitchoverTimeoutError
from bluegreen.pipeline import OPEN
from bluegreen.settings import Settings

D = "abc123xyz.us-east-1.rds.amazonaws.com"
B, G = f"mydb.{D}", f"mydb-green-k7dd3e.{D}"
B_IP, G_IP = "10.0.0.1", "10.0.1.1"
PSYCOPG = adapter_for(psycopg.connect)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Resolver:
    """name -> address; names not listed do not exist."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = dict(table)
        self.calls = 0

    def __call__(self, name: str) -> tuple[bool, str | None]:
        self.calls += 1
        return True, self.table.get(name)


def rows(status: str) -> tuple[StatusRow, ...]:
    return (
        StatusRow(B, 5432, ROLE_SOURCE, status),
        StatusRow(G, 5432, ROLE_TARGET, status),
    )


def make_watch(
    clock: Callable[[], float] = time.monotonic,
    resolver: Callable[[str], tuple[bool, str | None]] | None = None,
    **settings: Any,
) -> DeploymentWatch:
    resolver = resolver or Resolver({B: B_IP, G: G_IP})
    return DeploymentWatch("glue", Settings(**settings), clock=clock, resolver=resolver)


def feed(watch: DeploymentWatch, *statuses: str, at: float | None = None) -> None:
    for status in statuses:
        obs = Observation("blue", watch.clock() if at is None else at, rows(status))
        watch.report(lambda t, o=obs: t.observe(o))


def feed_dns(watch: DeploymentWatch, table: dict[str, str | None]) -> None:
    now = watch.clock()
    watch.report(lambda t: t.observe_dns(table, now))


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


def plugin_on(watch: DeploymentWatch, host: str = B) -> BlueGreenPlugin:
    plugin = object.__new__(BlueGreenPlugin)
    plugin.context = types.SimpleNamespace(  # type: ignore[assignment]
        settings=watch.settings, adapter=PSYCOPG
    )
    plugin.watch, plugin.host, plugin.ip, plugin.detection = watch, host, None, None
    plugin.errors = PSYCOPG.errors
    # A host no detection is cached for (tests stub the detection itself).
    plugin.fixed = types.SimpleNamespace(  # type: ignore[assignment]
        key=("postgres", host, -1, None), host=host, forced=None
    )
    # Opened after the drop (only suspension is tested with it).
    plugin.epoch = watch.view.kill_epoch
    return plugin


class FakeCtx:
    """The part of a ConnectContext the connect loop uses."""

    def __init__(self, settings: Settings, host: str = B) -> None:
        self.settings = settings
        self.host = host
        self.port = 5432
        self.adapter = PSYCOPG
        self.connected: list[tuple[str | None, int | None]] = []

    def connect(self, ip: str | None = None, port: int | None = None) -> Any:
        self.connected.append((ip, port))
        return types.SimpleNamespace(close=lambda: None, ip=ip)


def in_progress(watch: DeploymentWatch) -> None:
    feed(watch, "AVAILABLE")
    feed_dns(watch, {B: B_IP, G: G_IP})  # the addresses from before
    assert watch.tracker.ready
    feed(watch, "SWITCHOVER_INITIATED", "SWITCHOVER_IN_PROGRESS")
    assert watch.view.phase is Phase.IN_PROGRESS


# -- a closed watch is final ----------


def test_a_closed_watch_never_comes_back_to_life() -> None:
    watch = make_watch()
    in_progress(watch)
    watch.close()
    closed = watch.view
    assert closed.passthrough
    watch.note_host(f"other.cluster-{D}")  # used to publish a live view again
    feed(watch, "SWITCHOVER_IN_POST_PROCESSING")
    watch.tracker.add_app_host(f"third.cluster-{D}")
    watch._publish([])
    assert watch.view is closed
    assert watch.closed


def test_versions_come_from_one_counter() -> None:
    watch = make_watch()
    in_progress(watch)
    seen = watch.view.version
    watch.close()
    assert watch.view.version > seen
    tracker_view = watch.tracker.view()
    assert tracker_view.version != watch.view.version or tracker_view is watch.view


def test_shutdown_racing_a_connect_neither_spins_nor_overstays() -> None:
    """A connection waiting in IN_PROGRESS when the watch closes (shutdown()),
    while another connection notes a new host: it must go through at once,
    without burning CPU until its deadline (it was held 3 s with a 2 s
    bg_connect_timeout_ms, and 180 s by default)."""
    watch = make_watch(
        bg_connect_timeout_ms=2000,
        bg_switchover_timeout_ms=180000,
        bg_suspend_new_blue_connections=True,
    )
    in_progress(watch)
    plugin = plugin_on(watch)
    ctx = FakeCtx(watch.settings)
    result: dict[str, Any] = {}

    def connect() -> None:
        cpu = time.thread_time()
        wall = time.monotonic()
        try:
            result["conn"] = plugin._routed_connect(ctx, lambda: ctx.connect())  # type: ignore[arg-type]
        except Exception as exc:
            result["error"] = exc
        result["cpu"] = time.thread_time() - cpu
        result["wall"] = time.monotonic() - wall

    t = threading.Thread(target=connect)
    t.start()
    time.sleep(0.2)
    watch.close()
    watch.note_host(f"other.cluster-{D}")
    t.join(5)
    assert not t.is_alive()
    assert "error" not in result, result.get("error")
    assert result["wall"] < 1.5
    assert result["cpu"] < 0.5


def test_every_wait_honours_its_deadline() -> None:
    watch = make_watch()
    in_progress(watch)
    for closed in (False, True):
        if closed:
            watch.close()
        started = time.monotonic()
        assert not watch.wait(watch.view.version, started + 0.2, started)
        assert 0.19 <= time.monotonic() - started < 1.5


def test_an_execute_on_a_closed_watch_goes_through() -> None:
    watch = make_watch(bg_connect_timeout_ms=5000)
    in_progress(watch)
    watch.note_host(B)
    plugin = plugin_on(watch)
    watch.close()
    cpu = time.process_time()
    assert plugin.execute(FAKE_CONN, "execute", lambda: "sent") == "sent"  # type: ignore[arg-type]
    assert time.process_time() - cpu < 0.2


# -- the connect and execute loops, on a fake clock ----------


def test_suspended_call_times_out_on_the_watch_clock() -> None:
    """The deadline is read from the watch's clock, not time.monotonic: with
    a fake clock far past the deadline, the call is refused at once."""
    clock = Clock()
    watch = make_watch(clock, bg_connect_timeout_ms=1000)
    in_progress(watch)
    watch.note_host(B)
    plugin = plugin_on(watch)

    def jump() -> None:
        time.sleep(0.05)
        clock.now += 10
        with watch.condition:
            watch.condition.notify_all()

    threading.Thread(target=jump).start()
    started = time.monotonic()
    with pytest.raises(SwitchoverTimeoutError) as info:
        plugin.execute(FAKE_CONN, "execute", lambda: "sent")  # type: ignore[arg-type]
    assert time.monotonic() - started < 2
    assert isinstance(info.value, psycopg.OperationalError)
    assert "not sent" in str(info.value)


def test_connect_after_the_switchover_uses_the_green_address_even_timed_out() -> None:
    clock = Clock()
    watch = make_watch(
        clock, bg_switchover_timeout_ms=1000, bg_suspend_new_blue_connections=True
    )
    in_progress(watch)
    feed(watch, "SWITCHOVER_IN_POST_PROCESSING")
    clock.now += 3600  # long past every timer; DNS still points at the old blue
    watch.tracker.check_time(clock.now)
    plugin = plugin_on(watch)
    ctx = FakeCtx(watch.settings)
    conn = plugin._routed_connect(ctx, lambda: ctx.connect())  # type: ignore[arg-type]
    assert conn.ip == G_IP
    # DNS moves: DNS is followed.
    feed_dns(watch, {B: G_IP, G: G_IP})
    conn = plugin._routed_connect(ctx, lambda: ctx.connect())  # type: ignore[arg-type]
    assert ctx.connected[-1] == (None, None)


def test_green_names_rejected_as_the_drivers_error() -> None:
    watch = make_watch()
    in_progress(watch)
    feed(watch, "SWITCHOVER_IN_POST_PROCESSING")
    watch.report(lambda t: t._set_renamed(watch.clock()))
    plugin = plugin_on(watch, host=G)
    ctx = FakeCtx(watch.settings, host=G)
    with pytest.raises(psycopg.OperationalError) as info:
        plugin._routed_connect(ctx, lambda: ctx.connect())  # type: ignore[arg-type]
    assert type(info.value).__name__ == "GreenHostRejectedError"
    assert ctx.connected == []


# -- threads ----------


class Steps(_Worker):
    """A worker whose rounds run ``work`` (which may raise)."""

    def __init__(self, watch: DeploymentWatch, work: Callable[[], None]) -> None:
        super().__init__(watch, "bluegreen-bg-glue-test")
        self.work = work
        self.rounds = 0

    def step(self, watch: Any) -> Callable[[SwitchoverTracker], bool]:
        self.rounds += 1
        self.work()
        return lambda t: False


@pytest.mark.parametrize("kind", ["steps", "dns"])
def test_threads_hold_their_watch_weakly(kind: str) -> None:
    resolver = Resolver({B: B_IP})
    watch = make_watch(resolver=resolver, bg_interval_baseline_ms=60000)
    feed(watch, "AVAILABLE")  # names to resolve
    worker = DnsWatcher(watch) if kind == "dns" else Steps(watch, lambda: None)
    worker.start()
    deadline = time.monotonic() + 5
    while (
        resolver.calls == 0 if kind == "dns" else worker.rounds == 0  # type: ignore[attr-defined]
    ) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # asleep until the next (60 s) round
    ref = weakref.ref(watch)
    del watch
    gc.collect()
    assert ref() is None, "something holds the watch"
    started = time.monotonic()
    worker.join(3)
    assert not worker.is_alive()
    assert time.monotonic() - started < 1  # woken by the watch's finalizer


def test_a_thread_survives_unexpected_errors_logs_once_and_backs_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime(), "warnings", _log.WarnLog())

    watch = make_watch(bg_interval_baseline_ms=10)
    failures = {"left": 4}

    def work() -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("unexpected")

    worker = Steps(watch, work)
    with caplog.at_level(logging.DEBUG, logger="bluegreen.bg"):
        worker.start()
        deadline = time.monotonic() + 10
        while worker.rounds < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker.rounds >= 6, "the thread stopped after an error"
        assert worker.is_alive()
        assert worker.failures == 0  # recovered
        watch.close()
        worker.join(3)
    warned = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "unexpected" in r.getMessage()
    ]
    assert len(warned) == 1
    assert warned[0].exc_info is not None


def test_backoff_grows_with_failures() -> None:
    clock = Clock()
    watch = make_watch(clock, bg_interval_baseline_ms=100)
    worker = Steps(watch, lambda: None)
    worker.failures = 3
    # Due 0.1 * 2**3 s after ``since``: a sleep from ``now`` returns once
    # the clock passes it (checked without a thread: stop first).
    start = clock.now

    def advance() -> None:
        time.sleep(0.05)
        clock.now = start + 0.7
        with watch.condition:
            watch.condition.notify_all()
        time.sleep(0.05)
        clock.now = start + 0.81
        with watch.condition:
            watch.condition.notify_all()

    t = threading.Thread(target=advance)
    t.start()
    began = time.monotonic()
    assert worker.sleep(start)
    t.join()
    assert clock.now == start + 0.81
    assert time.monotonic() - began < 4


def test_released_connect_looks_for_renames_before_following_dns() -> None:
    """Traffic was released by the timer during IN_PROGRESS (the hosts were
    unreachable); the switchover then went through, and the DNS watcher has
    not run since. A new connection must not follow DNS to the old blue:
    it resolves the -old1 name itself, and goes to the green host."""
    clock = Clock()
    resolver = Resolver({B: B_IP, G: G_IP})
    watch = make_watch(
        clock,
        resolver,
        bg_switchover_timeout_ms=1000,
        bg_suspend_new_blue_connections=True,
    )
    in_progress(watch)
    clock.now += 5
    watch.tracker.check_time(clock.now)
    assert watch.view.timed_out(clock.now)
    plugin = plugin_on(watch)
    ctx = FakeCtx(watch.settings)
    plugin._routed_connect(ctx, lambda: ctx.connect())  # type: ignore[arg-type]
    assert ctx.connected[-1] == (None, None)  # released: follows DNS
    resolver.table[f"mydb-old1.{D}"] = B_IP  # the renames happen
    conn = plugin._routed_connect(ctx, lambda: ctx.connect())  # type: ignore[arg-type]
    assert conn.ip == G_IP
    assert watch.view.switched
