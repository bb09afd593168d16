"""The PEP 249 exception tree of bluegreen and the wrapper's own errors.

Errors raised by the underlying driver are never wrapped or translated: an
application's ``except psycopg.OperationalError`` keeps working unchanged.
The classes here are raised only by bluegreen itself; each one belongs to the
PEP 249 category that describes it, so generic DB-API error handling (retry
on ``OperationalError``, report ``ProgrammingError``) does the right thing.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DataError",
    "DatabaseError",
    "Error",
    "GreenHostRejectedError",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "SwitchoverTimeoutError",
    "UnsupportedDriverError",
    "Warning",
]


class Warning(Exception):  # the name is mandated by PEP 249
    """Important warnings, as PEP 249 defines them."""


class Error(Exception):
    """Base class of every error bluegreen raises itself."""


class InterfaceError(Error):
    """An error in the wrapper's interface rather than in the database."""


class DatabaseError(Error):
    """An error related to the database."""


class DataError(DatabaseError):
    """A problem with the processed data."""


class OperationalError(DatabaseError):
    """An error in the database's operation, not under the caller's control.

    Switchover waits that run out of time belong here: they are transient and
    a retry after the switchover succeeds.
    """


class IntegrityError(DatabaseError):
    """The relational integrity of the database is affected."""


class InternalError(DatabaseError):
    """The database met an internal error."""


class ProgrammingError(DatabaseError):
    """A programming error: bad settings, bad arguments, misuse of the API."""


class NotSupportedError(DatabaseError):
    """A method or API the database or the wrapper does not support."""


class ConfigurationError(ProgrammingError):
    """A wrapper setting is unknown, of the wrong type or out of range.

    The message names the setting, the (masked, if secret) value and what is
    allowed.
    """


class UnsupportedDriverError(ProgrammingError):
    """``bluegreen.connect()`` was given a connect function it cannot wrap."""


class SwitchoverTimeoutError(OperationalError):
    """A call suspended during a blue/green switchover waited too long.

    The message says what was waited for and for how long. The call was not
    sent to the database, so it is safe to retry.
    """


class GreenHostRejectedError(OperationalError):
    """A new connection to a green host name was refused after the switchover.

    After the switchover the green names still resolve for a while, but they
    point at hosts that have been renamed; connecting there would bypass the
    new production names.
    """
