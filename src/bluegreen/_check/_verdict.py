"""The verdict of ``bluegreen check``: exit codes, and the decisions that turn
a detection result and the ``bg`` plugin's status into one. Pure: no I/O, no
clock (the caller says how long a state has held and whether time is up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import rds
from ..dialects import Detection

__all__ = [
    "EXIT_CONNECT",
    "EXIT_PROTECTED",
    "EXIT_UNPROTECTED",
    "EXIT_USAGE",
    "NO_DEPLOYMENT_SETTLE_S",
    "PROBLEM_SETTLE_S",
    "READY_SETTLE_S",
    "Outcome",
    "Snapshot",
    "judge_detection",
    "judge_host",
    "judge_no_host",
    "judge_status",
    "not_protected",
]

#: The application would be protected: ready, or no deployment exists yet.
EXIT_PROTECTED = 0
#: It would not be protected (the verdict says why).
EXIT_UNPROTECTED = 1
#: A usage or configuration error.
EXIT_USAGE = 2
#: The check could not connect at all.
EXIT_CONNECT = 3

#: How long "protected, no deployment" must hold before it is believed: the
#: first status read and the phase it shows are published a moment apart.
NO_DEPLOYMENT_SETTLE_S = 0.5
#: How long "protected and ready" must hold at least before it is believed.
#: The status says nothing of the green monitor until it fails: ready comes
#: as soon as the blue side's metadata and DNS map every host, and the green
#: monitor's first attempt follows within one polling interval. The check
#: waits for three intervals, and for this long at least.
READY_SETTLE_S = 1.0
#: How long a monitor's failure must last before it is the verdict (the
#: monitors retry every poll; a passing failure clears well within this).
PROBLEM_SETTLE_S = 2.0

_ACTIVE = ("PREPARATION", "IN_PROGRESS", "POST")


@dataclass(frozen=True)
class Outcome:
    """The verdict: exit code, a word for machines, plain words for people."""

    exit_code: int
    #: ``ready``, ``no-deployment``, ``not-protected``, ``connect-failed`` or
    #: ``usage-error``.
    verdict: str
    #: Why not protected, as a word (see docs/check.md), else None.
    problem: str | None = None
    reason: str | None = None
    #: What to do about it.
    advice: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """What the check needs from :class:`bluegreen.bg.BlueGreenStatus`."""

    phase: str
    ready: bool
    monitoring: bool
    protected: bool
    reason: str | None = None
    unprotected: Mapping[str, str] = field(default_factory=dict)
    mapping: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    monitor_errors: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, status: Any) -> Snapshot:
        """A snapshot of a :class:`~bluegreen.bg.BlueGreenStatus`."""
        return cls(
            phase=status.phase,
            ready=status.ready,
            monitoring=status.monitoring,
            protected=status.protected,
            reason=status.reason,
            unprotected=dict(status.unprotected),
            mapping=dict(status.mapping),
            monitor_errors=dict(status.monitor_errors),
        )

    @property
    def state(self) -> tuple[object, ...]:
        """What has to stay the same for a state to count as steady."""
        return (self.phase, self.protected, self.ready, tuple(sorted(self.unprotected)))

    @property
    def phase_known(self) -> bool:
        """Whether the phase comes from the metadata (not the initial value)."""
        return self.protected or self.phase != "NOT_CREATED"


def not_protected(problem: str, reason: str, advice: str) -> Outcome:
    """An exit-1 verdict."""
    return Outcome(EXIT_UNPROTECTED, "not-protected", problem, reason, advice)


def judge_detection(
    detection: Detection | None, plugins: Sequence[str]
) -> Outcome | None:
    """The verdict that detection alone gives (protection is off for good, until
    someone acts), or None: the monitors decide."""
    if "bg" not in plugins:
        shown = ",".join(plugins)
        return not_protected(
            "bg-disabled",
            f"the bg plugin is not enabled (plugins={shown!r}): nothing follows "
            "a switchover",
            "Leave the plugins setting at its default (bg), or include bg in it, "
            "in the application and in this check.",
        )
    if detection is None:
        return not_protected(
            "detection-failed",
            "the bg plugin did not find out the deployment type",
            "Run the check again with -v to see what the plugin did.",
        )
    if detection.unsupported_reason is not None:
        return not_protected(
            "unsupported",
            detection.unsupported_reason,
            "The application gets plain pass-through here. See 'What is not "
            "covered' in docs/bg-plugin.md.",
        )
    if detection.probe_failed and not detection.forced:
        return not_protected(
            "detection-failed",
            "; ".join(detection.warnings) or "the deployment type probe failed",
            "Run the check again with -v to see the probe's errors. An "
            "application retries the detection every bg_interval_baseline_ms.",
        )
    dialect = detection.dialect
    if dialect.is_plain:
        mysql = dialect.family == "mysql"
        engine = "MySQL/MariaDB" if mysql else "PostgreSQL"
        example = "rds-mysql" if mysql else "rds-postgres"
        hidden = (
            " A MySQL user without SELECT on mysql.rds_topology cannot even see "
            "that the table exists."
            if mysql
            else ""
        )
        return not_protected(
            "plain-server",
            f"the server is plain {engine}: it has no RDS or Aurora blue/green "
            "metadata, so the plugin has nothing to follow",
            "Point the check at the RDS or Aurora endpoint the application uses. "
            "If this is RDS or Aurora behind an alias, set the deployment type "
            f"(for example --set wrapper_dialect={example}).{hidden}",
        )
    if detection.probe_failed or detection.metadata_readable:
        return None
    reason = "; ".join(detection.warnings) or (
        f"the blue/green metadata of {dialect.value} cannot be read"
    )
    if detection.missing_grant:
        return not_protected(
            "missing-grant",
            reason,
            f"Have an administrator run: {detection.missing_grant} Then run "
            "this check again.",
        )
    return not_protected(
        "metadata-missing",
        reason,
        "Make the blue/green metadata source available (see the reason), then "
        "run this check again.",
    )


def judge_no_host() -> Outcome:
    """The verdict when neither the connection arguments nor ``PGHOST`` name
    a host: libpq connects to its default (a local socket), which is no RDS
    endpoint, and the ``bg`` plugin has nothing to follow."""
    return not_protected(
        "no-host",
        "neither the connection arguments nor PGHOST name a host: the "
        "connection goes to libpq's default (a local socket), and the bg "
        "plugin has no host to follow",
        "Give the host in the DSN (host=... or postgresql://host/...) or in "
        "PGHOST, in the application and in this check.",
    )


def judge_host(host: str | None) -> Outcome | None:
    """The verdict that the host name alone gives: an application that
    connects with a green name, or with a former blue one (``-old1``), is not
    protected however well the plugin follows the deployment."""
    name = rds.parse(host) if host else None
    if name is None:
        return None
    if name.is_green:
        return not_protected(
            "green-host",
            f"{host} is a green host name: once the switchover renames the hosts, "
            "the plugin rejects connections made with a green name "
            "(GreenHostRejectedError)",
            f"Connect with the blue name, {rds.blue_name_of(name.host)}, in the "
            "application and in this check.",
        )
    if name.is_old:
        return not_protected(
            "old-host",
            f"{host} is the name of a former blue host (-old), left behind by an "
            "earlier switchover; it is not production any more",
            f"Connect with the current name, {name.strip_old().host}, in the "
            "application and in this check.",
        )
    return None


def judge_status(
    snap: Snapshot,
    *,
    steady_for: float,
    timed_out: bool,
    timeout: float,
    ready_settle: float = READY_SETTLE_S,
) -> Outcome | None:
    """The verdict from the plugin's status, or None to keep waiting.

    ``steady_for``: seconds the snapshot's :attr:`~Snapshot.state` has held;
    ``timed_out``: the check's time is up, so a verdict is due;
    ``ready_settle``: how long "protected and ready" must hold (see
    :data:`READY_SETTLE_S`).
    """
    if snap.protected and snap.ready:
        if steady_for < ready_settle and not timed_out:
            return None
        return Outcome(
            EXIT_PROTECTED,
            "ready",
            None,
            _ready_reason(snap),
            "This is what one process sees from this machine. Before switching "
            "over, make sure that every instance of the application is ready too: "
            "each logs 'ready for a blue/green switchover' (INFO, logger "
            "bluegreen.bg) and reports bluegreen.bg.status(bg_id).ready.",
        )
    if snap.protected and snap.phase == "NOT_CREATED":
        if steady_for < NO_DEPLOYMENT_SETTLE_S and not timed_out:
            return None
        return Outcome(
            EXIT_PROTECTED,
            "no-deployment",
            None,
            "the blue/green metadata is readable and no blue/green deployment "
            "exists yet: the plugin will notice one when it is created",
            "Create the blue/green deployment, then run this check again before "
            "switching over: the verdict must be 'ready' by then.",
        )
    if snap.unprotected and (steady_for >= PROBLEM_SETTLE_S or timed_out):
        reason = snap.reason or "; ".join(
            f"{host}: {why}" for host, why in snap.unprotected.items()
        )
        if "GRANT " in reason:
            return not_protected(
                "missing-grant",
                reason,
                "Have an administrator run the GRANT named above, then run this "
                "check again.",
            )
        return not_protected(
            "monitor-error",
            reason,
            "Check that every blue and green host accepts connections from here "
            "with the application's credentials (blue-green-monitoring- settings "
            "apply to the monitors only), then run this check again.",
        )
    if not timed_out:
        return None
    if not snap.protected:
        why = f" ({snap.reason})" if snap.reason else ""
        return not_protected(
            "status-unknown",
            f"the plugin did not read the blue/green status within {timeout:g} s{why}",
            "Run the check again with a longer --timeout, or with -v to see what "
            "the monitors do.",
        )
    return not_protected(
        "not-ready",
        f"a blue/green deployment exists (phase {snap.phase}), but after "
        f"{timeout:g} s not every blue host was mapped to a green host with an "
        "address",
        "Check that the green host names resolve from here and that the green "
        "instances accept connections, then run the check again (a longer "
        "--timeout gives the monitors more time).",
    )


def _ready_reason(snap: Snapshot) -> str:
    count = len(snap.mapping)
    mapped = f"{count} blue host{'s' if count != 1 else ''} mapped to green"
    if snap.phase in _ACTIVE:
        return f"a switchover is under way (phase {snap.phase}); {mapped}"
    if snap.phase == "COMPLETED":
        return f"the switchover has completed (phase COMPLETED); {mapped}"
    return f"ready for a blue/green switchover: {mapped}, each with its address"
