"""Connect arguments for the session's test servers, shared by the core tests.

``pg_kw(**extra)``, ``pymysql_kw(**extra)`` and ``myc_kw(**extra)`` return
the keyword arguments of the app user on ``pg_instance`` / ``mariadb_instance``
with a 5 s connect timeout (under the driver's own name for it); *extra*
adds or replaces arguments (``host=`` keeps its place first).
``pg_conninfo`` is the same as a libpq string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

KwargsFactory = Callable[..., dict[str, Any]]


def _factory(instance: Any, timeout_key: str) -> KwargsFactory:
    def kwargs(**extra: Any) -> dict[str, Any]:
        kw: dict[str, Any] = instance.connect_kwargs(extra.pop("host", None))
        kw[timeout_key] = 5
        kw.update(extra)
        return kw

    return kwargs


@pytest.fixture
def pg_kw(pg_instance: Any) -> KwargsFactory:
    return _factory(pg_instance, "connect_timeout")


@pytest.fixture
def pymysql_kw(mariadb_instance: Any) -> KwargsFactory:
    return _factory(mariadb_instance, "connect_timeout")


@pytest.fixture
def myc_kw(mariadb_instance: Any) -> KwargsFactory:
    return _factory(mariadb_instance, "connection_timeout")


@pytest.fixture
def pg_conninfo(pg_instance: Any) -> str:
    i = pg_instance
    return (
        f"host={i.host} port={i.port} user={i.app_user} "
        f"password='{i.app_password}' dbname={i.dbname} connect_timeout=5"
    )
