"""What the ``bg`` glue asks the outside world for, as values.

The decisions of a connect or a call during a switchover (route, wait,
retry, keep, give up) are written once, as generators that *yield* the
effects they need (:class:`Wait` for the view to change, :class:`Open` a
driver connection, :class:`Close` one, :class:`Resolve` a name, ...) and are
sent the outcome back (or have the error thrown in). :func:`drive` runs such
a generator with blocking effects on the caller's thread;
:mod:`bluegreen.aio` runs the very same generators with awaitable effects on
an event loop, so that a waiting coroutine never blocks the loop and a
cancelled one leaves nothing behind (closing the generator runs its
``finally`` blocks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "LOOK_AGAIN",
    "OPEN_NEXT",
    "Call",
    "Close",
    "Open",
    "Resolve",
    "Steps",
    "Wait",
    "adrive",
    "drive",
]

T = TypeVar("T")


class Wait(NamedTuple):
    """Wait until the view changes from ``version`` or a timer after ``since``
    falls due; the outcome is False on reaching ``deadline`` first
    (:meth:`~bluegreen.bg._watch.DeploymentWatch.wait`)."""

    version: int
    deadline: float
    since: float


class Open(NamedTuple):
    """Open a driver connection: to ``ip`` (standing for the host name) and
    ``port``, or, with ``direct``, as the next connect hook would (the
    application's host, through DNS). The outcome is the connection."""

    ip: str | None
    port: int | None
    direct: bool = False


#: :class:`Open` the way the application asked.
OPEN_NEXT = Open(None, None, True)


class Close(NamedTuple):
    """Close ``conn`` quietly (a superseded or unwanted connection)."""

    conn: Any


class Resolve(NamedTuple):
    """Resolve ``name``: ``(True, address)``, ``(True, None)`` for a name that
    does not exist, ``(False, None)`` for a failed lookup."""

    name: str


class _LookAgain(NamedTuple):
    """Resolve the names that tell whether the switchover went through, now
    (:meth:`~bluegreen.bg._watch.DeploymentWatch.look_again`); the outcome
    is True if the view changed."""


LOOK_AGAIN = _LookAgain()


class Call(NamedTuple):
    """Make ``call`` (the application's driver call); the outcome is its
    result, or its error thrown in."""

    call: Callable[[], Any]


#: A generator of effects returning ``T``.
Steps = Generator[Any, Any, T]


def drive(steps: Steps[T], do: Callable[[Any], Any]) -> T:
    """Run ``steps`` to the end, carrying out each effect with ``do`` (which
    blocks) and sending its outcome back, or throwing its error in."""
    outcome: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(outcome) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        outcome = error = None
        try:
            outcome = do(effect)
        except BaseException as exc:
            error = exc


async def adrive(steps: Steps[T], do: Callable[[Any], Awaitable[Any]]) -> T:
    """:func:`drive` on an event loop: each effect is awaited (``do`` returns
    an awaitable). A cancellation reaching an awaited effect is thrown into
    ``steps`` like any error, so that their ``finally`` blocks and cleanup
    effects run before it propagates."""
    outcome: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = steps.send(outcome) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        outcome = error = None
        try:
            outcome = await do(effect)
        except BaseException as exc:
            error = exc
