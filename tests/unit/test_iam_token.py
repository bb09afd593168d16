"""Unit tests of bluegreen.iam._token: RDS IAM token signing and caching."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.exceptions
import botocore.session
import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials

from bluegreen.errors import OperationalError
from bluegreen.iam import _token
from bluegreen.iam._token import (
    REFRESH_BEFORE_S,
    TOKEN_LIFETIME_S,
    IamTokenError,
    TokenSource,
    generate_token,
    region_of,
)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE/session+token=="
CREDS = Credentials(AKID, SECRET)
SESSION_CREDS = Credentials(AKID, SECRET, SESSION_TOKEN)

NOW = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
HOST = "mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com"
REGION = "us-east-1"

SRC = Path(__file__).resolve().parents[2] / "src"


def token_for(**changes: Any) -> str:
    """generate_token with the test defaults, some of them changed."""
    args: dict[str, Any] = {
        "host": HOST,
        "port": 5432,
        "user": "app",
        "region": REGION,
        "credentials": CREDS,
        "now": NOW,
    }
    args.update(changes)
    return generate_token(**args)


def split_token(token: str) -> tuple[urllib.parse.SplitResult, dict[str, str]]:
    """The URL parts and the (single-valued) query parameters of a token."""
    assert not token.startswith("https://")
    url = urllib.parse.urlsplit("https://" + token)
    query = urllib.parse.parse_qs(url.query, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values())
    return url, {name: values[0] for name, values in query.items()}


def assert_no_secret(text: str) -> None:
    for secret in (SECRET, SESSION_TOKEN):
        assert secret not in text
        assert urllib.parse.quote(secret, safe="") not in text


def isolate_from_aws_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a real botocore session away from this machine's AWS setup."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/bluegreen-test/config")
    monkeypatch.setenv(
        "AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/bluegreen-test/credentials"
    )
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# -- generate_token -----------------------------------------------------------


@pytest.mark.parametrize("credentials", [CREDS, SESSION_CREDS])
def test_token_is_a_presigned_connect_url(credentials: Credentials) -> None:
    token = token_for(credentials=credentials)
    url, query = split_token(token)
    assert url.hostname == HOST
    assert url.port == 5432
    assert url.path == "/"
    assert query["Action"] == "connect"
    assert query["DBUser"] == "app"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"] == f"{AKID}/20240102/{REGION}/rds-db/aws4_request"
    assert query["X-Amz-Date"] == "20240102T030405Z"
    assert query["X-Amz-Expires"] == str(TOKEN_LIFETIME_S) == "900"
    assert query["X-Amz-SignedHeaders"] == "host"
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"])
    if credentials.token:
        assert query["X-Amz-Security-Token"] == SESSION_TOKEN
    else:
        assert "X-Amz-Security-Token" not in query
    # The operation comes first, the signature last.
    assert token.startswith(f"{HOST}:5432/?Action=connect&DBUser=app&X-Amz-")
    assert token.endswith("&X-Amz-Signature=" + query["X-Amz-Signature"])
    assert SECRET not in token
    assert urllib.parse.quote(SECRET, safe="") not in token


def test_same_inputs_same_token() -> None:
    assert token_for() == token_for()
    assert token_for(credentials=SESSION_CREDS) == token_for(
        credentials=SESSION_CREDS.get_frozen_credentials()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"host": "other.cluster-abc123xyz.us-east-1.rds.amazonaws.com"},
        {"port": 5433},
        {"user": "admin"},
        {"region": "us-west-2"},
        {"now": NOW + datetime.timedelta(seconds=1)},
        {"credentials": Credentials(AKID, SECRET + "x")},
        {"credentials": SESSION_CREDS},
    ],
)
def test_any_other_input_changes_the_signature(change: dict[str, Any]) -> None:
    _, base = split_token(token_for())
    _, other = split_token(token_for(**change))
    assert other["X-Amz-Signature"] != base["X-Amz-Signature"]


def test_naive_and_other_time_zones_mean_the_same_instant() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert token_for(now=NOW.replace(tzinfo=None)) == token_for()
    assert token_for(now=NOW.astimezone(plus_two)) == token_for()


def test_without_now_the_current_time_is_signed() -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    _, query = split_token(token_for(now=None))
    after = datetime.datetime.now(datetime.timezone.utc)
    signed = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    assert before <= signed <= after


def test_user_and_host_are_used_as_given() -> None:
    user = "app user+x/é"
    url, query = split_token(token_for(user=user, host=f"  {HOST}\n", port=3306))
    assert query["DBUser"] == user
    assert url.hostname == HOST
    assert url.port == 3306


def test_refreshable_credentials_are_frozen_for_each_signing() -> None:
    class Refreshing:
        frozen = 0

        def get_frozen_credentials(self) -> ReadOnlyCredentials:
            self.frozen += 1
            return ReadOnlyCredentials(AKID, SECRET, None)

    credentials = Refreshing()
    assert token_for(credentials=credentials) == token_for()
    assert credentials.frozen == 1


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [
        (ReadOnlyCredentials(AKID, "", None), "secret access key"),
        (ReadOnlyCredentials("", SECRET, None), "access key id"),
        (ReadOnlyCredentials(None, None, None), "access key id"),
    ],
)
def test_incomplete_credentials(credentials: Any, missing: str) -> None:
    with pytest.raises(IamTokenError, match=missing) as info:
        token_for(credentials=credentials)
    assert_no_secret(str(info.value))
    assert AKID not in str(info.value)


@pytest.fixture(scope="module")
def rds_clients() -> Iterator[dict[str | None, Any]]:
    """botocore RDS clients, by session token."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_from_aws_config(monkeypatch)
        session = botocore.session.Session()
        yield {
            session_token: session.create_client(
                "rds",
                region_name="eu-central-1",
                aws_access_key_id=AKID,
                aws_secret_access_key=SECRET,
                aws_session_token=session_token,
            )
            for session_token in (None, SESSION_TOKEN)
        }


@pytest.mark.parametrize(
    ("host", "port", "user", "region"),
    [
        (HOST, 5432, "app", REGION),
        ("mydb.abc123xyz.rds.cn-north-1.amazonaws.com.cn", 3306, "admin", None),
        ("10.1.2.3", 5432, "app user+x/é", "us-gov-west-1"),
    ],
)
@pytest.mark.parametrize("session_token", [None, SESSION_TOKEN])
def test_same_token_as_botocores_generate_db_auth_token(
    rds_clients: dict[str | None, Any],
    host: str,
    port: int,
    user: str,
    region: str | None,
    session_token: str | None,
) -> None:
    """A known answer: botocore's own public API, with its clock frozen."""
    client = rds_clients[session_token]
    frozen_now = NOW.replace(tzinfo=None)  # botocore's clock gives naive UTC
    with mock.patch("botocore.auth.get_current_datetime", return_value=frozen_now):
        expected = client.generate_db_auth_token(host, port, user, Region=region)
    ours = generate_token(
        host=host,
        port=port,
        user=user,
        region=region or "eu-central-1",
        credentials=Credentials(AKID, SECRET, session_token),
        now=NOW,
    )
    assert ours == expected


# -- region_of ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "region"),
    [
        (HOST, "us-east-1"),
        ("mydb.cluster-ro-abc123xyz.eu-west-3.rds.amazonaws.com", "eu-west-3"),
        ("mydb-instance-1.abc123xyz.ap-south-1.rds.amazonaws.com", "ap-south-1"),
        ("mydb-green-k7dd3e.abc123xyz.us-east-2.rds.amazonaws.com", "us-east-2"),
        ("myproxy.proxy-abc123xyz.us-west-2.rds.amazonaws.com", "us-west-2"),
        ("mydb.c8abcdef0123.rds.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        (
            "mydb.cluster-c8abcdef0123.cn-northwest-1.rds.amazonaws.com.cn",
            "cn-northwest-1",
        ),
        ("mydb.abc123xyz.us-gov-west-1.rds.amazonaws.com", "us-gov-west-1"),
        ("mydb.abc123xyz.us-gov-east-1.rds-fips.amazonaws.com", "us-gov-east-1"),
        ("MyDB.Cluster-ABC123XYZ.US-EAST-1.RDS.AMAZONAWS.COM.", "us-east-1"),
    ],
)
def test_region_of_rds_names(host: str, region: str) -> None:
    assert region_of(host) == region


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.5",
        "::1",
        "localhost",
        "db.example.com",
        "mydb.abc123xyz.us-east-1.rds.amazonaws.com.evil.com",
        "",
    ],
)
def test_region_of_other_hosts_is_none(host: str) -> None:
    assert region_of(host) is None


# -- TokenSource --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSession:
    """The two methods of a botocore session that TokenSource uses."""

    def __init__(
        self,
        credentials: Any = CREDS,
        region: str | None = None,
        error: Exception | None = None,
        delay: threading.Event | None = None,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.error = error
        self.delay = delay
        self.credential_calls = 0

    def get_credentials(self) -> Any:
        self.credential_calls += 1
        if self.delay is not None:
            self.delay.wait(5)
        if self.error is not None:
            raise self.error
        return self.credentials

    def get_config_variable(self, name: str) -> str | None:
        assert name == "region"
        return self.region


class Factory:
    """A session factory that records the profiles it was called with."""

    def __init__(self, session: FakeSession | None = None) -> None:
        self.session = session or FakeSession()
        self.profiles: list[str | None] = []

    def __call__(self, profile: str | None) -> FakeSession:
        self.profiles.append(profile)
        return self.session


def make_source(
    session: FakeSession | None = None, profile: str | None = None
) -> tuple[TokenSource, Factory, FakeClock]:
    factory = Factory(session)
    clock = FakeClock()
    source = TokenSource(profile=profile, clock=clock, session_factory=factory)
    return source, factory, clock


def credential_scope(token: str) -> str:
    return split_token(token)[1]["X-Amz-Credential"]


def test_cached_token_is_reused() -> None:
    source, factory, _ = make_source(profile="prod")
    first = source.token(HOST, 5432, "app")
    assert source.token(HOST, 5432, "app") == first
    assert source.token(f" {HOST} ", 5432, "app") == first
    assert source.tokens_made == 1
    assert factory.profiles == ["prod"]
    assert factory.session.credential_calls == 1
    _, query = split_token(first)
    assert query["DBUser"] == "app"


@pytest.mark.parametrize(
    "other",
    [
        (HOST, 5433, "app", None),
        (HOST, 5432, "admin", None),
        (HOST, 5432, "app", "us-west-2"),
        ("other.cluster-abc123xyz.us-east-1.rds.amazonaws.com", 5432, "app", None),
    ],
)
def test_other_key_makes_another_token(other: tuple[str, int, str, str | None]) -> None:
    source, factory, _ = make_source()
    first = source.token(HOST, 5432, "app")
    second = source.token(*other)
    assert second != first
    assert source.tokens_made == 2
    assert factory.session.credential_calls == 1  # found once, then kept
    assert source.token(*other) == second
    assert source.token(HOST, 5432, "app") == first
    assert source.tokens_made == 2


def test_token_is_replaced_before_it_expires() -> None:
    source, _, clock = make_source()
    source.token(HOST, 5432, "app")
    clock.now += TOKEN_LIFETIME_S - REFRESH_BEFORE_S - 0.5
    source.token(HOST, 5432, "app")
    assert source.tokens_made == 1
    clock.now += 0.5
    source.token(HOST, 5432, "app")
    assert source.tokens_made == 2
    clock.now += TOKEN_LIFETIME_S - REFRESH_BEFORE_S - 0.5
    source.token(HOST, 5432, "app")
    assert source.tokens_made == 2


def test_region_comes_from_the_argument_then_the_host_then_the_session() -> None:
    source, _, _ = make_source(FakeSession(region="eu-west-1"))
    assert "/us-east-1/" in credential_scope(source.token(HOST, 5432, "app"))
    explicit = source.token(HOST, 5432, "app", region="ap-south-1")
    assert "/ap-south-1/" in credential_scope(explicit)
    assert "/eu-west-1/" in credential_scope(source.token("10.0.0.5", 5432, "app"))


def test_missing_region_names_the_setting() -> None:
    source, _, _ = make_source(FakeSession(region=None))
    with pytest.raises(IamTokenError, match="iam_region") as info:
        source.token("10.0.0.5", 5432, "app")
    assert isinstance(info.value, OperationalError)
    assert source.tokens_made == 0


def test_missing_credentials_say_where_botocore_looks() -> None:
    source, _, _ = make_source(FakeSession(credentials=None))
    with pytest.raises(IamTokenError) as info:
        source.token(HOST, 5432, "app")
    message = str(info.value)
    for place in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "iam_profile"):
        assert place in message
    assert "AWS_PROFILE" in message
    assert "metadata" in message
    assert_no_secret(message)


def test_unknown_profile_from_the_factory() -> None:
    def factory(profile: str | None) -> Any:
        raise botocore.exceptions.ProfileNotFound(profile=profile)

    source = TokenSource(profile="nope", session_factory=factory)
    with pytest.raises(IamTokenError, match="iam_profile") as info:
        source.token(HOST, 5432, "app")
    assert "'nope'" in str(info.value)
    assert isinstance(info.value.__cause__, botocore.exceptions.ProfileNotFound)


def test_unknown_profile_with_a_real_session(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_from_aws_config(monkeypatch)
    with pytest.raises(IamTokenError, match=r"'no-such-profile'.*iam_profile"):
        TokenSource(profile="no-such-profile").token(HOST, 5432, "app")
    monkeypatch.setenv("AWS_PROFILE", "from-env")
    with pytest.raises(IamTokenError, match="'from-env'"):
        TokenSource().token("10.0.0.5", 5432, "app")


def test_real_session_with_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    isolate_from_aws_config(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    source = TokenSource()
    _, query = split_token(source.token("10.0.0.5", 5432, "app"))
    assert query["X-Amz-Credential"].startswith(f"{AKID}/")
    assert "/eu-north-1/rds-db/" in query["X-Amz-Credential"]
    assert query["X-Amz-Security-Token"] == SESSION_TOKEN


def test_real_session_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_from_aws_config(monkeypatch)
    with pytest.raises(IamTokenError, match="no AWS credentials"):
        TokenSource().token(HOST, 5432, "app")


def test_credential_provider_failure() -> None:
    error = botocore.exceptions.CredentialRetrievalError(
        provider="custom-process", error_msg="the process exited with status 1"
    )
    source, _, _ = make_source(FakeSession(error=error))
    with pytest.raises(IamTokenError) as info:
        source.token(HOST, 5432, "app")
    message = str(info.value)
    assert "CredentialRetrievalError" in message
    assert "exited with status 1" in message
    assert info.value.__cause__ is error


def test_no_error_message_shows_a_secret() -> None:
    cases: list[tuple[FakeSession, str]] = [
        (FakeSession(credentials=None), HOST),
        (FakeSession(credentials=ReadOnlyCredentials(AKID, "", None)), HOST),
        (FakeSession(credentials=ReadOnlyCredentials("", SECRET, SESSION_TOKEN)), HOST),
        (FakeSession(credentials=SESSION_CREDS, region=None), "10.0.0.5"),
    ]
    for session, host in cases:
        source, _, _ = make_source(session)
        with pytest.raises(IamTokenError) as info:
            source.token(host, 5432, "app")
        assert_no_secret(str(info.value))
        assert_no_secret(repr(info.value))


def test_concurrent_callers_share_one_token() -> None:
    release = threading.Event()
    source, factory, _ = make_source(FakeSession(delay=release))
    results: list[str] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait(5)
        results.append(source.token(HOST, 5432, "app"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8
    assert len(set(results)) == 1
    assert source.tokens_made == 1
    assert factory.session.credential_calls == 1


def test_clear_forgets_tokens_and_session() -> None:
    source, factory, _ = make_source()
    source.token(HOST, 5432, "app")
    source.clear()
    source.token(HOST, 5432, "app")
    assert source.tokens_made == 2
    assert factory.profiles == [None, None]
    assert factory.session.credential_calls == 2


def test_after_fork_in_child_starts_over() -> None:
    source, factory, _ = make_source()
    source.token(HOST, 5432, "app")
    # Locks held by other threads of the parent at fork time.
    assert source._lock.acquire()
    assert source._make_lock.acquire()
    source.after_fork_in_child()
    source.token(HOST, 5432, "app")
    assert source.tokens_made == 2
    assert len(factory.profiles) == 2


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_token, "_MAX_CACHED", 4)
    source, _, _ = make_source()
    for user in range(10):
        source.token(HOST, 5432, f"user{user}")
        assert len(source._cache) <= 4
    source.token(HOST, 5432, "user9")
    assert source.tokens_made == 10


def test_importing_the_module_does_not_import_botocore() -> None:
    code = (
        "import sys\n"
        "import bluegreen.iam._token\n"
        "assert 'botocore' not in sys.modules, 'botocore was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_botocore_missing_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bluegreen.errors import ConfigurationError

    _token._fixed_time_signer.cache_clear()
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'bluegreen\[iam\]'"):
        TokenSource().token(HOST, 5432, "app")
    with pytest.raises(ConfigurationError, match="needs botocore"):
        token_for()
    monkeypatch.undo()
    _token._fixed_time_signer.cache_clear()
    assert token_for()
