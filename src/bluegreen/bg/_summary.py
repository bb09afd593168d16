"""The switchover summary: the table of event times, and its one-line form.

Time zero is the start of IN_PROGRESS; offsets before it are negative. The
table's layout follows the seeds' example::

    ----------------------------------------------------------------------
    timestamp                     time offset (ms)                   event
    ----------------------------------------------------------------------
      2026-11-21T17:55:47.631Z         -3831 ms             PREPARATION
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from ._tracker import Event

__all__ = ["format_summary", "one_line", "timestamp"]

_WIDTH = 82


def timestamp(wall: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-11-21T17:55:47.631Z``."""
    dt = datetime.fromtimestamp(wall, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _offsets(events: Sequence[Event]) -> list[int | None]:
    zero = next((e.mono for e in reversed(events) if e.name == "IN_PROGRESS"), None)
    return [None if zero is None else round((e.mono - zero) * 1000) for e in events]


def format_summary(bg_id: str, events: Sequence[Event]) -> str:
    """The multi-line summary table of ``events`` (in the order given)."""
    rule = "-" * _WIDTH
    head = f"{'timestamp':<30}{'time offset (ms)':^24}{'event':>28}"
    lines = [f"[bg_id: {bg_id!r}]", rule, head, rule]
    for event, offset in zip(events, _offsets(events), strict=True):
        shown = "" if offset is None else f"{offset} ms"
        lines.append(f"  {timestamp(event.wall):<28}{shown:>18}{event.name:>34}")
    lines.append(rule)
    return "\n".join(lines)


def one_line(
    bg_id: str, events: Sequence[Event], counters: Mapping[str, int] | None = None
) -> str:
    """The summary in one sentence, for INFO logs (``counters``: the
    transparent reconnects so far, see ``DeploymentWatch.count``)."""
    parts = []
    for event, offset in zip(events, _offsets(events), strict=True):
        if offset is not None and event.name != "IN_PROGRESS":
            parts.append(f"{event.name} {offset:+d} ms")
        else:  # time zero, or no IN_PROGRESS to count from
            parts.append(f"{event.name} at {timestamp(event.wall)}")
    last = events[-1].name if events else "nothing"
    text = f"bg_id {bg_id!r}: switchover ended ({last}): " + (
        ", ".join(parts) or "no switchover phase was observed"
    )
    if counters:
        text += (
            f"; connections reconnected: {counters.get('reconnects', 0)}, not "
            f"reconnected: {counters.get('refused_in_transaction', 0)} inside a "
            f"transaction, {counters.get('refused_in_flight', 0)} in flight"
        )
    return text
