"""The blue/green status model: phases, status rows, monitor observations.

Pure data and parsing, no I/O. The metadata vocabulary is in the facts
sheet, section 2: each row has ``version, endpoint, port, role, status``
(MySQL also ``id`` first); the role says blue (source) or green (target).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ROLE_SOURCE",
    "ROLE_TARGET",
    "Observation",
    "Phase",
    "StatusRow",
    "parse_status_rows",
    "phase_of_status",
]

ROLE_SOURCE = "BLUE_GREEN_DEPLOYMENT_SOURCE"
ROLE_TARGET = "BLUE_GREEN_DEPLOYMENT_TARGET"

#: The only metadata version known; other versions are read as this one.
KNOWN_VERSION = "1.0"


class Phase(enum.IntEnum):
    """Where a blue/green deployment is; ordered as a switchover advances."""

    NOT_CREATED = 0
    CREATED = 1
    PREPARATION = 2
    IN_PROGRESS = 3
    POST = 4
    COMPLETED = 5

    @property
    def active(self) -> bool:
        """True from PREPARATION to POST: routing differs from plain DNS."""
        return Phase.PREPARATION <= self <= Phase.POST


_STATUS_PHASE = {
    "": Phase.NOT_CREATED,
    "AVAILABLE": Phase.CREATED,
    "SWITCHOVER_INITIATED": Phase.PREPARATION,
    "SWITCHOVER_IN_PROGRESS": Phase.IN_PROGRESS,
    "SWITCHOVER_IN_POST_PROCESSING": Phase.POST,
    "SWITCHOVER_COMPLETED": Phase.COMPLETED,
}


def phase_of_status(status: str | None) -> Phase | None:
    """The phase of a metadata status value; None for an undocumented value.

    Absent, NULL and empty statuses mean NOT_CREATED.
    """
    return _STATUS_PHASE.get((status or "").strip().upper())


@dataclass(frozen=True)
class StatusRow:
    """One row of the blue/green metadata, normalised."""

    endpoint: str  #: lowercase host name
    port: int | None
    role: str  #: :data:`ROLE_SOURCE`, :data:`ROLE_TARGET` or another value
    status: str  #: as read (``""`` for NULL)
    version: str = KNOWN_VERSION

    @property
    def phase(self) -> Phase | None:
        """The phase this row's status stands for (None: undocumented status)."""
        return phase_of_status(self.status)

    @property
    def is_source(self) -> bool:
        return self.role == ROLE_SOURCE

    @property
    def is_target(self) -> bool:
        return self.role == ROLE_TARGET


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def parse_status_rows(raw: Iterable[Any], *, has_id: bool) -> list[StatusRow]:
    """Normalise the rows of a status query.

    ``has_id``: the first column is MySQL's ``id`` (skipped). Rows whose
    endpoint is empty are dropped; ports that are not numbers become None.
    """
    rows = []
    for item in raw:
        values = tuple(item.values()) if isinstance(item, Mapping) else tuple(item)
        if has_id:
            values = values[1:]
        version, endpoint, port, role, status = (_text(v) for v in values[:5])
        host = endpoint.strip().lower().rstrip(".")
        if not host:
            continue
        try:
            port_no: int | None = int(port)
        except ValueError:
            port_no = None
        rows.append(
            StatusRow(
                endpoint=host,
                port=port_no,
                role=role.strip().upper(),
                status=status.strip().upper(),
                version=version.strip() or KNOWN_VERSION,
            )
        )
    return rows


@dataclass(frozen=True)
class Observation:
    """What one monitor read in one poll.

    ``rows`` is None when the status query failed (``error`` says why) or
    could not run (no connection). An empty tuple is an empty table.
    ``writers`` are the Aurora topology's writer instance ids and ``instances``
    all its instance ids (empty when there is no topology or it failed).
    """

    role: str  #: ``"blue"`` or ``"green"``: which monitor
    at: float  #: monotonic time of the poll
    rows: tuple[StatusRow, ...] | None = None
    error: str | None = None
    writers: frozenset[str] = field(default_factory=frozenset)
    instances: tuple[str, ...] = ()
    #: The host could not be reached (connect failed or connection lost), as
    #: opposed to a query that failed on a live connection.
    unreachable: bool = False
