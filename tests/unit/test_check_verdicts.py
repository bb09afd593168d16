"""``bluegreen check`` without servers: the DSN and arguments it builds, its
verdicts from detection results and status snapshots, its report, and the
usage errors it finds before connecting anywhere."""

from __future__ import annotations

import getpass
import json
import re
from typing import Any

import pytest

from bluegreen._check import (
    CheckResult,
    Outcome,
    Snapshot,
    build_target,
    judge_detection,
    judge_host,
    judge_status,
    render_json,
    render_text,
)
from bluegreen._check._verdict import NO_DEPLOYMENT_SETTLE_S, PROBLEM_SETTLE_S
from bluegreen.bg import BlueGreenStatus
from bluegreen.cli import main
from bluegreen.dialects import Detection, Dialect
from bluegreen.errors import ProgrammingError

ENV: dict[str, str] = {}


def target(dsn: str | None, **kw: Any) -> Any:
    kw.setdefault("environ", ENV)
    return build_target(dsn, **kw)


# -- arguments ---------------------------------------------------------------------


def test_libpq_string_goes_to_psycopg_as_it_is_with_the_checks_defaults() -> None:
    dsn = "host=db.example.com dbname=app user=app password=s3cret-pw"
    t = target(dsn)
    assert t.driver == "psycopg"
    assert t.conninfo == dsn
    assert t.kwargs == {
        "bg_id": "bluegreen-check",
        "bg_interval_baseline_ms": 200,
        "bg_interval_increased_ms": 200,
        "connect_timeout": 10,
    }
    assert "s3cret-pw" not in t.shown and "password=***" in t.shown
    assert t.secrets == ("s3cret-pw",)
    assert "s3cret-pw" not in repr(t)


def test_what_the_user_set_is_kept() -> None:
    t = target(
        "postgresql://app@db/app?bg_id=orders&connect_timeout=3"
        "&bg_interval_baseline_ms=1000",
        sets=["bg_interval_increased_ms=500"],
    )
    assert t.kwargs == {"bg_interval_increased_ms": "500"}
    t = target("host=db bg_id=orders", bg_id="other", timeout=3)
    assert t.kwargs["bg_id"] == "other"  # --bg-id wins over the DSN
    assert t.kwargs["connect_timeout"] == 3  # capped by --timeout
    t = target("host=db", environ={"PGCONNECT_TIMEOUT": "4"})
    assert "connect_timeout" not in t.kwargs  # libpq reads the environment
    t = target("host=db", timeout=0.5)
    assert t.kwargs["connect_timeout"] == 2  # libpq's shortest


def test_sqlalchemy_style_schemes() -> None:
    t = target("postgresql+psycopg://app@db/app")
    assert t.driver == "psycopg" and t.conninfo == "postgresql://app@db/app"
    t = target("postgresql+psycopg2://app@db/app")
    assert t.driver == "psycopg2" and t.conninfo == "postgresql://app@db/app"
    assert t.kwargs["connect_timeout"] == 10
    t = target("mysql+mysqlconnector://app@db/app")
    assert t.driver == "mysql-connector"
    assert t.kwargs["connection_timeout"] == 10
    assert "connect_timeout" not in t.kwargs


def test_psycopg2_takes_what_psycopg_takes() -> None:
    for dsn in ("host=db dbname=app", "postgresql://app@db/app", None):
        t = target(dsn, driver="psycopg2")
        assert t.driver == "psycopg2"
    with pytest.raises(ProgrammingError, match="a postgresql\\+psycopg:// URL"):
        target("postgresql+psycopg://app@db/app", driver="psycopg2")


def test_no_dsn_means_the_libpq_environment() -> None:
    t = target(None)
    assert t.driver == "psycopg" and t.conninfo == ""
    assert t.shown == "(libpq defaults and the PG* environment variables)"


def test_mysql_url_becomes_keyword_arguments() -> None:
    t = target(
        "mysql://app%40corp:p%40ss%3Aw0rd@db.example.com:3307/my%20db"
        "?connect_timeout=4&read_timeout=2.5&ssl_disabled=true&charset=utf8mb4"
        "&bg_id=orders&blue-green-monitoring-connect_timeout=2",
        sets=["port=3308", "autocommit=off"],
    )
    assert t.driver == "pymysql"
    assert t.conninfo is None
    assert t.kwargs == {
        "user": "app@corp",
        "password": "p@ss:w0rd",
        "host": "db.example.com",
        "port": 3308,
        "database": "my db",
        "connect_timeout": 4,
        "read_timeout": 2.5,
        "ssl_disabled": True,
        "charset": "utf8mb4",
        "bg_id": "orders",
        "blue-green-monitoring-connect_timeout": 2,
        "autocommit": False,
        "bg_interval_baseline_ms": 200,
        "bg_interval_increased_ms": 200,
    }
    assert "p@ss" not in t.shown and "p%40ss" not in t.shown
    assert t.shown.startswith("mysql://app%40corp:***@db.example.com:3308/my%20db?")
    assert "bg_id" not in t.shown
    assert t.secrets == ("p@ss:w0rd",)


def test_mysql_password_from_the_environment_or_a_prompt() -> None:
    env = {"MYSQL_PWD": "env-secret"}
    t = target("mysql://app@db/app", environ=env)
    assert t.kwargs["password"] == "env-secret"
    assert t.secrets == ("env-secret",)
    assert t.shown == "mysql://app:***@db/app"
    assert target("mysql://app:url-pw@db/app", environ=env).kwargs["password"] == (
        "url-pw"
    )
    prompted = target("mysql://app:url-pw@db/app", environ=env, password="typed")
    assert prompted.kwargs["password"] == "typed"
    assert target("host=db", environ=env).kwargs.get("password") is None


@pytest.mark.parametrize(
    ("dsn", "kw", "words"),
    [
        ("mysql://app@db:port/app", {}, "the port is not a number"),
        ("mysql://app:pa/ss@db/app", {}, "%2F"),
        ("mysql://app@db/a/b", {}, "one database name"),
        ("mysql://app:pa#ss@db/app", {}, "%23"),
        ("mysql://app@db/app?port=x", {}, "port: 'x' is not an integer"),
        ("mysql://app@db/app?ssl_disabled=maybe", {}, "not a boolean"),
        ("oracle://app@db/app", {}, "unsupported DSN scheme 'oracle://'"),
        ("mysql://app@db/app", {"driver": "psycopg"}, "--driver psycopg"),
        ("host=db", {"driver": "pymysql"}, "mysql://user@host"),
        (
            "mysql+pymysql://app@db/app",
            {"driver": "mysql-connector"},
            "a mysql+pymysql:// URL",
        ),
        ("host=db", {"sets": ["novalue"]}, "--set wants KEY=VALUE"),
        ("host=db", {"sets": ["password"]}, "'password'"),
        ("host='db", {}, "unterminated quote"),
    ],
)
def test_usage_errors(dsn: str, kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        target(dsn, **kw)
    assert words in str(info.value)
    assert "pa#ss" not in str(info.value)


def test_a_set_password_is_masked_in_its_error() -> None:
    with pytest.raises(ProgrammingError) as info:
        target("host=db", sets=["=oops"])
    assert "--set wants KEY=VALUE" in str(info.value)


# -- verdicts from detection -------------------------------------------------------


def detection(dialect: Dialect, **kw: Any) -> Detection:
    return Detection(dialect=dialect, **kw)


def test_detection_verdicts() -> None:
    ok = detection(
        Dialect.RDS_MYSQL, metadata_source="mysql.rds_topology", metadata_readable=True
    )
    assert judge_detection(ok, ("bg",)) is None

    off = judge_detection(ok, ())
    assert off is not None and off.problem == "bg-disabled" and off.exit_code == 1

    plain = judge_detection(detection(Dialect.POSTGRES), ("bg",))
    assert plain is not None and plain.problem == "plain-server"
    assert plain.reason is not None and "plain PostgreSQL" in plain.reason
    assert plain.advice is not None and "wrapper_dialect=rds-postgres" in plain.advice

    grant = "GRANT SELECT ON mysql.rds_topology TO 'app'@'%';"
    denied = judge_detection(
        detection(
            Dialect.RDS_MYSQL,
            metadata_source="mysql.rds_topology",
            missing_grant=grant,
            warnings=("user 'app'@'%' cannot read the blue/green metadata",),
        ),
        ("bg",),
    )
    assert denied == Outcome(
        1,
        "not-protected",
        "missing-grant",
        "user 'app'@'%' cannot read the blue/green metadata",
        f"Have an administrator run: {grant} Then run this check again.",
    )

    missing = judge_detection(
        detection(Dialect.RDS_POSTGRES, warnings=("rds_tools is not installed",)),
        ("bg",),
    )
    assert missing is not None and missing.problem == "metadata-missing"
    assert missing.reason == "rds_tools is not installed"

    unsupported = judge_detection(
        detection(
            Dialect.RDS_MYSQL,
            metadata_source="mysql.rds_topology",
            metadata_readable=True,
            unsupported_reason="the server looks like an RDS Multi-AZ DB cluster",
        ),
        ("bg",),
    )
    assert unsupported is not None and unsupported.problem == "unsupported"

    failed = judge_detection(
        detection(
            Dialect.MYSQL, probe_failed=True, warnings=("dialect detection failed",)
        ),
        ("bg",),
    )
    assert failed is not None and failed.problem == "detection-failed"
    assert failed.reason == "dialect detection failed"

    forced = detection(Dialect.RDS_POSTGRES, forced=True, probe_failed=True)
    assert judge_detection(forced, ("bg",)) is None  # the monitors decide


# -- verdicts from the status ------------------------------------------------------


def snap(**kw: Any) -> Snapshot:
    base: dict[str, Any] = {
        "phase": "NOT_CREATED",
        "ready": False,
        "monitoring": True,
        "protected": False,
    }
    base.update(kw)
    return Snapshot(**base)


def judge(s: Snapshot, steady_for: float = 0.0, timed_out: bool = False) -> Any:
    return judge_status(s, steady_for=steady_for, timed_out=timed_out, timeout=15)


def test_status_verdicts() -> None:
    mapping = {"db.x.rds.amazonaws.com": ("db-green-abc123.x.rds...", "10.0.0.2")}
    ready = snap(phase="CREATED", ready=True, protected=True, mapping=mapping)
    assert judge(ready) is None  # the green monitor may not have tried yet
    outcome = judge(ready, steady_for=1.0)
    assert outcome.exit_code == 0 and outcome.verdict == "ready"
    assert "1 blue host mapped" in outcome.reason
    assert judge(ready, timed_out=True).verdict == "ready"

    nothing = snap(protected=True)
    assert judge(nothing, steady_for=NO_DEPLOYMENT_SETTLE_S / 2) is None
    assert judge(nothing, steady_for=NO_DEPLOYMENT_SETTLE_S).verdict == "no-deployment"

    blind = snap(
        phase="CREATED",
        reason="h: the green monitor cannot connect",
        unprotected={"h": "the green monitor cannot connect"},
    )
    assert judge(blind, steady_for=PROBLEM_SETTLE_S / 2) is None
    failing = judge(blind, steady_for=PROBLEM_SETTLE_S)
    assert failing.problem == "monitor-error"
    assert failing.reason == "h: the green monitor cannot connect"

    denied = snap(
        reason="h: an administrator must run: GRANT SELECT ON x TO y;",
        unprotected={"h": "an administrator must run: GRANT SELECT ON x TO y;"},
    )
    assert judge(denied, timed_out=True).problem == "missing-grant"

    unread = snap(reason="the monitors have not read the blue/green status yet")
    assert judge(unread, steady_for=100) is None
    late = judge(unread, timed_out=True)
    assert late.problem == "status-unknown" and "within 15 s" in late.reason

    partial = snap(phase="CREATED", protected=True)
    assert judge(partial, steady_for=100) is None
    incomplete = judge(partial, timed_out=True)
    assert incomplete.problem == "not-ready" and incomplete.exit_code == 1


def test_snapshot_of_a_real_status() -> None:
    """The check reads these fields of BlueGreenStatus."""
    status = BlueGreenStatus(
        bg_id="x",
        phase="CREATED",
        ready=True,
        monitoring=True,
        mapping={"b": ("g", "10.0.0.1")},
        addresses={},
        green_topology_changed=False,
        blue_dns_updated=False,
        green_dns_removed=False,
        timed_out=False,
        events=(),
        monitor_errors={"blue": None, "green": "refused"},
        protected=False,
        reason="g: refused",
        unprotected={"g": "refused"},
    )
    s = Snapshot.of(status)
    assert (s.phase, s.ready, s.protected, s.reason) == (
        "CREATED",
        True,
        False,
        "g: refused",
    )
    assert s.mapping == {"b": ("g", "10.0.0.1")}
    assert s.unprotected == {"g": "refused"}
    assert s.monitor_errors == {"blue": None, "green": "refused"}


# -- the report --------------------------------------------------------------------


def test_reports_scrub_secrets_from_every_text() -> None:
    result = CheckResult(
        driver="pymysql",
        endpoint="mysql://app:***@db/app",
        host="db",
        port=3306,
        error="Access denied for app with password hunter22",
        outcome=Outcome(3, "connect-failed", "connect-failed", "hunter22 leaked"),
        secrets=("hunter22",),
    )
    text = render_text(result)
    data = json.loads(render_json(result))
    assert "hunter22" not in text and "hunter22" not in json.dumps(data)
    assert "CANNOT CONNECT: *** leaked" in text
    assert data["error"] == "Access denied for app with password ***"


def test_json_report_fields() -> None:
    result = CheckResult(
        driver="psycopg",
        endpoint="host=db",
        connected=True,
        deployment_type="rds-postgres",
        phase="CREATED",
        ready=True,
        mapping={"b2": ("g2", "10.0.0.2"), "b1": ("g1", "10.0.0.1")},
        outcome=Outcome(0, "ready", None, "ready for a blue/green switchover"),
    )
    data = json.loads(render_json(result))
    assert data["protected"] is True and data["exit_code"] == 0
    assert data["mapping"] == [
        {"blue": "b1", "green": "g1", "green_ip": "10.0.0.1"},
        {"blue": "b2", "green": "g2", "green_ip": "10.0.0.2"},
    ]
    assert set(data["metadata"]) == {"source", "found", "readable", "missing_grant"}
    text = render_text(result)
    assert "OK: the application would be protected: ready" in text
    assert re.search(r"^    b1 +g1 +10\.0\.0\.1$", text, re.M), text


# -- the command, up to the point where it would connect ---------------------------


def test_typo_in_a_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "host=db.invalid", "--set", "bg_connect_timout_ms=5"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "did you mean 'bg_connect_timeout_ms'?" in err


def test_typo_in_the_dsn_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--json", "host=db.invalid password=pw-1234 bg_idd=x"])
    out, err = capsys.readouterr()
    assert code == 2
    data = json.loads(out)
    assert data["verdict"] == "usage-error" and data["exit_code"] == 2
    assert "did you mean 'bg_id'?" in data["reason"]
    assert data["driver"] is None
    assert "pw-1234" not in out + err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["host=127.0.0.1 port=9", "--set", "nosuchoption=1"], "nosuchoption"),
        (["mysql://app@db.invalid/app", "--set", "nosuchoption=1"], "nosuchoption"),
        (
            [
                *("--driver", "mysql-connector", "mysql://app@db.invalid/app"),
                *("--set", "nosuchoption=1"),
            ],
            "nosuchoption",
        ),
    ],
)
def test_arguments_the_driver_rejects_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "driver rejected the arguments" in err and words in err


def test_host_name_verdicts() -> None:
    assert judge_host(None) is None
    assert judge_host("127.0.0.1") is None
    assert judge_host("db.internal.example.com") is None
    assert judge_host("mydb.cluster-abc123.us-east-1.rds.amazonaws.com") is None
    green = judge_host("mydb-green-k7dd3e.cluster-abc123.us-east-1.rds.amazonaws.com")
    assert green is not None and green.problem == "green-host"
    assert green.advice is not None
    assert "mydb.cluster-abc123.us-east-1.rds.amazonaws.com," in green.advice
    old = judge_host("mydb-old1.abc123.us-east-1.rds.amazonaws.com")
    assert old is not None and old.problem == "old-host"
    assert old.advice is not None
    assert "mydb.abc123.us-east-1.rds.amazonaws.com," in old.advice


def test_password_prompt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-W asks (on the terminal, through getpass) instead of taking the
    password from the DSN or the environment; the typed text is masked."""
    asked: list[str] = []

    def typed(prompt: str, stream: Any = None) -> str:
        asked.append(prompt)
        return "typed-pw-4711"

    monkeypatch.setattr(getpass, "getpass", typed)
    monkeypatch.setenv("MYSQL_PWD", "env-pw")
    code = main(["check", "-W", "--json", "mysql://app@127.0.0.1:9/app"])
    out, err = capsys.readouterr()
    assert asked == ["Password: "]
    assert code == 3  # nothing listens on port 9
    assert json.loads(out)["endpoint"] == "mysql://app:***@127.0.0.1:9/app"
    assert "typed-pw-4711" not in out + err and "env-pw" not in out + err
