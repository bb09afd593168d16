"""``bluegreen check`` against real servers: simulated RDS and Aurora
deployments of every type, plain servers, and hosts that cannot be reached.

The CLI runs in this process (``bluegreen.cli.main`` with capsys), under the
test suite's simulated DNS. One deployment per type serves every test of
that type (module scope, no readers); each test sets the metadata state it
needs and undoes its faults. Every run is checked for a leaked password and
for monitor threads left behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import bluegreen.bg
from bluegreen._runtime import runtime
from bluegreen.cli import main
from bluegreen.sim import metadata as md
from bluegreen.sim.deployment import Deployment
from bluegreen.sim.names import green_to_blue_name
from bluegreen.sim.scenario import initial_rows, prepare_metadata

pytestmark = [pytest.mark.timeout(120)]

#: Passwords of the simulator's accounts; no check may print them.
SECRETS = ("app-secret", "admin-secret")

SOURCES = {
    "aurora-postgres": "pg_catalog.get_blue_green_fast_switchover_metadata",
    "rds-postgres": "rds_tools.show_topology",
    "aurora-mysql": "mysql.rds_topology",
    "rds-mysql": "mysql.rds_topology",
}
GRANTS = {
    "rds-postgres": "GRANT USAGE ON SCHEMA rds_tools TO app; "
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA rds_tools TO app;",
    "rds-mysql": "GRANT SELECT ON mysql.rds_topology TO 'app'@'%';",
}


def bg_threads() -> set[str]:
    """Names of the bg plugin's live threads."""
    return {t.name for t in threading.enumerate() if t.name.startswith("bluegreen-bg-")}


@pytest.fixture(autouse=True)
def fresh_bg() -> Iterator[None]:
    """No watch, detection or once-only warning carried between tests."""
    bluegreen.bg.shutdown()
    runtime().detections.clear()
    runtime().warnings.clear()
    yield
    bluegreen.bg.shutdown()
    runtime().detections.clear()
    runtime().warnings.clear()


@pytest.fixture(
    scope="module",
    params=["aurora-postgres", "rds-postgres", "aurora-mysql", "rds-mysql"],
)
def dep(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One started deployment of the type in ``request.param``, for the module."""
    deployment = Deployment.create(request.param, readers=0)
    try:
        deployment.start()
        deployment.metadata = prepare_metadata(deployment)
        yield deployment
    finally:
        deployment.stop()


def blue_host(dep: Deployment) -> str:
    """The name applications connect with."""
    return dep.blue.cluster_endpoint or dep.blue.writer.endpoint


def url(dep: Deployment, *, password: bool = True, scheme: str = "") -> str:
    """A postgresql:// or mysql:// URL of the blue writer for the app user."""
    scheme = scheme or ("postgresql" if dep.engine == "postgres" else "mysql")
    secret = f":{dep.app_password}" if password else ""
    port = dep.blue.writer.port
    return f"{scheme}://{dep.app_user}{secret}@{blue_host(dep)}:{port}/{dep.dbname}"


def provision(dep: Deployment) -> None:
    """The blue/green deployment exists (status AVAILABLE: phase CREATED)."""
    assert dep.metadata is not None
    dep.metadata.set_rows(initial_rows(dep, md.AVAILABLE))


def unprovision(dep: Deployment) -> None:
    """No blue/green deployment in the metadata (phase NOT_CREATED)."""
    assert dep.metadata is not None
    dep.metadata.clear()


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``bluegreen check`` in this process; return (exit code, out, err)."""
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out and secret not in err, "a password was printed"
    assert bg_threads() == set(), "the check left monitor threads running"
    return code, out, err


def check_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, _ = check(capsys, "--json", *argv)
    report: dict[str, Any] = json.loads(out)
    assert report["exit_code"] == code
    return report


def field(out: str, label: str) -> str:
    """The value of one ``label  value`` row of the text report."""
    m = re.search(rf"^  {re.escape(label)} +(.+)$", out, re.M)
    assert m, f"no {label!r} row in:\n{out}"
    return m.group(1)


# -- every deployment type -------------------------------------------------------


def test_ready_deployment(
    dep: Deployment,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A created deployment: exit 0, the mapping of every blue host. Each
    type uses another driver and another way to pass the password."""
    provision(dep)
    argv: list[str]
    if dep.kind == "aurora-postgres":  # URI with the password in it
        argv = [url(dep)]
    elif dep.kind == "rds-postgres":  # libpq string, PGPASSWORD, psycopg2
        monkeypatch.setenv("PGPASSWORD", dep.app_password)
        argv = [
            "--driver",
            "psycopg2",
            f"host={blue_host(dep)} port={dep.blue.writer.port} "
            f"dbname={dep.dbname} user={dep.app_user}",
        ]
    elif dep.kind == "aurora-mysql":  # mysql:// URL with the password, PyMySQL
        argv = [url(dep)]
    else:  # mysql-connector, MYSQL_PWD
        monkeypatch.setenv("MYSQL_PWD", dep.app_password)
        argv = ["--driver", "mysql-connector", url(dep, password=False)]
    code, out, _ = check(capsys, *argv)
    assert code == 0, out
    assert (
        out.rstrip()
        .splitlines()[-2]
        .startswith(
            "OK: the application would be protected: ready for a blue/green switchover"
        )
    ), out
    assert field(out, "deployment type").startswith(dep.kind)
    assert field(out, "metadata") == f"{SOURCES[dep.kind]}: readable"
    assert field(out, "phase").startswith("CREATED")
    assert field(out, "ready") == "yes"
    green = dep.green.cluster_endpoint or dep.green.writer.endpoint
    row = re.search(
        rf"^    {re.escape(blue_host(dep))} +{re.escape(green)} +"
        rf"{re.escape(dep.green.writer.host)}$",
        out,
        re.M,
    )
    assert row, f"no mapping row {blue_host(dep)} -> {green}:\n{out}"
    writer = re.escape(dep.blue.writer.endpoint)
    assert re.search(rf"^    {writer} ", out, re.M), "the writer instance is mapped"
    if dep.kind == "aurora-postgres":
        assert field(out, "endpoint") == url(dep).replace(dep.app_password, "***")


def test_no_deployment_yet_json(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """Readable metadata, no deployment: exit 0 with verdict no-deployment."""
    unprovision(dep)
    report = check_json(capsys, url(dep), "--bg-id", "ci-check")
    assert report["verdict"] == "no-deployment", report
    assert report["exit_code"] == 0 and report["protected"] is True
    assert report["deployment_type"] == dep.kind
    assert report["phase"] == "NOT_CREATED"
    assert report["mapping"] == []
    assert report["metadata"]["found"] is True
    assert report["metadata"]["readable"] is True
    assert report["metadata"]["missing_grant"] is None
    assert report["bg_id"] == "ci-check"
    assert report["host"] == blue_host(dep)
    assert report["connected"] is True and report["error"] is None
    assert report["problem"] is None
    assert ":***@" in report["endpoint"]


@pytest.mark.parametrize("dep", ["rds-mysql", "aurora-postgres"], indirect=True)
def test_ready_json_lists_the_mapping(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    provision(dep)
    report = check_json(capsys, url(dep))
    assert report["verdict"] == "ready", report
    assert report["ready"] is True and report["phase"] == "CREATED"
    assert report["bg_id"] == "bluegreen-check"
    mapping = {m["blue"]: (m["green"], m["green_ip"]) for m in report["mapping"]}
    green_writer = dep.green.writer
    assert mapping[dep.blue.writer.endpoint] == (
        green_writer.endpoint,
        green_writer.host,
    )
    if dep.blue.cluster_endpoint:
        assert mapping[dep.blue.cluster_endpoint][0] == dep.green.cluster_endpoint
    assert report["elapsed_s"] < 10


@pytest.mark.parametrize("dep", ["rds-postgres", "rds-mysql"], indirect=True)
def test_missing_grant_is_named(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dep.metadata is not None
    provision(dep)
    dep.metadata.set_grants(False)
    try:
        code, out, _ = check(capsys, url(dep))
        report = check_json(capsys, url(dep))
    finally:
        dep.metadata.set_grants(True)
    grant = GRANTS[dep.kind]
    assert code == 1, out
    assert field(out, "GRANT needed") == grant
    assert "NOT READABLE" in field(out, "metadata")
    assert "\nNOT PROTECTED: " in out
    assert f"What to do: Have an administrator run: {grant}" in out
    assert report["problem"] == "missing-grant"
    assert report["metadata"] == {
        "source": SOURCES[dep.kind],
        "found": True,
        "readable": False,
        "missing_grant": grant,
    }
    assert report["phase"] is None  # the status was never read


@pytest.mark.parametrize("dep", ["rds-postgres"], indirect=True)
def test_green_refusing_logins_is_a_monitor_error(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """The deployment exists but the green host refuses the app user: the
    mapping may be complete, yet nothing could follow a switchover."""
    provision(dep)
    dep.refuse_connections(dep.green.writer, True)
    try:
        report = check_json(capsys, url(dep), "--timeout", "8")
    finally:
        dep.refuse_connections(dep.green.writer, False)
    assert report["exit_code"] == 1, report
    assert report["problem"] == "monitor-error"
    assert "green monitor" in report["reason"]
    assert report["monitor_errors"].get("green")
    assert report["phase"] == "CREATED"
    assert report["elapsed_s"] < 8  # a lasting failure ends the wait early


@pytest.mark.parametrize("dep", ["aurora-postgres"], indirect=True)
def test_green_host_name_is_not_protected(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plugin follows the deployment from a green name too, but the
    application's connections would be rejected after the switchover."""
    provision(dep)
    green = dep.green.cluster_endpoint
    assert green is not None
    port = dep.green.writer.port
    dsn = f"postgresql://{dep.app_user}:{dep.app_password}@{green}:{port}/{dep.dbname}"
    report = check_json(capsys, dsn)
    assert report["exit_code"] == 1, report
    assert report["problem"] == "green-host"
    assert "GreenHostRejectedError" in report["reason"]
    assert dep.blue.cluster_endpoint in report["advice"]


@pytest.mark.parametrize("dep", ["aurora-postgres"], indirect=True)
def test_incomplete_mapping_at_the_timeout(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """The green names do not resolve from here: the deployment exists, but
    the plugin cannot map it, so a switchover would not be followed."""
    provision(dep)
    names = dep.dns.mapping()
    dep.dns.update({n: None for n in names if green_to_blue_name(n) != n})
    try:
        code, out, _ = check(capsys, url(dep), "--timeout", "3")
    finally:
        dep.publish_dns()
    assert code == 1, out
    assert field(out, "phase").startswith("CREATED")
    assert field(out, "ready") == "NO"
    assert "NOT PROTECTED: a blue/green deployment exists (phase CREATED), but " in out
    assert "after 3 s not every blue host was mapped" in out


@pytest.mark.parametrize("dep", ["rds-postgres"], indirect=True)
def test_host_from_the_libpq_environment_is_followed(
    dep: Deployment,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No DSN: libpq connects through PG* variables, and the plugin follows
    the host PGHOST names, for the application too."""
    provision(dep)
    for key, value in {
        "PGHOST": blue_host(dep),
        "PGPORT": str(dep.blue.writer.port),
        "PGUSER": dep.app_user,
        "PGDATABASE": dep.dbname,
        "PGPASSWORD": dep.app_password,
    }.items():
        monkeypatch.setenv(key, value)
    report = check_json(capsys)
    assert report["connected"] is True
    assert report["deployment_type"] == "rds-postgres"
    assert report["problem"] is None, report
    assert report["exit_code"] == 0


@pytest.mark.parametrize("dep", ["aurora-mysql"], indirect=True)
def test_typo_in_a_setting_exits_2_before_connecting(
    dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    provision(dep)
    code, out, err = check(capsys, url(dep), "--set", "bg_intervall_baseline_ms=100")
    assert code == 2
    assert out == ""
    assert "did you mean 'bg_interval_baseline_ms'?" in err
    assert err.startswith("bluegreen check: error: unknown wrapper setting")


@pytest.mark.parametrize("dep", ["rds-mysql"], indirect=True)
def test_console_command_in_its_own_process(dep: Deployment) -> None:
    """As an operator runs it: its own process, the password in MYSQL_PWD,
    nothing on stderr, the exit status of the verdict."""
    provision(dep)
    env = {**os.environ, "MYSQL_PWD": dep.app_password}
    argv = ["check", "--json", "--driver", "mysql-connector", url(dep, password=False)]
    proc = subprocess.run(
        [sys.executable, "-m", "bluegreen", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["verdict"] == "ready" and report["driver"] == "mysql-connector"
    assert dep.app_password not in proc.stdout


# -- plain servers and unreachable hosts -----------------------------------------


@pytest.mark.postgres
def test_plain_postgres(pg_instance: Any, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = (
        f"host={pg_instance.host} port={pg_instance.port} "
        f"dbname={pg_instance.dbname} user={pg_instance.app_user} "
        f"password={pg_instance.app_password}"
    )
    code, out, err = check(capsys, "-v", dsn)
    assert code == 1, out
    assert re.search(r" bluegreen\.bg: .*the server is plain PostgreSQL", err), err
    assert field(out, "deployment type").startswith("postgres,")
    assert field(out, "metadata") == "none (not an RDS or Aurora server)"
    assert "  phase " not in out  # no blue/green phase on a plain server
    assert "NOT PROTECTED: the server is plain PostgreSQL" in out
    assert "password=***" in field(out, "endpoint")


@pytest.mark.mariadb
def test_plain_mariadb_json(
    mariadb_instance: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    inst = mariadb_instance
    report = check_json(
        capsys,
        "--driver",
        "mysql-connector",
        f"mysql://{inst.app_user}:{inst.app_password}@{inst.host}:{inst.port}/"
        f"{inst.dbname}",
    )
    assert report["exit_code"] == 1
    assert report["verdict"] == "not-protected"
    assert report["problem"] == "plain-server"
    assert report["deployment_type"] == "mysql"
    assert "plain MySQL/MariaDB" in report["reason"]
    assert report["driver"] == "mysql-connector"


def test_unresolvable_host_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(
        capsys, "host=mydb.nosuchdomain.invalid dbname=app user=app password=xyz123"
    )
    assert code == 3, out
    assert "\nCANNOT CONNECT: psycopg.OperationalError: " in out
    assert "mydb.nosuchdomain.invalid" in out
    assert "xyz123" not in out


def test_refused_connection_exits_3_json(capsys: pytest.CaptureFixture[str]) -> None:
    report = check_json(capsys, "mysql://app:xyz123@127.0.0.1:9/app")
    assert report["exit_code"] == 3
    assert report["verdict"] == "connect-failed"
    assert report["connected"] is False
    assert report["error"].startswith("pymysql.err.OperationalError: (2003,")
    assert report["host"] == "127.0.0.1" and report["port"] == 9
    assert "xyz123" not in json.dumps(report)
