"""The iam plugin's credentials hook: which host, port, user and region each
token is signed for, its defaults per driver, and its errors."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import mysql.connector
import psycopg
import psycopg2
import pymysql
import pytest

import bluegreen
import bluegreen.bg
from bluegreen._runtime import fresh_runtime, runtime
from bluegreen.bg._hosts import Inventory
from bluegreen.bg._watch import watches
from bluegreen.drivers import adapter_for
from bluegreen.errors import ConfigurationError
from bluegreen.iam import IamPlugin, IamTokenError, token_sources
from bluegreen.pipeline import ConnectContext, Pipeline, Target
from bluegreen.settings import Settings, parse_config

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
BLUE = "orders.cluster-c9akciq32.eu-west-1.rds.amazonaws.com"
GREEN = "orders-green-abc123.cluster-c9akciq32.eu-west-1.rds.amazonaws.com"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    """Fixed credentials from the environment; nothing else of the machine's
    AWS set-up is read, and the metadata service is never asked."""
    for var in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-creds"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("PGSSLMODE", raising=False)
    with fresh_runtime():
        yield


def context(
    target: Any = psycopg.connect, conninfo: str | None = None, **kw: Any
) -> ConnectContext:
    """The context the pipeline makes for a connection with these arguments."""
    kw.setdefault("plugins", "iam,bg")
    config = parse_config(adapter_for(target), conninfo, kw)
    ctx, _ = Pipeline._context(config, runtime().plugins.plan(config.settings.plugins))
    return ctx


def signed(extra: Any) -> dict[str, Any]:
    """What a token says: host, port, and its query parameters."""
    url = urlsplit("https://" + extra["password"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    scope = query["X-Amz-Credential"].split("/")
    return {
        "host": url.hostname,
        "port": url.port,
        "user": query["DBUser"],
        "action": query["Action"],
        "region": scope[2],
        "service": scope[3],
        "expires": query["X-Amz-Expires"],
    }


def test_the_plugin_provides_credentials_and_declares_its_settings() -> None:
    ctx = context(host=BLUE, user="app", connect_timeout=3)
    assert ctx.credential_hooks == (IamPlugin,)
    assert ctx.settings.iam_region is None and ctx.settings.iam_profile is None
    names = [s.name for s in IamPlugin.settings]
    assert names == ["iam_region", "iam_profile", "iam_host"]


def test_token_for_the_application_host_even_when_routed_to_an_ip() -> None:
    ctx = context(host=BLUE, port=5432, user="app", connect_timeout=3)
    direct = ctx.credentials(ctx.params, Target(BLUE, 5432, None, "app"))
    routed = ctx.credentials(ctx.params, Target(BLUE, 5432, "10.1.2.3", "app"))
    want = {
        "host": BLUE,
        "port": 5432,
        "user": "app",
        "action": "connect",
        "region": "eu-west-1",
        "service": "rds-db",
        "expires": "900",
    }
    assert signed(direct.kwargs) == want
    assert signed(routed.kwargs) == want
    # One token served both: cached per host, port, user and region.
    assert routed.kwargs["password"] == direct.kwargs["password"]
    assert token_sources().get(None).tokens_made == 1
    assert SECRET not in direct.kwargs["password"]


def test_the_token_replaces_the_applications_password_in_every_spelling() -> None:
    ctx = context(
        pymysql.connect, host=BLUE, user="app", passwd="stale", connect_timeout=3
    )
    params = ctx.credentials(ctx.params, Target(BLUE, 3306, None, "app"))
    assert "passwd" not in params.kwargs
    assert signed(params.kwargs)["port"] == 3306
    pg = context(
        psycopg.connect, f"host={BLUE} user=app password=stale connect_timeout=3"
    )
    params = pg.credentials(pg.params, Target(BLUE, 5432, None, "app"))
    # libpq: a keyword argument overrides the connection string.
    assert params.kwargs["password"].startswith(BLUE + ":5432/?Action=connect")
    assert params.conninfo == pg.params.conninfo


def test_postgres_uses_tls_unless_the_application_chose() -> None:
    ctx = context(host=BLUE, user="app", connect_timeout=3)
    assert (
        ctx.credentials(ctx.params, Target(BLUE, 5432, None, "app")).kwargs["sslmode"]
        == "require"
    )
    chosen = context(host=BLUE, user="app", sslmode="verify-full", connect_timeout=3)
    assert "sslmode" not in IamPlugin.credentials(
        chosen, Target(BLUE, 5432, None, "app")
    )  # type: ignore[operator]
    p2 = context(
        psycopg2.connect, f"host={BLUE} user=app sslmode=verify-ca connect_timeout=3"
    )
    assert "sslmode" not in IamPlugin.credentials(p2, Target(BLUE, 5432, None, "app"))  # type: ignore[operator]


def test_mysql_connector_is_asked_for_the_clear_text_plugin() -> None:
    ctx = context(mysql.connector.connect, host=BLUE, user="app", connection_timeout=3)
    extra = IamPlugin.credentials(ctx, Target(BLUE, 3306, None, "app"))
    assert extra is not None and extra["auth_plugin"] == "mysql_clear_password"
    my = context(pymysql.connect, host=BLUE, user="app", connect_timeout=3)
    extra = IamPlugin.credentials(my, Target(BLUE, 3306, None, "app"))
    assert extra is not None and set(extra) == {"password"}


def test_monitoring_connections_sign_for_the_host_they_watch() -> None:
    ctx = context(host=BLUE, user="app", connect_timeout=3)
    extra = IamPlugin.credentials(ctx, Target(GREEN, 5432, "10.9.9.9", "app", "bg"))
    assert extra is not None and signed(extra)["host"] == GREEN


def _renamed_watch(bg_id: str, renamed: bool) -> None:
    watch = watches().get(bg_id, Settings(bg_id=bg_id))
    inventory = Inventory(blue=frozenset({BLUE}), green=frozenset({GREEN}))
    watch.view = dataclasses.replace(watch.view, inventory=inventory, renamed=renamed)


def test_a_green_name_is_signed_without_its_suffix_once_renamed() -> None:
    ctx = context(host=GREEN, user="app", connect_timeout=3)
    _renamed_watch("1", renamed=False)
    before = IamPlugin.credentials(ctx, Target(GREEN, 5432, None, "app"))
    assert before is not None and signed(before)["host"] == GREEN
    assert bluegreen.bg.current_name(GREEN) == GREEN
    _renamed_watch("1", renamed=True)
    after = IamPlugin.credentials(ctx, Target(GREEN, 5432, None, "app"))
    monitor = IamPlugin.credentials(ctx, Target(GREEN, 5432, None, "app", "bg"))
    assert after is not None and signed(after)["host"] == BLUE
    assert monitor is not None and signed(monitor)["host"] == BLUE
    # A green name of a deployment this process does not watch is left alone.
    other = GREEN.replace("abc123", "zzz999")
    assert bluegreen.bg.current_name(other) == other
    assert bluegreen.bg.current_name(BLUE) == BLUE


def test_iam_host_region_and_profile_settings() -> None:
    cname = "db.internal.example"
    ctx = context(
        host=cname, user="app", iam_host=BLUE, iam_region="us-west-2", connect_timeout=3
    )
    extra = IamPlugin.credentials(ctx, Target(cname, 5432, None, "app"))
    assert extra is not None
    assert signed(extra)["host"] == BLUE and signed(extra)["region"] == "us-west-2"
    # iam_host is the application's: a monitor signs for what it watches.
    mon = IamPlugin.credentials(ctx, Target(GREEN, 5432, None, "app", "bg"))
    assert mon is not None and signed(mon)["host"] == GREEN


def test_region_from_aws_region_when_the_name_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    ctx = context(host="db.internal.example", user="app", connect_timeout=3)
    extra = IamPlugin.credentials(ctx, Target("db.internal.example", 5432, None, "app"))
    assert extra is not None and signed(extra)["region"] == "ap-south-1"


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigurationError, match=r"iam_regoin.*did you mean 'iam_region'"
    ):
        context(host=BLUE, user="app", iam_regoin="x")
    ctx = context(host="10.0.0.5", user="app", connect_timeout=3)
    with pytest.raises(ConfigurationError, match=r"IP address.*iam_host"):
        IamPlugin.credentials(ctx, Target("10.0.0.5", 5432, None, "app"))
    ctx = context(host=BLUE, connect_timeout=3)
    with pytest.raises(ConfigurationError, match="user name"):
        IamPlugin.credentials(ctx, Target(BLUE, 5432, None, None))
    ctx = context(host="/var/run/postgresql", user="app", connect_timeout=3)
    with pytest.raises(ConfigurationError, match="host name"):
        IamPlugin.credentials(ctx, Target("/var/run/postgresql", 5432, None, "app"))


def test_missing_credentials_are_the_drivers_error_and_leak_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # half a credential
    caplog.set_level(logging.DEBUG)
    ctx = context(host=BLUE, user="app", password="app-secret", connect_timeout=3)
    with pytest.raises(psycopg.OperationalError) as info:
        IamPlugin.credentials(ctx, Target(BLUE, 5432, None, "app"))
    assert isinstance(info.value, IamTokenError)
    assert isinstance(info.value, bluegreen.OperationalError)
    text = str(info.value)
    assert "AWS credentials" in text
    for secret in (SECRET, "app-secret"):
        assert secret not in text and secret not in caplog.text


def test_unknown_profile_names_the_setting() -> None:
    ctx = context(host=BLUE, user="app", iam_profile="nope", connect_timeout=3)
    with pytest.raises(psycopg.OperationalError, match=r"nope.*iam_profile"):
        IamPlugin.credentials(ctx, Target(BLUE, 5432, None, "app"))


def test_settings_of_a_plugin_not_in_use_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bluegreen.settings")
    context(
        host=BLUE, user="app", plugins="bg", iam_region="eu-west-1", connect_timeout=3
    )
    assert any(
        "iam_region" in r.getMessage() and "no effect" in r.getMessage()
        for r in caplog.records
    )
