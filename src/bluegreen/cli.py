"""The ``bluegreen`` command.

``bluegreen simulate`` builds a local blue/green deployment, runs the same
workload through the raw driver and through ``bluegreen`` side by side, plays
a switchover scenario and prints the event timeline and what each kind of
client experienced.  The simulator's names resolve through nss_wrapper, so
the command re-executes itself inside a private network namespace (see
:mod:`bluegreen.sim.netns`) unless it already runs in one.

At speed 1 the workload ends 3 s after the scenario is settled (COMPLETED for
a switchover) instead of waiting out the ~44 s for which the target row
lingers; the rest of the scenario is cut, so the whole command stays under
two minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["main"]

logger = logging.getLogger(__name__)

_KINDS = ("aurora-postgres", "rds-postgres", "aurora-mysql", "rds-mysql")
#: Scenario seconds the workload keeps running after the scenario settled.
_TAIL = 3.0


def _state_file() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/bluegreen-{os.getuid()}"
    return Path(base) / "bluegreen-simulate.json"


def _parser() -> argparse.ArgumentParser:
    from bluegreen.sim import scenarios

    parser = argparse.ArgumentParser(
        prog="bluegreen", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "simulate",
        help="rehearse a blue/green switchover against local servers",
        description="Rehearse a switchover: raw driver vs bluegreen, side by side.",
    )
    sim.add_argument(
        "action",
        nargs="?",
        choices=["run", "down"],
        default="run",
        help="'down' stops a deployment kept with --keep",
    )
    sim.add_argument("--deployment", choices=_KINDS, default="aurora-postgres")
    sim.add_argument(
        "--scenario", choices=sorted(scenarios.SCENARIOS), default="switchover"
    )
    sim.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="divide every scenario duration by this factor (default 1)",
    )
    sim.add_argument(
        "--clients",
        type=int,
        default=4,
        help="clients per kind (raw driver, bluegreen); default 4",
    )
    sim.add_argument("--readers", type=int, default=1, help="readers per environment")
    sim.add_argument(
        "--driver",
        choices=["pymysql", "mysql-connector"],
        default="pymysql",
        help="MySQL driver (PostgreSQL always uses psycopg)",
    )
    sim.add_argument(
        "--mode",
        choices=["per-op", "long-lived"],
        default="per-op",
        help="a connection per operation, or one per client",
    )
    sim.add_argument(
        "--keep",
        action="store_true",
        help="leave the deployment running until Ctrl-C or 'simulate down'",
    )
    sim.add_argument("--list", action="store_true", help="list the scenarios and exit")
    sim.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bluegreen`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    if args.list:
        from bluegreen.sim import scenarios

        for sc in scenarios.SCENARIOS.values():
            print(f"{sc.name:<24}{sc.description}")
        return 0
    if args.action == "down":
        return _down()
    if args.speed <= 0 or args.clients < 0 or args.readers < 0:
        print(
            "bluegreen: --speed must be > 0, --clients/--readers >= 0", file=sys.stderr
        )
        return 2
    from bluegreen.sim.netns import ISOLATED_ENV, run_isolated

    if ISOLATED_ENV not in os.environ:
        return run_isolated([sys.executable, "-m", "bluegreen.cli", *args_list])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _simulate(args)
    except KeyboardInterrupt:
        print("Interrupted; everything has been torn down.", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _down() -> int:
    path = _state_file()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        print("No kept deployment is running.")
        return 1
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        print("The kept deployment was already gone.")
        return 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"Stopped the {state.get('deployment')} deployment (pid {pid}).")
            return 0
        time.sleep(0.2)
    print(f"Process {pid} did not stop within 60 s.", file=sys.stderr)
    return 1


def _simulate(args: argparse.Namespace) -> int:
    from bluegreen.sim import scenarios
    from bluegreen.sim.accounting import format_outcomes, summarize
    from bluegreen.sim.deployment import Deployment
    from bluegreen.sim.scenario import ScenarioPlayer, format_timeline, prepare_metadata
    from bluegreen.sim.workload import (
        TABLE,
        ClientKind,
        Workload,
        connect_function,
        identity_map,
        written_ids,
    )

    t0 = time.monotonic()
    scenario = scenarios.get(args.scenario)
    dep = Deployment.create(
        args.deployment,
        readers=args.readers,
        on_progress=lambda m: print(f"  {m}", flush=True),
    )
    print(
        f"Building a {args.deployment} deployment ({args.readers} reader(s) per side)."
    )
    try:
        dep.start()
        metadata = prepare_metadata(dep)
        dep.execute_ddl(_table_ddl(dep.engine, TABLE))
        if dep.engine == "postgres":
            dep.execute_ddl(f"GRANT ALL ON {TABLE} TO {dep.app_user}")
        dep.wait_for_replication(timeout=30)
        host = dep.blue.cluster_endpoint or dep.blue.writer.endpoint
        kinds = [
            ClientKind(
                "raw driver",
                connect_function(dep.engine, via_bluegreen=False, driver=args.driver),
                args.clients,
            ),
            ClientKind(
                "bluegreen",
                connect_function(dep.engine, via_bluegreen=True, driver=args.driver),
                args.clients,
            ),
        ]
        workload = Workload(
            dep.engine,
            kinds,
            dep.connect_kwargs(host),
            identity_map({"blue": dep.blue.instances, "green": dep.green.instances}),
            mode=args.mode,
        )
        settled = (
            scenario.settled_at if scenario.settled_at is not None else scenario.end
        )
        until = settled + _TAIL
        player = ScenarioPlayer(
            dep, scenario, metadata=metadata, dns=dep.dns, speed=args.speed, until=until
        )
        print(
            f"Ready after {time.monotonic() - t0:.1f} s. Playing '{scenario.name}' at "
            f"speed {args.speed:g} with {args.clients} client(s) per kind on {host}.",
            flush=True,
        )
        workload.start()
        with player:
            player.wait_offset(until)
            player.wait(timeout=30)
            records = workload.stop()
        player.check()
        switched = player.event("SWITCHED")
        switched_at = player.monotonic_at(switched.offset) if switched else None
        final = dep.green.writer if player.switched else dep.blue.writer
        final_ids = written_ids(final)
        print()
        print(f"Event timeline ({scenario.name}, offsets in scenario time):")
        print(format_timeline(player.timeline))
        print()
        print(f"Outcome per client kind (final primary {final.name}):")
        outcomes = [
            summarize(
                k.group,
                records,
                switched_at=switched_at,
                final_ids=final_ids,
                window=workload.window,
            )
            for k in kinds
        ]
        print(format_outcomes(outcomes))
        print(f"\nTotal run time {time.monotonic() - t0:.1f} s.", flush=True)
        if args.keep:
            _keep(dep, args)
    finally:
        print("Tearing the deployment down.", flush=True)
        dep.stop()
    return 0


def _table_ddl(engine: str, table: str) -> str:
    if engine == "postgres":
        return (
            f"CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, client text, "
            "at timestamptz DEFAULT now())"
        )
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, "
        "client VARCHAR(64), at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))"
    )


def _keep(dep: Any, args: argparse.Namespace) -> None:
    """Print how to reach the deployment, then hold it until interrupted."""
    env = dict(dep.dns.env())
    print("\nThe deployment stays up. Host names:")
    for name, inst in sorted(dep.endpoints().items()):
        print(f"  {name:<72} {inst.host}:{inst.port}")
    print(
        f"Credentials: user {dep.app_user!r}, password {dep.app_password!r}, "
        f"database {dep.dbname!r}."
    )
    print("Environment for your application:")
    for key in ("LD_PRELOAD", "NSS_WRAPPER_HOSTS"):
        if key in env:
            print(f"  export {key}={env[key]}")
    if os.environ.get("BLUEGREEN_SIM_ISOLATED") == "1":
        print(
            f"  run it inside the namespace: nsenter --net=/proc/{os.getpid()}/ns/net "
            "<command>"
        )
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "deployment": args.deployment}))
    print("Press Ctrl-C or run 'bluegreen simulate down' to stop it.", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


if __name__ == "__main__":
    sys.exit(main())
