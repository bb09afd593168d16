"""Settings registry, parsing, validation, the monitoring prefix and masking."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import mysql.connector
import psycopg
import pymysql
import pytest
from psycopg.rows import dict_row

import bluegreen
from bluegreen import ConfigurationError, Plugin, ProgrammingError
from bluegreen._runtime import fresh_runtime, runtime
from bluegreen.bg._settings import check_connect_timeout
from bluegreen.drivers import adapter_for
from bluegreen.settings import (
    SETTINGS,
    Setting,
    Settings,
    iter_settings,
    parse_config,
    settings_table_markdown,
)

PG = adapter_for(psycopg.connect)
MY = adapter_for(pymysql.connect)
MYC = adapter_for(mysql.connector.connect)


def parse(conninfo: str | None = None, adapter: Any = PG, **kw: Any) -> Any:
    return parse_config(adapter, conninfo, kw)


def test_registry_is_complete_and_matches_settings_defaults() -> None:
    names = [s.name for s in iter_settings()]
    assert names == list(SETTINGS)
    defaults = Settings()
    for s in iter_settings():
        value = getattr(defaults, s.name)
        assert value == (("bg",) if s.name == "plugins" else s.default), s.name
        assert s.doc and "\n" not in s.doc
    assert defaults.bg_client_tag.startswith("bluegreen-")


def test_table_lists_every_setting() -> None:
    table = settings_table_markdown()
    for name in SETTINGS:
        assert f"`{name}`" in table
    assert "`30000`" in table


def test_defaults_when_nothing_given() -> None:
    cfg = parse(plugins="")
    assert cfg.settings == Settings(plugins=())


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("bg_id", "abc-1", "abc-1"),
        ("bg_id", 1234, "1234"),
        ("bg_connect_timeout_ms", " 15 ", 15),
        ("bg_connect_timeout_ms", 0, 0),
        ("bg_interval_baseline_ms", "900", 900),
        ("bg_interval_increased_ms", 500, 500),
        ("bg_interval_high_ms", "50", 50),
        ("bg_switchover_timeout_ms", 1, 1),
        ("bg_suspend_new_blue_connections", "yes", True),
        ("bg_suspend_new_blue_connections", " Off ", False),
        ("bg_suspend_new_blue_connections", "1", True),
        ("bg_suspend_new_blue_connections", True, True),
        ("bg_suspend_new_blue_connections", 0, False),
        ("wrapper_dialect", "Aurora-Postgres", "aurora-postgres"),
        ("wrapper_dialect", "", None),
        ("bg_client_tag", "myapp-1.0", "myapp-1.0"),
    ],
)
def test_conversion(name: str, raw: Any, expected: Any) -> None:
    cfg = parse(plugins="", **{name: raw})
    assert getattr(cfg.settings, name) == expected


@pytest.mark.parametrize(
    ("name", "raw", "allowed"),
    [
        ("bg_connect_timeout_ms", -1, ">= 0"),
        ("bg_connect_timeout_ms", "ten", "integer"),
        ("bg_connect_timeout_ms", 1.5, "integer"),
        ("bg_connect_timeout_ms", True, "integer"),
        ("bg_interval_baseline_ms", 0, "> 0"),
        ("bg_interval_increased_ms", "-5", "> 0"),
        ("bg_interval_high_ms", 0, "> 0"),
        ("bg_switchover_timeout_ms", "0", "> 0"),
        ("bg_suspend_new_blue_connections", "maybe", "boolean"),
        ("bg_suspend_new_blue_connections", 2, "boolean"),
        ("wrapper_dialect", "oracle", "aurora-postgres"),
        ("bg_id", 1.5, "string"),
        ("plugins", 3, "comma-separated"),
    ],
)
def test_invalid_values_name_setting_value_and_allowed(
    name: str, raw: Any, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(**{"plugins": "", name: raw})
    msg = str(info.value)
    assert name in msg and repr(raw) in msg and allowed in msg
    assert isinstance(info.value, ProgrammingError)


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("bg_conect_timeout_ms", "bg_connect_timeout_ms"),
        ("bg_interval_hi_ms", "bg_interval_high_ms"),
        ("bg-id", "bg_id"),
        ("wrapper_dialekt", "wrapper_dialect"),
        ("plugin", "plugins"),
        ("plugns", "plugins"),
    ],
)
def test_typos_suggest_the_closest_name(typo: str, suggestion: str) -> None:
    with pytest.raises(ConfigurationError, match=f"did you mean '{suggestion}'"):
        parse(**{typo: "1"})


def test_unrelated_driver_arguments_are_not_typos() -> None:
    cfg = parse(plugins="", port=5432, application_name="x", options="-c a=b")
    assert cfg.params.kwargs == {
        "port": 5432,
        "application_name": "x",
        "options": "-c a=b",
    }


def test_driver_arguments_untouched_same_objects_same_order() -> None:
    marker = object()
    cfg = parse(
        user="u", bg_id="7", row_factory=dict_row, plugins="", context=marker, port=1
    )
    assert list(cfg.params.kwargs) == ["user", "row_factory", "context", "port"]
    assert cfg.params.kwargs["row_factory"] is dict_row
    assert cfg.params.kwargs["context"] is marker
    assert "bg_id" not in cfg.params.kwargs and "plugins" not in cfg.params.kwargs


@pytest.mark.parametrize(
    ("value", "codes"),
    [("", ()), ("bg", ("bg",)), (" a , b ,", ("a", "b")), ("  ", ())],
)
def test_plugins_parsing(value: str, codes: tuple[str, ...]) -> None:
    assert parse(plugins=value).settings.plugins == codes


def test_duplicate_plugins_rejected() -> None:
    with pytest.raises(ConfigurationError, match="duplicate plugin code"):
        parse(plugins="a, b, a")


def test_settings_are_frozen() -> None:
    s = parse(plugins="").settings
    with pytest.raises(AttributeError):
        s.bg_id = "2"  # type: ignore[misc]


def test_conninfo_key_value_extraction() -> None:
    cfg = parse(
        "host=db.example port=5433 bg_id = 'my id' plugins='' "
        "bg_suspend_new_blue_connections=on application_name='a b\\'c'"
    )
    assert cfg.settings.bg_id == "my id"
    assert cfg.settings.plugins == ()
    assert cfg.settings.bg_suspend_new_blue_connections is True
    assert psycopg.conninfo.conninfo_to_dict(cfg.params.conninfo) == {
        "host": "db.example",
        "port": "5433",
        "application_name": "a b'c",
    }


def test_conninfo_without_wrapper_settings_is_passed_verbatim() -> None:
    text = "host=db   port=5432  application_name='x y'"
    assert parse(text, plugins="").params.conninfo is text


def test_uri_extraction_keeps_the_rest() -> None:
    uri = (
        "postgresql://u:p%40ss@h1:5432,h2:5433/db?sslmode=require"
        "&bg_id=a%20b&plugins=&application_name=x%26y"
        "&blue-green-monitoring-connect_timeout=3"
    )
    cfg = parse(uri)
    assert cfg.settings.bg_id == "a b"
    assert cfg.settings.plugins == ()
    assert cfg.own_overrides["bg"] == {"connect_timeout": "3"}
    assert cfg.params.conninfo == (
        "postgresql://u:p%40ss@h1:5432,h2:5433/db?sslmode=require"
        "&application_name=x%26y"
    )
    d = psycopg.conninfo.conninfo_to_dict(cfg.params.conninfo)
    assert d["password"] == "p@ss" and d["application_name"] == "x&y"


def test_typo_inside_conninfo_is_reported() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'bg_interval_high_ms'"):
        parse("host=x bg_interval_hihg_ms=5")


def test_conninfo_refused_for_mysql_drivers() -> None:
    with pytest.raises(ProgrammingError, match="connection string"):
        parse("host=x", adapter=MY)


def test_monitoring_prefix_both_spellings_psycopg() -> None:
    cfg = parse(
        "host=h target_session_attrs=read-write blue-green-monitoring-user=mon",
        plugins="",
        connect_timeout=30,
        load_balance_hosts="random",
        row_factory=dict_row,
        blue_green_monitoring_connect_timeout=3,
    )
    assert cfg.own_overrides["bg"] == {"user": "mon", "connect_timeout": 3}
    mon = cfg.own_params("bg")
    assert mon.kwargs["host"] == "h"
    assert mon.kwargs["user"] == "mon"
    assert mon.kwargs["connect_timeout"] == 3
    assert mon.kwargs["autocommit"] is True
    for key in ("target_session_attrs", "load_balance_hosts", "row_factory"):
        assert key not in mon.kwargs
    # the application's own parameters are unaffected
    assert cfg.params.kwargs["connect_timeout"] == 30
    assert "target_session_attrs" in cfg.params.conninfo


def test_monitoring_prefix_pymysql() -> None:
    cfg = parse(
        adapter=MY,
        plugins="",
        host="h",
        connect_timeout=10,
        cursorclass=pymysql.cursors.DictCursor,
        autocommit=False,
        **{"blue-green-monitoring-connect_timeout": 2},
    )
    mon = cfg.own_params("bg")
    assert mon.kwargs == {"host": "h", "connect_timeout": 2, "autocommit": True}


def test_monitoring_prefix_rejects_wrapper_settings() -> None:
    with pytest.raises(ConfigurationError, match="driver arguments only"):
        parse(plugins="", blue_green_monitoring_bg_id="2")


@pytest.mark.parametrize(
    ("adapter", "typo", "meant"),
    [
        (PG, "conect_timeout", "connect_timeout"),
        (PG, "applicaton_name", "application_name"),
        (MY, "conect_timeout", "connect_timeout"),
        (MYC, "conection_timeout", "connection_timeout"),
    ],
)
def test_monitoring_typo_is_an_error_with_a_suggestion(
    adapter: Any, typo: str, meant: str
) -> None:
    for prefix in ("blue_green_monitoring_", "blue-green-monitoring-"):
        kwargs = {"plugins": "", f"{prefix}{typo}": 5}
        with pytest.raises(ConfigurationError) as info:
            parse_config(adapter, None, kwargs)
        text = str(info.value)
        # The spelling the application wrote, not the plugin's first prefix.
        assert f"'{prefix}{typo}'" in text
        assert f"did you mean '{prefix}{meant}'?" in text


def test_monitoring_names_the_drivers_know_are_accepted() -> None:
    parse("host=h", plugins="", **{"blue-green-monitoring-sslmode": "require"})
    parse("host=h", plugins="", blue_green_monitoring_prepare_threshold=None)
    parse_config(MY, None, {"blue_green_monitoring_read_timeout": 3})
    parse_config(MYC, None, {"blue_green_monitoring_connect_timeout": 3})
    parse_config(MYC, None, {"blue_green_monitoring_use_pure": True})


def test_monitoring_typo_hides_a_secret_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse("host=h", plugins="", blue_green_monitoring_passwrd="hunter2")
    assert "hunter2" not in str(info.value)


def test_secrets_masked_in_repr() -> None:
    cfg = parse(
        "host=h password='s3cr3t-1' sslpassword=s3cr3t-2",
        plugins="",
        passfile="/x",
        auth_token="s3cr3t-3",
        client_secret="s3cr3t-4",
        blue_green_monitoring_password="s3cr3t-5",
    )
    text = repr(cfg) + repr(cfg.own_params("bg")) + repr(cfg.params)
    for n in range(1, 6):
        assert f"s3cr3t-{n}" not in text
    assert "***" in text and "/x" in text


def test_secrets_masked_in_uri_repr() -> None:
    cfg = parse("postgresql://user:hunter2@h/db?password=hunter3", plugins="")
    assert "hunter2" not in repr(cfg) and "hunter3" not in repr(cfg)
    assert "user:***@h" in repr(cfg)


def test_secrets_masked_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(bg_password="hunter2")
    assert "hunter2" not in str(info.value) and "'bg_password'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        parse("host=h bg_token=hunter2")
    assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------
# A plugin's own settings: secret ones, float ones, unsupported types


class Kms(Plugin):
    settings = (
        Setting("kms_key", str, "", "The key to unwrap with.", secret=True),
        Setting("kms_ratio", float, 1.0, "A share.", minimum=0.5),
        Setting("kms_scale", float, 0.0, "Any number."),
    )


@pytest.fixture
def kms() -> Iterator[None]:
    with fresh_runtime():
        bluegreen.register_plugin("kms", Kms)
        yield


def test_a_secret_setting_is_masked_wherever_settings_are_shown(kms: None) -> None:
    cfg = parse("host=h kms_key=s3cr3t-1", plugins="kms", kms_ratio="2")
    assert cfg.settings.kms_key == "s3cr3t-1"
    assert "s3cr3t" not in repr(cfg.settings) and "s3cr3t" not in repr(cfg)
    assert "kms_key='***'" in repr(cfg.settings) and "kms_ratio=2.0" in repr(cfg)
    assert "kms_key='***'" in repr(Settings(kms_key="s3cr3t-2"))
    with pytest.raises(ConfigurationError) as info:
        parse(plugins="kms", kms_key=["s3cr3t-3"])
    assert "s3cr3t" not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("kms_kye", "kms_key"),  # close to a secret setting, no secret word
        ("kms-key", "kms_key"),
        ("bg_passwrd", None),
        ("wrapper_dialekt", "wrapper_dialect"),
        ("plugns", "plugins"),
    ],
)
def test_unknown_setting_errors_never_show_the_value(
    kms: None, typo: str, meant: str | None
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(plugins="kms", **{typo: "s3cr3t"})
    text = str(info.value)
    assert "s3cr3t" not in text and f"unknown wrapper setting '{typo}'" in text
    if meant:
        assert f"did you mean '{meant}'?" in text
    with pytest.raises(ConfigurationError) as info:
        Settings(**{typo: "s3cr3t"})
    assert "s3cr3t" not in str(info.value)


def test_an_unknown_setting_in_a_connection_string_hides_its_value(kms: None) -> None:
    for conninfo in ("host=h kms_kye=s3cr3t", "postgresql://h/db?kms_kye=s3cr3t"):
        with pytest.raises(ConfigurationError, match="did you mean 'kms_key'") as info:
            parse(conninfo, plugins="kms")
        assert "s3cr3t" not in str(info.value)


def test_a_wrapper_setting_after_a_prefix_hides_its_value(kms: None) -> None:
    with pytest.raises(ConfigurationError, match="driver arguments only") as info:
        parse(plugins="", blue_green_monitoring_kms_key="s3cr3t")
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("kms_ratio", "2.5", 2.5),
        ("kms_ratio", " 1e1 ", 10.0),
        ("kms_ratio", 2.5, 2.5),
        ("kms_ratio", 3, 3.0),
        ("kms_ratio", "0.5", 0.5),
        ("kms_scale", "-1.25", -1.25),
    ],
)
def test_float_settings_convert(
    kms: None, name: str, raw: Any, expected: float
) -> None:
    value = getattr(parse(plugins="kms", **{name: raw}).settings, name)
    assert value == expected and type(value) is float


@pytest.mark.parametrize(
    ("name", "raw", "allowed"),
    [
        ("kms_ratio", "0.25", "a finite number >= 0.5"),
        ("kms_ratio", 0, "a finite number >= 0.5"),
        ("kms_ratio", "half", "a finite number >= 0.5"),
        ("kms_ratio", True, "a finite number >= 0.5"),
        ("kms_scale", "nan", "a finite number"),
        ("kms_scale", float("inf"), "a finite number"),
        ("kms_scale", [1.0], "a finite number"),
    ],
)
def test_invalid_float_values_name_setting_value_and_allowed(
    kms: None, name: str, raw: Any, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(plugins="kms", **{name: raw})
    msg = str(info.value)
    assert name in msg and repr(raw) in msg and f"expected {allowed}" in msg


def test_float_settings_in_the_table(kms: None) -> None:
    table = settings_table_markdown()
    assert "| `kms_ratio` | float | `1.0` | a finite number >= 0.5 |" in table
    assert "| `kms_key` | str | *** |" in table


@pytest.mark.parametrize(
    ("kwargs", "wrong"),
    [
        ({"type": list}, "type list is not supported"),
        ({"type": dict}, "type dict is not supported"),
        ({"type": bytes}, "type bytes is not supported"),
        ({"type": str, "minimum": 1}, "minimum applies to int and float"),
        ({"type": int, "choices": ("1", "2")}, "choices apply to str"),
    ],
)
def test_unsupported_declarations_are_refused_when_declared(
    kwargs: dict[str, Any], wrong: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Setting("x_thing", default=None, doc="A setting.", **kwargs)
    assert "'x_thing'" in str(info.value) and wrong in str(info.value)


@pytest.fixture
def fresh_warnings() -> Any:
    runtime().warnings.clear()
    yield
    runtime().warnings.clear()


def checked(conninfo: str | None = None, adapter: Any = PG, **kw: Any) -> Any:
    """Parse, then check the connect timeout as the bg plugin does when it
    opens a connection."""
    config = parse_config(adapter, conninfo, kw)
    if "bg" in config.settings.plugins:
        check_connect_timeout(config)
    return config


def test_timeout_warning_psycopg(
    caplog: pytest.LogCaptureFixture, fresh_warnings: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    caplog.set_level(logging.WARNING, logger="bluegreen.bg")
    checked("host=h password=hunter2", bg_id="w1")
    checked("host=h", bg_id="w1")
    checked("host=h connect_timeout=0", bg_id="w2")
    checked("host=h connect_timeout=10", bg_id="w3")
    checked("host=h", plugins="", bg_id="w4")
    records = [r for r in caplog.records if r.name == "bluegreen.bg"]
    assert len(records) == 2
    assert all("non-zero connect timeout" in r.getMessage() for r in records)
    assert "w1" in records[0].getMessage() and "w2" in records[1].getMessage()
    assert "hunter2" not in caplog.text


def test_timeout_warning_env_and_pymysql_default(
    caplog: pytest.LogCaptureFixture, fresh_warnings: Any, monkeypatch: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="bluegreen.bg")
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "5")
    checked("host=h", bg_id="e1")
    checked(adapter=MY, host="h", bg_id="e2")  # PyMySQL defaults to 10 s
    assert not caplog.records
    checked(adapter=MY, host="h", connect_timeout=0, bg_id="e3")
    checked(
        adapter=adapter_for(__import__("mysql.connector").connector.connect), bg_id="e4"
    )
    assert len(caplog.records) == 2


# --------------------------------------------------------------------------
# Memoised parsing (the connect path of a pool)


def test_same_argument_objects_share_one_read_only_config() -> None:
    kw = {"host": "h", "port": 5432, "connect_timeout": 5, "bg_id": "memo-1"}
    first = parse_config(PG, None, dict(kw))
    again = parse_config(PG, None, dict(kw))
    assert again is first
    assert first.settings.bg_id == "memo-1"
    assert dict(first.params.kwargs) == {
        "host": "h",
        "port": 5432,
        "connect_timeout": 5,
    }
    with pytest.raises(TypeError):
        first.params.kwargs["host"] = "other"  # type: ignore[index]
    with pytest.raises(TypeError):
        first.params.kwargs.update(host="other")
    assert first.params.kwargs["host"] == "h"
    assert first.endpoint() is first.endpoint()
    assert first.endpoint().host == "h"


def test_equal_but_new_argument_objects_reach_the_driver_as_given() -> None:
    class Marker:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Marker)

        __hash__ = object.__hash__

    one, two = Marker(), Marker()
    host = "".join(["h", "ost"])
    first = parse_config(PG, None, {"host": "host", "context": one})
    second = parse_config(PG, None, {"host": host, "context": two})
    assert second is not first
    assert second.params.kwargs["context"] is two
    assert second.params.kwargs["host"] is host
    assert first.params.kwargs["context"] is one


def test_memo_keeps_errors_and_mutable_values() -> None:
    ssl = {"ca": "/ca.pem"}
    cfg = parse_config(MY, None, {"host": "h", "ssl": ssl, "connect_timeout": 3})
    assert cfg.params.kwargs["ssl"] is ssl
    assert (
        parse_config(MY, None, {"host": "h", "ssl": ssl, "connect_timeout": 3}) is cfg
    )
    for _ in range(2):  # an error is raised every time, never memoised
        with pytest.raises(ConfigurationError):
            parse_config(MY, None, {"host": "h", "bg_interval_high_ms": 0})
        with pytest.raises(ConfigurationError):
            parse_config(MY, None, {"host": "h", "plugin": "bg"})


def test_memoised_config_still_warns_after_reset(
    caplog: pytest.LogCaptureFixture, fresh_warnings: Any, monkeypatch: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="bluegreen.bg")
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "5")
    kw = {"bg_id": "memo-env"}
    checked("host=h", **kw)
    assert not caplog.records
    monkeypatch.delenv("PGCONNECT_TIMEOUT")
    checked("host=h", **kw)  # same objects, but the environment changed
    assert len(caplog.records) == 1
    runtime().warnings.clear()
    checked("host=h", **kw)
    checked("host=h", **kw)
    assert len(caplog.records) == 2


def test_adapters_are_reused_per_target() -> None:
    assert adapter_for(psycopg.connect) is adapter_for(psycopg.connect)
    assert adapter_for(pymysql.connect) is MY
    spelled_anew = psycopg.Connection.connect
    adapter = adapter_for(spelled_anew)
    assert adapter.target is spelled_anew
    assert adapter_for(psycopg.connect) is PG
