"""Django's PostgreSQL backend with its connections opened by bluegreen.

``ENGINE = "bluegreen.django.postgresql"``. The driver is the one Django's
own backend chose: psycopg 3 when it is installed, psycopg2 otherwise.
Django passes ``OPTIONS`` to the connect call with the other connection
parameters; bluegreen takes its settings (``bg_id``, ``plugins``, ...) out
of them, validates them and hands the rest to the driver.

When a switchover drops an idle connection, bluegreen reopens it and
carries over what the driver knows of the session (autocommit, isolation
level, time zone, adapters or psycopg2's type casters, ...); this backend
adds the rest of Django's session setup through ``bg_on_reconnect`` (then
the application's own ``bg_on_reconnect``, if ``OPTIONS`` gives one): the
role of ``OPTIONS["assume_role"]``.

Django's connection pool (``OPTIONS["pool"]``, psycopg 3, Django 5.1 and
later) stays Django's psycopg_pool ``ConnectionPool``, made with
``connection_class=bluegreen.pool.PsycopgPoolConnection`` so that every
pooled connection is a bluegreen connection. The pool connects in its own
threads, where a bad setting would only be logged and retried until
``getconn()`` gives up, so the settings are validated before the pool is
made.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base as django_base

from ... import connect, connection_proxy
from ...drivers import adapter_for
from ...settings import parse_config
from .._common import async_unsafe, chain_on_reconnect

__all__ = ["DatabaseWrapper"]

#: The driver module Django's backend uses (psycopg or psycopg2).
Database = django_base.Database
is_psycopg3: bool = django_base.is_psycopg3
#: Django 5.1 added ``OPTIONS["pool"]``.
_HAS_POOL = hasattr(django_base.DatabaseWrapper, "pool")


class DatabaseWrapper(django_base.DatabaseWrapper):  # type: ignore[misc]
    """Django's PostgreSQL ``DatabaseWrapper``; only opening a connection
    differs (and setting up one that bluegreen reopens)."""

    def get_connection_params(self) -> dict[str, Any]:
        """Django's connection parameters; with ``OPTIONS["assume_role"]``,
        ``bg_on_reconnect`` set to assume the role again on a reopened
        connection (pooled connections get it too: Django's pool connects
        with these parameters)."""
        params: dict[str, Any] = super().get_connection_params()
        role = self.settings_dict["OPTIONS"].get("assume_role")
        if role:
            chain_on_reconnect(params, functools.partial(_set_up_again, role=role))
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Open ``bluegreen.connect(Database.connect, **conn_params)``, then
        set it up as Django's own backend does: the isolation level named in
        ``OPTIONS``, the cursor class where Django sets it after connecting
        (4.2), and psycopg2's JSONB loader."""
        if _HAS_POOL and self.pool is not None:
            # Django takes it from its pool, whose connections are bluegreen's.
            return super().get_new_connection(conn_params)
        explicit = self._isolation_level_from_options()
        connection = connect(Database.connect, **conn_params)
        if explicit:
            connection.isolation_level = self.isolation_level
        if "cursor_factory" not in conn_params:
            connection.cursor_factory = _cursor_class(self.settings_dict["OPTIONS"])
        if not is_psycopg3:
            _register_jsonb_loader(connection)
        return connection

    def _isolation_level_from_options(self) -> bool:
        """Set ``self.isolation_level`` from ``OPTIONS["isolation_level"]``
        (READ COMMITTED when absent), as Django's own method does before it
        connects; True when ``OPTIONS`` names one, which the connection
        then gets."""
        options = self.settings_dict["OPTIONS"]
        if "isolation_level" not in options:
            self.isolation_level = django_base.IsolationLevel.READ_COMMITTED
            return False
        value = options["isolation_level"]
        try:
            self.isolation_level = django_base.IsolationLevel(value)
        except ValueError:
            raise ImproperlyConfigured(
                f"Invalid transaction isolation level {value!r} in OPTIONS: use "
                "one of the psycopg.IsolationLevel values."
            ) from None
        return True

    if _HAS_POOL:

        @property
        def pool(self) -> Any:
            """Django's pool, its connections opened through bluegreen."""
            if (
                is_psycopg3
                and self.alias != NO_DB_ALIAS
                and self.alias not in self._connection_pools
                and self.settings_dict["OPTIONS"].get("pool")
            ):
                self._prepare_pool_options()
            return super().pool

        def _prepare_pool_options(self) -> None:
            """Put bluegreen's connection class into ``OPTIONS["pool"]`` (a
            dict of ``ConnectionPool`` arguments, or True) and validate the
            settings the pool's connections will be opened with."""
            from ...pool import PsycopgPoolConnection

            options = self.settings_dict["OPTIONS"]
            wanted = options["pool"]
            if wanted is True:
                pool_options: dict[str, Any] = {}
            elif isinstance(wanted, Mapping):
                pool_options = dict(wanted)
            else:
                raise ImproperlyConfigured(
                    f"OPTIONS['pool'] is {wanted!r}: give True or a dict of "
                    "psycopg_pool.ConnectionPool arguments."
                )
            cls = pool_options.setdefault("connection_class", PsycopgPoolConnection)
            if not (isinstance(cls, type) and issubclass(cls, PsycopgPoolConnection)):
                raise ImproperlyConfigured(
                    f"OPTIONS['pool']['connection_class'] is {cls!r}: the "
                    "bluegreen.django.postgresql backend needs "
                    "bluegreen.pool.PsycopgPoolConnection (the default) or a "
                    "subclass, or the pool's connections would bypass bluegreen."
                )
            params = self.get_connection_params()
            params["autocommit"] = True  # as Django's pool connects
            parse_config(adapter_for(Database.Connection.connect), "", params)
            options["pool"] = pool_options


def _cursor_class(options: Mapping[str, Any]) -> Any:
    """The cursor class Django's backend gives its connections."""
    if is_psycopg3 and options.get("server_side_binding") is True:
        return django_base.ServerBindingCursor
    return django_base.Cursor


def _as_is(value: Any) -> Any:
    return value


def _register_jsonb_loader(connection: Any) -> None:
    """psycopg2: JSONB columns arrive as text, which Django's JSONField
    decodes itself (what Django's backend registers). psycopg2 registers
    type casters on its own connection objects only, hence the driver
    connection."""
    import psycopg2.extras

    psycopg2.extras.register_default_jsonb(
        conn_or_curs=connection_proxy(connection).driver_connection, loads=_as_is
    )


def _set_up_again(connection: Any, role: str) -> None:
    """After a transparent reconnect: what Django set up on the session
    that bluegreen does not carry over (the role). The reopened connection
    is idle; the statement runs on the driver connection, and is committed
    when that is not in autocommit (as Django's ``init_connection_state()``
    does), so that a later rollback cannot undo it."""
    raw = connection_proxy(connection).driver_connection
    cur = raw.cursor()
    try:
        cur.execute("SELECT pg_catalog.set_config('role', %s, false)", [role])
    finally:
        cur.close()
    if not raw.autocommit:
        raw.commit()
