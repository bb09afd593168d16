"""What ``switchover.py`` reports: per-group figures, tables, JSON and the plot.

Pure functions over the workload's :class:`~bluegreen.sim.accounting.OpRecord`
lists and the scenario timeline (no database, no threads), so that the
definitions below can be checked with synthetic records.

Definitions (times are wall-clock seconds, ``time.monotonic()``):

* *failed*, *old-blue writes*, *stale reads*, *lost writes* and *longest
  stall* are those of :func:`bluegreen.sim.accounting.summarize`: a stall is
  the longest interval a client of the group went without completing an
  operation successfully, counted from the start of the workload to the
  moment it was told to stop (also for a client still blocked then).
* *downtime / client*: for every client, the sum of the intervals between
  consecutive successful completions (the workload's start and stop count
  as completions) that are longer than ``gap`` seconds (0.5 s by default); then
  the mean over the group's clients.  The gap threshold keeps the normal
  rhythm of a client (an operation, then a 50 ms pause) out of the sum.
* The IN_PROGRESS duration is the time from the IN_PROGRESS event to the
  next phase event (POST, ROLLED_BACK or COMPLETED) as the player recorded
  them, divided by the speed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluegreen.sim.accounting import (
    FailureSplit,
    OpRecord,
    Outcome,
    failure_split,
    role_at,
    summarize,
)
from bluegreen.sim.scenario import Event

__all__ = [
    "OUTCOMES",
    "STALL_MARGIN",
    "GroupResult",
    "RunResult",
    "downtime_per_client",
    "in_progress_window",
    "markdown_table",
    "outcome_of",
    "plot_timeline",
    "summarize_group",
    "targets_table",
    "to_json",
    "write_json",
]

#: Outcome label -> plot colour, in legend order.
OUTCOMES: dict[str, str] = {
    "ok on blue": "#1f77b4",
    "ok on green": "#2ca02c",
    "ok on old blue": "#ff7f0e",
    "ok, unknown instance": "#7f7f7f",
    "failed": "#d62728",
}
#: Events that end IN_PROGRESS.
_PHASE_ENDS = ("POST", "ROLLED_BACK", "COMPLETED")
#: Extra time allowed on top of IN_PROGRESS for the longest-stall target.
STALL_MARGIN = 0.5


@dataclass
class GroupResult:
    """What one client group experienced (or why it did not run)."""

    group: str
    clients: int
    available: bool = True
    reason: str = ""  #: why the group is unavailable
    note: str = ""  #: e.g. the AWS wrapper's version and detected dialect
    caveat: str = ""  #: why its figures may not be what it does on AWS
    stuck: int = 0  #: clients still inside an operation when the run ended
    outcome: Outcome | None = None
    downtime: float = 0.0  #: mean seconds per client, see module docs
    #: Failures by when they began, relative to the drop at IN_PROGRESS.
    split: FailureSplit | None = None


@dataclass
class RunResult:
    """One benchmark run: settings, timeline, records and per-group results."""

    deployment: str
    scenario: str
    speed: float
    mode: str
    driver: str
    settings: Mapping[str, Any]
    timeline: list[Event]
    records: list[OpRecord]
    groups: list[GroupResult]
    window: tuple[float, float]
    zero: float  #: monotonic time of x = 0 (the start of IN_PROGRESS)
    zero_offset: float  #: scenario offset of x = 0
    switched_at: float | None
    in_progress: float | None  #: IN_PROGRESS duration, wall seconds
    gap: float
    extra: dict[str, Any] = field(default_factory=dict)

    def stall_target(self) -> float:
        """Longest stall allowed: IN_PROGRESS duration + :data:`STALL_MARGIN`."""
        return (self.in_progress or 0.0) + STALL_MARGIN

    def event_x(self, event: Event) -> float:
        """Where ``event`` happened, in seconds from x = 0 (wall clock)."""
        return (event.offset - self.zero_offset) / self.speed


def in_progress_window(timeline: Sequence[Event]) -> tuple[float, float] | None:
    """IN_PROGRESS as (start, end) scenario offsets as the player recorded
    them; ``None`` if the timeline has no IN_PROGRESS."""
    start = next((e for e in timeline if e.event == "IN_PROGRESS"), None)
    if start is None:
        return None
    end = next(
        (e for e in timeline if e.event in _PHASE_ENDS and e.offset >= start.offset),
        None,
    )
    return start.offset, (end.offset if end is not None else timeline[-1].offset)


def outcome_of(record: OpRecord, switched_at: float | None) -> str:
    """The :data:`OUTCOMES` label of one operation."""
    if not record.ok:
        return "failed"
    role = role_at(record, switched_at)
    if role == "blue":
        return "ok on blue"
    if role == "green":
        return "ok on green"
    if role == "old-blue":
        return "ok on old blue"
    return "ok, unknown instance"


def downtime_per_client(
    records: Sequence[OpRecord],
    clients: Sequence[str],
    window: tuple[float, float],
    gap: float,
) -> float:
    """Mean over ``clients`` of their time without a success (module docs)."""
    if not clients:
        return 0.0
    ends: dict[str, list[float]] = {c: [] for c in clients}
    for r in records:
        if r.ok and r.client in ends:
            ends[r.client].append(min(r.end, window[1]))
    total = 0.0
    for points in ends.values():
        marks = [window[0], *sorted(points), window[1]]
        total += sum(b - a for a, b in itertools.pairwise(marks) if b - a > gap)
    return total / len(clients)


def summarize_group(
    result: GroupResult,
    records: Sequence[OpRecord],
    *,
    switched_at: float | None,
    final_ids: set[int] | None,
    window: tuple[float, float],
    gap: float,
    in_progress_at: float | None = None,
    dropped_at: float | None = None,
) -> None:
    """Fill in ``result`` from the records of its group."""
    # An operation that ended after the stop counts as ending at the stop.
    mine = [
        r if r.end <= window[1] else dataclasses.replace(r, end=window[1])
        for r in records
        if r.group == result.group
    ]
    result.outcome = summarize(
        result.group,
        mine,
        switched_at=switched_at,
        final_ids=final_ids,
        window=window,
    )
    names = [f"{result.group}-{n}" for n in range(result.clients)]
    if {r.client for r in mine} != set(names) and result.clients:
        # A client without a single record stalled for the whole window.
        result.outcome.longest_stall = window[1] - window[0]
    result.downtime = downtime_per_client(mine, names, window, gap)
    result.split = failure_split(mine, result.group, in_progress_at, dropped_at)


# -- text ---------------------------------------------------------------------


def markdown_table(run: RunResult, *, errors: int = 3) -> str:
    """One row per client group, then the most frequent errors per group."""
    head = (
        "| client group | ops | failed | of which began after the drop "
        "| in flight at it | longest stall | old-blue writes "
        "| stale reads | lost writes | downtime / client |"
    )
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    notes: list[str] = []
    for g in run.groups:
        o = g.outcome
        if not g.available or o is None:
            lines.append(f"| {g.group} |" + " n/a |" * 9)
            notes.append(f"{g.group} unavailable: {g.reason}")
            continue
        split = g.split or FailureSplit()
        lines.append(
            f"| {g.group} | {o.ops} | {o.failed} | {split.after_drop} "
            f"| {split.in_flight} | {o.longest_stall:.2f} s "
            f"| {o.old_blue_writes} | {o.stale_reads} | {o.lost_writes} "
            f"| {g.downtime:.2f} s |"
        )
        if g.note:
            notes.append(f"{g.group}: {g.note}")
        if g.caveat:
            notes.append(f"{g.group} caveat: {g.caveat}")
        if g.stuck:
            notes.append(
                f"{g.group}: {g.stuck} client(s) were still inside an operation "
                "15 s after the workload was told to stop (it never returned)"
            )
    for g in run.groups:
        if g.outcome is None:
            continue
        for message, n in g.outcome.errors.most_common(errors):
            notes.append(f"{g.group} error, {n} x: {message}")
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines)


def targets_table(run: RunResult, groups: Sequence[str]) -> str:
    """The targets, with the figures of ``groups`` (those that ran)."""
    shown = [g for g in run.groups if g.group in groups and g.available and g.outcome]
    if not shown:
        return "(no wrapper group ran: no targets to check)"
    stall = run.stall_target()
    span = stall - STALL_MARGIN
    rows: list[tuple[str, list[str]]] = []

    def cell(value: str, met: bool | None) -> str:
        return value if met is None else f"{value} ({'met' if met else 'MISSED'})"

    per_op = run.mode == "per-op"
    rows.append(
        (
            "failed operations = 0"
            + ("" if per_op else " (per-op workload only; this run is long-lived)"),
            [
                cell(str(g.outcome.failed), g.outcome.failed == 0 if per_op else None)
                for g in shown
                if g.outcome
            ],
        )
    )
    if run.in_progress is None:
        stall_label = f"longest stall <= {stall:.2f} s (no IN_PROGRESS here)"
    else:
        stall_label = (
            f"longest stall <= IN_PROGRESS {span:.2f} s + {STALL_MARGIN} s "
            f"= {stall:.2f} s"
        )
    rows.append(
        (
            stall_label,
            [
                cell(
                    f"{g.outcome.longest_stall:.2f} s",
                    g.outcome.longest_stall <= stall,
                )
                for g in shown
                if g.outcome
            ],
        )
    )
    rows.append(
        (
            "old-blue writes = 0",
            [
                cell(str(g.outcome.old_blue_writes), g.outcome.old_blue_writes == 0)
                for g in shown
                if g.outcome
            ],
        )
    )
    lines = [
        "| target | " + " | ".join(g.group for g in shown) + " |",
        "|---|" + "--:|" * len(shown),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


# -- JSON -----------------------------------------------------------------------


def to_json(run: RunResult) -> dict[str, Any]:
    """Everything measured, with times as seconds from IN_PROGRESS."""

    def x(t: float) -> float:
        return round(t - run.zero, 4)

    groups = []
    for g in run.groups:
        item: dict[str, Any] = {
            "group": g.group,
            "clients": g.clients,
            "available": g.available,
        }
        if g.reason:
            item["reason"] = g.reason
        if g.note:
            item["note"] = g.note
        if g.caveat:
            item["caveat"] = g.caveat
        if g.stuck:
            item["stuck_clients"] = g.stuck
        if g.outcome is not None:
            o = g.outcome
            item.update(
                ops=o.ops,
                failed=o.failed,
                longest_stall_s=round(o.longest_stall, 4),
                old_blue_writes=o.old_blue_writes,
                stale_reads=o.stale_reads,
                lost_writes=o.lost_writes,
                downtime_per_client_s=round(g.downtime, 4),
                errors=dict(o.errors),
            )
        groups.append(item)
    return {
        "deployment": run.deployment,
        "scenario": run.scenario,
        "speed": run.speed,
        "mode": run.mode,
        "driver": run.driver,
        "settings": dict(run.settings),
        "gap_s": run.gap,
        "stall_target_s": round(run.stall_target(), 4),
        "in_progress_s": None if run.in_progress is None else round(run.in_progress, 4),
        "window_s": [x(run.window[0]), x(run.window[1])],
        "switched_at_s": None if run.switched_at is None else x(run.switched_at),
        **run.extra,
        "timeline": [
            {
                "at_s": round(run.event_x(e), 4),
                "offset_s": round(e.offset, 4),
                "event": e.event,
                "detail": e.detail,
            }
            for e in run.timeline
        ],
        "groups": groups,
        "records": [
            {
                "client": r.client,
                "group": r.group,
                "kind": r.kind,
                "start_s": x(r.start),
                "end_s": x(r.end),
                "outcome": outcome_of(r, run.switched_at),
                "instance": r.instance,
                "error": r.error,
            }
            for r in sorted(run.records, key=lambda r: r.start)
        ],
    }


def write_json(run: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(run), indent=1) + "\n")


# -- plot -----------------------------------------------------------------------


def plot_timeline(run: RunResult, path: Path, title: str) -> None:
    """The PNG timeline: one row per group, one lane per client, every
    operation a bar from its start to its end coloured by outcome."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    xs = [run.window[0] - run.zero, run.window[1] - run.zero]
    span = max(xs[1] - xs[0], 1e-3)
    min_width = span * 0.0015  # keep instant failures visible
    rows = len(run.groups)
    fig, ax = plt.subplots(figsize=(13, 1.6 + 1.3 * rows))
    row_height = 0.8
    for i, g in enumerate(run.groups):
        base = rows - 1 - i  # first group on top
        if not g.available:
            ax.text(
                xs[0] + span / 2,
                base + row_height / 2,
                textwrap.fill(f"unavailable: {g.reason}", 140),
                ha="center",
                va="center",
                fontsize=8,
                color="#555555",
            )
            continue
        lane = row_height / max(g.clients, 1)
        bars: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for r in run.records:
            if r.group != g.group:
                continue
            n = int(r.client.rsplit("-", 1)[1])
            start = r.start - run.zero
            width = max(r.end - r.start, min_width)
            bars.setdefault((n, outcome_of(r, run.switched_at)), []).append(
                (start, width)
            )
        for (n, outcome), spans in bars.items():
            ax.broken_barh(
                spans,
                (base + n * lane + lane * 0.1, lane * 0.8),
                facecolors=OUTCOMES[outcome],
                linewidth=0,
            )
    if run.in_progress is not None:
        ax.axvspan(0.0, run.in_progress, color="#eeeeee")
    # Stack the event labels on as many levels as needed to keep them apart
    # (the width of a character is estimated for the 13-inch figure).
    char = span * 0.0055
    level_ends: list[float] = []
    for e in run.timeline:
        at = run.event_x(e)
        ax.axvline(at, color="#444444", linewidth=0.7, linestyle="--")
        level = next((i for i, end in enumerate(level_ends) if at >= end), None)
        if level is None:
            level = len(level_ends)
            level_ends.append(0.0)
        level_ends[level] = at + char * (len(e.event) + 2)
        ax.text(at, rows + 0.05 + 0.2 * level, f" {e.event}", fontsize=7, va="bottom")
    ax.set_xlim(xs[0] - span * 0.01, xs[1] + span * 0.01)
    ax.set_ylim(-0.1, rows + 0.15 + 0.2 * max(len(level_ends), 1))
    ax.set_yticks([rows - 1 - i + row_height / 2 for i in range(rows)])
    ax.set_yticklabels([g.group + ("*" if g.caveat else "") for g in run.groups])
    caveats = [f"* {g.group}: {g.caveat}" for g in run.groups if g.caveat]
    unit = (
        "s" if run.speed == 1 else f"s, wall clock; scenario time = x * {run.speed:g}"
    )
    ax.set_xlabel(f"seconds from IN_PROGRESS start ({unit})")
    ax.set_title(title, fontsize=10)
    ax.legend(
        handles=[Patch(color=c, label=o) for o, c in OUTCOMES.items()],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18 - 0.05 / max(rows, 1)),
        ncol=len(OUTCOMES),
        fontsize=8,
        frameon=False,
    )
    if caveats:
        fig.text(
            0.01,
            0.01,
            "\n".join(textwrap.fill(c, 190) for c in caveats),
            fontsize=7,
            va="bottom",
            color="#555555",
        )
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    fig.tight_layout(rect=(0, 0.03 * len(caveats) * 2, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
