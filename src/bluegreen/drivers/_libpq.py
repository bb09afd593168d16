"""What the libpq drivers' adapters share (psycopg 3 and psycopg2; no driver
is imported here): the endpoint of a conninfo, routing to an IP through
``hostaddr``, monitoring parameters, the lost-connection SQLSTATEs and the
session parameters carried over a reconnect."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .._types import DBAPIConnection
from .base import DriverAdapter, DriverParams, Endpoint

__all__ = [
    "LIBPQ_ENV",
    "REPORTED_PARAMS",
    "SET_PARAM_SQL",
    "LibpqFamilyAdapter",
    "changed_params",
    "end_transaction",
    "lost_sqlstate",
    "reported_params",
]

#: libpq's environment defaults for the parameters the wrapper reads.
LIBPQ_ENV = (
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
)
#: Server parameters the server reports to the client (GUC_REPORT) that an
#: application may change with SET, carried over to a replacement connection.
REPORTED_PARAMS = (
    "client_encoding",
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "application_name",
)
#: How a reported parameter is set again on a new connection.
SET_PARAM_SQL = "SELECT pg_catalog.set_config(%s, %s, false)"
#: Admin and crash shutdowns (class 08 is the connection-exception class).
_LOST_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def lost_sqlstate(sqlstate: str | None) -> bool:
    """Whether ``sqlstate`` says the connection is gone."""
    return bool(sqlstate and (sqlstate.startswith("08") or sqlstate in _LOST_SQLSTATES))


def reported_params(parameter_status: Callable[[str], Any]) -> dict[str, Any]:
    """The :data:`REPORTED_PARAMS` the server last reported (libpq keeps
    them on the client: readable on a dead connection)."""
    params = {}
    for name in REPORTED_PARAMS:
        value = parameter_status(name)
        if value is not None:
            params[name] = value
    return params


def changed_params(conn: Any, state: dict[str, Any]) -> list[tuple[str, Any]]:
    """The server parameters of ``state`` that differ on ``conn``."""
    params = state.get("params", {})
    return [
        (name, value)
        for name, value in params.items()
        if conn.info.parameter_status(name) != value
    ]


def end_transaction(
    proxy: Any, raw: Any, failed: bool, driver_logger: logging.Logger
) -> None:
    """The transaction end of the drivers' ``with conn:``, through the proxy
    (and so through the plugins): commit, or roll back when the block
    ``failed`` (a failed rollback is logged on the driver's logger, never
    raised over the application's exception)."""
    if not failed:
        proxy.commit()
        return
    try:
        proxy.rollback()
    except Exception as exc:
        driver_logger.warning("error ignored in rollback on %s: %s", raw, exc)


class LibpqFamilyAdapter(DriverAdapter):
    """Drivers that hand a conninfo and keywords to libpq."""

    family = "postgres"
    default_port = 5432
    timeout_keys = ("connect_timeout",)
    timeout_env = "PGCONNECT_TIMEOUT"
    accepts_conninfo = True

    __slots__ = ()

    def endpoint(self, params: DriverParams) -> Endpoint:
        """The first host of the conninfo and its port (default 5432)."""
        eff = self.effective(params)
        host = eff.get("host")
        host = str(host).split(",")[0] if host else None
        port = eff.get("port")
        port_s = str(port).split(",")[0] if port not in (None, "") else ""
        user = eff.get("user")
        dbname = eff.get("dbname")
        return Endpoint(
            host,
            int(port_s) if port_s else self.default_port,
            str(user) if user is not None else None,
            str(dbname) if dbname is not None else None,
        )

    def client_name_params(self, name: str) -> dict[str, Any]:
        """libpq's ``application_name`` (``pg_stat_activity``)."""
        return {"application_name": name}

    def monitoring_params(
        self, params: DriverParams, overrides: Mapping[str, Any]
    ) -> DriverParams:
        """Flatten the conninfo into keywords so that node selection and the
        application's factories can be dropped."""
        flat = DriverParams("", self.effective(params))
        return super().monitoring_params(flat, overrides)

    def _connect_ip(
        self, params: DriverParams, kwargs: dict[str, Any], ip: str
    ) -> DBAPIConnection:
        """An *ip* becomes ``hostaddr`` and the name stays in ``host``.

        The address stands for one host: a multi-host conninfo is narrowed to
        its first host and port, or libpq refuses the hostaddr."""
        eff = self.effective(DriverParams(params.conninfo, kwargs))
        for key in ("host", "port"):
            value = str(eff.get(key) or "")
            if "," in value:
                kwargs[key] = value.split(",")[0]
        kwargs["hostaddr"] = ip
        return self._call(params, kwargs)
