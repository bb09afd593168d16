"""A switchover tracker's knowledge as plain data, and back.

The processes of one machine that watch the same deployment share one set
of monitors (:mod:`._share`): the leader's tracker is fed by its monitors,
and after every change its state is written out with :func:`export`; every
other process (a follower) folds that state into its own tracker with
:func:`adopt` and routes from it with the same pure code. Pure: no I/O.

What is shared is what the tracker learnt about the deployment (phases,
events, inventory, addresses, DNS signals, the rollback bookkeeping). What
stays in each process:

- ``kill_epoch``: each connection compares it with the value it was opened
  under, so it must count the switchovers *this* process has seen reach
  IN_PROGRESS (:func:`adopt` moves it exactly where the tracker itself
  would);
- the view's version (waiters compare it with the one they began with);
- the switchover timeout and the clock: release times are computed from the
  shared ``active_since`` with the process's own ``bg_switchover_timeout_ms``;
- the host names the process's own connections use (added to the leader's).

Times are ``time.monotonic()`` values, which every process of one machine
shares (one boot: the shared file records the boot id), and ``time.time()``
for the summary's wall-clock times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._hosts import Inventory
from ._model import Phase, StatusRow

if TYPE_CHECKING:
    from ._tracker import SwitchoverTracker

__all__ = ["SnapshotError", "adopt", "export"]

#: Bumped when the layout of :func:`export` changes incompatibly.
FORMAT = 1


class SnapshotError(ValueError):
    """A snapshot that does not have the expected shape."""


def export(tracker: SwitchoverTracker) -> dict[str, Any]:
    """The shared part of ``tracker``'s state, as JSON-compatible data."""
    t = tracker
    inv = t.inventory
    return {
        "format": FORMAT,
        "events": [[e.name, e.wall, e.mono] for e in t.events],
        "metadata_phase": t.metadata_phase.name,
        "phase": t.phase.name,
        "renamed": t.renamed,
        "blue_dns_updated": t.blue_dns_updated,
        "green_dns_removed": t.green_dns_removed,
        "timed_out": t.timed_out,
        "active_since": t.active_since,
        "completed_at": t.completed_at,
        "inventory": {
            "blue": sorted(inv.blue),
            "green": sorted(inv.green),
            "ports": dict(inv.ports),
            "ips": dict(inv.ips),
            "pairs": dict(inv.pairs),
            "fallbacks": dict(inv.fallbacks),
        },
        "rows": [[r.endpoint, r.port, r.role, r.status, r.version] for r in t._rows],
        "writers": {role: sorted(ids) for role, ids in t._writers.items()},
        "ips": dict(t._ips),
        "current": dict(t._current),
        "moved": sorted(t._moved_names),
        "last_target": {role: p.name for role, p in t._last_target.items()},
        "lagging": sorted(t._lagging),
        "reachable": dict(t._reachable),
        "guessed": t._guessed,
        "settle_expired": t._settle_expired,
        "app_hosts": sorted(t._app_hosts),
        "unknown_statuses": sorted(t.unknown_statuses),
    }


def adopt(tracker: SwitchoverTracker, data: Mapping[str, Any]) -> None:
    """Make ``tracker`` know what the snapshot ``data`` says, keeping its
    own ``kill_epoch`` logic, version counter, clock and timeout, and the
    host names its own process added. Raises :class:`SnapshotError` (and
    leaves ``tracker`` unchanged) when ``data`` is malformed."""
    parsed = _parse(data)
    from ._tracker import Event

    t = tracker
    before = t.phase
    own_hosts = set(t._app_hosts)
    t._reset()
    t.events = [Event(n, w, m) for n, w, m in parsed["events"]]
    t.metadata_phase = parsed["metadata_phase"]
    t.phase = parsed["phase"]
    t.renamed = parsed["renamed"]
    t.blue_dns_updated = parsed["blue_dns_updated"]
    t.green_dns_removed = parsed["green_dns_removed"]
    t.timed_out = parsed["timed_out"]
    t.active_since = parsed["active_since"]
    t.completed_at = parsed["completed_at"]
    t.inventory = parsed["inventory"]
    t._rows = parsed["rows"]
    t._writers = parsed["writers"]
    t._ips = parsed["ips"]
    t._current = parsed["current"]
    t._moved_names = parsed["moved"]
    t._last_target = parsed["last_target"]
    t._lagging = parsed["lagging"]
    t._reachable = parsed["reachable"]
    t._guessed = parsed["guessed"]
    t._settle_expired = parsed["settle_expired"]
    t.unknown_statuses = parsed["unknown_statuses"]
    t._app_hosts = parsed["app_hosts"]
    if before < Phase.IN_PROGRESS <= t.phase:
        # The hosts dropped every connection, this process's included: the
        # same rule as the tracker's own (SwitchoverTracker._infer).
        t.kill_epoch += 1
    for host in sorted(own_hosts - t._app_hosts):
        t.add_app_host(host)  # rebuilds the inventory where it may
    t._touch()


def _parse(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check and convert every field first, so that a bad snapshot changes
    nothing."""
    try:
        if data.get("format") != FORMAT:
            raise SnapshotError(f"unknown snapshot format {data.get('format')!r}")
        inv = data["inventory"]
        return {
            "events": [
                (str(n), float(w), float(m)) for n, w, m in _list(data["events"])
            ],
            "metadata_phase": Phase[data["metadata_phase"]],
            "phase": Phase[data["phase"]],
            "renamed": _bool(data["renamed"]),
            "blue_dns_updated": _bool(data["blue_dns_updated"]),
            "green_dns_removed": _bool(data["green_dns_removed"]),
            "timed_out": _bool(data["timed_out"]),
            "active_since": _time(data["active_since"]),
            "completed_at": _time(data["completed_at"]),
            "inventory": Inventory(
                blue=frozenset(_strs(inv["blue"])),
                green=frozenset(_strs(inv["green"])),
                ports={str(k): int(v) for k, v in _dict(inv["ports"]).items()},
                ips=_str_map(inv["ips"]),
                pairs=_str_map(inv["pairs"]),
                fallbacks=_str_map(inv["fallbacks"]),
            ),
            "rows": tuple(
                StatusRow(str(e), None if p is None else int(p), str(r), str(s), str(v))
                for e, p, r, s, v in _list(data["rows"])
            ),
            "writers": {
                str(k): frozenset(_strs(v)) for k, v in _dict(data["writers"]).items()
            },
            "ips": _str_map(data["ips"]),
            "current": {
                str(k): None if v is None else str(v)
                for k, v in _dict(data["current"]).items()
            },
            "moved": frozenset(_strs(data["moved"])),
            "last_target": {
                str(k): Phase[v] for k, v in _dict(data["last_target"]).items()
            },
            "lagging": set(_strs(data["lagging"])),
            "reachable": {
                str(k): _bool(v) for k, v in _dict(data["reachable"]).items()
            },
            "guessed": _bool(data["guessed"]),
            "settle_expired": _bool(data["settle_expired"]),
            "app_hosts": set(_strs(data["app_hosts"])),
            "unknown_statuses": set(_strs(data["unknown_statuses"])),
        }
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"malformed snapshot: {type(exc).__name__}: {exc}") from exc


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _strs(value: Any) -> list[str]:
    return [str(v) for v in _list(value)]


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _dict(value).items()}


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _time(value: Any) -> float | None:
    return None if value is None else float(value)
