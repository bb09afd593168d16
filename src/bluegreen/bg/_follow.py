"""A deployment watch's side of one set of monitors per machine.

:class:`SharedMonitoring` is mixed into
:class:`~bluegreen.bg._watch.DeploymentWatch`: how a leader writes what its
followers route from, how a follower folds the leader's records in
(:func:`._snapshot.adopt`), repeats its warnings, takes over when the
leader is gone, and falls back to monitoring alone when the shared files
cannot be trusted. The files and the share thread are in :mod:`._fleet`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from ._fleet import SHARED_KINDS, SILENCE_GRACE, LeaderInfo, MonitorShare, refused
from ._share import ShareRefused
from ._snapshot import SnapshotError, adopt, export
from ._status import Messages, log_all
from ._tracker import SwitchoverTracker

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..settings import Settings

__all__ = ["SharedMonitoring", "check_state"]

logger = logging.getLogger("bluegreen.bg")


class SharedMonitoring:
    """The sharing methods of a deployment watch (see the module docstring)."""

    #: Whether the follower has said its leader went silent.
    _silent_said = False

    if TYPE_CHECKING:  # what DeploymentWatch provides
        bg_id: str
        tracker: SwitchoverTracker
        sharing: str
        hosts: frozenset[str]
        _cond: threading.Condition
        _closed: bool
        _share: MonitorShare | None
        _leader: LeaderInfo | None
        _reads: frozenset[str]
        _unprotected: dict[str, str]
        _kinds: dict[str, str]
        settings: Settings

        def _publish(self, messages: Messages) -> None: ...
        def _start_monitors(self) -> None: ...
        def monitors_alive(self) -> bool: ...
        def monitor_errors(self) -> dict[str, str | None]: ...
        def _warn_off(self, subject: str, reason: str, kind: str) -> None: ...
        def _say_back_on(self, subject: str, kinds: Iterable[str]) -> None: ...

    def _share_out(self, messages: Messages) -> None:
        """Leading: write what the followers route from (under the
        condition; written only when it changed, else a heartbeat)."""
        share = self._share
        if share is None or self.sharing != "leader":
            return
        try:
            share.publish(self._shared_state())
        except ShareRefused as exc:
            # Nobody can follow this state: lead no more, monitor alone.
            self._share = None
            self.sharing = "alone"
            share.close()
            messages.append(
                (
                    logging.WARNING,
                    "bg_id %r: the monitors are no longer shared (%s); this "
                    "process keeps its own",
                    (self.bg_id, str(exc)),
                )
            )

    def _shared_state(self) -> dict[str, Any]:
        """What the followers need (leader, under the condition)."""
        return {
            "tracker": export(self.tracker),
            "watch": {
                "pid": os.getpid(),
                "monitoring": self.monitors_alive(),
                "errors": self.monitor_errors(),
                "reads": sorted(self._reads),
                "unprotected": {
                    subject: [reason, self._kinds.get(subject, "")]
                    for subject, reason in self._unprotected.items()
                    if self._kinds.get(subject, "") in SHARED_KINDS
                },
            },
        }

    def _share_changed(self) -> None:
        """What the status says changed outside a publication (leader)."""
        if self._share is None or self.sharing != "leader":
            return
        messages: Messages = []
        with self._cond:
            if not self._closed:
                self._share_out(messages)
        log_all(messages)

    def _adopt(
        self,
        state: dict[str, Any],
        messages: Messages,
    ) -> None:
        """Fold a leader's published state in (under the condition). Raises
        ShareRefused when it is malformed; nothing is changed then."""
        try:
            info = LeaderInfo.parse(state)
            adopt(self.tracker, state["tracker"])
        except (SnapshotError, KeyError, TypeError, ValueError) as exc:
            raise ShareRefused(f"the shared view is malformed: {exc}") from exc
        if self._leader is not None:
            info.reported = self._leader.reported
        self._leader = info

    def adopt_shared(self, state: dict[str, Any], pid: int) -> None:
        """A follower's share thread read a new record: route from it."""
        messages: Messages = []
        with self._cond:
            if self._closed or self.sharing != "follower":
                return
            self._adopt(state, messages)
            self._publish(messages)
        log_all(messages)
        self.remind()

    def leader_silence(self) -> str | None:
        """A follower's leader that stopped showing it is alive (hung or
        stopped, yet holding the lock): why, in plain words; else None."""
        share = self._share
        if share is None or self.sharing != "follower":
            return None
        quiet = share.silence(time.monotonic())
        limit = 3 * self.settings.bg_interval_baseline_ms / 1000 + SILENCE_GRACE
        if quiet is None or quiet <= limit:
            return None
        pid = self._leader.pid if self._leader is not None else "?"
        return (
            f"the process that runs the monitors for this machine (pid {pid}) "
            f"has not shown it is alive for {quiet:.0f} s; it holds the lead, "
            "so no other process takes over"
        )

    def remind(self) -> None:
        """A follower says, at the usual rate, what the leader reports as
        unprotected (and that it is over, once it is), and that the leader
        went silent."""
        silent = self.leader_silence()
        if silent is not None:
            self._warn_off("the shared monitors", silent, "silent")
        elif self._silent_said:
            self._say_back_on("the shared monitors", ("silent",))
        self._silent_said = silent is not None
        info = self._leader
        if info is None or self.sharing != "follower":
            return
        for subject, (reason, kind) in info.unprotected.items():
            self._warn_off(subject, reason, kind)
        for subject in sorted(info.reported - info.unprotected.keys()):
            self._say_back_on(subject, SHARED_KINDS)
        info.reported = set(info.unprotected)

    def take_over(self) -> None:
        """The leader is gone and this follower holds the lock now: run the
        monitors, starting from the view it followed."""
        messages: Messages = []
        with self._cond:
            if self._closed or self.sharing != "follower":
                return
            previous = self._leader.pid if self._leader is not None else None
            self.sharing = "leader"
            self._leader = None
            self._start_monitors()
            self._publish(messages)
        log_all(messages)
        logger.info(
            "bg_id %r: this process (pid %d) runs the monitors for the machine "
            "now; the previous leader (pid %s) is gone",
            self.bg_id,
            os.getpid(),
            previous,
        )

    def go_alone(self, reason: str) -> None:
        """The shared files cannot be trusted any more: monitor alone,
        starting from the view followed so far."""
        with self._cond:
            if self._closed or self._share is None:
                return
            share, self._share = self._share, None
            was = self.sharing
            self.sharing = "alone"
            self._leader = None
            if was == "follower":
                self._start_monitors()
        share.close()
        refused(self.bg_id, reason)

    def _sharing_text(self) -> str:
        """How this process's monitors are shared, for the summary."""
        if self.sharing == "leader":
            return "; monitors: run by this process for the machine (leader)"
        if self.sharing == "follower":
            pid = self._leader.pid if self._leader is not None else "?"
            return f"; monitors: shared, run by process {pid} (follower)"
        return ""


def check_state(state: dict[str, Any]) -> None:
    """Raise ShareRefused unless ``state`` is a well-formed shared state."""
    try:
        LeaderInfo.parse(state)
        adopt(SwitchoverTracker(switchover_timeout=1.0), state["tracker"])
    except (SnapshotError, KeyError, TypeError, ValueError) as exc:
        raise ShareRefused(f"the shared view is malformed: {exc}") from exc
