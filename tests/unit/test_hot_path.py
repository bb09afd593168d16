"""Structural facts that keep the per-call path lean, counted, never timed.

A profiler records every Python frame and every C call made while the
application runs ``execute`` + ``fetchone`` + ``commit`` through the proxies
over a driver stub. Outside a switchover the ``bg`` plugin's hook must not
be entered, no callable may be built for the call (``functools.partial``),
and no lock may be taken; the timings themselves are in
``benchmarks/overhead.py``.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, Observation, StatusRow
from bluegreen.bg._watch import DeploymentWatch
from bluegreen.bg.plugin import BlueGreenPlugin
from bluegreen.connection import Connection
from bluegreen.cursor import Cursor
from bluegreen.drivers import adapter_for
from bluegreen.pipeline import Gate, Pipeline, Plugin
from bluegreen.settings import Settings

D = "abc123xyz.us-east-1.rds.amazonaws.com"
B, G = f"mydb.{D}", f"mydb-green-k7dd3e.{D}"
ADAPTER = adapter_for(psycopg.connect)


class StubCursor:
    def execute(self, query: Any, params: Any = None) -> None:
        return None

    def fetchone(self) -> Any:
        return (1,)


class StubConnection:
    closed = False  # (psycopg's attribute: an open connection)

    def cursor(self) -> StubCursor:
        return StubCursor()

    def commit(self) -> None:
        return None


def feed(watch: DeploymentWatch, status: str) -> None:
    rows = (
        StatusRow(B, 5432, ROLE_SOURCE, status),
        StatusRow(G, 5432, ROLE_TARGET, status),
    )
    obs = Observation("blue", time.monotonic(), rows)
    watch.report(lambda t: t.observe(obs))


def proxy(watch: DeploymentWatch | None) -> Connection:
    """A bluegreen connection over the stub: without plugins, or with a
    ``bg`` plugin following ``watch``."""
    config: Any = types.SimpleNamespace(adapter=ADAPTER)
    if watch is None:
        return Connection(StubConnection(), config, None)
    plugin = object.__new__(BlueGreenPlugin)
    plugin.context = types.SimpleNamespace(settings=watch.settings)  # type: ignore[assignment]
    plugin.watch, plugin.host, plugin.ip, plugin.detection = watch, B, None, None
    plugin.errors = ADAPTER.errors
    plugin.epoch = watch.view.kill_epoch
    context: Any = None
    pipeline = Pipeline((plugin,), context, plugin.execute, (), (), plugin)
    return Connection(StubConnection(), config, pipeline)


def recorder() -> tuple[list[tuple[str, str]], Any]:
    """A profile function recording ``(event, name)`` of every frame
    entered and C function called, and the list it records into."""
    seen: list[tuple[str, str]] = []

    def record(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen.append(("py", frame.f_code.co_qualname))
        elif event == "c_call":
            seen.append(("c", getattr(arg, "__qualname__", repr(arg))))

    return seen, record


def one_round(conn: Connection) -> list[tuple[str, str]]:
    cur = conn.cursor()
    cur.execute("SELECT 1")  # warm: nothing lazily set up is counted
    cur.fetchone()
    seen, record = recorder()
    sys.setprofile(record)
    try:
        cur.execute("SELECT 1")
        cur.fetchone()
        conn.commit()
    finally:
        sys.setprofile(None)
    assert seen[-1] == ("c", "setprofile")
    return seen[:-1]


EXPECTED_PY = [
    "Cursor.execute",
    "StubCursor.execute",
    "Cursor.fetchone",
    "StubCursor.fetchone",
    "Connection.commit",
    "StubConnection.commit",
]


def _no_builds_or_locks(seen: list[tuple[str, str]]) -> None:
    c_calls = [name for kind, name in seen if kind == "c"]
    assert not [n for n in c_calls if "partial" in n], c_calls
    assert not [n for n in c_calls if "acquire" in n or "__enter__" in n], c_calls


def test_without_plugins_a_call_is_the_proxy_method_and_the_driver_call() -> None:
    seen = one_round(proxy(None))
    assert [name for kind, name in seen if kind == "py"] == EXPECTED_PY
    _no_builds_or_locks(seen)


def test_bg_outside_a_switchover_skips_its_hook_and_builds_nothing() -> None:
    watch = DeploymentWatch("hot-calm", Settings())
    feed(watch, "AVAILABLE")
    seen = one_round(proxy(watch))
    py = [name for kind, name in seen if kind == "py"]
    # commit() also records that a transaction ended (PyMySQL needs it).
    assert py == [*EXPECTED_PY, "DriverAdapter.transaction_ended"]
    _no_builds_or_locks(seen)
    watch.close()


@pytest.mark.parametrize("status", ["SWITCHOVER_INITIATED", "SWITCHOVER_COMPLETED"])
def test_bg_near_or_after_a_switchover_sees_every_call(status: str) -> None:
    """The counter-check: when the plugin must look, its hook runs."""
    watch = DeploymentWatch("hot-" + status, Settings())
    feed(watch, "AVAILABLE")
    conn = proxy(watch)
    if status == "SWITCHOVER_COMPLETED":
        for step in ("SWITCHOVER_INITIATED", "SWITCHOVER_IN_PROGRESS", status):
            feed(watch, step)
    else:
        feed(watch, status)
    cur = conn.cursor()
    seen, record = recorder()
    sys.setprofile(record)
    try:
        cur.execute("SELECT 1")
    except Exception:  # (a dropped connection may try to reconnect)
        pass
    finally:
        sys.setprofile(None)
    py = [name for kind, name in seen if kind == "py"]
    assert "BlueGreenPlugin.execute" in py
    watch.close()


class RecordingCursor:
    """Records exactly how it was called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def execute(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("execute", args, kwargs))

    def executemany(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("executemany", args, kwargs))

    def callproc(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("callproc", args, kwargs))


class RecordingConnection(StubConnection):
    def cursor(self) -> RecordingCursor:  # type: ignore[override]
        return RecordingCursor()


CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("execute", ("SELECT 1",), {}),
    ("execute", ("SELECT %s", (1,)), {}),
    ("execute", ("SELECT %s", None), {}),
    ("execute", ("SELECT %s", (1,)), {"prepare": True}),
    ("execute", ("SELECT %s",), {"params": (1,)}),
    ("execute", (), {"operation": "SELECT 1", "params": ()}),
    ("execute", ("SELECT 1", (), True), {}),
    ("execute", (), {}),
    ("executemany", ("INSERT %s", [(1,), (2,)]), {}),
    ("executemany", ("INSERT %s",), {"params_seq": [(1,)]}),
    ("executemany", ("INSERT %s", [(1,)]), {"returning": True}),
    ("callproc", ("p", (1, 2)), {}),
]


@pytest.mark.parametrize("layer", ["plugins-none", "bg-calm", "hooked"])
def test_arguments_reach_the_driver_exactly_as_passed(layer: str) -> None:
    watch = DeploymentWatch("hot-args-" + layer, Settings())
    feed(watch, "AVAILABLE")
    seen: list[str] = []
    if layer == "hooked":
        # A plugin without a gate: its hook sees every call.
        class Seeing(Plugin):
            def execute(self, conn: Any, method_name: str, call: Any) -> Any:
                seen.append(method_name)
                return call()

        plugin = object.__new__(Seeing)
        config: Any = types.SimpleNamespace(adapter=ADAPTER)
        pipeline = Pipeline((plugin,), None, plugin.execute, (), (), plugin)  # type: ignore[arg-type]
        conn = Connection(RecordingConnection(), config, pipeline)
    else:
        conn = proxy(None if layer == "plugins-none" else watch)
        object.__setattr__(conn, "_bg_raw", RecordingConnection())
    cur = conn.cursor()
    for name, args, kwargs in CALLS:
        getattr(cur, name)(*args, **kwargs)
    assert cur.driver_cursor.calls == CALLS
    assert len(seen) == (len(CALLS) if layer == "hooked" else 0)
    watch.close()


def test_a_streaming_iteration_asks_the_gate_before_every_step() -> None:
    """Rows stream from the driver's own iterator while the gate is calm;
    once it closes, each further step goes through the hook."""
    seen: list[str] = []
    gate = Gate(True)

    class Gated(Plugin):
        def execute(self, conn: Any, method_name: str, call: Any) -> Any:
            seen.append(method_name)
            return call()

        def gate(self) -> Gate:
            return gate

    plugin = object.__new__(Gated)
    config: Any = types.SimpleNamespace(adapter=ADAPTER)
    pipeline = Pipeline((plugin,), None, plugin.execute, (), (), plugin)  # type: ignore[arg-type]
    conn = Connection(StubConnection(), config, pipeline)
    pulled: list[int] = []

    class Streaming:
        def __iter__(self) -> Iterator[tuple[int]]:
            for n in range(6):
                pulled.append(n)
                yield (n,)

    cur = Cursor(Streaming(), conn, plugin.execute, plugin.execute)
    rows = iter(cur)
    assert [next(rows), next(rows), next(rows)] == [(0,), (1,), (2,)]
    assert seen == []  # calm: straight from the driver
    gate.calm = False
    assert pulled == [0, 1, 2]  # nothing was read ahead of the check
    assert list(rows) == [(3,), (4,), (5,)]
    assert seen == ["fetchmany"] * 4  # three rows and the end
