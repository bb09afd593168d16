"""Django scenarios for the bluegreen backend tests, each run in a process of
its own (Django's settings are configured once per process).

``python -m app.run backend``: migrate, ORM, transactions, error wrapping,
persistent connections and health checks, and the aliases the test
configured (``typo``, ``nohealth``, ``killer``, ``isolated``, ``pooled``,
``pooled_typo``); ``python -m app.run switchover``: "requests" in a loop
on long-lived connections until stdin closes, after printing ``READY``.
Both print one JSON object as their last line of output. The database comes
from the environment (see ``app/settings.py``); ``BG_DJANGO_DRIVER=psycopg2``
hides psycopg 3 so that Django's PostgreSQL backend picks psycopg2.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def qualname(cls: type | None) -> str | None:
    return None if cls is None else f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException) -> dict[str, Any]:
    cause = exc.__cause__
    return {
        "type": qualname(type(exc)),
        "message": str(exc)[:600],
        "cause": qualname(type(cause)) if cause is not None else None,
        "cause_mro": [qualname(c) for c in type(cause).__mro__] if cause else [],
    }


def setup() -> None:
    if os.environ.get("BG_DJANGO_DRIVER") == "psycopg2":
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()


# -- helpers on a connection ---------------------------------------------------


def scalar(sql: str, using: str = "default") -> Any:
    from django.db import connections

    with connections[using].cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def backend_pid(using: str = "default") -> int:
    from django.db import connections

    if connections[using].vendor == "postgresql":
        return int(scalar("SELECT pg_backend_pid()", using))
    return int(scalar("SELECT CONNECTION_ID()", using))


def kill(pid: int) -> None:
    """End session ``pid`` from the ``killer`` alias, as an administrator
    or a failover would."""
    from django.db import connections

    killer = connections["killer"]
    with killer.cursor() as cur:
        if killer.vendor == "postgresql":
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
        else:
            cur.execute(f"KILL {int(pid)}")
    killer.close()
    time.sleep(0.2)


# -- the backend checks ----------------------------------------------------------


def backend() -> dict[str, Any]:
    setup()
    from django.core.management import call_command
    from django.db import close_old_connections, connection, connections, transaction

    import bluegreen
    from app.models import Item
    from bluegreen.errors import driver_errors

    results: dict[str, Any] = {}
    aliases = set(connections.settings)

    def check(fn: Callable[[], Any]) -> None:
        try:
            results[fn.__name__] = fn()
        except Exception as exc:
            results[fn.__name__] = {"failed": describe(exc)}

    @check
    def migrate() -> Any:
        call_command("migrate", "app", verbosity=0, interactive=False)
        return sorted(connection.introspection.table_names())

    @check
    def proxy() -> Any:
        connection.ensure_connection()
        conn = connection.connection
        return {
            "type": qualname(type(conn)),
            "class": qualname(conn.__class__),
            "driver": qualname(
                type(bluegreen.connection_proxy(conn).driver_connection)
            ),
            "plugins": list(conn.wrapper_settings.plugins),
        }

    @check
    def orm() -> Any:
        Item.objects.create(name="first", payload={"k": [1, 2], "s": "x"})
        Item.objects.filter(name="first").update(payload={"k": [3], "s": "y"})
        got = Item.objects.get(name="first")
        return {"name": got.name, "payload": got.payload, "count": Item.objects.count()}

    @check
    def atomic() -> Any:
        try:
            with transaction.atomic():
                Item.objects.create(name="rolled-back")
                raise RuntimeError("roll it back")
        except RuntimeError:
            pass
        with transaction.atomic():
            Item.objects.create(name="committed")
            with transaction.atomic():  # a savepoint
                Item.objects.create(name="savepoint")
        return {
            "rolled_back": Item.objects.filter(name="rolled-back").exists(),
            "committed": Item.objects.filter(name="committed").exists(),
            "savepoint": Item.objects.filter(name="savepoint").exists(),
        }

    @check
    def integrity() -> Any:
        try:
            with transaction.atomic():
                Item.objects.create(name="first")
        except Exception as exc:
            return {"raised": describe(exc), "after": Item.objects.count()}
        return {"raised": None}

    @check
    def bluegreen_error() -> Any:
        # bluegreen's own connection errors are the driver's OperationalError
        # too: Django's error wrapping must turn them into its own.
        adapter = bluegreen.connection_proxy(connection.connection).driver_adapter
        timeout_error = driver_errors(
            adapter.operational_error()
        ).SwitchoverTimeoutError
        try:
            with connection.wrap_database_errors:
                raise timeout_error("switchover wait ran out")
        except Exception as exc:
            return {
                "raised": describe(exc),
                "is_bluegreen": isinstance(
                    exc.__cause__, bluegreen.SwitchoverTimeoutError
                ),
            }
        return {"raised": None}

    @check
    def iterator() -> Any:
        names = Item.objects.order_by("name").values_list("name", flat=True)
        return list(names.iterator(chunk_size=1))

    @check
    def persistent() -> Any:
        close_old_connections()  # request_started
        pid1, obj1 = backend_pid(), id(connection.connection)
        close_old_connections()  # request_finished
        close_old_connections()
        pid2, obj2 = backend_pid(), id(connection.connection)
        close_old_connections()
        return {"same_pid": pid1 == pid2, "same_connection": obj1 == obj2}

    if "killer" in aliases:

        @check
        def health_check() -> Any:
            close_old_connections()
            pid = backend_pid()
            close_old_connections()
            kill(pid)
            close_old_connections()  # the next request checks the connection
            new_pid = backend_pid()
            proxied = type(connection.connection) is bluegreen.Connection
            close_old_connections()
            return {"new_pid": new_pid != pid, "proxied": proxied}

    if "nohealth" in aliases and "killer" in aliases:

        @check
        def no_health_check() -> Any:
            # Without health checks the first query after the kill fails,
            # wrapped by Django; the end of that request replaces the
            # connection.
            close_old_connections()
            kill(backend_pid("nohealth"))
            close_old_connections()
            try:
                backend_pid("nohealth")
                failure = None
            except Exception as exc:
                failure = describe(exc)
            close_old_connections()
            backend_pid("nohealth")
            return {"failure": failure, "recovered": True}

    if "typo" in aliases:

        @check
        def typo() -> Any:
            try:
                connections["typo"].ensure_connection()
            except Exception as exc:
                return {"raised": describe(exc)}
            return {"raised": None}

    if "isolated" in aliases:

        @check
        def isolated() -> Any:
            db = connections["isolated"]
            with transaction.atomic(using="isolated"), db.cursor() as cur:
                if db.vendor == "postgresql":
                    cur.execute("SHOW transaction_isolation")
                    level = cur.fetchone()[0]
                    cur.execute("SELECT current_user")
                    user = cur.fetchone()[0]
                else:
                    cur.execute("SELECT @@session.tx_isolation")
                    level, user = cur.fetchone()[0], None
                cursor_class = type(cur.cursor.driver_cursor).__name__
                count = Item.objects.using("isolated").filter(name="first").count()
            return {
                "level": level,
                "user": user,
                "cursor_class": cursor_class,
                "count": count,
                "proxied": type(db.connection) is bluegreen.Connection,
            }

    if "pooled" in aliases:

        @check
        def pooled() -> Any:
            db = connections["pooled"]
            pid1 = backend_pid("pooled")
            proxied = type(db.connection) is bluegreen.Connection
            db.close()  # back to the pool
            pid2 = backend_pid("pooled")
            count = Item.objects.using("pooled").count()
            db.close()
            db.close_pool()
            return {"proxied": proxied, "reused": pid1 == pid2, "count": count}

    if "pooled_typo" in aliases:

        @check
        def pooled_typo() -> Any:
            start = time.monotonic()
            try:
                connections["pooled_typo"].ensure_connection()
            except Exception as exc:
                return {"raised": describe(exc), "s": time.monotonic() - start}
            return {"raised": None}

    connections.close_all()
    return results


# -- requests through a switchover ------------------------------------------------


def switchover() -> dict[str, Any]:
    setup()
    from django.db import close_old_connections, connection

    import bluegreen.bg
    from app.models import Workload

    threads = int(os.environ.get("BG_DJANGO_THREADS", "2"))
    bg_id = json.loads(os.environ["BG_DJANGO_OPTIONS"]).get("bg_id", "1")
    ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)
    stop = threading.Event()
    first_done = threading.Barrier(threads + 1)
    records: list[dict[str, Any]] = []
    lock = threading.Lock()

    def identity() -> tuple[str, str]:
        """The serving instance and what Django set up on the session."""
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                # Django has JSONB arrive as text (JSONField decodes it).
                cur.execute(
                    "SELECT host(inet_server_addr()), current_user, '{}'::jsonb"
                )
                server, user, jsonb = cur.fetchone()
                return str(server), f"{user}, jsonb as {type(jsonb).__name__}"
            cur.execute("SELECT @@server_id, @@session.tx_isolation")
            server, isolation = cur.fetchone()
            return str(server), str(isolation)

    def request(client: str) -> dict[str, Any]:
        start = time.monotonic()
        close_old_connections()  # request_started
        rec: dict[str, Any] = {"client": client, "start": start}
        try:
            wid = next(ids)
            Workload.objects.create(id=wid, client=client)
            server, session = identity()
            rec.update(ok=True, id=wid, identity=server, session=session)
        except Exception as exc:
            rec.update(ok=False, error=describe(exc))
        rec["connection"] = id(connection.connection)
        close_old_connections()  # request_finished
        rec["end"] = time.monotonic()
        return rec

    def worker(n: int) -> None:
        client = f"django-{n}"
        try:
            with lock:
                records.append(request(client))
            first_done.wait(30)
            while not stop.is_set():
                rec = request(client)
                with lock:
                    records.append(rec)
                stop.wait(0.01)
        finally:
            connection.close()

    workers = [
        threading.Thread(target=worker, args=(n,), name=f"request-{n}")
        for n in range(threads)
    ]
    for t in workers:
        t.start()
    first_done.wait(30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = bluegreen.bg.status(bg_id)
        if st is not None and st.monitoring:
            break
        time.sleep(0.02)
    print("READY", flush=True)
    sys.stdin.read()  # until the test closes it
    stop.set()
    for t in workers:
        t.join(30)
    st = bluegreen.bg.status(bg_id)
    return {
        "records": records,
        "reconnects": st.reconnects if st is not None else None,
        "phase": str(st.phase) if st is not None else None,
    }


def main() -> None:
    mode = sys.argv[1]
    result = backend() if mode == "backend" else switchover()
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
