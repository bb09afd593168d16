"""asyncio connections: :func:`connect_async`.

One core, two front ends: the settings, the plugin pipeline and the ``bg``
plugin's decisions are the synchronous API's own. Only the waits differ:
a coroutine awaits the deployment watch (:meth:`~bluegreen.bg._watch.
DeploymentWatch.wait_async`), so the event loop never blocks on the
wrapper. The monitors are the same threads, one set per ``bg_id`` per
process, shared by synchronous and asyncio connections.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from ..drivers import async_adapter_for
from ..pipeline import Pipeline
from ..settings import parse_config
from ._asyncpg import AsyncpgConnection, AsyncpgTransaction, proxy_class
from ._proxy import AsyncConnection, AsyncCursor

__all__ = [
    "AsyncConnection",
    "AsyncCursor",
    "AsyncpgConnection",
    "AsyncpgTransaction",
    "connect_async",
]


async def connect_async(
    target: Any, conninfo: str | None = None, /, **settings: Any
) -> Any:
    """Open an asyncio connection through the driver connect function *target*.

    *target* is ``psycopg.AsyncConnection.connect``, ``asyncpg.connect`` or
    ``aiomysql.connect``; the result behaves as the driver's connection
    (an :class:`AsyncConnection`, or an :class:`AsyncpgConnection` for
    asyncpg, whose API is not PEP 249). *conninfo* (a libpq string or URI
    for psycopg, a DSN for asyncpg) and
    *settings* are as for :func:`bluegreen.connect`: driver arguments pass
    through unchanged, wrapper settings (``bg_id``, ``plugins``, the
    ``blue-green-monitoring-`` prefix, ...) are validated the same way.

    Raise :class:`~bluegreen.UnsupportedDriverError` for another *target*
    and :class:`~bluegreen.ConfigurationError` for invalid settings, or for
    a plugin without asyncio hooks; errors of the driver pass through
    unchanged. Cancelling the call leaves no connection open.
    """
    adapter = async_adapter_for(target)
    config = parse_config(adapter, conninfo, settings)
    proxy = proxy_class() if adapter.name == "asyncpg" else AsyncConnection
    if not config.settings.plugins:
        raw = await cast(Awaitable[Any], adapter.connect(config.params))
        return proxy(raw, config, None)
    pipeline, raw = await Pipeline.open_async(config)
    return proxy(raw, config, pipeline)
