"""Running probe queries on the application's connection, and what the
PostgreSQL and MySQL probes share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .._types import DBAPIConnection, DBAPICursor
from ._model import Detection, Dialect, _as_tuple

logger = logging.getLogger("bluegreen.dialects")


class ConnectionState(Protocol):
    """What a driver adapter can tell about a connection's transaction state.

    :class:`bluegreen.drivers.base.DriverAdapter` provides it; without one,
    detection falls back to duck typing (:func:`_autocommit`,
    :func:`_busy_transaction`), which only recognises psycopg's transaction
    status.
    """

    def in_transaction(self, conn: Any) -> bool: ...
    def get_autocommit(self, conn: Any) -> bool: ...
    def query(
        self, conn: Any, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]: ...


#: Runs one query on a connection and returns tuple rows.
QueryFunction = Callable[[Any, str, "Sequence[Any] | None"], "list[tuple[Any, ...]]"]


def _autocommit(conn: Any) -> bool | None:
    """True/False if the driver says so, None if it cannot be told."""
    getter = getattr(conn, "get_autocommit", None)  # PyMySQL
    if callable(getter):
        try:
            return bool(getter())
        except Exception:
            return None
    value = getattr(conn, "autocommit", None)  # psycopg, mysql-connector
    return value if isinstance(value, bool) else None


def _busy_transaction(conn: Any) -> bool:
    """True if a psycopg connection is inside a transaction (not idle)."""
    info = getattr(conn, "info", None)
    status = getattr(info, "transaction_status", None)
    return status is not None and int(status) != 0  # 0 = IDLE


def _errno(exc: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL / mysql-connector exception."""
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int):
        return errno
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


class _Prober:
    """Runs probe queries; after a failure it rolls back (unless autocommit)
    if ``error_aborts``: PostgreSQL aborts the whole transaction on an error,
    MySQL only the failed statement, so a MySQL prober leaves the rollback to
    the end of detection instead of spending a round trip on each expected
    "no such table".

    ``query`` (the driver adapter's) runs each probe on a plain cursor that
    ignores the application's row factory or cursor class; without it the
    connection's default cursor is used (tests with fake connections)."""

    def __init__(
        self,
        conn: DBAPIConnection,
        *,
        error_aborts: bool = True,
        autocommit: bool | None = None,
        query: QueryFunction | None = None,
    ) -> None:
        self.conn = conn
        self.autocommit = _autocommit(conn) if autocommit is None else autocommit
        self.error_aborts = error_aborts
        self._query = query
        #: Tells the driver adapter that a rollback ended the transaction.
        self.ended: Callable[[Any], None] | None = None

    def rows(
        self, sql: str, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        if self._query is not None:
            try:
                return self._query(self.conn, sql, params)
            except Exception:
                if self.error_aborts:
                    self.rollback()
                raise
        cur: DBAPICursor = self.conn.cursor()
        try:
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, params)
            if cur.description is None:
                return []
            return [_as_tuple(r) for r in cur.fetchall()]
        except Exception:
            if self.error_aborts:
                self.rollback()
            raise
        finally:
            try:
                cur.close()
            except Exception:
                logger.debug("closing a detection cursor failed", exc_info=True)

    def rollback(self) -> None:
        if self.autocommit:
            return
        try:
            self.conn.rollback()
        except Exception:
            logger.debug("rollback after a detection probe failed", exc_info=True)
            return
        if self.ended is not None:
            self.ended(self.conn)


def _metadata_outcome(
    dialect: Dialect, state: bool | None, user: str, notes: list[str]
) -> tuple[str | None, bool, str | None]:
    """(source, readable, missing_grant) from the source's state.

    ``state``: None = the source does not exist, False = it exists but the
    user cannot read it, True = readable.
    """
    source = dialect.metadata_source
    if source is None:
        return None, False, None
    if state is None:
        if dialect is Dialect.RDS_POSTGRES:
            why = (
                "the rds_tools extension is not installed or older than 1.7: "
                "CREATE EXTENSION rds_tools, or ALTER EXTENSION rds_tools UPDATE"
            )
        else:
            why = "too old an engine version"
        notes.append(
            f"{dialect.value}: the blue/green metadata source {source} does not "
            f"exist ({why}); blue/green support is off until it appears "
            "(the bg plugin keeps checking at bg_interval_baseline_ms)"
        )
        return None, False, None
    if state:
        return source, True, None
    grant = dialect.required_grants(user)
    notes.append(
        f"user {user} cannot read the blue/green metadata {source}; "
        f"blue/green support is off until an administrator runs: {grant} "
        "(the bg plugin keeps checking at bg_interval_baseline_ms)"
    )
    return source, False, grant


def _try(prober: _Prober, sql: str, notes: list[str], what: str) -> bool:
    try:
        prober.rows(sql)
    except Exception as exc:
        logger.debug("%s probe failed", what, exc_info=True)
        notes.append(f"the {what} query failed ({type(exc).__name__}: {exc})")
        return False
    return True


def _first_value(prober: _Prober, sql: str) -> Any:
    """The first column of the first row, or None if none or the query failed."""
    try:
        rows = prober.rows(sql)
    except Exception:
        logger.debug("optional detection probe failed: %s", sql, exc_info=True)
        return None
    value = rows[0][0] if rows and rows[0] else None
    return None if value in (None, "", b"") else value


def _finish(
    dialect: Dialect,
    forced: Dialect | None,
    source: str | None,
    readable: bool,
    grant: str | None,
    topo_source: str | None,
    topo_ok: bool,
    unsupported: str | None,
    notes: list[str],
    version: str,
) -> Detection:
    if unsupported is not None:
        unsupported = (
            f"the server looks like {unsupported}, which blue/green switchover "
            "support does not cover"
        )
        notes.insert(0, unsupported + "; blue/green support is off")
    return Detection(
        dialect=dialect,
        metadata_source=source,
        metadata_readable=readable,
        missing_grant=grant,
        topology_source=topo_source,
        topology_available=topo_ok,
        unsupported_reason=unsupported,
        warnings=tuple(notes),
        server_version=version,
        forced=forced is not None,
    )
