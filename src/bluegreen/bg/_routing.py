"""Routing decisions: what a new connection or a call does in each phase.

Pure functions of a :class:`~bluegreen.bg._tracker.RoutingView`, the host
the application named (and its address, when known) and the time; the
facts sheet's table (section 5):

============  ======================  ========================  ===============
phase         new conn., blue name    new conn., green name     call on a conn.
============  ======================  ========================  ===============
CREATED       direct                  direct                    direct
PREPARATION   blue IP recorded before direct                    direct
IN_PROGRESS   wait, or blue IP and    wait                      wait
              wait+retry on failure
POST          green counterpart's IP  rejected once renamed,    direct
              until the name resolves until green DNS removed
              elsewhere than before
COMPLETED     as POST until DNS has settled, then direct        direct
============  ======================  ========================  ===============

The switchover timeout releases what waits (IN_PROGRESS behaves as CREATED
once it runs out before POST) and ends the rejection of green names; it
never sends a blue name to a pre-switchover blue address once the plugin
has evidence that the switchover went through.

Hosts are recognised by name and by address alike: an IP literal (or the
address a name outside the inventory resolves to) that was recorded for a
blue host is routed as that blue host. Green hosts reached by address are
never rejected: only the green *names* go away.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import rds
from ._model import Phase
from ._tracker import RoutingView

__all__ = [
    "Action",
    "HostClass",
    "Route",
    "classify",
    "monitor_target",
    "poll_interval",
    "preparation_grace",
    "route_connect",
    "suspends_calls",
]


class Action(enum.Enum):
    DIRECT = "direct"
    SUBSTITUTE = "substitute"  #: connect to ``Route.ip`` keeping the host name
    WAIT = "wait"  #: wait for the routing to change, then decide again
    REJECT = "reject"  #: raise GreenHostRejectedError


class HostClass(enum.Enum):
    BLUE = "blue"
    GREEN_NAME = "green name"
    GREEN_IP = "green address"
    OLD = "renamed old blue"
    OTHER = "other"


@dataclass(frozen=True)
class Route:
    """What to do with one new connection."""

    action: Action
    ip: str | None = None
    port: int | None = None
    #: Why (for log messages and timeout errors).
    reason: str = ""
    #: SUBSTITUTE/DIRECT during IN_PROGRESS: a failure waits for the phase to
    #: end and tries again instead of failing.
    retry_on_failure: bool = False


DIRECT = Route(Action.DIRECT)


def classify(
    view: RoutingView, host: str | None, ip: str | None = None
) -> tuple[HostClass, str | None]:
    """Which side ``host`` (or its address ``ip``) belongs to, and the
    inventory name standing for it."""
    inv = view.inventory
    name = (host or "").strip().lower().rstrip(".")
    if name in inv.blue:
        return HostClass.BLUE, name
    if name in inv.green:
        return HostClass.GREEN_NAME, name
    if name and rds.is_old_host(name):
        return HostClass.OLD, name
    parsed = rds.parse(name) if name else None
    if (
        parsed is not None
        and parsed.green_suffix in inv.green_suffixes  # this deployment's only
        and parsed.domain in inv.domains()
    ):
        return HostClass.GREEN_NAME, name
    if ip:
        blue = inv.blue_by_ip().get(ip)
        if blue is not None:
            return HostClass.BLUE, blue
        green = inv.green_by_ip().get(ip)
        if green is not None:
            return HostClass.GREEN_IP, green
    return HostClass.OTHER, None


def route_connect(
    view: RoutingView,
    host: str | None,
    ip: str | None,
    now: float,
    *,
    suspend_new_blue: bool,
) -> Route:
    """Decide how to open a new connection to ``host`` (address ``ip``)."""
    if view.passthrough:
        return DIRECT
    phase = view.effective_phase(now)
    if phase <= Phase.CREATED:
        return DIRECT
    kind, name = classify(view, host, ip)
    if kind in (HostClass.OTHER, HostClass.OLD):
        return DIRECT
    inv = view.inventory
    if phase is Phase.PREPARATION:
        if kind is HostClass.BLUE and name is not None and name in inv.ips:
            return Route(Action.SUBSTITUTE, inv.ips[name], reason="blue IP")
        return DIRECT
    if phase is Phase.IN_PROGRESS:
        if kind is HostClass.BLUE and not suspend_new_blue:
            blue_ip = inv.ips.get(name) if name is not None else None
            if blue_ip is None:
                return Route(Action.DIRECT, retry_on_failure=True)
            return Route(Action.SUBSTITUTE, blue_ip, retry_on_failure=True)
        return Route(Action.WAIT, reason="the switchover is in progress")
    # POST, or COMPLETED before DNS has settled: the switchover went through.
    # No timer ends this: a blue name goes to its green counterpart until
    # DNS sends it somewhere else than its pre-switchover address.
    if kind is HostClass.BLUE:
        if view.blue_dns_updated or name is None or name in view.moved:
            return DIRECT
        target = inv.green_target(name)
        if target is None:
            return Route(
                Action.WAIT, reason=f"the green counterpart of {name} to be known"
            )
        _green, green_ip, port = target
        return Route(Action.SUBSTITUTE, green_ip, port, reason="green IP")
    if kind is HostClass.GREEN_NAME and view.renamed and not view.rejection_over(now):
        return Route(
            Action.REJECT,
            reason=f"{host} is a green host name and the green hosts have been "
            "renamed; connect with the blue (production) name instead",
        )
    return DIRECT


def suspends_calls(
    view: RoutingView, host: str | None, ip: str | None, now: float
) -> bool:
    """True if calls on a connection to ``host`` (``ip``) must wait now."""
    if view.phase is not Phase.IN_PROGRESS:
        return False
    if view.effective_phase(now) is not Phase.IN_PROGRESS:
        return False
    kind, _ = classify(view, host, ip)
    return kind in (HostClass.BLUE, HostClass.GREEN_NAME, HostClass.GREEN_IP)


def poll_interval(
    view: RoutingView, now: float, baseline: float, increased: float, high: float
) -> float:
    """Seconds between metadata polls and DNS checks.

    The high interval runs through the active phases, after the switchover
    timeout too (a switchover that goes through late must be noticed at
    once: traffic was released to DNS, which may send it to the old blue),
    and after COMPLETED until DNS settles; from ``view.quiet_at`` on, an
    unresolved switchover drops to the increased interval.
    """
    phase = view.phase
    if phase is Phase.NOT_CREATED:
        return baseline
    if phase is Phase.CREATED:
        return increased
    if phase is Phase.COMPLETED and view.settled:
        return baseline
    if view.quiet_at is not None and now >= view.quiet_at:
        return increased
    return high


def preparation_grace(high: float) -> float:
    """How long a connection that failed during PREPARATION waits for the
    monitors to tell whether IN_PROGRESS began (a few high polls)."""
    return 3 * high + 0.5


def monitor_target(
    view: RoutingView, role: str, host: str, port: int, blue_ip: str | None
) -> tuple[str, str | None, int | None] | None:
    """Where the ``role`` monitor reads the status: (host name, IP, port).

    ``host``/``port``: the blue host the application connected to;
    ``blue_ip``: its address when the monitors started. The blue monitor
    stays on the blue host (by its pre-switchover address); the green one
    goes to that host's green counterpart, or to any green host with an
    address, or nowhere yet (None) before the green hosts are known.
    """
    inv = view.inventory
    if role == "blue":
        return host, inv.ips.get(host) or blue_ip, port
    target = inv.green_target(host)
    if target is not None:
        return target
    for green in sorted(inv.green, key=lambda g: (g not in inv.ports, g)):
        if green in inv.ips:
            return green, inv.ips[green], inv.ports.get(green)
    return None
