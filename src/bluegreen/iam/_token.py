"""RDS IAM authentication tokens: making, signing and caching them.

An RDS IAM token is a SigV4 presigned URL for the service ``rds-db``: the
request ``GET https://<host>:<port>/?Action=connect&DBUser=<user>``, signed
with the caller's AWS credentials and valid for 15 minutes, with the
``https://`` prefix dropped. The database checks the signature when the token
is given as the password; the token itself never reaches AWS from here, so
making one needs credentials but no network.

botocore does the signing and finds the credentials (environment variables,
shared files, profiles, container and instance metadata). It is imported only
when a token is made: importing this module costs nothing for applications
that do not use the iam plugin.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ConfigurationError, OperationalError
from ..rds import parse

__all__ = [
    "REFRESH_BEFORE_S",
    "TOKEN_LIFETIME_S",
    "IamTokenError",
    "TokenSource",
    "generate_token",
    "region_of",
]

#: How long a token is valid, in seconds (the most RDS accepts).
TOKEN_LIFETIME_S = 900

#: A cached token is replaced once it has less than this many seconds left.
REFRESH_BEFORE_S = 60

#: The most tokens a :class:`TokenSource` keeps; beyond it the cache restarts.
_MAX_CACHED = 1024

_SERVICE = "rds-db"
_SIGV4_TIME_FORMAT = "%Y%m%dT%H%M%SZ"

_INSTALL_HINT = "the iam plugin needs botocore: pip install 'bluegreen[iam]'"

_CREDENTIAL_SOURCES = (
    "botocore looks in the environment variables AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN), the shared credentials "
    "and config files (~/.aws/credentials, ~/.aws/config) for the profile "
    "named by the iam_profile setting or AWS_PROFILE, and the container and "
    "instance metadata services"
)


class IamTokenError(OperationalError):
    """An IAM authentication token could not be made.

    The cause is in the message: no credentials found, an unknown profile, no
    region, or a credential provider that failed. Messages never contain
    secret values.
    """


def region_of(host: str) -> str | None:
    """The AWS region in an RDS endpoint name; None for any other host.

    ``mydb.cluster-abc123.eu-west-1.rds.amazonaws.com`` gives ``eu-west-1``;
    China and GovCloud names work too. IP addresses and names outside RDS
    give None.
    """
    name = parse(host)
    return None if name is None else name.region


def _botocore(module: str) -> Any:
    """Import ``botocore.<module>``; ConfigurationError if botocore is missing.

    The import goes through importlib so that the result is typed ``Any``:
    botocore ships no type information, and whether stubs are installed
    must not change what mypy says about this module.
    """
    try:
        return importlib.import_module(f"botocore.{module}")
    except ImportError as exc:
        raise ConfigurationError(_INSTALL_HINT) from exc


@functools.cache
def _fixed_time_signer() -> Any:
    """botocore's query-string SigV4 signer, with the signing time given.

    botocore reads the clock inside ``add_auth`` and stores the result in the
    request's context; this subclass replaces it, for its own request only,
    just before the query string and signature are computed from it. Nothing
    global is patched, so concurrent signing in other threads is unaffected.
    """
    base: Any = _botocore("auth").SigV4QueryAuth

    class FixedTimeQueryAuth(base):  # type: ignore[misc]
        def __init__(
            self,
            credentials: Any,
            region: str,
            expires: int,
            timestamp: str,
        ) -> None:
            super().__init__(credentials, _SERVICE, region, expires=expires)
            self._fixed_timestamp = timestamp

        def _modify_request_before_signing(self, request: Any) -> None:
            request.context["timestamp"] = self._fixed_timestamp
            super()._modify_request_before_signing(request)

    return FixedTimeQueryAuth


def _utc_timestamp(now: datetime.datetime | None) -> str:
    """``now`` (a naive value is taken as UTC; None: the current time) in
    the SigV4 format, ``20240102T030405Z``."""
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif now.tzinfo is not None:
        now = now.astimezone(datetime.timezone.utc)
    return now.strftime(_SIGV4_TIME_FORMAT)


def generate_token(
    *,
    host: str,
    port: int,
    user: str,
    region: str,
    credentials: Any,
    now: datetime.datetime | None = None,
) -> str:
    """An RDS IAM authentication token for ``user`` at ``host:port``.

    ``credentials`` is a botocore ``Credentials`` (a frozen snapshot is taken,
    so refreshable credentials refresh when due) or ``ReadOnlyCredentials``.
    ``now`` fixes the signing time (a naive value is UTC); without it the
    current time is used. The token is valid for :data:`TOKEN_LIFETIME_S`
    seconds from the signing time. Surrounding whitespace is stripped from
    ``host``; otherwise it is used as given.
    """
    frozen = getattr(credentials, "get_frozen_credentials", None)
    if callable(frozen):
        credentials = frozen()
    access_key = getattr(credentials, "access_key", None)
    secret_key = getattr(credentials, "secret_key", None)
    if not access_key or not secret_key:
        # Name only what is missing: never show any part of the values.
        missing = "access key id" if not access_key else "secret access key"
        raise IamTokenError(
            f"the AWS credentials have no {missing}: check the credential "
            "configuration of the iam plugin (iam_profile, AWS_PROFILE or the "
            "AWS_* environment variables)"
        )
    host = host.strip()
    signer_class = _fixed_time_signer()
    signer = signer_class(credentials, region, TOKEN_LIFETIME_S, _utc_timestamp(now))
    request = _botocore("awsrequest").AWSRequest(
        method="GET",
        url=f"https://{host}:{port}/",
        params={"Action": "connect", "DBUser": user},
    )
    signer.add_auth(request)
    url: str = request.prepare().url
    scheme = "https://"
    return url[len(scheme) :] if url.startswith(scheme) else url


def _default_session_factory(profile: str | None) -> Any:
    """A botocore session for ``profile`` (None: the default profile)."""
    return _botocore("session").Session(profile=profile)


class TokenSource:
    """Makes and caches IAM tokens for one credential configuration.

    ``profile`` names the AWS profile (None: botocore's default, which
    honours ``AWS_PROFILE``). ``session_factory(profile)`` makes the botocore
    session (tests pass a fake one); ``clock`` is read to age cached tokens.

    One token is cached per ``(host, port, user, region)``, as passed to
    :meth:`token`, and reused until it has less than :data:`REFRESH_BEFORE_S`
    seconds left. Cache hits take one short lock; making a token (which may
    resolve credentials, possibly over the network from a metadata service)
    happens under a second lock that cache hits never wait for, so one
    resolution serves every thread waiting for it.
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        session_factory: Callable[[str | None], Any] | None = None,
    ) -> None:
        self.profile = profile
        self._clock = clock
        self._session_factory = session_factory or _default_session_factory
        #: Tokens made so far (cache misses), for tests and diagnostics.
        self.tokens_made = 0
        self._new_locks()
        self._cache: dict[tuple[str, int, str, str | None], tuple[str, float]] = {}
        self._session: Any = None
        self._credentials: Any = None

    def _new_locks(self) -> None:
        # _lock guards _cache, _session and _credentials and is never held
        # for long. _make_lock serializes token making; it is taken before
        # _lock, never after it.
        self._lock = threading.Lock()
        self._make_lock = threading.Lock()

    def token(self, host: str, port: int, user: str, region: str | None = None) -> str:
        """A token for ``user`` at ``host:port``: cached, or made now.

        Without ``region``, the region comes from the RDS host name, then
        from the session's configuration (``AWS_DEFAULT_REGION``, the
        profile's ``region``); IamTokenError if there is none, or if no
        credentials can be found.
        """
        host = host.strip()
        key = (host, port, user, region)
        cached = self._cached(key)
        if cached is not None:
            return cached
        with self._make_lock:
            # Another thread may have made it while this one waited.
            cached = self._cached(key)
            if cached is not None:
                return cached
            session = self._get_session()
            signing_region = region or region_of(host) or self._session_region(session)
            credentials = self._get_credentials(session)
            issued = self._clock()
            token = self._sign(host, port, user, signing_region, credentials)
            with self._lock:
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[key] = (token, issued)
                self.tokens_made += 1
            return token

    def clear(self) -> None:
        """Forget the cached tokens, the session and its credentials."""
        with self._lock:
            self._cache.clear()
            self._session = None
            self._credentials = None

    def after_fork_in_child(self) -> None:
        """Start over in a forked child: new locks, nothing cached.

        A lock held by another thread at fork time is never released in the
        child, and a botocore session may hold the parent's connections.
        """
        self._new_locks()
        self._cache = {}
        self._session = None
        self._credentials = None

    def _cached(self, key: tuple[str, int, str, str | None]) -> str | None:
        """The cached token for ``key`` unless it is due for replacement."""
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                return None
            token, issued = found
            if self._clock() < issued + TOKEN_LIFETIME_S - REFRESH_BEFORE_S:
                return token
            del self._cache[key]
            return None

    def _get_session(self) -> Any:
        """The botocore session, made on first use; ``_make_lock`` is held."""
        with self._lock:
            session = self._session
        if session is None:
            with self._botocore_errors("could not start an AWS session"):
                session = self._session_factory(self.profile)
            with self._lock:
                self._session = session
        return session

    def _session_region(self, session: Any) -> str:
        """The region configured for the session; IamTokenError if none."""
        with self._botocore_errors("could not read the AWS configuration"):
            region = session.get_config_variable("region")
        if not region:
            raise IamTokenError(
                "no AWS region for the IAM token: the host name is not an RDS "
                "endpoint name, so set the iam_region setting (or "
                "AWS_DEFAULT_REGION, or a region in the AWS profile)"
            )
        return str(region)

    def _get_credentials(self, session: Any) -> Any:
        """The session's credentials, found once; ``_make_lock`` is held."""
        with self._lock:
            credentials = self._credentials
        if credentials is None:
            with self._botocore_errors("could not get AWS credentials"):
                credentials = session.get_credentials()
            if credentials is None:
                raise IamTokenError(
                    "no AWS credentials found for the IAM token: " + _CREDENTIAL_SOURCES
                )
            with self._lock:
                self._credentials = credentials
        return credentials

    def _sign(
        self, host: str, port: int, user: str, region: str, credentials: Any
    ) -> str:
        """:func:`generate_token`, with botocore's errors turned into ours."""
        # Refreshable credentials refresh here, when they are frozen.
        with self._botocore_errors("could not sign the IAM token"):
            return generate_token(
                host=host, port=port, user=user, region=region, credentials=credentials
            )

    @contextlib.contextmanager
    def _botocore_errors(self, doing: str) -> Iterator[None]:
        """Turn botocore's errors into IamTokenError (``doing`` leads the
        message). botocore's messages carry no secret values."""
        exceptions = _botocore("exceptions")
        try:
            yield
        except exceptions.ProfileNotFound as exc:
            profile = exc.kwargs.get("profile", self.profile)
            raise IamTokenError(
                f"the AWS profile {profile!r} does not exist: check the "
                "iam_profile setting (or AWS_PROFILE) against the profiles in "
                "~/.aws/config and ~/.aws/credentials"
            ) from exc
        except exceptions.BotoCoreError as exc:
            raise IamTokenError(
                f"{doing} for the IAM token: {type(exc).__name__}: {exc}"
            ) from exc
