"""The report of ``bluegreen check``: :class:`CheckResult` (what was found)
and its two forms, the human-readable text and the ``--json`` object. Every
string the report prints goes through :func:`scrub`, which masks any secret
the user gave, in case a driver's error message repeats one."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import rds
from .._version import __version__
from ._verdict import (
    EXIT_CONNECT,
    EXIT_PROTECTED,
    EXIT_UNPROTECTED,
    EXIT_USAGE,
    Outcome,
)

__all__ = ["CheckResult", "render_json", "render_text", "scrub"]


@dataclass
class CheckResult:
    """Everything the report shows; :meth:`as_dict` is the JSON form."""

    #: The driver's command-line name (None when the usage was wrong).
    driver: str | None
    endpoint: str
    bg_id: str | None = None
    driver_version: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    dbname: str | None = None
    endpoint_kind: str | None = None
    connected: bool = False
    error: str | None = None
    deployment_type: str | None = None
    dialect_forced: bool = False
    server_version: str | None = None
    metadata_source: str | None = None
    metadata_found: bool | None = None
    metadata_readable: bool | None = None
    missing_grant: str | None = None
    phase: str | None = None
    ready: bool | None = None
    monitoring: bool | None = None
    mapping: dict[str, tuple[str, str]] = field(default_factory=dict)
    unprotected: dict[str, str] = field(default_factory=dict)
    monitor_errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outcome: Outcome = field(
        default_factory=lambda: Outcome(EXIT_USAGE, "usage-error", None, None, None)
    )
    elapsed_s: float = 0.0
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``--json`` (docs/check.md describes it)."""
        out = self.outcome
        data: dict[str, Any] = {
            "bluegreen_version": __version__,
            "verdict": out.verdict,
            "exit_code": out.exit_code,
            "protected": out.exit_code == EXIT_PROTECTED,
            "problem": out.problem,
            "reason": out.reason,
            "advice": out.advice,
            "endpoint": self.endpoint,
            "driver": self.driver,
            "driver_version": self.driver_version,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "endpoint_kind": self.endpoint_kind,
            "bg_id": self.bg_id,
            "connected": self.connected,
            "error": self.error,
            "deployment_type": self.deployment_type,
            "dialect_forced": self.dialect_forced,
            "server_version": self.server_version,
            "metadata": {
                "source": self.metadata_source,
                "found": self.metadata_found,
                "readable": self.metadata_readable,
                "missing_grant": self.missing_grant,
            },
            "phase": self.phase,
            "ready": self.ready,
            "monitoring": self.monitoring,
            "mapping": [
                {"blue": blue, "green": green, "green_ip": ip}
                for blue, (green, ip) in sorted(self.mapping.items())
            ],
            "unprotected": self.unprotected,
            "monitor_errors": self.monitor_errors,
            "notes": self.notes,
            "warnings": self.warnings,
            "elapsed_s": round(self.elapsed_s, 2),
        }
        scrubbed: dict[str, Any] = scrub(data, self.secrets)
        return scrubbed


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` with every secret replaced by ``***`` in every string."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


_KIND_WORDS = {
    rds.EndpointKind.CLUSTER_WRITER: "cluster writer endpoint",
    rds.EndpointKind.CLUSTER_READER: "cluster reader endpoint",
    rds.EndpointKind.CLUSTER_CUSTOM: "custom cluster endpoint",
    rds.EndpointKind.PROXY: "RDS Proxy endpoint",
    rds.EndpointKind.INSTANCE: "instance endpoint",
}

_HEADLINE = {
    EXIT_PROTECTED: "OK",
    EXIT_UNPROTECTED: "NOT PROTECTED",
    EXIT_USAGE: "USAGE ERROR",
    EXIT_CONNECT: "CANNOT CONNECT",
}
_PHASE_WORDS = {
    "NOT_CREATED": "no blue/green deployment",
    "CREATED": "a blue/green deployment exists",
    "PREPARATION": "a switchover is starting",
    "IN_PROGRESS": "a switchover is in progress",
    "POST": "a switchover is finishing",
    "COMPLETED": "the switchover has completed",
}


def render_text(result: CheckResult) -> str:
    """The human-readable report."""
    rows: list[tuple[str, str]] = [("endpoint", result.endpoint)]
    if result.host:
        server = f"{result.host}:{result.port}"
        if result.dbname:
            server += f", database {result.dbname}"
        if result.user:
            server += f", user {result.user}"
        rows.append(("server", server))
    if result.endpoint_kind and result.endpoint_kind != "other":
        kind = _KIND_WORDS[rds.EndpointKind(result.endpoint_kind)]
        rows.append(("host name", f"RDS {kind}"))
    version = f" {result.driver_version}" if result.driver_version else ""
    if result.driver:
        rows.append(("driver", f"{result.driver}{version}"))
    if result.bg_id is not None:
        rows.append(("bg_id", result.bg_id))
    if result.deployment_type:
        text = result.deployment_type
        if result.dialect_forced:
            text += " (set by wrapper_dialect)"
        if result.server_version:
            text += f", server version {result.server_version}"
        rows.append(("deployment type", text))
        rows.append(("metadata", _metadata_words(result)))
    if result.missing_grant:
        rows.append(("GRANT needed", result.missing_grant))
    if result.connected and result.metadata_source:
        phase = result.phase
        words = _PHASE_WORDS.get(phase or "", "")
        rows.append(
            ("phase", f"{phase} ({words})" if phase else "unknown (status not read)")
        )
        if phase and phase != "NOT_CREATED":
            rows.append(("ready", "yes" if result.ready else "NO"))
    for role, error in sorted(result.monitor_errors.items()):
        rows.append((f"{role} monitor", f"failing: {error}"))
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"bluegreen check (bluegreen {__version__})"]
    lines += [f"  {label:<{width}}{value}" for label, value in rows]
    if result.mapping:
        lines.append("  blue -> green mapping:")
        lines += ["    " + line for line in _table(result.mapping)]
    if result.notes:
        lines.append("  notes:")
        lines += [f"    - {note}" for note in result.notes]
    out = result.outcome
    lines.append("")
    verdict = out.reason or out.verdict
    if out.exit_code == EXIT_PROTECTED:
        verdict = f"the application would be protected: {verdict}"
    lines.append(
        f"{_HEADLINE.get(out.exit_code, 'ERROR')}: {verdict} "
        f"(checked in {result.elapsed_s:.1f} s)."
    )
    if out.advice:
        lines.append(f"What to do: {out.advice}")
    return "\n".join(scrub(lines, result.secrets))


def _metadata_words(result: CheckResult) -> str:
    source = result.metadata_source
    if source is None:
        return "none (not an RDS or Aurora server)"
    if not result.metadata_found:
        return f"{source}: NOT FOUND"
    if result.metadata_readable:
        return f"{source}: readable"
    who = f" by {result.user}" if result.user else ""
    return f"{source}: NOT READABLE{who}"


def _table(mapping: Mapping[str, tuple[str, str]]) -> list[str]:
    rows = [("blue host", "green host", "green IP")]
    rows += [(blue, green, ip) for blue, (green, ip) in sorted(mapping.items())]
    w1 = max(len(r[0]) for r in rows) + 2
    w2 = max(len(r[1]) for r in rows) + 2
    return [f"{a:<{w1}}{b:<{w2}}{c}".rstrip() for a, b, c in rows]


def render_json(result: CheckResult) -> str:
    """The ``--json`` report: one object (see docs/check.md)."""
    return json.dumps(result.as_dict(), indent=2)
