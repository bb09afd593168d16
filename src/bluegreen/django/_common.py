"""What the bluegreen Django backends share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.utils.asyncio import async_unsafe as _async_unsafe

__all__ = ["async_unsafe", "chain_on_reconnect"]

_F = TypeVar("_F", bound=Callable[..., Any])


def async_unsafe(method: _F) -> _F:
    """Django's ``async_unsafe`` (refuse to run in an event loop's thread),
    typed."""
    return cast(_F, _async_unsafe(method))


def chain_on_reconnect(params: dict[str, Any], step: Callable[[Any], None]) -> None:
    """Make ``params`` run ``step`` on the connection after each transparent
    reconnect, then the application's own ``bg_on_reconnect`` if ``OPTIONS``
    gives one (a value that is not callable is left for bluegreen to
    reject, naming the setting)."""
    own = params.get("bg_on_reconnect")
    if own is None:
        params["bg_on_reconnect"] = step
    elif callable(own):

        def both(conn: Any) -> Any:
            step(conn)
            return own(conn)

        params["bg_on_reconnect"] = both
