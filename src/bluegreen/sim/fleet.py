"""Many application processes on one machine, through one switchover.

A :class:`Fleet` starts ``n`` worker processes (``python -m
bluegreen.sim.fleet worker``), each an application of its own: it connects
through bluegreen with the ``bg`` plugin (the first connection starts its
deployment watch, as the leader of the machine's shared monitors or as a
follower), then runs a small workload until told to stop:

- one client opening a connection for every operation, one client on a
  long-lived connection (:class:`~bluegreen.sim.workload.Workload`);
- a probe: a connection opened before the switchover that makes one call
  as soon as its process's plugin sees IN_PROGRESS, so that the time the
  suspended call takes to come back can be compared with when the
  switchover left IN_PROGRESS.

Each worker writes a ready file once its watch has read the deployment, and
a result file (its operation records, the probe, its summary events and
how it shared the monitors) when it stops. Times are ``time.monotonic()``,
which all processes of the machine share.

The workers run in the caller's network namespace and name resolution
(they inherit the environment), so they see the simulated DNS.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .accounting import OpRecord

__all__ = ["DRIVERS", "Fleet", "Probe", "WorkerResult", "monitor_sessions"]

logger = logging.getLogger(__name__)

#: The driver each engine's workers use.
DRIVERS = {"postgres": "psycopg", "mariadb": "pymysql"}
#: How often a worker looks for the stop file (seconds).
_STOP_POLL = 0.05


@dataclass
class Probe:
    """The suspended call of one worker (see the module docstring)."""

    started: float | None = None
    ended: float | None = None
    error: str | None = None


@dataclass
class WorkerResult:
    """What one worker process reported when it stopped."""

    index: int
    pid: int
    sharing: str
    leader_pid: int | None
    records: list[OpRecord]
    probe: Probe
    #: The plugin's summary events in this process: (name, monotonic time).
    events: list[tuple[str, float]]
    #: When this process's routing view left IN_PROGRESS (monotonic).
    left_in_progress: float | None = None
    window: tuple[float, float] | None = None
    log: str = ""

    def event(self, name: str) -> float | None:
        """The monotonic time of the first event ``name``."""
        return next((at for n, at in self.events if n == name), None)


@dataclass
class Fleet:
    """``n`` worker processes connecting to ``host`` of a deployment.

    ``driver`` names the synchronous driver (``psycopg``, ``psycopg2``,
    ``pymysql``, ``mysql-connector``, ``mysqlclient``); ``settings`` are the
    wrapper settings of every connection; ``directory`` holds the workers'
    files."""

    n: int
    engine: str
    driver: str
    connect_kwargs: Mapping[str, Any]
    identities: Mapping[str, tuple[str, str]]
    settings: Mapping[str, Any]
    directory: Path
    pause: float = 0.02
    env: Mapping[str, str] | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def for_deployment(
        cls,
        dep: Any,
        n: int,
        settings: Mapping[str, Any],
        directory: Path,
        *,
        pause: float = 0.02,
    ) -> Fleet:
        """``n`` workers on the name applications use for ``dep`` (its
        writer cluster endpoint, or its writer instance), with the engine's
        first driver (psycopg, PyMySQL)."""
        from .workload import identity_map

        host = dep.blue.cluster_endpoint or dep.blue.writer.endpoint
        return cls(
            n=n,
            engine=dep.engine,
            driver=DRIVERS[dep.engine],
            connect_kwargs=dep.connect_kwargs(host),
            identities=identity_map(
                {"blue": dep.blue.instances, "green": dep.green.instances}
            ),
            settings=settings,
            directory=directory,
            pause=pause,
        )

    def start(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Start the workers one after the other (the first one leads),
        and wait until every one is ready; their ready reports."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "fleet.json"
        config.write_text(
            json.dumps(
                {
                    "engine": self.engine,
                    "driver": self.driver,
                    "connect_kwargs": dict(self.connect_kwargs),
                    "identities": {k: list(v) for k, v in self.identities.items()},
                    "settings": dict(self.settings),
                    "pause": self.pause,
                }
            )
        )
        env = dict(os.environ if self.env is None else self.env)
        deadline = time.monotonic() + timeout
        for i in range(self.n):
            log = open(self.directory / f"w{i}.log", "wb")  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bluegreen.sim.fleet",
                        "worker",
                        str(config),
                        str(i),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            finally:
                log.close()
            self.procs.append(proc)
            if i == 0:
                self._wait_ready([0], deadline)  # the leader, before the others
        return self._wait_ready(list(range(self.n)), deadline)

    def _wait_ready(
        self, indexes: Sequence[int], deadline: float
    ) -> list[dict[str, Any]]:
        ready: dict[int, dict[str, Any]] = {}
        while len(ready) < len(indexes):
            for i in indexes:
                if i in ready:
                    continue
                path = self.directory / f"w{i}.ready"
                if path.exists():
                    with contextlib.suppress(ValueError):
                        ready[i] = json.loads(path.read_text())
                elif self.procs[i].poll() is not None:
                    raise RuntimeError(
                        f"fleet worker {i} exited ({self.procs[i].returncode}) "
                        f"before it was ready:\n{self.log(i)}"
                    )
            if len(ready) < len(indexes):
                if time.monotonic() > deadline:
                    missing = sorted(set(indexes) - set(ready))
                    raise RuntimeError(
                        f"fleet workers {missing} not ready in time:\n"
                        + "\n".join(self.log(i) for i in missing)
                    )
                time.sleep(0.05)
        return [ready[i] for i in indexes]

    def log(self, index: int) -> str:
        path = self.directory / f"w{index}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def kill(self, pid: int) -> None:
        """SIGKILL one worker (it writes no result)."""
        os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            if proc.pid == pid:
                proc.wait(10)

    def stop(self, timeout: float = 60.0) -> list[WorkerResult]:
        """Stop every worker still running and read their results (the
        killed ones have none)."""
        (self.directory / "stop").write_text("")
        deadline = time.monotonic() + timeout
        # Every worker writes its result before any of them closes its
        # watch: a leader closing first would hand the lead to a follower
        # still reporting how it shared the monitors.
        for i, proc in enumerate(self.procs):
            path = self.directory / f"w{i}.json"
            while not path.exists() and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        (self.directory / "exit").write_text("")
        results = []
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                proc.wait(10)
                raise RuntimeError(
                    f"fleet worker {i} did not stop:\n{self.log(i)}"
                ) from exc
            path = self.directory / f"w{i}.json"
            if proc.returncode == -signal.SIGKILL:
                continue
            if proc.returncode != 0 or not path.exists():
                raise RuntimeError(
                    f"fleet worker {i} failed ({proc.returncode}):\n{self.log(i)}"
                )
            results.append(_load_result(json.loads(path.read_text()), self.log(i)))
        return results

    def close(self) -> None:
        """Kill whatever still runs (teardown)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)


def monitor_sessions(instances: Sequence[Any]) -> int:
    """The wrapper's monitoring sessions open on ``instances``, counted by
    the servers (:meth:`~bluegreen.sim._base.Instance.client_sessions`)."""
    from bluegreen.bg._monitor import MONITOR_CLIENT_NAME

    return sum(inst.client_sessions(MONITOR_CLIENT_NAME) for inst in instances)


def _load_result(data: dict[str, Any], log: str) -> WorkerResult:
    return WorkerResult(
        index=int(data["index"]),
        pid=int(data["pid"]),
        sharing=str(data["sharing"]),
        leader_pid=data["leader_pid"],
        records=[OpRecord(**r) for r in data["records"]],
        probe=Probe(**data["probe"]),
        events=[(str(n), float(at)) for n, at in data["events"]],
        left_in_progress=data["left_in_progress"],
        window=tuple(data["window"]) if data["window"] else None,
        log=log,
    )


# -- the worker process ---------------------------------------------------------


def _driver_target(driver: str) -> Any:
    if driver == "psycopg":
        import psycopg

        return psycopg.connect
    if driver == "psycopg2":
        import psycopg2

        return psycopg2.connect
    if driver == "pymysql":
        import pymysql

        return pymysql.connect
    if driver == "mysql-connector":
        import mysql.connector

        return mysql.connector.connect
    if driver == "mysqlclient":
        import MySQLdb

        return MySQLdb.connect
    raise ValueError(f"unknown driver {driver!r}")


def _timeouts(engine: str, driver: str) -> dict[str, Any]:
    if engine == "postgres":
        return {"connect_timeout": 3}
    if driver == "mysql-connector":
        return {"connection_timeout": 3}
    return {"connect_timeout": 3, "read_timeout": 5, "write_timeout": 5}


class _ProbeThread(threading.Thread):
    """Makes one call on ``conn`` as soon as the watch sees IN_PROGRESS."""

    def __init__(self, conn: Any, bg_id: str, stop: threading.Event) -> None:
        super().__init__(name="fleet-probe", daemon=True)
        self.conn = conn
        self.bg_id = bg_id
        self.stop = stop
        self.probe = Probe()
        self.left_in_progress: float | None = None

    def run(self) -> None:
        from bluegreen.bg._watch import watches

        watch = watches().find(self.bg_id)
        while not self.stop.is_set():
            if watch is not None and watch.view.phase.name == "IN_PROGRESS":
                break
            time.sleep(0.002)
        else:
            return
        self.probe.started = time.monotonic()
        try:
            cur = self.conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchall()
        except Exception as exc:  # dropped at IN_PROGRESS
            self.probe.error = f"{type(exc).__name__}: {exc}"
        self.probe.ended = time.monotonic()
        while not self.stop.is_set() and self.left_in_progress is None:
            if watch is not None and watch.view.phase.name != "IN_PROGRESS":
                self.left_in_progress = time.monotonic()
            time.sleep(0.002)


def _worker(config_path: Path, index: int) -> int:
    import bluegreen
    import bluegreen.bg
    from bluegreen.bg._watch import watches
    from bluegreen.sim.workload import ClientKind, Workload

    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s w{index} %(name)s %(levelname)s %(message)s",
    )
    cfg = json.loads(config_path.read_text())
    directory = config_path.parent
    engine, driver = cfg["engine"], cfg["driver"]
    settings = dict(cfg["settings"])
    bg_id = str(settings.get("bg_id", "1"))
    target = _driver_target(driver)
    kwargs = {**cfg["connect_kwargs"], **_timeouts(engine, driver), "autocommit": True}

    def connect(**extra: Any) -> Any:
        return bluegreen.connect(target, **kwargs, **settings, **extra)

    # The first connection starts this process's watch (leader or follower).
    first = connect()
    deadline = time.monotonic() + 30
    while True:
        st = bluegreen.bg.status(bg_id)
        if st is not None and st.protected:
            break
        if time.monotonic() > deadline:
            print(f"not ready: {st}", flush=True)
            return 2
        time.sleep(0.02)
    first.close()
    probe_conn = connect(bg_reconnect=False)
    (directory / f"w{index}.ready").write_text(
        json.dumps({"pid": os.getpid(), "sharing": st.sharing, "leader": st.leader_pid})
    )
    identities = {k: (v[0], v[1]) for k, v in cfg["identities"].items()}
    plain = {k: v for k, v in cfg["connect_kwargs"].items()}
    bound = _bound(target, settings)
    workloads = [
        Workload(
            engine,
            [ClientKind(mode, bound, 1)],
            plain,
            identities,
            mode=mode,
            pause=cfg["pause"],
            first_id=_first_id(index, n),
        )
        for n, mode in enumerate(("per-op", "long-lived"))
    ]
    stop = threading.Event()
    prober = _ProbeThread(probe_conn, bg_id, stop)
    prober.start()
    for w in workloads:
        w.start()
    stop_file = directory / "stop"
    while not stop_file.exists():
        time.sleep(_STOP_POLL)
    records: list[OpRecord] = []
    for w in workloads:
        records.extend(w.stop())
    stop.set()
    prober.join(10)
    probe_conn.close()
    windows = [w.window for w in workloads if w.window is not None]
    watch = watches().find(bg_id)
    st = bluegreen.bg.status(bg_id)
    result = {
        "index": index,
        "pid": os.getpid(),
        "sharing": st.sharing if st is not None else "none",
        "leader_pid": st.leader_pid if st is not None else None,
        "records": [dataclasses.asdict(r) for r in records],
        "probe": dataclasses.asdict(prober.probe),
        "events": [[e.name, e.mono] for e in watch.tracker.events] if watch else [],
        "left_in_progress": prober.left_in_progress,
        "window": [min(a for a, _ in windows), max(b for _, b in windows)]
        if windows
        else None,
    }
    tmp = directory / f"w{index}.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.rename(directory / f"w{index}.json")
    exit_file = directory / "exit"
    while not exit_file.exists():
        time.sleep(_STOP_POLL)
    bluegreen.bg.shutdown()
    return 0


def _first_id(index: int, workload: int) -> int:
    """A write id range of its own for each workload of each worker of
    this run (a billion ids each)."""
    run = int(time.time()) % 10**6
    return (run * 1000 + index * 2 + workload) * 10**9 + 1


def _bound(target: Any, settings: Mapping[str, Any]) -> Any:
    import functools

    import bluegreen

    return functools.partial(bluegreen.connect, target, **settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bluegreen.sim.fleet")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run one worker (started by Fleet)")
    w.add_argument("config", type=Path)
    w.add_argument("index", type=int)
    args = parser.parse_args(argv)
    return _worker(args.config, args.index)


if __name__ == "__main__":
    sys.exit(main())
