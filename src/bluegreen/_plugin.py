"""What a plugin is written against: the Plugin base class and its contexts.

:class:`Plugin` (the hooks a plugin overrides, its declarations),
:class:`ConnectContext` (what its ``connect`` and ``credentials`` hooks know
about the connection being opened) and :class:`Target` (the driver
connection a ``credentials`` hook serves), with the helpers that tell which
hooks a plugin class overrides. The hooks are described in
:mod:`bluegreen.pipeline`, through which this module is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard, TypeVar

if TYPE_CHECKING:
    from .connection import Connection
    from .drivers.base import DriverAdapter, DriverParams
    from .pipeline import Gate
    from .settings import ConnectionConfig, Setting, Settings

T = TypeVar("T")

#: The hook method names a plugin may override.
HOOKS = ("connect", "execute", "on_close")


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


def overridden_hooks(cls: type) -> frozenset[str]:
    """The hook names that *cls* overrides relative to :class:`Plugin`."""
    return frozenset(
        h for h in HOOKS if getattr(cls, h, None) is not getattr(Plugin, h)
    )
