"""Logging helpers: warnings that are logged once, or repeated at a low rate.

One :class:`WarnLog` serves the whole package (the runtime's
``warnings``, see :mod:`bluegreen._runtime`): the connect-timeout warning,
detection warnings and the plugins' warnings all go through it, so that
"logged once" and "repeated while it lasts" mean the same everywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["REPEAT_S", "WarnLog"]

#: How often a warning about protection being off is repeated while it lasts.
REPEAT_S = 600.0


class WarnLog:
    """Remembers which warnings were logged, and when.

    ``warn(..., every=None)`` logs a key once per process; ``every=S`` logs it
    again when it comes up ``S`` seconds or more after it was last logged.
    :meth:`forget` ends a condition: the next occurrence is logged at once.
    Thread-safe; tests can :meth:`clear` it or make their own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        #: key -> clock reading when it was last logged
        self._logged: dict[Hashable, float] = {}

    def due(self, key: Hashable, every: float | None = None) -> bool:
        """True if ``key`` should be logged now (and remember that it was)."""
        now = self._clock()
        with self._lock:
            last = self._logged.get(key)
            if last is not None and (every is None or now - last < every):
                return False
            self._logged[key] = now
            return True

    def first(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen in this process."""
        return self.due(key)

    def warn(
        self,
        log: logging.Logger,
        key: Hashable,
        msg: str,
        *args: Any,
        every: float | None = None,
        level: int = logging.WARNING,
    ) -> bool:
        """Log ``msg % args`` unless ``key`` was logged (within ``every`` s)."""
        if not self.due(key, every):
            return False
        log.log(level, msg, *args)
        return True

    def seen(self, key: Hashable) -> bool:
        """True if ``key`` was logged and not forgotten since."""
        return key in self._logged

    def forget(self, key: Hashable) -> bool:
        """Forget ``key``; True if it had been logged."""
        with self._lock:
            return self._logged.pop(key, None) is not None

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._logged.clear()

    def after_fork_in_child(self) -> None:
        """A lock held by another thread at fork time is never released in
        the child: start with a new one (what was logged is kept)."""
        self._lock = threading.Lock()
