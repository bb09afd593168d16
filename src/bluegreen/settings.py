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
"""

from __future__ import annotations

import collections.abc
import difflib
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from ._conninfo import MASK, mask_value, masked_items, split_conninfo
from .drivers.base import DriverAdapter, DriverParams, Endpoint, ReadOnlyDict
from .errors import ConfigurationError, ProgrammingError

if TYPE_CHECKING:
    from .pipeline import PluginRegistry

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


#: The type of settings that take a function (``collections.abc.Callable``).
CALLABLE = cast(type, collections.abc.Callable)


def _type_name(kind: object) -> str:
    return getattr(kind, "__qualname__", None) or repr(kind)


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

DIALECTS = (
    "aurora-postgres",
    "rds-postgres",
    "aurora-mysql",
    "rds-mysql",
    "postgres",
    "mysql",
)


#: The types a setting may have (and :data:`CALLABLE`).
_TYPES: tuple[type, ...] = (str, int, float, bool)


@dataclass(frozen=True)
class Setting:
    """The description of one wrapper setting.

    ``type`` is ``str``, ``int``, ``float``, ``bool`` or :data:`CALLABLE`;
    ``minimum`` (the lowest value allowed) applies to ``int`` and ``float``
    settings, ``choices`` to ``str`` ones. Anything else is refused here,
    when the setting is declared, with a
    :class:`~bluegreen.errors.ConfigurationError`. A ``secret`` setting's
    value is never shown: ``***`` stands for it in every ``repr`` and
    message of the wrapper.
    """

    name: str
    type: type
    default: Any
    doc: str
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    secret: bool = False
    #: How the documentation shows the default, when not the value itself.
    shown_default: str | None = None
    #: How the documentation and errors describe the allowed values, when
    #: the type alone does not say it well.
    allowed_text: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(
                f"a setting's name must be a non-empty string, not {self.name!r}"
            )
        if self.type is not CALLABLE and self.type not in _TYPES:
            raise ConfigurationError(
                f"setting {self.name!r}: type {_type_name(self.type)} is not "
                "supported; a setting is a str, int, float, bool or "
                "bluegreen.settings.CALLABLE"
            )
        if self.minimum is not None and self.type not in (int, float):
            raise ConfigurationError(
                f"setting {self.name!r}: minimum applies to int and float "
                f"settings only, not to a {_type_name(self.type)}"
            )
        if self.choices is not None and self.type is not str:
            raise ConfigurationError(
                f"setting {self.name!r}: choices apply to str settings only, "
                f"not to a {_type_name(self.type)}"
            )

    def shown(self, value: object) -> object:
        """``value`` as the wrapper shows it: ``***`` for a secret setting
        (or one whose name says it holds a secret)."""
        return MASK if self.secret else mask_value(self.name, value)

    def documented_default(self) -> str:
        """The default as the documentation shows it."""
        if self.secret:
            return "***"
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "`None`"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"

    def allowed(self) -> str:
        """Describe the allowed values in words (for errors and docs)."""
        if self.allowed_text is not None:
            return self.allowed_text
        if self.type is CALLABLE:
            return "a callable taking the connection, or None (keyword argument only)"
        if self.choices:
            text = "one of " + ", ".join(self.choices)
            return text + " (or empty)" if self.optional else text
        if self.type is bool:
            return "a boolean (true/false, 1/0, yes/no, on/off)"
        if self.type is int:
            if self.minimum is None:
                return "an integer"
            if self.minimum == 1:
                return "an integer > 0"
            return f"an integer >= {self.minimum}"
        if self.type is float:
            if self.minimum is None:
                return "a finite number"
            return f"a finite number >= {self.minimum}"
        return "a string"

    def convert(self, value: object) -> Any:
        """Convert and validate *value*; raise ConfigurationError if not allowed."""
        if self.type is CALLABLE:
            if value is None or callable(value):
                return value
            raise self._error(value)
        if self.optional and (value is None or value == ""):
            return None
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str):
                low = value.strip().lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
            raise self._error(value)
        if self.type is int:
            if isinstance(value, bool):
                raise self._error(value)
            if isinstance(value, int):
                number = value
            elif isinstance(value, str):
                try:
                    number = int(value.strip())
                except ValueError:
                    raise self._error(value) from None
            else:
                raise self._error(value)
            if self.minimum is not None and number < self.minimum:
                raise self._error(value)
            return number
        if self.type is float:
            return self._float(value)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self._error(value)
        text = str(value)
        if self.choices is not None:
            text = text.strip().lower()
            if text not in self.choices:
                raise self._error(value)
        return text

    def _float(self, value: object) -> float:
        if isinstance(value, bool):
            raise self._error(value)
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise self._error(value) from None
        else:
            raise self._error(value)
        if not math.isfinite(number) or (
            self.minimum is not None and number < self.minimum
        ):
            raise self._error(value)
        return number

    def _error(self, value: object) -> ConfigurationError:
        shown = MASK if self.secret else repr(mask_value(self.name, value))
        return ConfigurationError(
            f"invalid value {shown} for setting {self.name!r}: "
            f"expected {self.allowed()}"
        )


#: The settings of the core; every other setting is declared by a plugin.
CORE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "plugins",
        str,
        "bg",
        "Plugins to load, in order; empty for none. An unknown code is an "
        "error that lists the known ones.",
        allowed_text="comma-separated plugin codes",
    ),
    Setting(
        "wrapper_dialect",
        str,
        None,
        "Deployment type; detected from the server (once per host per "
        "process) when not set.",
        choices=DIALECTS,
        optional=True,
        shown_default="(detect)",
    ),
)


def check_declarations(
    code: str,
    declared: object,
    prefixes: object,
    others: Mapping[str, tuple[tuple[Setting, ...], tuple[str, ...]]],
) -> None:
    """Refuse what plugin ``code`` declares (``Plugin.settings``,
    ``Plugin.param_prefixes``) if it would break other connections: a
    setting without the plugin's code and ``_``, a setting named twice or
    already declared by the core or by one of ``others`` (plugin code ->
    its settings and prefixes), a prefix that is not a non-empty string or
    that another plugin declares. Raise :class:`ConfigurationError` naming
    the plugin, the setting or prefix, and the rule."""
    if not isinstance(declared, (tuple, list)):
        raise ConfigurationError(
            f"plugin {code!r}: settings must be a tuple of bluegreen.Setting, "
            f"not {type(declared).__name__}"
        )
    owners = {s.name: "the core" for s in CORE_SETTINGS}
    for other, (settings, _) in others.items():
        if other != code:
            owners.update((s.name, f"plugin {other!r}") for s in settings)
    stem = code.replace("-", "_") + "_"
    seen: set[str] = set()
    for setting in declared:
        if not isinstance(setting, Setting):
            raise ConfigurationError(
                f"plugin {code!r}: settings must be a tuple of bluegreen.Setting, "
                f"and it holds {setting!r}"
            )
        name = setting.name
        if not name.startswith(stem) or name == stem:
            raise ConfigurationError(
                f"plugin {code!r} declares setting {name!r}: a plugin's "
                f"settings must start with {stem!r} (its code and '_')"
            )
        if name in seen:
            raise ConfigurationError(
                f"plugin {code!r} declares setting {name!r} twice: setting "
                "names must be unique"
            )
        if name in owners:
            raise ConfigurationError(
                f"plugin {code!r} declares setting {name!r}, which "
                f"{owners[name]} declares already: setting names must be unique"
            )
        seen.add(name)
    if not isinstance(prefixes, (tuple, list)):
        raise ConfigurationError(
            f"plugin {code!r}: param_prefixes must be a tuple of strings, "
            f"not {type(prefixes).__name__}"
        )
    taken = {
        prefix: other
        for other, (_, own) in others.items()
        if other != code
        for prefix in own
    }
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                f"plugin {code!r} declares the driver-argument prefix "
                f"{prefix!r}: a prefix must be a non-empty string"
            )
        if prefix in taken:
            raise ConfigurationError(
                f"plugin {code!r} declares the driver-argument prefix "
                f"{prefix!r}, which plugin {taken[prefix]!r} declares already: "
                "prefixes must be unique"
            )


# What a keyword is: a driver argument, a wrapper setting, a driver argument
# for the connections a plugin opens itself (a prefixed one), or an error (a
# misspelt or misplaced wrapper setting).
_DRIVER, _WRAPPER, _PREFIXED, _INVALID = range(4)


class SettingsRegistry:
    """Every setting: the core's and those each registered plugin declares.

    A plugin class declares its settings in ``settings`` (names start with
    its code and ``_``) and the prefixes of driver arguments meant for the
    connections it opens itself in ``param_prefixes``. The registry reads
    them from every registered plugin (importing lazily registered ones) the
    first time it is asked, and again after a registration changes.
    Thread-safe; one per runtime (``runtime().settings``).
    """

    def __init__(self, plugins: PluginRegistry) -> None:
        self._plugins = plugins
        self._lock = threading.Lock()
        self._version = -1
        self._settings: dict[str, Setting] = {}
        #: setting name -> code of the plugin that declares it ("" core)
        self._owners: dict[str, str] = {}
        #: driver-argument prefix -> plugin code, longest first
        self._prefixes: tuple[tuple[str, str], ...] = ()
        #: plugin code -> why its declarations could not be read
        self._failed: dict[str, str] = {}
        #: keyword -> (kind, plugin code of a prefixed keyword); few names
        #: (they come from the application's code), classified once
        self._kinds: dict[str, tuple[int, str]] = {}
        self._defaults: Settings | None = None

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def defaults(self) -> Settings:
        """The settings of a connection that gives none (one shared object)."""
        found = self._defaults
        if found is None:
            found = self._defaults = Settings()
        return found

    def _fresh(self) -> None:
        """Read the plugins' declarations again if a registration changed."""
        version = self._plugins.version
        if version == self._version:
            return
        with self._lock:
            if version == self._version:
                return
            settings = {s.name: s for s in CORE_SETTINGS}
            owners = dict.fromkeys(settings, "")
            prefixes: list[tuple[str, str]] = []
            failed: dict[str, str] = {}
            accepted: dict[str, tuple[tuple[Setting, ...], tuple[str, ...]]] = {}
            for code in self._plugins.codes():
                # The plugin registry checked each declaration when the plugin
                # was registered or imported; checked again here because a
                # class attribute may have changed since. A plugin whose
                # declarations fail is left out (as one that cannot be
                # imported), instead of failing every connection.
                try:
                    declared, own_prefixes = self._plugins.declarations(code)
                    check_declarations(code, declared, own_prefixes, accepted)
                except ConfigurationError as exc:
                    failed[code] = str(exc)
                    continue
                accepted[code] = (declared, own_prefixes)
                for setting in declared:
                    settings[setting.name] = setting
                    owners[setting.name] = code
                for prefix in own_prefixes:
                    prefixes.append((prefix, code))
            self._settings = settings
            self._owners = owners
            self._prefixes = tuple(sorted(prefixes, key=lambda p: -len(p[0])))
            self._failed = failed
            self._kinds = {}
            self._defaults = None
            self._version = version

    def all(self) -> Mapping[str, Setting]:
        """Every setting by name: the core's first, then each plugin's in
        registration and declaration order."""
        self._fresh()
        return MappingProxyType(self._settings)

    def get(self, name: str) -> Setting | None:
        self._fresh()
        return self._settings.get(name)

    def owner(self, name: str) -> str:
        """The code of the plugin that declares ``name`` ("" for the core)."""
        self._fresh()
        return self._owners[name]

    def prefixes(self) -> tuple[tuple[str, str], ...]:
        """The declared driver-argument prefixes, with their plugin codes."""
        self._fresh()
        return self._prefixes

    def split_prefix(self, key: str) -> tuple[str, str] | None:
        """``(code, name)`` if ``key`` carries a plugin's prefix."""
        for prefix, code in self.prefixes():
            if key.startswith(prefix):
                return code, key[len(prefix) :]
        return None

    def kind(self, key: str) -> tuple[int, str]:
        """Classify a keyword of ``connect()`` (memoised per name)."""
        self._fresh()
        found = self._kinds.get(key)
        if found is None:
            found = self._classify(key)
            if len(self._kinds) >= 4096:
                self._kinds = {}
            self._kinds[key] = found
        return found

    def _classify(self, key: str) -> tuple[int, str]:
        if key in self._settings:
            return _WRAPPER, ""
        split = self.split_prefix(key)
        if split is not None:
            code, stripped = split
            bad = not stripped or stripped in self._settings
            return (_INVALID if bad or self.wrapperish(stripped) else _PREFIXED), code
        return (_INVALID if self.wrapperish(key) else _DRIVER), ""

    def wrapperish(self, name: str) -> bool:
        """Whether ``name`` looks like a wrapper setting (so that a typo is
        an error instead of a driver argument): it starts with a plugin's
        code, or with ``wrapper``, or is close to ``plugins``."""
        low = name.lower().replace("-", "_")
        if low.startswith("wrapper_"):
            return True
        for code in self._plugins.codes():
            if low.startswith(code.lower().replace("-", "_") + "_"):
                return True
        # Cheap guard first: this runs for every driver argument at connect time.
        if 4 <= len(name) <= 10 and name[:2].lower() in ("pl", "pu"):
            return bool(difflib.get_close_matches(low, ["plugins"], 1, 0.75))
        return False

    def unknown(self, name: str) -> ConfigurationError:
        """The error for a keyword that looks like a setting but is none.

        It never shows the value: a misspelt name may hold a secret that
        neither the name nor the setting it was meant for gives away."""
        self._fresh()
        close = difflib.get_close_matches(
            name.replace("-", "_"), list(self._settings), 1, 0.6
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        broken = "".join(
            f" (plugin {code!r} could not be loaded, so its settings are "
            f"unknown: {why})"
            for code, why in self._failed.items()
        )
        return ConfigurationError(
            f"unknown wrapper setting {name!r}{hint}; known settings: "
            f"{', '.join(self._settings)}{broken}"
        )


def _registry() -> SettingsRegistry:
    from ._runtime import runtime

    return runtime().settings


class _Settings(collections.abc.Mapping[str, Setting]):
    """A read-only view of the current runtime's settings registry."""

    def __getitem__(self, name: str) -> Setting:
        return _registry().all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_registry().all())

    def __len__(self) -> int:
        return len(_registry().all())

    def __repr__(self) -> str:
        return f"<settings {', '.join(self)}>"


#: Every wrapper setting by name (read-only; the current runtime's registry).
SETTINGS: Mapping[str, Setting] = _Settings()


def iter_settings() -> Iterator[Setting]:
    """Iterate over the registered settings in documentation order."""
    return iter(_registry().all().values())


def settings_table_markdown() -> str:
    """Render the settings registry as the README's Markdown table."""
    lines = [
        "| Setting | Type | Default | Allowed | Description |",
        "|---|---|---|---|---|",
    ]
    for s in iter_settings():
        lines.append(
            f"| `{s.name}` | {s.type.__name__} | {s.documented_default()} "
            f"| {s.allowed()} | {s.doc} |"
        )
    return "\n".join(lines) + "\n"


_NOT_GIVEN: Any = object()


class Settings:
    """The wrapper settings of one connection, validated and read-only.

    Every setting is an attribute (``settings.bg_id``): the value given, or
    the setting's default. ``Settings(**values)`` takes values already
    converted (:func:`parse_config` converts what the application passes);
    a name that no registered plugin declares is a
    :class:`~bluegreen.errors.ConfigurationError`.
    """

    def __init__(self, **values: Any) -> None:
        registry = _registry()
        given: dict[str, Any] = {}
        for name, value in values.items():
            setting = registry.get(name)
            if setting is None:
                raise registry.unknown(name)
            if name == "plugins":
                if isinstance(value, str):
                    value = parse_plugins(value)
                value = tuple(value)
                if value == ("bg",):
                    continue
            elif value == setting.default and type(value) is type(setting.default):
                continue
            given[name] = value
        d = self.__dict__
        d["_given"] = given
        d["plugins"] = given.get("plugins", ("bg",))
        d.update(given)

    def __getattr__(self, name: str) -> Any:
        # Only for names not set yet: a setting's default, kept once read.
        if name.startswith("__"):
            raise AttributeError(name)
        setting = _registry().get(name)
        if setting is None:
            raise AttributeError(
                f"no wrapper setting {name!r} (is the plugin that declares it "
                "registered?)"
            )
        self.__dict__[name] = setting.default
        return setting.default

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Settings are read-only")

    def given(self) -> Mapping[str, Any]:
        """The settings that differ from their defaults."""
        return MappingProxyType(self.__dict__["_given"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return bool(self.__dict__["_given"] == other.__dict__["_given"])

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.__dict__["_given"].items(), key=str)))

    def __repr__(self) -> str:
        registry = _registry()
        items = []
        for name, value in self.__dict__["_given"].items():
            setting = registry.get(name)
            # A setting no longer registered might have been a secret one.
            shown = MASK if setting is None else setting.shown(value)
            items.append(f"{name}={shown!r}")
        return f"Settings({', '.join(items)})"


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


def parse_plugins(value: str) -> tuple[str, ...]:
    """Split the ``plugins`` setting into codes; duplicates are an error."""
    codes = tuple(c for c in (p.strip() for p in value.split(",")) if c)
    if len(set(codes)) != len(codes):
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        raise ConfigurationError(
            f"invalid value {value!r} for setting 'plugins': "
            f"duplicate plugin code(s) {', '.join(dupes)}"
        )
    return codes


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
