"""The PEP 249 exception tree of bluegreen and the wrapper's own errors.

Errors raised by the underlying driver are never wrapped or translated: an
application's ``except psycopg.OperationalError`` keeps working unchanged.
The classes here are raised only by bluegreen itself; each one belongs to the
PEP 249 category that describes it, so generic DB-API error handling (retry
on ``OperationalError``, report ``ProgrammingError``) does the right thing.

The errors raised on a connection (:class:`SwitchoverTimeoutError`,
:class:`GreenHostRejectedError`) are also the wrapped driver's own
``OperationalError``: :func:`driver_errors` builds, once per driver, a
subclass of both. ``except bluegreen.SwitchoverTimeoutError`` and ``except
psycopg.OperationalError`` both catch it, and frameworks that only translate
the driver's exceptions (SQLAlchemy wraps ``dbapi.Error`` subclasses into
``sqlalchemy.exc.OperationalError``) see it as the driver's.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

__all__ = [
    "ConfigurationError",
    "DataError",
    "DatabaseError",
    "DriverErrors",
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
    "driver_error",
    "driver_errors",
]

E = TypeVar("E", bound=Exception)


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


class DriverErrors(NamedTuple):
    """The wrapper's connection errors as subclasses of one driver's
    ``OperationalError`` (see :func:`driver_errors`)."""

    SwitchoverTimeoutError: type[SwitchoverTimeoutError]
    GreenHostRejectedError: type[GreenHostRejectedError]


def driver_errors(operational: type[Exception]) -> DriverErrors:
    """Subclasses of each wrapper connection error and of ``operational``
    (a driver's ``OperationalError``), made once per driver class.

    An instance is a :class:`SwitchoverTimeoutError` (or
    :class:`GreenHostRejectedError`) and an ``operational``: an
    application's or a framework's handling of either catches it.
    """

    def make(base: type[Any]) -> Any:
        return type(
            base.__name__,
            (base, operational),
            {
                "__module__": __name__,
                "__qualname__": base.__qualname__,
                "__doc__": f"{base.__doc__}\n\nAlso a {operational.__module__}."
                f"{operational.__qualname__}.",
            },
        )

    from ._runtime import runtime

    rt = runtime()
    found = rt.driver_errors.get(operational)
    if found is None:
        with rt.lock:
            found = rt.driver_errors.get(operational)
            if found is None:
                found = DriverErrors(
                    make(SwitchoverTimeoutError), make(GreenHostRejectedError)
                )
                rt.driver_errors[operational] = found
    assert isinstance(found, DriverErrors)
    return found


def driver_error(base: type[E], operational: type[Exception]) -> type[E]:
    """A subclass of the wrapper error ``base`` and of ``operational`` (a
    driver's ``OperationalError``), made once per pair: what a plugin
    raises on a connection so that the application and its frameworks see
    the driver's own error class (see :func:`driver_errors`)."""
    from ._runtime import runtime

    rt = runtime()
    key = (base, operational)
    found = rt.driver_errors.get(key)
    if found is None:
        with rt.lock:
            found = rt.driver_errors.get(key)
            if found is None:
                found = type(
                    base.__name__,
                    (base, operational),
                    {
                        "__module__": base.__module__,
                        "__qualname__": base.__qualname__,
                        "__doc__": f"{base.__doc__}\n\nAlso a "
                        f"{operational.__module__}.{operational.__qualname__}.",
                    },
                )
                rt.driver_errors[key] = found
    assert isinstance(found, type)
    return found  # type: ignore[return-value]
