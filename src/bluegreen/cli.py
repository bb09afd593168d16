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

Rehearsal with your own application (``--keep``): as soon as the deployment
is up the command prints its host names, the credentials, the environment
that makes a program resolve those names (``export LD_PRELOAD=...
NSS_WRAPPER_HOSTS=...``) and, when isolated, the ``nsenter --net=...`` line
that runs a program inside the private network namespace.  Then it waits
until you say go: Enter on its terminal, or ``bluegreen simulate play`` from
another shell (``--no-wait`` plays at once).  The scenario plays with the
built-in side-by-side workload, whose outcome table is printed as usual, and
then plays on to its end (the target row lingering, the metadata emptied)
while the deployment stays up until Ctrl-C or ``bluegreen simulate down``.
The kept process is found through a state file
(``$XDG_RUNTIME_DIR/bluegreen-simulate.json``, see
:mod:`bluegreen.sim.rehearsal`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bluegreen.sim.deployment import Deployment
    from bluegreen.sim.metadata import MetadataController
    from bluegreen.sim.rehearsal import KeptDeployment
    from bluegreen.sim.scenario import Scenario, ScenarioPlayer

__all__ = ["main"]

logger = logging.getLogger(__name__)

_KINDS = ("aurora-postgres", "rds-postgres", "aurora-mysql", "rds-mysql")
#: Scenario seconds the workload keeps running after the scenario settled.
_TAIL = 3.0


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
        choices=["run", "play", "down"],
        default="run",
        help="'run' (default) builds and plays; 'play' starts the scenario of a "
        "deployment kept with --keep that waits; 'down' stops it",
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
        help="rehearse with your own application: print how to reach the "
        "deployment as soon as it is up, wait for Enter (on a terminal) or "
        "'simulate play' before playing the scenario, then keep the deployment "
        "until Ctrl-C or 'simulate down'",
    )
    sim.add_argument(
        "--no-wait",
        action="store_true",
        help="with --keep: play the scenario at once instead of waiting",
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
    if args.action in ("play", "down"):
        from bluegreen.sim import rehearsal

        request = (
            rehearsal.request_play
            if args.action == "play"
            else (rehearsal.request_down)
        )
        status, message = request()
        print(message)
        return status
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


def _simulate(args: argparse.Namespace) -> int:
    from bluegreen.sim.deployment import Deployment

    t0 = time.monotonic()
    dep = Deployment.create(
        args.deployment,
        readers=args.readers,
        on_progress=lambda m: print(f"  {m}", flush=True),
    )
    print(
        f"Building a {args.deployment} deployment ({args.readers} reader(s) per side)."
    )
    try:
        return _build_and_play(dep, args, t0)
    finally:
        print("Tearing the deployment down.", flush=True)
        dep.stop()


def _build_and_play(dep: Deployment, args: argparse.Namespace, t0: float) -> int:
    from bluegreen.sim import scenarios
    from bluegreen.sim.rehearsal import KeptDeployment
    from bluegreen.sim.scenario import prepare_metadata
    from bluegreen.sim.workload import prepare_table

    scenario = scenarios.get(args.scenario)
    dep.start()
    metadata = prepare_metadata(dep)
    prepare_table(dep)
    print(f"Ready after {time.monotonic() - t0:.1f} s.", flush=True)
    if not args.keep:
        _play(dep, metadata, scenario, args, None)
        return 0
    with KeptDeployment(args.deployment) as kept:
        _print_banner(dep)
        if args.no_wait:
            print("Playing at once (--no-wait).", flush=True)
        else:
            how = "press Enter here or run" if sys.stdin.isatty() else "run"
            print(
                "Start your application against these names now; when it runs, "
                f"{how} 'bluegreen simulate play' to play '{scenario.name}'. "
                "Ctrl-C or 'bluegreen simulate down' stops everything.",
                flush=True,
            )
            try:
                kept.wait_for_play(sys.stdin)
            except KeyboardInterrupt:
                print("Stopped before the scenario was played.", flush=True)
                return 0
        kept.set_phase("playing")
        try:
            _play(dep, metadata, scenario, args, kept)
        except KeyboardInterrupt:
            if not kept.down_requested:
                raise
            print("Stopping: 'bluegreen simulate down' was requested.", flush=True)
    return 0


def _play(
    dep: Deployment,
    metadata: MetadataController,
    scenario: Scenario,
    args: argparse.Namespace,
    kept: KeptDeployment | None,
) -> None:
    """Play ``scenario`` with the side-by-side workload and print the results;
    with a kept deployment, play on to the end and hold it afterwards."""
    from bluegreen.sim.accounting import format_outcomes, summarize
    from bluegreen.sim.scenario import ScenarioPlayer, format_timeline
    from bluegreen.sim.workload import (
        ClientKind,
        Workload,
        bg_settings,
        connect_function,
        identity_map,
        written_ids,
    )

    t0 = time.monotonic()
    host = dep.blue.cluster_endpoint or dep.blue.writer.endpoint
    kinds = [
        ClientKind(
            group,
            connect_function(
                dep.engine,
                via_bluegreen=via,
                driver=args.driver,
                settings=bg_settings(args.speed) if via else None,
            ),
            args.clients,
        )
        for group, via in (("raw driver", False), ("bluegreen", True))
    ]
    workload = Workload(
        dep.engine,
        kinds,
        dep.connect_kwargs(host),
        identity_map({"blue": dep.blue.instances, "green": dep.green.instances}),
        mode=args.mode,
    )
    settled = scenario.settled_at if scenario.settled_at is not None else scenario.end
    until = settled + _TAIL
    player = ScenarioPlayer(
        dep,
        scenario,
        metadata=metadata,
        dns=dep.dns,
        speed=args.speed,
        # A kept deployment plays the whole scenario; the workload stops early.
        until=None if kept is not None else until,
    )
    print(
        f"Playing '{scenario.name}' at speed {args.speed:g} with {args.clients} "
        f"client(s) per kind on {host}.",
        flush=True,
    )
    workload.start()
    with player:
        player.wait_offset(until)
        if kept is None:
            player.wait(timeout=30)
        records = workload.stop()
        player.check()
        timeline = list(player.timeline)
        switched = player.event("SWITCHED")
        switched_at = player.monotonic_at(switched.offset) if switched else None
        final = dep.green.writer if player.switched else dep.blue.writer
        final_ids = written_ids(final)
        print()
        print(f"Event timeline ({scenario.name}, offsets in scenario time):")
        print(format_timeline(timeline))
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
        if kept is not None:
            _hold(kept, player, len(timeline))


def _hold(kept: KeptDeployment, player: ScenarioPlayer, shown: int) -> None:
    """Hold a played deployment; print the scenario's later events."""
    from bluegreen.sim.scenario import format_event

    kept.set_phase("kept")
    print(
        "\nThe deployment stays up (host names and environment above); the rest "
        "of the scenario plays on. Press Ctrl-C or run 'bluegreen simulate down' "
        "to stop it.",
        flush=True,
    )
    finished = False

    def tick() -> None:
        nonlocal shown, finished
        events = list(player.timeline)
        for event in events[shown:]:
            print(format_event(event), flush=True)
        shown = len(events)
        if player.done and not finished:
            finished = True
            print(f"The scenario '{player.scenario.name}' has ended.", flush=True)

    kept.hold(tick)
    print("Stopping the kept deployment.", flush=True)


def _print_banner(dep: Deployment) -> None:
    """How to reach the deployment: names, credentials, environment."""
    from bluegreen.sim.netns import ISOLATED_ENV

    env = dict(dep.dns.env())
    print("\nThe deployment is up. Host names:")
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
    if os.environ.get(ISOLATED_ENV) == "1":
        print(
            f"  run it inside the namespace: nsenter --net=/proc/{os.getpid()}/ns/net "
            "<command>"
        )
    print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
