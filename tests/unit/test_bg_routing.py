"""Routing decisions per phase (facts sheet, section 5): new connections to blue
names, green names, IP literals, renamed old names and unrelated hosts, and
whether calls on open connections are suspended."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen.bg._hosts import build_inventory
from bluegreen.bg._model import ROLE_SOURCE, ROLE_TARGET, Phase, StatusRow
from bluegreen.bg._routing import (
    Action,
    HostClass,
    Route,
    classify,
    monitor_target,
    poll_interval,
    preparation_grace,
    route_connect,
    suspends_calls,
)
from bluegreen.bg._tracker import RoutingView

DOMAIN = "abc123xyz.us-east-1.rds.amazonaws.com"
B1 = f"mydb-instance-1.{DOMAIN}"
B2 = f"mydb-instance-2.{DOMAIN}"
G1 = f"mydb-instance-1-green-k7dd3e.{DOMAIN}"
G2 = f"mydb-instance-2-green-k7dd3e.{DOMAIN}"
OLD1 = f"mydb-instance-1-old1.{DOMAIN}"
CLUSTER_W = f"mydb.cluster-{DOMAIN}"
GREEN_CLUSTER_W = f"mydb-green-k7dd3e.cluster-{DOMAIN}"
#: A green name of this deployment's domain that the metadata did not list.
GREEN_UNLISTED = f"mydb-instance-9-green-k7dd3e.{DOMAIN}"
#: A green-looking name of another account/region: not ours.
GREEN_ELSEWHERE = "mydb-instance-1-green-k7dd3e.zzz999.eu-west-1.rds.amazonaws.com"
OTHER = "db.example.com"

IPS = {
    B1: "10.0.0.1",
    B2: "10.0.0.2",
    G1: "10.0.1.1",
    G2: "10.0.1.2",
    CLUSTER_W: "10.0.0.1",
}
NOW = 1000.0

INVENTORY = build_inventory(
    [
        StatusRow(B1, 5432, ROLE_SOURCE, "AVAILABLE"),
        StatusRow(B2, 5432, ROLE_SOURCE, "AVAILABLE"),
        StatusRow(G1, 5433, ROLE_TARGET, "AVAILABLE"),
        StatusRow(G2, 5434, ROLE_TARGET, "AVAILABLE"),
    ],
    app_hosts=[CLUSTER_W],
    writers=["mydb-instance-1", "mydb-instance-1-green-k7dd3e"],
    ips=IPS,
)


def view(phase: Phase, **kw: Any) -> RoutingView:
    kw.setdefault("inventory", INVENTORY)
    return RoutingView(phase=phase, **kw)


def route(
    v: RoutingView,
    host: str | None,
    ip: str | None = None,
    *,
    suspend: bool = True,
    now: float = NOW,
) -> Route:
    return route_connect(v, host, ip, now, suspend_new_blue=suspend)


# The hosts an application may name: (host, its address if known).
HOSTS = {
    "blue name": (B1, None),
    "blue name, stale address": (B1, "10.9.9.9"),
    "blue name, other case, trailing dot": (B1.upper() + ".", None),
    "blue address literal": ("10.0.0.1", "10.0.0.1"),
    "alias resolving to a blue address": ("alias.example.com", "10.0.0.2"),
    "cluster endpoint": (CLUSTER_W, None),
    "green name": (G1, None),
    "unlisted green name": (GREEN_UNLISTED, None),
    "green address literal": ("10.0.1.1", "10.0.1.1"),
    "alias resolving to a green address": ("alias.example.com", "10.0.1.2"),
    "old name": (OLD1, "10.0.0.1"),
    "green name elsewhere": (GREEN_ELSEWHERE, None),
    "unrelated host": (OTHER, "192.0.2.7"),
    "unrelated address": ("192.0.2.7", "192.0.2.7"),
    "no host": (None, None),
}


# -- classify ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("blue name", (HostClass.BLUE, B1)),
        ("blue name, stale address", (HostClass.BLUE, B1)),
        ("blue name, other case, trailing dot", (HostClass.BLUE, B1)),
        # Two blue names share 10.0.0.1: either stands for the address.
        ("blue address literal", (HostClass.BLUE, None)),
        ("alias resolving to a blue address", (HostClass.BLUE, B2)),
        ("cluster endpoint", (HostClass.BLUE, CLUSTER_W)),
        ("green name", (HostClass.GREEN_NAME, G1)),
        ("unlisted green name", (HostClass.GREEN_NAME, GREEN_UNLISTED)),
        ("green address literal", (HostClass.GREEN_IP, G1)),
        ("alias resolving to a green address", (HostClass.GREEN_IP, G2)),
        ("old name", (HostClass.OLD, OLD1)),
        ("green name elsewhere", (HostClass.OTHER, None)),
        ("unrelated host", (HostClass.OTHER, None)),
        ("unrelated address", (HostClass.OTHER, None)),
        ("no host", (HostClass.OTHER, None)),
    ],
)
def test_classify(case: str, expected: tuple[HostClass, str | None]) -> None:
    host, ip = HOSTS[case]
    kind, name = classify(view(Phase.POST), host, ip)
    assert kind is expected[0]
    if expected[1] is None and kind is HostClass.BLUE:
        assert name in (B1, CLUSTER_W)
    else:
        assert name == expected[1]


def test_classify_with_an_empty_inventory() -> None:
    v = RoutingView()
    for host, ip in HOSTS.values():
        kind, _ = classify(v, host, ip)
        assert kind in (HostClass.OTHER, HostClass.OLD)


# -- route_connect: the table ----------------------------------------------------------

D = (Action.DIRECT, None)
W = (Action.WAIT, None)
R = (Action.REJECT, None)


def sub(ip: str) -> tuple[Action, str]:
    return (Action.SUBSTITUTE, ip)


#: case -> expected (action, ip) per view; the views are built below.
TABLE: dict[str, dict[str, tuple[Action, str | None]]] = {
    "PREPARATION": {
        "blue name": sub("10.0.0.1"),
        "blue name, stale address": sub("10.0.0.1"),
        "blue name, other case, trailing dot": sub("10.0.0.1"),
        "blue address literal": sub("10.0.0.1"),
        "alias resolving to a blue address": sub("10.0.0.2"),
        "cluster endpoint": sub("10.0.0.1"),
        "green name": D,
        "unlisted green name": D,
        "green address literal": D,
        "alias resolving to a green address": D,
        "old name": D,
        "green name elsewhere": D,
        "unrelated host": D,
        "unrelated address": D,
        "no host": D,
    },
    "IN_PROGRESS": {
        "blue name": W,
        "blue name, stale address": W,
        "blue name, other case, trailing dot": W,
        "blue address literal": W,
        "alias resolving to a blue address": W,
        "cluster endpoint": W,
        "green name": W,
        "unlisted green name": W,
        "green address literal": W,
        "alias resolving to a green address": W,
        "old name": D,
        "green name elsewhere": D,
        "unrelated host": D,
        "unrelated address": D,
        "no host": D,
    },
    "POST": {
        "blue name": sub("10.0.1.1"),
        "blue name, stale address": sub("10.0.1.1"),
        "blue name, other case, trailing dot": sub("10.0.1.1"),
        "blue address literal": sub("10.0.1.1"),
        "alias resolving to a blue address": sub("10.0.1.2"),
        # The green cluster name has no IP: its stand-in, the green writer.
        "cluster endpoint": sub("10.0.1.1"),
        "green name": D,  # not renamed yet
        "unlisted green name": D,
        "green address literal": D,
        "alias resolving to a green address": D,
        "old name": D,
        "green name elsewhere": D,
        "unrelated host": D,
        "unrelated address": D,
        "no host": D,
    },
}
TABLE["POST renamed"] = {
    **TABLE["POST"],
    "green name": R,
    "unlisted green name": R,
}
TABLE["POST renamed, blue DNS updated"] = {
    **TABLE["POST renamed"],
    **{
        case: D
        for case in (
            "blue name",
            "blue name, stale address",
            "blue name, other case, trailing dot",
            "blue address literal",
            "alias resolving to a blue address",
            "cluster endpoint",
        )
    },
}
TABLE["POST renamed, green DNS removed"] = {
    **TABLE["POST"],  # blue still re-routed, green names allowed again
}
TABLE["COMPLETED, DNS not settled"] = TABLE["POST renamed"]
TABLE["COMPLETED, blue DNS updated"] = TABLE["POST renamed, blue DNS updated"]

VIEWS = {
    "PREPARATION": view(Phase.PREPARATION, release_at=NOW + 100),
    "IN_PROGRESS": view(Phase.IN_PROGRESS, release_at=NOW + 100),
    "POST": view(Phase.POST),
    "POST renamed": view(Phase.POST, renamed=True),
    "POST renamed, blue DNS updated": view(
        Phase.POST, renamed=True, blue_dns_updated=True
    ),
    "POST renamed, green DNS removed": view(
        Phase.POST, renamed=True, green_dns_removed=True
    ),
    "COMPLETED, DNS not settled": view(
        Phase.COMPLETED, renamed=True, settle_at=NOW + 100
    ),
    "COMPLETED, blue DNS updated": view(
        Phase.COMPLETED, renamed=True, blue_dns_updated=True, settle_at=NOW + 100
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTS))
@pytest.mark.parametrize("state", sorted(VIEWS))
def test_route_table(state: str, case: str) -> None:
    host, ip = HOSTS[case]
    got = route(VIEWS[state], host, ip, suspend=True)
    assert (got.action, got.ip) == TABLE[state][case]
    if got.action is Action.SUBSTITUTE and state.startswith(("POST", "COMPLETED")):
        assert got.port in (5433, 5434)  # the green host's port from the metadata
    if got.action in (Action.WAIT, Action.REJECT):
        assert got.reason
    if got.action is Action.REJECT:
        assert host is not None and host in got.reason


@pytest.mark.parametrize("case", sorted(HOSTS))
@pytest.mark.parametrize(
    "v",
    [
        view(Phase.NOT_CREATED),
        view(Phase.CREATED),
        view(
            Phase.COMPLETED, renamed=True, blue_dns_updated=True, green_dns_removed=True
        ),
        # Timed out before POST: released.
        view(Phase.PREPARATION, release_at=NOW),
        view(Phase.IN_PROGRESS, release_at=NOW - 1),
    ],
    ids=[
        "NOT_CREATED",
        "CREATED",
        "COMPLETED settled",
        "PREPARATION timed out",
        "IN_PROGRESS timed out",
    ],
)
@pytest.mark.parametrize("suspend", [True, False])
def test_direct_for_everything(v: RoutingView, case: str, suspend: bool) -> None:
    host, ip = HOSTS[case]
    assert route(v, host, ip, suspend=suspend) == Route(Action.DIRECT)


@pytest.mark.parametrize("case", sorted(HOSTS))
@pytest.mark.parametrize("state", sorted(set(VIEWS) - {"IN_PROGRESS"}))
def test_suspend_new_blue_only_matters_in_progress(state: str, case: str) -> None:
    host, ip = HOSTS[case]
    assert route(VIEWS[state], host, ip, suspend=False) == route(
        VIEWS[state], host, ip, suspend=True
    )


def test_in_progress_without_suspending_new_blue_connections() -> None:
    v = VIEWS["IN_PROGRESS"]
    got = route(v, B1, None, suspend=False)
    assert got == Route(Action.SUBSTITUTE, "10.0.0.1", retry_on_failure=True)
    got = route(v, "10.0.0.2", "10.0.0.2", suspend=False)
    assert (got.action, got.ip, got.retry_on_failure) == (
        Action.SUBSTITUTE,
        "10.0.0.2",
        True,
    )
    # Green hosts still wait; unrelated hosts are not retried.
    assert route(v, G1, None, suspend=False).action is Action.WAIT
    assert route(v, "10.0.1.1", "10.0.1.1", suspend=False).action is Action.WAIT
    assert route(v, OTHER, None, suspend=False) == Route(Action.DIRECT)


def test_in_progress_blue_without_recorded_ip_connects_directly_and_retries() -> None:
    inv = build_inventory(
        [
            StatusRow(B1, 5432, ROLE_SOURCE, ""),
            StatusRow(G1, 5432, ROLE_TARGET, ""),
        ],
        ips={G1: "10.0.1.1"},
    )
    v = view(Phase.IN_PROGRESS, inventory=inv)
    assert route(v, B1, None, suspend=False) == Route(
        Action.DIRECT, retry_on_failure=True
    )
    assert route(v, B1, None, suspend=True).action is Action.WAIT


def test_preparation_blue_without_recorded_ip_is_direct() -> None:
    inv = build_inventory(
        [StatusRow(B1, 5432, ROLE_SOURCE, ""), StatusRow(G1, 5432, ROLE_TARGET, "")]
    )
    assert route(view(Phase.PREPARATION, inventory=inv), B1) == Route(Action.DIRECT)


def test_post_without_a_known_green_counterpart_waits() -> None:
    ips = {B1: "10.0.0.1", B2: "10.0.0.2", G1: "10.0.1.1"}  # G2 unresolved
    rows = [
        StatusRow(B1, 5432, ROLE_SOURCE, ""),
        StatusRow(B2, 5432, ROLE_SOURCE, ""),
        StatusRow(G1, 5432, ROLE_TARGET, ""),
        StatusRow(G2, 5432, ROLE_TARGET, ""),
    ]
    v = view(Phase.POST, inventory=build_inventory(rows, ips=ips))
    got = route(v, B2)
    assert got.action is Action.WAIT
    assert B2 in got.reason
    assert route(v, B1).action is Action.SUBSTITUTE
    # A blue host with no pair at all (no green rows) also waits.
    lonely = build_inventory([StatusRow(B1, 5432, ROLE_SOURCE, "")], ips=ips)
    assert route(view(Phase.POST, inventory=lonely), B1).action is Action.WAIT
    # Once blue DNS is updated, the green counterpart is not needed.
    v = view(
        Phase.POST, inventory=build_inventory(rows, ips=ips), blue_dns_updated=True
    )
    assert route(v, B2).action is Action.DIRECT


def test_green_names_rejected_only_between_renames_and_green_dns_removal() -> None:
    not_renamed = view(Phase.POST)
    renamed = view(Phase.POST, renamed=True)
    gone = view(Phase.POST, renamed=True, green_dns_removed=True)
    assert route(not_renamed, G2).action is Action.DIRECT
    assert route(renamed, G2).action is Action.REJECT
    assert route(renamed, G2.upper()).action is Action.REJECT
    assert route(renamed, GREEN_CLUSTER_W).action is Action.REJECT
    assert route(gone, G2).action is Action.DIRECT
    # Reached by address, a green host is never rejected.
    for v in (not_renamed, renamed, gone):
        assert route(v, "10.0.1.2", "10.0.1.2").action is Action.DIRECT
        assert route(v, "alias.example.com", "10.0.1.1").action is Action.DIRECT


def test_post_substitutes_the_green_port() -> None:
    got = route(VIEWS["POST"], B2)
    assert got == Route(Action.SUBSTITUTE, "10.0.1.2", 5434, reason=got.reason)


def test_completed_green_rejection_stops_at_settle_time_rerouting_does_not() -> None:
    v = VIEWS["COMPLETED, DNS not settled"]
    assert route(v, B1, now=NOW + 99.999).action is Action.SUBSTITUTE
    assert route(v, G1, now=NOW + 99.999).action is Action.REJECT
    assert route(v, G1, now=NOW + 100) == Route(Action.DIRECT)
    # B1 still resolves to its old blue address: never sent there.
    assert route(v, B1, now=NOW + 100).action is Action.SUBSTITUTE
    assert route(v, B1, now=NOW + 1e9).action is Action.SUBSTITUTE


# -- the switchover timer never turns correct routing into wrong routing --------------

#: DNS states after the switchover: which blue names resolve elsewhere now.
DNS = {
    "stale": {},
    "B1 moved to green": {"moved": frozenset({B1, CLUSTER_W})},
    "B1 moved elsewhere": {"moved": frozenset({B1, CLUSTER_W})},
    "all blue DNS updated": {
        "moved": frozenset({B1, B2, CLUSTER_W}),
        "blue_dns_updated": True,
    },
}
#: Timer states: before the switchover timeout, after it, after settle time.
TIMERS = {
    "in time": NOW + 0,
    "switchover timed out": NOW + 10,
    "settle time passed": NOW + 20,
}


def switched_view(phase: Phase, dns: str) -> RoutingView:
    return view(
        phase,
        renamed=True,
        release_at=NOW + 10 if phase is Phase.POST else None,
        settle_at=NOW + 20 if phase is Phase.COMPLETED else None,
        **DNS[dns],  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("timer", list(TIMERS))
@pytest.mark.parametrize("dns", list(DNS))
@pytest.mark.parametrize("phase", [Phase.POST, Phase.COMPLETED], ids=lambda p: p.name)
def test_after_the_switchover_timers_never_route_to_the_old_blue(
    phase: Phase, dns: str, timer: str
) -> None:
    """Every phase x timer x DNS combination once the switchover went through:
    a blue name (or address, or cluster endpoint) still resolving to its
    pre-switchover address goes to the green counterpart, whatever the
    timers say; once its DNS moved, DNS is followed. Green names are
    rejected until their DNS is gone or a timer ends the rejection."""
    v = switched_view(phase, dns)
    now = TIMERS[timer]
    moved = v.moved
    for case in ("blue name", "blue name, stale address", "cluster endpoint"):
        host, ip = HOSTS[case]
        got = route(v, host, ip, now=now)
        name = B1 if host == B1 else CLUSTER_W
        if name in moved or v.blue_dns_updated:
            assert got == Route(Action.DIRECT), (case, got)
        else:
            assert (got.action, got.ip) == sub("10.0.1.1"), (case, got)
    # B2 has not moved in the partial DNS states: still re-routed.
    got = route(v, B2, now=now)
    if B2 in moved:
        assert got == Route(Action.DIRECT)
    else:
        assert (got.action, got.ip) == sub("10.0.1.2")
    rejection_over = (phase is Phase.POST and now >= NOW + 10) or (
        phase is Phase.COMPLETED and now >= NOW + 20
    )
    expected = Action.DIRECT if rejection_over else Action.REJECT
    assert route(v, G1, now=now).action is expected


@pytest.mark.parametrize("timer", list(TIMERS))
@pytest.mark.parametrize("phase", [Phase.PREPARATION, Phase.IN_PROGRESS], ids=str)
def test_before_the_switchover_the_timer_releases_to_dns(
    phase: Phase, timer: str
) -> None:
    """No evidence that the switchover went through: when the timer runs
    out, traffic is released (blue is still in service) and nothing waits."""
    v = view(phase, release_at=NOW + 10)
    now = TIMERS[timer]
    got = route(v, B1, now=now)
    if now >= NOW + 10:
        assert got == Route(Action.DIRECT)
        assert not suspends_calls(v, B1, None, now)
    else:
        assert got.action in (Action.SUBSTITUTE, Action.WAIT)


def test_the_green_counterpart_unknown_means_wait_never_the_old_blue() -> None:
    bare = build_inventory(
        [StatusRow(B1, 5432, ROLE_SOURCE, "AVAILABLE")], ips={B1: "10.0.0.1"}
    )
    v = RoutingView(phase=Phase.POST, inventory=bare, renamed=True, release_at=NOW)
    for now in (NOW - 1, NOW, NOW + 1e6):
        assert route(v, B1, now=now).action is Action.WAIT


def test_release_is_time_based() -> None:
    v = view(Phase.IN_PROGRESS, release_at=NOW + 5)
    assert route(v, B1, now=NOW + 4.999).action is Action.WAIT
    assert route(v, B1, now=NOW + 5) == Route(Action.DIRECT)
    # No release time: waits whatever the time (the tracker always sets one).
    v = view(Phase.IN_PROGRESS)
    assert route(v, B1, now=NOW + 1e9).action is Action.WAIT


# -- suspends_calls ------------------------------------------------------------------


SUSPENDED_CASES = {
    "blue name",
    "blue name, stale address",
    "blue name, other case, trailing dot",
    "blue address literal",
    "alias resolving to a blue address",
    "cluster endpoint",
    "green name",
    "unlisted green name",
    "green address literal",
    "alias resolving to a green address",
}


@pytest.mark.parametrize("case", sorted(HOSTS))
def test_suspends_calls_in_progress_for_deployment_hosts_only(case: str) -> None:
    host, ip = HOSTS[case]
    v = view(Phase.IN_PROGRESS, release_at=NOW + 10)
    assert suspends_calls(v, host, ip, NOW) is (case in SUSPENDED_CASES)
    # Released by the timeout: nothing waits.
    assert not suspends_calls(v, host, ip, NOW + 10)


@pytest.mark.parametrize("case", sorted(HOSTS))
@pytest.mark.parametrize(
    "phase",
    [p for p in Phase if p is not Phase.IN_PROGRESS],
    ids=lambda p: p.name,
)
def test_calls_are_never_suspended_outside_in_progress(phase: Phase, case: str) -> None:
    host, ip = HOSTS[case]
    v = view(phase, renamed=phase >= Phase.POST, release_at=NOW + 10)
    assert not suspends_calls(v, host, ip, NOW)


# -- polling intervals, monitor targets, grace (decisions moved out of the glue) -----

BASE, INC, HIGH = 60.0, 1.0, 0.1


def interval(v: RoutingView, now: float = NOW) -> float:
    return poll_interval(v, now, BASE, INC, HIGH)


def test_poll_interval_per_phase() -> None:
    assert interval(view(Phase.NOT_CREATED)) == BASE
    assert interval(view(Phase.CREATED)) == INC
    for phase in (Phase.PREPARATION, Phase.IN_PROGRESS, Phase.POST):
        assert interval(view(phase, release_at=NOW + 5, quiet_at=NOW + 10)) == HIGH
    settled = view(Phase.COMPLETED, blue_dns_updated=True, green_dns_removed=True)
    assert interval(settled) == BASE


def test_poll_interval_stays_high_after_the_timeout() -> None:
    """Traffic released by the timer goes by DNS: a switchover that goes
    through late must be noticed within a high interval, not an increased
    one."""
    v = view(Phase.IN_PROGRESS, release_at=NOW, quiet_at=NOW + 180)
    assert v.effective_phase(NOW + 1) is Phase.CREATED
    assert interval(v, NOW + 1) == HIGH
    assert interval(v, NOW + 179.9) == HIGH
    assert interval(v, NOW + 180) == INC


def test_poll_interval_after_completed_until_dns_settles() -> None:
    v = view(Phase.COMPLETED, renamed=True, settle_at=NOW + 180, quiet_at=NOW + 180)
    assert interval(v, NOW) == HIGH
    assert interval(v, NOW + 180) == INC  # DNS never settled: still watched


def test_monitor_targets() -> None:
    v = view(Phase.CREATED)
    assert monitor_target(v, "blue", B1, 5432, "10.9.9.9") == (B1, "10.0.0.1", 5432)
    assert monitor_target(v, "blue", "x.example", 5432, "10.9.9.9") == (
        "x.example",
        "10.9.9.9",
        5432,
    )
    assert monitor_target(v, "green", B1, 5432, None) == (G1, "10.0.1.1", 5433)
    # A host without a counterpart: any green host with an address.
    assert monitor_target(v, "green", "x.example", 5432, None) == (
        G1,
        "10.0.1.1",
        5433,
    )
    assert monitor_target(RoutingView(), "green", B1, 5432, None) is None


def test_preparation_grace() -> None:
    assert preparation_grace(0.1) == pytest.approx(0.8)
