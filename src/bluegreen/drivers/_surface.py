"""The public surface of a driver's connections and cursors, name by name.

Every public attribute of a driver's connection and cursor classes is
classified here, so that the proxies know which ones reach the network and
must go through the plugins' ``execute`` hooks. ``tests/unit/test_surface.py``
enumerates the driver classes and fails on any name left out, so a method a
new driver release adds cannot slip through unhooked.

The kinds:

``PROXY``
    the proxy class defines it itself (``execute``, ``commit``, ``cursor``...).
``CALL``
    a network round trip: the call goes through the hook.
``UNDO``
    a call that only undoes work (a rollback): it goes through the hook, but
    a wait that runs out sends it anyway instead of failing, so that the
    driver's own outcome reaches the application.
``CONTEXT``
    returns a context manager whose ``__enter__`` talks to the server
    (``copy()``, ``pipeline()``): entering goes through the hook.
``TRANSACTION``
    returns a transaction context manager: entering (BEGIN) and leaving
    (COMMIT, or ROLLBACK as an ``UNDO``) go through the hook.
``ITER``
    returns a lazy iterator that sends its query on the first ``next()``
    (``stream()``, ``notifies()``): that first step goes through the hook.
``GET``
    a property whose read runs a query (mysql-connector's ``database``).
``GET_SET``
    a property whose read and assignment both run a query.
``SET``
    a plain attribute or property whose assignment runs a query.
``STREAM``
    network-bound on streaming cursors only (server-side, unbuffered),
    local on buffered ones, like ``fetchone``.
``LOCAL``
    no network, or a call that must never wait: ``close()`` and
    ``cancel()`` have to work while traffic is suspended.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Kind", "Surface"]


class Kind(enum.Enum):
    PROXY = "defined by the proxy"
    CALL = "network call, hooked"
    UNDO = "rollback, hooked, sent anyway when a wait runs out"
    CONTEXT = "context manager, entering hooked"
    TRANSACTION = "transaction context manager, entering and leaving hooked"
    ITER = "lazy iterator, first step hooked"
    GET = "property read runs a query, hooked"
    GET_SET = "property read and assignment run queries, hooked"
    SET = "assignment runs a query, hooked"
    STREAM = "network on streaming cursors only, hooked there"
    LOCAL = "no network, or must never wait; not hooked"


#: The kinds whose call (or first step) is hooked.
_HOOKED = frozenset(
    {
        Kind.CALL,
        Kind.UNDO,
        Kind.CONTEXT,
        Kind.TRANSACTION,
        Kind.ITER,
        Kind.GET,
        Kind.GET_SET,
        Kind.STREAM,
    }
)


def _freeze(table: Mapping[str, Kind]) -> Mapping[str, Kind]:
    return MappingProxyType(dict(table))


@dataclass(frozen=True)
class Surface:
    """The classified public names of one driver's connection and cursors.

    ``connection`` and ``cursor`` map every public name to its :class:`Kind`;
    ``notes`` says why a name that talks to the network is nevertheless
    ``LOCAL`` (for the inventory in docs/architecture.md).
    """

    connection: Mapping[str, Kind]
    cursor: Mapping[str, Kind]
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "connection", _freeze(self.connection))
        object.__setattr__(self, "cursor", _freeze(self.cursor))
        conn_hooks = {
            n: k
            for n, k in self.connection.items()
            if k in _HOOKED and k is not Kind.STREAM
        }
        object.__setattr__(self, "connection_hooks", _freeze(conn_hooks))
        setters = frozenset(
            n for n, k in self.connection.items() if k in (Kind.SET, Kind.GET_SET)
        )
        object.__setattr__(self, "connection_setters", setters)
        cur_hooks = {n: k for n, k in self.cursor.items() if k in _HOOKED}
        object.__setattr__(self, "cursor_hooks", _freeze(cur_hooks))

    #: Names reached by delegation whose use goes through the hook.
    connection_hooks: Mapping[str, Kind] = field(init=False, repr=False)
    #: Names whose assignment goes through the hook.
    connection_setters: frozenset[str] = field(init=False, repr=False)
    cursor_hooks: Mapping[str, Kind] = field(init=False, repr=False)

    def kind(self, owner: str, name: str) -> Kind | None:
        """The kind of ``name`` on ``owner`` (``"connection"`` or ``"cursor"``)."""
        table = self.connection if owner == "connection" else self.cursor
        return table.get(name)


def table(**groups: tuple[str, ...]) -> dict[str, Kind]:
    """Build a name -> kind table from ``KIND_NAME=("name", ...)`` groups."""
    out: dict[str, Kind] = {}
    for kind_name, names in groups.items():
        kind = Kind[kind_name]
        for name in names:
            if name in out:
                raise ValueError(f"{name!r} is classified twice")
            out[name] = kind
    return out


#: What every PEP 249 connection proxy defines itself.
PROXY_CONNECTION = (
    "autocommit",
    "close",
    "commit",
    "cursor",
    "rollback",
    "driver_connection",
    "driver_adapter",
    "wrapper_config",
    "wrapper_settings",
    "wrapper_pipeline",
)
#: What every PEP 249 cursor proxy defines itself.
PROXY_CURSOR = (
    "arraysize",
    "callproc",
    "close",
    "connection",
    "description",
    "driver_cursor",
    "execute",
    "executemany",
    "fetchall",
    "fetchmany",
    "fetchone",
    "lastrowid",
    "nextset",
    "rowcount",
    "setinputsizes",
    "setoutputsize",
)
#: The PEP 249 exception classes drivers expose on connections.
EXCEPTION_ATTRS = (
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
)


def inventory_markdown(driver: str, surface: Surface) -> str:
    """The inventory of ``surface`` as Markdown, for docs/architecture.md
    (a test checks that the document carries it as generated here)."""
    lines = [f"#### {driver}", "", "| kind | connection | cursor |", "|---|---|---|"]
    for kind in Kind:
        if kind is Kind.PROXY:
            continue
        conn = sorted(n for n, k in surface.connection.items() if k is kind)
        cur = sorted(n for n, k in surface.cursor.items() if k is kind)
        if kind is Kind.LOCAL:
            conn = [n for n in conn if n in surface.notes]
            cur = [n for n in cur if n in surface.notes]
        if not conn and not cur:
            continue
        lines.append(
            f"| {kind.value} | {', '.join(f'`{n}`' for n in conn)} "
            f"| {', '.join(f'`{n}`' for n in cur)} |"
        )
    notes = sorted(surface.notes.items())
    if notes:
        lines.append("")
        lines.extend(f"- `{name}`: {text}." for name, text in notes)
    return "\n".join(lines) + "\n"
