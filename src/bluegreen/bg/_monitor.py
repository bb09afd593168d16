"""The background threads of one deployment: two metadata monitors and a DNS
watcher.

Each monitor (``blue``: the host the application connected to; ``green``: its
green counterpart from the metadata) keeps one dedicated autocommit
connection, opened by the IP address recorded before the switchover (the
host name is kept for TLS), and polls the status (and, on Aurora, the
topology) at the interval the current phase asks for. The DNS watcher
resolves the inventory's names, which records the addresses before the
switchover and notices renames, updated blue names and removed green names
after it.

Threads are named daemon threads holding their :class:`MonitorOwner`
weakly; they sleep on the watch's condition, so a phase change wakes them at
once, and they stop when the watch closes (closing their connection).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from .._log import REPEAT_S
from .._runtime import runtime
from ..dialects import filter_topology, topology_rows
from ..drivers.base import DriverAdapter, DriverParams
from ..pipeline import Target
from ._hosts import is_ip
from ._model import Observation, parse_status_rows

if TYPE_CHECKING:
    from ..pipeline import ConnectContext
    from ._tracker import SwitchoverTracker

__all__ = [
    "MONITOR_CLIENT_NAME",
    "Detector",
    "DnsWatcher",
    "MetadataMonitor",
    "MonitorOwner",
    "MonitorSource",
    "resolve",
]

logger = logging.getLogger("bluegreen.bg")

#: How monitoring connections name themselves to the server
#: (``application_name`` on PostgreSQL, the ``program_name`` connection
#: attribute on MySQL), unless the application names them with the
#: ``blue-green-monitoring-`` prefix.
MONITOR_CLIENT_NAME = "bluegreen-monitor"
#: Connect timeout (s) of monitoring connections when none is configured.
MONITOR_CONNECT_TIMEOUT = 5
#: PyMySQL read/write timeout (s) of monitoring connections when none is set.
MONITOR_IO_TIMEOUT = 5

_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def resolve(name: str) -> tuple[bool, str | None]:
    """Look ``name`` up: ``(True, address)``, ``(True, None)`` when the name
    does not exist, ``(False, None)`` when the lookup itself failed."""
    if is_ip(name):
        return True, name.strip("[]")
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return (exc.errno in _NOT_FOUND), None
    except (OSError, UnicodeError):
        return False, None
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return True, str(info[4][0])
    return True, None


@dataclass(frozen=True)
class MonitorSource:
    """How monitors reach the deployment, taken from the first connection."""

    adapter: DriverAdapter
    params: DriverParams  #: monitoring parameters (autocommit, no node selection)
    host: str  #: the blue host the application connected to
    port: int
    status_query: str
    status_takes_tag: bool
    status_has_id: bool
    topology_query: str | None
    client_tag: str
    #: The GRANT statement(s) the user needs to read the metadata, if any.
    grant_hint: str | None = None
    #: The context of the first connection: the plugins' ``credentials``
    #: hooks (the ``iam`` plugin's tokens) apply to monitoring connections.
    context: ConnectContext | None = field(default=None, compare=False, repr=False)

    def connect(self, host: str, ip: str | None, port: int | None) -> Any:
        """Open a monitoring connection to ``ip`` standing for ``host``."""
        params = self.params
        adapter = self.adapter
        ctx = self.context
        if ctx is not None and ctx.credential_hooks:
            # The monitors' own user, when the prefix gives them one.
            user = adapter.endpoint(params).user
            target = Target(host, port or self.port, ip, user, "bg")
            params = ctx.credentials(params, target)
        extra: dict[str, Any] = {}
        if not adapter.connect_timeout(params):
            extra[adapter.timeout_keys[0]] = MONITOR_CONNECT_TIMEOUT
        for key in adapter.io_timeout_keys:
            if key not in params.kwargs:
                extra[key] = MONITOR_IO_TIMEOUT
        if extra:
            params = DriverParams(params.conninfo, {**params.kwargs, **extra})
        return adapter.connect(params, host, ip, port)


def _close(conn: Any) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception as exc:
        logger.debug("Closing a monitoring connection failed: %s", exc)


def _observe(tracker: SwitchoverTracker, *, obs: Observation | None) -> bool:
    return tracker.observe(obs) if obs is not None else False


def _observe_dns(
    tracker: SwitchoverTracker, *, resolved: dict[str, str | None], at: float
) -> bool:
    return tracker.observe_dns(resolved, at)


def _denied(exc: BaseException) -> bool:
    """Whether ``exc`` looks like a missing privilege (PostgreSQL 42501, MySQL
    1142/1044 or a message saying so)."""
    if getattr(exc, "sqlstate", None) == "42501":
        return True
    args = getattr(exc, "args", ())
    if args and args[0] in (1142, 1044, 1143):
        return True
    if getattr(exc, "errno", None) in (1142, 1044, 1143):
        return True
    text = str(exc).lower()
    return "permission denied" in text or "command denied" in text


def _message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class MonitorOwner(Protocol):
    """What the threads need from the object they work for (a
    :class:`~bluegreen.bg._watch.MonitorOwner`; unit tests pass fakes)."""

    bg_id: str

    @property
    def clock(self) -> Callable[[], float]: ...
    @property
    def resolve(self) -> Callable[[str], tuple[bool, str | None]]: ...
    @property
    def condition(self) -> threading.Condition:
        """What the threads sleep on; notified on every change."""

    @property
    def closed(self) -> bool: ...
    def interval(self) -> float: ...
    def report(self, update: Callable[[SwitchoverTracker], bool]) -> None: ...
    def monitor_target(
        self, role: str
    ) -> tuple[str, str | None, int | None] | None: ...
    def names_to_watch(self) -> list[str]: ...
    def monitor_failed(self, role: str, host: str, error: str) -> None: ...
    def query_failed(
        self, role: str, host: str, error: str, denied: bool, grant: str | None
    ) -> None: ...
    def monitor_read(self, role: str, host: str) -> None: ...


#: The longest a thread sleeps at a time, so that it notices an owner that
#: went away (collected) without being closed.
_MAX_SLEEP = 5.0
#: Unexpected errors back a thread off: its interval times 2**n, up to this.
_MAX_BACKOFF = 64


class _Worker(threading.Thread):
    """A daemon thread bound weakly to its owner, sleeping on its condition.

    The owner is dereferenced anew for every round and never held while
    sleeping, so an owner nobody references is collected, and its threads
    end. An unexpected error in a round is logged (at WARNING, again every
    REPEAT_S while it recurs) and backs the thread off; it never stops it.
    """

    def __init__(self, owner: MonitorOwner, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._owner_ref: Callable[[], MonitorOwner | None] = weakref.ref(owner)
        self.stopping = threading.Event()
        self.failures = 0

    def watch(self) -> MonitorOwner | None:
        owner = self._owner_ref()
        if owner is None or self.stopping.is_set() or owner.closed:
            return None
        return owner

    def run(self) -> None:
        try:
            self.loop()
        finally:
            self.cleanup()

    def loop(self) -> None:
        """Work, report, sleep for the phase's interval; until stopped."""
        while True:
            watch = self.watch()
            if watch is None:
                return
            started = watch.clock()
            try:
                update = self.step(watch)
                del watch  # not held while the update waits for the lock
                watch = self.watch()
                if watch is None:
                    return
                watch.report(update)
                self.reported(watch)
                self.failures = 0
            except Exception:
                self.failed()
            del watch
            if not self.sleep(started):
                return

    def failed(self) -> None:
        """An unexpected error in a round: log it, back off, go on."""
        self.failures += 1
        if runtime().warnings.due(("worker-error", self.name), REPEAT_S):
            logger.warning(
                "%s: unexpected error (it keeps running, backing off)",
                self.name,
                exc_info=True,
            )
        else:
            logger.debug("%s: unexpected error", self.name, exc_info=True)

    def step(self, watch: MonitorOwner) -> Callable[[SwitchoverTracker], bool]:
        """One round of work; return the update to apply to the tracker."""
        raise NotImplementedError

    def reported(self, watch: MonitorOwner) -> None:
        """The round's update has been applied (and published)."""

    def cleanup(self) -> None:
        """Release resources when the thread ends."""

    def sleep(self, since: float) -> bool:
        """Sleep until ``since`` + the current interval (re-read on every
        wake-up, so that a faster phase takes effect at once); False when
        the thread must stop. The owner is not held while sleeping."""
        backoff = 2 ** min(self.failures, 6) if self.failures else 1
        while True:
            watch = self.watch()
            if watch is None:
                return False
            cond = watch.condition
            clock = watch.clock
            due = since + watch.interval() * min(backoff, _MAX_BACKOFF)
            del watch
            with cond:
                if self.stopping.is_set():
                    return False
                now = clock()
                if now >= due:
                    return True
                cond.wait(min(due - now, _MAX_SLEEP))


class MetadataMonitor(_Worker):
    """Polls the blue/green status from one side of the deployment."""

    def __init__(self, watch: MonitorOwner, role: str, source: MonitorSource) -> None:
        super().__init__(watch, f"bluegreen-bg-{watch.bg_id}-{role}-monitor")
        self.role = role
        self.source = source
        self.conn: Any = None
        self.target: tuple[str, str | None, int | None] | None = None
        self.last_error: str | None = None
        #: The host the last round read the status from (None: it failed).
        self.read_from: str | None = None

    def step(self, watch: MonitorOwner) -> Callable[[SwitchoverTracker], bool]:
        target = watch.monitor_target(self.role)
        self.read_from = None
        obs = None
        if target is not None:
            old = self.target
            if old is None or (target[0], target[2]) != (old[0], old[2]):
                self.disconnect()  # another host: reconnect
            # The same host at a new address (a round-robin reader endpoint):
            # the address is used on the next reconnect.
            self.target = target
            obs = self.poll(watch, target)
        return functools.partial(_observe, obs=obs)

    def poll(
        self, watch: MonitorOwner, target: tuple[str, str | None, int | None]
    ) -> Observation:
        src = self.source
        host, ip, port = target
        try:
            if self.conn is None:
                try:
                    self.conn = src.connect(host, ip, port)
                except Exception as exc:
                    self.last_error = _message(exc)
                    watch.monitor_failed(self.role, host, self.last_error)
                    return Observation(
                        self.role,
                        watch.clock(),
                        None,
                        self.last_error,
                        unreachable=True,
                    )
            query = src.adapter.query
            raw = query(
                self.conn,
                src.status_query,
                (src.client_tag,) if src.status_takes_tag else None,
            )
            writers: frozenset[str] = frozenset()
            instances: tuple[str, ...] = ()
            if src.topology_query:
                try:
                    topo = filter_topology(
                        topology_rows(query(self.conn, src.topology_query, None)),
                        datetime.now(timezone.utc),
                    )
                    writers = frozenset(r.server_id for r in topo if r.is_writer)
                    instances = tuple(r.server_id for r in topo)
                except Exception as exc:
                    logger.debug("bg %s topology query failed: %s", self.role, exc)
                    if src.adapter.is_connection_lost(exc, self.conn):
                        raise
        except Exception as exc:
            self.last_error = _message(exc)
            lost = src.adapter.is_connection_lost(exc, self.conn)
            if not lost:
                watch.query_failed(
                    self.role, host, self.last_error, _denied(exc), src.grant_hint
                )
            logger.debug("bg %s monitor: status query failed: %s", self.role, exc)
            self.disconnect()
            return Observation(
                self.role, watch.clock(), None, self.last_error, unreachable=lost
            )
        self.last_error = None
        self.read_from = host
        rows = tuple(parse_status_rows(raw, has_id=src.status_has_id))
        return Observation(self.role, watch.clock(), rows, None, writers, instances)

    def reported(self, watch: MonitorOwner) -> None:
        # Only once what was read is published: status() must not say
        # "protected" before the phase it read is visible.
        if self.read_from is not None:
            watch.monitor_read(self.role, self.read_from)

    def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        _close(conn)

    def cleanup(self) -> None:
        self.disconnect()


class DnsWatcher(_Worker):
    """Resolves the deployment's names and reports what they point to."""

    def __init__(self, watch: MonitorOwner) -> None:
        super().__init__(watch, f"bluegreen-bg-{watch.bg_id}-dns")

    def step(self, watch: MonitorOwner) -> Callable[[SwitchoverTracker], bool]:
        resolved: dict[str, str | None] = {}
        resolve_name = watch.resolve
        for name in watch.names_to_watch():
            ok, address = resolve_name(name)
            if ok:
                resolved[name] = address
        return functools.partial(_observe_dns, resolved=resolved, at=watch.clock())


class Detector(_Worker):
    """Retries the deployment detection of one host whose detection failed.

    A failed probe leaves the host unprotected; an application that holds
    its connections (a pool) may never open another one to retry it. This
    thread calls ``attempt()`` once per baseline interval (it opens its own
    connection) until it succeeds; ``attempt`` starts the monitors then.
    """

    def __init__(
        self, watch: MonitorOwner, host: str, attempt: Callable[[], bool]
    ) -> None:
        super().__init__(watch, f"bluegreen-bg-{watch.bg_id}-detect-{host}")
        self.host = host
        self.attempt = attempt

    def loop(self) -> None:
        while True:
            watch = self.watch()
            if watch is None:
                return
            started = watch.clock()
            del watch
            if not self.sleep(started):
                return
            try:
                if self.attempt():
                    return
                self.failures = 0
            except Exception:
                logger.debug("detecting %s again failed", self.host, exc_info=True)
