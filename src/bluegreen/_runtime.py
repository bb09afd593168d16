"""The process state of bluegreen, owned by one object.

Everything bluegreen remembers across connections lives in the current
:class:`Runtime`: the driver adapters (with their memos of parsed
configurations), the plugin registry, the settings registry, the wrapper's
driver-specific error classes, the dialect detection cache, the warn-once
log, and the state each plugin keeps for the process (the ``bg`` plugin's
deployment watches, the ``iam`` plugin's token caches), reached through
:meth:`Runtime.state`.

No other module keeps mutable state at module level. So:

- tests can work on a fresh runtime (:func:`fresh_runtime`) and drop it
  afterwards;
- a forked child resets everything in one place
  (:meth:`Runtime.after_fork_in_child`, registered with
  ``os.register_at_fork``): every lock is replaced (another thread of the
  parent may have held one at the moment of the fork, and would never
  release it in the child), caches and plugin state that belong to the
  parent's threads are dropped, and the plugins' state objects reset
  themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._log import WarnLog
    from .dialects._cache import DetectionCache
    from .drivers.base import DriverAdapter
    from .errors import DriverErrors
    from .pipeline import PluginRegistry
    from .settings import SettingsRegistry

__all__ = ["Runtime", "fresh_runtime", "runtime"]

S = TypeVar("S")


class Runtime:
    """The state bluegreen keeps for one process (see the module docstring)."""

    def __init__(self) -> None:
        from ._log import WarnLog
        from .dialects._cache import DetectionCache
        from .pipeline import PluginRegistry, builtin_plugins
        from .settings import SettingsRegistry

        self._lock = threading.Lock()
        #: Plugin codes -> factories (``bg`` and ``iam`` registered lazily).
        self.plugins: PluginRegistry = PluginRegistry()
        for code, spec in builtin_plugins():
            self.plugins.register(code, spec)
        #: Every setting: the core's and those the registered plugins declare.
        self.settings: SettingsRegistry = SettingsRegistry(self.plugins)
        #: Driver adapters by connect function (synchronous, asyncio).
        self.adapters: dict[Any, DriverAdapter] = {}
        self.async_adapters: dict[Any, DriverAdapter] = {}
        #: The wrapper's errors as subclasses of each driver's OperationalError.
        self.driver_errors: dict[Any, DriverErrors | type[Exception]] = {}
        self.detections: DetectionCache = DetectionCache()
        #: Warnings logged once, or repeated at a low rate while they last.
        self.warnings: WarnLog = WarnLog()
        self._states: dict[str, Any] = {}
        self._closed = False

    @property
    def lock(self) -> threading.Lock:
        """A lock for short updates of the runtime's own dictionaries."""
        return self._lock

    def state(self, key: str, factory: Callable[[], S]) -> S:
        """The process state kept under ``key`` (by convention the plugin's
        code, or ``code.part``), made by ``factory()`` on first use.

        A state object may define ``after_fork_in_child()`` (called in a
        forked child; without it the object is dropped there and made anew
        on next use) and ``close()`` (called at exit and when a fresh
        runtime of the tests is dropped)."""
        found = self._states.get(key)
        if found is None:
            with self._lock:
                found = self._states.get(key)
                if found is None:
                    found = factory()
                    self._states[key] = found
        return found

    def peek(self, key: str) -> Any:
        """The state under ``key`` if it was made, else None (no creation)."""
        return self._states.get(key)

    def after_fork_in_child(self) -> None:
        """Reset the process state in a forked child (see the module
        docstring); runs before any other code of the child."""
        self._lock = threading.Lock()
        self.plugins.after_fork_in_child()
        self.settings.after_fork_in_child()
        self.detections.after_fork_in_child()
        self.warnings.after_fork_in_child()
        kept: dict[str, Any] = {}
        for key, state in self._states.items():
            reset = getattr(state, "after_fork_in_child", None)
            if reset is not None:
                reset()
                kept[key] = state
        self._states = kept

    def close(self) -> None:
        """Stop what the plugins run in the background (monitors), once."""
        if self._closed:
            return
        self._closed = True
        for state in list(self._states.values()):
            close = getattr(state, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()


_current: Runtime | None = None
_swap_lock = threading.Lock()


def runtime() -> Runtime:
    """The process's current runtime."""
    current = _current
    if current is None:
        with _swap_lock:
            current = _current
            if current is None:
                current = _install(Runtime())
    return current


def _install(new: Runtime) -> Runtime:
    global _current
    _current = new
    return new


@contextlib.contextmanager
def fresh_runtime() -> Iterator[Runtime]:
    """Run the block on a new, empty runtime; the previous one comes back
    afterwards and the new one is closed (its monitors stopped).

    Meant for tests: connections opened in the block keep references to
    the fresh runtime's objects and should be closed inside it."""
    previous = runtime()
    fresh = _install(Runtime())
    try:
        yield fresh
    finally:
        _install(previous)
        fresh.close()


def _after_fork_in_child() -> None:
    global _swap_lock
    _swap_lock = threading.Lock()
    current = _current
    if current is not None:
        current.after_fork_in_child()


def _at_exit() -> None:
    current = _current
    if current is not None:
        current.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
