"""The bg plugin's asyncio front end over the same decisions: waits that
never block the event loop, wake-ups bridged from other threads, deadlines,
and cancellation that leaves nothing behind. Fake clocks, resolvers and
connections, as in test_bg_glue."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest
from test_bg_glue import (
    FAKE_CONN,
    G_IP,
    B,
    FakeCtx,
    G,
    feed,
    in_progress,
    make_watch,
    plugin_on,
)

from bluegreen.bg._model import Phase
from bluegreen.bg._watch import DeploymentWatch
from bluegreen.errors import SwitchoverTimeoutError


class AsyncCtx(FakeCtx):
    """FakeCtx whose connect is awaited, as an asyncio driver's is."""

    async def connect(  # type: ignore[override]
        self, ip: str | None = None, port: int | None = None
    ) -> Any:
        await asyncio.sleep(0)
        return FakeCtx.connect(self, ip, port)


def later(delay: float, action: Any) -> threading.Thread:
    """Run ``action`` on another thread after ``delay`` seconds (as a
    monitor thread publishing a view would)."""

    def run() -> None:
        time.sleep(delay)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


async def ticking(work: Any) -> tuple[Any, float]:
    """Await ``work`` with a ticker on the same loop; return its result and
    the longest gap between ticks (how long the loop was blocked)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.ensure_future(ticker())
    try:
        result = await work
    finally:
        done.set()
        await tick
    return result, max(gaps, default=0.0)


def test_wait_async_wakes_when_another_thread_publishes() -> None:
    watch = make_watch()
    in_progress(watch)
    version = watch.view.version

    async def main() -> tuple[bool, float]:
        later(0.1, lambda: feed(watch, "SWITCHOVER_IN_POST_PROCESSING"))
        started = time.monotonic()
        now = watch.clock()
        woke = await watch.wait_async(version, now + 10, now)
        return woke, time.monotonic() - started

    woke, waited = asyncio.run(main())
    assert woke
    assert 0.09 <= waited < 1.0  # 0.1 s and the thread hop (generous)
    assert not watch._async_waiters


def test_wait_async_honours_its_deadline_and_never_blocks_the_loop() -> None:
    watch = make_watch()
    in_progress(watch)

    async def main() -> tuple[bool, float]:
        now = watch.clock()
        return await ticking(watch.wait_async(watch.view.version, now + 0.3, now))

    woke, gap = asyncio.run(main())
    assert woke is False
    assert gap < 0.2  # a blocking wait would stall the ticker 0.3 s
    assert not watch._async_waiters


def test_cancelling_a_wait_leaves_no_waiter() -> None:
    watch = make_watch()
    in_progress(watch)

    async def main() -> None:
        now = watch.clock()
        task = asyncio.ensure_future(
            watch.wait_async(watch.view.version, now + 30, now)
        )
        await asyncio.sleep(0.05)
        assert len(watch._async_waiters) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not watch._async_waiters


def suspending_watch(**settings: Any) -> DeploymentWatch:
    watch = make_watch(bg_suspend_new_blue_connections=True, **settings)
    in_progress(watch)
    watch.note_host(B)
    return watch


def test_async_connect_waits_in_progress_then_goes_to_green() -> None:
    watch = suspending_watch(bg_connect_timeout_ms=10000)
    plugin = plugin_on(watch)
    ctx = AsyncCtx(watch.settings)

    def switched() -> None:
        feed(watch, "SWITCHOVER_IN_POST_PROCESSING")

    async def main() -> tuple[Any, float]:
        later(0.3, switched)
        next_: Any = ctx.connect
        return await ticking(plugin.connect_async(ctx, next_))  # type: ignore[arg-type]

    plugin._detect_async = _no_detection  # type: ignore[method-assign]
    conn, gap = asyncio.run(main())
    assert conn.ip == G_IP  # blue's name, the green address: never the old blue
    assert ctx.connected == [(G_IP, 5432)]
    assert gap < 0.2
    assert not watch._async_waiters


async def _no_detection(ctx: Any, conn: Any) -> None:
    return None


def test_cancelling_an_async_connect_in_progress_leaves_nothing_behind() -> None:
    watch = suspending_watch(bg_connect_timeout_ms=30000)
    plugin = plugin_on(watch)
    ctx = AsyncCtx(watch.settings)
    plugin._detect_async = _no_detection  # type: ignore[method-assign]

    async def main() -> None:
        next_: Any = ctx.connect
        task = asyncio.ensure_future(plugin.connect_async(ctx, next_))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        assert not task.done() and watch._async_waiters
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not watch._async_waiters
    assert ctx.connected == []  # no connection was opened


def test_async_connect_times_out_as_the_drivers_error() -> None:
    watch = suspending_watch(bg_connect_timeout_ms=300)
    plugin = plugin_on(watch)
    ctx = AsyncCtx(watch.settings)
    plugin._detect_async = _no_detection  # type: ignore[method-assign]

    async def main() -> None:
        next_: Any = ctx.connect
        await plugin.connect_async(ctx, next_)  # type: ignore[arg-type]

    started = time.monotonic()
    with pytest.raises(SwitchoverTimeoutError) as info:
        asyncio.run(main())
    assert 0.29 <= time.monotonic() - started < 3
    assert isinstance(info.value, psycopg.OperationalError)
    assert ctx.connected == []


def test_async_calls_are_suspended_in_progress_and_released_after() -> None:
    watch = suspending_watch(bg_connect_timeout_ms=10000)
    plugin = plugin_on(watch)
    sent: list[float] = []

    async def call() -> str:
        sent.append(time.monotonic())
        return "sent"

    async def main() -> tuple[str, float]:
        later(0.3, lambda: feed(watch, "SWITCHOVER_IN_POST_PROCESSING"))
        return await ticking(plugin.execute_async(FAKE_CONN, "execute", call))

    started = time.monotonic()
    result, gap = asyncio.run(main())
    assert result == "sent"
    assert sent[0] - started >= 0.29  # not before the phase moved on
    assert watch.view.phase is Phase.POST
    assert gap < 0.2


def test_async_green_names_are_rejected() -> None:
    watch = make_watch()
    in_progress(watch)
    feed(watch, "SWITCHOVER_IN_POST_PROCESSING")
    watch.report(lambda t: t._set_renamed(watch.clock()))
    plugin = plugin_on(watch, host=G)
    ctx = AsyncCtx(watch.settings, host=G)
    plugin._detect_async = _no_detection  # type: ignore[method-assign]

    async def main() -> None:
        next_: Any = ctx.connect
        await plugin.connect_async(ctx, next_)  # type: ignore[arg-type]

    with pytest.raises(psycopg.OperationalError) as info:
        asyncio.run(main())
    assert type(info.value).__name__ == "GreenHostRejectedError"
    assert ctx.connected == []
