"""Plugin registry, hook detection, chain order and the no-hook fast path."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pymysql
import pytest

import bluegreen
from bluegreen import ConfigurationError
from bluegreen._runtime import runtime
from bluegreen.connection import Connection
from bluegreen.drivers import adapter_for
from bluegreen.drivers.base import DriverParams
from bluegreen.pipeline import (
    ConnectContext,
    Pipeline,
    Plugin,
    PluginRegistry,
    overridden_hooks,
)
from bluegreen.settings import parse_config

T = TypeVar("T")


class FakeCursor:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.rows = [(1,), (2,)]

    def execute(self, query: str, params: Any = None) -> FakeCursor:
        self.calls.append(f"execute {query}")
        return self

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def close(self) -> None:
        self.calls.append("close")


class FakeConn:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.cur = FakeCursor()
        self.closed = False
        self.commits = 0

    def cursor(self) -> FakeCursor:
        return self.cur

    def commit(self) -> None:
        self.commits += 1

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeAdapter(type(adapter_for(pymysql.connect))):  # type: ignore[misc]
    """The PyMySQL adapter, connecting to FakeConn instead of a server."""

    def connect(
        self, params: DriverParams, host: Any = None, ip: Any = None, port: Any = None
    ) -> Any:
        return FakeConn(**params.kwargs, _host=host, _ip=ip)

    def is_closed(self, conn: Any) -> bool:
        return bool(conn.closed)


LOG: list[str] = []


def make_plugin(tag: str, hooks: tuple[str, ...]) -> type[Plugin]:
    ns: dict[str, Any] = {}
    if "connect" in hooks:

        def connect(
            self: Plugin, ctx: ConnectContext, call_next: Callable[[], Any]
        ) -> Any:
            LOG.append(f"{tag}.connect>")
            conn = call_next()
            LOG.append(f"{tag}.connect<")
            return conn

        ns["connect"] = connect
    if "execute" in hooks:

        def execute(self: Plugin, conn: Any, name: str, call: Callable[[], T]) -> T:
            LOG.append(f"{tag}.{name}>")
            result = call()
            LOG.append(f"{tag}.{name}<")
            return result

        ns["execute"] = execute
    if "on_close" in hooks:

        def on_close(self: Plugin, conn: Any) -> None:
            LOG.append(f"{tag}.close")

        ns["on_close"] = on_close
    return type(f"P{tag}", (Plugin,), ns)


@pytest.fixture
def reg() -> Iterator[PluginRegistry]:
    LOG.clear()
    r = PluginRegistry()
    r.register("a", make_plugin("a", ("connect", "execute", "on_close")))
    r.register("b", make_plugin("b", ("execute",)))
    r.register("c", make_plugin("c", ("connect",)))
    yield r


def open_conn(reg: PluginRegistry, plugins: str) -> Connection:
    adapter = FakeAdapter(pymysql.connect)
    config = parse_config(adapter, None, {"plugins": plugins, "host": "db.example"})
    if not config.settings.plugins:
        return Connection(adapter.connect(config.params), config, None)
    pipeline, raw = Pipeline.open(config, reg)
    return Connection(raw, config, pipeline)


def test_overridden_hooks_detected() -> None:
    assert overridden_hooks(Plugin) == frozenset()
    assert overridden_hooks(make_plugin("x", ("execute",))) == {"execute"}
    assert overridden_hooks(make_plugin("x", ("connect", "on_close"))) == {
        "connect",
        "on_close",
    }


def test_hook_order_follows_plugins_setting(reg: PluginRegistry) -> None:
    conn = open_conn(reg, "a,b,c")
    assert LOG == ["a.connect>", "c.connect>", "c.connect<", "a.connect<"]
    LOG.clear()
    cur = conn.cursor()
    assert cur.execute("SELECT 1") is cur
    conn.commit()
    assert LOG == [
        "a.execute>",
        "b.execute>",
        "b.execute<",
        "a.execute<",
        "a.commit>",
        "b.commit>",
        "b.commit<",
        "a.commit<",
    ]
    LOG.clear()
    assert cur.fetchone() == (1,)
    assert LOG == []  # buffered cursor: fetch not hooked
    conn.close()
    conn.close()
    assert LOG == ["a.close"]


def test_reverse_order(reg: PluginRegistry) -> None:
    conn = open_conn(reg, "b, a")
    LOG.clear()
    conn.cursor().execute("x")
    assert LOG == ["b.execute>", "a.execute>", "a.execute<", "b.execute<"]


def test_fast_path_when_no_execute_hook(reg: PluginRegistry) -> None:
    conn = open_conn(reg, "c")
    assert conn.wrapper_pipeline is not None
    assert conn.wrapper_pipeline.execute is None
    cur = conn.cursor()
    assert cur._bg_hook is None and cur._bg_fetch_hook is None
    LOG.clear()
    cur.execute("q")
    conn.commit()
    assert LOG == []
    assert conn.driver_connection.commits == 1


def test_no_plugins_means_no_pipeline(reg: PluginRegistry) -> None:
    conn = open_conn(reg, "")
    assert conn.wrapper_pipeline is None
    assert conn.cursor().execute("q").fetchone() == (1,)


def test_unknown_code_lists_known_ones(reg: PluginRegistry) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_conn(reg, "a,zz")
    assert "'zz'" in str(info.value)
    assert "a, b, c" in str(info.value)
    assert LOG == []  # nothing was opened


def test_lazy_registration_imports_on_first_use(reg: PluginRegistry) -> None:
    module = types.ModuleType("bg_test_lazy_plugin")
    module.LazyPlugin = make_plugin("lazy", ("execute",))  # type: ignore[attr-defined]
    reg.register("lazy", "bg_test_lazy_plugin:LazyPlugin")
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        open_conn(reg, "lazy")
    sys.modules["bg_test_lazy_plugin"] = module
    try:
        conn = open_conn(reg, "lazy")
        LOG.clear()
        conn.cursor().execute("q")
        assert LOG == ["lazy.execute>", "lazy.execute<"]
    finally:
        del sys.modules["bg_test_lazy_plugin"]


def test_bg_is_preregistered_lazily() -> None:
    assert runtime().plugins.snapshot()["bg"] == "bluegreen.bg.plugin:BlueGreenPlugin"


def test_bg_plugin_keeps_its_context() -> None:
    from bluegreen.bg.plugin import BlueGreenPlugin

    ctx = ConnectContext(parse_config(adapter_for(pymysql.connect), None, {}))
    assert BlueGreenPlugin(ctx).context is ctx


def test_factory_function_hooks_detected_from_instance(reg: PluginRegistry) -> None:
    cls = make_plugin("f", ("execute",))
    reg.register("f", lambda ctx: cls(ctx))
    conn = open_conn(reg, "f")
    LOG.clear()
    conn.cursor().execute("q")
    assert LOG == ["f.execute>", "f.execute<"]


def test_invalid_registrations() -> None:
    r = PluginRegistry()
    with pytest.raises(ConfigurationError):
        r.register("a,b", Plugin)
    with pytest.raises(ConfigurationError):
        r.register("x", "no_colon_here")


def test_connect_context_reroutes(reg: PluginRegistry) -> None:
    class Reroute(Plugin):
        def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
            assert (ctx.host, ctx.port) == ("db.example", 3306)
            assert ctx.settings.plugins == ("r",)
            return ctx.connect(ip="10.0.0.7")

    reg.register("r", Reroute)
    conn = open_conn(reg, "r")
    assert conn.driver_connection.kwargs["_ip"] == "10.0.0.7"
    assert "10.0.0.7" not in repr(conn.wrapper_pipeline.context)  # type: ignore[union-attr]


def test_plugin_exception_passes_through(reg: PluginRegistry) -> None:
    class Boom(Plugin):
        def execute(self, conn: Any, name: str, call: Callable[[], T]) -> T:
            raise bluegreen.OperationalError("suspended")

    reg.register("boom", Boom)
    conn = open_conn(reg, "boom")
    with pytest.raises(bluegreen.OperationalError, match="suspended"):
        conn.cursor().execute("q")
    assert conn.driver_connection.cur.calls == []


def test_registration_change_reaches_the_next_connection(reg: PluginRegistry) -> None:
    open_conn(reg, "a,b")
    assert LOG == ["a.connect>", "a.connect<"]
    LOG.clear()
    reg.register("b", make_plugin("b2", ("connect",)))
    open_conn(reg, "a,b")
    assert LOG == ["a.connect>", "b2.connect>", "b2.connect<", "a.connect<"]
    reg.unregister("b")
    with pytest.raises(ConfigurationError, match="unknown plugin code 'b'"):
        open_conn(reg, "a,b")


def test_connect_plan_is_worked_out_once_per_configuration(reg: PluginRegistry) -> None:
    adapter = FakeAdapter(pymysql.connect)
    kwargs = {"plugins": "a", "host": "db.example"}
    config = parse_config(adapter, None, dict(kwargs))
    first, _ = Pipeline.open(config, reg)
    again = parse_config(adapter, None, dict(kwargs))  # the same argument objects
    assert again is config
    second, _ = Pipeline.open(again, reg)
    # One context per configuration, read-only and shared; new plugins.
    assert second.context is first.context
    assert second.plugins[0] is not first.plugins[0]
    assert [p.context for p in second.plugins] == [first.context]


def test_connect_plan_follows_a_new_registration(reg: PluginRegistry) -> None:
    adapter = FakeAdapter(pymysql.connect)
    config = parse_config(adapter, None, {"plugins": "a", "host": "db.example"})
    first, _ = Pipeline.open(config, reg)
    reg.register("a", make_plugin("a2", ("execute",)))  # replaces "a"
    second, _ = Pipeline.open(config, reg)
    assert type(second.plugins[0]).__name__ == "Pa2"
    assert second.context is not first.context
    assert second.connects == () and second.execute is not None


def test_bg_plugin_derives_its_fixed_values_once_per_configuration() -> None:
    from bluegreen.bg.plugin import BlueGreenPlugin

    config = parse_config(adapter_for(pymysql.connect), None, {"host": "10.1.2.3"})
    ctx = ConnectContext(config)
    one, two = BlueGreenPlugin(ctx), BlueGreenPlugin(ctx)
    assert one.fixed is two.fixed is ctx.memo["bg"]
    assert one.ip == "10.1.2.3" and one.fixed.key[1:3] == ("10.1.2.3", 3306)
