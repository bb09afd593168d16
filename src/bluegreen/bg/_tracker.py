"""The switchover tracker: observations in, phase, events and routing view out.

Pure decision logic, driven by the monitors (metadata polls, DNS lookups)
and a clock that tests replace. The rules:

- The metadata phase only moves forward. A backward move counts as a
  rollback only when it is seen in the green (target) rows by the same
  monitor that saw them further along, before the switchover reached POST
  and before any sign of the renames (renamed rows or topology, ``-old1``
  names, blue DNS moved); errors, empty tables and NOT_CREATED never count.
- Completion is also inferred without the metadata: from IN_PROGRESS on, a
  rename (``-old1`` names resolving, renamed rows or topology) or blue names
  resolving to new addresses means the hosts are back (POST); POST plus
  updated blue DNS plus removed green DNS means COMPLETED.
- ``bg_switchover_timeout_ms`` runs from the first active phase: when it
  expires before POST, traffic is released (pass-through) whether or not
  anything was observed. Timers release waiting and end the rejection of
  green names; they never end re-routing. Once the switchover went through,
  a blue name goes to its green counterpart until that name resolves
  somewhere else than its pre-switchover address (:attr:`RoutingView.moved`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .. import rds
from ._hosts import Inventory, build_inventory
from ._model import Observation, Phase, StatusRow

__all__ = ["Event", "RoutingView", "SwitchoverTracker"]

#: Summary event names besides the phase names.
GREEN_TOPOLOGY_CHANGED = "Green topology changed"
BLUE_DNS_UPDATED = "Blue DNS updated"
GREEN_DNS_REMOVED = "Green DNS removed"
ROLLED_BACK = "Rolled back"
TIMED_OUT = "Switchover timed out"


@dataclass(frozen=True)
class Event:
    """One line of the switchover summary."""

    name: str
    wall: float  #: ``time.time()``
    mono: float  #: ``time.monotonic()`` (or the fake clock)


@dataclass(frozen=True)
class RoutingView:
    """An immutable picture of the switchover for routing decisions."""

    phase: Phase = Phase.NOT_CREATED
    inventory: Inventory = field(default_factory=Inventory)
    renamed: bool = False
    blue_dns_updated: bool = False
    green_dns_removed: bool = False
    #: When the switchover timeout expires (monotonic), while a phase is active.
    release_at: float | None = None
    #: When the rejection of green names stops at the latest (monotonic).
    settle_at: float | None = None
    #: Blue names that resolve somewhere else than their pre-switchover
    #: address now (DNS has moved for them).
    moved: frozenset[str] = frozenset()
    #: From when an unresolved switchover is polled at the increased
    #: interval instead of the high one (monotonic).
    quiet_at: float | None = None
    #: How many times a switchover has reached IN_PROGRESS (when RDS drops
    #: every connection) in this process: a connection opened before the
    #: latest one was dropped.
    kill_epoch: int = 0
    version: int = 0

    #: Calls on open connections need no look: neither PREPARATION (a drop
    #: may come any moment) nor IN_PROGRESS (calls wait). Set from ``phase``
    #: (a field, not a property: every call of the hot path reads it).
    quiet_calls: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        quiet = self.phase is not Phase.PREPARATION
        object.__setattr__(
            self, "quiet_calls", quiet and self.phase is not Phase.IN_PROGRESS
        )

    @property
    def passthrough(self) -> bool:
        """True when nothing is re-routed or suspended, whatever the time."""
        if self.phase <= Phase.CREATED:
            return True
        return self.phase is Phase.COMPLETED and self.settled

    @property
    def settled(self) -> bool:
        """DNS has caught up with the renames."""
        return self.blue_dns_updated and self.green_dns_removed

    def timed_out(self, now: float) -> bool:
        """True once the switchover timeout has expired in an active phase."""
        return (
            self.phase.active and self.release_at is not None and now >= self.release_at
        )

    def effective_phase(self, now: float) -> Phase:
        """The phase routing follows at ``now``. When the switchover timeout
        expires, the switchover is assumed over: CREATED (blue still in
        service) before POST, COMPLETED from POST on."""
        if self.timed_out(now):
            return Phase.CREATED if self.phase < Phase.POST else Phase.COMPLETED
        return self.phase

    @property
    def switched(self) -> bool:
        """The plugin has evidence that the switchover went through: POST
        (read, or inferred from renames, ``-old1`` names resolving or blue
        DNS moving) or later. From then on a blue name is never routed to a
        pre-switchover blue address while it still resolves there, whatever
        the switchover timer says."""
        return self.phase >= Phase.POST

    def rejection_over(self, now: float) -> bool:
        """True once green names are no longer rejected: their DNS is gone,
        or the switchover timeout (or, after COMPLETED, the wait for DNS)
        has run out. Timers end waiting and rejecting, never re-routing."""
        if self.green_dns_removed or self.timed_out(now):
            return True
        return self.settle_at is not None and now >= self.settle_at


class SwitchoverTracker:
    """Folds observations into a phase, summary events and a routing view.

    Not thread-safe: the owner serialises calls (see ``_watch``).
    """

    def __init__(
        self,
        *,
        switchover_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.switchover_timeout = switchover_timeout
        self.clock = clock
        self.wall = wall
        #: Undocumented status values seen (the owner warns once about each).
        self.unknown_statuses: set[str] = set()
        self._app_hosts: set[str] = set()
        self._version = 0
        #: Switchovers that reached IN_PROGRESS (never reset: connections
        #: compare it with the value they were opened under).
        self.kill_epoch = 0
        self._reset()

    def _reset(self) -> None:
        #: The summary events of the current deployment cycle.
        self.events: list[Event] = []
        self.metadata_phase = Phase.NOT_CREATED
        self.phase = Phase.NOT_CREATED
        self.renamed = False
        self.blue_dns_updated = False
        self.green_dns_removed = False
        self.timed_out = False
        self.active_since: float | None = None
        self.completed_at: float | None = None
        self.inventory = Inventory()
        self._rows: tuple[StatusRow, ...] = ()
        self._writers: dict[str, frozenset[str]] = {}
        self._ips: dict[str, str] = {}
        #: name -> where it resolves now (None: it does not resolve).
        self._current: dict[str, str | None] = {}
        self._moved_names: frozenset[str] = frozenset()
        self._last_target: dict[str, Phase] = {}
        self._lagging: set[str] = set()
        self._reachable: dict[str, bool] = {}
        #: IN_PROGRESS was inferred from the hosts becoming unreachable.
        self._guessed = False
        self._settle_expired = False
        self._view: RoutingView | None = None

    # -- inputs ---------------------------------------------------------------

    def add_app_host(self, host: str) -> bool:
        """Note a host name applications connect with; True if it is new."""
        host = host.strip().lower()
        if not host or host in self._app_hosts:
            return False
        self._app_hosts.add(host)
        return self._rebuild()

    def observe(self, obs: Observation) -> bool:
        """Fold one monitor poll in; True if the view changed."""
        if obs.rows is None:
            return self._unreachable(obs) | self._infer(obs.at)
        self._reachable[obs.role] = True
        rows = obs.rows
        self._note_unknown(rows)
        changed = False
        target, source = self._phases(rows)
        if self._new_cycle(rows, target):
            self._reset()
            changed = True
        if obs.writers and self._writers.get(obs.role) != obs.writers:
            self._writers[obs.role] = obs.writers
            changed |= self._rebuild()
        seen = target if target is not None else source
        if not self.events and seen is None:
            self._event(Phase.NOT_CREATED.name, obs.at)
            changed = True
        last = self._last_target.get(obs.role)
        if target is not None:
            self._last_target[obs.role] = target
        if obs.role in self._lagging:
            # After a rollback seen by the other monitor, this one's forward
            # phases are stale until it shows the rolled-back phase too.
            if target is not None and target <= self.metadata_phase:
                self._lagging.discard(obs.role)
            else:
                seen = None
        if (
            target is not None
            and last is not None
            and Phase.CREATED <= target < last
            and self.metadata_phase.active
            and self.metadata_phase < Phase.POST
            and not self._moved()
        ):
            self._rollback(target, obs.at)
            self._lagging = {r for r in self._last_target if r != obs.role}
            changed = True
        elif self._guessed and seen is Phase.PREPARATION:
            # The hosts answer and still say PREPARATION: the outage that
            # suggested IN_PROGRESS was something else.
            self._guessed = False
            self.metadata_phase = self.phase = Phase.PREPARATION
            self._event(Phase.PREPARATION.name, obs.at)
            changed = True
        elif seen is not None and seen > self.metadata_phase:
            self._guessed = False
            self.metadata_phase = seen
            if seen.active and self.active_since is None:
                self.active_since = obs.at
            changed = True
        if self._rows_renamed(rows, obs.instances, obs.role):
            changed |= self._set_renamed(obs.at)
        elif rows and not self.renamed and self._both_sides(rows):
            self._rows = rows
            changed |= self._rebuild()
        return self._infer(obs.at) or changed

    def observe_dns(self, resolved: Mapping[str, str | None], at: float) -> bool:
        """Fold DNS lookups in: name -> address, None for a name that does not
        resolve (lookups that failed for other reasons are left out)."""
        changed = False
        frozen = self.metadata_phase.active or self.metadata_phase is Phase.COMPLETED
        for name, ip in resolved.items():
            if ip is None:
                continue
            if (
                name in self.inventory.names
                and (not frozen or (name not in self._ips and not self._moved()))
                and self._ips.get(name) != ip
            ):
                self._ips[name] = ip
                changed = True
        if changed:
            changed = self._rebuild()
        self._current.update(resolved)
        moved: frozenset[str] = frozenset()
        if self.metadata_phase >= Phase.IN_PROGRESS:
            moved = frozenset(
                b
                for b in self.inventory.blue
                if b in self._ips and self._current.get(b) not in (None, self._ips[b])
            )
        if moved != self._moved_names:
            self._moved_names = moved
            changed |= self._touch()
        if self.metadata_phase >= Phase.IN_PROGRESS:
            # Before IN_PROGRESS an -old1 name may be a previous switchover's.
            old_names = set(self.old_names())
            if any(resolved.get(n) for n in old_names):
                changed |= self._set_renamed(at)
            changed |= self._check_blue_dns(resolved, at)
            changed |= self._check_green_dns(resolved, at)
        return self._infer(at) or changed

    def check_time(self, now: float | None = None) -> bool:
        """Record the switchover timeout and the end of re-routing when due."""
        now = self.clock() if now is None else now
        changed = False
        if (
            not self.timed_out
            and self.active_since is not None
            and self.phase.active
            and now >= self.active_since + self.switchover_timeout
        ):
            self.timed_out = True
            self._event(TIMED_OUT, now)
            changed = True
        if (
            not self._settle_expired
            and self.completed_at is not None
            and not (self.blue_dns_updated and self.green_dns_removed)
            and now >= self.completed_at + self.switchover_timeout
        ):
            # Re-routing after COMPLETED has ended without DNS settling.
            self._settle_expired = True
            changed = self._touch()
        return changed

    # -- outputs --------------------------------------------------------------

    def view(self) -> RoutingView:
        """The current routing view (the same object until something changes)."""
        if self._view is None:
            release_at = None
            if self.active_since is not None and self.phase.active:
                release_at = self.active_since + self.switchover_timeout
            settle_at = None
            quiet_at = None
            if self.completed_at is not None:
                settle_at = self.completed_at + self.switchover_timeout
                quiet_at = settle_at
            elif self.active_since is not None and self.phase.active:
                # Polled fast for a second timeout after the first one ran out,
                # so that a switchover going through late is noticed at once.
                quiet_at = self.active_since + 2 * self.switchover_timeout
            self._version += 1
            self._view = RoutingView(
                phase=self.phase,
                inventory=self.inventory,
                renamed=self.renamed,
                blue_dns_updated=self.blue_dns_updated,
                green_dns_removed=self.green_dns_removed,
                release_at=release_at,
                settle_at=settle_at,
                moved=self._moved_names,
                quiet_at=quiet_at,
                kill_epoch=self.kill_epoch,
                version=self._version,
            )
        return self._view

    def closed_view(self) -> RoutingView:
        """A pass-through view for a closed watch, with the next version
        number (one counter for every view a watch ever publishes)."""
        self._version += 1
        self._view = RoutingView(kill_epoch=self.kill_epoch, version=self._version)
        return self._view

    @property
    def ready(self) -> bool:
        """The green topology is known and every blue host has a green target."""
        return self.metadata_phase >= Phase.CREATED and self.inventory.complete()

    @property
    def finished(self) -> bool:
        """The switchover is over (completed and settled, or given up on)."""
        if self.phase is Phase.COMPLETED:
            view = self.view()
            now = self.clock()
            return view.settled or (
                view.settle_at is not None and now >= view.settle_at
            )
        return self.timed_out

    def names_to_watch(self) -> list[str]:
        """Names whose resolution matters now."""
        names = set(self.inventory.names)
        if self.metadata_phase >= Phase.IN_PROGRESS:
            names.update(self.old_names())
        return sorted(names)

    def old_names(self) -> list[str]:
        """The ``-old1`` names the blue hosts get when renamed."""
        out = []
        for b in self.inventory.blue:
            name = rds.parse(b)
            if name is not None and not name.is_old:
                out.append(name.old_name().host)
        return out

    def offset_ms(self, event: Event) -> int | None:
        """Milliseconds from the start of IN_PROGRESS to ``event``."""
        start = self.event_time(Phase.IN_PROGRESS.name)
        if start is None:
            return None
        return round((event.mono - start.mono) * 1000)

    def event_time(self, name: str) -> Event | None:
        """The latest event called ``name``."""
        for e in reversed(self.events):
            if e.name == name:
                return e
        return None

    # -- internals ------------------------------------------------------------

    def _touch(self) -> bool:
        self._view = None
        return True

    def _event(self, name: str, at: float) -> None:
        self.events.append(Event(name, self.wall() - (self.clock() - at), at))
        self._touch()

    @staticmethod
    def _phases(rows: Iterable[StatusRow]) -> tuple[Phase | None, Phase | None]:
        target: Phase | None = None
        source: Phase | None = None
        for row in rows:
            phase = row.phase
            if phase is None or phase is Phase.NOT_CREATED:
                continue
            if row.is_target:
                target = phase if target is None else max(target, phase)
            elif row.is_source:
                source = phase if source is None else max(source, phase)
        return target, source

    def _note_unknown(self, rows: Iterable[StatusRow]) -> None:
        for row in rows:
            if row.phase is None:
                self.unknown_statuses.add(row.status)

    def _new_cycle(self, rows: tuple[StatusRow, ...], target: Phase | None) -> bool:
        """A new deployment after a finished one: fresh green names, early phase."""
        over = (self.phase is Phase.COMPLETED and self.finished) or (
            self.timed_out and self.phase is Phase.POST
        )
        if not over or target is None or target > Phase.PREPARATION:
            return False
        greens = {r.endpoint for r in rows if r.is_target}
        return (
            bool(greens)
            and all(rds.is_green_host(g) for g in greens)
            and not greens <= self.inventory.green
        )

    def _both_sides(self, rows: tuple[StatusRow, ...]) -> bool:
        """From PREPARATION on, only rows listing both blue and green hosts
        replace the inventory's rows: a table that lost one side (the source
        row goes at COMPLETED) must not make the other side unknown."""
        if self.metadata_phase < Phase.PREPARATION:
            return True
        return any(r.is_source for r in rows) and any(r.is_target for r in rows)

    def _rows_renamed(
        self, rows: tuple[StatusRow, ...], instances: Iterable[str], role: str
    ) -> bool:
        inv = self.inventory
        for row in rows:
            if row.is_source and rds.is_old_host(row.endpoint):
                return True
            if row.is_target and inv.green and row.endpoint in inv.blue:
                return True
        if role == "green" and inv.green:
            green_ids = {g.split(".", 1)[0] for g in inv.green}
            ids = set(instances)
            if ids and not ids & green_ids:
                renamed = {rds.blue_name_of(g).split(".", 1)[0] for g in inv.green}
                return bool(ids & renamed)
        return False

    def _set_renamed(self, at: float) -> bool:
        # Renames are evidence enough that IN_PROGRESS went by, even when
        # the monitors never read it (they could not reach the hosts).
        if self.renamed or self.metadata_phase < Phase.PREPARATION:
            return False
        self.renamed = True
        self._event(GREEN_TOPOLOGY_CHANGED, at)
        return True

    def _moved(self) -> bool:
        return self.renamed or self.blue_dns_updated

    def _check_blue_dns(self, resolved: Mapping[str, str | None], at: float) -> bool:
        if self.blue_dns_updated:
            return False
        inv = self.inventory
        recorded = [b for b in inv.blue if b in self._ips]
        if not recorded or any(b not in resolved for b in recorded):
            return False
        if all(resolved[b] not in (None, self._ips[b]) for b in recorded):
            self.blue_dns_updated = True
            self._event(BLUE_DNS_UPDATED, at)
            return True
        return False

    def _check_green_dns(self, resolved: Mapping[str, str | None], at: float) -> bool:
        if self.green_dns_removed or not (self.renamed or self.blue_dns_updated):
            return False
        greens = self.inventory.green
        if greens and all(g in resolved and resolved[g] is None for g in greens):
            self.green_dns_removed = True
            self._event(GREEN_DNS_REMOVED, at)
            return True
        return False

    def _rollback(self, phase: Phase, at: float) -> None:
        self._event(ROLLED_BACK, at)
        self.metadata_phase = phase
        self.phase = phase
        self.renamed = False
        self.timed_out = False
        if not phase.active:
            self.active_since = None
        self._event(phase.name, at)

    def _rebuild(self) -> bool:
        if self._moved():
            return False
        inv = build_inventory(
            self._rows,
            app_hosts=self._app_hosts,
            writers=frozenset().union(*self._writers.values()),
            ips=self._ips,
        )
        if inv == self.inventory:
            return False
        self.inventory = inv
        return self._touch()

    def _infer(self, at: float) -> bool:
        """Derive the phase from the metadata phase and the other signals."""
        phase = self.metadata_phase
        if phase >= Phase.PREPARATION and self._moved():
            phase = max(phase, Phase.POST)
        if phase >= Phase.POST and self.blue_dns_updated and self.green_dns_removed:
            phase = Phase.COMPLETED
        if phase == self.phase:
            return False
        if phase < self.phase:
            # Only a rollback moves backwards, and it sets self.phase itself.
            return False
        self._event(phase.name, at)
        if self.phase < Phase.IN_PROGRESS <= phase:
            self.kill_epoch += 1  # RDS drops every connection now
        self.phase = phase
        if phase is Phase.COMPLETED and self.completed_at is None:
            self.completed_at = at
        if phase >= Phase.POST and self.timed_out:
            # The switchover went through after all: re-routing resumes, with
            # a fresh timeout for the phase it is in.
            self.timed_out = False
            self.active_since = at
        return self._touch()

    def _unreachable(self, obs: Observation) -> bool:
        """A monitor that was reading the status lost its host during
        PREPARATION: the hosts go away when IN_PROGRESS starts, often before
        a monitor can read that status, so IN_PROGRESS is inferred."""
        was_reachable = self._reachable.get(obs.role, False)
        if not obs.unreachable:
            # A query error on a live connection: the host is still there.
            return False
        self._reachable[obs.role] = False
        if (
            obs.unreachable
            and was_reachable
            and self.metadata_phase is Phase.PREPARATION
            and obs.role not in self._lagging
        ):
            self._guessed = True
            self.metadata_phase = Phase.IN_PROGRESS
            return True
        return False
