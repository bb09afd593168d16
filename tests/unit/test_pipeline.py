"""Plugin registry, hook detection, chain order and the no-hook fast path."""

from __future__ import annotations

import asyncio
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pymysql
import pytest

import bluegreen
from bluegreen import ConfigurationError, Runtime, fresh_runtime
from bluegreen._runtime import runtime
from bluegreen.connection import Connection
from bluegreen.drivers import adapter_for, async_adapter_for
from bluegreen.drivers.base import DriverParams
from bluegreen.pipeline import (
    ConnectContext,
    Pipeline,
    Plugin,
    PluginRegistry,
    Target,
    overridden_hooks,
    provides_credentials,
)
from bluegreen.settings import Setting, parse_config

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


# --------------------------------------------------------------------------
# What register() checks: the credentials hooks and the declarations


class AsyncOnly(Plugin):
    @classmethod
    async def credentials_async(cls, ctx: ConnectContext, target: Target) -> Any:
        return {"password": "from-async"}


def test_credentials_async_alone_is_detected_and_refused(reg: PluginRegistry) -> None:
    assert provides_credentials(AsyncOnly)
    before = (dict(reg.snapshot()), reg.version)
    with pytest.raises(ConfigurationError) as info:
        reg.register("vault", AsyncOnly)
    text = str(info.value)
    assert "plugin 'vault' (AsyncOnly)" in text
    assert "overrides credentials_async but not credentials" in text
    assert (dict(reg.snapshot()), reg.version) == before


async def _async_hook(cls: Any, ctx: ConnectContext, target: Target) -> Any:
    return {"password": "p"}


def _sync_hook(cls: Any, ctx: ConnectContext, target: Target) -> Any:
    return {"password": "p"}


@pytest.mark.parametrize(
    ("hooks", "wrong"),
    [
        ({"credentials": _sync_hook}, "credentials must be a class method"),
        (
            {"credentials": classmethod(_sync_hook), "credentials_async": _async_hook},
            "credentials_async must be a class method",
        ),
        ({"credentials": classmethod(_async_hook)}, "credentials must not be async"),
        (
            {
                "credentials": classmethod(_sync_hook),
                "credentials_async": classmethod(_sync_hook),
            },
            "credentials_async must be defined with async def",
        ),
    ],
)
def test_credentials_hooks_of_the_wrong_kind_are_refused(
    reg: PluginRegistry, hooks: dict[str, Any], wrong: str
) -> None:
    kind = type("Wrong", (Plugin,), hooks)
    with pytest.raises(ConfigurationError) as info:
        reg.register("wrong", kind)
    assert "plugin 'wrong' (Wrong)" in str(info.value) and wrong in str(info.value)
    assert "wrong" not in reg.codes()


def test_credentials_hooks_reach_sync_and_asyncio_connections(
    reg: PluginRegistry,
) -> None:
    class Both(Plugin):
        @staticmethod
        def credentials(ctx: ConnectContext, target: Target) -> Any:
            return {"password": f"sync-for-{target.host}"}

        @classmethod
        async def credentials_async(cls, ctx: ConnectContext, target: Target) -> Any:
            return {"password": f"async-for-{target.host}"}

    class Child(Both):  # inherits credentials, overrides only the twin
        @classmethod
        async def credentials_async(cls, ctx: ConnectContext, target: Target) -> Any:
            return {"password": "child"}

    reg.register("both", Both)
    reg.register("child", Child)
    conn = open_conn(reg, "both")
    assert conn.driver_connection.kwargs["password"] == "sync-for-db.example"
    ctx = conn.wrapper_pipeline.context  # type: ignore[union-attr]
    target = Target("db.example", 3306)
    params = asyncio.run(ctx.credentials_async(ctx.params, target))
    assert params.kwargs["password"] == "async-for-db.example"
    child = open_conn(reg, "child").wrapper_pipeline.context  # type: ignore[union-attr]
    assert asyncio.run(child.credentials_async(child.params, target)).kwargs == {
        "host": "db.example",
        "password": "child",
    }


def declaring(settings: Any = (), prefixes: Any = ()) -> type[Plugin]:
    return type(
        "Declaring", (Plugin,), {"settings": settings, "param_prefixes": prefixes}
    )


@pytest.fixture
def rt() -> Iterator[Runtime]:
    with fresh_runtime() as fresh:
        yield fresh


@pytest.mark.parametrize(
    ("code", "settings", "prefixes", "wrong"),
    [
        (
            "audit",
            (Setting("rounds", int, 1, "No prefix."),),
            (),
            "declares setting 'rounds': a plugin's settings must start with "
            "'audit_' (its code and '_')",
        ),
        (
            "my-plugin",
            (Setting("my_plugins_x", int, 1, "Close, but no."),),
            (),
            "must start with 'my_plugin_' (its code and '_')",
        ),
        (
            "wrapper",
            (Setting("wrapper_dialect", str, None, "The core's."),),
            (),
            "'wrapper_dialect', which the core declares already",
        ),
        (
            "bg-connect",
            (Setting("bg_connect_timeout_ms", int, 1, "The bg plugin's."),),
            (),
            "'bg_connect_timeout_ms', which plugin 'bg' declares already",
        ),
        (
            "audit",
            (Setting("audit_x", int, 1, "One."), Setting("audit_x", int, 2, "Two.")),
            (),
            "declares setting 'audit_x' twice",
        ),
        (
            "audit",
            Setting("audit_x", int, 1, "Not in a tuple."),
            (),
            "settings must be a tuple of bluegreen.Setting, not Setting",
        ),
        ("audit", (), "audit-side-", "param_prefixes must be a tuple of strings"),
        ("audit", (), ("",), "a prefix must be a non-empty string"),
        (
            "audit",
            (),
            ("blue_green_monitoring_",),
            "'blue_green_monitoring_', which plugin 'bg' declares already",
        ),
    ],
)
def test_bad_declarations_are_refused_at_registration(
    rt: Runtime, code: str, settings: Any, prefixes: Any, wrong: str
) -> None:
    before = (dict(rt.plugins.snapshot()), rt.plugins.version)
    with pytest.raises(ConfigurationError) as info:
        bluegreen.register_plugin(code, declaring(settings, prefixes))
    assert f"plugin {code!r}" in str(info.value) and wrong in str(info.value)
    assert (dict(rt.plugins.snapshot()), rt.plugins.version) == before
    # Every other connection of the process still works.
    config = parse_config(adapter_for(pymysql.connect), None, {"bg_id": "x"})
    assert config.settings.bg_id == "x"


def test_a_setting_of_another_plugin_is_refused_and_replacing_is_not(
    rt: Runtime,
) -> None:
    bluegreen.register_plugin("my", declaring((Setting("my_plugin_x", int, 1, "."),)))
    with pytest.raises(ConfigurationError, match="which plugin 'my' declares already"):
        bluegreen.register_plugin(
            "my-plugin", declaring((Setting("my_plugin_x", int, 1, "."),))
        )
    assert "my-plugin" not in rt.plugins.codes()
    # Registering a code again replaces it: its old settings are no clash.
    bluegreen.register_plugin("my", declaring((Setting("my_plugin_x", int, 2, "."),)))
    assert parse_config(adapter_for(pymysql.connect), None, {"my_plugin_x": "3"})


def test_a_lazily_registered_plugin_with_bad_declarations_is_reported(
    rt: Runtime,
) -> None:
    module = types.ModuleType("bg_test_bad_plugin")
    module.Bad = declaring((Setting("rounds", int, 1, "No prefix."),))  # type: ignore[attr-defined]
    rt.plugins.register("bad", "bg_test_bad_plugin:Bad")  # imported later
    sys.modules["bg_test_bad_plugin"] = module
    adapter = adapter_for(pymysql.connect)
    try:
        # Connections that do not use it are unaffected...
        assert parse_config(adapter, None, {"bg_id": "7"}).settings.bg_id == "7"
        # ...its settings are unknown, and the error says why...
        with pytest.raises(ConfigurationError) as info:
            parse_config(adapter, None, {"bad_rounds": 2})
        text = str(info.value)
        assert "plugin 'bad' could not be loaded" in text
        assert "declares setting 'rounds'" in text and "must start with" in text
        # ...and a connection that names it fails with the same reason.
        config = parse_config(adapter, None, {"plugins": "bad"})
        with pytest.raises(ConfigurationError, match="declares setting 'rounds'"):
            Pipeline.open(config)
    finally:
        del sys.modules["bg_test_bad_plugin"]


def test_the_module_docstring_names_every_hook() -> None:
    import bluegreen.pipeline

    doc = bluegreen.pipeline.__doc__ or ""
    hooks = [
        name
        for name, value in vars(Plugin).items()
        if not name.startswith("_")
        and isinstance(value, (types.FunctionType, classmethod, staticmethod))
    ]
    assert {"gate", "connect_async", "credentials_async"} <= set(hooks)
    for name in hooks:
        assert f"``{name}" in doc, name
    assert "three hooks" not in doc


def test_connect_context_gives_an_asyncio_caller_an_awaitable() -> None:
    adapter = async_adapter_for(psycopg.AsyncConnection.connect)
    ctx = ConnectContext(parse_config(adapter, "host=db.example", {"plugins": ""}))
    opening = ctx.connect()
    try:
        assert inspect.isawaitable(opening)
    finally:
        opening.close()  # never awaited: no connection is made
    assert "awaitable" in (ConnectContext.connect.__doc__ or "")
