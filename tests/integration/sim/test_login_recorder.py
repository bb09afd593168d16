"""Token logins: a PAM-authenticated user whose passwords the simulator records.

A deployment made with ``token_logins=True`` accepts, for its token user, any
password shaped like an RDS IAM token and records every password PAM is shown
(:mod:`bluegreen.sim.tokenlogins`).  The tokens here are fake: only their
shape matters, and each names the host it was "signed" for.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from simclient import ClientView

from bluegreen.sim import metadata as md
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.dns import SimDNS
from bluegreen.sim.scenario import initial_rows, prepare_metadata
from bluegreen.sim.servers import Instance, ServerPool
from bluegreen.sim.tokenlogins import PAM_DIR, TOKEN_USER, TokenLogin, is_token_shaped

KINDS = ["rds-postgres", "aurora-postgres", "rds-mysql", "aurora-mysql"]


def token(host: str, port: int, user: str = TOKEN_USER) -> str:
    """A fake RDS IAM token for ``host`` (a SigV4 presigned URL, no scheme)."""
    signature = hashlib.sha256(f"{host}:{port}:{user}".encode()).hexdigest()
    return (
        f"{host}:{port}/?Action=connect&DBUser={user}"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Frds-db"
        "%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
    )


class RecordingPyMySQL(pymysql.connections.Connection):  # type: ignore[misc]
    """PyMySQL, noting the authentication plugins the server asked for."""

    plugins: list[bytes] = []

    def _process_auth(self, plugin_name: bytes, *args: Any, **kw: Any) -> Any:
        RecordingPyMySQL.plugins.append(plugin_name)
        return super()._process_auth(plugin_name, *args, **kw)


def connect(dep: Deployment, name: str, password: str | None = None) -> Any:
    """Autocommit connection to host name ``name``: the token user with
    ``password`` (default: a token for ``name``), or the app user when
    ``password`` is ``"app"``."""
    port = dep.blue.writer.port
    if password == "app":
        kwargs = dep.connect_kwargs(name)
    else:
        kwargs = dep.token_connect_kwargs(name, password or token(name, port))
    if dep.engine == "postgres":
        return psycopg.connect(**kwargs, connect_timeout=5, autocommit=True)
    return RecordingPyMySQL(**kwargs, connect_timeout=5, autocommit=True)


def query(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


def summary(records: list[TokenLogin]) -> list[tuple[str, str, str, str, bool]]:
    return [(r.instance, r.host, r.user, r.password, r.accepted) for r in records]


def wait_records(dep: Deployment, count: int) -> list[TokenLogin]:
    # A record is complete when PAM returns, so before the login does; still,
    # allow the file system a moment.
    deadline = time.monotonic() + 2
    while len(records := dep.token_logins()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return records


@pytest.fixture(scope="module", params=KINDS)
def started(request: pytest.FixtureRequest, sim_dns: SimDNS) -> Iterator[Deployment]:
    deployment = Deployment.create(
        request.param, readers=1, dns=sim_dns, token_logins=True
    )
    with deployment:
        deployment.metadata = prepare_metadata(deployment)
        deployment.metadata.set_rows(initial_rows(deployment, md.AVAILABLE))
        services = [
            PAM_DIR / i.token_login.service
            for i in deployment.instances
            if i.token_login is not None
        ]
        assert len(services) == len(deployment.instances)
        assert all(s.is_file() for s in services)
        yield deployment
    assert not any(s.exists() for s in services)


@pytest.fixture
def dep(started: Deployment) -> Deployment:
    """The module's deployment of this kind, with no token logins recorded."""
    started.clear_token_logins()
    return started


def test_token_logins_are_recorded_per_instance(dep: Deployment) -> None:
    blue, green = dep.blue, dep.green
    # The names an application would use: the cluster endpoint on Aurora.
    targets = [
        (blue.cluster_endpoint or blue.writer.endpoint, blue.writer),
        (green.writer.endpoint, green.writer),
        (blue.readers[0].endpoint, blue.readers[0]),  # a standby on PostgreSQL
        (green.readers[0].endpoint, green.readers[0]),
    ]
    view = ClientView(dep)
    RecordingPyMySQL.plugins.clear()
    for name, _ in targets:
        conn = connect(dep, name)
        try:
            assert query(conn, "SELECT 1") == [(1,)]
            user = query(conn, "SELECT current_user" + ("()" * (not view.pg)))[0][0]
            assert user.split("@")[0] == TOKEN_USER
            rows = query(conn, view.metadata_sql)
            assert len(rows) == len(dep.instances), (name, rows)
        finally:
            conn.close()
    port = blue.writer.port
    expected = [
        (inst.original_endpoint, inst.host, TOKEN_USER, token(name, port), True)
        for name, inst in targets
    ]
    records = wait_records(dep, len(expected))
    assert summary(records) == expected
    assert [r.token_host for r in records] == [name for name, _ in targets]
    assert [r.at for r in records] == sorted(r.at for r in records)
    assert all(abs(time.time() - r.at) < 60 for r in records)
    for (_, inst), record in zip(targets, records, strict=True):
        assert inst.token_logins() == [record]
    if not view.pg:  # asked as RDS MySQL asks for an IAM token, not with dialog
        assert set(RecordingPyMySQL.plugins) == {b"mysql_clear_password"}


def test_a_password_not_shaped_like_a_token_is_refused_and_recorded(
    dep: Deployment,
) -> None:
    name = dep.green.writer.endpoint
    errors = (psycopg.OperationalError, pymysql.err.OperationalError)
    for password in ("plain-secret", "h:1/?Action=connect&X-Amz-Date=1"):
        assert not is_token_shaped(password)
        with pytest.raises(errors, match=r"PAM authentication failed|Access denied"):
            connect(dep, name, password)
    records = wait_records(dep, 2)
    inst = dep.green.writer
    assert summary(records) == [
        (inst.original_endpoint, inst.host, TOKEN_USER, "plain-secret", False),
        (inst.original_endpoint, inst.host, TOKEN_USER, records[1].password, False),
    ]
    assert records[1].token_host is None


def test_the_app_user_logs_in_as_before_and_is_not_recorded(dep: Deployment) -> None:
    conn = connect(dep, dep.blue.writer.endpoint, "app")
    try:
        rows = query(conn, ClientView(dep).metadata_sql)
        assert len(rows) == len(dep.instances)
    finally:
        conn.close()
    assert dep.token_logins() == []


def test_refused_instances_refuse_the_token_user_too(dep: Deployment) -> None:
    inst = dep.blue.writer
    name = inst.endpoint
    session = connect(dep, name)
    dep.refuse_connections(inst, True)
    try:
        with pytest.raises(Exception, match=r"pg_hba\.conf rejects|locked"):
            connect(dep, name)
        assert dep.drop_connections(inst) >= 1
        with pytest.raises(Exception):  # noqa: B017 - driver specific error classes
            query(session, "SELECT 1")
    finally:
        dep.refuse_connections(inst, False)
        session.close()
    records = dep.token_logins()
    # PostgreSQL rejects in pg_hba.conf, before PAM; MariaDB checks the
    # account lock after PAM has run: the token was shown, and is recorded.
    assert len(records) == (1 if dep.engine == "postgres" else 2)
    conn = connect(dep, name)
    conn.close()
    assert len(wait_records(dep, len(records) + 1)) == len(records) + 1


def test_token_logins_of_a_single_instance(pg_instance: Instance) -> None:
    """Off by default; on a bare pool, the PAM service lives as long as the pool."""
    assert pg_instance.token_login is None
    assert "pam" not in (pg_instance.data_dir / "pg_hba.conf").read_text()
    with ServerPool() as pool:
        inst = pool.create("postgres", "solo")
        setup = pool.enable_token_logins(inst)
        service = PAM_DIR / setup.service
        assert setup.user == TOKEN_USER and service.is_file()
        inst.start()
        inst.create_token_user()
        password = token("solo.example", inst.port)
        psycopg.connect(
            **inst.token_connect_kwargs(password), connect_timeout=5
        ).close()
        (record,) = inst.token_logins()
        assert (record.instance, record.host, record.password) == (
            inst.original_endpoint,
            inst.host,
            password,
        )
        assert record.token_host == "solo.example"
        inst.clear_token_logins()
        assert inst.token_logins() == []
        script = Path(service.read_text().split("quiet ")[1].split()[0])
        assert script.parent == pool.base_dir
    assert not service.exists()


_OWNER = """
import sys
from bluegreen.sim.servers import ServerPool

pool = ServerPool()
setup = pool.enable_token_logins(pool.create("postgres", "reaped"))
print(setup.service, flush=True)
sys.stdin.readline()
"""


def test_the_pam_service_of_a_killed_owner_is_removed() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        service = PAM_DIR / owner.stdout.readline().strip()
        assert service.is_file() and service.name.startswith("bluegreen-sim-")
    finally:
        owner.kill()
        owner.communicate(timeout=15)
    deadline = time.monotonic() + 15
    while service.exists():
        assert time.monotonic() < deadline, f"{service} was left behind"
        time.sleep(0.05)
