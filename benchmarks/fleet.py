"""Fleet benchmark: N application processes on one machine through a switchover.

For each process count N (1, 4, 8, 16 by default) and each setting of
``bg_share_monitors`` (off, on), builds a fresh simulated deployment,
starts N worker processes (:mod:`bluegreen.sim.fleet`: each connects
through bluegreen and runs a per-operation client, a long-lived client and
one call suspended in IN_PROGRESS) and plays the switchover scenario.

Measured on the servers:

- **monitoring sessions**: the most sessions named ``bluegreen-monitor``
  open at once on the deployment's instances (``pg_stat_activity``,
  ``performance_schema.session_connect_attrs``), sampled every 0.1 s;
- **metadata queries per second** from PREPARATION to COMPLETED
  (PostgreSQL: calls of the metadata function in ``pg_stat_user_functions``;
  MariaDB: statements reading ``mysql.rds_topology`` in the performance
  schema's digests), in scenario seconds: the polling intervals are the
  defaults divided by ``--speed``, so this is the rate a real switchover
  with the default intervals would see.

Measured in the processes:

- **longest stall**: each process's longest time without a successful
  operation (its two clients), the worst and the median over processes;
- **wake-up**: how long after the monitors saw POST (the leader's, or the
  process's own when alone) the suspended call came back, worst over
  processes.

Prints a markdown table and writes a PNG plot (``--plot``). Run it::

    .venv/bin/python -m bluegreen.sim.netns -- \\
        .venv/bin/python benchmarks/fleet.py --deployment rds-postgres
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One (mode, N) run."""

    sharing: str
    processes: int
    sessions: int
    queries_per_s: float
    worst_stall: float
    median_stall: float
    worst_wake: float | None
    failed_after_post: int
    old_blue: int


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deployment", default="rds-postgres")
    p.add_argument("--processes", default="1,4,8,16")
    p.add_argument("--modes", default="off,on")
    p.add_argument("--speed", type=float, default=10.0)
    p.add_argument("--pause", type=float, default=0.05)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    return p


class _Sampler(threading.Thread):
    """Samples the monitoring sessions and the metadata query count."""

    def __init__(self, dep: Any) -> None:
        super().__init__(daemon=True)
        self.dep = dep
        self.most = 0
        self.queries: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        from bluegreen.sim.fleet import monitor_sessions

        while not self._halt.wait(0.1):
            try:
                self.most = max(self.most, monitor_sessions(self.dep.instances))
                self.queries.append((time.monotonic(), metadata_queries(self.dep)))
            except Exception:
                continue  # an instance refusing connections in IN_PROGRESS

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def count_at(self, at: float) -> int:
        """The count sampled closest to ``at``."""
        return min(self.queries, key=lambda q: abs(q[0] - at))[1]


def prepare_counting(dep: Any) -> None:
    if dep.engine == "postgres":
        for inst in dep.instances:
            inst.execute_admin("ALTER SYSTEM SET track_functions = 'pl'")
            inst.execute_admin("SELECT pg_reload_conf()")


def metadata_queries(dep: Any) -> int:
    total = 0
    for inst in dep.instances:
        if dep.engine == "postgres":
            rows = inst.execute_admin(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions "
                "WHERE funcname IN ('show_topology', "
                "'get_blue_green_fast_switchover_metadata')"
            )
        else:
            rows = inst.execute_admin(
                "SELECT coalesce(sum(COUNT_STAR), 0) FROM performance_schema."
                "events_statements_summary_by_digest "
                "WHERE DIGEST_TEXT LIKE '%rds_topology%'"
            )
        total += int(rows[0][0])
    return total


def run_one(kind: str, n: int, sharing: bool, args: argparse.Namespace) -> Row:
    from bluegreen.sim import scenarios
    from bluegreen.sim.accounting import longest_stall, role_at
    from bluegreen.sim.deployment import Deployment
    from bluegreen.sim.fleet import Fleet
    from bluegreen.sim.scenario import ScenarioPlayer, prepare_metadata
    from bluegreen.sim.workload import bg_settings, prepare_table

    options = {} if kind.endswith("postgres") else {"performance_schema": True}
    dep = Deployment.create(kind, readers=1, **options)
    fleet = None
    try:
        dep.start()
        metadata = prepare_metadata(dep)
        prepare_table(dep)
        prepare_counting(dep)
        with tempfile.TemporaryDirectory(prefix="bgfleet-") as tmp:
            fleet = Fleet.for_deployment(
                dep,
                n,
                {
                    **bg_settings(args.speed),
                    "bg_connect_timeout_ms": 30000,
                    "bg_share_monitors": sharing,
                },
                Path(tmp),
                pause=args.pause,
            )
            fleet.start(timeout=120)
            sc = scenarios.get("switchover")
            sampler = _Sampler(dep)
            sampler.start()
            player = ScenarioPlayer(
                dep,
                sc,
                metadata=metadata,
                dns=dep.dns,
                speed=args.speed,
                until=(sc.settled_at or sc.end) + 1.0,
            )
            with player:
                player.wait(timeout=300)
                player.check()
            time.sleep(2.0)  # PostgreSQL flushes function counts each second
            sampler.stop()
            results = fleet.stop()
        switched = player.event("SWITCHED")
        assert switched is not None
        switched_at = player.monotonic_at(switched.offset)
        prep, done = player.event("PREPARATION"), player.event("COMPLETED")
        assert prep is not None and done is not None
        t0, t1 = player.monotonic_at(prep.offset), player.monotonic_at(done.offset)
        calls = sampler.count_at(t1 + 1.5) - sampler.count_at(t0 + 1.5)
        per_s = calls / ((t1 - t0) * args.speed)
        stalls = [longest_stall(w.records, w.window) for w in results]
        leader = next((w for w in results if w.sharing == "leader"), None)
        wakes = []
        for w in results:
            post = (leader or w).event("POST")
            if post is not None and w.probe.ended is not None:
                wakes.append(w.probe.ended - post)
        failed = sum(
            1
            for w in results
            for r in w.records
            if not r.ok and r.start >= (w.event("POST") or 1e18) + 0.5
        )
        old_blue = sum(
            1
            for w in results
            for r in w.records
            if r.ok and role_at(r, switched_at) == "old-blue"
        )
        return Row(
            sharing="on" if sharing else "off",
            processes=n,
            sessions=sampler.most,
            queries_per_s=per_s,
            worst_stall=max(stalls),
            median_stall=statistics.median(stalls),
            worst_wake=max(wakes) if wakes else None,
            failed_after_post=failed,
            old_blue=old_blue,
        )
    finally:
        if fleet is not None:
            fleet.close()
        dep.stop()


def table(rows: Sequence[Row], kind: str, speed: float) -> str:
    head = (
        "| sharing | processes | monitoring sessions | metadata queries/s | "
        "longest stall, worst / median | wake-up after POST, worst | "
        "failed after POST | old-blue ops |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [f"{kind}, switchover at speed {speed:g}:", "", head]
    for r in rows:
        wake = "-" if r.worst_wake is None else f"{r.worst_wake * 1000:.0f} ms"
        lines.append(
            f"| {r.sharing} | {r.processes} | {r.sessions} | {r.queries_per_s:.0f} | "
            f"{r.worst_stall:.2f} s / {r.median_stall:.2f} s | {wake} | "
            f"{r.failed_after_post} | {r.old_blue} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for sharing, style in (("off", "o--"), ("on", "s-")):
        mine = [r for r in rows if r.sharing == sharing]
        if not mine:
            continue
        n = [r.processes for r in mine]
        label = f"bg_share_monitors={'true' if sharing == 'on' else 'false'}"
        axes[0].plot(n, [r.sessions for r in mine], style, label=label)
        axes[1].plot(n, [r.queries_per_s for r in mine], style, label=label)
        axes[2].plot(n, [r.worst_stall for r in mine], style, label=label)
    titles = (
        "monitoring sessions (servers)",
        "metadata queries / s (servers)",
        "longest stall of a process (s)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("processes on the machine")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{kind}: N processes through one switchover", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    from bluegreen.sim.netns import ISOLATED_ENV, run_isolated

    if ISOLATED_ENV not in os.environ:
        return run_isolated([sys.executable, str(Path(__file__).resolve()), *args_list])
    counts = [int(x) for x in args.processes.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    rows = []
    for sharing in modes:
        for n in counts:
            print(f"{args.deployment}: {n} process(es), sharing {sharing}", flush=True)
            row = run_one(args.deployment, n, sharing == "on", args)
            print(f"  {row}", flush=True)
            rows.append(row)
    print()
    print(table(rows, args.deployment, args.speed))
    if args.plot:
        plot(rows, args.plot, args.deployment)
        print(f"\nplot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
