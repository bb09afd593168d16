"""The ``bluegreen`` command: ``bluegreen check`` and ``bluegreen simulate``.

``bluegreen check`` is the operators' pre-switchover check: it connects to a
real endpoint the way the application does and says whether the ``bg``
plugin would protect it (see :mod:`bluegreen._check` and docs/check.md). It
runs in the caller's own network and name resolution.

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
from typing import TYPE_CHECKING, Any

from bluegreen._version import __version__

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

_DESCRIPTION = """\
bluegreen keeps Python database applications working through Amazon RDS and
Aurora blue/green switchovers: a DB-API 2.0 driver wrapper for psycopg 3,
PyMySQL, mysql-connector-python and mysqlclient. This command has the
operators' tools: check an endpoint before a switchover, and rehearse a
switchover on local servers.
"""

_CHECK_DESCRIPTION = """\
Connect to a real endpoint with the arguments the application uses, through
bluegreen and its bg plugin, and report: the deployment type, whether the
blue/green metadata is readable (and the GRANT to run if it is not), the
blue/green phase, the blue-to-green host mapping and a verdict. Status is
polled every 200 ms (bg_interval_baseline_ms / bg_interval_increased_ms,
unless you set them), for at most --timeout seconds.

DSN forms:
  psycopg          a libpq string ("host=... dbname=... user=...") or a
                   postgresql:// URI, passed to libpq as it is; without a DSN
                   libpq uses the PG* environment variables. libpq reads the
                   password from PGPASSWORD or ~/.pgpass.
  pymysql,         mysql://user[:password]@host[:port]/database[?key=value...]
  mysql-connector, (percent-encode special characters); the password may come
  mysqlclient      from MYSQL_PWD instead. mysql+mysqlconnector:// selects
                   mysql-connector, mysql+mysqldb:// mysqlclient.
Wrapper settings (bg_id, wrapper_dialect, blue-green-monitoring-...) may be in
the DSN or in --set. Keep passwords off the command line: use the environment
variables or -W.
"""

_CHECK_EPILOG = """\
exit status:
  0  the application would be protected: the metadata is readable and the
     deployment is ready for a switchover, or no deployment exists yet
  1  it would not be protected: plain server, missing GRANT, unsupported
     deployment type, failed detection, unreadable metadata, or a deployment
     whose blue-to-green mapping is incomplete at the timeout
  2  usage or configuration error
  3  could not connect at all

examples:
  bluegreen check "host=mydb.cluster-abc.eu-west-1.rds.amazonaws.com user=app"
  MYSQL_PWD=... bluegreen check mysql://app@mydb.abc.us-east-1.rds.amazonaws.com/app
  bluegreen check --json --driver mysql-connector mysql://app@db.example.com/app
"""

_SIM_DEFAULTS: dict[str, Any] = {
    "deployment": "aurora-postgres",
    "scenario": "switchover",
    "speed": 1.0,
    "clients": 4,
    "readers": 1,
    "driver": "pymysql",
    "mode": "per-op",
}
#: Options that shape a run, spelled as on the command line.
_SIM_OPTIONS = {
    "deployment": "--deployment",
    "scenario": "--scenario",
    "speed": "--speed",
    "clients": "--clients",
    "readers": "--readers",
    "driver": "--driver",
    "mode": "--mode",
    "keep": "--keep",
    "no_wait": "--no-wait",
    "list": "--list",
    "verbose": "--verbose",
}


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its subcommands' parsers, by name."""
    parser = argparse.ArgumentParser(
        prog="bluegreen",
        description=_DESCRIPTION,
        epilog="Run 'bluegreen COMMAND --help' for the options of a command.\n"
        "Documentation: README.md, docs/check.md and docs/simulator.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands"
    )
    return parser, {"check": _check_parser(sub), "simulate": _simulate_parser(sub)}


def _check_parser(sub: Any) -> argparse.ArgumentParser:
    from bluegreen._check import DEFAULT_BG_ID, DRIVERS

    check: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="before a switchover: would an application connecting with these "
        "arguments be protected? (exit status 0 if so)",
        description=_CHECK_DESCRIPTION,
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "dsn",
        nargs="?",
        metavar="DSN",
        help="where to connect: a libpq string or postgresql:// URI, or a "
        "mysql:// URL (see above)",
    )
    check.add_argument(
        "--driver",
        choices=DRIVERS,
        help="the driver the application uses (default: psycopg for a libpq "
        "string or URI, psycopg2 for a postgresql+psycopg2:// URI, pymysql "
        "for a mysql:// URL)",
    )
    check.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="one more driver argument or wrapper setting, as the application "
        "passes it (repeatable; wins over the DSN)",
    )
    check.add_argument(
        "--bg-id",
        type=_name,
        metavar="ID",
        help=f"bg_id of the check's monitors (default: the DSN's, else "
        f"{DEFAULT_BG_ID!r})",
    )
    check.add_argument(
        "--timeout",
        type=_positive_float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for the plugin to read the status and map the "
        "deployment (default 15); the driver's connect timeout defaults to "
        "this, at most 10 s",
    )
    check.add_argument(
        "--json", action="store_true", help="print the report as one JSON object"
    )
    check.add_argument(
        "-W",
        "--password-prompt",
        action="store_true",
        help="ask for the password (instead of PGPASSWORD, MYSQL_PWD or the DSN)",
    )
    check.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log what bluegreen does (DEBUG) on stderr",
    )
    return check


def _simulate_parser(sub: Any) -> argparse.ArgumentParser:
    from bluegreen.sim import scenarios

    sim: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="rehearse a blue/green switchover on local PostgreSQL or MariaDB "
        "servers, the raw driver and bluegreen side by side",
        description="Rehearse a blue/green switchover on local servers: build "
        "a simulated RDS or Aurora deployment, run a workload through the raw "
        "driver and through bluegreen side by side, play a scenario, and print "
        "the timeline and what each kind of client experienced.",
        epilog="'simulate play' and 'simulate down' take no options: they act on "
        "the deployment that 'simulate --keep' holds.",
    )
    sim.add_argument(
        "action",
        nargs="?",
        choices=["run", "play", "down"],
        default="run",
        help="'run' (default) builds and plays; 'play' starts the scenario of a "
        "deployment kept with --keep that waits; 'down' stops it",
    )
    sim.add_argument(
        "--deployment",
        choices=_KINDS,
        help=f"the deployment type (default {_SIM_DEFAULTS['deployment']})",
    )
    sim.add_argument(
        "--scenario",
        choices=sorted(scenarios.SCENARIOS),
        metavar="NAME",
        help=f"the scenario to play (default {_SIM_DEFAULTS['scenario']}); "
        "--list shows them",
    )
    sim.add_argument(
        "--speed",
        type=_positive_float,
        help="divide every scenario duration by this factor (default 1)",
    )
    sim.add_argument(
        "--clients",
        type=_count,
        help="clients per kind (raw driver, bluegreen); default 4",
    )
    sim.add_argument(
        "--readers", type=_count, help="readers per environment (default 1)"
    )
    sim.add_argument(
        "--driver",
        choices=["pymysql", "mysql-connector", "mysqlclient"],
        help="MySQL driver for the MySQL deployments (default pymysql); "
        "PostgreSQL always uses psycopg",
    )
    sim.add_argument(
        "--mode",
        choices=["per-op", "long-lived", "pool"],
        help="a connection per operation (per-op, the default), one per "
        "client (long-lived), or a SQLAlchemy QueuePool per client without "
        "pre-ping (pool)",
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
    return sim


def _given(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    """The options among ``names`` that the command line set."""
    return [
        _SIM_OPTIONS[name] for name in names if getattr(args, name) not in (None, False)
    ]


def _validate_simulate(sim: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse option combinations that would be ignored; fill in the defaults."""
    if args.action in ("play", "down"):
        extra = _given(args, list(_SIM_OPTIONS))
        if extra:
            sim.error(
                f"'simulate {args.action}' takes no options (it acts on the "
                f"deployment kept by 'simulate --keep'); remove {', '.join(extra)}"
            )
    elif args.list:
        extra = _given(args, [n for n in _SIM_OPTIONS if n != "list"])
        if extra:
            sim.error(f"--list only lists the scenarios; remove {', '.join(extra)}")
    if args.no_wait and not args.keep:
        sim.error(
            "--no-wait only applies with --keep (it plays a kept deployment's "
            "scenario at once); add --keep or remove --no-wait"
        )
    deployment = args.deployment or _SIM_DEFAULTS["deployment"]
    if args.driver is not None and deployment.endswith("postgres"):
        sim.error(
            f"--driver chooses the MySQL driver, but --deployment {deployment} "
            "always uses psycopg; remove --driver or choose a MySQL deployment"
        )
    for name, default in _SIM_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bluegreen`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _parser()
    args = parser.parse_args(args_list)
    if args.command == "check":
        return _check(args)
    _validate_simulate(commands["simulate"], args)
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
    from bluegreen.sim.netns import ISOLATED_ENV, run_isolated

    if ISOLATED_ENV not in os.environ:
        return run_isolated([sys.executable, "-m", "bluegreen.cli", *args_list])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C (or kill -INT) tears the deployment down even when the command
    # was started with SIGINT ignored (a background job of a script, some CI
    # runners): Python then leaves it ignored unless told otherwise.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _simulate(args)
    except KeyboardInterrupt:
        print("Interrupted; everything has been torn down.", file=sys.stderr)
        return 130


def _check(args: argparse.Namespace) -> int:
    """``bluegreen check``, in this process and its network (never isolated)."""
    from bluegreen._check import command

    try:
        return command(
            args.dsn,
            driver=args.driver,
            sets=args.sets,
            bg_id=args.bg_id,
            timeout=args.timeout,
            as_json=args.json,
            password_prompt=args.password_prompt,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        print("bluegreen check: interrupted.", file=sys.stderr)
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
    from bluegreen.sim.netns import test_hooks

    env.update(test_hooks())
    for key in ("LD_PRELOAD", "NSS_WRAPPER_HOSTS", *test_hooks()):
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
