"""Connection classes for connection pools that create connections themselves.

psycopg_pool's ``ConnectionPool`` opens its connections by calling
``connection_class.connect(conninfo, **kwargs)``. Give it
:class:`PsycopgPoolConnection` and every connection it opens is a bluegreen
connection; wrapper settings go into the pool's ``kwargs`` with the driver
arguments::

    from psycopg_pool import ConnectionPool
    from bluegreen.pool import PsycopgPoolConnection

    pool = ConnectionPool(
        "host=mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com dbname=app",
        connection_class=PsycopgPoolConnection,
        kwargs={"connect_timeout": 10, "bg_id": "orders"},
    )

For ``AsyncConnectionPool`` give :class:`AsyncPsycopgPoolConnection` the
same way: its connections are :func:`bluegreen.connect_async` ones.

``close_returns=True`` (psycopg's recipe for putting SQLAlchemy on top of a
psycopg_pool pool) works too: closing a bluegreen connection hands the
bluegreen connection back to the pool, so the next ``getconn()`` returns a
protected connection again.
"""

from __future__ import annotations

from typing import Any

import psycopg

from . import connect

__all__ = ["AsyncPsycopgPoolConnection", "PsycopgPoolConnection"]


class PsycopgPoolConnection(psycopg.Connection[Any]):
    """A ``connection_class`` for psycopg_pool: ``connect()`` returns a
    :class:`bluegreen.Connection` wrapping a ``psycopg.Connection``.

    The class is never instantiated itself; it subclasses
    ``psycopg.Connection`` so that the pool's type checks accept it.
    """

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        """Open a bluegreen connection; ``kwargs`` mixes psycopg's arguments
        and bluegreen's settings, as for :func:`bluegreen.connect`."""
        return connect(psycopg.Connection.connect, conninfo, **kwargs)


class AsyncPsycopgPoolConnection(psycopg.AsyncConnection[Any]):
    """A ``connection_class`` for psycopg_pool's ``AsyncConnectionPool``:
    ``connect()`` returns a :class:`bluegreen.AsyncConnection` wrapping a
    ``psycopg.AsyncConnection``. Never instantiated itself."""

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        """Open a bluegreen asyncio connection; ``kwargs`` mixes psycopg's
        arguments and bluegreen's settings, as for
        :func:`bluegreen.connect_async`."""
        from .aio import connect_async

        return await connect_async(psycopg.AsyncConnection.connect, conninfo, **kwargs)
