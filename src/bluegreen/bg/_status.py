"""What ``bluegreen.bg.status()`` returns, and the log messages a watch
gathers under its condition (logged once it is released)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BlueGreenStatus", "Messages", "SummaryEvent", "log_all"]

logger = logging.getLogger("bluegreen.bg")

#: (level, message, arguments) to log once the condition is released.
Messages = list[tuple[int, str, tuple[Any, ...]]]


def log_all(messages: Messages) -> None:
    """Log what was gathered under the condition (never logged under it)."""
    for level, msg, args in messages:
        logger.log(level, msg, *args)


@dataclass(frozen=True)
class SummaryEvent:
    """One event of the switchover summary."""

    name: str
    timestamp: str  #: ISO 8601 UTC
    offset_ms: int | None  #: from the start of IN_PROGRESS, if it was seen


@dataclass(frozen=True)
class BlueGreenStatus:
    """What the ``bg`` plugin knows about one deployment (see :func:`status`)."""

    bg_id: str
    #: ``NOT_CREATED`` ... ``COMPLETED``, as routing currently follows it.
    phase: str
    #: True once the green topology is known and every blue host is mapped.
    ready: bool
    #: True while monitors run (a supported deployment was found).
    monitoring: bool
    #: blue host name -> (green host name, green IP address).
    mapping: dict[str, tuple[str, str]]
    #: host name -> IP address recorded before the switchover.
    addresses: dict[str, str]
    green_topology_changed: bool
    blue_dns_updated: bool
    green_dns_removed: bool
    timed_out: bool
    events: tuple[SummaryEvent, ...]
    #: monitor role -> its last error (None while it reads the status fine).
    monitor_errors: dict[str, str | None]
    #: True when the plugin can follow a switchover of this deployment right
    #: now: the monitors run, have read the blue/green status, and nothing
    #: has turned protection off for any host of this ``bg_id``.
    protected: bool = False
    #: Why ``protected`` is False, in plain words (None when it is True).
    reason: str | None = None
    #: host -> why switchover protection is off for it.
    unprotected: dict[str, str] = field(default_factory=dict)
    #: Connections the switchover dropped while idle, reopened transparently.
    reconnects: int = 0
    #: Dropped connections not reopened under a call because a transaction
    #: was open (the driver's error reached the application).
    refused_in_transaction: int = 0
    #: Calls the drop interrupted, or that continued an operation begun
    #: before it (never re-run: the driver's error reached the application).
    refused_in_flight: int = 0
    #: Who runs the monitors for this process: ``"leader"`` (this process,
    #: for every process of the machine that watches the deployment),
    #: ``"follower"`` (another process, whose view this one follows) or
    #: ``"alone"`` (this process, for itself only: sharing is off or was
    #: refused).
    sharing: str = "alone"
    #: The process id of the process that runs the monitors (this one's
    #: when leading or alone; None before the monitors start).
    leader_pid: int | None = None
