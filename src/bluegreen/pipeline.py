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
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard, TypeVar, cast

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .connection import Connection
    from .drivers.base import DriverAdapter, DriverParams
    from .settings import ConnectionConfig, Setting, Settings

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

T = TypeVar("T")

#: The hook method names a plugin may override.
HOOKS = ("connect", "execute", "on_close")

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


@dataclass(frozen=True, slots=True)
class Target:
    """The driver connection about to be opened, as a ``credentials`` hook
    sees it.

    ``host`` and ``port`` are the endpoint the connection stands for: the
    application's host name for its own connections, even when a plugin
    sends them to an IP address or to another host's address; the host a
    plugin connects for on its own connections. ``ip`` is where the
    connection really goes when it is not ``host`` itself. ``opener`` is
    ``""`` for the application's connections and the code of the plugin
    that opens the others (``"bg"`` for the monitors).
    """

    host: str | None
    port: int
    ip: str | None = None
    user: str | None = None
    opener: str = ""


class ConnectContext:
    """What a plugin's ``connect`` hook knows about the connection being opened.

    ``host`` and ``port`` are where the application asked to connect (driver
    defaults applied); :meth:`connect` opens the driver connection there, to
    another host, or to an IP standing for the host name.
    """

    __slots__ = (
        "adapter",
        "config",
        "credential_hooks",
        "host",
        "memo",
        "params",
        "port",
        "settings",
    )

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self.adapter: DriverAdapter = config.adapter
        self.settings: Settings = config.settings
        self.params: DriverParams = config.params
        endpoint = config.endpoint()
        self.host: str | None = endpoint.host
        self.port: int = endpoint.port
        #: Values a plugin derives from the configuration alone, kept by the
        #: plugin under its code: :meth:`Pipeline.open` gives every
        #: connection of one configuration the same (read-only) context.
        self.memo: dict[str, Any] = {}
        #: The plugin classes with a ``credentials`` hook, in plugin order.
        self.credential_hooks: tuple[type[Plugin], ...] = ()

    def connect(
        self, host: str | None = None, ip: str | None = None, port: int | None = None
    ) -> Any:
        """Open a driver connection (see :meth:`DriverAdapter.connect`),
        with the arguments of the plugins' ``credentials`` hooks.

        For an asyncio driver, return an awaitable instead, which the
        caller awaits for the connection (the ``credentials_async`` hooks
        run then)."""
        params = self.params
        if self.credential_hooks:
            target = Target(
                host if host is not None else self.host,
                self.port if host is None and port is None else (port or self.port),
                ip,
                self.config.endpoint().user,
            )
            if self.adapter.is_async:
                return self._connect_async(target, host, ip, port)
            params = self.credentials(params, target)
        return self.adapter.connect(params, host, ip, port)

    async def _connect_async(
        self, target: Target, host: str | None, ip: str | None, port: int | None
    ) -> Any:
        params = await self.credentials_async(self.params, target)
        opening: Awaitable[Any] = self.adapter.connect(params, host, ip, port)  # type: ignore[assignment]
        return await opening

    def credentials(self, params: DriverParams, target: Target) -> DriverParams:
        """``params`` with what every ``credentials`` hook returns for
        ``target`` (a later plugin's values win)."""
        for hook in self.credential_hooks:
            extra = hook.credentials(self, target)
            if extra:
                params = self.adapter.with_arguments(params, extra)
        return params

    async def credentials_async(
        self, params: DriverParams, target: Target
    ) -> DriverParams:
        """:meth:`credentials` with the hooks' asyncio twins."""
        for hook in self.credential_hooks:
            extra = await hook.credentials_async(self, target)
            if extra:
                params = self.adapter.with_arguments(params, extra)
        return params

    def own_params(self, code: str) -> DriverParams:
        """Driver parameters for a connection plugin ``code`` opens itself
        (see :meth:`ConnectionConfig.own_params
        <bluegreen.settings.ConnectionConfig.own_params>`); pass them with
        a :class:`Target` whose ``opener`` is ``code`` to
        :meth:`credentials` before connecting."""
        return self.config.own_params(code)

    def __repr__(self) -> str:
        return (
            f"<ConnectContext {self.adapter.name} host={self.host!r} port={self.port}>"
        )


class Plugin:
    """Base class of plugins; override only the hooks you need."""

    #: The code the plugin is registered under (informative).
    code: ClassVar[str] = ""
    #: The settings this plugin declares: each name starts with the code
    #: the plugin is registered under and ``_`` (``bg_id``, ``iam_region``).
    #: bluegreen validates them and hands them over in ``ctx.settings``.
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: Prefixes of driver arguments meant only for the connections this
    #: plugin opens itself (``blue-green-monitoring-``): see
    #: :meth:`ConnectContext.own_params`.
    param_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: ConnectContext) -> None:
        """A plugin class is its own factory: one instance per connection."""
        self.context = ctx

    def connect(self, ctx: ConnectContext, call_next: Callable[[], Any]) -> Any:
        """Return a driver connection, normally ``call_next()``."""
        return call_next()

    def execute(self, conn: Connection, method_name: str, call: Callable[[], T]) -> T:
        """Run *call* (the driver call *method_name* on *conn*), return its result."""
        return call()

    def on_close(self, conn: Connection) -> None:
        """The application closed *conn*."""

    # The hooks of asyncio connections (bluegreen.connect_async). A plugin
    # that overrides connect or execute must override its asyncio twin too
    # to serve asyncio connections; connect_async refuses it otherwise.

    async def connect_async(
        self, ctx: ConnectContext, call_next: Callable[[], Awaitable[Any]]
    ) -> Any:
        """:meth:`connect` for an asyncio connection: ``await call_next()``."""
        return await call_next()

    async def execute_async(
        self, conn: Any, method_name: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        """:meth:`execute` for an asyncio connection: ``await call()``."""
        return await call()

    @classmethod
    def credentials(
        cls, ctx: ConnectContext, target: Target
    ) -> Mapping[str, Any] | None:
        """Driver arguments to add for a driver connection about to be
        opened to ``target`` (``{"password": token}``), or None. Called for
        the application's connections and for those plugins open
        themselves, from any thread; keep what must be cached in the
        runtime (:meth:`bluegreen.Runtime.state`).

        It must be a class method (or a static method), not an ``async``
        one: a plugin's own connections have no plugin instance to call it
        on, and the ``bg`` monitors call it from their own threads even for
        an asyncio application. :meth:`PluginRegistry.register` refuses
        any other kind."""
        return None

    @classmethod
    async def credentials_async(
        cls, ctx: ConnectContext, target: Target
    ) -> Mapping[str, Any] | None:
        """:meth:`credentials` for an asyncio connection (by default the
        synchronous hook, called on the event loop).

        An ``async`` class method (or static method); a plugin that
        overrides it overrides :meth:`credentials` too, which serves every
        synchronous caller."""
        return cls.credentials(ctx, target)

    def gate(self) -> Gate | None:
        """A :class:`Gate` that is calm while this plugin's ``execute`` hook
        would only make the call, so that the proxies may skip it; ``None``
        (the default): the hook sees every call. Asked when the connection
        is opened, and again when the plugin calls
        :meth:`bluegreen.Connection.refresh_gate`. Only a connection whose
        single ``execute`` hook is this plugin's uses it."""
        return None


PluginFactory = Callable[[ConnectContext], Plugin]
_Plan = tuple[tuple[PluginFactory, "frozenset[str] | None"], ...]


#: The credentials hooks: class methods, called on the plugin's class.
CREDENTIAL_HOOKS = ("credentials", "credentials_async")


def _is_plugin_class(factory: object) -> TypeGuard[type[Plugin]]:
    return isinstance(factory, type) and issubclass(factory, Plugin)


def provides_credentials(factory: object) -> bool:
    """Whether plugin class ``factory`` overrides :meth:`Plugin.credentials`
    or :meth:`Plugin.credentials_async`."""
    if not _is_plugin_class(factory):
        return False
    return any(
        inspect.getattr_static(factory, h) is not Plugin.__dict__[h]
        for h in CREDENTIAL_HOOKS
    )


def _check_credential_hooks(code: str, kind: type[Plugin]) -> None:
    """Refuse plugin class ``kind`` if its ``credentials`` hooks cannot be
    called as the pipeline calls them: on the class, ``credentials`` as a
    plain function, ``credentials_async`` as a coroutine function, and never
    ``credentials_async`` alone (synchronous connections and the
    connections plugins open themselves call ``credentials``)."""
    name = f"plugin {code!r} ({kind.__qualname__})"
    overridden = []
    for hook in CREDENTIAL_HOOKS:
        raw = inspect.getattr_static(kind, hook)
        if raw is Plugin.__dict__[hook]:
            continue
        overridden.append(hook)
        if not isinstance(raw, (classmethod, staticmethod)):
            raise ConfigurationError(
                f"{name}: {hook} must be a class method (decorate it with "
                "@classmethod): bluegreen calls it on the class, also for "
                "connections that no instance of the plugin belongs to (the "
                "bg plugin's monitors)"
            )
        is_async = inspect.iscoroutinefunction(raw.__func__)
        if hook == "credentials" and is_async:
            raise ConfigurationError(
                f"{name}: credentials must not be async (the bg plugin's "
                "monitors call it from their own threads): define it with "
                "def, and put asyncio work in credentials_async"
            )
        if hook == "credentials_async" and not is_async:
            raise ConfigurationError(
                f"{name}: credentials_async must be defined with async def"
            )
    if overridden == ["credentials_async"]:
        raise ConfigurationError(
            f"{name} overrides credentials_async but not credentials: "
            "credentials serves synchronous connections and the connections "
            "plugins open themselves (the bg plugin's monitors, from their "
            "own threads, also for an asyncio application), so a plugin that "
            "supplies credentials defines it; credentials_async is optional "
            "(by default it calls credentials)"
        )


def overridden_hooks(cls: type) -> frozenset[str]:
    """The hook names that *cls* overrides relative to :class:`Plugin`."""
    return frozenset(
        h for h in HOOKS if getattr(cls, h, None) is not getattr(Plugin, h)
    )


class _Entry:
    __slots__ = ("factory", "hooks", "spec")

    def __init__(self, spec: str | PluginFactory) -> None:
        self.spec = spec
        self.factory: PluginFactory | None = None
        self.hooks: frozenset[str] | None = None
        if not isinstance(spec, str):
            self._set(spec)

    def _set(self, factory: PluginFactory) -> None:
        self.factory = factory
        if isinstance(factory, type) and issubclass(factory, Plugin):
            self.hooks = overridden_hooks(factory)


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


class PluginRegistry:
    """Maps plugin codes to factories, importing ``"module:attr"`` ones lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        # Resolved plugin tuples (the ``plugins`` setting of connections);
        # emptied whenever a registration changes.
        self._plans: dict[tuple[str, ...], _Plan] = {}
        #: Counts registration changes (the settings registry follows it).
        self.version = 0

    def after_fork_in_child(self) -> None:
        """A lock another thread held at fork time stays held in the child."""
        self._lock = threading.Lock()

    def register(self, code: str, factory: str | PluginFactory) -> None:
        """Register *factory* (or a ``"module:attribute"`` string) under *code*.

        A :class:`Plugin` class is checked now (see :meth:`check`): the
        plugins registered by string are imported first, so that its
        declarations are checked against theirs. A string is checked when
        it is imported. A failed check is a :class:`ConfigurationError`
        and leaves the registry as it was."""
        code = code.strip()
        if not code or "," in code:
            raise ConfigurationError(f"invalid plugin code {code!r}")
        if isinstance(factory, str):
            if ":" not in factory:
                raise ConfigurationError(
                    f"plugin {code!r}: expected 'module:attribute', got {factory!r}"
                )
        elif not callable(factory):
            raise ConfigurationError(
                f"plugin {code!r}: {factory!r} is not callable (expected a "
                "Plugin subclass, a factory taking a ConnectContext, or a "
                "'module:attribute' string)"
            )
        elif _is_plugin_class(factory):
            for other in self.codes():
                if other != code:
                    # One that cannot be imported is checked once it can be.
                    with contextlib.suppress(ConfigurationError):
                        self.resolve(other)
            self.check(code, factory)
        with self._lock:
            self._entries[code] = _Entry(factory)
            self._plans = {}
            self.version += 1

    def unregister(self, code: str) -> None:
        """Remove *code* (tests use this to undo a registration)."""
        with self._lock:
            self._entries.pop(code, None)
            self._plans = {}
            self.version += 1

    def codes(self) -> tuple[str, ...]:
        """The registered codes, in registration order."""
        return tuple(self._entries)

    def resolve(self, code: str) -> tuple[PluginFactory, frozenset[str] | None]:
        """Return the factory of *code* and its hooks (``None``: ask the instance)."""
        entry = self._entries.get(code)
        if entry is None:
            raise ConfigurationError(
                f"unknown plugin code {code!r} in setting 'plugins'; known codes: "
                f"{', '.join(self._entries) or '(none)'}"
            )
        if entry.factory is None:
            with self._lock:
                if entry.factory is None:
                    factory = _load(code, str(entry.spec))
                    self.check(code, factory)
                    entry._set(factory)
        assert entry.factory is not None
        return entry.factory, entry.hooks

    def check(self, code: str, factory: object) -> None:
        """Refuse plugin class ``factory`` for ``code`` with a
        :class:`ConfigurationError` naming the plugin and the rule: its
        ``credentials`` hooks (see :class:`Plugin`) and its declarations
        (see :func:`~bluegreen.settings.check_declarations`), these against
        the core's and those of every other plugin already imported."""
        if not _is_plugin_class(factory):
            return
        from .settings import check_declarations

        _check_credential_hooks(code, factory)
        others: dict[str, tuple[tuple[Setting, ...], tuple[str, ...]]] = {}
        for other, entry in list(self._entries.items()):
            declared = entry.factory
            if other != code and _is_plugin_class(declared):
                others[other] = (
                    tuple(declared.settings),
                    tuple(declared.param_prefixes),
                )
        check_declarations(code, factory.settings, factory.param_prefixes, others)

    def declarations(self, code: str) -> tuple[tuple[Setting, ...], tuple[str, ...]]:
        """The settings and driver-argument prefixes plugin ``code``
        declares (none for a factory that is not a :class:`Plugin` class);
        :class:`ConfigurationError` if it cannot be loaded or its
        declarations are not tuples."""
        factory, _ = self.resolve(code)
        if _is_plugin_class(factory):
            declared, prefixes = factory.settings, factory.param_prefixes
            if not isinstance(declared, (tuple, list)) or not isinstance(
                prefixes, (tuple, list)
            ):
                raise ConfigurationError(
                    f"plugin {code!r}: settings and param_prefixes must be tuples"
                )
            return tuple(declared), tuple(prefixes)
        return (), ()

    def plan(self, codes: tuple[str, ...]) -> _Plan:
        """:meth:`resolve` each of *codes*, once per distinct tuple of codes."""
        plans = self._plans
        plan = plans.get(codes)
        if plan is None:
            plan = tuple(self.resolve(code) for code in codes)
            if len(plans) >= 64:
                plans.clear()
            plans[codes] = plan
        return plan

    def snapshot(self) -> Mapping[str, str | PluginFactory]:
        """The registrations as given (for diagnostics)."""
        return {code: e.spec for code, e in self._entries.items()}


def _load(code: str, spec: str) -> PluginFactory:
    module_name, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"plugin {code!r} could not be loaded from {spec!r}: {exc}"
        ) from exc
    if not callable(obj):
        raise ConfigurationError(f"plugin {code!r}: {spec!r} is not callable")
    factory: PluginFactory = obj
    return factory


def builtin_plugins() -> tuple[tuple[str, str], ...]:
    """The plugins every runtime starts with, imported on first use."""
    return (
        ("bg", "bluegreen.bg.plugin:BlueGreenPlugin"),
        ("iam", "bluegreen.iam:IamPlugin"),
    )


def register_plugin(code: str, factory: str | PluginFactory) -> None:
    """Register a plugin factory (a :class:`Plugin` subclass, another
    callable taking a :class:`ConnectContext`, or a ``"module:attribute"``
    string imported on first use) under *code* for this process. Its
    declared settings are accepted from then on.

    Raise :class:`ConfigurationError`, and register nothing, for a plugin
    class whose declarations or ``credentials`` hooks are wrong (see
    :meth:`PluginRegistry.check`); a string is checked when it is imported,
    and a plugin that fails then is treated as one that cannot be loaded."""
    from ._runtime import runtime

    runtime().plugins.register(code, factory)


def unregister_plugin(code: str) -> None:
    """Remove the plugin registered under *code* (tests use this)."""
    from ._runtime import runtime

    runtime().plugins.unregister(code)


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
            from ._runtime import runtime

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
            from ._runtime import runtime

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
