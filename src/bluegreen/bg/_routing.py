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
              until blue DNS updated  until green DNS removed
COMPLETED     as POST until DNS has settled, then direct        direct
============  ======================  ========================  ===============

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
    # POST, or COMPLETED before DNS has settled.
    if view.rerouting_over(now):
        return DIRECT
    if kind is HostClass.BLUE:
        if view.blue_dns_updated or name is None:
            return DIRECT
        target = inv.green_target(name)
        if target is None:
            return Route(
                Action.WAIT, reason=f"the green counterpart of {name} to be known"
            )
        _green, green_ip, port = target
        return Route(Action.SUBSTITUTE, green_ip, port, reason="green IP")
    if kind is HostClass.GREEN_NAME and view.renamed and not view.green_dns_removed:
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
