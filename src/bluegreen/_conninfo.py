"""Small helpers for connection parameters: secret masking and libpq conninfo.

The libpq key/value tokenizer follows the rules of ``PQconnectdb``: pairs are
``key = value`` separated by white space; a value is either a run of
non-blank characters or a single-quoted string; inside both a backslash
escapes the next character. URIs (``postgresql://`` / ``postgres://``) are
handled with :mod:`urllib.parse`, keeping the raw text of every query
parameter bluegreen does not consume.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import ProgrammingError

__all__ = [
    "MASK",
    "is_secret_key",
    "is_uri",
    "mask_conninfo",
    "mask_value",
    "masked_items",
    "split_conninfo",
    "tokenize_conninfo",
]

MASK = "***"

_SECRET_NAMES = frozenset({"password", "passwd", "sslpassword", "token", "pass"})
_SECRET_PARTS = ("password", "secret", "token")


def is_secret_key(name: str) -> bool:
    """Tell whether a parameter called *name* holds a secret."""
    low = name.lower()
    return low in _SECRET_NAMES or any(part in low for part in _SECRET_PARTS)


def mask_value(name: str, value: object) -> object:
    """Return *value*, or ``***`` if *name* is a secret parameter."""
    if is_secret_key(name):
        return MASK
    if isinstance(value, str) and is_uri(value):
        return mask_conninfo(value)
    return value


def masked_items(params: Mapping[str, Any]) -> dict[str, Any]:
    """Copy *params* with every secret value replaced by ``***``."""
    return {k: mask_value(k, v) for k, v in params.items()}


def is_uri(conninfo: str) -> bool:
    """Tell whether *conninfo* is a libpq connection URI."""
    return conninfo.startswith(("postgresql://", "postgres://"))


def tokenize_conninfo(conninfo: str) -> list[tuple[str, str]]:
    """Split a libpq ``key=value`` string into ``(key, value)`` pairs.

    Raise :class:`~bluegreen.errors.ProgrammingError` on a malformed string
    (the message never contains the values).
    """
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(conninfo)
    while True:
        while i < n and conninfo[i].isspace():
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and conninfo[i] != "=" and not conninfo[i].isspace():
            i += 1
        key = conninfo[start:i]
        while i < n and conninfo[i].isspace():
            i += 1
        if i >= n or conninfo[i] != "=":
            raise ProgrammingError(
                f"invalid connection string: missing '=' after {key!r}"
            )
        i += 1
        while i < n and conninfo[i].isspace():
            i += 1
        chars: list[str] = []
        if i < n and conninfo[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ProgrammingError(
                        f"invalid connection string: unterminated quote in {key!r}"
                    )
                c = conninfo[i]
                if c == "\\" and i + 1 < n:
                    chars.append(conninfo[i + 1])
                    i += 2
                elif c == "'":
                    i += 1
                    break
                else:
                    chars.append(c)
                    i += 1
        else:
            while i < n and not conninfo[i].isspace():
                c = conninfo[i]
                if c == "\\" and i + 1 < n:
                    chars.append(conninfo[i + 1])
                    i += 2
                else:
                    chars.append(c)
                    i += 1
        pairs.append((key, "".join(chars)))


def split_conninfo(
    conninfo: str, wanted: Callable[[str], bool]
) -> tuple[str, list[tuple[str, str]]]:
    """Remove the parameters whose key satisfies *wanted* from *conninfo*.

    Return the remaining conninfo (unchanged text if nothing was removed) and
    the removed ``(key, value)`` pairs, values unquoted/percent-decoded.
    """
    if is_uri(conninfo):
        return _split_uri(conninfo, wanted)
    pairs = tokenize_conninfo(conninfo)
    taken = [(k, v) for k, v in pairs if wanted(k)]
    if not taken:
        return conninfo, []
    from psycopg.conninfo import make_conninfo

    rest = {k: v for k, v in pairs if not wanted(k)}
    return (make_conninfo("", **rest) if rest else ""), taken


def _split_uri(
    uri: str, wanted: Callable[[str], bool]
) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(uri)
    if not parts.query:
        return uri, []
    kept: list[str] = []
    taken: list[tuple[str, str]] = []
    for segment in parts.query.split("&"):
        key, _, value = segment.partition("=")
        key = unquote(key)
        if wanted(key):
            taken.append((key, unquote(value)))
        elif segment:
            kept.append(segment)
    if not taken:
        return uri, []
    rebuilt = parts._replace(query="&".join(kept))
    return urlunsplit(rebuilt), taken


# The userinfo of a libpq URI runs to the first "@" before any "/" (libpq
# looks no further, and reads "?" and "#" there as part of the password).
_URI_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:@/]*):[^@/]*@")


def mask_conninfo(conninfo: str) -> str:
    """Return *conninfo* with passwords and other secrets replaced by ``***``."""
    if is_uri(conninfo):
        masked = _URI_PASSWORD.sub(rf"\1:{MASK}@", conninfo)
        # libpq reads everything after the first "?" as "&"-separated
        # parameters: there is no fragment, a "#" belongs to the value.
        head, sep, query = masked.partition("?")
        if not sep:
            return masked
        segments = []
        for segment in query.split("&"):
            key, eq, _ = segment.partition("=")
            if eq and is_secret_key(unquote(key)):
                segment = f"{key}={MASK}"
            segments.append(segment)
        return f"{head}?{'&'.join(segments)}"
    try:
        pairs = tokenize_conninfo(conninfo)
    except ProgrammingError:
        return "<unparsable connection string>"
    return " ".join(f"{k}={MASK if is_secret_key(k) else v}" for k, v in pairs)
