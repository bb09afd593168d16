"""The per-process detection cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from ._model import Detection

__all__ = ["DetectionCache"]


class DetectionCache:
    """Runs detection once per key (``(family, host, port)``) per process.

    Concurrent callers for the same key wait for the first caller's probe.
    A result with ``probe_failed`` set is kept for ``retry_after_s`` seconds
    (by ``clock``) only, so a host where probing fails is probed again once
    per back-off period instead of on every connection; an exception from
    the probe is propagated to its caller and the next waiter probes
    instead. A caller that has waited ``wait_timeout_s`` for another's probe
    (stuck on a frozen server) probes on its own, without caching. The cache
    is the runtime's (:mod:`bluegreen._runtime`), emptied in a forked child.
    """

    def __init__(
        self,
        retry_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wait_timeout_s: float = 10.0,
    ) -> None:
        self.retry_after_s = retry_after_s
        self.wait_timeout_s = wait_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._results: dict[Hashable, Detection] = {}
        # Failed probes: the result and the clock reading it expires at.
        self._failed: dict[Hashable, tuple[Detection, float]] = {}
        self._pending: dict[Hashable, threading.Event] = {}

    def after_fork_in_child(self) -> None:
        """Start empty, with a new lock: the parent's probes in flight do
        not exist in the child (called by the runtime)."""
        self._lock = threading.Lock()
        self._results = {}
        self._failed = {}
        self._pending = {}

    def get(self, key: Hashable) -> Detection | None:
        """The cached result for ``key`` (a failed one until it expires), or None."""
        found = self._results.get(key)  # a dict read is atomic: no lock
        if found is None and self._failed:
            failed = self._failed.get(key)
            if failed is not None and self._clock() < failed[1]:
                return failed[0]
        return found

    def get_or_detect(self, key: Hashable, probe: Callable[[], Detection]) -> Detection:
        """The cached detection for ``key``, running ``probe`` if there is none."""
        while True:
            with self._lock:
                found = self.get(key)
                if found is not None:
                    return found
                event = self._pending.get(key)
                owner = event is None
                if event is None:
                    event = self._pending[key] = threading.Event()
            if not owner:
                if event.wait(self.wait_timeout_s):
                    continue
                # The first probe of this host is stuck (a frozen server):
                # probe on this caller's own connection, without caching.
                return probe()
            result: Detection | None = None
            try:
                result = probe()
            finally:
                # Store the result before waking the waiters, in the same
                # critical section that ends the probe: a waiter that found
                # neither would probe the host again.
                with self._lock:
                    if self._pending.get(key) is event:
                        del self._pending[key]
                    if result is not None:  # None: it raised, the next caller probes
                        self._store(key, result)
                event.set()
            return result

    def store(self, key: Hashable, result: Detection) -> None:
        """Keep ``result`` for ``key`` (a detection made elsewhere)."""
        with self._lock:
            self._store(key, result)

    def _store(self, key: Hashable, result: Detection) -> None:
        """Keep ``result`` (a failed one until it expires); the lock is held."""
        if result.probe_failed:
            self._failed[key] = (result, self._clock() + self.retry_after_s)
        else:
            self._results[key] = result
            self._failed.pop(key, None)

    def clear(self) -> None:
        """Forget every result (probes in flight finish normally)."""
        with self._lock:
            self._results.clear()
            self._failed.clear()
