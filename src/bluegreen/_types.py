"""Protocols for the boundary between bluegreen and the DB-API driver.

bluegreen never imports a driver at module level; these structural types let
the rest of the package talk about "a PEP 249 connection" without naming one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["ConnectFunction", "DBAPIConnection", "DBAPICursor"]


class DBAPICursor(Protocol):
    """The part of a PEP 249 cursor bluegreen relies on."""

    @property
    def description(self) -> Sequence[Any] | None: ...

    @property
    def rowcount(self) -> int: ...

    def execute(self, *args: Any, **kwargs: Any) -> Any: ...

    def executemany(self, *args: Any, **kwargs: Any) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any: ...

    def fetchall(self) -> Any: ...

    def close(self) -> Any: ...


class DBAPIConnection(Protocol):
    """The part of a PEP 249 connection bluegreen relies on."""

    def cursor(self, *args: Any, **kwargs: Any) -> Any: ...

    def commit(self) -> Any: ...

    def rollback(self) -> Any: ...

    def close(self) -> Any: ...


class ConnectFunction(Protocol):
    """A driver's connect function (``psycopg.connect``, ``pymysql.connect``...)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
