"""Logging helpers: messages that are logged once per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from typing import Any

__all__ = ["OnceLog"]


class OnceLog:
    """Remembers which keys were already logged, so each is logged only once.

    Thread-safe. Each user owns an instance for the process; tests can
    :meth:`clear` it or make their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[Hashable] = set()

    def first(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (then remembered), else False."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def warn(self, log: logging.Logger, key: Hashable, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` at WARNING unless ``key`` was seen; True if logged."""
        if not self.first(key):
            return False
        log.warning(msg, *args)
        return True

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._seen.clear()
