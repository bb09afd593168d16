"""One owner of process state: a fresh runtime for tests, one reset at fork."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import psycopg
import pytest

import bluegreen
from bluegreen import _runtime
from bluegreen._runtime import fresh_runtime, runtime
from bluegreen.bg._watch import WatchRegistry, watches
from bluegreen.dialects import Detection, Dialect
from bluegreen.drivers import adapter_for
from bluegreen.errors import driver_errors
from bluegreen.iam import token_sources
from bluegreen.settings import Setting, Settings, parse_config

SRC = os.path.join(os.path.dirname(bluegreen.__file__))


def _module_level_mutables() -> list[str]:
    """Module globals of the package (not the simulator, not the CLI) that
    hold a mutable container or registry object."""
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("bluegreen") or name.startswith(
            ("bluegreen.sim", "bluegreen.cli", "bluegreen._check")
        ):
            continue
        for attr, value in vars(module).items():
            if attr.startswith("__") or isinstance(value, type):
                continue
            if isinstance(value, (dict, list, set)) and attr.isupper():
                continue  # constant tables (read only by convention)
            if isinstance(value, (dict, list, set, bytearray)) or type(
                value
            ).__name__ in (
                "PluginRegistry",
                "WatchRegistry",
                "DetectionCache",
                "WarnLog",
            ):
                found.append(f"{name}.{attr}")
    return found


def test_no_module_level_mutable_state_outside_the_runtime() -> None:
    import bluegreen.bg.plugin
    import bluegreen.iam
    import bluegreen.sqlalchemy  # noqa: F401

    assert _module_level_mutables() == []


def test_a_fresh_runtime_is_empty_and_the_old_one_comes_back() -> None:
    old = runtime()
    old_adapter = adapter_for(psycopg.connect)
    with fresh_runtime() as rt:
        assert runtime() is rt and rt is not old
        assert rt.adapters == {} and rt.detections.get("k") is None
        adapter = adapter_for(psycopg.connect)
        assert adapter is not old_adapter  # and so its memo of configurations
        assert rt.adapters[psycopg.connect] is adapter
        assert watches() is rt.state("bg", WatchRegistry)
        assert watches() is not old.peek("bg")
    assert runtime() is old
    assert adapter_for(psycopg.connect) is old_adapter


def test_driver_error_classes_are_made_once_per_runtime() -> None:
    first = driver_errors(psycopg.OperationalError)
    assert driver_errors(psycopg.OperationalError) is first
    with fresh_runtime():
        fresh = driver_errors(psycopg.OperationalError)
        assert fresh is not first
        assert issubclass(fresh.SwitchoverTimeoutError, psycopg.OperationalError)


def _hold_every_lock(rt: _runtime.Runtime) -> tuple[threading.Event, threading.Event]:
    """A thread that takes the runtime's locks and keeps them until told."""
    taken, release = threading.Event(), threading.Event()
    reg = rt.state("bg", WatchRegistry)
    token_sources().get(None)
    source = token_sources().get(None)
    locks = [
        rt._lock,
        rt.plugins._lock,
        rt.settings._lock,
        rt.detections._lock,
        rt.warnings._lock,
        reg._lock,
        source._lock,
        source._make_lock,
    ]

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        taken.set()
        release.wait(30)
        for lock in reversed(locks):
            lock.release()

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(10)
    return taken, release


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_fork_resets_all_process_state_even_with_locks_held() -> None:
    """Another thread holds every lock of the runtime at the moment of the
    fork: the child must still register plugins, parse settings, detect,
    warn, make watches and tokens, and start with empty caches."""

    class Child(bluegreen.Plugin):
        settings = (Setting("child_level", int, 1, "A test setting.", minimum=1),)

    with fresh_runtime() as rt:
        rt.detections.store("host", Detection(Dialect.MYSQL))
        parent_watch = watches().get("forked", Settings())
        source = token_sources().get(None)
        source._cache[("h", 1, "u", "r")] = ("token", 0.0)  # type: ignore[attr-defined]
        rt.warnings.first("said-once")
        _, release = _hold_every_lock(rt)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            code = 1
            try:
                report = []
                report.append(rt.detections.get("host") is None)
                report.append(watches().find("forked") is None)
                report.append(token_sources().get(None)._cache == {})  # type: ignore[attr-defined]
                rt.plugins.register("child", Child)
                cfg = parse_config(
                    adapter_for(psycopg.connect), None, {"child_level": "4"}
                )
                report.append(cfg.settings.child_level == 4)
                report.append(rt.warnings.first("in-child"))
                report.append(watches().get("forked", Settings()) is not parent_watch)
                rt.detections.get_or_detect("k", lambda: Detection(Dialect.MYSQL))
                os.write(write, ",".join(str(r) for r in report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        try:
            chunks = []
            while True:
                chunk = os.read(read, 1024)
                if not chunk:
                    break
                chunks.append(chunk)
            _, status = os.waitpid(pid, 0)
        finally:
            release.set()
            os.close(read)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert b"".join(chunks) == b",".join([b"True"] * 6)
        # The parent keeps what it had.
        assert rt.detections.get("host") is not None
        assert watches().find("forked") is parent_watch


def test_state_objects_are_closed_with_a_fresh_runtime() -> None:
    closed: list[str] = []

    class State:
        def close(self) -> None:
            closed.append("closed")

    with fresh_runtime() as rt:
        rt.state("test.state", State)
        assert closed == []
    assert closed == ["closed"]
    assert runtime().peek("test.state") is None


def test_states_without_a_fork_hook_are_dropped_in_the_child() -> None:
    with fresh_runtime() as rt:
        kept = rt.state("bg", WatchRegistry)
        plain: Any = rt.state("test.plain", dict)
        plain["x"] = 1
        rt.after_fork_in_child()  # what the child runs
        assert rt.peek("bg") is kept  # resets itself
        assert rt.peek("test.plain") is None  # made anew on next use


def test_plugin_authors_reach_the_runtime_through_public_names() -> None:
    import bluegreen.iam

    for name in ("runtime", "fresh_runtime", "Runtime", "Plugin", "Setting"):
        assert name in bluegreen.__all__, name
    assert bluegreen.runtime is runtime and bluegreen.fresh_runtime is fresh_runtime
    assert bluegreen.Runtime is _runtime.Runtime
    with bluegreen.fresh_runtime() as rt:
        assert bluegreen.runtime() is rt
        assert isinstance(rt, bluegreen.Runtime)
    assert bluegreen.runtime() is not rt
    assert "token_sources" in bluegreen.iam.__all__
