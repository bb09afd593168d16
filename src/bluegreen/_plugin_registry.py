"""The plugin registry: plugin codes mapped to factories.

:class:`PluginRegistry` (one per runtime) maps each code to a factory (a
:class:`~bluegreen.pipeline.Plugin` subclass or any callable taking a
:class:`~bluegreen.pipeline.ConnectContext`), or lazily to a
``"module:attribute"`` string imported on first use, checks a plugin class
before registering it and resolves the ``plugins`` setting of a connection
into a plan; :func:`builtin_plugins` names the plugins every runtime starts
with; :func:`register_plugin` and :func:`unregister_plugin` change the
current runtime's registry. Imported through :mod:`bluegreen.pipeline`.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._declarations import check_plugin
from ._plugin import Plugin, PluginFactory, _is_plugin_class, overridden_hooks
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._setting import Setting

_Plan = tuple[tuple[PluginFactory, "frozenset[str] | None"], ...]


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
        the core's and those of every other plugin already imported (the
        checks are in :mod:`bluegreen._declarations`)."""
        entries = list(self._entries.items())
        check_plugin(code, factory, {other: e.factory for other, e in entries})

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
