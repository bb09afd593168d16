"""Switchover scenarios as data, and the player that acts them out.

A :class:`Scenario` is a list of timed :class:`Step` objects: an offset in
seconds relative to the start of IN_PROGRESS (negative offsets come before
it), an action name and its arguments.  Tests build their own scenarios from
the same actions (see :data:`ACTIONS`).  :class:`ScenarioPlayer` plays one
against a running deployment in a background thread, dividing every duration
by a speed factor, and records an event timeline.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bluegreen.sim import metadata as md
from bluegreen.sim._base import for_each
from bluegreen.sim.names import green_to_blue_name, switchover_name

__all__ = [
    "ACTIONS",
    "Event",
    "Scenario",
    "ScenarioError",
    "ScenarioPlayer",
    "Step",
    "format_event",
    "format_timeline",
    "initial_rows",
    "prepare_metadata",
]

logger = logging.getLogger(__name__)


class ScenarioError(Exception):
    """A scenario is malformed or one of its actions failed."""


@dataclass(frozen=True)
class Step:
    """One action at ``at`` seconds from the start of IN_PROGRESS."""

    at: float
    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    #: Timeline label recorded when the step runs (default: none).
    event: str | None = None


@dataclass(frozen=True)
class Scenario:
    """A named, described list of steps (kept sorted by offset)."""

    name: str
    description: str
    steps: tuple[Step, ...]
    #: Offset (s) after which a workload may stop: the switchover is over.
    settled_at: float | None = None

    def __post_init__(self) -> None:
        unknown = sorted({s.action for s in self.steps} - set(ACTIONS))
        if unknown:
            raise ScenarioError(
                f"scenario {self.name!r} uses unknown actions {unknown}"
            )
        object.__setattr__(self, "steps", tuple(sorted(self.steps, key=lambda s: s.at)))

    @property
    def start(self) -> float:
        """Offset of the first step."""
        return self.steps[0].at if self.steps else 0.0

    @property
    def end(self) -> float:
        """Offset of the last step."""
        return self.steps[-1].at if self.steps else 0.0

    def event_offsets(self) -> dict[str, float]:
        """Timeline label -> offset, as defined (first occurrence)."""
        out: dict[str, float] = {}
        for step in self.steps:
            if step.event and step.event not in out:
                out[step.event] = step.at
        return out

    def until(self, offset: float) -> Scenario:
        """The same scenario without the steps after ``offset``."""
        return Scenario(
            self.name,
            self.description,
            tuple(s for s in self.steps if s.at <= offset),
            self.settled_at,
        )


@dataclass(frozen=True)
class Event:
    """One line of the timeline a player records."""

    wall: datetime
    offset: float  #: scenario seconds (already multiplied back by speed)
    event: str
    detail: str = ""


# Actions -----------------------------------------------------------------------
#
# Each action is a function (ctx, **args).  ``ctx`` is the player's
# :class:`_Context`.  Instance selectors in args: "blue", "green", "all",
# "blue-writer", "green-writer".

ActionFn = Callable[["_Context"], None]


class _Context:
    """What actions act on: the deployment, its metadata and DNS."""

    def __init__(
        self, deployment: Any, metadata: md.MetadataController, dns: Any
    ) -> None:
        self.deployment = deployment
        self.metadata = metadata
        self.dns = dns
        self.paused: list[Any] = []
        self.switched = False

    def select(self, which: str) -> list[Any]:
        dep = self.deployment
        table: dict[str, list[Any]] = {
            "blue": list(dep.blue.instances),
            "green": list(dep.green.instances),
            "all": list(dep.blue.instances) + list(dep.green.instances),
            "blue-writer": [dep.blue.writer],
            "green-writer": [dep.green.writer],
        }
        try:
            return table[which]
        except KeyError:
            raise ScenarioError(f"unknown instance selector {which!r}") from None


def initial_rows(deployment: Any, status: str | None) -> list[md.TopologyRow]:
    """One status row per instance: blue = SOURCE, green = TARGET.

    Each row's ``id`` names its instance as RDS does: ``@@server_id`` on
    MySQL, the DBI resource id on PostgreSQL.
    """
    rows = []
    for env, role in (
        (deployment.blue, md.ROLE_SOURCE),
        (deployment.green, md.ROLE_TARGET),
    ):
        for inst in env.instances:
            row_id = inst.server_id if inst.engine == "mariadb" else inst.resource_id
            rows.append(md.TopologyRow(row_id, inst.endpoint, inst.port, role, status))
    return rows


def initial_replicas(env: Any) -> list[md.ReplicaRow]:
    """The Aurora topology of one environment (ids are instance ids)."""
    return [md.ReplicaRow(inst.name, inst is env.writer) for inst in env.instances]


def prepare_metadata(
    deployment: Any, *, present: bool = True, grants: bool | None = None
) -> md.MetadataController:
    """Install the metadata surfaces of ``deployment`` (no rows: NOT_CREATED).

    Aurora deployments also get their cluster topology (one row per
    instance, the writer flagged) on every instance of each environment.
    """
    controller = md.MetadataController(
        deployment.instances,
        flavor="aurora" if deployment.aurora else "rds",
        app_user=deployment.app_user,
        grants=deployment.grant_metadata_access if grants is None else grants,
        extra_users=deployment.metadata_users[1:],
    )
    controller.install(present=present)
    if deployment.aurora:
        for env in (deployment.blue, deployment.green):
            controller.set_replicas(initial_replicas(env), env.instances)
    return controller


def _act_provision(
    ctx: _Context, status: str = md.AVAILABLE, present: bool = True
) -> None:
    """The deployment appears in the metadata; ``present=False``: not yet, the
    metadata sources do not even exist (provisioning delay)."""
    if not present:
        ctx.metadata.set_mode(ctx.metadata.instances, md.MetadataMode.ABSENT)
        return
    ctx.metadata.set_mode(ctx.metadata.instances, md.MetadataMode.OK)
    ctx.metadata.set_rows(initial_rows(ctx.deployment, status))


def _act_status(
    ctx: _Context, status: str | None, which: str = "", drop: str = ""
) -> None:
    targets = ctx.select(which) if which else []
    ctx.metadata.set_status(status, targets, drop_role=drop or None)


def _act_grants(ctx: _Context, granted: bool) -> None:
    ctx.metadata.set_grants(granted)


def _act_metadata_mode(ctx: _Context, which: str, mode: str) -> None:
    ctx.metadata.set_mode(ctx.select(which), mode)


def _act_freeze(ctx: _Context, which: str, frozen: bool = True) -> None:
    ctx.metadata.freeze(ctx.select(which), frozen)


def _act_clear(ctx: _Context, which: str = "") -> None:
    ctx.metadata.clear(ctx.select(which) if which else [])


# Per-instance actions run on every instance side by side (``for_each``): on
# a busy machine each admin round trip waits for the CPU, and done one
# instance after the other they would make the events late.


def _act_stop_writes(ctx: _Context) -> None:
    dep = ctx.deployment
    for_each(lambda i: dep.set_read_only(i, True), [dep.blue.writer, dep.green.writer])


def _act_allow_writes(ctx: _Context, which: str = "blue-writer") -> None:
    for_each(lambda i: ctx.deployment.set_read_only(i, False), ctx.select(which))


def _act_drop_connections(ctx: _Context, which: str = "all") -> None:
    for_each(ctx.deployment.drop_connections, ctx.select(which))


def _act_refuse(ctx: _Context, refuse: bool, which: str = "all") -> None:
    for_each(lambda i: ctx.deployment.refuse_connections(i, refuse), ctx.select(which))


def _act_catch_up(ctx: _Context, timeout: float = 10.0) -> None:
    ctx.deployment.wait_for_replication(timeout=timeout)


def _act_promote(ctx: _Context) -> None:
    """Green takes over: writable green writer, read-only old blue without
    replication."""
    ctx.deployment.promote_green()
    ctx.switched = True


def _act_rename(ctx: _Context) -> None:
    """Green topology changes: metadata endpoints/ids renamed; the old blue
    hosts become reachable under their ``-old1`` names."""
    ctx.metadata.rename()
    dep = ctx.deployment
    dep.rename_hosts()
    if dep.aurora:
        for env in (dep.blue, dep.green):
            ctx.metadata.set_replicas(
                [
                    md.ReplicaRow(switchover_name(r.name), r is env.writer)
                    for r in env.instances
                ],
                [i for i in env.instances if not ctx.metadata.is_frozen(i)],
            )


def _act_blue_dns(ctx: _Context) -> None:
    """Blue names now resolve to the former green addresses."""
    if ctx.dns is None:
        return
    names = ctx.dns.mapping()
    ctx.dns.update(
        {
            green_to_blue_name(n): ip
            for n, ip in names.items()
            if green_to_blue_name(n) != n
        }
    )


def _act_green_dns_remove(ctx: _Context) -> None:
    if ctx.dns is None:
        return
    names = ctx.dns.mapping()
    ctx.dns.update({n: None for n in names if green_to_blue_name(n) != n})


def _act_blackout(ctx: _Context, on: bool) -> None:
    """Every instance unreachable (SIGSTOP) or back."""
    if on:
        for inst in ctx.select("all"):
            inst.pause()
            ctx.paused.append(inst)
    else:
        while ctx.paused:
            ctx.paused.pop().resume()


def _act_mark(ctx: _Context) -> None:
    """Only records the step's event."""


ACTIONS: dict[str, Callable[..., None]] = {
    "provision": _act_provision,
    "status": _act_status,
    "grants": _act_grants,
    "metadata_mode": _act_metadata_mode,
    "freeze": _act_freeze,
    "clear": _act_clear,
    "stop_writes": _act_stop_writes,
    "allow_writes": _act_allow_writes,
    "drop_connections": _act_drop_connections,
    "refuse": _act_refuse,
    "catch_up": _act_catch_up,
    "promote": _act_promote,
    "rename": _act_rename,
    "blue_dns": _act_blue_dns,
    "green_dns_remove": _act_green_dns_remove,
    "blackout": _act_blackout,
    "mark": _act_mark,
}
"""Every action a step may name, with its implementation."""


class ScenarioPlayer:
    """Plays a :class:`Scenario` against a deployment in a background thread.

    ``speed`` divides every duration.  Offsets in the recorded
    :attr:`timeline` are scenario seconds (wall time elapsed since the
    reference point, multiplied by ``speed``), so they compare directly with
    the scenario's definition.  :meth:`stop` ends the play after the current
    step; it never leaves instances paused.
    """

    def __init__(
        self,
        deployment: Any,
        scenario: Scenario,
        *,
        metadata: md.MetadataController,
        dns: Any = None,
        speed: float = 1.0,
        until: float | None = None,
        holds: Sequence[float] = (),
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed!r}")
        self.scenario = scenario if until is None else scenario.until(until)
        #: Offsets after which the play pauses until :meth:`resume` (tests
        #: observe the deployment there); held time does not count as
        #: scenario time, so recorded offsets still match the definition.
        self._holds = sorted(holds)
        self._held = threading.Event()
        self._go = threading.Event()
        self.speed = speed
        self.timeline: list[Event] = []
        self.error: BaseException | None = None
        self._ctx = _Context(deployment, metadata, dns)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._zero: float | None = None  # monotonic time of offset 0
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------
    def start(self) -> ScenarioPlayer:
        """Begin playing now: the first step runs immediately."""
        if self._thread is not None:
            raise ScenarioError("a player can be started only once")
        self._zero = time.monotonic() - self.scenario.start / self.speed
        self._thread = threading.Thread(
            target=self._run,
            name=f"bluegreen-scenario-{self.scenario.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Abort after the current step and wait for the thread (idempotent)."""
        self._stop.set()
        self._go.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with contextlib.suppress(Exception):
            _act_blackout(self._ctx, False)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every step has run; True if finished."""
        return self._done.wait(timeout)

    def wait_held(self, timeout: float | None = None) -> bool:
        """Wait until the play pauses at its next hold point; False if it
        finished (or the timeout expired) instead."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._held.is_set():
            if self._done.is_set():
                return self._held.is_set()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._held.wait(0.02 if left is None else min(left, 0.02))
        return True

    def resume(self) -> None:
        """Continue after a hold point."""
        self._held.clear()
        self._go.set()

    def wait_event(self, name: str, timeout: float | None = None) -> Event | None:
        """Wait until the timeline has ``name``; the event or ``None``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.event(name)
            if found is not None or self._done.is_set():
                return found
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._done.wait(0.02)

    def wait_offset(self, offset: float) -> None:
        """Sleep until scenario time ``offset`` (returns at once if past)."""
        delay = self.monotonic_at(offset) - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def switched(self) -> bool:
        """Whether green has been promoted."""
        return self._ctx.switched

    def monotonic_at(self, offset: float) -> float:
        """``time.monotonic()`` value of scenario offset ``offset``."""
        if self._zero is None:
            raise ScenarioError("the player has not started")
        return self._zero + offset / self.speed

    def now(self) -> float:
        """Current scenario offset in seconds."""
        if self._zero is None:
            raise ScenarioError("the player has not started")
        return (time.monotonic() - self._zero) * self.speed

    def event(self, name: str) -> Event | None:
        """The first recorded event called ``name``."""
        with self._lock:
            return next((e for e in self.timeline if e.event == name), None)

    def record(
        self, event: str, detail: str = "", *, offset: float | None = None
    ) -> Event:
        """Add an event to the timeline (the workload may add its own);
        ``offset`` defaults to now."""
        if offset is None:
            offset = self.now()
        wall = datetime.now().astimezone() - timedelta(
            seconds=(self.now() - offset) / self.speed
        )
        ev = Event(wall, offset, event, detail)
        with self._lock:
            self.timeline.append(ev)
        logger.info(
            "Scenario %s: %+.3f s %s %s", self.scenario.name, ev.offset, event, detail
        )
        return ev

    def __enter__(self) -> ScenarioPlayer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            for step in self.scenario.steps:
                self._hold_before(step)
                self.wait_offset(step.at)
                if self._stop.is_set():
                    self.record("ABORTED", "the scenario was stopped")
                    break
                self._do(step)
        except BaseException as exc:  # recorded, re-raised by check()
            self.error = exc
            logger.exception("Scenario %s failed.", self.scenario.name)
            with contextlib.suppress(Exception):
                _act_blackout(self._ctx, False)
            self.record("FAILED", f"{type(exc).__name__}: {exc}")
        finally:
            self._done.set()

    def _hold_before(self, step: Step) -> None:
        while self._holds and step.at > self._holds[0] and not self._stop.is_set():
            self._holds.pop(0)
            paused_at = time.monotonic()
            self._held.set()
            self._go.wait()
            self._go.clear()
            with self._lock:
                assert self._zero is not None
                self._zero += time.monotonic() - paused_at

    def _do(self, step: Step) -> None:
        started = time.monotonic()
        offset = self.now()
        try:
            ACTIONS[step.action](self._ctx, **dict(step.args))
        except TypeError as exc:
            raise ScenarioError(f"step {step}: {exc}") from exc
        took = time.monotonic() - started
        detail = step.action + "".join(f" {k}={v}" for k, v in step.args.items())
        if took > 0.2:
            detail += f" ({took:.2f} s)"
        if step.event:
            self.record(step.event, detail, offset=offset)
        else:
            logger.debug("Scenario %s: step %s done.", self.scenario.name, detail)

    def check(self) -> None:
        """Raise the error a step failed with, if any."""
        if self.error is not None:
            raise ScenarioError(f"scenario {self.scenario.name} failed") from self.error


def format_event(e: Event) -> str:
    """One line of :func:`format_timeline`."""
    ts = e.wall.strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{ts:<28}{round(e.offset * 1000):>11} ms   {e.event:<24}{e.detail}"


def format_timeline(events: Sequence[Event]) -> str:
    """The timeline as a table (same layout as the plugin's summary)."""
    width = 78
    lines = ["-" * width, f"{'timestamp':<28}{'offset (ms)':>14}   {'event':<24}detail"]
    lines.append("-" * width)
    lines += [format_event(e) for e in events]
    lines.append("-" * width)
    return "\n".join(lines)
