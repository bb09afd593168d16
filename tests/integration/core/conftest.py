"""Connect arguments for the session's test servers, shared by the core tests.

``pg_kw(**extra)``, ``pymysql_kw(**extra)`` and ``myc_kw(**extra)`` return
the keyword arguments of the app user on ``pg_instance`` / ``mariadb_instance``
with a 5 s connect timeout (under the driver's own name for it); *extra*
adds or replaces arguments (``host=`` keeps its place first).
``pg_conninfo`` is the same as a libpq string.

Emulated AWS metadata: ``emulate_rds_postgres(dbname)`` installs RDS
PostgreSQL's ``rds_tools`` (unreadable by the app user) in a throwaway
database; ``rds_topology`` creates ``mysql.rds_topology`` with one row on
MariaDB and drops it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


RDS_HOST = "mydb-instance-1.abc123xyz.us-east-1.rds.amazonaws.com"

RDS_TOOLS_SQL = """
CREATE SCHEMA rds_tools;
CREATE FUNCTION rds_tools.show_topology(text)
RETURNS TABLE (version text, endpoint text, port int, role text, status text)
LANGUAGE sql AS $$
  SELECT '1.0'::text, 'mydb.abc.us-east-1.rds.amazonaws.com'::text, 5432,
         'BLUE_GREEN_DEPLOYMENT_SOURCE'::text, 'AVAILABLE'::text
$$;
REVOKE ALL ON SCHEMA rds_tools FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools FROM PUBLIC;
"""


@pytest.fixture
def emulate_rds_postgres(pg_instance: Any) -> Callable[[str], None]:
    def install(dbname: str) -> None:
        pg_instance.execute_admin(RDS_TOOLS_SQL, dbname=dbname)
        pg_instance.execute_admin(
            f"ALTER DATABASE {dbname} SET rds.extensions = 'plpgsql,rds_tools'"
        )

    return install


@pytest.fixture
def rds_topology(mariadb_instance: Any) -> Iterator[None]:
    mariadb_instance.execute_admin(
        "CREATE TABLE mysql.rds_topology (id BIGINT PRIMARY KEY, version VARCHAR(16),"
        " endpoint VARCHAR(255), port INT, role VARCHAR(64), status VARCHAR(64))"
    )
    mariadb_instance.execute_admin(
        "INSERT INTO mysql.rds_topology VALUES (1, '1.0', %s, 3306,"
        " 'BLUE_GREEN_DEPLOYMENT_SOURCE', 'AVAILABLE')",
        (RDS_HOST,),
    )
    yield
    mariadb_instance.execute_admin("DROP TABLE IF EXISTS mysql.rds_topology")
