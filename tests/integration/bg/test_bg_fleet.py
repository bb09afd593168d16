"""One set of monitors per machine: worker processes through a switchover.

Each case starts a deployment and a fleet of worker processes
(:mod:`bluegreen.sim.fleet`), every one an application connecting through
bluegreen with the same ``bg_id``: the first becomes the leader and runs the
monitors, the others follow its view. The servers count the monitoring
sessions (``application_name`` / the ``program_name`` connection
attribute). Then the switchover plays, and every worker must show what a
process monitoring alone shows in the scenario matrix:

- no operation reached the old blue after the switchover;
- no operation waited past ``bg_connect_timeout_ms`` (plus slack);
- the call each worker made in IN_PROGRESS came back soon after the leader
  saw the switchover leave IN_PROGRESS (followers are woken, they do not
  poll).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bgharness import settings_for, wait_for

from bluegreen.bg._share import SIZE, share_key
from bluegreen.sim import scenarios
from bluegreen.sim.accounting import OpRecord, role_at
from bluegreen.sim.deployment import KINDS, Deployment
from bluegreen.sim.fleet import Fleet, WorkerResult, monitor_sessions
from bluegreen.sim.scenario import ScenarioPlayer
from bluegreen.sim.workload import prepare_table

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SPEED = 10.0
WORKERS = 8
CONNECT_TIMEOUT_MS = 2500
#: What an operation may take on top of the plugin's longest wait.
OP_SLACK = 1.5
#: How soon after the leader saw POST a suspended call must be back, in
#: every process (the target is 100 ms; this leaves room for a loaded
#: 2-core machine running eight workers, the servers and the player).
WAKE_BOUND = 0.75


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(dep: Deployment, n: int = WORKERS, **settings: Any) -> Fleet:
        fleet = Fleet.for_deployment(
            dep,
            n,
            {
                **settings_for(SPEED, bg_connect_timeout_ms=CONNECT_TIMEOUT_MS),
                **settings,
            },
            tmp_path / f"fleet{len(made)}",
        )
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()


class SessionCounter(threading.Thread):
    """Counts the deployment's monitoring sessions on the servers every
    0.1 s while the block runs."""

    def __init__(self, dep: Deployment) -> None:
        super().__init__(name="fleet-session-counter", daemon=True)
        self.dep = dep
        self.counts: list[int] = []
        self.last = -1
        self._halt = threading.Event()

    @property
    def most(self) -> int:
        return max(self.counts, default=0)

    def run(self) -> None:
        while not self._halt.wait(0.1):
            try:
                self.last = monitor_sessions(self.dep.instances)
            except Exception:  # an instance refusing logins in IN_PROGRESS
                continue
            self.counts.append(self.last)

    def __enter__(self) -> SessionCounter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join(10)


def start_deployment(factory: Callable[..., Deployment], kind: str) -> Deployment:
    options = {"performance_schema": True} if kind.endswith("mysql") else {}
    dep = factory(kind, readers=1, **options)
    prepare_table(dep)
    return dep


def check_worker(
    w: WorkerResult, switched_at: float, leader_post: float | None
) -> list[str]:
    """What is wrong with one worker's run (empty: nothing)."""
    problems = []
    old_blue = [r for r in w.records if r.ok and role_at(r, switched_at) == "old-blue"]
    if old_blue:
        problems.append(f"w{w.index}: {len(old_blue)} operations on the old blue")
    limit = CONNECT_TIMEOUT_MS / 1000 + OP_SLACK
    slow = [r for r in w.records if r.end - r.start > limit]
    if slow:
        problems.append(f"w{w.index}: operations past the deadline: {slow[:3]}")
    probe = w.probe
    if probe.started is None or probe.ended is None:
        problems.append(f"w{w.index}: the probe never saw IN_PROGRESS")
    elif leader_post is not None and probe.ended - leader_post > WAKE_BOUND:
        problems.append(
            f"w{w.index}: the suspended call came back "
            f"{probe.ended - leader_post:.3f} s after the leader saw POST"
        )
    return problems


def failures_after(records: list[OpRecord], at: float) -> list[OpRecord]:
    return [r for r in records if not r.ok and r.start >= at]


@pytest.mark.parametrize("kind", KINDS)
def test_eight_workers_share_two_monitoring_sessions_through_a_switchover(
    kind: str,
    deployment_factory: Callable[..., Deployment],
    scenario_player: Callable[..., ScenarioPlayer],
    fleet_factory: Callable[..., Fleet],
    runtime_dir: Path,
) -> None:
    dep = start_deployment(deployment_factory, kind)
    fleet = fleet_factory(dep)
    ready = fleet.start()
    leaders = [r for r in ready if r["sharing"] == "leader"]
    assert len(leaders) == 1, ready
    assert ready[0]["sharing"] == "leader"
    leader_pid = leaders[0]["pid"]
    assert all(r["sharing"] == "follower" for r in ready[1:]), ready
    assert all(r["leader"] == leader_pid for r in ready), ready
    sc = scenarios.get("switchover")
    with SessionCounter(dep) as sessions:
        player = scenario_player(dep, sc, speed=SPEED, until=sc.settled_at + 0.5)
        assert player.wait(timeout=120), "the scenario did not finish"
        player.check()
        # Two again after the switchover (the monitors reconnected).
        wait_for(lambda: sessions.last == 2, 10, "two monitors")
    # The servers saw one blue and one green monitoring session at most,
    # whatever the number of processes.
    assert sessions.most == 2, sessions.counts
    # The shared files hold no secret.
    shared = [p.read_bytes() for p in runtime_dir.iterdir() if p.is_file()]
    assert shared
    for secret in {i.app_password for i in dep.instances} | {
        i.admin_password for i in dep.instances
    }:
        assert not any(secret.encode() in data for data in shared)
    results = fleet.stop()
    assert len(results) == WORKERS
    switched = player.event("SWITCHED")
    assert switched is not None
    switched_at = player.monotonic_at(switched.offset)
    leader = next(w for w in results if w.pid == leader_pid)
    leader_post = leader.event("POST")
    assert leader_post is not None, leader.events
    problems = [p for w in results for p in check_worker(w, switched_at, leader_post)]
    assert not problems, "\n".join(problems)
    for w in results:
        assert w.sharing == ("leader" if w.pid == leader_pid else "follower")
        # Every follower followed the switchover through to the end.
        names = [n for n, _ in w.events]
        assert "COMPLETED" in names, (w.index, names)
        # Nothing that began once the hosts were back failed.
        post = w.event("POST")
        assert post is not None
        assert not failures_after(w.records, post + 0.5), (w.index, w.log[-2000:])


def test_leader_killed_in_preparation_and_in_progress(
    deployment_factory: Callable[..., Deployment],
    scenario_player: Callable[..., ScenarioPlayer],
    fleet_factory: Callable[..., Fleet],
) -> None:
    """SIGKILL the leader during PREPARATION, then its successor during
    IN_PROGRESS: each time another worker takes over within about a second,
    and no worker waits past its deadline or reaches the old blue."""
    dep = start_deployment(deployment_factory, "rds-postgres")
    fleet = fleet_factory(dep, n=4)
    ready = fleet.start()
    first_leader = ready[0]["pid"]
    assert ready[0]["sharing"] == "leader"
    sc = scenarios.get("switchover")
    player = scenario_player(dep, sc, speed=SPEED / 2, until=sc.settled_at + 0.5)
    killed: list[tuple[int, float]] = []

    def kill_leader_in(phase: str, leader: int) -> int:
        """Kill ``leader`` once the player reaches ``phase``; the new leader."""
        assert player.wait_event(phase, timeout=60) is not None, phase
        time.sleep(0.05)
        fleet.kill(leader)
        killed.append((leader, time.monotonic()))

        def taken_over() -> int | None:
            for i, pid in enumerate(fleet.pids):
                if pid in {k for k, _ in killed}:
                    continue
                path = fleet.directory / f"w{i}.log"
                if "runs the monitors for the machine now" in path.read_text():
                    return pid
            return None

        new = wait_for(taken_over, 3.0, f"a new leader after {phase}", step=0.02)
        return int(new)

    second = kill_leader_in("PREPARATION", first_leader)
    kill_leader_in("IN_PROGRESS", second)
    assert player.wait(timeout=120), "the scenario did not finish"
    player.check()
    wait_for(lambda: monitor_sessions(dep.instances) == 2, 10, "two monitors")
    results = fleet.stop()
    assert len(results) == 2
    switched = player.event("SWITCHED")
    assert switched is not None
    switched_at = player.monotonic_at(switched.offset)
    problems = [p for w in results for p in check_worker(w, switched_at, None)]
    assert not problems, "\n".join(problems)
    assert sorted(w.sharing for w in results) == ["follower", "leader"]
    for w in results:
        assert "COMPLETED" in [n for n, _ in w.events], w.events


def test_without_sharing_every_process_monitors_alone(
    deployment_factory: Callable[..., Deployment],
    fleet_factory: Callable[..., Fleet],
) -> None:
    dep = start_deployment(deployment_factory, "aurora-mysql")
    fleet = fleet_factory(dep, n=3, bg_share_monitors=False)
    ready = fleet.start()
    assert [r["sharing"] for r in ready] == ["alone"] * 3
    assert sorted(r["leader"] for r in ready) == sorted(fleet.pids)
    # Before a deployment exists each process monitors blue only.
    assert monitor_sessions(dep.instances) == 3
    results = fleet.stop()
    assert all(w.sharing == "alone" for w in results)


def test_a_garbage_view_file_makes_every_process_monitor_alone(
    deployment_factory: Callable[..., Deployment],
    fleet_factory: Callable[..., Fleet],
    runtime_dir: Path,
) -> None:
    """A malformed shared file is refused by each process with a warning,
    and each monitors on its own (real processes, real servers)."""
    dep = start_deployment(deployment_factory, "rds-postgres")
    fleet = fleet_factory(dep, n=2)
    kw = fleet.connect_kwargs
    key = share_key("1", kw["host"], kw["port"], kw["user"])
    view = runtime_dir / f"{key}.view"
    view.write_bytes(os.urandom(SIZE))
    view.chmod(0o600)
    ready = fleet.start()
    assert [r["sharing"] for r in ready] == ["alone", "alone"]
    # Before a deployment exists each process monitors blue only: one
    # session each, where a shared set would have one in all.
    assert monitor_sessions(dep.instances) == 2
    for i in range(2):
        assert "are not shared" in fleet.log(i) and "malformed" in fleet.log(i)
    fleet.stop()
