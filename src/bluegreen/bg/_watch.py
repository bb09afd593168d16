"""One watched blue/green deployment per ``bg_id`` per process, and the registry.

A :class:`DeploymentWatch` owns the :class:`SwitchoverTracker`, the condition
that every waiter sleeps on, the monitor threads and the published
:class:`RoutingView`. Connections read ``watch.view`` without locking (it is
replaced, never changed); every change notifies all waiters at once.

The :class:`WatchRegistry` maps ``bg_id`` to its watch. A forked child starts
with an empty registry: the parent's threads do not exist there, and the
parent's monitoring connections are kept referenced (never closed or
collected) so that the child cannot end the parent's sessions. At exit the
watches stop their threads and close their connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .._log import REPEAT_S
from .._runtime import runtime
from ..pipeline import HOOKED, Gate
from ..settings import Settings
from . import _fleet
from ._follow import SharedMonitoring, check_state
from ._hosts import is_ip
from ._monitor import Detector, DnsWatcher, MetadataMonitor, MonitorSource, resolve
from ._routing import monitor_target, poll_interval
from ._share import ShareRefused
from ._status import BlueGreenStatus, Messages, SummaryEvent, log_all
from ._summary import format_summary, one_line, timestamp
from ._tracker import ROLLED_BACK, RoutingView, SwitchoverTracker

__all__ = ["BlueGreenStatus", "DeploymentWatch", "WatchRegistry", "watches"]

logger = logging.getLogger("bluegreen.bg")


#: An asyncio waiter of :meth:`DeploymentWatch.wait_async`.
_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class DeploymentWatch(SharedMonitoring):
    """The shared state of one ``bg_id``; see the module docstring."""

    def __init__(
        self,
        bg_id: str,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        resolver: Callable[[str], tuple[bool, str | None]] = resolve,
    ) -> None:
        self.bg_id = bg_id
        self.settings = settings
        #: The monotonic clock of every decision and wait (tests pass fakes).
        self.clock = clock
        #: Name resolution: ``(True, address)``, ``(True, None)`` for a name
        #: that does not exist, ``(False, None)`` for a failed lookup.
        self.resolve = resolver
        self._cond = threading.Condition()
        #: The asyncio waiters (:meth:`wait_async`): (loop, future) pairs,
        #: woken from whichever thread publishes a view.
        self._async_waiters: set[_Waiter] = set()
        # The threads hold this watch weakly and sleep on the condition:
        # when the watch is collected, wake them so that they end at once.
        weakref.finalize(self, _wake_all, self._cond)
        self.tracker = SwitchoverTracker(
            switchover_timeout=settings.bg_switchover_timeout_ms / 1000, clock=clock
        )
        #: The published routing view; replaced on every change.
        self.view: RoutingView = self.tracker.view()
        # The gate of connections opened at the view's kill_epoch: calm
        # while calls need no look (see gate_for).
        self._gate: tuple[int, Gate] = (
            self.view.kill_epoch,
            Gate(self.view.quiet_calls),
        )
        self.source: MonitorSource | None = None
        self.hosts: frozenset[str] = frozenset()
        #: Host names (lowercase) whose detection result this watch has taken in.
        self.detected: frozenset[str] = frozenset()
        self._workers: list[Any] = []
        self._closed = False
        self._blue_ip: str | None = None
        #: subject (host) -> why switchover protection is off for it
        self._unprotected: dict[str, str] = {}
        #: subject -> the cause's kind (see ``unprotected``)
        self._kinds: dict[str, str] = {}
        #: The shared monitors of the machine (None: this process alone).
        self._share: _fleet.MonitorShare | None = None
        #: ``leader``, ``follower`` or ``alone`` (see BlueGreenStatus.sharing).
        self.sharing = "alone"
        #: A follower's copy of what the leader's watch says of itself.
        self._leader: _fleet.LeaderInfo | None = None
        #: Counters of the transparent reconnect (see ``count``).
        self.counters: dict[str, int] = {
            "reconnects": 0,
            "refused_in_transaction": 0,
            "refused_in_flight": 0,
        }
        self._count_lock = threading.Lock()
        #: The monitor roles that have read the blue/green status.
        self._reads: frozenset[str] = frozenset()
        self._ready_logged = False
        self._logged_events = 0
        self._summary_logged = 0
        self._phase_logged = self.view.phase

    def __repr__(self) -> str:
        return f"<DeploymentWatch bg_id={self.bg_id!r} phase={self.view.phase.name}>"

    # -- life cycle -----------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.source is not None

    def start(self, source: MonitorSource) -> bool:
        """Start the monitors (once), or follow those another process of
        this machine runs for the same deployment (``bg_share_monitors``);
        False if already started or closed."""
        if is_ip(source.host):
            blue_ip: str | None = source.host
        else:
            ok, address = self.resolve(source.host)  # DNS: never under the lock
            blue_ip = address if ok else None
        share = inherited = None
        if self.settings.bg_share_monitors and _fleet.available():
            share = _fleet.join(self, source)  # files: never under the lock
        if share is not None and share.leading:
            try:
                inherited = share.inherited_state()  # a leader died moments ago
                if inherited is not None:
                    check_state(inherited)
            except ShareRefused as exc:
                share.close()
                share = None
                _fleet.refused(self.bg_id, str(exc))
        messages: Messages = []
        with self._cond:
            if self.source is not None or self._closed:
                if share is not None:
                    share.close()
                return False
            self.source = source
            self._blue_ip = blue_ip
            self.tracker.add_app_host(source.host)
            self._share = share
            if share is None:
                self._start_monitors()
            elif share.leading:
                self.sharing = "leader"
                if inherited is not None:
                    self._adopt(inherited, messages)
                self._start_monitors()
            else:
                self.sharing = "follower"
            self._publish(messages)
            if share is not None:
                worker = _fleet.ShareThread(self, share)
                self._workers.append(worker)
                worker.start()
        log_all(messages)
        logger.debug(
            "bg_id %r: %s the blue/green status through %s:%s",
            self.bg_id,
            "following another process's monitors of"
            if self.sharing == "follower"
            else "monitoring",
            source.host,
            source.port,
        )
        return True

    def _start_monitors(self) -> None:
        """Start the metadata monitors and the DNS watcher (under the
        condition, with a source)."""
        assert self.source is not None
        workers = [
            MetadataMonitor(self, "blue", self.source),
            MetadataMonitor(self, "green", self.source),
            DnsWatcher(self),
        ]
        self._workers.extend(workers)
        for worker in workers:
            worker.start()

    def start_detector(self, host: str, attempt: Callable[[], bool]) -> bool:
        """Retry detecting ``host`` in the background: ``attempt()`` runs
        every baseline interval until it returns True (it starts the
        monitors itself when it succeeds). Once per host; False if one runs
        already or the watch is closed."""
        with self._cond:
            if self._closed:
                return False
            if any(
                isinstance(w, Detector) and w.host == host and w.is_alive()
                for w in self._workers
            ):
                return False
            worker = Detector(self, host, attempt)
            self._workers.append(worker)
            worker.start()
        return True

    @property
    def condition(self) -> threading.Condition:
        """The condition every waiter and thread sleeps on."""
        return self._cond

    @property
    def closed(self) -> bool:
        """True once closed: final, the watch never follows anything again."""
        return self._closed

    def close(self, timeout: float = 2.0) -> None:
        """Stop the threads and close their connections. Idempotent, and
        final: nothing publishes a view after it."""
        with self._cond:
            self._closed = True
            workers, self._workers = self._workers, []
            for worker in workers:
                worker.stopping.set()
            # Nobody follows the switchover any more: connections that still
            # hold this watch pass through instead of waiting on it.
            self.view = self.tracker.closed_view()
            self._update_gate()
            self._cond.notify_all()
            self._wake_async()
            share, self._share = self._share, None
        if share is not None:
            share.close()  # the lock goes to another process at once
        for worker in workers:
            if isinstance(worker, _fleet.ShareThread):
                worker.wake()
        deadline = time.monotonic() + timeout
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))

    def after_fork_in_child(self) -> None:
        """No thread of this watch exists in a forked child, and one of them
        may have held the condition at fork time: give the child a fresh
        condition and a pass-through view. The monitors (and their
        connections) stay referenced, never closed."""
        self._cond = threading.Condition()
        self._count_lock = threading.Lock()
        self._async_waiters = set()  # the parent's loops are not ours
        self._closed = True
        if self._share is not None:
            self._share.after_fork_in_child()  # the parent's lock stays its own
            self._share = None
        self.view = self.tracker.closed_view()
        self._update_gate()

    def threads(self) -> list[threading.Thread]:
        """The running threads of this watch."""
        return [w for w in self._workers if w.is_alive()]

    # -- used by connections --------------------------------------------------

    def gate_for(self, epoch: int) -> Gate:
        """The :class:`~bluegreen.pipeline.Gate` of a connection opened at
        ``epoch`` (a ``kill_epoch``): calm while its calls need no look.
        A connection of an earlier epoch gets :data:`~bluegreen.pipeline.HOOKED`:
        the switchover dropped it, and its next call must see that."""
        current, gate = self._gate  # one read: the pair changes as a whole
        return gate if epoch == current else HOOKED

    def _update_gate(self) -> None:
        """Follow a new view (under the condition): the gate of a past
        epoch closes for good; the current one is calm while calls are."""
        view = self.view
        epoch, gate = self._gate
        if view.kill_epoch != epoch:
            gate.calm = False
            self._gate = (view.kill_epoch, Gate(view.quiet_calls))
        else:
            gate.calm = view.quiet_calls

    def note_host(self, host: str | None) -> None:
        """Record a host name applications connect with."""
        if not host or host in self.hosts:
            return
        with self._cond:
            if self._closed:
                return
            self.hosts = self.hosts | {host}
            if self.tracker.add_app_host(host):
                self._publish([])
            share = self._share if self.sharing == "follower" else None
        if share is not None:
            share.tell_leader(host)  # the leader resolves and pairs it for all

    def wait(self, version: int, deadline: float, since: float) -> bool:
        """Wait until the view changes from ``version``, or a time-based
        release after ``since`` (when the routing was decided) falls due.

        Return False on reaching ``deadline`` first (times by :attr:`clock`).
        A closed watch has published a pass-through view, so a caller that
        waited on an older one returns at once and stops waiting.
        """
        messages: Messages = []
        try:
            with self._cond:
                while True:
                    view = self.view
                    if view.version != version:
                        return True
                    now = self.clock()
                    if now >= deadline:
                        return False
                    wake = _wake_at(view, deadline, since)
                    if now >= wake:
                        if self.tracker.check_time(now):
                            self._publish(messages)
                        return True
                    self._cond.wait(wake - now)
        finally:
            log_all(messages)

    async def wait_async(self, version: int, deadline: float, since: float) -> bool:
        """:meth:`wait` for a coroutine: the same outcome, awaited without
        blocking the event loop (the condition's lock is only taken for the
        instant of a time-based release). Cancelling it leaves no waiter
        behind."""
        loop = asyncio.get_running_loop()
        while True:
            view = self.view
            if view.version != version:
                return True
            now = self.clock()
            if now >= deadline:
                return False
            wake = _wake_at(view, deadline, since)
            if now >= wake:
                messages: Messages = []
                with self._cond:
                    if self.view.version == version and self.tracker.check_time(now):
                        self._publish(messages)
                log_all(messages)
                return True
            waiter = (loop, loop.create_future())
            self._async_waiters.add(waiter)
            try:
                if self.view.version != version:  # published meanwhile
                    return True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(waiter[1], wake - now)
            finally:
                self._async_waiters.discard(waiter)

    def _wake_async(self) -> None:
        """Wake every :meth:`wait_async` (under the condition)."""
        for loop, future in list(self._async_waiters):
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(_settle, future)

    # -- used by the threads ----------------------------------------------------

    def report(self, update: Callable[[SwitchoverTracker], bool]) -> None:
        """Apply ``update`` to the tracker; publish and log what changed."""
        messages: Messages = []
        with self._cond:
            if self._closed:
                return
            changed = update(self.tracker)
            changed |= self.tracker.check_time(self.clock())
            if changed:
                self._publish(messages)
            else:
                self._share_out(messages)  # the monitors' errors; a heartbeat
        log_all(messages)

    def monitor_target(self, role: str) -> tuple[str, str | None, int | None] | None:
        """Where the ``role`` monitor connects: (host name, IP, port)."""
        source = self.source
        if source is None:
            return None
        return monitor_target(
            self.view, role, source.host.lower(), source.port, self._blue_ip
        )

    def count(self, name: str) -> None:
        """Count one ``reconnects``, ``refused_in_transaction`` (a dropped
        connection inside a transaction: the driver's error went to the
        application) or ``refused_in_flight`` (a call the drop interrupted,
        or one continuing an operation begun before it)."""
        with self._count_lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    # -- protection -------------------------------------------------------------

    def unprotected(
        self, subject: str, reason: str, *, loud: bool = True, kind: str = ""
    ) -> None:
        """Switchover protection is off for ``subject`` (a host), because of
        ``reason``. ``loud``: say so at WARNING, again every
        :data:`~bluegreen._log.REPEAT_S` seconds for as long as it lasts
        (a plain server, where no switchover can happen, is not loud).
        ``kind`` names the cause (``denied``, ``query``, ``connect``...): a
        new cause is logged at once, the same one at that rate."""
        with self._cond:
            if self._closed:
                return
            changed = self._unprotected.get(subject) != reason
            self._unprotected[subject] = reason
            self._kinds[subject] = kind
        if changed:
            self._share_changed()
        if loud:
            self._warn_off(subject, reason, kind)

    def _warn_off(self, subject: str, reason: str, kind: str) -> None:
        """Say that protection is off for ``subject``, at the usual rate."""
        runtime().warnings.warn(
            logger,
            ("protection-off", self.bg_id, subject, kind),
            "bg_id %r: switchover protection is OFF for %s: %s",
            self.bg_id,
            subject,
            reason,
            every=REPEAT_S,
        )

    def _say_back_on(self, subject: str, kinds: Iterable[str]) -> None:
        """Forget the OFF warnings of ``subject``; say it is back on if one
        was given."""
        forgotten = [
            runtime().warnings.forget(("protection-off", self.bg_id, subject, kind))
            for kind in kinds
        ]
        if any(forgotten):
            logger.info(
                "bg_id %r: switchover protection is back on for %s",
                self.bg_id,
                subject,
            )

    def protected_again(self, subject: str) -> None:
        """What made protection off for ``subject`` is over."""
        if subject not in self._unprotected:
            return
        with self._cond:
            if self._unprotected.pop(subject, None) is None:
                return
            self._kinds.pop(subject, None)
        self._share_changed()
        self._say_back_on(subject, _OFF_KINDS)

    def query_failed(
        self, role: str, host: str, error: str, denied: bool, grant: str | None
    ) -> None:
        """A monitor's status query failed on a live connection. Outside a
        switchover that means the plugin is blind: protection is off for
        ``host`` until the metadata reads again (naming the GRANT when a
        privilege is missing)."""
        if self._closed or self.view.phase.active:
            logger.debug("bg_id %r: %s monitor: %s: %s", self.bg_id, role, host, error)
            return
        if denied and grant:
            reason = (
                f"the {role} monitor is not allowed to read the blue/green "
                f"metadata ({error}); an administrator must run: {grant}"
            )
        else:
            reason = (
                f"the {role} monitor cannot read the blue/green metadata "
                f"({error}); it keeps trying"
            )
        self.unprotected(host, reason, kind="denied" if denied and grant else "query")

    def monitor_failed(self, role: str, host: str, error: str) -> None:
        """A monitor could not connect. Outside a switchover (when the hosts
        are expected to answer) protection is off for ``host`` until it
        does."""
        if self._closed or self.view.phase.active:
            logger.debug("bg_id %r: %s monitor: %s: %s", self.bg_id, role, host, error)
            return
        self.unprotected(
            host,
            f"the {role} monitor cannot connect to read the blue/green status "
            f"({error}); it keeps trying",
            kind="connect",
        )

    def monitor_read(self, role: str, host: str) -> None:
        """A monitor read the status from ``host``."""
        if role not in self._reads:
            self._reads = self._reads | {role}
            self._share_changed()
        if host in self._unprotected:
            self.protected_again(host)

    def names_to_watch(self) -> list[str]:
        with self._cond:
            return self.tracker.names_to_watch()

    def look_again(self) -> bool:
        """Resolve the names that tell whether the switchover went through
        (``-old1`` names, blue names) now, on the caller's thread, and fold
        the answers in; True if the view changed.

        Used while traffic is released by a timeout before POST: a
        connection about to follow DNS must not rely on the DNS watcher's
        next round to learn that the hosts were renamed meanwhile.
        """
        names = self.names_to_watch()
        resolve_name = self.resolve
        resolved: dict[str, str | None] = {}
        for name in names:
            ok, address = resolve_name(name)
            if ok:
                resolved[name] = address
        before = self.view.version
        now = self.clock()
        self.report(lambda t: t.observe_dns(resolved, now))
        return self.view.version != before

    def interval(self) -> float:
        """Seconds between polls in the current phase."""
        s = self.settings
        return poll_interval(
            self.view,
            self.clock(),
            s.bg_interval_baseline_ms / 1000,
            s.bg_interval_increased_ms / 1000,
            s.bg_interval_high_ms / 1000,
        )

    # -- publishing and logging -------------------------------------------------

    def _publish(self, messages: Messages) -> None:
        if self._closed:
            return  # a closed watch keeps its pass-through view for good
        tracker = self.tracker
        self.view = tracker.view()
        self._update_gate()
        self._cond.notify_all()
        if self._async_waiters:
            self._wake_async()
        events = tracker.events
        if len(events) < self._logged_events:  # a new deployment cycle
            self._logged_events = self._summary_logged = 0
            self._ready_logged = False
        for event in events[self._logged_events :]:
            offset = tracker.offset_ms(event)
            messages.append(
                (
                    logging.INFO,
                    "bg_id %r: %s%s",
                    (
                        self.bg_id,
                        event.name,
                        "" if offset is None else f" ({offset:+d} ms)",
                    ),
                )
            )
        self._logged_events = len(events)
        for status in sorted(tracker.unknown_statuses):
            if not runtime().warnings.first(("unknown-status", self.bg_id, status)):
                continue
            messages.append(
                (
                    logging.WARNING,
                    "bg_id %r: the blue/green metadata reports an undocumented "
                    "status %r; it is ignored",
                    (self.bg_id, status),
                )
            )
        if tracker.ready and not self._ready_logged:
            self._ready_logged = True
            pairs = ", ".join(
                f"{blue} -> {green} ({ip})"
                for blue, (green, ip) in self.view.inventory.mapping().items()
            )
            messages.append(
                (
                    logging.INFO,
                    "bg_id %r: ready for a blue/green switchover: the green "
                    "topology is known and every blue host is mapped: %s",
                    (self.bg_id, pairs),
                )
            )
        rolled_back = any(e.name == ROLLED_BACK for e in events[self._summary_logged :])
        if (tracker.finished or rolled_back) and self._summary_logged < len(events):
            self._summary_logged = len(events)
            messages.append(
                (
                    logging.DEBUG,
                    "%s",
                    (format_summary(self.bg_id, events) + self._sharing_text(),),
                )
            )
            messages.append(
                (
                    logging.INFO,
                    "%s",
                    (
                        one_line(self.bg_id, events, dict(self.counters))
                        + self._sharing_text(),
                    ),
                )
            )
        self._share_out(messages)

    # -- status ---------------------------------------------------------------

    def status(self) -> BlueGreenStatus:
        """A snapshot of the watch for health checks and tests."""
        with self._cond:
            tracker = self.tracker
            view = self.view
            inv = view.inventory
            events = tuple(
                SummaryEvent(e.name, timestamp(e.wall), tracker.offset_ms(e))
                for e in tracker.events
            )
            leader = self._leader if self.sharing == "follower" else None
            unprotected = dict(self._unprotected)
            errors: dict[str, str | None]
            reads: frozenset[str]
            if self.sharing == "follower" and leader is None:
                # Nothing read from the leader yet.
                errors, monitoring, reads, leader_pid = {}, False, frozenset(), None
            elif leader is None:
                errors = self.monitor_errors()
                monitoring = self.source is not None and self.monitors_alive()
                reads = self._reads
                leader_pid = os.getpid() if self.source is not None else None
            else:
                errors = dict(leader.errors)
                monitoring = leader.monitoring and not self._closed
                reads = leader.reads
                leader_pid = leader.pid
                for subject, (why, _) in leader.unprotected.items():
                    unprotected.setdefault(subject, why)
                silent = self.leader_silence()
                if silent is not None:
                    unprotected["the shared monitors"] = silent
            # Once green hosts are known, the green monitor must have read
            # the status too: it is the one that follows the switchover
            # when the blue hosts go away.
            # (Green hosts without an address are a readiness problem,
            # reported by ``ready``, not a monitor's.)
            green_reachable = any(g in inv.ips for g in inv.green)
            wanted = {"blue", "green"} if green_reachable else {"blue"}
            protected = monitoring and wanted <= reads and not unprotected
            reason = None
            if not protected:
                reason = self._why_unprotected(monitoring, unprotected, wanted, reads)
            return BlueGreenStatus(
                bg_id=self.bg_id,
                phase=view.effective_phase(self.clock()).name,
                ready=tracker.ready,
                monitoring=monitoring,
                mapping=inv.mapping(),
                addresses=dict(inv.ips),
                green_topology_changed=view.renamed,
                blue_dns_updated=view.blue_dns_updated,
                green_dns_removed=view.green_dns_removed,
                timed_out=tracker.timed_out,
                events=events,
                monitor_errors=errors,
                protected=protected,
                reason=reason,
                unprotected=unprotected,
                reconnects=self.counters["reconnects"],
                refused_in_transaction=self.counters["refused_in_transaction"],
                refused_in_flight=self.counters["refused_in_flight"],
                sharing=self.sharing,
                leader_pid=leader_pid,
            )

    def monitor_errors(self) -> dict[str, str | None]:
        """Monitor role -> its last error, for this process's monitors."""
        return {
            w.role: w.last_error
            for w in self._workers
            if isinstance(w, MetadataMonitor)
        }

    def monitors_alive(self) -> bool:
        """Whether this process's metadata monitors run."""
        return not self._closed and any(
            isinstance(w, MetadataMonitor) and w.is_alive() for w in self._workers
        )

    def _why_unprotected(
        self,
        monitoring: bool,
        unprotected: dict[str, str],
        wanted: set[str],
        reads: frozenset[str],
    ) -> str:
        if unprotected:
            return "; ".join(f"{host}: {why}" for host, why in unprotected.items())
        if self._closed:
            return "the monitors were stopped (bluegreen.bg.shutdown() or exit)"
        if self.source is None:
            return (
                "no connection has found a blue/green capable RDS or Aurora "
                "deployment for this bg_id yet"
            )
        if not monitoring:
            if self.sharing == "follower":
                pid = self._leader.pid if self._leader is not None else "?"
                return (
                    f"the process that runs the monitors for this machine "
                    f"(pid {pid}) has not started them yet, or they stopped"
                )
            return "the monitor threads are not running"
        missing = " and ".join(sorted(wanted - reads))
        return f"the {missing} monitor has not read the blue/green status yet"


#: The causes :meth:`DeploymentWatch.unprotected` is told about.
_OFF_KINDS = (
    "",
    "denied",
    "query",
    "connect",
    "detection",
    "unsupported",
    "plain",
    "silent",
)


def _wake_at(view: RoutingView, deadline: float, since: float) -> float:
    """When a waiter on ``view`` must look again: its deadline, or a
    time-based release after ``since`` (when the routing was decided)."""
    timers = [
        due
        for due in (view.release_at, view.settle_at)
        if due is not None and due > since
    ]
    return min([deadline, *timers])


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake_all(cond: threading.Condition) -> None:
    with cond:
        cond.notify_all()


class WatchRegistry:
    """``bg_id`` -> :class:`DeploymentWatch`, for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, DeploymentWatch] = {}
        #: Watches inherited from the parent process (kept, never closed).
        self._inherited: list[DeploymentWatch] = []

    def get(self, bg_id: str, settings: Settings) -> DeploymentWatch:
        """The watch of ``bg_id``, created with ``settings`` on first use."""
        watch = self._watches.get(bg_id)
        if watch is None:
            with self._lock:
                watch = self._watches.get(bg_id)
                if watch is None:
                    watch = DeploymentWatch(bg_id, settings)
                    self._watches[bg_id] = watch
        return watch

    def find(self, bg_id: str) -> DeploymentWatch | None:
        return self._watches.get(bg_id)

    def all(self) -> list[DeploymentWatch]:
        return list(self._watches.values())

    def close_all(self, timeout: float = 2.0) -> None:
        """Stop every watch and forget it (tests; process exit)."""
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
        threads = [t for w in watches for t in w.threads()]
        for watch in watches:
            watch.close(0.0)  # signal every watch first
        deadline = time.monotonic() + timeout  # then one budget in total
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def after_fork_in_child(self) -> None:
        """In a forked child (called by the runtime): the parent's monitor
        threads do not exist here; its watches are kept aside, never
        closed, and the child starts its own on first use."""
        self._lock = threading.Lock()
        for watch in self._watches.values():
            watch.after_fork_in_child()
        self._inherited.extend(self._watches.values())
        self._watches = {}

    def close(self) -> None:
        """Stop the monitors at process exit (called by the runtime)."""
        self.close_all(1.0)


def watches() -> WatchRegistry:
    """The process's watches: the ``bg`` plugin's state in the runtime."""
    return runtime().state("bg", WatchRegistry)
