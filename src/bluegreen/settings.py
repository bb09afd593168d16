"""Every wrapper setting: name, type, default, allowed values and a one-line doc.

The core declares two settings (``plugins``, ``wrapper_dialect``); every
other one is declared by the plugin that uses it (``Plugin.settings``).
:class:`SettingsRegistry` merges them (one per runtime; :data:`SETTINGS` is
a read-only view of it); :func:`settings_table_markdown` renders it as the
README's table, and ``tests/unit/test_readme.py`` checks that the README
holds exactly that. :func:`parse_config` runs once per
:func:`bluegreen.connect` call: it separates wrapper settings from driver
arguments (also inside a psycopg conninfo string), validates them into an
immutable :class:`Settings` and collects the driver arguments given with a
plugin's prefix (``blue-green-monitoring-``), which apply only to the
connections that plugin opens itself.

This module parses; the rest lives in private modules and is imported from
here: :class:`Setting` and :data:`CORE_SETTINGS` in ``_setting``, the
registry, :data:`SETTINGS` and :class:`Settings` in ``_settings_registry``,
:func:`check_declarations` in ``_declarations``.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._conninfo import masked_items, split_conninfo
from ._declarations import check_declarations
from ._setting import CALLABLE, CORE_SETTINGS, Setting, parse_plugins
from ._setting import DIALECTS as DIALECTS
from ._settings_registry import (
    _DRIVER,
    _PREFIXED,
    _WRAPPER,
    SETTINGS,
    Settings,
    SettingsRegistry,
    _registry,
    iter_settings,
    settings_table_markdown,
)
from .drivers.base import DriverAdapter, DriverParams, Endpoint, ReadOnlyDict
from .errors import ConfigurationError, ProgrammingError

__all__ = [
    "CALLABLE",
    "CORE_SETTINGS",
    "SETTINGS",
    "ConnectionConfig",
    "Setting",
    "Settings",
    "SettingsRegistry",
    "check_declarations",
    "iter_settings",
    "parse_config",
    "settings_table_markdown",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """Everything parsed from one ``connect()`` call.

    ``params`` are the driver arguments (wrapper settings removed);
    ``own_overrides`` the driver arguments given with a plugin's prefix
    (``blue-green-monitoring-connect_timeout``), by plugin code, prefix
    stripped: they apply to the connections that plugin opens itself.
    Everything is read-only: :func:`parse_config` hands the same object to
    every connection made with the same argument objects. Secrets are
    masked in the ``repr``.
    """

    adapter: DriverAdapter
    settings: Settings
    params: DriverParams
    own_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=ReadOnlyDict)
    _endpoint: Endpoint | None = field(
        default=None, init=False, repr=False, compare=False
    )
    #: What :meth:`~bluegreen.pipeline.Pipeline.open` works out once per
    #: configuration: (the registry's plan, the context, its steps).
    _opener: Any = field(default=None, init=False, repr=False, compare=False)

    def endpoint(self) -> Endpoint:
        """Where the application asked to connect (computed once)."""
        endpoint = self._endpoint
        if endpoint is None:
            endpoint = self.adapter.endpoint(self.params)
            object.__setattr__(self, "_endpoint", endpoint)
        return endpoint

    def own_params(self, code: str) -> DriverParams:
        """Driver parameters for a connection plugin ``code`` opens itself
        (the ``bg`` plugin's monitors).

        The application's parameters overridden by those given with the
        plugin's prefix, without node-selection settings (libpq
        ``target_session_attrs``, ``load_balance_hosts``) or result-shape
        settings (row factories, cursor classes), with autocommit forced on.
        """
        overrides = self.own_overrides.get(code, ReadOnlyDict())
        return self.adapter.monitoring_params(self.params, overrides)

    def __repr__(self) -> str:
        own = {code: masked_items(o) for code, o in self.own_overrides.items()}
        return (
            f"ConnectionConfig(driver={self.adapter.name!r}, "
            f"settings={self.settings!r}, params={self.params!r}, "
            f"own_overrides={own!r})"
        )


def _wanted_in_conninfo(key: str) -> bool:
    return _registry().kind(key)[0] != _DRIVER


class _Parsed:
    """A memo entry: the config parsed from particular argument objects."""

    __slots__ = ("config", "inputs")

    def __init__(self, config: ConnectionConfig, inputs: tuple[Any, ...]) -> None:
        self.config = config
        #: The argument objects whose ids make the key, kept alive so that
        #: no other object can take one of those ids while the entry lives.
        self.inputs = inputs


#: Memo entries per adapter before the memo is emptied.
_MEMO_SIZE = 256


def parse_config(
    adapter: DriverAdapter, conninfo: str | None, kwargs: dict[str, Any]
) -> ConnectionConfig:
    """Separate and validate the arguments of one ``connect()`` call.

    Memoised per adapter on the identity of the argument objects: a pool
    that connects with the same keyword values every time gets the same
    (read-only) :class:`ConnectionConfig` back without parsing again, and
    the driver receives exactly the objects the application passed.
    """
    values = tuple(kwargs.values())
    key = (id(conninfo), tuple(kwargs), tuple(map(id, values)))
    memo: dict[Any, _Parsed] = adapter.parsed
    entry = memo.get(key)
    if entry is not None:
        return entry.config
    config = _parse(adapter, conninfo, kwargs)
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = _Parsed(config, (conninfo, values))
    return config


def _parse(
    adapter: DriverAdapter, conninfo: str | None, kwargs: dict[str, Any]
) -> ConnectionConfig:
    registry = _registry()
    wrapper: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {}
    #: (plugin code, name after the prefix) -> the keyword as written
    spelled: dict[tuple[str, str], str] = {}
    driver: dict[str, Any] = {}
    remaining = ""
    if conninfo is not None:
        if not adapter.accepts_conninfo:
            raise ProgrammingError(
                f"{adapter.name} does not take a connection string: pass its "
                "connect arguments as keywords"
            )
        if not isinstance(conninfo, str):
            raise ProgrammingError(
                f"the connection string must be a str, not {type(conninfo).__name__}"
            )
        remaining = conninfo
        if _may_hold_settings(registry, conninfo):
            remaining, taken = split_conninfo(conninfo, _wanted_in_conninfo)
            for key, value in taken:
                _sort(registry, key, value, wrapper, own, spelled, driver)
    for key, value in kwargs.items():
        _sort(registry, key, value, wrapper, own, spelled, driver)

    settings = registry.defaults()
    if wrapper:
        values: dict[str, Any] = {}
        for name, raw in wrapper.items():
            setting = registry.all()[name]
            if name == "plugins":
                if not isinstance(raw, str):
                    raise setting._error(raw)
                values[name] = parse_plugins(raw)
            else:
                values[name] = setting.convert(raw)
        settings = Settings(**values)
        _check_owners(registry, settings)

    for code, names in own.items():
        _check_own_names(adapter, code, names, spelled)
    params = DriverParams(remaining, driver)
    overrides = ReadOnlyDict({c: ReadOnlyDict(o) for c, o in own.items()})
    return ConnectionConfig(adapter, settings, params, overrides)


def _may_hold_settings(registry: SettingsRegistry, conninfo: str) -> bool:
    """A cheap look for anything the wrapper might take out of a string."""
    low = conninfo.lower()
    if "plugin" in low or "wrapper" in low:
        return True
    for code in registry._plugins.codes():
        if code.lower() in low:
            return True
    return any(prefix in low for prefix, _ in registry.prefixes())


def _check_owners(registry: SettingsRegistry, settings: Settings) -> None:
    """Warn (once) about settings of plugins the connection does not use:
    they have no effect, which is rarely what was meant."""
    plugins = settings.plugins
    for name in settings.given():
        code = registry.owner(name)
        if code and code not in plugins:
            from ._runtime import runtime

            runtime().warnings.warn(
                logger,
                ("unused-setting", name, plugins),
                "setting %r belongs to the %r plugin, which is not in plugins=%r: "
                "it has no effect",
                name,
                code,
                ",".join(plugins),
            )


def _check_own_names(
    adapter: DriverAdapter,
    code: str,
    names: Mapping[str, Any],
    spelled: Mapping[tuple[str, str], str],
) -> None:
    """A prefixed argument must name a parameter the driver knows: the
    plugin passes it to the driver in the background, where a typo would
    make every one of its connections fail, quietly. The error shows the
    keyword as the application wrote it, with the prefix it used."""
    known = adapter.known_parameters()
    if known is None:
        return
    for name in names:
        if name in known:
            continue
        key = spelled[code, name]
        prefix = key[: len(key) - len(name)]
        close = difflib.get_close_matches(name, sorted(known), 1, 0.6)
        hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
        # The value is not shown: a misspelt name may hold a password.
        raise ConfigurationError(
            f"setting {key!r}: {adapter.name} has no "
            f"connection parameter {name!r}{hint}"
        )


def _sort(
    registry: SettingsRegistry,
    key: str,
    value: Any,
    wrapper: dict[str, Any],
    own: dict[str, dict[str, Any]],
    spelled: dict[tuple[str, str], str],
    driver: dict[str, Any],
) -> None:
    kind, code = registry.kind(key)
    if kind == _DRIVER:
        driver[key] = value
    elif kind == _WRAPPER:
        wrapper[key] = value
    elif kind == _PREFIXED:
        split = registry.split_prefix(key)
        assert split is not None
        own.setdefault(code, {})[split[1]] = value
        spelled[code, split[1]] = key
    elif code:
        # The value is not shown: the name after the prefix may be a setting
        # that holds a secret.
        raise ConfigurationError(
            f"setting {key!r} is not allowed: a plugin's prefix applies to "
            "driver arguments only"
        )
    else:
        raise registry.unknown(key)
