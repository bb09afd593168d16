"""The settings registry and the validated settings of one connection.

:class:`SettingsRegistry` merges the core's settings with those every
registered plugin declares (one per runtime; :data:`SETTINGS` is a read-only
view of it), classifies the keywords of ``connect()`` and suggests the right
name for a typo; :func:`settings_table_markdown` renders it as the README's
table. :class:`Settings` holds the values of one connection. Imported
through :mod:`bluegreen.settings`.
"""

from __future__ import annotations

import collections.abc
import difflib
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._conninfo import MASK
from ._declarations import check_declarations
from ._setting import CORE_SETTINGS, Setting, parse_plugins
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._plugin_registry import PluginRegistry


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
