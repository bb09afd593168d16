"""The Django backends ``bluegreen.django.postgresql`` and
``bluegreen.django.mysql`` on the suite's real servers and through a
simulated switchover.

Django's settings can be configured once per process, so every scenario
runs ``python -m app.run <mode>`` (``app/`` next to this file) in a
subprocess, which inherits this process's network namespace and simulated
DNS, and prints its results as JSON.

On real servers: ``migrate``, ORM writes and reads (JSON included),
``atomic()`` blocks that roll back and commit, Django's error wrapping of
the driver's IntegrityError and of bluegreen's own errors, a persistent
connection (``CONN_MAX_AGE``) reused across requests, ``CONN_HEALTH_CHECKS``
replacing a connection the server ended, a typo'd bluegreen ``OPTIONS`` key,
Django's own ``OPTIONS`` (``isolation_level``, ``assume_role``,
``server_side_binding``, ``pool``), and that the connection is a bluegreen
proxy. Through a switchover: requests on long-lived connections
(``CONN_MAX_AGE=None``) see no error once the switchover has dropped the
connections, and none writes to the old blue.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bluegreen.sim.workload import (
    TABLE,
    bg_settings,
    identity_map,
    prepare_table,
    written_ids,
)

HERE = Path(__file__).parent
PG = "bluegreen.django.postgresql"
MY = "bluegreen.django.mysql"
#: Django's IsolationLevel.SERIALIZABLE, per driver.
SERIALIZABLE = {"psycopg": 4, "psycopg2": 3}
ROLE = "bg_django_role"
SPEED = 10.0


def app_env(db: dict[str, Any], driver: str, **extra: Any) -> dict[str, str]:
    env = {
        **os.environ,
        "BG_DJANGO_ENGINE": db["engine"],
        "BG_DJANGO_HOST": db["host"],
        "BG_DJANGO_PORT": str(db["port"]),
        "BG_DJANGO_NAME": db["name"],
        "BG_DJANGO_USER": db["user"],
        "BG_DJANGO_PASSWORD": db["password"],
        "BG_DJANGO_DRIVER": driver,
    }
    env.update({f"BG_DJANGO_{k.upper()}": v for k, v in extra.items()})
    return env


def run_app(mode: str, env: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "app.run", mode],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_session_setup_runs_before_the_applications_own_hook() -> None:
    from bluegreen.django._common import chain_on_reconnect

    calls: list[tuple[str, Any]] = []
    params: dict[str, Any] = {}
    chain_on_reconnect(params, lambda c: calls.append(("backend", c)))
    params["bg_on_reconnect"]("conn")
    assert calls == [("backend", "conn")]

    calls.clear()
    params = {"bg_on_reconnect": lambda c: calls.append(("app", c)) or "app"}
    chain_on_reconnect(params, lambda c: calls.append(("backend", c)))
    assert params["bg_on_reconnect"]("conn") == "app"
    assert calls == [("backend", "conn"), ("app", "conn")]

    params = {"bg_on_reconnect": "not callable"}  # left for bluegreen to refuse
    chain_on_reconnect(params, lambda c: None)
    assert params == {"bg_on_reconnect": "not callable"}


# -- real servers ------------------------------------------------------------------


@pytest.fixture
def pg_database(pg_instance: Any) -> Iterator[dict[str, Any]]:
    """A fresh database owned by the app user, and a role it may assume
    that can read the app user's tables (``OPTIONS["assume_role"]``)."""
    i = pg_instance
    name = f"dj_{uuid.uuid4().hex[:10]}"
    i.execute_admin(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}')"
        f" THEN CREATE ROLE {ROLE} NOLOGIN; END IF; END $$"
    )
    i.execute_admin(f"GRANT {ROLE} TO {i.app_user}")
    i.execute_admin(f"CREATE DATABASE {name} OWNER {i.app_user}")
    i.execute_admin(
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {i.app_user} IN SCHEMA public "
        f"GRANT SELECT ON TABLES TO {ROLE}",
        dbname=name,
    )
    yield {
        "engine": PG,
        "host": i.host,
        "port": i.port,
        "name": name,
        "user": i.app_user,
        "password": i.app_password,
    }
    with contextlib.suppress(Exception):
        i.execute_admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def mysql_database(mariadb_instance: Any) -> Iterator[dict[str, Any]]:
    i = mariadb_instance
    name = f"dj_{uuid.uuid4().hex[:10]}"
    i.execute_admin(f"CREATE DATABASE {name}")
    i.execute_admin(f"GRANT ALL PRIVILEGES ON {name}.* TO %s@'%%'", (i.app_user,))
    yield {
        "engine": MY,
        "host": i.host,
        "port": i.port,
        "name": name,
        "user": i.app_user,
        "password": i.app_password,
    }
    with contextlib.suppress(Exception):
        i.execute_admin(f"DROP DATABASE {name}")


def aliases(driver: str) -> dict[str, Any]:
    """The extra aliases of the backend run (see ``app/run.py``)."""
    out: dict[str, Any] = {
        "typo": {"OPTIONS": {"bg_conect_timeout_ms": 1000}},
        "killer": {"CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False},
        "nohealth": {"CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": False},
    }
    if driver == "mysqlclient":
        out["isolated"] = {"OPTIONS": {"isolation_level": "serializable"}}
        return out
    out["isolated"] = {
        "OPTIONS": {
            "isolation_level": SERIALIZABLE[driver],
            "assume_role": ROLE,
            "server_side_binding": True,
        }
    }
    if driver == "psycopg":
        pool = {"min_size": 1, "max_size": 1, "timeout": 10}
        out["pooled"] = {"CONN_MAX_AGE": 0, "OPTIONS": {"pool": pool}}
        out["pooled_typo"] = {
            "CONN_MAX_AGE": 0,
            "OPTIONS": {"pool": True, "bg_conect_timeout_ms": 1000},
        }
    return out


DRIVER_CLASS = {
    "psycopg": "psycopg.Connection",
    "psycopg2": "psycopg2.extensions.connection",
    "mysqlclient": "MySQLdb.connections.Connection",
}
DRIVER_ERRORS = {
    "psycopg": "psycopg.",
    "psycopg2": "psycopg2.",
    "mysqlclient": "MySQLdb.",
}


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2", "mysqlclient"])
def test_backend_on_a_real_server(request: pytest.FixtureRequest, driver: str) -> None:
    db = request.getfixturevalue(
        "mysql_database" if driver == "mysqlclient" else "pg_database"
    )
    options = {"connect_timeout": 5, "bg_id": f"django-{driver}"}
    env = app_env(
        db,
        driver,
        options=json.dumps(options),
        conn_max_age="none",
        health_checks="1",
        extra_aliases=json.dumps(aliases(driver)),
    )
    r = run_app("backend", env)
    errors = {
        k: v["failed"] for k, v in r.items() if isinstance(v, dict) and "failed" in v
    }
    assert not errors, errors

    assert "app_item" in r["migrate"] and "django_migrations" in r["migrate"]
    proxy = r["proxy"]
    assert proxy["type"] == "bluegreen.connection.Connection", proxy
    assert proxy["driver"] == DRIVER_CLASS[driver], proxy
    assert proxy["class"] == DRIVER_CLASS[driver], proxy  # isinstance() holds
    assert proxy["plugins"] == ["bg"]

    assert r["orm"] == {"name": "first", "payload": {"k": [3], "s": "y"}, "count": 1}
    assert r["atomic"] == {"rolled_back": False, "committed": True, "savepoint": True}
    raised = r["integrity"]["raised"]
    assert raised["type"] == "django.db.utils.IntegrityError", raised
    assert raised["cause"].startswith(DRIVER_ERRORS[driver]), raised
    assert r["integrity"]["after"] == 3  # the connection still works

    raised = r["bluegreen_error"]["raised"]
    assert raised["type"] == "django.db.utils.OperationalError", raised
    assert r["bluegreen_error"]["is_bluegreen"] is True
    assert r["iterator"] == ["committed", "first", "savepoint"]

    assert r["persistent"] == {"same_pid": True, "same_connection": True}
    assert r["health_check"] == {"new_pid": True, "proxied": True}
    failure = r["no_health_check"]["failure"]
    assert failure is not None, "the control: the server really ended the session"
    assert failure["type"] in (
        "django.db.utils.OperationalError",
        "django.db.utils.InterfaceError",
    ), failure
    assert failure["cause"].startswith(DRIVER_ERRORS[driver]), failure

    raised = r["typo"]["raised"]
    assert raised["type"] == "bluegreen.errors.ConfigurationError", raised
    assert "bg_conect_timeout_ms" in raised["message"]
    assert "bg_connect_timeout_ms" in raised["message"]  # the suggestion

    iso = r["isolated"]
    assert iso["proxied"] is True and iso["count"] == 1
    if driver == "mysqlclient":
        assert iso["level"] == "SERIALIZABLE"
    else:
        assert iso["level"] == "serializable"
        assert iso["user"] == ROLE
        if driver == "psycopg":
            assert iso["cursor_class"] == "ServerBindingCursor"

    if driver == "psycopg":
        assert r["pooled"] == {"proxied": True, "reused": True, "count": 3}
        raised = r["pooled_typo"]["raised"]
        assert raised["type"] == "bluegreen.errors.ConfigurationError", raised
        assert "bg_conect_timeout_ms" in raised["message"]
        assert r["pooled_typo"]["s"] < 5  # not the pool's getconn() timeout


# -- a switchover ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "driver"),
    [
        ("aurora-postgres", "psycopg"),
        ("aurora-postgres", "psycopg2"),
        ("rds-mysql", "mysqlclient"),
    ],
)
def test_requests_through_a_switchover(
    deployment_factory: Any, scenario_player: Any, kind: str, driver: str
) -> None:
    dep = deployment_factory(kind, readers=1)
    prepare_table(dep)
    pg = dep.engine == "postgres"
    writer = dep.blue.writer
    if pg:  # a role to assume, on blue and on green (roles do not replicate)
        for inst in (writer, dep.green.writer):
            inst.execute_admin(f"CREATE ROLE {ROLE} NOLOGIN")
            inst.execute_admin(f"GRANT {ROLE} TO {inst.app_user}")
            inst.execute_admin(f"GRANT ALL ON {TABLE} TO {ROLE}")
    db = {
        "engine": PG if pg else MY,
        "host": dep.blue.cluster_endpoint or writer.endpoint,
        "port": writer.port,
        "name": writer.dbname,
        "user": writer.app_user,
        "password": writer.app_password,
    }
    options: dict[str, Any] = {
        **bg_settings(SPEED),
        "bg_id": f"django-{kind}",
        "bg_connect_timeout_ms": 5000,
        "connect_timeout": 3,
    }
    if pg:
        options["assume_role"] = ROLE
    else:
        options.update(read_timeout=5, write_timeout=5)
    env = app_env(
        db, driver, options=json.dumps(options), conn_max_age="none", threads="2"
    )
    # stderr to a file: a full pipe would block the subprocess mid-run.
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(
            [sys.executable, "-W", "error", "-m", "app.run", "switchover"],
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errfile,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline()
            if ready.strip() != "READY":
                proc.wait(10)
                errfile.seek(0)
                pytest.fail(f"the Django process did not start: {errfile.read()}")
            player = scenario_player(dep, "switchover", speed=SPEED, until=10.0)
            assert player.wait(timeout=60), "the scenario did not finish"
            out, _ = proc.communicate(input="", timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        errfile.seek(0)
        err = errfile.read()
    assert proc.returncode == 0, err[-4000:]
    player.check()
    result = json.loads(out.strip().splitlines()[-1])
    records: list[dict[str, Any]] = result["records"]

    killed = player.event("Connections dropped")
    began = player.event("IN_PROGRESS")
    switched = player.event("SWITCHED")
    assert killed is not None and began is not None and switched is not None
    kill_at = player.monotonic_at(killed.offset)
    began_at = player.monotonic_at(began.offset)
    switched_at = player.monotonic_at(switched.offset)
    ids = identity_map({"blue": dep.blue.instances, "green": dep.green.instances})

    after = [r for r in records if r["start"] >= kill_at]
    assert len(after) >= 10, len(after)
    failed_after = [
        (round(r["start"] - kill_at, 3), r["error"]) for r in after if not r["ok"]
    ]
    assert not failed_after, failed_after
    for r in records:
        if not r["ok"]:  # only a request in flight at the drop may fail
            assert r["start"] < kill_at and r["end"] >= began_at, r
    late = [r for r in records if r["start"] >= switched_at]
    envs = [ids.get(r["identity"], (None, None))[1] for r in late]
    assert late and set(envs) == {"green"}, late[:3]
    # ... and none of their writes reached the old blue.
    late_ids = {r["id"] for r in late if r["ok"]}
    assert not late_ids & written_ids(dep.blue.writer)
    # Nothing acknowledged is missing from the new primary.
    acked = {r["id"] for r in records if r["ok"]}
    assert acked <= written_ids(dep.green.writer)
    # Django never had to reopen a connection: bluegreen reconnected it.
    for client in {r["client"] for r in records}:
        mine = [r for r in records if r["client"] == client]
        if all(r["ok"] for r in mine):
            assert len({r["connection"] for r in mine}) == 1, client
    # Django's session setup survived the reconnects: the role it assumed
    # and the isolation level it set (MariaDB's default is REPEATABLE-READ),
    # through the backends' bg_on_reconnect; the JSONB loader, which
    # psycopg2 keeps per connection, through bluegreen's adapter.
    expected = f"{ROLE}, jsonb as str" if pg else "READ-COMMITTED"
    sessions = {r["session"] for r in records if r["ok"]}
    assert sessions == {expected}, sessions
    in_flight = sum(1 for r in records if not r["ok"])
    assert result["reconnects"] >= 2 - in_flight, result["reconnects"]
