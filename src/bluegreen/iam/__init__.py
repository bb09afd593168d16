"""The ``iam`` plugin: RDS IAM database authentication (``plugins="iam,bg"``).

Every driver connection, the application's and the ``bg`` plugin's
monitoring connections alike, is opened with a fresh IAM authentication
token as its password instead of a stored one. Tokens are signed with
botocore (``pip install 'bluegreen[iam]'``) from the standard credential
chain (environment, shared files, ``iam_profile``, container and instance
metadata), and cached per host, port, user and region until a minute
before their 15-minute expiry.

The token is signed for the host name the application connects with, also
while the ``bg`` plugin sends the connection to an IP address or, after the
switchover, to the green host that took that name: RDS checks the token
against the name the client was given, not against the address. A
monitoring connection's token is signed for the host it watches; for a
green host name, once the switchover has renamed the green hosts
(:func:`bluegreen.bg.current_name`), for the name without the
``-green-xxxxxx`` suffix, which is the name RDS knows that host by then.

Defaults that IAM authentication needs: ``sslmode=require`` on PostgreSQL
(psycopg, psycopg2; ``ssl="require"`` on asyncpg) unless the application
chose its own, and mysql-connector's ``auth_plugin="mysql_clear_password"``
(PyMySQL and aiomysql answer the server's request for the clear-text
plugin by themselves; mysqlclient needs ``LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN=1``
in the environment).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from .._runtime import runtime
from ..errors import ConfigurationError, driver_error
from ..pipeline import ConnectContext, Plugin, Target
from ..settings import Setting
from ._token import IamTokenError, TokenSource, region_of

__all__ = ["SETTINGS", "IamPlugin", "IamTokenError", "TokenSources", "token_sources"]

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "iam_region",
        str,
        None,
        "AWS region the tokens are signed for; when not set, taken from the "
        "RDS host name, then `AWS_REGION`, then botocore's configuration.",
        optional=True,
        shown_default="(host name)",
    ),
    Setting(
        "iam_profile",
        str,
        None,
        "AWS profile whose credentials sign the tokens; botocore's default "
        "credential chain when not set.",
        optional=True,
    ),
    Setting(
        "iam_host",
        str,
        None,
        "Host name the application's tokens are signed for, when it connects "
        "through another name (a CNAME of the RDS endpoint).",
        optional=True,
    ),
)


class TokenSources:
    """The process's token makers, one per AWS profile (the ``iam``
    plugin's state in the runtime; reset after fork)."""

    def __init__(self) -> None:
        self._sources: dict[str | None, TokenSource] = {}

    def get(self, profile: str | None) -> TokenSource:
        source = self._sources.get(profile)
        if source is None:
            source = self._sources.setdefault(profile, TokenSource(profile=profile))
        return source

    def clear(self) -> None:
        """Forget every cached token and session (tests; new credentials)."""
        for source in list(self._sources.values()):
            source.clear()

    def after_fork_in_child(self) -> None:
        """A botocore session may hold the parent's locks and connections."""
        for source in self._sources.values():
            source.after_fork_in_child()


def token_sources() -> TokenSources:
    """The runtime's token sources."""
    return runtime().state("iam", TokenSources)


class _Fixed:
    """What the plugin derives from a configuration alone (``ctx.memo``)."""

    __slots__ = ("error", "extra", "host", "profile", "region")

    def __init__(self, ctx: ConnectContext) -> None:
        settings = ctx.settings
        self.profile: str | None = settings.iam_profile
        self.region: str | None = settings.iam_region
        self.host: str | None = settings.iam_host
        self.extra: dict[str, Any] = _driver_defaults(ctx)
        self.error: type[IamTokenError] = driver_error(
            IamTokenError, ctx.adapter.operational_error()
        )


def _driver_defaults(ctx: ConnectContext) -> dict[str, Any]:
    """The driver arguments IAM authentication needs, where the
    application did not choose its own."""
    adapter = ctx.adapter
    name = adapter.name
    kwargs = ctx.params.kwargs
    if name in ("psycopg", "psycopg-async", "psycopg2"):
        chosen = adapter.effective(ctx.params).get("sslmode")
        if not (chosen or os.environ.get("PGSSLMODE")):
            return {"sslmode": "require"}
    elif name == "asyncpg":
        dsn = ctx.params.conninfo or str(kwargs.get("dsn") or "")
        chosen = "ssl" in kwargs or "sslmode" in dsn or os.environ.get("PGSSLMODE")
        if not chosen:
            return {"ssl": "require"}
    elif name == "mysql-connector" and "auth_plugin" not in kwargs:
        return {"auth_plugin": "mysql_clear_password"}
    return {}


class IamPlugin(Plugin):
    """RDS IAM database authentication; see the module docstring."""

    code = "iam"
    settings: ClassVar[tuple[Setting, ...]] = SETTINGS

    @classmethod
    def _fixed(cls, ctx: ConnectContext) -> _Fixed:
        fixed: _Fixed | None = ctx.memo.get("iam")
        if fixed is None:
            fixed = ctx.memo["iam"] = _Fixed(ctx)
        return fixed

    @classmethod
    def signing(cls, ctx: ConnectContext, target: Target) -> tuple[str, int, str]:
        """The host, port and user a token for ``target`` is signed for."""
        fixed = cls._fixed(ctx)
        host = target.host
        if not target.opener and fixed.host:
            host = fixed.host
        if not host or host.startswith("/"):
            raise ConfigurationError(
                "the iam plugin needs the database's host name (a token is "
                "signed for it), but the connection has none: connect with "
                "the RDS endpoint's name, or set iam_host"
            )
        from .. import bg

        host = bg.current_name(host.strip().lower())
        from ..bg._hosts import is_ip

        if is_ip(host):
            raise ConfigurationError(
                f"the iam plugin signs tokens for a host name, and {host!r} is "
                "an IP address: RDS would refuse the token. Connect with the "
                "RDS endpoint's name, or set iam_host to it"
            )
        user = target.user
        if not user:
            raise ConfigurationError(
                "the iam plugin needs the database user name (the token is "
                "signed for it): pass user=..."
            )
        return host, target.port, user

    @classmethod
    def credentials(
        cls, ctx: ConnectContext, target: Target
    ) -> Mapping[str, Any] | None:
        fixed = cls._fixed(ctx)
        host, port, user = cls.signing(ctx, target)
        region = fixed.region or region_of(host) or os.environ.get("AWS_REGION")
        try:
            token = token_sources().get(fixed.profile).token(host, port, user, region)
        except IamTokenError as exc:
            raise fixed.error(str(exc)) from exc
        return {**fixed.extra, "password": token}

    @classmethod
    async def credentials_async(
        cls, ctx: ConnectContext, target: Target
    ) -> Mapping[str, Any] | None:
        """:meth:`credentials` on the loop's executor: resolving
        credentials may wait for the instance metadata service."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, cls.credentials, ctx, target)
