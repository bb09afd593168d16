"""What a workload experienced during a switchover: records and counting.

Pure functions over :class:`OpRecord` lists, so that unit tests drive them
with synthetic records.  Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ERROR_WIDTH",
    "FailureSplit",
    "OpRecord",
    "Outcome",
    "error_key",
    "failure_split",
    "format_outcomes",
    "longest_stall",
    "summarize",
]

#: Characters of an error message kept in the outcome table.
ERROR_WIDTH = 160


@dataclass(frozen=True)
class OpRecord:
    """One operation of one client."""

    client: str  #: e.g. ``"raw-3"``
    group: str  #: the client kind: ``"raw driver"``, ``"bluegreen"``
    kind: str  #: ``"read"`` or ``"write"``
    start: float
    end: float
    ok: bool
    error: str | None = None  #: ``"ClassName: message"`` when not ok
    instance: str | None = None  #: the instance that served it
    env: str | None = (
        None  #: ``"blue"`` / ``"green"`` (membership before the switchover)
    )
    write_id: int | None = None


@dataclass
class Outcome:
    """The counts of one client kind."""

    group: str
    ops: int = 0
    failed: int = 0
    longest_stall: float = 0.0
    old_blue_writes: int = 0
    stale_reads: int = 0
    lost_writes: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def error_key(message: str | None, width: int = ERROR_WIDTH) -> str:
    """One line of at most ``width`` characters that names an error.

    Driver messages may span lines and pad with double spaces (libpq:
    ``...failed: FATAL:  pg_hba.conf rejects connection...``); every run of
    whitespace becomes one space so that the reason stays on the line, and
    longer messages end in ``...``.
    """
    text = " ".join((message or "unknown error").split()) or "unknown error"
    if len(text) <= width:
        return text
    return text[: max(width - 3, 1)].rstrip() + "..."


def role_at(record: OpRecord, switched_at: float | None) -> str | None:
    """``"blue"``, ``"green"`` or ``"old-blue"`` (a blue instance after the switch)."""
    if record.env == "blue" and switched_at is not None and record.start >= switched_at:
        return "old-blue"
    return record.env


def longest_stall(
    records: Iterable[OpRecord], window: tuple[float, float] | None = None
) -> float:
    """The longest interval any client went without completing an operation.

    Per client: gaps between consecutive successful completions, plus from
    the window start to the first success and from the last success to the
    window end (a client that never succeeds stalls for the whole window).
    """
    by_client: dict[str, list[float]] = {}
    for r in records:
        by_client.setdefault(r.client, [])
        if r.ok:
            by_client[r.client].append(r.end)
    worst = 0.0
    for client, ends in by_client.items():
        points = sorted(ends)
        if window is not None:
            points = [window[0], *points, window[1]]
        elif not points:
            continue
        del client
        for a, b in itertools.pairwise(points):
            worst = max(worst, b - a)
    return worst


def summarize(
    group: str,
    records: Sequence[OpRecord],
    *,
    switched_at: float | None,
    final_ids: set[int] | None,
    window: tuple[float, float] | None = None,
) -> Outcome:
    """Count one client kind's records.

    ``switched_at`` is when green took over (``None``: no switchover);
    ``final_ids`` the write ids found on the final primary (``None``: not
    checked).
    """
    mine = [r for r in records if r.group == group]
    out = Outcome(group, ops=len(mine))
    for r in mine:
        if not r.ok:
            out.failed += 1
            out.errors[error_key(r.error)] += 1
            continue
        role = role_at(r, switched_at)
        if role == "old-blue" and r.kind == "write":
            out.old_blue_writes += 1
        if role == "old-blue" and r.kind == "read":
            out.stale_reads += 1
        if (
            final_ids is not None
            and r.kind == "write"
            and r.write_id is not None
            and r.write_id not in final_ids
        ):
            out.lost_writes += 1
    out.longest_stall = longest_stall(mine, window)
    return out


def format_outcomes(outcomes: Sequence[Outcome], *, errors: bool = True) -> str:
    """The outcome table, one row per client kind, plus the top errors."""
    head = (
        f"{'client':<12}{'ops':>7}{'failed':>8}{'longest stall':>15}"
        f"{'old-blue writes':>17}{'stale reads':>13}{'lost writes':>13}"
    )
    lines = [head, "-" * len(head)]
    for o in outcomes:
        lines.append(
            f"{o.group:<12}{o.ops:>7}{o.failed:>8}{o.longest_stall:>13.2f} s"
            f"{o.old_blue_writes:>17}{o.stale_reads:>13}{o.lost_writes:>13}"
        )
    if errors:
        for o in outcomes:
            for message, n in o.errors.most_common(3):
                lines.append(f"  {o.group}: {n} x {message}")
    return "\n".join(lines)


@dataclass(frozen=True)
class FailureSplit:
    """A group's failed operations by when they began, relative to the drop
    of every connection at IN_PROGRESS."""

    #: Began after the drop had finished: nothing the drop interrupted.
    after_drop: int = 0
    #: Running (or connecting) while the drop happened.
    in_flight: int = 0
    #: Ended before IN_PROGRESS began.
    before: int = 0


def failure_split(
    records: Iterable[OpRecord],
    group: str,
    in_progress_at: float | None,
    dropped_at: float | None,
) -> FailureSplit:
    """Split ``group``'s failures: before IN_PROGRESS, in flight at the drop
    (began before it finished and ended after IN_PROGRESS began), after it."""
    after = flight = before = 0
    for r in records:
        if r.group != group or r.ok:
            continue
        if dropped_at is None or in_progress_at is None:
            before += 1
        elif r.start >= dropped_at:
            after += 1
        elif r.end >= in_progress_at:
            flight += 1
        else:
            before += 1
    return FailureSplit(after, flight, before)
