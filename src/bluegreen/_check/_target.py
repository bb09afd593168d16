"""What ``bluegreen check`` connects with: a driver, its connect function and
the arguments, built from a DSN, ``--set KEY=VALUE`` pairs and the
environment.

* psycopg takes a libpq conninfo string or a ``postgresql://`` URI as it is;
  libpq itself reads ``PGPASSWORD``, ``~/.pgpass`` and the other ``PG*``
  variables. Wrapper settings in the string are left for
  :func:`bluegreen.connect` to take out.
* The MySQL drivers take ``mysql://user[:password]@host[:port]/database?k=v``,
  turned into keyword arguments; the password may come from ``MYSQL_PWD``
  instead. Port, timeouts and a few flags are converted from text.

Besides the user's own arguments, the check sets what makes it quick and
safe: its own ``bg_id``, a 200 ms status polling interval and a connect
timeout, each only where the user has not set it. No I/O here except reading
the environment mapping it is given and importing the driver.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from .._conninfo import MASK, is_secret_key, is_uri, mask_conninfo, tokenize_conninfo
from ..bg._settings import MONITORING_PREFIXES
from ..errors import ProgrammingError
from ..settings import SETTINGS

__all__ = [
    "DEFAULT_BG_ID",
    "DRIVERS",
    "POLL_INTERVAL_MS",
    "Target",
    "build_target",
    "parse_assignment",
]

#: The drivers the check can use, by their command-line names.
DRIVERS = ("psycopg", "psycopg2", "pymysql", "mysql-connector", "mysqlclient")

#: The ``bg_id`` of the check's own monitors unless the user names one.
DEFAULT_BG_ID = "bluegreen-check"

#: Status polling interval (baseline and increased) unless the user sets them.
POLL_INTERVAL_MS = 200

#: The longest default connect timeout, in seconds.
MAX_CONNECT_TIMEOUT_S = 10

_MODULES = {
    "psycopg": ("psycopg", "connect", "postgres"),
    "psycopg2": ("psycopg2", "connect", "postgres"),
    "pymysql": ("pymysql", "connect", "mysql"),
    "mysql-connector": ("mysql.connector", "connect", "mysql"),
    "mysqlclient": ("MySQLdb", "connect", "mysql"),
}
_TIMEOUT_KEY = {
    "psycopg": "connect_timeout",
    "psycopg2": "connect_timeout",
    "pymysql": "connect_timeout",
    "mysql-connector": "connection_timeout",
    "mysqlclient": "connect_timeout",
}
_MYSQL_SCHEMES = {
    "mysql": None,
    "mariadb": None,
    "mysql+pymysql": "pymysql",
    "mariadb+pymysql": "pymysql",
    "mysql+mysqlconnector": "mysql-connector",
    "mariadb+mysqlconnector": "mysql-connector",
    "mysql+mysqldb": "mysqlclient",
    "mariadb+mysqldb": "mysqlclient",
}
_PG_SCHEMES = {
    "postgresql": None,
    "postgres": None,
    "postgresql+psycopg": "psycopg",
    "postgres+psycopg": "psycopg",
    "postgresql+psycopg2": "psycopg2",
    "postgres+psycopg2": "psycopg2",
}

# Driver arguments that are numbers or flags, not text. The MySQL drivers
# need Python values; a psycopg conninfo takes text anyway.
_MYSQL_INTS = frozenset({"port", "client_flag", "max_allowed_packet", "pool_size"})
_MYSQL_NUMBERS = frozenset({"connect_timeout", "read_timeout", "write_timeout"})
_MYSQL_INT_TIMEOUTS = frozenset({"connection_timeout"})
_MYSQL_BOOLS = frozenset(
    {
        "autocommit",
        "binary_prefix",
        "buffered",
        "compress",
        "consume_results",
        "get_warnings",
        "local_infile",
        "raise_on_warnings",
        "ssl_disabled",
        "ssl_verify_cert",
        "ssl_verify_identity",
        "use_pure",
        "use_unicode",
    }
)
_PSYCOPG_BOOLS = frozenset({"autocommit"})
_PSYCOPG_INTS = frozenset({"prepare_threshold"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Target:
    """One way to connect: the driver and what to pass to it."""

    #: One of :data:`DRIVERS`.
    driver: str
    #: The libpq string or URI (psycopg only), else None.
    conninfo: str | None
    #: Keyword arguments for :func:`bluegreen.connect`: driver arguments and
    #: wrapper settings.
    kwargs: Mapping[str, Any]
    #: The endpoint as the report shows it, secrets masked.
    shown: str
    #: Secret values given anywhere, to scrub from any text the check prints.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return f"Target(driver={self.driver!r}, endpoint={self.shown!r})"

    def connect_function(self) -> Callable[..., Any]:
        """The driver's connect function; a usage error if it is not installed."""
        module_name, attr, family = _MODULES[self.driver]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            extra = {"psycopg2": "psycopg2", "mysqlclient": "mysqlclient"}.get(
                self.driver, "postgres" if family == "postgres" else "mysql"
            )
            raise ProgrammingError(
                f"the {self.driver} driver is not installed ({exc}); install it "
                f'with: pip install "bluegreen[{extra}]"'
            ) from None
        function: Callable[..., Any] = getattr(module, attr)
        return function


def parse_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value); a usage error for anything else."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ProgrammingError(f"--set wants KEY=VALUE, not {_mask_pair(text)!r}")
    return key, value


def build_target(
    dsn: str | None,
    *,
    driver: str | None = None,
    sets: Sequence[str] = (),
    bg_id: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str],
    timeout: float = 15.0,
) -> Target:
    """The :class:`Target` for the command line's arguments.

    ``password`` is one typed at a prompt; ``environ`` is the environment
    (``MYSQL_PWD``, ``PGCONNECT_TIMEOUT``). ``timeout`` is the check's own
    timeout, which caps the default connect timeout. Raise
    :class:`~bluegreen.errors.ProgrammingError` for a malformed DSN, a DSN
    that does not suit the driver, or a malformed ``--set``.
    """
    driver = _driver_for(dsn, driver)
    family = _MODULES[driver][2]
    conninfo: str | None = None
    kwargs: dict[str, Any] = {}
    given: set[str] = set()  # every key the user gave, in any form
    secrets: list[str] = []
    if family == "postgres":
        conninfo = _pg_conninfo(dsn or "")
        for key, value in _conninfo_pairs(conninfo):
            given.add(key)
            if is_secret_key(key):
                secrets.append(value)
    elif dsn:
        kwargs.update(_mysql_url_kwargs(dsn, driver))
    for text in sets:
        key, value = parse_assignment(text)
        kwargs[key] = _convert(driver, key, value)
    given.update(kwargs)
    if password is not None:
        kwargs["password"] = password
    elif family == "mysql" and "password" not in given and "MYSQL_PWD" in environ:
        kwargs["password"] = environ["MYSQL_PWD"]
    secrets.extend(str(v) for k, v in kwargs.items() if is_secret_key(k))
    shown = _shown(driver, conninfo, kwargs)

    if bg_id is not None:
        kwargs["bg_id"] = bg_id
    elif "bg_id" not in given:
        kwargs["bg_id"] = DEFAULT_BG_ID
    for name in ("bg_interval_baseline_ms", "bg_interval_increased_ms"):
        if name not in given:
            kwargs[name] = POLL_INTERVAL_MS
    timeout_key = _TIMEOUT_KEY[driver]
    has_timeout = bool(given & {timeout_key, "connect_timeout", "connection_timeout"})
    if not has_timeout and not (
        family == "postgres" and "PGCONNECT_TIMEOUT" in environ
    ):
        # libpq counts a timeout of 1 as 2 seconds.
        kwargs[timeout_key] = max(2, min(MAX_CONNECT_TIMEOUT_S, math.ceil(timeout)))
    return Target(
        driver=driver,
        conninfo=conninfo,
        kwargs=kwargs,
        shown=shown,
        secrets=tuple(s for s in dict.fromkeys(secrets) if s),
    )


# -- the driver ------------------------------------------------------------------


def _scheme(dsn: str) -> str | None:
    """The URL scheme of ``dsn`` (lowercase), None for a libpq string."""
    head, sep, _ = dsn.partition("://")
    if not sep or "=" in head or " " in head:
        return None
    return head.strip().lower()


def _driver_for(dsn: str | None, driver: str | None) -> str:
    """The driver: ``driver`` if given (checked against the DSN), else the
    one the DSN's form implies (psycopg for a libpq string or none)."""
    if driver is not None and driver not in DRIVERS:
        raise ProgrammingError(
            f"unknown driver {driver!r}; use one of {', '.join(DRIVERS)}"
        )
    scheme = _scheme(dsn) if dsn else None
    if scheme is None or scheme in _PG_SCHEMES:
        implied = (_PG_SCHEMES[scheme] if scheme else None) or "psycopg"
        if driver in ("psycopg", "psycopg2") and not (scheme and _PG_SCHEMES[scheme]):
            implied = driver  # a libpq string or plain URI suits both
    elif scheme in _MYSQL_SCHEMES:
        implied = _MYSQL_SCHEMES[scheme] or "pymysql"
        if (
            driver in ("pymysql", "mysql-connector", "mysqlclient")
            and not _MYSQL_SCHEMES[scheme]
        ):
            implied = driver  # plain mysql:// suits every MySQL driver
    else:
        raise ProgrammingError(
            f"unsupported DSN scheme {scheme + '://'!r}: use a libpq string or a "
            "postgresql:// URI (psycopg, psycopg2), or a mysql:// URL (pymysql, "
            "mysql-connector, mysqlclient)"
        )
    if driver is not None and driver != implied:
        postgres = implied in ("psycopg", "psycopg2")
        if scheme is not None and "+" in scheme:
            what = f"a {scheme}:// URL"
        elif postgres and dsn:
            what = "a PostgreSQL connection string"
        elif postgres:
            what = "no DSN (the libpq environment)"
        else:
            what = f"a {scheme}:// URL"
        hint = (
            "; give the MySQL drivers a mysql://user@host:port/database URL"
            if postgres and _MODULES[driver][2] == "mysql"
            else ""
        )
        raise ProgrammingError(
            f"--driver {driver} does not take {what} (that is for {implied}){hint}"
        )
    return implied


# -- PostgreSQL ------------------------------------------------------------------


def _pg_conninfo(dsn: str) -> str:
    """The libpq string or URI, with a SQLAlchemy-style ``+psycopg`` dropped."""
    scheme = _scheme(dsn)
    if scheme is not None and "+" in scheme:
        return scheme.partition("+")[0] + dsn[len(scheme) :]
    return dsn


def _conninfo_pairs(conninfo: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of a libpq string or URI: the query parameters
    and the password of a URI, every pair of a string."""
    if not is_uri(conninfo):
        return tokenize_conninfo(conninfo)
    parts = urlsplit(conninfo)
    pairs: list[tuple[str, str]] = []
    netloc = parts.netloc
    if "@" in netloc:
        userinfo = netloc.rpartition("@")[0]
        _, colon, secret = userinfo.partition(":")
        if colon:
            pairs.append(("password", unquote(secret)))
    for segment in parts.query.split("&"):
        key, _, value = segment.partition("=")
        if key:
            pairs.append((unquote(key), unquote(value)))
    return pairs


# -- MySQL -----------------------------------------------------------------------


def _mysql_url_kwargs(url: str, driver: str) -> dict[str, Any]:
    """``mysql://user:password@host:port/database?key=value`` -> keywords."""
    # The errors never quote the URL: a misplaced part may be a password's.
    encode = (
        "percent-encode special characters in the user name and password "
        "('#' as %23, '/' as %2F, '?' as %3F, '@' as %40)"
    )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ProgrammingError(f"invalid mysql:// URL; {encode}") from None
    if parts.fragment:
        raise ProgrammingError(f"invalid mysql:// URL: it has a '#' part; {encode}")
    try:
        port = parts.port
    except ValueError:
        raise ProgrammingError(
            f"invalid mysql:// URL: the port is not a number from 0 to 65535; {encode}"
        ) from None
    kwargs: dict[str, Any] = {}
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if parts.hostname:
        kwargs["host"] = parts.hostname
    if port is not None:
        kwargs["port"] = port
    database = unquote(parts.path.lstrip("/"))
    if "/" in database:
        raise ProgrammingError(
            f"invalid mysql:// URL: the path must be one database name, not "
            f"{database!r}"
        )
    if database:
        kwargs["database"] = database
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        kwargs[key] = _convert(driver, key, value)
    return kwargs


def _convert(driver: str, key: str, value: str) -> Any:
    """A ``--set`` or URL value as the driver wants it. Wrapper settings stay
    text (bluegreen converts and validates them)."""
    name = key
    for prefix in MONITORING_PREFIXES:
        if key.startswith(prefix):
            name = key[len(prefix) :]
    if name in SETTINGS:
        return value
    if driver == "psycopg":
        if name in _PSYCOPG_BOOLS:
            return _flag(key, value)
        if name in _PSYCOPG_INTS:
            return _number(key, value, integer=True)
        return value
    if name in _MYSQL_BOOLS:
        return _flag(key, value)
    if name in _MYSQL_INTS or name in _MYSQL_INT_TIMEOUTS:
        return _number(key, value, integer=True)
    if name in _MYSQL_NUMBERS and driver == "mysqlclient":
        return _number(key, value, integer=True)  # whole seconds only
    if name in _MYSQL_NUMBERS:
        return _number(key, value, integer=False)
    return value


def _flag(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ProgrammingError(
        f"{key}: {value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)"
    )


def _number(key: str, value: str, *, integer: bool) -> int | float:
    try:
        return int(value)
    except ValueError:
        pass
    if not integer:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    what = "an integer" if integer else "a number"
    raise ProgrammingError(f"{key}: {value!r} is not {what}")


# -- display ---------------------------------------------------------------------


def _mask_pair(text: str) -> str:
    key, eq, _ = text.partition("=")
    return f"{key}={MASK}" if eq and is_secret_key(key.strip()) else text


def _shown(driver: str, conninfo: str | None, kwargs: Mapping[str, Any]) -> str:
    """The endpoint for the report, secrets masked, wrapper settings left out."""
    if conninfo is not None:
        text = mask_conninfo(conninfo) if conninfo else ""
        extra = [
            f"{k}={MASK if is_secret_key(k) else v}"
            for k, v in kwargs.items()
            if not _is_wrapper_key(k)
        ]
        if not text and not extra:
            return "(libpq defaults and the PG* environment variables)"
        if text and is_uri(text):
            return " ".join([text, *extra])
        return " ".join(p for p in [text, *extra] if p)
    return _mysql_url(kwargs)


def _mysql_url(kwargs: Mapping[str, Any]) -> str:
    """A ``mysql://`` URL for keyword arguments, the password masked."""
    user = kwargs.get("user")
    userinfo = ""
    if user is not None:
        userinfo = quote(str(user), safe="")
        if "password" in kwargs:
            userinfo += f":{MASK}"
        userinfo += "@"
    host = str(kwargs.get("host") or "localhost")
    if ":" in host:
        host = f"[{host}]"
    port = kwargs.get("port")
    netloc = f"{userinfo}{host}" + (f":{port}" if port is not None else "")
    path = "/" + quote(str(kwargs["database"]), safe="") if "database" in kwargs else ""
    skip = {"user", "password", "host", "port", "database"}
    query = "&".join(
        f"{k}={MASK if is_secret_key(k) else _text(v)}"
        for k, v in kwargs.items()
        if k not in skip and not _is_wrapper_key(k)
    )
    return urlunsplit(("mysql", netloc, path, query, ""))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_wrapper_key(key: str) -> bool:
    return key in SETTINGS or key.startswith(MONITORING_PREFIXES)
