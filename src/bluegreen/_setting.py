"""The description of one wrapper setting and the conversion of its values.

:class:`Setting` says a setting's name, type, default, allowed values and
one-line doc, and converts what an application passes into a validated
value; :data:`CORE_SETTINGS` are the core's two settings (``plugins``,
``wrapper_dialect``). Every other setting is declared by the plugin that uses
it (``Plugin.settings``). Imported through :mod:`bluegreen.settings`.
"""

from __future__ import annotations

import collections.abc
import math
from dataclasses import dataclass
from typing import Any, cast

from ._conninfo import MASK, mask_value
from .errors import ConfigurationError

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
        if self.type is int or self.type is float:
            return self._number(value, self.type)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self._error(value)
        text = str(value)
        if self.choices is not None:
            text = text.strip().lower()
            if text not in self.choices:
                raise self._error(value)
        return text

    def _number(
        self, value: object, kind: collections.abc.Callable[[Any], int | float]
    ) -> int | float:
        """An int or float setting's value: a number of that kind (an int
        is a float too, never the other way), or a string spelling one;
        never a boolean; finite, and at least ``minimum`` when given."""
        if isinstance(value, bool):
            raise self._error(value)
        number: int | float
        if isinstance(value, int) or (kind is float and isinstance(value, float)):
            number = kind(value)
        elif isinstance(value, str):
            try:
                number = kind(value.strip())
            except ValueError:
                raise self._error(value) from None
        else:
            raise self._error(value)
        if isinstance(number, float) and not math.isfinite(number):
            raise self._error(value)
        if self.minimum is not None and number < self.minimum:
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
