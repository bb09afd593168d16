"""Switchover benchmark: raw driver, bluegreen and the AWS wrapper side by side.

Builds one simulated blue/green deployment, starts the same workload through
three client groups at once and plays one switchover scenario against all of
them, so that every group meets exactly the same events:

* ``raw driver``: the driver's own ``connect``;
* ``bluegreen``: ``bluegreen.connect(<driver connect>, plugins="bg", ...)``;
* ``aws wrapper``: the AWS Advanced Python Wrapper
  (``aws-advanced-python-wrapper``) with its ``bg`` plugin,
  ``AwsWrapperConnection.connect(<driver connect>, "", plugins="bg", ...)``,
  when it is installed and works against the simulator.  Before the scenario
  a probe connection checks it: if the wrapper is missing, the connection
  fails (it supports psycopg and mysql-connector-python, not PyMySQL) or its
  dialect detection picks a dialect without blue/green support, the group is
  reported unavailable with the reason.

Both wrappers get the same ``bg`` settings: the status intervals of the
defaults are for deployments that exist for minutes before a switchover; the
scenario provisions the metadata 8 s before IN_PROGRESS, so the baseline and
increased intervals are 1 s and the high one 100 ms, all divided by
``--speed``.

Reported per group (definitions in ``switchover_report.py``): failed
operations, longest stall, old-blue writes, stale reads, lost writes and
downtime per client, as a markdown table; the targets next to the wrappers'
figures; a PNG timeline (one row per group, one lane per client, each
operation coloured by outcome, the scenario events as vertical lines, x in
seconds from the start of IN_PROGRESS); optionally everything as JSON.

As ``bluegreen simulate``, the workload stops 3 scenario seconds after the
scenario settled (COMPLETED for a switchover).

Run it (it re-executes itself inside the simulator's private network
namespace when needed)::

    .venv/bin/python -m bluegreen.sim.netns -- \\
        .venv/bin/python benchmarks/switchover.py --deployment aurora-postgres
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from switchover_report import (
    GroupResult,
    RunResult,
    in_progress_window,
    markdown_table,
    plot_timeline,
    summarize_group,
    targets_table,
    write_json,
)

if TYPE_CHECKING:
    from bluegreen.sim.deployment import Deployment
    from bluegreen.sim.metadata import MetadataController

KINDS = ("aurora-postgres", "rds-postgres", "aurora-mysql", "rds-mysql")
RAW, BLUEGREEN, AWS = "raw driver", "bluegreen", "aws wrapper"
#: Scenario seconds the workload keeps running after the scenario settled.
TAIL = 3.0
RESULTS = Path(__file__).resolve().parent / "results"
#: Loggers whose warnings are counted and summarized after the run.
_WATCHED = ("bluegreen", "aws_advanced_python_wrapper")

logger = logging.getLogger("benchmarks.switchover")


def _parser() -> argparse.ArgumentParser:
    from bluegreen.sim import scenarios

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deployment", choices=KINDS, default="aurora-postgres")
    p.add_argument(
        "--scenario", choices=sorted(scenarios.SCENARIOS), default="switchover"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="divide every scenario duration by this factor (default 1)",
    )
    p.add_argument("--clients", type=int, default=4, help="clients per group")
    p.add_argument("--readers", type=int, default=1, help="readers per environment")
    p.add_argument(
        "--mode",
        choices=["per-op", "long-lived", "pool"],
        default="per-op",
        help="a connection per operation (default), one per client, or a "
        "SQLAlchemy QueuePool per client (no pre-ping)",
    )
    p.add_argument(
        "--driver",
        choices=["pymysql", "mysql-connector"],
        default="pymysql",
        help="MySQL driver of every group (PostgreSQL always uses psycopg)",
    )
    p.add_argument(
        "--async",
        dest="async_driver",
        nargs="?",
        const="auto",
        choices=["auto", "psycopg", "asyncpg", "aiomysql"],
        help="asyncio clients: every operation of the raw and bluegreen groups "
        "runs as a coroutine on one event loop, through psycopg's "
        "AsyncConnection (default) or asyncpg on PostgreSQL, aiomysql on "
        "MySQL; the AWS wrapper, which has no asyncio support, is left out",
    )
    p.add_argument(
        "--plot",
        type=Path,
        help="PNG path (default benchmarks/results/"
        "switchover-<deployment>-<scenario>.png)",
    )
    p.add_argument("--json", type=Path, help="also write every figure and op here")
    p.add_argument(
        "--gap",
        type=float,
        default=0.5,
        help="downtime counts intervals without a success longer than this (s)",
    )
    p.add_argument(
        "--switchover-timeout",
        type=int,
        metavar="MS",
        help="bg_switchover_timeout_ms of both wrappers, in real milliseconds "
        "(default: the wrappers' own, 180000; for late-completion, the "
        "scenario's intended timeout divided by --speed)",
    )
    p.add_argument("--no-aws", action="store_true", help="leave the AWS wrapper out")
    p.add_argument(
        "--log",
        type=Path,
        help="write the DEBUG logs of bluegreen and the AWS wrapper to this file",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    if (
        args.speed <= 0
        or args.clients < 1
        or args.readers < 0
        or args.gap < 0
        or (args.switchover_timeout is not None and args.switchover_timeout < 1)
    ):
        print(
            "switchover.py: --speed must be > 0, --clients >= 1, --readers and "
            "--gap >= 0, --switchover-timeout >= 1",
            file=sys.stderr,
        )
        return 2
    from bluegreen.sim.netns import ISOLATED_ENV, run_isolated

    if ISOLATED_ENV not in os.environ:
        script = str(Path(__file__).resolve())
        return run_isolated([sys.executable, script, *args_list])
    warnings = _watch_logs(args.verbose, args.log)
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C tears down even when started with SIGINT ignored (see the CLI).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = _benchmark(args, warnings)
    except KeyboardInterrupt:
        print("Interrupted; everything has been torn down.", file=sys.stderr)
        return _exit(130)
    _report(run, args, warnings)
    return _exit(0)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _benchmark(args: argparse.Namespace, warnings: _WarningCounter) -> RunResult:
    from bluegreen.sim.deployment import Deployment
    from bluegreen.sim.scenario import prepare_metadata
    from bluegreen.sim.workload import prepare_table

    t0 = time.monotonic()
    print(
        f"Building a simulated {args.deployment} deployment "
        f"({args.readers} reader(s) per side)."
    )
    dep = Deployment.create(
        args.deployment,
        readers=args.readers,
        on_progress=lambda m: print(f"  {m}", flush=True),
    )
    try:
        dep.start()
        metadata = prepare_metadata(dep)
        prepare_table(dep)
        print(f"Ready after {time.monotonic() - t0:.1f} s.", flush=True)
        return _play(dep, metadata, args)
    finally:
        warnings.active = False  # what teardown logs is not part of the run
        _release_aws()
        print("Tearing the deployment down.", flush=True)
        dep.stop()


def _play(
    dep: Deployment, metadata: MetadataController, args: argparse.Namespace
) -> RunResult:
    import bluegreen
    from bluegreen.sim import scenarios
    from bluegreen.sim.aioclients import ASYNC_DRIVERS, LoopThread, facade_connect
    from bluegreen.sim.scenario import ScenarioPlayer, format_timeline
    from bluegreen.sim.workload import (
        ClientKind,
        Workload,
        bg_settings,
        connect_function,
        identity_map,
        written_ids,
    )

    scenario = scenarios.get(args.scenario)
    host = dep.blue.cluster_endpoint or dep.blue.writer.endpoint
    kwargs = dep.connect_kwargs(host)
    settings = bg_settings(args.speed)
    timeout_ms = args.switchover_timeout
    if timeout_ms is None and args.scenario == "late-completion":
        timeout_ms = round(scenarios.LATE_TIMEOUT * 1000 / args.speed)
    if timeout_ms is not None:
        settings["bg_switchover_timeout_ms"] = timeout_ms
        print(f"bg_switchover_timeout_ms: {timeout_ms} (both wrappers).", flush=True)
    n = args.clients
    loop_thread: LoopThread | None = None
    driver = "psycopg" if dep.engine == "postgres" else args.driver
    if args.async_driver:
        driver = args.async_driver
        if driver == "auto":
            driver = ASYNC_DRIVERS[dep.engine][0]
        if driver not in ASYNC_DRIVERS[dep.engine]:
            raise SystemExit(f"--async {driver} does not serve {dep.engine}")
        loop_thread = LoopThread()
        bg_settings_all = {"plugins": "bg", **settings}
        kinds = [
            ClientKind(
                RAW, facade_connect(loop_thread, driver, via_bluegreen=False), n
            ),
            ClientKind(
                BLUEGREEN, facade_connect(loop_thread, driver, bg_settings_all), n
            ),
        ]
        driver = f"{driver} (asyncio)"
    else:
        raw = connect_function(dep.engine, via_bluegreen=False, driver=args.driver)
        kinds = [
            ClientKind(RAW, raw, n),
            ClientKind(
                BLUEGREEN,
                functools.partial(bluegreen.connect, raw, plugins="bg", **settings),
                n,
            ),
        ]
    groups = [GroupResult(RAW, n), GroupResult(BLUEGREEN, n)]
    aws = GroupResult(AWS, n)
    if args.no_aws:
        aws.available, aws.reason = False, "left out (--no-aws)"
    elif loop_thread is not None:
        aws.available, aws.reason = False, "no asyncio support (--async)"
    else:
        print("Probing the AWS Advanced Python Wrapper.", flush=True)
        connector = _aws_group(aws, dep.engine, args.driver, settings, kwargs)
        if connector is not None:
            kinds.append(ClientKind(AWS, connector, n))
            print(f"  available: {aws.note}", flush=True)
            if aws.caveat:
                print(f"  caveat: {aws.caveat}", flush=True)
        else:
            print(f"  unavailable: {aws.reason}", flush=True)
    groups.append(aws)

    workload = Workload(
        dep.engine,
        kinds,
        kwargs,
        identity_map({"blue": dep.blue.instances, "green": dep.green.instances}),
        mode=args.mode,
    )
    settled = scenario.settled_at if scenario.settled_at is not None else scenario.end
    until = settled + TAIL
    player = ScenarioPlayer(
        dep,
        scenario,
        metadata=metadata,
        dns=dep.dns,
        speed=args.speed,
        until=until,
    )
    print(
        f"Playing '{scenario.name}' at speed {args.speed:g}: {n} {args.mode} "
        f"client(s) per group on {host}; bg settings {settings}.",
        flush=True,
    )
    workload.start()
    try:
        with player:
            player.wait_offset(until)
            player.wait(timeout=30)
            # Every client's figures end here, also for one still blocked in
            # an operation (Workload.window would end after the joins).
            stopped = time.monotonic()
            records = workload.stop()
            stuck = _stuck_clients()
            player.check()
    except BaseException:
        workload.stop(timeout=2.0)
        raise
    finally:
        if loop_thread is not None:
            loop_thread.close()
    timeline = list(player.timeline)
    switched = player.event("SWITCHED")
    switched_at = player.monotonic_at(switched.offset) if switched else None
    window = in_progress_window(timeline)
    zero_offset = window[0] if window else 0.0
    zero = player.monotonic_at(zero_offset)
    final = dep.green.writer if player.switched else dep.blue.writer
    final_ids = written_ids(final)
    print(f"\nEvent timeline ({scenario.name}, offsets in scenario time):")
    print(format_timeline(timeline))
    assert workload.window is not None
    measured = (workload.window[0], stopped)
    began = player.event("IN_PROGRESS")
    dropped = player.event("Connections dropped")
    for g in groups:
        g.stuck = stuck[g.group]
        if g.available:
            summarize_group(
                g,
                records,
                switched_at=switched_at,
                final_ids=final_ids,
                window=measured,
                gap=args.gap,
                in_progress_at=player.monotonic_at(began.offset) if began else None,
                dropped_at=player.monotonic_at(dropped.offset) if dropped else None,
            )
    return RunResult(
        deployment=args.deployment,
        scenario=scenario.name,
        speed=args.speed,
        mode=args.mode,
        driver=driver,
        settings=settings,
        timeline=timeline,
        records=records,
        groups=groups,
        window=measured,
        zero=zero,
        zero_offset=zero_offset,
        switched_at=switched_at,
        in_progress=None if window is None else (window[1] - window[0]) / args.speed,
        gap=args.gap,
        extra={"host": host, "clients_per_group": n, "final_primary": final.name},
    )


def _stuck_clients() -> Counter[str]:
    """Per group, the workload clients still inside an operation after
    :meth:`Workload.stop` gave up waiting for them (threads are named
    ``bluegreen-workload-<group>-<n>``)."""
    prefix = "bluegreen-workload-"
    return Counter(
        t.name[len(prefix) :].rsplit("-", 1)[0]
        for t in threading.enumerate()
        if t.name.startswith(prefix) and t.is_alive()
    )


# -- the AWS Advanced Python Wrapper -------------------------------------------


def _aws_group(
    group: GroupResult,
    engine: str,
    driver: str,
    settings: dict[str, int],
    kwargs: dict[str, Any],
) -> Any:
    """The AWS wrapper's connect function if a probe connection through it
    works and its dialect supports blue/green; else ``None`` (with
    ``group.reason`` set)."""
    try:
        # import_module: the wrapper is optional and ships no type information.
        aws = importlib.import_module("aws_advanced_python_wrapper")
        dialects = importlib.import_module(
            "aws_advanced_python_wrapper.database_dialect"
        )
    except ImportError as exc:
        group.available = False
        group.reason = (
            f"aws-advanced-python-wrapper is not installed ({exc}); "
            "pip install aws-advanced-python-wrapper"
        )
        return None
    version = importlib.metadata.version("aws-advanced-python-wrapper")
    target: Any
    timeouts: dict[str, Any] = {"connect_timeout": 3, "autocommit": True}
    if engine == "postgres":
        import psycopg

        target = psycopg.Connection.connect
    elif driver == "mysql-connector":
        import mysql.connector

        target = mysql.connector.Connect
        timeouts = {"connection_timeout": 3, "autocommit": True}
    else:
        import pymysql

        target = pymysql.connect
    connect = functools.partial(
        aws.AwsWrapperConnection.connect, target, "", plugins="bg", **settings
    )
    try:
        conn = connect(**kwargs, **timeouts)
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchone()
            cur.close()
            service = getattr(conn, "_plugin_service", None)
            dialect = getattr(service, "database_dialect", None)
            failing = [] if dialect is None else _failing_queries(conn, dialect)
        finally:
            conn.close()
    except Exception as exc:
        group.available = False
        group.reason = f"a probe connection failed: {type(exc).__name__}: {exc}"
        if driver == "pymysql" and engine != "postgres":
            group.reason += (
                " (the wrapper supports psycopg and mysql-connector-python, "
                "not PyMySQL: try --driver mysql-connector)"
            )
        return None
    name = type(dialect).__name__ if dialect is not None else "unknown"
    if dialect is not None and not isinstance(dialect, dialects.BlueGreenDialect):
        group.available = False
        group.reason = (
            f"its dialect detection chose {name}, which has no blue/green "
            "support: the bg plugin could only pass through"
        )
        return None
    group.note = f"aws-advanced-python-wrapper {version}, detected dialect {name}"
    if failing:
        group.caveat = "queries of its dialect fail on the simulator: " + "; ".join(
            failing
        )
        if hasattr(dialect, "writer_id_query"):
            group.caveat += (
                ". Its topology monitor then never finds the writer, and each "
                "blue/green status poll waits up to 5 s for a topology refresh, "
                "so it sees phases late and can miss IN_PROGRESS"
            )
        if engine != "postgres":
            group.caveat += (
                ". MariaDB, which plays MySQL here, cannot define Aurora MySQL's "
                "@@aurora_server_id or any information_schema table "
                "(docs/simulator.md): a gap of the simulator, not of the wrapper"
            )
    return connect


def _failing_queries(conn: Any, dialect: Any) -> list[str]:
    """The AWS wrapper dialect's host and topology queries that fail here."""
    from bluegreen.sim.accounting import error_key

    names = ["host_id_query"]
    if hasattr(dialect, "writer_id_query"):  # an Aurora (topology-aware) dialect
        names += ["topology_query", "writer_id_query"]
    failing = []
    for name in names:
        sql = getattr(dialect, name, None)
        if not isinstance(sql, str):
            continue
        try:
            cur = conn.cursor()
            try:
                cur.execute(sql)
                cur.fetchall()
            finally:
                cur.close()
        except Exception as exc:
            failing.append(f"{name}: {error_key(f'{type(exc).__name__}: {exc}', 110)}")
    return failing


def _release_aws() -> None:
    """Stop the AWS wrapper's monitors and thread pools, if it was loaded."""
    module = sys.modules.get("aws_advanced_python_wrapper")
    if module is None:
        return
    try:
        module.release_resources()
    except Exception:
        logger.warning("Releasing the AWS wrapper's resources failed.", exc_info=True)


# -- output -----------------------------------------------------------------------


class _WarningCounter(logging.Handler):
    """Counts the distinct warnings of the watched loggers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.active = True

    def emit(self, record: logging.LogRecord) -> None:
        from bluegreen.sim.accounting import error_key

        if not self.active or not record.name.startswith(_WATCHED):
            return
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.counts[(record.name, error_key(message, 300))] += 1


def _watch_logs(verbose: bool, path: Path | None) -> _WarningCounter:
    """Count the warnings; with ``verbose`` log INFO to stderr, with ``path``
    DEBUG of the watched loggers to that file."""
    counter = _WarningCounter()
    root = logging.getLogger()
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(counter)
    layout = logging.Formatter(
        "%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"
    )
    if verbose:
        stream = logging.StreamHandler()
        stream.setFormatter(layout)
        root.addHandler(stream)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(path, mode="w")
        to_file.setFormatter(layout)
        to_file.addFilter(lambda r: r.name.startswith(_WATCHED))
        root.addHandler(to_file)
        root.setLevel(logging.DEBUG)
        if verbose:
            root.handlers[-2].setLevel(logging.INFO)
    return counter


def _report(
    run: RunResult, args: argparse.Namespace, warnings: _WarningCounter
) -> None:
    print(
        f"\nOutcome per client group ({run.mode} workload, {args.clients} client(s) "
        f"per group, driver {run.driver}, final primary "
        f"{run.extra['final_primary']}; downtime counts gaps > {run.gap:g} s):\n"
    )
    print(markdown_table(run))
    print("\nTargets:\n")
    print(targets_table(run, [BLUEGREEN, AWS]))
    if warnings.counts:
        print("\nWarnings logged during the run (most frequent first):")
        for (name, message), count in warnings.counts.most_common(8):
            print(f"  {count} x {name}: {message}")
    plot = args.plot or RESULTS / f"switchover-{run.deployment}-{run.scenario}.png"
    title = (
        f"'{run.scenario}' on a simulated {run.deployment} deployment: "
        f"{run.mode} workload, {args.clients} client(s) per group, "
        f"{run.driver}, speed {run.speed:g}"
    )
    plot_timeline(run, plot, title)
    print(f"\nTimeline plot: {plot}")
    if args.json:
        write_json(run, args.json)
        print(f"JSON: {args.json}")


def _exit(code: int) -> int:
    """``code``, or leave at once if threads that the AWS wrapper started
    would keep the interpreter from exiting."""
    deadline = time.monotonic() + 5.0
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()
        ]
        if not left or time.monotonic() > deadline:
            break
        left[0].join(max(0.0, deadline - time.monotonic()))
    if left:
        print(
            f"Leaving {len(left)} non-daemon thread(s) behind "
            f"({', '.join(sorted({t.name for t in left}))}).",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
