"""Every Python snippet in the README's "Use it with…" section runs as
written, against the suite's own servers: only the AWS host names and the
password are swapped for the test servers' (which listen on the standard
ports, as RDS does). The snippets' database ``app`` is created for the
test's app user.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "## Use it with…"
PG_HOST = "mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com"
MY_HOST = "mydb.abc123xyz.us-east-1.rds.amazonaws.com"
PASSWORD = "secret"


def snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_has_snippets() -> None:
    found = snippets()
    assert len(found) >= 8, len(found)
    joined = "\n".join(found)
    for needle in ("psycopg2", "MySQLdb", "bluegreen_psycopg", "flask_sqlalchemy"):
        assert needle in joined, needle


@pytest.fixture(scope="module")
def app_databases(pg_instance: Any, mariadb_instance: Any) -> Iterator[None]:
    """The database ``app`` the snippets name, on both servers."""
    pg_instance.execute_admin("DROP DATABASE IF EXISTS app")
    pg_instance.execute_admin(f"CREATE DATABASE app OWNER {pg_instance.app_user}")
    mariadb_instance.execute_admin("CREATE DATABASE IF NOT EXISTS app")
    mariadb_instance.execute_admin(
        f"GRANT ALL ON app.* TO '{mariadb_instance.app_user}'@'%'"
    )
    yield
    pg_instance.execute_admin("DROP DATABASE IF EXISTS app WITH (FORCE)")
    mariadb_instance.execute_admin("DROP DATABASE IF EXISTS app")


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("index", range(len(snippets())))
def test_snippet_runs(
    index: int, app_databases: None, pg_instance: Any, mariadb_instance: Any
) -> None:
    code = snippets()[index]
    pg = PG_HOST in code
    instance = pg_instance if pg else mariadb_instance
    code = code.replace(PG_HOST, pg_instance.host).replace(
        MY_HOST, mariadb_instance.host
    )
    code = code.replace(PASSWORD, instance.app_password)
    assert instance.app_user == "app"
    out = io.StringIO()
    namespace: dict[str, Any] = {"__name__": "snippet"}
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"README snippet {index}", "exec"), namespace)
    finally:
        _dispose(namespace)
    # What the snippet says it prints (the "# 42"-style comments), it prints.
    expected = re.findall(r"print\(.*\)\s+# (.+)$", code, flags=re.MULTILINE)
    printed = out.getvalue().split("\n")
    for want in expected:
        assert any(line.strip() == want.strip() for line in printed), (want, printed)


def _dispose(namespace: dict[str, Any]) -> None:
    """Close what a snippet leaves open on purpose (an application keeps its
    engine for its lifetime), so that it is not collected in a later test."""
    import sqlalchemy

    for value in namespace.values():
        if isinstance(value, sqlalchemy.Engine):
            value.dispose()
    from flask_sqlalchemy import SQLAlchemy

    app, db = namespace.get("app"), namespace.get("db")
    if app is not None and isinstance(db, SQLAlchemy):
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
