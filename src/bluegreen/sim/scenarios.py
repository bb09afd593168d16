"""The named switchover scenarios, as data.

Offsets are seconds from the start of IN_PROGRESS and follow run 1 of the
switchover summaries in the seeds (PREPARATION -2.281 s, POST +2.505 s, green
topology changed +9.932 s, blue DNS updated +18.616 s, green DNS removed
+53.797 s, COMPLETED +54.685 s, the target row lingering about 44 s).  Only
CREATED is shortened (-8 s instead of -37.5 s): nothing happens in between,
and a rehearsal should not wait half a minute for it.
"""

from __future__ import annotations

from bluegreen.sim import metadata as md
from bluegreen.sim.scenario import Scenario, Step

__all__ = [
    "CREATED_AT",
    "LATE_TIMEOUT",
    "SCENARIOS",
    "get",
    "late_completion_steps",
    "switchover_steps",
]

CREATED_AT = -8.0
PREPARATION_AT = -2.281
POST_AT = 2.505
GREEN_TOPOLOGY_AT = 9.932
BLUE_DNS_AT = 18.616
GREEN_DNS_AT = 53.797
COMPLETED_AT = 54.685
LINGER = 44.0
#: The switchover timeout of the ``stall`` scenario (AWS minimum: 30 s).
STALL_TIMEOUT = 30.0
#: How long every host is unreachable in ``late-completion``: longer than
#: the ``bg_switchover_timeout_ms`` a client is meant to run it with.
LATE_BLACKOUT = 20.0
#: The ``bg_switchover_timeout_ms`` (scenario time) ``late-completion`` is
#: meant to be played with: it runs out during the blackout.
LATE_TIMEOUT = 12.0


def _created(at: float = CREATED_AT, *, present: bool = True) -> list[Step]:
    return [
        Step(at, "provision", {"status": md.AVAILABLE, "present": present}, "CREATED")
    ]


def _preparation() -> list[Step]:
    return [
        Step(
            PREPARATION_AT, "status", {"status": md.SWITCHOVER_INITIATED}, "PREPARATION"
        )
    ]


def _in_progress() -> list[Step]:
    return [
        Step(0.0, "status", {"status": md.SWITCHOVER_IN_PROGRESS}, "IN_PROGRESS"),
        Step(0.0, "stop_writes"),
        Step(0.0, "refuse", {"refuse": True}),
        Step(0.0, "drop_connections"),
        # When the last connection has been dropped (the drop takes a few
        # milliseconds): nothing that starts later can be in flight at it.
        Step(0.0, "mark", event="Connections dropped"),
    ]


def _rollback(at: float) -> list[Step]:
    return [
        Step(at, "allow_writes", {"which": "blue-writer"}),
        Step(at, "refuse", {"refuse": False}),
        Step(at, "status", {"status": md.AVAILABLE}, "ROLLED_BACK"),
    ]


def switchover_steps(
    *,
    blue_dns_at: float | None = BLUE_DNS_AT,
    green_dns_at: float | None = GREEN_DNS_AT,
    created_present: bool = True,
) -> list[Step]:
    """The normal switchover; ``None`` leaves a DNS change out."""
    steps = [*_created(present=created_present), *_preparation(), *_in_progress()]
    steps += [
        Step(0.05, "catch_up"),
        Step(POST_AT - 0.3, "promote", event="SWITCHED"),
        Step(POST_AT, "refuse", {"refuse": False}),
        Step(POST_AT, "status", {"status": md.SWITCHOVER_IN_POST_PROCESSING}, "POST"),
        Step(GREEN_TOPOLOGY_AT, "rename", event="Green topology changed"),
    ]
    if blue_dns_at is not None:
        steps.append(Step(blue_dns_at, "blue_dns", event="Blue DNS updated"))
    if green_dns_at is not None:
        steps.append(Step(green_dns_at, "green_dns_remove", event="Green DNS removed"))
    steps += [
        Step(
            COMPLETED_AT,
            "status",
            {"status": md.SWITCHOVER_COMPLETED, "drop": md.ROLE_SOURCE},
            "COMPLETED",
        ),
        Step(COMPLETED_AT + LINGER, "clear", event="Metadata emptied"),
    ]
    return steps


def late_completion_steps() -> list[Step]:
    """Every host unreachable for :data:`LATE_BLACKOUT` s right after
    IN_PROGRESS begins, longer than the client's switchover timeout (the
    plugin releases traffic meanwhile); then the switchover goes through in
    the order AWS documents it: green promoted, hosts renamed, connections
    allowed again, and blue DNS moving a second later."""
    end = LATE_BLACKOUT
    return [
        *_created(),
        *_preparation(),
        *_in_progress(),
        Step(0.05, "catch_up"),
        Step(0.1, "blackout", {"on": True}, "BLACKOUT"),
        Step(end, "blackout", {"on": False}, "BLACKOUT ended"),
        Step(end + 0.05, "promote", event="SWITCHED"),
        Step(end + 0.1, "status", {"status": md.SWITCHOVER_IN_POST_PROCESSING}, "POST"),
        Step(end + 0.1, "rename", event="Green topology changed"),
        Step(end + 0.5, "refuse", {"refuse": False}, "Connections allowed"),
        Step(end + 1.5, "blue_dns", event="Blue DNS updated"),
        Step(end + 20.0, "green_dns_remove", event="Green DNS removed"),
        Step(
            end + 21.0,
            "status",
            {"status": md.SWITCHOVER_COMPLETED, "drop": md.ROLE_SOURCE},
            "COMPLETED",
        ),
        Step(end + 21.0 + LINGER, "clear", event="Metadata emptied"),
    ]


def _build() -> dict[str, Scenario]:
    normal = switchover_steps()
    settled = COMPLETED_AT
    s: list[Scenario] = [
        Scenario(
            "switchover",
            "A normal switchover, timed like the seeds' run 1.",
            tuple(normal),
            settled,
        ),
        Scenario(
            "rollback-preparation",
            "The switchover is cancelled during PREPARATION; blue stays in service.",
            (
                *_created(),
                *_preparation(),
                Step(0.0, "status", {"status": md.AVAILABLE}, "ROLLED_BACK"),
                Step(2.0, "mark", event="END"),
            ),
            2.0,
        ),
        Scenario(
            "rollback-in-progress",
            "IN_PROGRESS fails after 2 s: blue accepts connections and writes again.",
            (
                *_created(),
                *_preparation(),
                *_in_progress(),
                *_rollback(2.0),
                Step(5.0, "mark", event="END"),
            ),
            5.0,
        ),
        Scenario(
            "stall",
            f"IN_PROGRESS stalls past the {STALL_TIMEOUT:.0f} s switchover timeout, "
            "then RDS rolls back.",
            (
                *_created(),
                *_preparation(),
                *_in_progress(),
                Step(STALL_TIMEOUT, "mark", event="TIMEOUT"),
                *_rollback(STALL_TIMEOUT),
                Step(STALL_TIMEOUT + 3.0, "mark", event="END"),
            ),
            STALL_TIMEOUT + 3.0,
        ),
        Scenario(
            "rds-pg-frozen-metadata",
            "RDS PostgreSQL style: the status freezes on the old instance and is "
            "deleted on the new one; COMPLETED never shows.",
            (
                *[
                    st
                    for st in normal
                    if st.at <= GREEN_TOPOLOGY_AT and st.action != "rename"
                ],
                Step(GREEN_TOPOLOGY_AT, "freeze", {"which": "blue"}),
                Step(GREEN_TOPOLOGY_AT, "clear", {"which": "green"}),
                Step(GREEN_TOPOLOGY_AT, "freeze", {"which": "green"}),
                Step(GREEN_TOPOLOGY_AT, "rename", event="Green topology changed"),
                *[st for st in normal if GREEN_TOPOLOGY_AT < st.at <= GREEN_DNS_AT],
                Step(COMPLETED_AT, "mark", event="COMPLETED"),
            ),
            settled,
        ),
        Scenario(
            "metadata-errors",
            "After the switchover the metadata source raises errors on the new "
            "(former green) instances.",
            (
                *[st for st in normal if st.at <= COMPLETED_AT],
                Step(
                    COMPLETED_AT + 0.5,
                    "metadata_mode",
                    {"which": "green", "mode": "error"},
                    "Metadata errors",
                ),
            ),
            settled + 0.5,
        ),
        Scenario(
            "blackout",
            "Every instance is unreachable (frozen processes) for 6 s right after "
            "IN_PROGRESS ends.",
            (
                *normal,
                Step(POST_AT + 0.1, "blackout", {"on": True}, "BLACKOUT"),
                Step(POST_AT + 6.1, "blackout", {"on": False}, "BLACKOUT ended"),
            ),
            settled,
        ),
        Scenario(
            "late-completion",
            f"Every host is unreachable for {LATE_BLACKOUT:.0f} s after IN_PROGRESS "
            f"begins, longer than a {LATE_TIMEOUT:.0f} s bg_switchover_timeout_ms; "
            "then the switchover completes, and blue DNS moves 1.5 s later.",
            tuple(late_completion_steps()),
            LATE_BLACKOUT + 21.0,
        ),
        Scenario(
            "dns-never-updates",
            "The blue names keep resolving to the old blue hosts and green names "
            "never go away.",
            tuple(switchover_steps(blue_dns_at=None, green_dns_at=None)),
            settled,
        ),
        Scenario(
            "dns-late",
            "Blue DNS is updated only just before COMPLETED (+50 s).",
            tuple(switchover_steps(blue_dns_at=50.0)),
            settled,
        ),
        Scenario(
            "metadata-late",
            "The metadata is provisioned late: absent until 3 s before PREPARATION.",
            (
                *_created(CREATED_AT, present=False),
                Step(
                    PREPARATION_AT - 3.0,
                    "provision",
                    {"status": md.AVAILABLE},
                    "Metadata provisioned",
                ),
                *[st for st in normal if st.at > CREATED_AT],
            ),
            settled,
        ),
        Scenario(
            "unknown-status",
            "An undocumented status value appears between PREPARATION and IN_PROGRESS.",
            (
                *normal,
                Step(
                    PREPARATION_AT + 1.0,
                    "status",
                    {"status": "SWITCHOVER_PENDING_CHECKS"},
                    "Unknown status",
                ),
            ),
            settled,
        ),
        Scenario(
            "missing-grants",
            "The app user lacks the grants the metadata needs (invisible or denied).",
            (
                Step(CREATED_AT - 0.1, "grants", {"granted": False}, "Grants revoked"),
                *normal,
            ),
            settled,
        ),
    ]
    return {sc.name: sc for sc in s}


SCENARIOS: dict[str, Scenario] = _build()
"""Every named scenario, by name."""


def get(name: str) -> Scenario:
    """The named scenario; ``KeyError`` lists the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(
            f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}"
        ) from None
