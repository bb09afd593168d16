"""What the MySQL drivers' adapters share (no driver is imported here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from .base import DriverAdapter, DriverParams, Endpoint

__all__ = ["LOST_ERRNOS", "MySQLFamilyAdapter"]

#: CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_CONN_HOST_ERROR, CR_CONNECTION_ERROR,
#: CR_SERVER_LOST_EXTENDED, ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED,
#: ER_CLIENT_INTERACTION_TIMEOUT.
LOST_ERRNOS = frozenset({2006, 2013, 2003, 2002, 2055, 1053, 1927, 4031})


class MySQLFamilyAdapter(DriverAdapter):
    """Keyword-only MySQL drivers: ``host``, ``port``, ``user``, ``database``."""

    family = "mysql"
    default_port = 3306
    #: The host the driver connects to when none is given.
    default_host: ClassVar[str]
    #: Another name the driver accepts for ``user``, if any.
    user_alias: ClassVar[str | None] = None
    argument_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "password": ("passwd",)
    }

    __slots__ = ()

    def endpoint(self, params: DriverParams) -> Endpoint:
        """``host`` (driver default), ``port``, ``user``, ``database``/``db``."""
        kw = params.kwargs
        db = kw.get("database", kw.get("db"))
        alias = self.user_alias
        user = kw.get("user", kw.get(alias) if alias else None)
        return Endpoint(
            kw.get("host") or self.default_host,
            int(kw.get("port") or self.default_port),
            user,
            db if isinstance(db, str) else None,
        )
