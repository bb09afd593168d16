"""The libpq conninfo tokenizer, wrapper-parameter extraction and secret masking."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from bluegreen import ProgrammingError
from bluegreen._conninfo import (
    is_secret_key,
    mask_conninfo,
    split_conninfo,
    tokenize_conninfo,
)


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("", []),
        ("   ", []),
        ("host=a port=5432", [("host", "a"), ("port", "5432")]),
        (
            "host = a   port= 1 dbname =x",
            [("host", "a"), ("port", "1"), ("dbname", "x")],
        ),
        ("password='a b c'", [("password", "a b c")]),
        ("password='it\\'s' user=u", [("password", "it's"), ("user", "u")]),
        ("password='back\\\\slash'", [("password", "back\\slash")]),
        ("password=un\\ quoted", [("password", "un quoted")]),
        ("options='-c a=b' x=''", [("options", "-c a=b"), ("x", "")]),
        ("blue-green-monitoring-user=m", [("blue-green-monitoring-user", "m")]),
    ],
)
def test_tokenizer(text: str, pairs: list[tuple[str, str]]) -> None:
    assert tokenize_conninfo(text) == pairs


@pytest.mark.parametrize(
    "text",
    ["host=a port=5432 options='-c x=y' password='a\\'b c'", "dbname='my db' user=u"],
)
def test_tokenizer_agrees_with_libpq(text: str) -> None:
    assert dict(tokenize_conninfo(text)) == conninfo_to_dict(text)


@pytest.mark.parametrize("text", ["host", "host=a port", "password='open"])
def test_tokenizer_errors_do_not_show_values(text: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        tokenize_conninfo(text + " secretvalue")
    assert "secretvalue" not in str(info.value)


def test_split_key_value_rebuilds_with_libpq_quoting() -> None:
    rest, taken = split_conninfo(
        "host=h bg_id=7 password='a b\\'c'", lambda k: k.startswith("bg_")
    )
    assert taken == [("bg_id", "7")]
    assert conninfo_to_dict(rest) == {"host": "h", "password": "a b'c"}


def test_split_nothing_taken_returns_same_text() -> None:
    text = "host=h  bgx=1"
    rest, taken = split_conninfo(text, lambda k: k == "bg_id")
    assert rest is text and taken == []


def test_split_everything_taken() -> None:
    assert split_conninfo("bg_id=1", lambda k: True) == ("", [("bg_id", "1")])


def test_split_uri() -> None:
    uri = "postgres://h/db?bg_id=x%2Fy&sslmode=disable&bg_interval_high_ms=10"
    rest, taken = split_conninfo(uri, lambda k: k.startswith("bg_"))
    assert rest == "postgres://h/db?sslmode=disable"
    assert taken == [("bg_id", "x/y"), ("bg_interval_high_ms", "10")]


def test_split_uri_without_query() -> None:
    uri = "postgresql://u:p@h:5432/db"
    assert split_conninfo(uri, lambda k: True) == (uri, [])


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "passwd",
        "sslpassword",
        "token",
        "auth_token",
        "client_secret",
        "db_password_file",
    ],
)
def test_secret_keys(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["user", "host", "passfile", "sslkey", "port"])
def test_not_secret_keys(name: str) -> None:
    assert not is_secret_key(name)


def test_mask_conninfo_key_value() -> None:
    masked = mask_conninfo("host=h password='top secret' sslpassword=x2 user=u")
    assert "top secret" not in masked and "x2" not in masked
    assert "host=h" in masked and "user=u" in masked and masked.count("***") == 2


def test_mask_conninfo_uri() -> None:
    masked = mask_conninfo("postgresql://me:pw%21@h:1,g:2/db?password=q&sslmode=x")
    assert masked == "postgresql://me:***@h:1,g:2/db?password=***&sslmode=x"


@pytest.mark.parametrize(
    ("uri", "secret", "expected"),
    [
        # libpq reads an unencoded "?" or "#" before the "@" as password...
        ("postgresql://me:pa?ss@h/db", "pa?ss", "postgresql://me:***@h/db"),
        (
            "postgresql://me:p#w@h/db?sslmode=require",
            "p#w",
            "postgresql://me:***@h/db?sslmode=require",
        ),
        # ...and a "#" in a query value as part of the value (no fragment).
        (
            "postgresql://h/db?password=a#b&sslmode=x",
            "a#b",
            "postgresql://h/db?password=***&sslmode=x",
        ),
    ],
)
def test_mask_conninfo_uri_with_libpq_delimiters(
    uri: str, secret: str, expected: str
) -> None:
    assert conninfo_to_dict(uri)["password"] == secret
    assert mask_conninfo(uri) == expected


def test_mask_unparsable_conninfo_shows_nothing() -> None:
    assert "hunter2" not in mask_conninfo("password='hunter2")
