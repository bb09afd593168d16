"""One set of monitors per machine: a watch's side of the shared files.

A :class:`MonitorShare` links one :class:`~bluegreen.bg._watch.DeploymentWatch`
to the view file of its deployment (:mod:`._share`). The watch is the
*leader* while it holds the file's lock: it runs the monitors as a watch
alone would and writes its tracker's state after every change. Otherwise it
is a *follower*: it runs no monitors, and the share thread
(``bluegreen-bg-<id>-share``) sleeps on the follower's socket until the
leader says it wrote, reads the record, and hands it to the watch, which
folds it into its own tracker (:func:`._snapshot.adopt`) and publishes the
view to its connections exactly as if its own monitors had seen it.

The share thread also asks for the lock every :data:`LOCK_RETRY` seconds:
when the leader exits or is killed, one follower gets the lock, keeps the
view it already mirrors, and starts the monitors (:meth:`take_over`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from .._runtime import runtime
from ._monitor import _Worker
from ._share import (
    Record,
    SharedView,
    ShareRefused,
    available,
    runtime_dir,
    share_key,
)

if TYPE_CHECKING:
    from ._monitor import MonitorSource
    from ._watch import DeploymentWatch

__all__ = [
    "LOCK_RETRY",
    "SHARED_KINDS",
    "SILENCE_GRACE",
    "LeaderInfo",
    "MonitorShare",
    "ShareThread",
    "available",
    "join",
]

logger = logging.getLogger("bluegreen.bg")

#: How often a follower asks for the lock (seconds): the longest a dead
#: leader's deployment goes unwatched, before the new leader connects.
LOCK_RETRY = 0.2
#: A leader that has not shown it is alive for three baseline intervals
#: plus this many seconds is reported silent by its followers.
SILENCE_GRACE = 10.0
#: What a follower may report as a host name (anything else is ignored).
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,62}\.){1,126}[a-z0-9-]{1,63}")
#: The longest the share thread sleeps while leading.
_LEADER_SLEEP = 5.0


#: The causes of unprotected hosts that belong to the monitors, and so are
#: shared with the followers (the others are about one process's
#: connections: detection, unsupported or plain servers).
SHARED_KINDS = frozenset({"query", "denied", "connect"})


class LeaderInfo:
    """What a leader's watch says of itself, as a follower read it."""

    __slots__ = ("errors", "monitoring", "pid", "reads", "reported", "unprotected")

    def __init__(
        self,
        pid: int,
        monitoring: bool,
        errors: dict[str, str | None],
        reads: frozenset[str],
        unprotected: dict[str, tuple[str, str]],
    ) -> None:
        self.pid = pid
        self.monitoring = monitoring
        self.errors = errors
        self.reads = reads
        #: subject -> (reason, kind)
        self.unprotected = unprotected
        #: The subjects the follower has warned about (see ``remind``).
        self.reported: set[str] = set()

    @classmethod
    def parse(cls, state: dict[str, Any]) -> LeaderInfo:
        w = state["watch"]
        errors = w["errors"]
        unprotected = w["unprotected"]
        if not isinstance(errors, dict) or not isinstance(unprotected, dict):
            raise TypeError("malformed watch state")
        return cls(
            pid=int(w["pid"]),
            monitoring=bool(w["monitoring"]),
            errors={str(k): None if v is None else str(v) for k, v in errors.items()},
            reads=frozenset(str(r) for r in w["reads"]),
            unprotected={
                str(k): (str(r), str(kind)) for k, (r, kind) in unprotected.items()
            },
        )


def join(watch: DeploymentWatch, source: MonitorSource) -> MonitorShare | None:
    """Open the shared files of ``watch``'s deployment and try to lead.

    None when they cannot be used: the reason is logged once at WARNING and
    the watch monitors on its own."""
    user = source.adapter.endpoint(source.params).user
    key = share_key(watch.bg_id, source.host, source.port, user)
    try:
        view = SharedView(runtime_dir(), key)
    except ShareRefused as exc:
        refused(watch.bg_id, str(exc))
        return None
    share = MonitorShare(view)
    try:
        share.lead_or_follow()
    except ShareRefused as exc:
        share.close()
        refused(watch.bg_id, str(exc))
        return None
    return share


def refused(bg_id: str, reason: str) -> None:
    """Say once why this process monitors on its own."""
    runtime().warnings.warn(
        logger,
        ("share-refused", bg_id, reason),
        "bg_id %r: the monitors are not shared with the other processes of "
        "this machine (%s); this process runs its own",
        bg_id,
        reason,
    )


class MonitorShare:
    """The shared view file of one watch, behind a lock of its own (the
    watch's condition is never taken while it is held)."""

    def __init__(self, view: SharedView) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._closed = False
        #: The latest record read (follower).
        self.seen_seq = -1
        self.leader_pid: int | None = None

    @property
    def leading(self) -> bool:
        return self._view.leading

    def lead_or_follow(self) -> bool:
        """Take the lock if it is free; bind this role's socket. True if
        leading."""
        with self._lock:
            leading = self._view.try_lead()
            self._view.listen()
            if leading:
                self.leader_pid = os.getpid()
            return leading

    def try_lead(self) -> bool:
        """Take the lock if the leader is gone; True if this process now
        leads (its inbox bound in place of its follower socket)."""
        with self._lock:
            if self._closed or not self._view.try_lead():
                return False
            self._view.listen()
            self.leader_pid = os.getpid()
            return True

    def inherited_state(self) -> dict[str, Any] | None:
        """A state left by a leader that died moments ago (see
        :meth:`SharedView.live_state`)."""
        with self._lock:
            if self._closed:
                return None
            return self._view.live_state(time.monotonic())

    def read(self) -> Record | None:
        """The current record if it is newer than the last one read."""
        with self._lock:
            if self._closed:
                return None
            record = self._view.read()
        if record is None or record.seq == self.seen_seq:
            return None
        self.seen_seq = record.seq
        return record

    def publish(self, payload: dict[str, Any]) -> None:
        """Write the leader's state and wake the followers (when it changed)."""
        with self._lock:
            if self._closed or not self._view.leading:
                return
            if self._view.publish(payload):
                self._view.wake_followers()

    def heartbeat(self) -> None:
        with self._lock:
            if not self._closed:
                self._view.heartbeat()

    def silence(self, now: float) -> float | None:
        """Seconds since the leader last showed it is alive (a follower's
        question), None when it cannot be told."""
        with self._lock:
            if self._closed or self._view.leading:
                return None
            try:
                beat = self._view.last_heartbeat()
            except ShareRefused:
                return None
        return None if beat is None else max(0.0, now - beat)

    def tell_leader(self, host: str) -> None:
        """Give the leader a host name this process's connections use."""
        with self._lock:
            if not self._closed and not self._view.leading:
                self._view.tell_leader("host " + host)

    def receive(self) -> list[str]:
        with self._lock:
            if self._closed:
                return []
            return [m.decode("utf-8", "replace") for m in self._view.receive()]

    def fileno(self) -> int | None:
        with self._lock:
            return None if self._closed else self._view.fileno()

    def close(self) -> None:
        """Withdraw when leading, release the lock, remove this process's
        socket. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._view.close()

    def after_fork_in_child(self) -> None:
        """The parent's lock, sockets and mapping are left alone."""
        self._lock = threading.Lock()
        if not self._closed:
            self._closed = True
            self._view.forget_after_fork()


class ShareThread(_Worker):
    """Wakes a follower's watch when the leader publishes, and takes over
    when the leader is gone; while leading, takes in the host names the
    followers report."""

    def __init__(self, watch: DeploymentWatch, share: MonitorShare) -> None:
        super().__init__(watch, f"bluegreen-bg-{watch.bg_id}-share")
        self.share = share
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)

    def wake(self) -> None:
        """Make the thread look at once (closing)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def loop(self) -> None:
        share = self.share
        while True:
            watch: Any = self.watch()
            if watch is None:
                return
            try:
                if share.leading:
                    for message in share.receive():
                        host = message[5:].strip().lower()
                        if (
                            message.startswith("host ")
                            and len(host) <= 253
                            and _HOST_NAME.fullmatch(host)
                        ):
                            watch.note_host(host)
                    timeout = _LEADER_SLEEP
                else:
                    self.follow(watch)
                    timeout = LOCK_RETRY
            except ShareRefused as exc:
                watch.go_alone(str(exc))
                return
            except Exception:
                self.failed()
                timeout = LOCK_RETRY
            del watch
            fileno = share.fileno()
            if fileno is None:
                return
            with contextlib.suppress(OSError, ValueError):
                waker = self._wake_r.fileno()
                ready, _, _ = select.select([fileno, waker], [], [], timeout)
                if waker in ready:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)

    def follow(self, watch: DeploymentWatch) -> None:
        """One follower round: news from the leader, or the lock."""
        share = self.share
        share.receive()  # the wake-ups: what they announce is read below
        record = share.read()
        if record is not None:
            if record.pid != share.leader_pid:
                share.leader_pid = record.pid
                for host in sorted(watch.hosts):  # a new leader: tell it again
                    share.tell_leader(host)
            if record.payload is not None and not record.withdrawn:
                watch.adopt_shared(record.payload, record.pid)
        if share.try_lead():
            record = share.read()  # what the last leader wrote last
            if record is not None and record.payload is not None:
                watch.adopt_shared(record.payload, record.pid)
            watch.take_over()
        else:
            watch.remind()

    def cleanup(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            sock.close()
