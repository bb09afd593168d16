"""Every wrapper setting: name, type, default, allowed values and a one-line doc.

:data:`SETTINGS` is the single registry; :func:`settings_table_markdown`
renders it, and ``tests/unit/test_readme.py`` checks the README's table
against it. :func:`parse_config` runs once per
:func:`bluegreen.connect` call: it separates wrapper settings from driver
arguments (also inside a psycopg conninfo string), validates them into an
immutable :class:`Settings` and collects the ``blue-green-monitoring-``
settings that apply to monitoring connections only.
"""

from __future__ import annotations

import collections.abc
import difflib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

from ._conninfo import mask_value, masked_items, split_conninfo
from ._log import warnings
from ._version import __version__
from .drivers.base import DriverAdapter, DriverParams, Endpoint, ReadOnlyDict
from .errors import ConfigurationError, ProgrammingError

__all__ = [
    "MONITORING_PREFIXES",
    "SETTINGS",
    "ConnectionConfig",
    "Setting",
    "Settings",
    "iter_settings",
    "parse_config",
    "settings_table_markdown",
]

logger = logging.getLogger(__name__)

#: Prefixes of settings that apply only to monitoring connections. The
#: underscore form exists because Python keyword arguments cannot hold dashes.
MONITORING_PREFIXES = ("blue-green-monitoring-", "blue_green_monitoring_")
_PREFIX_LEN = len(MONITORING_PREFIXES[0])

#: The type of settings that take a function (``collections.abc.Callable``).
CALLABLE = cast(type, collections.abc.Callable)

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


@dataclass(frozen=True)
class Setting:
    """The description of one wrapper setting."""

    name: str
    type: type
    default: Any
    doc: str
    minimum: int | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    secret: bool = False

    def allowed(self) -> str:
        """Describe the allowed values in words (for errors and docs)."""
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
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self._error(value)
        text = str(value)
        if self.choices is not None:
            text = text.strip().lower()
            if text not in self.choices:
                raise self._error(value)
        return text

    def _error(self, value: object) -> ConfigurationError:
        shown = "***" if self.secret else repr(mask_value(self.name, value))
        return ConfigurationError(
            f"invalid value {shown} for setting {self.name!r}: "
            f"expected {self.allowed()}"
        )


_REGISTRY: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("plugins", str, "bg", "Comma-separated plugin codes; empty for none."),
        Setting(
            "wrapper_dialect",
            str,
            None,
            "Deployment type; detected from the server when not set.",
            choices=DIALECTS,
            optional=True,
        ),
        Setting("bg_id", str, "1", "Identifies one blue/green deployment."),
        Setting(
            "bg_connect_timeout_ms",
            int,
            30000,
            "Longest wait for a connection or call while traffic is suspended.",
            minimum=0,
        ),
        Setting(
            "bg_interval_baseline_ms",
            int,
            60000,
            "Status check interval when no switchover is near.",
            minimum=1,
        ),
        Setting(
            "bg_interval_increased_ms",
            int,
            1000,
            "Status check interval once a deployment exists.",
            minimum=1,
        ),
        Setting(
            "bg_interval_high_ms",
            int,
            100,
            "Status check interval during a switchover.",
            minimum=1,
        ),
        Setting(
            "bg_switchover_timeout_ms",
            int,
            180000,
            "After this long, waiting ends and green names are no longer rejected.",
            minimum=1,
        ),
        Setting(
            "bg_suspend_new_blue_connections",
            bool,
            False,
            "Suspend new blue connections while the switchover is in progress.",
        ),
        Setting(
            "bg_reconnect",
            bool,
            True,
            "Reopen, through the plugin's routing, a connection the switchover "
            "dropped while idle, and run the call there.",
        ),
        Setting(
            "bg_on_reconnect",
            CALLABLE,
            None,
            "Called with the connection after each transparent reconnect, to "
            "re-run per-connection setup.",
        ),
        Setting(
            "bg_client_tag",
            str,
            f"bluegreen-{__version__}",
            "Text passed to the PostgreSQL blue/green metadata functions.",
        ),
    )
}

#: The registry of wrapper settings, by name (read-only).
SETTINGS: Mapping[str, Setting] = MappingProxyType(_REGISTRY)


def iter_settings() -> Iterator[Setting]:
    """Iterate over the registered settings in documentation order."""
    return iter(_REGISTRY.values())


def settings_table_markdown() -> str:
    """Render the settings registry as a Markdown table for the README."""
    lines = [
        "| Setting | Type | Default | Allowed | Description |",
        "|---|---|---|---|---|",
    ]
    for s in iter_settings():
        default = "***" if s.secret else ("(none)" if s.default is None else s.default)
        if isinstance(default, bool):
            default = str(default).lower()
        lines.append(
            f"| `{s.name}` | {s.type.__name__} | `{default}` | {s.allowed()} "
            f"| {s.doc} |"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Settings:
    """The wrapper settings of one connection, validated."""

    plugins: tuple[str, ...] = ("bg",)
    wrapper_dialect: str | None = None
    bg_id: str = "1"
    bg_connect_timeout_ms: int = 30000
    bg_interval_baseline_ms: int = 60000
    bg_interval_increased_ms: int = 1000
    bg_interval_high_ms: int = 100
    bg_switchover_timeout_ms: int = 180000
    bg_suspend_new_blue_connections: bool = False
    bg_reconnect: bool = True
    bg_on_reconnect: Callable[[Any], Any] | None = None
    bg_client_tag: str = f"bluegreen-{__version__}"


_DEFAULT_SETTINGS = Settings()


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """Everything parsed from one ``connect()`` call.

    ``params`` are the driver arguments (wrapper settings removed);
    ``monitoring_overrides`` the ``blue-green-monitoring-`` settings with the
    prefix stripped. Everything is read-only: :func:`parse_config` hands the
    same object to every connection made with the same argument objects.
    Secrets are masked in the ``repr``.
    """

    adapter: DriverAdapter
    settings: Settings
    params: DriverParams
    monitoring_overrides: Mapping[str, Any] = field(default_factory=ReadOnlyDict)
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

    def monitoring_params(self) -> DriverParams:
        """Driver parameters for a monitoring connection.

        The application's parameters overridden by the monitoring ones, without
        node-selection settings (libpq ``target_session_attrs``,
        ``load_balance_hosts``) or result-shape settings (row factories,
        cursor classes), with autocommit forced on.
        """
        return self.adapter.monitoring_params(self.params, self.monitoring_overrides)

    def __repr__(self) -> str:
        return (
            f"ConnectionConfig(driver={self.adapter.name!r}, "
            f"settings={self.settings!r}, params={self.params!r}, "
            f"monitoring_overrides={masked_items(self.monitoring_overrides)!r})"
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


def _is_wrapperish(name: str) -> bool:
    """Tell whether *name* looks like a wrapper setting (so a typo is an error)."""
    if name.startswith(("bg_", "bg-", "wrapper_", "wrapper-")):
        return True
    # Cheap guard first: this runs for every driver argument at connect time.
    if 4 <= len(name) <= 10 and name[:2].lower() in ("pl", "pu"):
        return bool(difflib.get_close_matches(name.lower(), ["plugins"], 1, 0.75))
    return False


def _unknown(name: str, value: object) -> ConfigurationError:
    close = difflib.get_close_matches(name.replace("-", "_"), list(_REGISTRY), 1, 0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigurationError(
        f"unknown wrapper setting {name!r} (value {mask_value(name, value)!r})"
        f"{hint} Known settings: {', '.join(_REGISTRY)}"
    )


def _wanted_in_conninfo(key: str) -> bool:
    return _kind(key) != _DRIVER


# What a keyword is: a driver argument, a wrapper setting, a monitoring
# override, or an error (a misspelt or prefixed wrapper setting). Names come
# from the application's code, so there are few; they are classified once.
_DRIVER, _WRAPPER, _MONITORING, _INVALID = range(4)
_kinds: dict[str, int] = {}


def _kind(key: str) -> int:
    kind = _kinds.get(key)
    if kind is None:
        if key in _REGISTRY:
            kind = _WRAPPER
        elif key.startswith(MONITORING_PREFIXES):
            stripped = key[_PREFIX_LEN:]
            invalid = not stripped or stripped in _REGISTRY or _is_wrapperish(stripped)
            kind = _INVALID if invalid else _MONITORING
        else:
            kind = _INVALID if _is_wrapperish(key) else _DRIVER
        if len(_kinds) >= 4096:
            _kinds.clear()
        _kinds[key] = kind
    return kind


class _Parsed:
    """A memo entry: the config parsed from particular argument objects."""

    __slots__ = ("config", "inputs", "recheck_timeout")

    def __init__(
        self, config: ConnectionConfig, inputs: tuple[Any, ...], recheck: bool
    ) -> None:
        self.config = config
        #: The argument objects whose ids make the key, kept alive so that
        #: no other object can take one of those ids while the entry lives.
        self.inputs = inputs
        #: The connect timeout may change (environment) or is missing.
        self.recheck_timeout = recheck


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
        config = entry.config
        if entry.recheck_timeout:
            _check_timeout(config)
        return config
    config = _parse(adapter, conninfo, kwargs)
    recheck = "bg" in config.settings.plugins and _check_timeout(config)
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = _Parsed(config, (conninfo, values), recheck)
    return config


def _parse(
    adapter: DriverAdapter, conninfo: str | None, kwargs: dict[str, Any]
) -> ConnectionConfig:
    wrapper: dict[str, Any] = {}
    monitoring: dict[str, Any] = {}
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
        low = conninfo.lower()
        if "bg" in low or "plugin" in low or "wrapper" in low or "blue" in low:
            remaining, taken = split_conninfo(conninfo, _wanted_in_conninfo)
            for key, value in taken:
                _sort(key, value, wrapper, monitoring, driver)
    for key, value in kwargs.items():
        _sort(key, value, wrapper, monitoring, driver)

    settings = _DEFAULT_SETTINGS
    if wrapper:
        values: dict[str, Any] = {}
        for name, raw in wrapper.items():
            if name == "plugins":
                if not isinstance(raw, str):
                    raise _REGISTRY["plugins"]._error(raw)
                values[name] = parse_plugins(raw)
            else:
                values[name] = _REGISTRY[name].convert(raw)
        settings = Settings(**values)

    if monitoring:
        _check_monitoring_names(adapter, monitoring)
    params = DriverParams(remaining, driver)
    return ConnectionConfig(adapter, settings, params, ReadOnlyDict(monitoring))


def _check_monitoring_names(adapter: DriverAdapter, monitoring: dict[str, Any]) -> None:
    """A ``blue-green-monitoring-`` setting must name a parameter the driver
    knows: the monitors pass it to the driver in the background, where a
    typo would make every monitoring connection fail, quietly."""
    known = adapter.known_parameters()
    if known is None:
        return
    for name in monitoring:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), 1, 0.6)
        hint = f"; did you mean {MONITORING_PREFIXES[0] + close[0]!r}?" if close else ""
        # The value is not shown: a misspelt name may hold a password.
        raise ConfigurationError(
            f"setting {MONITORING_PREFIXES[0] + name!r}: {adapter.name} has no "
            f"connection parameter {name!r}{hint}"
        )


def _sort(
    key: str,
    value: Any,
    wrapper: dict[str, Any],
    monitoring: dict[str, Any],
    driver: dict[str, Any],
) -> None:
    kind = _kind(key)
    if kind == _DRIVER:
        driver[key] = value
    elif kind == _WRAPPER:
        wrapper[key] = value
    elif kind == _MONITORING:
        monitoring[key[_PREFIX_LEN:]] = value
    elif key.startswith(MONITORING_PREFIXES):
        stripped = key[_PREFIX_LEN:]
        raise ConfigurationError(
            f"setting {key!r} (value {mask_value(stripped, value)!r}) is not "
            "allowed: the monitoring prefix applies to driver arguments only"
        )
    else:
        raise _unknown(key, value)


#: The connect-timeout warning is about the bg plugin: it is logged there.
_bg_logger = logging.getLogger("bluegreen.bg")


def _check_timeout(config: ConnectionConfig) -> bool:
    """Warn once per driver and bg_id when there is no connect timeout.

    Return True unless a non-zero timeout is fixed by the parameters alone
    (then a later connection with the same parameters needs no check).
    """
    adapter = config.adapter
    try:
        timeout, fixed = adapter.connect_timeout_info(config.params)
    except Exception:
        return True
    if timeout:
        return not fixed
    if warnings.first(("connect-timeout", adapter.name, config.settings.bg_id)):
        _bg_logger.warning(
            "The bg plugin needs a non-zero connect timeout, but %s has none "
            "(bg_id %r): set %s, or connections may hang during a switchover.",
            adapter.name,
            config.settings.bg_id,
            " or ".join(adapter.timeout_keys),
        )
    return True
