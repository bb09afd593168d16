"""The plugin pipeline: plugin registry, hook chains and the no-plugin fast path.

A plugin subclasses :class:`Plugin` and overrides the hooks it needs:

``connect(ctx, call_next)``
    wraps the opening of the driver connection;
``execute(conn, method_name, call)``
    wraps every network-bound call on an open connection: cursor
    ``execute``, ``executemany``, ``callproc``, ``nextset``, connection
    ``commit`` and ``rollback``, the commit or rollback of ``with conn:``,
    every driver-specific call that talks to the server (psycopg's
    ``transaction()``, ``copy()``, ``stream()``, ``pipeline()``,
    ``notifies()``, PyMySQL's ``ping()``, mysql-connector's ``cmd_query()``
    and the rest: the inventory is each driver adapter's ``surface``), and
    the ``fetch*`` methods of *streaming* cursors only (psycopg server-side
    cursors, PyMySQL ``SSCursor``, unbuffered mysql-connector cursors).
    Fetching from a buffered cursor reads rows already in memory, so it is
    not hooked: a plugin suspending traffic must not block a client from
    reading a result it already has. ``close()`` and ``cancel()`` are never
    hooked. The calls in :data:`UNDO_CALLS` only undo work: a plugin must
    never refuse them, so that the driver's own outcome reaches the
    application;
``on_close(conn)``
    runs when the application closes the connection;
``gate()``
    returns a :class:`Gate` that lets the proxies skip the plugin's
    ``execute`` hook while it would only make the call (see below);
``credentials(ctx, target)`` (a class method)
    returns driver arguments (a password, a token) for each driver
    connection about to be opened: the application's, and those plugins
    open themselves (the ``bg`` plugin's monitors). :class:`Target` says
    which host name the connection stands for, even when a plugin sends it
    to an IP address.

asyncio connections (:func:`bluegreen.connect_async`) use the asyncio
twins ``connect_async``, ``execute_async`` and ``credentials_async``. A
plugin that overrides ``connect`` or ``execute`` must override its twin to
serve them; ``credentials_async`` defaults to calling ``credentials``, and
a plugin that overrides it overrides ``credentials`` too (the monitors
always call the synchronous hook). :meth:`PluginRegistry.register` refuses
a plugin class whose ``credentials`` hooks break these rules, or whose
declarations (below) would break other connections.

A plugin class also declares its settings (:attr:`Plugin.settings`) and the
prefixes of driver arguments meant for the connections it opens itself
(:attr:`Plugin.param_prefixes`); :class:`~bluegreen.settings.SettingsRegistry`
merges them, validates them and suggests the right name for a typo, with no
plugin named in the core. Process-wide state belongs in the runtime
(:meth:`bluegreen.Runtime.state`, :func:`bluegreen.runtime`), which resets
it after ``fork``.

Which hooks a plugin overrides is detected once, from its class; only those
are chained. When no plugin of a connection overrides ``execute``, cursors
call the driver directly after a single attribute check.

A plugin whose ``execute`` hook, most of the time, does nothing but make the
call can say so with a :class:`Gate` (see :meth:`Plugin.gate`): while the
gate is calm the proxies make the call themselves, without building it as a
callable and without entering the hook. The plugin closes the gate the
moment its hook must see calls again.

Plugin codes map to factories (a :class:`Plugin` subclass or any callable
taking a :class:`ConnectContext`), or lazily to ``"module:attribute"``
strings imported on first use.

This module holds the per-connection :class:`Pipeline` and its gates; the
rest lives in private modules and is imported from here: :class:`Plugin`,
:class:`ConnectContext` and :class:`Target` in ``_plugin``,
:class:`PluginRegistry` and the registration functions in
``_plugin_registry``, the checks a plugin class passes in ``_declarations``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from ._plugin import (
    CREDENTIAL_HOOKS,
    HOOKS,
    ConnectContext,
    Plugin,
    PluginFactory,
    Target,
)
from ._plugin import overridden_hooks as overridden_hooks
from ._plugin import provides_credentials as provides_credentials
from ._plugin_registry import (
    PluginRegistry,
    _Plan,
    builtin_plugins,
    register_plugin,
    unregister_plugin,
)
from ._runtime import runtime
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .connection import Connection
    from .settings import ConnectionConfig

__all__ = [
    "CREDENTIAL_HOOKS",
    "HOOKED",
    "HOOKS",
    "OPEN",
    "UNDO_CALLS",
    "ConnectContext",
    "ExecuteHook",
    "Gate",
    "Pipeline",
    "Plugin",
    "PluginFactory",
    "PluginRegistry",
    "Reconnected",
    "Target",
    "builtin_plugins",
    "register_plugin",
    "unregister_plugin",
]

ExecuteHook = Callable[["Connection", str, Callable[[], Any]], Any]


class Reconnected(Exception):
    """Raised by an ``execute`` hook, before it makes the call, after it
    replaced the connection's driver connection (see
    :meth:`bluegreen.Connection.swap_driver_connection`): the proxies build
    the call again on the new driver connection and run it through the hooks
    once more. Never reaches the application."""


#: ``method_name`` values of calls that only undo work (rollbacks). A plugin
#: may delay them, but never refuse them: when it cannot wait any longer it
#: makes the call, so that an application rolling back after an error never
#: sees the plugin's error instead of its own.
UNDO_CALLS = frozenset({"rollback", "tpc_rollback"})


class Gate:
    """Whether the ``execute`` hooks of a connection may be skipped.

    While :attr:`calm` is true, the proxies make each call straight on the
    driver; once it is false, every call goes through the hooks. A plugin
    owns its gates and flips them from any thread: a call that read
    ``calm`` just before it flipped runs as it would have run a moment
    earlier (the same race as a hook that reads its state, then calls).
    """

    __slots__ = ("calm",)

    def __init__(self, calm: bool) -> None:
        self.calm = calm

    def __repr__(self) -> str:
        return f"<Gate {'calm' if self.calm else 'hooked'}>"


#: The gate of connections without ``execute`` hooks (never closes).
OPEN = Gate(True)
#: The gate of connections whose hooks see every call (never opens).
HOOKED = Gate(False)


class _Step:
    """One plugin of a connect plan, with the hooks it has."""

    __slots__ = ("closes", "connects", "executes", "factory", "hooks", "serves_async")

    def __init__(self, factory: PluginFactory, hooks: frozenset[str] | None) -> None:
        self.factory = factory
        #: ``None``: the hooks are those of the instance (asked per connection).
        self.hooks = hooks
        self.connects = hooks is not None and "connect" in hooks
        self.executes = hooks is not None and "execute" in hooks
        self.closes = hooks is not None and "on_close" in hooks
        #: A plugin class whose hooks all have their asyncio twins.
        self.serves_async = (
            hooks is not None
            and isinstance(factory, type)
            and not _missing_async(factory, hooks)
        )


def _chain_execute(hooks: list[ExecuteHook]) -> ExecuteHook:
    if len(hooks) == 1:
        return hooks[0]
    outer = hooks[0]
    inner = _chain_execute(hooks[1:])

    def run(conn: Connection, name: str, call: Callable[[], Any]) -> Any:
        return outer(conn, name, lambda: inner(conn, name, call))

    return run


def _missing_async(kind: type, hooks: frozenset[str]) -> list[str]:
    """The asyncio twins plugin class ``kind`` lacks for its ``hooks``."""
    plain = Plugin.__dict__
    return [
        f"{h}_async"
        for h in ("connect", "execute")
        if h in hooks and getattr(kind, f"{h}_async", None) is plain[f"{h}_async"]
    ]


def _chain_execute_async(
    hooks: list[Callable[..., Awaitable[Any]]],
) -> Callable[..., Awaitable[Any]]:
    if len(hooks) == 1:
        return hooks[0]
    outer = hooks[0]
    inner = _chain_execute_async(hooks[1:])

    async def run(conn: Any, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await outer(conn, name, lambda: inner(conn, name, call))

    return run


class Pipeline:
    """The plugins of one connection and their chained hooks."""

    __slots__ = (
        "close_hooks",
        "connects",
        "context",
        "execute",
        "gatekeeper",
        "plugins",
    )

    def __init__(
        self,
        plugins: tuple[Plugin, ...],
        context: ConnectContext,
        execute: ExecuteHook | None,
        close_hooks: tuple[Callable[[Connection], None], ...],
        connects: tuple[Plugin, ...] = (),
        gatekeeper: Plugin | None = None,
    ) -> None:
        self.plugins = plugins
        self.context = context
        #: The chained execute hook, or ``None`` (cursors take the fast path).
        self.execute = execute
        self.close_hooks = close_hooks
        #: The plugins whose ``connect`` hooks open a driver connection.
        self.connects = connects
        #: The plugin whose ``execute`` hook is the only one, if any.
        self.gatekeeper = gatekeeper

    def gate(self) -> Gate:
        """The gate of a connection of this pipeline, now: :data:`OPEN`
        without ``execute`` hooks, the single hooking plugin's gate, or
        :data:`HOOKED`."""
        if self.execute is None:
            return OPEN
        keeper = self.gatekeeper
        gate = keeper.gate() if keeper is not None else None
        return HOOKED if gate is None else gate

    async def reopen_async(self) -> Any:
        """:meth:`reopen` for an asyncio connection."""
        ctx = self.context
        call: Callable[[], Awaitable[Any]] = ctx.connect
        for plugin in reversed(self.connects):
            call = functools.partial(plugin.connect_async, ctx, call)
        return await call()

    @classmethod
    async def open_async(
        cls, config: ConnectionConfig, reg: PluginRegistry | None = None
    ) -> tuple[Pipeline, Any]:
        """:meth:`open` for an asyncio driver: the plugins' ``connect_async``
        hooks, awaited, and their ``execute_async`` hooks chained.

        Raise :class:`ConfigurationError` for a plugin that hooks ``connect``
        or ``execute`` without the asyncio twin of that hook."""
        if reg is None:
            reg = runtime().plugins
        codes = config.settings.plugins
        plan = reg.plan(codes)
        ctx, steps = cls._context(config, plan)
        if len(steps) == 1 and steps[0].serves_async:  # (bg): the short way
            step = steps[0]
            plugin = step.factory(ctx)
            if step.connects:
                raw = await plugin.connect_async(ctx, ctx.connect)
            else:
                raw = await ctx.connect()
            hooking_calls = step.executes
            pipeline = cls(
                (plugin,),
                ctx,
                plugin.execute_async if hooking_calls else None,
                (plugin.on_close,) if step.closes else (),
                (plugin,) if step.connects else (),
                plugin if hooking_calls else None,
            )
            return pipeline, raw
        plugins: list[Plugin] = []
        connects: list[Plugin] = []
        executes: list[Callable[..., Awaitable[Any]]] = []
        hooking: list[Plugin] = []
        closes: list[Callable[[Connection], None]] = []
        for code, (factory, hooks) in zip(codes, plan, strict=True):
            plugin = factory(ctx)
            kind = type(plugin)
            if hooks is None:
                hooks = overridden_hooks(kind)
            missing = _missing_async(kind, hooks)
            if missing:
                raise ConfigurationError(
                    f"plugin {code!r} ({kind.__qualname__}) cannot serve asyncio "
                    f"connections: it overrides {', '.join(m[:-6] for m in missing)} "
                    f"but not {', '.join(missing)}"
                )
            plugins.append(plugin)
            if "connect" in hooks:
                connects.append(plugin)
            if "execute" in hooks:
                executes.append(plugin.execute_async)
                hooking.append(plugin)
            if "on_close" in hooks:
                closes.append(plugin.on_close)
        call: Callable[[], Awaitable[Any]] = ctx.connect
        for plugin in reversed(connects):
            call = functools.partial(plugin.connect_async, ctx, call)
        raw = await call()
        pipeline = cls(
            tuple(plugins),
            ctx,
            _chain_execute_async(executes) if executes else None,
            tuple(closes),
            tuple(connects),
            hooking[0] if len(hooking) == 1 else None,
        )
        return pipeline, raw

    def reopen(self) -> Any:
        """Open a new driver connection for the same connection, through
        every plugin's ``connect`` hook, as when it was first opened."""
        ctx = self.context
        call: Callable[[], Any] = ctx.connect
        for plugin in reversed(self.connects):
            call = functools.partial(plugin.connect, ctx, call)
        return call()

    @classmethod
    def open(
        cls, config: ConnectionConfig, reg: PluginRegistry | None = None
    ) -> tuple[Pipeline, Any]:
        """Create the plugins of *config* and open the driver connection.

        Return the pipeline and the driver connection. What depends on the
        configuration alone (the plugins' factories and hooks, the
        :class:`ConnectContext`) is worked out on its first connection and
        kept on *config* (which :func:`~bluegreen.settings.parse_config`
        hands out again for the same arguments), as long as the registry's
        plan for its plugins stays the same.
        """
        if reg is None:
            reg = runtime().plugins
        plan = reg.plan(config.settings.plugins)
        ctx, steps = cls._context(config, plan)
        if len(steps) == 1 and steps[0].hooks is not None:
            return cls._open_one(ctx, steps[0])
        return cls._open_many(ctx, plan)

    @staticmethod
    def _context(
        config: ConnectionConfig, plan: _Plan
    ) -> tuple[ConnectContext, tuple[_Step, ...]]:
        """The context and steps of *config*, made on its first connection."""
        kept = config._opener
        if kept is None or kept[0] is not plan:
            ctx = ConnectContext(config)
            ctx.credential_hooks = tuple(
                cast("type[Plugin]", factory)
                for factory, _ in plan
                if provides_credentials(factory)
            )
            steps = tuple(_Step(factory, hooks) for factory, hooks in plan)
            object.__setattr__(config, "_opener", (plan, ctx, steps))
            return ctx, steps
        return kept[1], kept[2]

    @classmethod
    def _open_one(cls, ctx: ConnectContext, step: _Step) -> tuple[Pipeline, Any]:
        """:meth:`open` for one plugin whose hooks are known (``bg``)."""
        plugin = step.factory(ctx)
        raw = plugin.connect(ctx, ctx.connect) if step.connects else ctx.connect()
        executes = step.executes
        pipeline = cls(
            (plugin,),
            ctx,
            plugin.execute if executes else None,
            (plugin.on_close,) if step.closes else (),
            (plugin,) if step.connects else (),
            plugin if executes else None,
        )
        return pipeline, raw

    @classmethod
    def _open_many(cls, ctx: ConnectContext, plan: _Plan) -> tuple[Pipeline, Any]:
        plugins: list[Plugin] = []
        connects: list[Plugin] = []
        executes: list[ExecuteHook] = []
        hooking: list[Plugin] = []
        closes: list[Callable[[Connection], None]] = []
        for factory, hooks in plan:
            plugin = factory(ctx)
            if hooks is None:
                hooks = overridden_hooks(type(plugin))
            plugins.append(plugin)
            if "connect" in hooks:
                connects.append(plugin)
            if "execute" in hooks:
                executes.append(plugin.execute)
                hooking.append(plugin)
            if "on_close" in hooks:
                closes.append(plugin.on_close)
        call: Callable[[], Any] = ctx.connect
        for plugin in reversed(connects):
            call = functools.partial(plugin.connect, ctx, call)
        raw = call()
        pipeline = cls(
            tuple(plugins),
            ctx,
            _chain_execute(executes) if executes else None,
            tuple(closes),
            tuple(connects),
            hooking[0] if len(hooking) == 1 else None,
        )
        return pipeline, raw
