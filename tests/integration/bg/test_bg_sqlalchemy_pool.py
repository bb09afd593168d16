"""Pool hygiene after a switchover, for applications that turn the
transparent reconnect off: with
:func:`bluegreen.sqlalchemy.invalidate_on_switchover`, no connection the
switchover dropped is handed out once the plugin is at POST; without it, the
pool hands out at least one dead connection. Real servers, the simulator's
switchover, an engine made from a ``postgresql+bluegreen_psycopg`` URL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy
from bgharness import Harness, settings_for, wait_for
from sqlalchemy.engine import URL

import bluegreen
import bluegreen.bg
from bluegreen.sqlalchemy import invalidate_on_switchover

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SPEED = 10.0
POOLED = 5


def _engine(h: Harness) -> sqlalchemy.Engine:
    kw = h.kwargs(h.blue_host)
    settings = settings_for(SPEED, bg_connect_timeout_ms=5000, bg_reconnect=False)
    url = URL.create(
        "postgresql+bluegreen_psycopg",
        username=kw["user"],
        password=kw["password"],
        host=kw["host"],
        port=kw["port"],
        database=kw["dbname"],
        query={"connect_timeout": "3", **{k: str(v) for k, v in settings.items()}},
    )
    return sqlalchemy.create_engine(url, pool_size=POOLED, max_overflow=0)


def _fill(engine: sqlalchemy.Engine) -> list[bluegreen.Connection]:
    """Open POOLED connections at once and give them back to the pool; the
    proxies (kept alive by the caller, so that their ids stay theirs)."""
    conns = [engine.connect() for _ in range(POOLED)]
    proxies = []
    for c in conns:
        assert c.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        proxies.append(bluegreen.connection_proxy(c.connection.dbapi_connection))
        c.close()
    return proxies


def _ids(proxies: list[bluegreen.Connection]) -> set[int]:
    return {id(p) for p in proxies}


def _use_all(engine: sqlalchemy.Engine) -> tuple[int, set[str], set[int]]:
    """Check out POOLED connections (every pooled one), query each: the
    number of failed queries, the serving servers and the ids of the
    proxies used (compared while the old proxies are still referenced)."""
    errors = 0
    served: set[str] = set()
    proxies: set[int] = set()
    conns = []
    for _ in range(POOLED):
        c = engine.connect()
        conns.append(c)
        proxies.add(id(bluegreen.connection_proxy(c.connection.dbapi_connection)))
        try:
            served.add(
                c.execute(sqlalchemy.text("SELECT host(inet_server_addr())")).scalar()
            )
        except sqlalchemy.exc.OperationalError as e:
            assert e.connection_invalidated  # the dialect saw a disconnect
            errors += 1
    for c in conns:
        c.close()
    return errors, served, proxies


def test_no_dropped_connection_is_handed_out_after_post(
    bg_harness: Callable[..., Harness],
) -> None:
    h = bg_harness("rds-postgres", readers=0)
    guarded, plain = _engine(h), _engine(h)
    invalidate_on_switchover(guarded)
    invalidate_on_switchover(guarded)  # twice adds nothing
    try:
        before_guarded, before_plain = _fill(guarded), _fill(plain)
        # Outside a switchover the helper replaces nothing.
        assert _use_all(guarded) == (0, {h.dep.blue.writer.host}, _ids(before_guarded))

        player = h.play("switchover", SPEED, until=10.0)
        wait_for(
            lambda: bluegreen.bg.status("1").phase in ("POST", "COMPLETED"),  # type: ignore[union-attr]
            30,
            "the plugin to see POST",
        )
        errors, served, proxies = _use_all(guarded)
        assert errors == 0
        assert served == {h.dep.green.writer.host}  # the new primary
        assert not proxies & _ids(before_guarded)  # every one replaced

        errors, _, proxies = _use_all(plain)
        assert errors >= 1, "without the helper a dead connection is handed out"
        assert proxies & _ids(before_plain)
        assert player.wait(timeout=60)
    finally:
        guarded.dispose()
        plain.dispose()
